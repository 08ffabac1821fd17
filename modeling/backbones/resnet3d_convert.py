"""Load PyTorch state dicts (MONAI / MedicalNet 3D ResNets, and models built on them) into Keras models.

A module ``a.b.c`` of the state dict goes into the Keras layer named ``a_b_c`` (see
`modeling.backbones.resnet3d` for the naming), searched through nested models too. Per module:

* ``Conv3d`` ``weight (out, in, kd, kh, kw)`` -> ``Conv3D`` kernel ``W.transpose(2, 3, 4, 1, 0)``, plus bias;
* ``Linear`` ``weight (out, in)`` -> ``Dense`` kernel ``W.T``, plus bias;
* ``BatchNorm`` ``weight, bias, running_mean, running_var`` -> gamma, beta, moving mean and variance
  (``num_batches_tracked`` has no Keras counterpart and is dropped).

Checkpoints are read from an ``.npz`` export (``np.savez(path, **{k: v.numpy() for k, v in
state_dict.items()})``) or, when PyTorch is installed, from a ``.pth``/``.pt`` file; MedicalNet's
``{"state_dict": ...}`` wrapper and ``module.`` prefixes (from ``DataParallel``) are removed.

Command: ``python -m modeling.backbones.resnet3d_convert CHECKPOINT OUTPUT.weights.h5 --depth 50
[--widen_factor 1 --stem_stride 2 --shortcut_type B --no_bias_downsample]`` writes a Keras
weights file for `resnet3d` with those arguments.
"""

import argparse
from pathlib import Path

import keras
import numpy as np

from modeling.backbones.resnet3d import DEPTHS, SHORTCUT_TYPES, resnet3d

_IGNORED_SUFFIXES = ("num_batches_tracked",)
_FIXTURE_PREFIXES = ("input__", "output__")


