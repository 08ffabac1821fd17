"""Callbacks that record what a fusion model attends to: gate weights and spatial attention maps."""

import importlib.util
import json
import os
import warnings

import keras
import numpy as np
from keras import ops
from matplotlib.figure import Figure

from modeling.inference.batches import (
    as_input_list,
    image_index,
    iterate_batches,
    model_call_inputs,
    split_inputs_targets,
)


class GateWeightLogger(keras.callbacks.Callback):
    """Records a fusion gate on validation data after every epoch.

    The gate is the output of the layer ``layer_name`` (values in [0, 1],
    e.g. a sigmoid; in the bone-age gated fusion ``fusion_gate``, near 1
    favouring the image and near 0 the sex features). Each epoch adds
    ``<name>_mean`` and ``<name>_std`` (over all samples and gate units; by
    default ``gate_mean`` and ``gate_std``) to the logs, so History, CSVLogger
    and TensorBoard get them (place this callback before those). The
    histograms are kept in ``history`` and written with the scalars to
    ``output_dir/<name>_weights.json``; with the TensorFlow backend,
    TensorBoard installed and a ``log_dir`` they also go to TensorBoard as
    histograms. ``output_dir/<name>_weights.png`` shows mean, spread and
    histogram per epoch. Give each logger of one run its own ``name``.

    Args:
        validation_data: the model's inputs (arrays, or ``(inputs, targets)``,
            or a dataset), in the forms `predict_tta` accepts.
        output_dir: folder for the JSON and PNG files (created if needed).
        layer_name: name of the gate layer; searched in nested models too
            when the model has no such layer, and ``"encoder/gate"`` names the
            layer ``gate`` of the nested model ``encoder``.
        bins: number of histogram bins over [0, 1].
        batch_size: batch size for array data.
        log_dir: TensorBoard folder for the histograms, written under
            ``log_dir/<name>``; needs the TensorFlow backend and the
            ``tensorboard`` package, else a warning says they are skipped.
        name: prefix of the log keys and file names.

    Example:

    >>> import numpy as np
    >>> inputs = {"image": np.zeros((4, 64, 64, 3), "float32"), "sex": np.ones((4, 1), "float32")}
    >>> logger = GateWeightLogger(inputs, output_dir="gate_logs", bins=4)
    >>> logger.bin_edges.tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """

    def __init__(
        self,
        validation_data,
        output_dir,
        layer_name="fusion_gate",
        bins=10,
        batch_size=32,
        log_dir=None,
        name="gate",
    ):
        super().__init__()
        if isinstance(bins, bool) or int(bins) != bins or bins < 1:
            raise ValueError(f"`bins` must be a positive integer; got {bins!r}.")
        self.validation_data = validation_data
        self.output_dir = os.fspath(output_dir)
        self.layer_name = layer_name
        self.bin_edges = np.linspace(0.0, 1.0, int(bins) + 1)
        self.batch_size = batch_size
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.name = name
        self._mean_key, self._std_key = f"{name}_mean", f"{name}_std"
        self.history = {"epoch": [], self._mean_key: [], self._std_key: [], "histogram": []}
        self._gate_model = None
        self._use_tensorboard = False
        self._writer = None

    def get_config(self):
        """The logger's settings (the validation data itself is not part of the config)."""
        return {
            "output_dir": self.output_dir,
            "layer_name": self.layer_name,
            "bins": len(self.bin_edges) - 1,
            "batch_size": self.batch_size,
            "log_dir": self.log_dir,
            "name": self.name,
        }

    def on_train_begin(self, logs=None):
        self._gate_model = _output_model(self.model, self.layer_name, "GateWeightLogger", "a gated fusion")
        os.makedirs(self.output_dir, exist_ok=True)
        self._use_tensorboard = False
        if self.log_dir is not None:
            if keras.backend.backend() != "tensorflow":
                reason = f"the backend is {keras.backend.backend()}, not tensorflow"
            elif importlib.util.find_spec("tensorboard") is None:
                reason = "the tensorboard package is not installed"
            else:
                self._use_tensorboard = True
            if not self._use_tensorboard:
                warnings.warn(
                    f"GateWeightLogger writes no TensorBoard histograms because {reason}; "
                    "they are kept in `history` and the JSON file.",
                    UserWarning,
                    stacklevel=2,
                )

    def on_epoch_end(self, epoch, logs=None):
        gates = np.concatenate(
            [
                np.asarray(self._gate_model.predict_on_batch(model_call_inputs(inputs))).reshape(-1)
                for inputs, _ in iterate_batches(self.validation_data, self.model, self.batch_size)
            ]
        )
        mean = float(ops.convert_to_numpy(ops.mean(gates)))
        std = float(ops.convert_to_numpy(ops.std(gates)))
        counts, _ = ops.histogram(gates, bins=len(self.bin_edges) - 1, range=(0.0, 1.0))
        self.history["epoch"].append(epoch)
        self.history[self._mean_key].append(mean)
        self.history[self._std_key].append(std)
        self.history["histogram"].append([int(c) for c in ops.convert_to_numpy(counts)])
        if logs is not None:
            logs.update({self._mean_key: mean, self._std_key: std})
        if self._use_tensorboard:
            self._write_tensorboard_histogram(gates, epoch)
        self._write_json()
        self.plot().savefig(os.path.join(self.output_dir, f"{self.name}_weights.png"))

    def plot(self):
        """Figure of the gate over epochs: mean with a one-std band, and the histograms."""
        figure = Figure(figsize=(10, 4))
        line_axes, map_axes = figure.subplots(1, 2)
        epochs = np.asarray(self.history["epoch"]) + 1
        mean, std = np.asarray(self.history[self._mean_key]), np.asarray(self.history[self._std_key])
        line_axes.plot(epochs, mean, "o-", label="mean")
        line_axes.fill_between(epochs, mean - std, mean + std, alpha=0.3, label="mean ± std")
        line_axes.set(xlabel="Epoch", ylabel="Gate weight", ylim=(0.0, 1.0))
        line_axes.set_title(f"'{self.layer_name}' over epochs")
        line_axes.legend()
        counts = np.asarray(self.history["histogram"], dtype=float).T
        image = map_axes.imshow(
            counts / np.maximum(counts.sum(axis=0, keepdims=True), 1.0),
            origin="lower",
            aspect="auto",
            extent=(epochs[0] - 0.5, epochs[-1] + 0.5, 0.0, 1.0),
            cmap="viridis",
        )
        map_axes.set(xlabel="Epoch", ylabel="Gate weight", title="Share of gate values per bin")
        figure.colorbar(image, ax=map_axes)
        figure.suptitle(f"Layer '{self.layer_name}' on validation data")
        return figure

    def _write_json(self):
        record = {"layer": self.layer_name, "bin_edges": self.bin_edges.tolist(), **self.history}
        with open(os.path.join(self.output_dir, f"{self.name}_weights.json"), "w") as file:
            json.dump(record, file, indent=1)

    def _write_tensorboard_histogram(self, gates, epoch):
        import tensorflow as tf  # optional: only reached with the TensorFlow backend and TensorBoard

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, self.name))
        with self._writer.as_default():
            tf.summary.histogram(self.layer_name, gates, step=epoch, buckets=len(self.bin_edges) - 1)
        self._writer.flush()


