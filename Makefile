# Two entry points for a fresh machine: `make train` and `make test`.
# Both create .venv and install the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test format

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

train: install
	$(BIN)/python -m training.boneage.train

# Style first (ruff lint + format check), then the whole suite on TensorFlow, then the model and
# layer tests on JAX. Tests run in up to 4 worker processes (pytest-xdist; one per core), each test
# file on one worker so module fixtures are built once. `make format` applies ruff's fixes and formatting.
PYTEST := $(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PYTEST)
	KERAS_BACKEND=jax $(PYTEST) -m multibackend

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
