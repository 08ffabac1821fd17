"""Load the original PyTorch ``state_dict`` of a nodule-segmentation model into the Keras port.

The Keras layers carry the torch module names with ``.`` replaced by ``_`` (see
`modeling.nodule_segmentation.attention`), so each torch module maps to one layer by name:

* ``Conv2d`` ``(out, in, kh, kw)`` -> `Conv2D` / `UpsampledConv2D` kernel ``(kh, kw, in, out)`` and bias;
* ``BatchNorm2d`` weight, bias, running_mean, running_var -> gamma, beta, moving mean and variance
  (``num_batches_tracked`` has no counterpart and is dropped).

The torchxrayvision backbone (``feature_extractor.*``) has no Keras counterpart here; its entries
are ignored by default, so the port keeps its own backbone weights.

Example:

>>> from modeling.nodule_segmentation import supervised_attention_module
>>> model = supervised_attention_module(32)
>>> rng = np.random.default_rng(0)
>>> state = {"output_layer.3.weight": rng.normal(size=(1, 16, 1, 1)), "output_layer.3.bias": np.zeros(1)}
>>> load_torch_state_dict(model, state)
['output_layer_3']
"""

from pathlib import Path

import keras
import numpy as np

from modeling.nodule_segmentation.layers import UpsampledConv2D

# npz entries that are not weights (the fixtures' inputs and outputs).
_NON_WEIGHT_PREFIXES = ("input__", "output__")
_BATCHNORM_ORDER = ("weight", "bias", "running_mean", "running_var")
BACKBONE_PREFIXES = ("feature_extractor.",)


def read_state_dict(path):
    """A torch ``state_dict`` as ``{name: float32 array}`` from an ``.npz`` export or a ``.pth`` file.

    ``.pth`` needs the optional ``torch`` package (``pip install medfusion-keras[pytorch]``); a
    checkpoint dict holding ``"model_state_dict"`` or ``"state_dict"`` is unwrapped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: another file type.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No state dict file at {path}")
    if path.suffix == ".npz":
        with np.load(path) as data:
            return {key: data[key] for key in data.files if not key.startswith(_NON_WEIGHT_PREFIXES)}
    if path.suffix in (".pth", ".pt"):
        try:
            import torch
        except ImportError:
            raise ImportError(f"Reading {path} needs PyTorch: pip install 'medfusion-keras[pytorch]'") from None
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("model_state_dict", "state_dict"):
            if isinstance(state, dict) and key in state:
                state = state[key]
        return {key: value.detach().cpu().numpy() for key, value in state.items()}
    raise ValueError(f"Expected an .npz or .pth state dict; got {path}")


def load_torch_state_dict(model, state_dict, prefix="", ignore=BACKBONE_PREFIXES):
    """Set the weights of ``model``'s layers from a torch ``state_dict``.

    Args:
        model: a model of `modeling.nodule_segmentation.models`.
        state_dict: ``{torch name: array}`` (e.g. from `read_state_dict`).
        prefix: prepended to every torch name (e.g. ``"spatial_attention."`` to load a lone
            attention module's weights into the full model).
        ignore: torch name prefixes to skip.

    Returns:
        The names of the Keras layers that were set, in order.

    Raises:
        ValueError: an entry with no matching layer, or a shape that does not fit (both named).
    """
    modules = {}
    for name, value in state_dict.items():
        if name.startswith(tuple(ignore)) or name.endswith("num_batches_tracked"):
            continue
        module, _, kind = name.rpartition(".")
        modules.setdefault(module, {})[kind] = np.asarray(value, "float32")
    layers = {layer.name: layer for layer in model.layers}
    loaded = []
    for module, tensors in modules.items():
        layer_name = (prefix + module).replace(".", "_")
        if layer_name not in layers:
            raise ValueError(f"state_dict module '{module}' has no layer '{layer_name}' in model '{model.name}'.")
        layer = layers[layer_name]
        weights = _keras_weights(layer, tensors)
        expected = [tuple(w.shape) for w in layer.weights]
        if [w.shape for w in weights] != expected:
            raise ValueError(
                f"state_dict module '{module}': shapes {[w.shape for w in weights]} do not fit layer "
                f"'{layer_name}' {expected}."
            )
        layer.set_weights(weights)
        loaded.append(layer_name)
    return loaded


def _keras_weights(layer, tensors):
    if isinstance(layer, keras.layers.BatchNormalization):
        return [tensors[kind] for kind in _BATCHNORM_ORDER]
    if isinstance(layer, (keras.layers.Conv2D, UpsampledConv2D)):
        kernel = tensors["weight"].transpose(2, 3, 1, 0)
        return [kernel, tensors["bias"]] if "bias" in tensors else [kernel]
    raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) takes no torch weights.")
