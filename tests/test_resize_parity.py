"""Train/serve parity: images a loader resizes equal what a saved model's preprocessing makes of the raw files.

Before one resize path existed, the loaders resized with Pillow (rounded to uint8) and the model with Keras, and
the same pbc file got probabilities up to 0.04 apart.
"""

import numpy as np
import pytest
from PIL import Image

import keras

from medcnn.data.loaders import decode_set, load_folders
from medcnn.predict import predict_files
from medcnn.preprocessing import ImagePreprocessing, with_preprocessing

SIZE = (96, 96)
TOLERANCE = 1e-5


def small_model(input_shape, classes):
    """An untrained CNN without pooling, so that every pixel reaches the probabilities."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def pbc_sample(shared_data):
    data = load_folders(shared_data / "pbc", decode=False)
    return data.subset(np.arange(0, len(data), len(data) // 12)[:12])  # 12 files, spread over the 8 classes


@pytest.mark.parametrize("color_mode", ["rgb", "grayscale"])
def test_loader_plus_inner_model_equals_predict_on_raw_files(pbc_sample, color_mode):
    channels = 3 if color_mode == "rgb" else 1
    inner = small_model((*SIZE, channels), len(pbc_sample.class_names))
    preprocessing = ImagePreprocessing(SIZE, color_mode)
    served_model = with_preprocessing(inner, preprocessing, pbc_sample.class_names)

    loaded = decode_set(pbc_sample, image_size=SIZE, color_mode=color_mode)
    assert loaded.images.shape == (12, *SIZE, channels) and loaded.images.dtype == np.float32
    assert SIZE[::-1] not in {Image.open(path).size for path in pbc_sample.paths}  # every file is resized
    from_loader = keras.ops.convert_to_numpy(inner(preprocessing(loaded.images)))

    rows = list(predict_files(served_model, pbc_sample.class_names, pbc_sample.paths))
    served = np.array([[row["probabilities"][name] for name in pbc_sample.class_names] for row in rows])
    np.testing.assert_allclose(from_loader, served, atol=TOLERANCE)

    # What the loaders did before: Pillow's bilinear resize, rounded to uint8. It moves the probabilities by ten
    # times the tolerance or more, so the check above would catch a second resize path.
    mode = "RGB" if color_mode == "rgb" else "L"
    pillow = np.stack(
        [
            np.asarray(Image.open(path).convert(mode).resize(SIZE[::-1], Image.Resampling.BILINEAR))
            for path in pbc_sample.paths
        ]
    ).reshape(loaded.images.shape)
    from_pillow = keras.ops.convert_to_numpy(inner(preprocessing(pillow)))
    assert np.abs(from_pillow - served).max() > 10 * TOLERANCE
