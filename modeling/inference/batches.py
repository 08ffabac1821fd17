"""Reading model inputs (and optional targets) batch by batch from arrays or a tf.data.Dataset.

Shared by test-time augmentation and the interpretability loggers, so that
both accept the same data forms:

* in memory: the inputs alone (an image array, a list ``[image, sex]`` in the
  order of ``model.inputs``, or a dict keyed by input name), or a tuple
  ``(inputs, targets)`` as in ``Model.fit(validation_data=...)``;
* a batched ``tf.data.Dataset`` (anything with ``as_numpy_iterator``) whose
  elements take one of the forms above.
"""

import keras
import numpy as np

IMAGE_INPUT_NAME = "image"


def input_names(model):
    """Names of the model's inputs, in order."""
    return [tensor.name for tensor in model.inputs]


def image_index(model):
    """Position of the image among the model's inputs: the input named "image", else the first."""
    names = input_names(model)
    return names.index(IMAGE_INPUT_NAME) if IMAGE_INPUT_NAME in names else 0


def split_inputs_targets(data, n_inputs):
    """Return ``(inputs, targets)``; ``targets`` is ``None`` when ``data`` holds inputs only.

    A list or tuple of arrays is read as the model's inputs when its length is
    the number of inputs; a single-input model also accepts ``(image, targets)``.
    """
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("Got empty data: expected inputs or (inputs, targets).")
        if isinstance(data[0], (dict, list, tuple)):
            return data[0], (data[1] if len(data) > 1 else None)
        if len(data) == n_inputs:
            return list(data), None
        if n_inputs == 1 and len(data) in (2, 3):
            return data[0], data[1]
        raise ValueError(
            f"Cannot read {len(data)} arrays as the inputs of a model with {n_inputs} inputs; "
            "pass the inputs as a list or dict, or (inputs, targets)."
        )
    return data, None


def as_input_list(inputs, model):
    """The inputs as a list of numpy arrays in the order of ``model.inputs``."""
    names = input_names(model)
    if isinstance(inputs, dict):
        missing = [name for name in names if name not in inputs]
        if missing:
            raise ValueError(f"Input dict lacks {missing}; the model's inputs are {names}.")
        arrays = [inputs[name] for name in names]
    elif isinstance(inputs, (list, tuple)):
        arrays = list(inputs)
    else:
        arrays = [inputs]
    if len(arrays) != len(names):
        raise ValueError(f"Got {len(arrays)} input arrays for a model with inputs {names}.")
    arrays = [np.asarray(keras.ops.convert_to_numpy(array)) for array in arrays]
    sizes = {len(array) for array in arrays}
    if len(sizes) != 1:
        raise ValueError(f"Inputs disagree on the number of samples: {sorted(sizes)}.")
    return arrays


def model_call_inputs(arrays):
    """What ``predict_on_batch`` expects: the array alone for a single-input model, else the list."""
    return arrays[0] if len(arrays) == 1 else arrays


def is_dataset(data):
    """Whether ``data`` is a `tf.data.Dataset` (checked without importing TensorFlow)."""
    return hasattr(data, "as_numpy_iterator")


def iterate_batches(data, model, batch_size):
    """Yield ``(input_list, targets_or_None)`` per batch.

    Arrays are cut into batches of ``batch_size``; a dataset keeps its own batching.
    """
    n_inputs = len(model.inputs)
    if is_dataset(data):
        for element in data.as_numpy_iterator():
            inputs, targets = split_inputs_targets(element, n_inputs)
            yield as_input_list(inputs, model), _targets_array(targets)
        return
    inputs, targets = split_inputs_targets(data, n_inputs)
    arrays = as_input_list(inputs, model)
    targets = _targets_array(targets)
    for start in range(0, len(arrays[0]), batch_size):
        stop = start + batch_size
        yield [array[start:stop] for array in arrays], None if targets is None else targets[start:stop]


def _targets_array(targets):
    return None if targets is None else np.asarray(keras.ops.convert_to_numpy(targets))
