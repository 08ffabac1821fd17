"""A 2D locally connected layer (unshared convolution), removed from Keras 3."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="medfusion")
class LocallyConnected2D(keras.layers.Layer):
    """Convolution with a separate kernel at every output position.

    Keras 3 dropped `LocallyConnected2D`; this layer restores it with the weight
    layout of Keras 2's default implementation (``implementation=1``), so weight
    files written by Keras 2 load unchanged:

    - kernel: ``(out_rows * out_cols, kernel_rows * kernel_cols * in_channels, filters)``,
      where each patch is flattened in (row, column, channel) order;
    - bias: ``(out_rows, out_cols, filters)``.

    Only ``"valid"`` padding and channels-last inputs are supported (as in Keras 2).
    Because the weights depend on the input's spatial size, that size must be
    known when the layer is built.

    Args:
        filters: number of output channels.
        kernel_size: int or pair, the patch height and width.
        strides: int or pair, the step between patches.
        padding: only ``"valid"``.
        activation: activation name or callable applied to the output.
        use_bias: whether to add a per-position bias.
        kernel_initializer, bias_initializer: initializers for the weights.
        kernel_regularizer, bias_regularizer: optional regularizers.
        kernel_constraint, bias_constraint: optional constraints.
        **kwargs: base `keras.layers.Layer` arguments (``name``, ``dtype``...).

    Example:

    >>> import numpy as np
    >>> layer = LocallyConnected2D(1, 1, activation="tanh")
    >>> tuple(layer(np.zeros((2, 4, 4, 16), "float32")).shape)
    (2, 4, 4, 1)
    >>> [tuple(w.shape) for w in layer.weights]
    [(16, 16, 1), (4, 4, 1)]
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if padding != "valid":
            raise ValueError(f"LocallyConnected2D supports only padding='valid'; got padding={padding!r}.")
        if int(filters) < 1:
            raise ValueError(f"`filters` must be a positive integer; got {filters!r}.")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = padding
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _output_size(self, rows, cols):
        (k_rows, k_cols), (s_rows, s_cols) = self.kernel_size, self.strides
        if rows is None or cols is None:
            raise ValueError(
                "LocallyConnected2D needs a known spatial input size (its weights "
                f"depend on it); got rows={rows}, cols={cols}."
            )
        if rows < k_rows or cols < k_cols:
            raise ValueError(f"LocallyConnected2D: input {rows}x{cols} is smaller than the kernel {k_rows}x{k_cols}.")
        return (rows - k_rows) // s_rows + 1, (cols - k_cols) // s_cols + 1

    def build(self, input_shape):
        _, rows, cols, channels = input_shape
        out_rows, out_cols = self._output_size(rows, cols)
        k_rows, k_cols = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel",
            shape=(out_rows * out_cols, k_rows * k_cols * channels, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(out_rows, out_cols, self.filters),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def _patches(self, inputs, out_rows, out_cols):
        """Patches as (batch, positions, k_rows * k_cols * channels)."""
        (k_rows, k_cols), (s_rows, s_cols) = self.kernel_size, self.strides
        channels = inputs.shape[-1]
        if (k_rows, k_cols, s_rows, s_cols) == (1, 1, 1, 1):
            return ops.reshape(inputs, (-1, out_rows * out_cols, channels))
        shifted = [
            inputs[
                :,
                dr : dr + s_rows * (out_rows - 1) + 1 : s_rows,
                dc : dc + s_cols * (out_cols - 1) + 1 : s_cols,
                :,
            ]
            for dr in range(k_rows)
            for dc in range(k_cols)
        ]
        patches = ops.stack(shifted, axis=3)
        return ops.reshape(patches, (-1, out_rows * out_cols, k_rows * k_cols * channels))

    def call(self, inputs):
        out_rows, out_cols = self._output_size(inputs.shape[1], inputs.shape[2])
        patches = self._patches(inputs, out_rows, out_cols)
        if self.filters == 1:  # the attention maps: a multiply-and-sum beats a batched matmul of width 1
            outputs = ops.sum(patches * self.kernel[None, :, :, 0], axis=-1, keepdims=True)
        else:
            outputs = ops.einsum("bpk,pkf->bpf", patches, self.kernel)
        outputs = ops.reshape(outputs, (-1, out_rows, out_cols, self.filters))
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        out_rows, out_cols = self._output_size(input_shape[1], input_shape[2])
        return (input_shape[0], out_rows, out_cols, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            }
        )
        return config


def _pair(value, argument):
    """An int or a pair of positive ints as a tuple of two ints."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(int(v) < 1 for v in pair):
        raise ValueError(f"`{argument}` must be a positive int or a pair of them; got {value!r}.")
    return tuple(int(v) for v in pair)
