"""medcnn.augment: fixed operations against independent NumPy/SciPy results, then the layers' contract."""

import keras
import numpy as np
import pytest
from keras import layers
from scipy import ndimage

from medcnn import augment
from medcnn.augment import (
    GaussianBlur,
    RandomCentralZoom,
    RandomGaussianNoise,
    RandomPixelNoise,
    central_crop_resize,
    gaussian_blur,
    scatter_pixels,
)

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (8, 12, 10, 3)).astype("float32")


def numpy(x):
    return keras.ops.convert_to_numpy(x)


# ---------------------------------------------------------------- fixed operations


@pytest.mark.parametrize("sigma", [0.1, 0.7, 1.5])
def test_gaussian_blur_matches_scipy(sigma):
    blurred = numpy(gaussian_blur(IMAGES[:2], sigma, kernel_size=5))
    for image, result in zip(IMAGES[:2], blurred):
        expected = ndimage.gaussian_filter(image, (sigma, sigma, 0), mode="mirror", truncate=2.0 / sigma)
        np.testing.assert_allclose(result, expected, atol=1e-3)


def test_gaussian_blur_uses_one_sigma_per_image():
    sigmas = np.array([0.3, 1.2], dtype="float32")
    blurred = numpy(gaussian_blur(IMAGES[:2], sigmas, kernel_size=7))
    for image, sigma, result in zip(IMAGES[:2], sigmas, blurred):
        expected = ndimage.gaussian_filter(image, (sigma, sigma, 0), mode="mirror", truncate=3.0 / sigma)
        np.testing.assert_allclose(result, expected, atol=1e-3)


def test_gaussian_blur_accepts_hwc():
    result = numpy(gaussian_blur(IMAGES[0], 1.0))
    np.testing.assert_allclose(result, numpy(gaussian_blur(IMAGES[:1], 1.0))[0], atol=1e-4)


def test_central_crop_resize_matches_scipy_affine():
    fraction = 0.6
    result = numpy(central_crop_resize(IMAGES[:1], fraction))[0]
    height, width = IMAGES.shape[1:3]
    # Output pixel (y, x) samples input (f y + (1 - f)(H - 1)/2, f x + (1 - f)(W - 1)/2), bilinear.
    expected = ndimage.affine_transform(
        IMAGES[0],
        np.diag([fraction, fraction, 1.0]),
        offset=[(1 - fraction) * (height - 1) / 2, (1 - fraction) * (width - 1) / 2, 0],
        order=1,
        mode="nearest",
    )
    np.testing.assert_allclose(result, expected, atol=1e-3)


def test_central_crop_resize_is_crop_then_resize_inside_the_border():
    image = np.arange(8 * 8, dtype="float32").reshape(1, 8, 8, 1)
    result = numpy(central_crop_resize(image, 0.5))
    expected = numpy(keras.ops.image.resize(image[:, 2:6, 2:6], (8, 8), antialias=False))
    np.testing.assert_allclose(result[:, 1:-1, 1:-1], expected[:, 1:-1, 1:-1], atol=1e-4)


def test_central_crop_resize_full_fraction_is_identity():
    np.testing.assert_allclose(numpy(central_crop_resize(IMAGES, 1.0)), IMAGES, atol=1e-4)


def test_scatter_pixels_sets_only_used_positions():
    images = np.zeros((2, 3, 4, 2), "float32")
    positions = np.array([[0, 5], [11, 2]])
    values = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], "float32")
    used = np.array([[True, False], [True, True]])
    result = numpy(scatter_pixels(images, positions, values, used))
    expected = images.copy()
    expected[0, 0, 0] = [1, 2]
    expected[1, 2, 3] = [5, 6]
    expected[1, 0, 2] = [7, 8]
    np.testing.assert_array_equal(result, expected)


# ---------------------------------------------------------------- the layers' contract