class AttentionMapLogger(keras.callbacks.Callback):
    """Every ``every`` epochs, saves the spatial attention map over fixed images as a PNG.

    The map (the output of ``layer_name``, shape ``(batch, h, w, 1)``, values
    in (-1, 1)) is upsampled bilinearly to the image size and drawn in a
    diverging colour map over the grey image, scaled to the largest absolute
    value shown (given on the colour bar); the top row shows the images
    alone. Files: ``output_dir/<name>_epoch_{epoch:03d}.png`` (1-based
    epoch, as Keras prints it; by default ``attention_epoch_005.png``);
    ``saved`` lists them.

    Args:
        inputs: the model's inputs for the images to show (arrays, as for
            `predict_tta`, without targets); only the first ``max_images`` are used.
        output_dir: folder for the PNG files (created if needed).
        every: save after every ``every``-th epoch.
        layer_name: name of the attention-map layer, searched as in `GateWeightLogger`.
        max_images: number of images drawn.
        name: prefix of the file names.

    Example:

    >>> import numpy as np
    >>> inputs = [np.zeros((8, 64, 64, 3), "float32"), np.ones((8, 1), "float32")]
    >>> logger = AttentionMapLogger(inputs, output_dir="attention_maps", every=5)
    >>> logger.layer_name
    'attention_map'
    """

    def __init__(self, inputs, output_dir, every=1, layer_name="attention_map", max_images=4, name="attention"):
        super().__init__()
        for argument, value in (("every", every), ("max_images", max_images)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"`{argument}` must be a positive integer; got {value!r}.")
        self.inputs = inputs
        self.output_dir = os.fspath(output_dir)
        self.every = int(every)
        self.layer_name = layer_name
        self.max_images = int(max_images)
        self.name = name
        self.saved = []
        self._map_model = None
        self._arrays = None

    def get_config(self):
        """The logger's settings (the images themselves are not part of the config)."""
        return {
            "output_dir": self.output_dir,
            "every": self.every,
            "layer_name": self.layer_name,
            "max_images": self.max_images,
            "name": self.name,
        }

    def on_train_begin(self, logs=None):
        self._map_model = _output_model(self.model, self.layer_name, "AttentionMapLogger", "a spatial attention map")
        shape = self._map_model.output.shape
        if len(shape) != 4 or shape[-1] != 1:
            raise ValueError(
                f"Layer '{self.layer_name}' gives shape {tuple(shape)}; an attention map is (batch, h, w, 1)."
            )
        inputs, _ = split_inputs_targets(self.inputs, len(self.model.inputs))
        self._arrays = [array[: self.max_images] for array in as_input_list(inputs, self.model)]
        os.makedirs(self.output_dir, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        images = self._arrays[image_index(self.model)]
        maps = self._map_model.predict_on_batch(model_call_inputs(self._arrays))
        maps = ops.convert_to_numpy(ops.image.resize(maps, images.shape[1:3], interpolation="bilinear"))
        path = os.path.join(self.output_dir, f"{self.name}_epoch_{epoch + 1:03d}.png")
        _overlay_figure(images, maps[..., 0], f"'{self.layer_name}' after epoch {epoch + 1}").savefig(path)
        self.saved.append(path)


def _output_model(model, layer_name, caller, what):
    """A model from ``model``'s inputs to the output of its layer ``layer_name``, at any depth."""
    output = _layer_output(model, layer_name)
    if output is None:
        nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
        raise ValueError(
            f"{caller} needs a model with {what} (layer '{layer_name}'); model '{model.name}' "
            f"has none. Its layers: {[layer.name for layer in model.layers]}; nested models: {nested}."
        )
    return keras.Model(model.inputs, output)


def _layer_output(model, layer_name):
    """The symbolic output of layer ``layer_name`` on ``model``'s inputs, or ``None`` if absent.

    A layer of ``model`` itself comes first, else one found in exactly one nested model;
    ``"outer/inner"`` looks for ``inner`` in the nested model ``outer`` only.
    """
    head, _, rest = layer_name.partition("/")
    layers = {layer.name: layer for layer in model.layers}
    if rest:
        nested = layers.get(head)
        inner = _layer_output(nested, rest) if isinstance(nested, keras.Model) else None
        return None if inner is None else _through(model, nested, inner)
    if layer_name in layers:
        return _call_of(model, layers[layer_name]).outputs[0]
    found = []
    for nested in layers.values():
        if isinstance(nested, keras.Model):
            inner = _layer_output(nested, layer_name)
            if inner is not None:
                found.append((nested, inner))
    if len(found) > 1:
        owners = [nested.name for nested, _ in found]
        raise ValueError(
            f"The nested models {owners} of '{model.name}' all have a layer '{layer_name}'; "
            f"name one as '{owners[0]}/{layer_name}'."
        )
    return _through(model, *found[0]) if found else None


def _through(model, nested, inner_output):
    """``inner_output`` (a tensor of the nested model ``nested``) on ``model``'s inputs."""
    arguments = _call_of(model, nested).arguments
    call_inputs = arguments.args[0] if arguments.args else arguments.kwargs["inputs"]
    probe = keras.Model(list(_graph(nested).inputs), inner_output)
    return probe(keras.tree.flatten(call_inputs))


def _call_of(model, layer):
    """The node of ``model``'s graph where ``layer`` is called (there must be one)."""
    calls = [node for nodes in _graph(model)._nodes_by_depth.values() for node in nodes if node.operation is layer]
    if len(calls) != 1:
        raise ValueError(
            f"Layer '{layer.name}' is called {len(calls)} times in model '{model.name}'; "
            "which call to log is ambiguous."
        )
    return calls[0]


def _graph(model):
    return getattr(model, "_functional", None) or model  # a Sequential keeps its graph there


def _overlay_figure(images, maps, title):
    """Images (top row) and the maps over them (bottom row), on one symmetric colour scale."""
    count = len(images)
    limit = max(float(np.abs(maps).max()), 1e-6)
    figure = Figure(figsize=(2.5 * count + 1.0, 5.2))
    axes = np.asarray(figure.subplots(2, count, squeeze=False))
    for column, (image, attention) in enumerate(zip(images, maps, strict=False)):
        grey = image.mean(axis=-1)
        grey = (grey - grey.min()) / max(float(grey.max() - grey.min()), 1e-12)
        for row in (0, 1):
            axes[row, column].imshow(grey, cmap="gray", vmin=0.0, vmax=1.0)
            axes[row, column].set_axis_off()
        overlay = axes[1, column].imshow(attention, cmap="coolwarm", vmin=-limit, vmax=limit, alpha=0.6)
        axes[0, column].set_title(f"image {column}")
    label = f"attention (scale ±{limit:.2g})"
    figure.colorbar(overlay, ax=axes.ravel().tolist(), fraction=0.04, label=label)
    figure.suptitle(title)
    return figure
