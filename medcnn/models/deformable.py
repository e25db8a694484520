"""Deformable convolution (Dai et al. 2017, v1; optional v2 modulation, Zhu et al. 2019), in `keras.ops` only.

Used by the chromosome ablation (`medcnn.models.blocks`): one of the layers the study lists as worth trying.
"""

import keras
from keras import layers, ops

PADDINGS = ("same", "valid")


def _pair(value, name):
    """`value` as a pair of positive ints, or a ValueError that names `name`."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"`{name}` must be a positive int or a pair of positive ints. Received: {name}={value!r}")
    return pair


def _output_length(length, kernel, stride, padding):
    """Output length of a convolution along one axis, as Keras' Conv2D computes it."""
    if length is None:
        return None
    if padding == "same":
        return -(-length // stride)
    return (length - kernel) // stride + 1


@keras.saving.register_keras_serializable(package="medcnn")
class DeformableConv2D(layers.Layer):
    """2D deformable convolution: each kernel tap samples the input at a learned offset.

    A plain convolution `offsets` (initialised to zero) predicts, for every output position, a (dy, dx) offset per
    kernel tap: `2 * kh * kw` channels, ordered tap by tap (tap `k = a * kw + b`, row `a`, column `b`). The input
    is sampled at `(i * stride - pad_top + a + dy, j * stride - pad_left + b + dx)` with bilinear interpolation,
    reading zero outside the image (as zero padding does), and the kernel is applied to the samples. With zero
    offsets the layer is exactly a `keras.layers.Conv2D` with the same kernel, bias, strides and padding, so
    training starts from a plain convolution.

    With `modulated=True` (deformable ConvNets v2) the offset convolution also predicts one modulation scalar per
    tap, passed through a sigmoid (0.5 at initialisation, as in the paper) and multiplied into each sample.

    Sampling runs in float32 whatever the dtype policy, so positions stay exact on large images under mixed
    precision. Memory grows as `batch * out_h * out_w * kh * kw * channels`: use it on small feature maps.

    Args:
        filters: int > 0, number of output channels.
        kernel_size: int or pair of ints, the kernel's height and width.
        strides: int or pair of ints, defaults to 1.
        padding: "same" (Keras' Conv2D rule: output `ceil(size / stride)`) or "valid". Defaults to "same".
        activation: activation name or callable applied to the output, defaults to None (linear).
        use_bias: whether the convolution adds a bias. Defaults to True.
        modulated: add v2 modulation. Defaults to False (v1).
        kernel_initializer, kernel_regularizer: for the main kernel, as in Conv2D.

    Inputs: 4D (NHWC) float tensor.
    Output: 4D (N, out_h, out_w, filters).

    Example:
    >>> layer = DeformableConv2D(8, 3)
    >>> layer(np.zeros((2, 16, 16, 3))).shape
    (2, 16, 16, 8)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="same",
        activation=None,
        use_bias=True,
        modulated=False,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not (isinstance(filters, int) and filters > 0):
            raise ValueError(f"`filters` must be a positive int. Received: filters={filters!r}")
        if padding not in PADDINGS:
            raise ValueError(f"`padding` must be one of {PADDINGS}. Received: padding={padding!r}")
        self.filters = filters
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = padding
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.modulated = bool(modulated)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        taps = self.kernel_size[0] * self.kernel_size[1]
        self.offset_conv = layers.Conv2D(
            (3 if self.modulated else 2) * taps,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            kernel_initializer="zeros",
            bias_initializer="zeros",
            dtype="float32",
            name="offsets",
        )

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"The channel dimension of the inputs must be known. Received: input_shape={input_shape}")
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, channels, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None
        self.offset_conv.build(input_shape)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return (
            batch,
            _output_length(height, kh, sh, self.padding),
            _output_length(width, kw, sw, self.padding),
            self.filters,
        )

    def _grid(self, height, width, out_height, out_width):
        """Integer sampling positions of the undeformed kernel: rows (out_h, 1, K) and columns (1, out_w, K)."""
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        if self.padding == "same":
            pad_top = ops.maximum((out_height - 1) * sh + kh - height, 0) // 2
            pad_left = ops.maximum((out_width - 1) * sw + kw - width, 0) // 2
        else:
            pad_top = pad_left = 0
        tap_rows = ops.repeat(ops.arange(kh), kw)  # tap k = a * kw + b -> a
        tap_cols = ops.tile(ops.arange(kw), [kh])  # -> b
        rows = ops.arange(out_height) * sh - pad_top
        cols = ops.arange(out_width) * sw - pad_left
        grid_rows = ops.cast(rows[:, None, None] + tap_rows[None, None, :], "float32")
        grid_cols = ops.cast(cols[None, :, None] + tap_cols[None, None, :], "float32")
        return grid_rows, grid_cols

    def call(self, inputs):
        images = ops.cast(inputs, "float32")
        shape = ops.shape(images)
        batch, height, width, channels = shape[0], shape[1], shape[2], inputs.shape[-1]
        taps = self.kernel_size[0] * self.kernel_size[1]

        predicted = self.offset_conv(images)  # (N, out_h, out_w, 2K [+ K])
        out_shape = ops.shape(predicted)
        out_height, out_width = out_shape[1], out_shape[2]
        offsets = ops.reshape(predicted[..., : 2 * taps], (batch, out_height, out_width, taps, 2))
        grid_rows, grid_cols = self._grid(height, width, out_height, out_width)
        rows = grid_rows + offsets[..., 0]  # (N, out_h, out_w, K)
        cols = grid_cols + offsets[..., 1]

        # Bilinear sampling: four neighbours, each weighted by the opposite area; zero outside the image.
        row0, col0 = ops.floor(rows), ops.floor(cols)
        row_frac, col_frac = rows - row0, cols - col0
        flat_images = ops.reshape(images, (-1, channels))  # (N * H * W, C)
        batch_base = ops.reshape(ops.arange(batch) * height * width, (-1, 1, 1, 1))
        sampled = 0.0
        for row_step, row_weight in ((0.0, 1.0 - row_frac), (1.0, row_frac)):
            for col_step, col_weight in ((0.0, 1.0 - col_frac), (1.0, col_frac)):
                sample_row, sample_col = row0 + row_step, col0 + col_step
                inside = (
                    (sample_row >= 0)
                    & (sample_row <= ops.cast(height - 1, "float32"))
                    & (sample_col >= 0)
                    & (sample_col <= ops.cast(width - 1, "float32"))
                )
                row_index = ops.clip(ops.cast(sample_row, "int32"), 0, height - 1)
                col_index = ops.clip(ops.cast(sample_col, "int32"), 0, width - 1)
                index = batch_base + row_index * width + col_index  # (N, out_h, out_w, K)
                values = ops.take(flat_images, ops.reshape(index, (-1,)), axis=0)
                weight = row_weight * col_weight * ops.cast(inside, "float32")
                sampled = sampled + values * ops.reshape(weight, (-1, 1))
        if self.modulated:
            sampled = sampled * ops.reshape(ops.sigmoid(predicted[..., 2 * taps :]), (-1, 1))

        # (N * out_h * out_w * K, C) -> (N, out_h, out_w, K * C), matching the kernel's (kh, kw, C) flattening.
        columns = ops.reshape(ops.cast(sampled, self.compute_dtype), (batch, out_height, out_width, taps * channels))
        outputs = ops.matmul(columns, ops.reshape(self.kernel, (taps * channels, self.filters)))
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def get_config(self):
        config = {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "modulated": self.modulated,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        }
        return {**super().get_config(), **config}