LAYERS = [
    ("pixel_noise", RandomPixelNoise, {"max_fraction": 0.2}),
    ("blur", GaussianBlur, {"sigma": (0.5, 1.5), "probability": 1.0}),
    ("central_zoom", RandomCentralZoom, {"probability": 1.0, "fraction": (0.5, 0.9)}),
    ("gaussian_noise", RandomGaussianNoise, {"stddev": 0.1}),
]
IDS = [case[0] for case in LAYERS]


@pytest.mark.parametrize("name, cls, kwargs", LAYERS, ids=IDS)
def test_inference_is_identity(name, cls, kwargs):
    layer = cls(**kwargs, seed=1)
    np.testing.assert_array_equal(numpy(layer(IMAGES, training=False)), IMAGES)
    np.testing.assert_array_equal(numpy(layer(IMAGES)), IMAGES)


@pytest.mark.parametrize("name, cls, kwargs", LAYERS, ids=IDS)
@pytest.mark.parametrize("images", [IMAGES, IMAGES[0]], ids=["nhwc", "hwc"])
def test_training_changes_images_and_keeps_shape_dtype_range(name, cls, kwargs, images):
    result = numpy(cls(**kwargs, seed=1)(images, training=True))
    assert result.shape == images.shape and result.dtype == np.float32
    assert 0.0 <= result.min() and result.max() <= 255.0
    assert not np.allclose(result, images)


@pytest.mark.parametrize("name, cls, kwargs", LAYERS, ids=IDS)
def test_same_seed_same_output_other_seed_other_output(name, cls, kwargs):
    first = numpy(cls(**kwargs, seed=3)(IMAGES, training=True))
    again = numpy(cls(**kwargs, seed=3)(IMAGES, training=True))
    other = numpy(cls(**kwargs, seed=4)(IMAGES, training=True))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("name, cls, kwargs", LAYERS, ids=IDS)
def test_config_round_trip(name, cls, kwargs):
    layer = cls(**kwargs, seed=5, name=f"my_{name}")
    config = layer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is cls and restored.get_config() == config
    np.testing.assert_array_equal(numpy(clone(IMAGES, training=True)), numpy(layer(IMAGES, training=True)))


@pytest.mark.parametrize("name, cls, kwargs", LAYERS, ids=IDS)
def test_runs_in_tf_data_map(name, cls, kwargs):
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("medcnn layers run in tf.data under the TensorFlow backend only (see medcnn.augment)")
    layer = cls(**kwargs, seed=1)
    dataset = tf.data.Dataset.from_tensor_slices(IMAGES).batch(3).map(lambda x: layer(x, training=True))
    batches = [batch.numpy() for batch in dataset]
    assert [len(batch) for batch in batches] == [3, 3, 2]
    assert not np.allclose(np.concatenate(batches), IMAGES)


def test_model_with_all_layers_saves_and_reloads(tmp_path):
    inputs = keras.Input((12, 10, 3))
    x = inputs
    for name, cls, kwargs in LAYERS:
        x = cls(**kwargs, seed=2, name=name)(x)
    x = augment.order_preserving(seed=7)(x)
    outputs = layers.Dense(2)(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(IMAGES, verbose=0), model.predict(IMAGES, verbose=0), atol=1e-5)
    for name, cls, _ in LAYERS:
        assert type(reloaded.get_layer(name)) is cls
        assert reloaded.get_layer(name).get_config() == model.get_layer(name).get_config()


# ---------------------------------------------------------------- what each layer does


def test_pixel_noise_changes_at_most_max_fraction_of_pixels():
    flat = np.full((16, 20, 20, 1), 100.0, "float32")
    result = numpy(RandomPixelNoise(max_fraction=0.05, seed=0)(flat, training=True))
    changed = (result != flat).reshape(16, -1).mean(axis=1)
    assert changed.max() <= 0.05
    assert changed.max() > 0.0 and len(np.unique(changed)) > 1  # a random share per image


