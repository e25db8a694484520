"""The one resize and the one colour conversion of medcnn, on image batches (N, H, W, C).

`medcnn.preprocessing.ImagePreprocessing` (inside every saved model) and the loaders (`medcnn.data.imageio.read_image`
through `resize_pixels`) both use them, so that a loader asked for `image_size` returns the pixels the saved model
computes from the raw file (no train/serve skew). They live in the data layer because the loaders need them and
the data layer imports nothing above it; `medcnn.preprocessing` imports them from here and exports them too.

Importing this module imports Keras; `read_image` imports it only when a file needs resizing.
"""

import numpy as np
from keras import ops

RESIZE_INTERPOLATION = "bilinear"


def resize_images(images, size, interpolation=RESIZE_INTERPOLATION, pad_to_aspect_ratio=False, fill_value=0.0):
    """Resize a batch of images (N, H, W, C) to `size` = (height, width), antialiased.

    Antialiasing makes downscaling average over the pixels each output pixel covers (as Pillow does) instead of
    sampling a few of them. With `pad_to_aspect_ratio`, the images are first padded (centred, with `fill_value`) to
    the aspect ratio of `size`, so their content keeps its shape instead of being stretched. Returns a float tensor
    of the input's float dtype.
    """
    if not pad_to_aspect_ratio:
        return ops.image.resize(images, size, interpolation=interpolation, antialias=True)
    return ops.image.resize(
        images, size, interpolation=interpolation, antialias=True, pad_to_aspect_ratio=True, fill_value=fill_value
    )


def match_color_mode(images, color_mode):
    """Images (N, H, W, 1 or 3) in `color_mode`; the one colour conversion of `ImagePreprocessing`.

    RGB becomes grayscale with Keras' ITU-R 601 luma weights (0.2989, 0.587, 0.114; Pillow's "L" uses 0.299 and
    rounds); a single channel is repeated for "rgb"; images already in `color_mode` are returned as they are.
    """
    channels = images.shape[-1]
    if color_mode == "grayscale" and channels == 3:
        return ops.image.rgb_to_grayscale(images)
    if color_mode == "rgb" and channels == 1:
        return ops.repeat(images, 3, axis=-1)
    return images


def resize_pixels(images, size, color_mode="rgb"):
    """RGB images (N, H, W, 3), e.g. uint8 from files, resized and converted as `ImagePreprocessing` does.

    Returns:
        float32 numpy array (N, height, width, 1 or 3), values in [0, 255], not rounded: exactly what a model's
        `ImagePreprocessing(size, color_mode)` computes from the same raw images before its scaling (in float32;
        under mixed precision the model's own resize runs in float16).
    """
    batch = ops.convert_to_tensor(np.asarray(images, dtype=np.float32))
    resized = match_color_mode(resize_images(batch, tuple(size)), color_mode)
    return np.asarray(ops.convert_to_numpy(resized), dtype=np.float32)
