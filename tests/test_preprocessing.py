import numpy as np
import pytest
from PIL import Image

import keras

from medcnn.preprocessing import ClassNames, ImagePreprocessing, class_names_of, with_preprocessing


def test_grayscale_matches_pillow_luma_and_scale():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    out = keras.ops.convert_to_numpy(ImagePreprocessing((8, 8), "grayscale")(image))
    expected = np.asarray(Image.fromarray(image[0]).convert("L"), dtype=np.float32) / 255.0
    assert out.shape == (1, 8, 8, 1)
    np.testing.assert_allclose(out[0, ..., 0], expected, atol=1.5 / 255)


def test_resizes_any_input_size():
    layer = ImagePreprocessing((10, 12), "rgb", scale=1.0)
    out = layer(np.full((2, 40, 30, 1), 200, dtype=np.uint8))
    assert out.shape == (2, 10, 12, 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), 200.0, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, stem",
    [
        ({"size": (0, 5)}, r"`size` must be a pair of positive ints, e.g. \(100, 100\). Received: size=\(0, 5\)"),
        (
            {"size": (5, 5), "color_mode": "hsv"},
            r"`color_mode` must be one of \('grayscale', 'rgb'\). Received: color_mode='hsv'",
        ),
    ],
)
def test_bad_arguments(kwargs, stem):
    with pytest.raises(ValueError, match=stem):
        ImagePreprocessing(**kwargs)


def test_class_names_layer_validates():
    with pytest.raises(ValueError, match="`class_names` must be a non-empty list of strings"):
        ClassNames([])


def test_wrapped_model_saves_and_reloads_with_class_names(tmp_path):
    core = keras.Sequential(
        [keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")]
    )
    model = with_preprocessing(core, ImagePreprocessing((6, 6), "grayscale"), ["a", "b", "c"])
    raw = np.random.default_rng(1).integers(0, 256, (2, 20, 20, 3)).astype("float32")
    before = keras.ops.convert_to_numpy(model(raw))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert class_names_of(loaded) == ["a", "b", "c"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(raw)), before, atol=1e-6)


def test_preprocess_images_in_batches_equals_the_layer_on_the_whole_array():
    from medcnn.preprocessing import ImagePreprocessing, preprocess_images

    images = np.random.default_rng(0).integers(0, 256, (5, 12, 10, 3)).astype("uint8")
    layer = ImagePreprocessing((6, 5), "grayscale", scale=1.0 / 255.0)
    batched = preprocess_images(images, layer, batch_size=2)
    assert batched.shape == (5, 6, 5, 1) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, np.asarray(layer(images)), atol=1e-6)


def _dark_bar_on_white():
    """A 40x8 white image (255) holding a dark 40x4 bar (value 0) in columns 2..5: long and thin, like a crop."""
    image = np.full((1, 40, 8, 3), 255, dtype=np.uint8)
    image[:, :, 2:6] = 0
    return image


def test_pad_to_aspect_ratio_keeps_the_shape_and_pads_with_fill_value():
    stretched = keras.ops.convert_to_numpy(ImagePreprocessing((20, 20), "grayscale", scale=1.0)(_dark_bar_on_white()))
    padded = keras.ops.convert_to_numpy(
        ImagePreprocessing((20, 20), "grayscale", scale=1.0, pad_to_aspect_ratio=True, fill_value=255)(
            _dark_bar_on_white()
        )
    )
    # stretched: the bar fills the middle half of the width
    assert stretched[0, :, 6:14, 0].max() < 1.0 and stretched[0, :, :4, 0].min() > 254.0
    # padded: the same as stretching the crop centred on a white 40x40 canvas (16 white columns each side)
    canvas = np.full((1, 40, 40, 3), 255, dtype=np.uint8)
    canvas[:, :, 16:24] = _dark_bar_on_white()
    expected = keras.ops.convert_to_numpy(ImagePreprocessing((20, 20), "grayscale", scale=1.0)(canvas))
    np.testing.assert_allclose(padded, expected, atol=1e-3)
    # a 2-px bar in columns 9..10 (blurred by the antialiased halving), white elsewhere
    assert padded[0, :, 9:11, 0].max() < 64.0
    np.testing.assert_allclose(padded[0, :, :8], 255.0, atol=0.5)
    np.testing.assert_allclose(padded[0, :, 12:], 255.0, atol=0.5)


def test_invert_maps_white_to_zero_after_padding():
    options = {"pad_to_aspect_ratio": True, "fill_value": 255}
    plain = keras.ops.convert_to_numpy(ImagePreprocessing((20, 20), "grayscale", **options)(_dark_bar_on_white()))
    inverted = ImagePreprocessing((20, 20), "grayscale", invert=True, **options)(_dark_bar_on_white())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(inverted), 1.0 - plain, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(inverted)[0, :, :8], 0.0, atol=1e-3)  # white padding -> 0


def test_padding_options_round_trip_in_a_saved_model(tmp_path):
    layer = ImagePreprocessing((20, 10), "grayscale", pad_to_aspect_ratio=True, fill_value=255.0, invert=True)
    assert ImagePreprocessing.from_config(layer.get_config()).get_config() == layer.get_config()
    core = keras.Sequential([keras.Input((20, 10, 1)), keras.layers.Flatten(), keras.layers.Dense(2, "softmax")])
    model = with_preprocessing(core, layer, ["a", "b"])
    before = keras.ops.convert_to_numpy(model(_dark_bar_on_white().astype("float32")))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(_dark_bar_on_white().astype("float32"))), before)


def test_fill_value_out_of_range():
    with pytest.raises(ValueError, match=r"`fill_value` must be a number in \[0, 255\].*Received: fill_value=300"):
        ImagePreprocessing((5, 5), fill_value=300)


def test_preprocess_any_sizes_batches_each_size_and_keeps_the_order():
    from medcnn.preprocessing import preprocess_any_sizes, preprocess_images

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, shape).astype("uint8") for shape in ((12, 10, 3), (8, 6, 3), (12, 10, 3))]
    layer = ImagePreprocessing((6, 5), "grayscale", scale=1.0 / 255.0)
    x = preprocess_any_sizes(images, layer)
    assert x.shape == (3, 6, 5, 1) and x.dtype == np.float32
    for image, row in zip(images, x):
        np.testing.assert_allclose(row, preprocess_images(image[None].astype("float32"), layer)[0], atol=1e-6)
