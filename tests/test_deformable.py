import keras
import numpy as np
import pytest

from medcnn.models.deformable import DeformableConv2D


def _pair(filters=4, kernel_size=3, strides=1, padding="same", input_shape=(2, 9, 11, 3), seed=0):
    """A DeformableConv2D and a Conv2D sharing one random kernel and bias."""
    rng = np.random.default_rng(seed)
    deformable = DeformableConv2D(filters, kernel_size, strides=strides, padding=padding)
    deformable.build(input_shape)
    conv = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding)
    conv.build(input_shape)
    kernel = rng.normal(size=tuple(deformable.kernel.shape)).astype("float32")
    bias = rng.normal(size=filters).astype("float32")
    deformable.kernel.assign(kernel)
    deformable.bias.assign(bias)
    conv.set_weights([kernel, bias])
    images = rng.normal(size=input_shape).astype("float32")
    return deformable, conv, images


def _set_constant_offsets(layer, dy, dx):
    """Offsets conv with zero kernel and bias (dy, dx) for every tap."""
    kernel, bias = layer.offset_conv.get_weights()
    bias = np.tile(np.array([dy, dx], dtype="float32"), bias.shape[0] // 2)
    layer.offset_conv.set_weights([np.zeros_like(kernel), bias])


@pytest.mark.parametrize("strides, padding", [(1, "same"), (2, "same"), (1, "valid"), (2, "valid")])
def test_zero_offsets_equal_conv2d(strides, padding):
    deformable, conv, images = _pair(strides=strides, padding=padding)
    expected = keras.ops.convert_to_numpy(conv(images))
    output = keras.ops.convert_to_numpy(deformable(images))
    assert output.shape == expected.shape
    np.testing.assert_allclose(output, expected, atol=1e-5)


def test_offsets_start_at_zero():
    layer = DeformableConv2D(2, 3)
    layer.build((1, 8, 8, 1))
    assert all(not np.any(weight) for weight in layer.offset_conv.get_weights())
    assert layer.offset_conv.kernel.shape == (3, 3, 1, 18)  # 2 * 3 * 3 offsets


@pytest.mark.parametrize("dy, dx", [(1, 0), (0, -2), (2, 1)])
def test_constant_integer_offset_is_a_shifted_convolution(dy, dx):
    deformable, conv, images = _pair(input_shape=(2, 10, 12, 3))
    _set_constant_offsets(deformable, dy, dx)
    output = keras.ops.convert_to_numpy(deformable(images))
    expected = keras.ops.convert_to_numpy(conv(images))
    height, width = images.shape[1:3]
    # output(i, j) == conv(i + dy, j + dx) wherever (i + dy, j + dx) is inside the image
    rows = slice(max(0, -dy), height - max(0, dy))
    cols = slice(max(0, -dx), width - max(0, dx))
    shifted_rows = slice(rows.start + dy, rows.stop + dy)
    shifted_cols = slice(cols.start + dx, cols.stop + dx)
    np.testing.assert_allclose(output[:, rows, cols], expected[:, shifted_rows, shifted_cols], atol=1e-5)


def test_half_pixel_offset_interpolates_bilinearly():
    deformable, conv, images = _pair(input_shape=(1, 8, 8, 2))
    _set_constant_offsets(deformable, 0.5, 0.0)
    output = keras.ops.convert_to_numpy(deformable(images))
    expected = keras.ops.convert_to_numpy(conv(images))
    # the kernel is linear, so sampling halfway between rows gives the mean of the two rows' outputs
    np.testing.assert_allclose(output[:, :-1], 0.5 * (expected[:, :-1] + expected[:, 1:]), atol=1e-5)


def test_modulated_starts_at_half_the_convolution():
    layer = DeformableConv2D(3, 3, use_bias=False, modulated=True)
    images = np.random.default_rng(1).normal(size=(1, 6, 6, 2)).astype("float32")
    layer.build(images.shape)
    conv = keras.layers.Conv2D(3, 3, padding="same", use_bias=False)
    conv.build(images.shape)
    conv.set_weights([keras.ops.convert_to_numpy(layer.kernel)])
    assert layer.offset_conv.kernel.shape[-1] == 27  # 2 * 9 offsets + 9 modulation scalars
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(images)), 0.5 * keras.ops.convert_to_numpy(conv(images)), atol=1e-5
    )


def test_mixed_precision_keeps_sampling_in_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = DeformableConv2D(4, 3)
        output = layer(np.random.default_rng(0).normal(size=(1, 6, 6, 2)).astype("float32"))
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(output.dtype) == "bfloat16"
    assert layer.offset_conv.compute_dtype == "float32"


def test_gradients_reach_the_offset_conv():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.GlobalAveragePooling2D()(DeformableConv2D(4, 3, name="deformable")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(outputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", run_eagerly=True)
    model.train_on_batch(rng.normal(size=(8, 8, 8, 1)), rng.normal(size=(8, 1)))
    offset_kernel, offset_bias = model.get_layer("deformable").offset_conv.get_weights()
    assert np.abs(offset_kernel).max() > 0
    assert np.abs(offset_bias).max() > 0


def test_get_config_round_trip_and_saved_model(tmp_path):
    layer = DeformableConv2D(5, (3, 2), strides=2, padding="valid", activation="relu", modulated=True, name="d")
    config = layer.get_config()
    clone = DeformableConv2D.from_config(config)
    assert clone.get_config() == config
    assert (config["kernel_size"], config["strides"], config["activation"]) == ((3, 2), (2, 2), "relu")

    inputs = keras.Input((9, 9, 2))
    model = keras.Model(inputs, layer(inputs))
    images = np.random.default_rng(2).normal(size=(2, 9, 9, 2)).astype("float32")
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert reloaded.output_shape == (None, 4, 4, 5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(images)), keras.ops.convert_to_numpy(model(images)), atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"filters": 0, "kernel_size": 3}, "`filters` must be a positive int"),
        ({"filters": 2, "kernel_size": (3,)}, "`kernel_size` must be a positive int or a pair"),
        ({"filters": 2, "kernel_size": 3, "padding": "causal"}, "`padding` must be one of"),
        ({"filters": 2, "kernel_size": 3, "strides": 0}, "`strides` must be a positive int"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeformableConv2D(**kwargs)