def test_pixel_noise_zero_fraction_changes_nothing():
    np.testing.assert_array_equal(numpy(RandomPixelNoise(0.0, seed=0)(IMAGES, training=True)), IMAGES)


def test_pixel_noise_new_values_span_the_value_range():
    flat = np.full((8, 32, 32, 1), 0.5, "float32")
    result = numpy(RandomPixelNoise(max_fraction=1.0, value_range=(0, 1), seed=0)(flat, training=True))
    new = result[result != 0.5]
    assert 0.0 <= new.min() < 0.1 and 0.9 < new.max() <= 1.0


def test_blur_probability_decides_per_image():
    never = GaussianBlur(probability=0.0, seed=0)(IMAGES, training=True)
    np.testing.assert_array_equal(numpy(never), IMAGES)
    some = numpy(GaussianBlur(probability=0.5, seed=0)(np.repeat(IMAGES[:1], 16, axis=0), training=True))
    blurred = ~np.all(some == IMAGES[:1], axis=(1, 2, 3))
    assert 0 < blurred.sum() < 16


def test_blur_draws_sigma_per_image():
    same = np.repeat(IMAGES[:1], 4, axis=0)
    result = numpy(GaussianBlur(sigma=(0.3, 1.5), probability=1.0, seed=0)(same, training=True))
    assert not np.allclose(result[0], result[1]) and not np.allclose(result[2], result[3])


def test_central_zoom_applies_the_fixed_operation():
    layer = RandomCentralZoom(probability=1.0, fraction=0.5, seed=0)
    np.testing.assert_allclose(numpy(layer(IMAGES, training=True)), numpy(central_crop_resize(IMAGES, 0.5)), atol=1e-4)


def test_central_zoom_probability_leaves_some_images_untouched():
    result = numpy(RandomCentralZoom(probability=0.5, seed=0)(np.repeat(IMAGES[:1], 16, axis=0), training=True))
    untouched = np.all(result == IMAGES[:1], axis=(1, 2, 3))
    assert 0 < untouched.sum() < 16


def test_gaussian_noise_scales_with_the_value_range_and_clips():
    gray = np.full((4, 32, 32, 1), 0.5, "float32")
    result = numpy(RandomGaussianNoise(stddev=0.02, value_range=(0, 1), seed=0)(gray, training=True))
    assert abs((result - gray).std() - 0.02) < 0.002
    edges = np.full((4, 32, 32, 1), 255.0, "float32")
    clipped = numpy(RandomGaussianNoise(stddev=0.1, seed=0)(edges, training=True))
    assert clipped.max() == 255.0 and clipped.min() < 255.0


# ---------------------------------------------------------------- argument errors

ERRORS = [
    (
        RandomPixelNoise,
        {"max_fraction": 1.5},
        "`max_fraction` must be a number between 0 and 1. Received: max_fraction=1.5",
    ),
    (
        RandomPixelNoise,
        {"value_range": (255, 0)},
        r"`value_range` argument should be a list of two numbers.*Received: value_range=\(255, 0\)",
    ),
    (
        RandomGaussianNoise,
        {"value_range": [0]},
        r"`value_range` argument should be a list.*Received: value_range=\[0\]",
    ),
    (RandomGaussianNoise, {"stddev": -0.1}, r"`stddev` must be a number between 0 and 1. Received: stddev=-0.1"),
    (GaussianBlur, {"sigma": 0}, r"`sigma` must be a number or a pair of numbers in \(0.0, inf\]. Received: sigma=0"),
    (GaussianBlur, {"sigma": (0.5, 1, 2)}, r"`sigma` must be a number or a pair.*Received: sigma=\(0.5, 1, 2\)"),
    (GaussianBlur, {"kernel_size": 4}, r"`kernel_size` must be an odd positive int, e.g. 5. Received: kernel_size=4"),
    (GaussianBlur, {"probability": 2}, r"`probability` must be a number between 0 and 1. Received: probability=2"),
    (RandomCentralZoom, {"fraction": (0.0, 0.5)}, r"`fraction` must be a number or a pair of numbers in \(0.0, 1.0\]"),
    (
        RandomCentralZoom,
        {"probability": -1},
        r"`probability` must be a number between 0 and 1. Received: probability=-1",
    ),
    (RandomCentralZoom, {"interpolation": "bicubic"}, r"`interpolation` must be 'bilinear' or 'nearest'"),
]


