"""Preprocessing that travels inside a saved model, so that it predicts from raw image files.

`ImagePreprocessing` resizes, converts the colour mode and scales; `ClassNames` is an identity layer that stores
the class names with the model. `with_preprocessing` wraps a trained model with both.
"""

import keras
from keras import layers, ops

from medcnn.data.imageio import check_color_mode


@keras.saving.register_keras_serializable(package="medcnn")
class ImagePreprocessing(layers.Layer):
    """Resize to `size`, convert to grayscale or RGB, multiply by `scale`.

    Deterministic: it acts the same in training and at inference. Grayscale uses ITU-R 601 luma weights
    (0.299, 0.587, 0.114), the same as Pillow's "L" mode.

    Args:
        size: `(height, width)` of the output, positive ints.
        color_mode: "grayscale" (1 output channel) or "rgb" (3); a 1-channel input is repeated for "rgb".
        scale: multiplier applied after resizing, e.g. 1/255 to map [0, 255] to [0, 1]. Defaults to 1/255.
        interpolation: "bilinear" (default), "nearest", "bicubic", ...; resizing is antialiased.

    Inputs: 4D (NHWC) images of any height and width, 1 or 3 channels, values in [0, 255].
    Output: 4D (N, height, width, 1 or 3) float32 values in [0, 255 * scale].

    Example:
    >>> layer = ImagePreprocessing((100, 100), "grayscale")
    >>> layer(np.zeros((2, 224, 224, 3))).shape
    (2, 100, 100, 1)
    """

    def __init__(self, size, color_mode="grayscale", scale=1.0 / 255.0, interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise ValueError(f"`size` must be a pair of positive ints, e.g. (100, 100). Received: size={size!r}")
        check_color_mode(color_mode)
        self.size = tuple(size)
        self.color_mode = color_mode
        self.scale = float(scale)
        self.interpolation = interpolation

    def call(self, inputs):
        images = ops.cast(inputs, self.compute_dtype)
        channels = images.shape[-1]
        if channels not in (1, 3):
            raise ValueError(f"Expected images with 1 or 3 channels. Received: inputs.shape={inputs.shape}")
        if tuple(images.shape[1:3]) != self.size:
            images = ops.image.resize(images, self.size, interpolation=self.interpolation, antialias=True)
        if self.color_mode == "grayscale" and channels == 3:
            images = ops.image.rgb_to_grayscale(images)
        elif self.color_mode == "rgb" and channels == 1:
            images = ops.repeat(images, 3, axis=-1)
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
