# Two entry points for a fresh machine: `make train` and `make test`.
# Both create .venv and install the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

train: install
	$(BIN)/python -m training.boneage.train

# The whole suite on TensorFlow, then the model and layer tests on JAX.
test: install
	$(BIN)/python -m pytest
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m multibackend