def read_state_dict(path):
    """The state dict in ``path`` (``.npz``, or ``.pth``/``.pt`` with PyTorch installed) as NumPy arrays.

    Entries named ``input__*`` / ``output__*`` (fixture inputs and outputs) are left out.

    Raises:
        FileNotFoundError: no such file.
        ImportError: a ``.pth`` file without PyTorch installed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    if path.suffix == ".npz":
        with np.load(path) as data:
            state = {key: data[key] for key in data.files}
    else:
        try:
            import torch  # optional: only .pth checkpoints need it
        except ImportError as error:
            raise ImportError(
                f"Reading {path} needs PyTorch (pip install torch); or export it to .npz where torch is installed."
            ) from error
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        state = {key: value.detach().cpu().numpy() for key, value in state.items()}
    return {key.removeprefix("module."): value for key, value in state.items() if not key.startswith(_FIXTURE_PREFIXES)}


def keras_weights(module_entries):
    """The Keras weight list of one PyTorch module's entries (``{"weight": ..., "bias": ...}``).

    Example:

    >>> w = np.arange(6, dtype="float32").reshape(3, 2)
    >>> [a.shape for a in keras_weights({"weight": w, "bias": np.zeros(3, "float32")})]
    [(2, 3), (3,)]
    """
    if "running_mean" in module_entries:
        return [module_entries[key] for key in ("weight", "bias", "running_mean", "running_var")]
    weight = module_entries["weight"]
    transposes = {2: (1, 0), 3: (2, 1, 0), 4: (2, 3, 1, 0), 5: (2, 3, 4, 1, 0)}
    if weight.ndim not in transposes:
        raise ValueError(f"Cannot map a weight of shape {weight.shape}.")
    converted = [weight.transpose(transposes[weight.ndim])]
    return converted + ([module_entries["bias"]] if "bias" in module_entries else [])


def load_torch_state_dict(model, state_dict, prefix="", strict=True, ignore=()):
    """Set ``model``'s weights from a PyTorch ``state_dict`` (NumPy arrays), module by module.

    Args:
        model: a Keras model whose layers are named after the torch modules (``.`` -> ``_``).
        state_dict: ``{torch name: array}`` in PyTorch layout.
        prefix: a torch name prefix to strip first (e.g. ``"backbone."``); other keys are ignored.
        strict: raise when a module has no Keras layer, or a weighted Keras layer got no module.
        ignore: torch name prefixes (after ``prefix``) to leave out, e.g. MedicalNet's ``"conv_seg."``.

    Returns:
        The names of the Keras layers that were set.

    Raises:
        ValueError: unmatched modules or layers (with ``strict``), or a shape mismatch, naming them.
    """
    modules = {}
    for key, value in state_dict.items():
        if (
            not key.startswith(prefix)
            or key.endswith(_IGNORED_SUFFIXES)
            or key[len(prefix) :].startswith(tuple(ignore))
        ):
            continue
        module, _, entry = key[len(prefix) :].rpartition(".")
        modules.setdefault(module.replace(".", "_"), {})[entry] = np.asarray(value)
    layers = {layer.name: layer for layer in _all_layers(model)}
    unknown = sorted(set(modules) - set(layers))
    weighted = {name for name, layer in layers.items() if layer.weights and not isinstance(layer, keras.Model)}
    unset = sorted(weighted - set(modules))
    if strict and (unknown or unset):
        raise ValueError(
            f"State dict and model do not match: modules without a Keras layer {unknown[:10]}, "
            f"Keras layers without a module {unset[:10]}."
        )
    loaded = []
    for name in sorted(set(modules) & set(layers)):
        values = keras_weights(modules[name])
        expected = [tuple(w.shape) for w in layers[name].weights]
        if [v.shape for v in values] != expected:
            raise ValueError(f"Module {name!r}: shapes {[v.shape for v in values]} do not fit the layer's {expected}.")
        layers[name].set_weights(values)
        loaded.append(name)
    return loaded


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def build_parser():
    parser = argparse.ArgumentParser(prog="convert-resnet3d", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help=".npz export or .pth/.pt file of a MONAI/MedicalNet 3D ResNet")
    parser.add_argument("output", help="Keras weights file to write (*.weights.h5)")
    parser.add_argument("--depth", type=int, default=50, choices=sorted(DEPTHS))
    parser.add_argument("--widen_factor", type=float, default=1.0)
    parser.add_argument("--shortcut_type", default="B", choices=SHORTCUT_TYPES)
    parser.add_argument("--stem_kernel", type=int, default=7)
    parser.add_argument("--stem_stride", type=int, default=1, help="MONAI 1; MedicalNet checkpoints 2")
    parser.add_argument("--no_max_pool", action="store_true")
    parser.add_argument("--no_bias_downsample", action="store_true", help="MedicalNet: shortcut convs have no bias")
    parser.add_argument("--in_channels", type=int, default=1)
    parser.add_argument("--prefix", default="", help="strip this prefix from the torch names (e.g. 'backbone.')")
    parser.add_argument(
        "--ignore", nargs="*", default=[], help="torch name prefixes to leave out (MedicalNet: conv_seg.)"
    )
    return parser


def run(argv=None):
    """Convert a checkpoint into a `resnet3d` weights file; returns the output path."""
    args = build_parser().parse_args(argv)
    model = resnet3d(
        args.depth,
        (None, None, None, args.in_channels),
        widen_factor=args.widen_factor,
        shortcut_type=args.shortcut_type,
        stem_kernel=args.stem_kernel,
        stem_stride=args.stem_stride,
        max_pool=not args.no_max_pool,
        bias_downsample=not args.no_bias_downsample,
    )
    loaded = load_torch_state_dict(model, read_state_dict(args.checkpoint), prefix=args.prefix, ignore=args.ignore)
    model.save_weights(args.output)
    print(f"Wrote {args.output}: {len(loaded)} layers from {args.checkpoint}")
    return args.output


def main(argv=None):
    run(argv)


if __name__ == "__main__":
    main()
