"""Preprocessing that travels inside a saved model, so that it predicts from raw image files.

`ImagePreprocessing` resizes, converts the colour mode and scales; `ClassNames` is an identity layer that stores
the class names with the model. `with_preprocessing` wraps a trained model with both.

`resize_images` and `match_color_mode` (from `medcnn.data.resize`) are the one resize and the one colour conversion
of medcnn: the layer uses them, and so do the loaders (`medcnn.data.imageio.read_image` through `resize_pixels`), so
that a loader asked for `image_size` returns the pixels the saved model computes from the raw file (no train/serve
skew).
"""

import keras
import numpy as np
from keras import layers, ops

from medcnn.data.imageio import check_color_mode

# The resize and colour conversion live with the loaders that share them; exported here too.
from medcnn.data.resize import RESIZE_INTERPOLATION as RESIZE_INTERPOLATION
from medcnn.data.resize import match_color_mode, resize_images
from medcnn.data.resize import resize_pixels as resize_pixels


@keras.saving.register_keras_serializable(package="medcnn")
class ImagePreprocessing(layers.Layer):
    """Resize to `size` (stretched, or padded to its aspect ratio), convert to grayscale or RGB, optionally invert,
    multiply by `scale`.

    Deterministic: it acts the same in training and at inference. Resizing and the colour conversion are
    `resize_images` and `match_color_mode`, which the loaders use too (`medcnn.data.imageio.read_image`), so images
    loaded at `size` give the same pixels as raw files given to the saved model. Grayscale uses ITU-R 601 luma
    weights (Keras' 0.2989, 0.587, 0.114; Pillow's "L" mode uses 0.299 and rounds).

    Args:
        size: `(height, width)` of the output, positive ints.
        color_mode: "grayscale" (1 output channel) or "rgb" (3); a 1-channel input is repeated for "rgb".
        scale: multiplier applied last, e.g. 1/255 to map [0, 255] to [0, 1]. Defaults to 1/255.
        interpolation: "bilinear" (default, the loaders' resize too), "nearest", "bicubic", ...; resizing is
            antialiased (`resize_images`).
        pad_to_aspect_ratio: False (default) stretches each image to `size`; True first pads it, centred, to the
            aspect ratio of `size` with `fill_value`, so a long thin object (a chromosome crop) keeps its shape.
        fill_value: the padding value in input units, [0, 255]: 0 pads with black, 255 with white (the background
            of G-banded chromosome crops). Defaults to 0.
        invert: replace each value v by 255 - v after resizing, so dark objects on a white background become
            bright objects on a black one (as zero padding inside a CNN expects). Defaults to False.

    Inputs: 4D (NHWC) images of any height and width, 1 or 3 channels, values in [0, 255].
    Output: 4D (N, height, width, 1 or 3) float32 values in [0, 255 * scale].

    Example:
    >>> layer = ImagePreprocessing((100, 100), "grayscale")
    >>> layer(np.zeros((2, 224, 224, 3))).shape
    (2, 100, 100, 1)
    """

    def __init__(
        self,
        size,
        color_mode="grayscale",
        scale=1.0 / 255.0,
        interpolation="bilinear",
        pad_to_aspect_ratio=False,
        fill_value=0.0,
        invert=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise ValueError(f"`size` must be a pair of positive ints, e.g. (100, 100). Received: size={size!r}")
        check_color_mode(color_mode)
        if not (isinstance(fill_value, (int, float)) and 0 <= fill_value <= 255):
            raise ValueError(
                f"`fill_value` must be a number in [0, 255] (input units). Received: fill_value={fill_value!r}"
            )
        self.size = tuple(size)
        self.color_mode = color_mode
        self.scale = float(scale)
        self.interpolation = interpolation
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_value = float(fill_value)
        self.invert = bool(invert)

    def call(self, inputs):
        images = ops.cast(inputs, self.compute_dtype)
        channels = images.shape[-1]
        if channels not in (1, 3):
            raise ValueError(f"Expected images with 1 or 3 channels. Received: inputs.shape={inputs.shape}")
        if tuple(images.shape[1:3]) != self.size:
            images = resize_images(images, self.size, self.interpolation, self.pad_to_aspect_ratio, self.fill_value)
        images = match_color_mode(images, self.color_mode)
        if self.invert:
            images = 255.0 - images
        return images * self.scale

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, 1 if self.color_mode == "grayscale" else 3)

    def get_config(self):
        return {
            **super().get_config(),
            "size": list(self.size),
            "color_mode": self.color_mode,
            "scale": self.scale,
            "interpolation": self.interpolation,
            "pad_to_aspect_ratio": self.pad_to_aspect_ratio,
            "fill_value": self.fill_value,
            "invert": self.invert,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["size"] = tuple(config["size"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="medcnn")
class ClassNames(layers.Layer):
    """Identity layer that stores the class names with the model (read back by `python -m medcnn predict`).

    Args:
        class_names: list of strings, one per output unit (for a single sigmoid unit: [negative, positive]).
    """

    def __init__(self, class_names, **kwargs):
        super().__init__(**kwargs)
        if not class_names or not all(isinstance(name, str) for name in class_names):
            raise ValueError(
                f"`class_names` must be a non-empty list of strings. Received: class_names={class_names!r}"
            )
        self.class_names = list(class_names)

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "class_names": list(self.class_names)}


def with_preprocessing(model, preprocessing, class_names, name=None):
    """A model that takes raw RGB images of any size, applies `preprocessing`, then `model`, and carries class names."""
    inputs = keras.Input(shape=(None, None, 3), name="raw_image")
    outputs = ClassNames(class_names, name="class_names")(model(preprocessing(inputs)))
    return keras.Model(inputs, outputs, name=name or f"{model.name}_with_preprocessing")


def class_names_of(model):
    """The class names stored in `model` by a ClassNames layer, or None."""
    for layer in model.layers:
        if isinstance(layer, ClassNames):
            return list(layer.class_names)
    return None


def preprocess_images(images, layer, batch_size=256):
    """Apply a preprocessing layer (e.g. `ImagePreprocessing`) to an array of images in batches: float32 numpy.

    This is how data prepared outside the model sees exactly the pixels the saved model computes from a file.
    """
    parts = [
        keras.ops.convert_to_numpy(layer(images[start : start + batch_size]))
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(parts).astype("float32")


def preprocess_any_sizes(images, layer):
    """`preprocess_images` of images of different sizes (a list), one batch per size: float32 (N, ...) in the
    images' order, e.g. chromosome crops each at its own size brought to one input size."""
    shapes = {}
    for index, image in enumerate(images):
        shapes.setdefault(np.shape(image), []).append(index)
    x = None
    for members in shapes.values():
        done = preprocess_images(np.stack([images[i] for i in members]).astype("float32"), layer)
        x = np.empty((len(images), *done.shape[1:]), dtype="float32") if x is None else x
        x[members] = done
    return x