@pytest.mark.parametrize("cls, kwargs, message", ERRORS, ids=[f"{c.__name__}-{next(iter(k))}" for c, k, _ in ERRORS])
def test_invalid_arguments_raise(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_input_rank_incorrect():
    with pytest.raises(ValueError, match=r"Expected the input image to be rank 3 \(HWC\) or 4 \(NHWC\)"):
        GaussianBlur(seed=0)(np.zeros((2, 2, 8, 8, 1), "float32"), training=True)


def test_blur_image_smaller_than_kernel():
    with pytest.raises(ValueError, match="Images must be larger than kernel_size // 2 = 2 pixels"):
        GaussianBlur(probability=1.0, seed=0)(np.zeros((1, 2, 8, 1), "float32"), training=True)


# ---------------------------------------------------------------- presets and helpers

PRESET_LAYERS = {
    "order_preserving": ["RandomBrightness", "RandomPixelNoise", "GaussianBlur"],
    "geometric_and_zoom": ["RandomRotation", "RandomFlip", "RandomZoom", "RandomCentralZoom"],
    "rotation_flip_zoom_brightness_noise": [
        "RandomRotation",
        "RandomFlip",
        "RandomZoom",
        "RandomBrightness",
        "RandomGaussianNoise",
    ],
}


@pytest.mark.parametrize("name", sorted(PRESET_LAYERS))
def test_preset_layers_and_behaviour(name):
    preset = augment.PRESETS[name](seed=0)
    assert isinstance(preset, keras.Sequential) and preset.name == name
    assert [type(layer).__name__ for layer in preset.layers] == PRESET_LAYERS[name]
    result = numpy(preset(IMAGES, training=True))
    assert result.shape == IMAGES.shape and 0 <= result.min() and result.max() <= 255
    assert not np.allclose(result, IMAGES)
    np.testing.assert_array_equal(numpy(preset(IMAGES, training=False)), IMAGES)
    np.testing.assert_array_equal(result, numpy(augment.PRESETS[name](seed=0)(IMAGES, training=True)))


def test_order_preserving_keeps_layout():
    """No geometry: a bright square stays where it was."""
    image = np.zeros((4, 16, 16, 1), "float32")
    image[:, 2:6, 9:13] = 200.0
    result = numpy(augment.order_preserving(brightness=0.1, pixel_noise=0.0, seed=0)(image, training=True))
    inside, outside = result[:, 3:5, 10:12].mean(), result[:, 8:, :8].mean()
    assert inside > outside + 100


def test_with_seed_restarts_the_random_state():
    preset = augment.rotation_flip_zoom_brightness_noise(seed=None)
    preset(IMAGES, training=True)  # advance the original's state
    first = numpy(augment.with_seed(preset, 11)(IMAGES, training=True))
    second = numpy(augment.with_seed(preset, 11)(IMAGES, training=True))
    other = numpy(augment.with_seed(preset, 12)(IMAGES, training=True))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_preview_gives_distinct_versions_of_one_image():
    grid = augment.preview(augment.geometric_and_zoom(seed=0), IMAGES[0], count=9)
    assert grid.shape == (9, *IMAGES.shape[1:]) and grid.dtype == np.float32
    assert len({grid[i].tobytes() for i in range(9)}) == 9
    with pytest.raises(ValueError, match=r"`image` must be one HWC image. Received: image.shape=\(8, 12, 10, 3\)"):
        augment.preview(augment.geometric_and_zoom(seed=0), IMAGES)
