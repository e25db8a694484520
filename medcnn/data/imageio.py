"""Decode one image file into a uint8 array, with clear errors for bad files."""

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from medcnn.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# Files and folders that operating systems and archivers leave behind; skipped, never counted as problems.
HIDDEN_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "__macosx"}
COLOR_MODES = ("grayscale", "rgb")
# Larger images are refused rather than decoded (decompression-bomb guard); 8,000 x 8,000 pixels.
MAX_PIXELS = 64_000_000
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
# What Pillow raises for bad files (DataError, a ValueError, is ours; UnidentifiedImageError is an OSError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning)


class ImageHeader(NamedTuple):
    """What a file's header says, read without decoding the pixels: format ("PNG"), mode ("RGB"), (height, width)."""

    format: str
    mode: str
    size: tuple


def is_hidden(path):
    """True for files a loader skips without counting them as problems (`.DS_Store`, `Thumbs.db`, `._*`)."""
    name = Path(path).name
    return name.startswith(".") or name.lower() in HIDDEN_NAMES


def is_image_file(path):
    """True when the extension is one the loaders read and the file is not hidden."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS and not is_hidden(path)


def check_image_size(image_size):
    """Validate `image_size` (None or a pair of positive ints) and return it as a tuple."""
    if image_size is None:
        return None
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in image_size)
    ):
        raise ValueError(
            f"`image_size` must be a pair of positive ints, e.g. (224, 224). Received: image_size={image_size!r}"
        )
    return (int(image_size[0]), int(image_size[1]))


def check_color_mode(color_mode):
    """Validate `color_mode` ("grayscale" or "rgb") and return it."""
    if color_mode not in COLOR_MODES:
        raise ValueError(f"`color_mode` must be one of {COLOR_MODES}. Received: color_mode={color_mode!r}")
    return color_mode


def _to_8bit(image):
    """Bring 16-bit, 32-bit integer and float modes to 8-bit 'L'; other modes pass through.

    16-bit images are scaled by 255 / 65535; 'I' images by the same when their values exceed 255;
    'F' images holding values in [0, 1] are scaled by 255.
    """
    if image.mode not in (*_SIXTEEN_BIT_MODES, "I", "F"):
        return image
    array = np.asarray(image, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError("non-finite pixel values")
    peak = float(array.max()) if array.size else 0.0
    if image.mode in _SIXTEEN_BIT_MODES or peak > 255:
        scale = 255.0 / 65535.0
    elif image.mode == "F" and peak <= 1.0:
        scale = 255.0
    else:
        scale = 1.0
    return Image.fromarray(np.clip(np.floor(array * scale + 0.5), 0, 255).astype(np.uint8), mode="L")


def convert_mode(image, color_mode):
    """Convert a PIL image of any mode (palette, RGBA, LA, 16-bit, CMYK, ...) to 'L' or 'RGB'.

    Transparent pixels are composited on black (the cell images have dark backgrounds).
    """
    image = _to_8bit(image)
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("L" if color_mode == "grayscale" else "RGB")


def _check_file(path):
    if not path.is_file():
        raise DataError(f"{path}: no such file.", path=path, problem="missing_file")
    if path.stat().st_size == 0:
        raise DataError(
            f"{path}: the file is empty (0 bytes). Re-download or remove it.", path=path, problem="empty_file"
        )


def _check_pixels(path, width, height):
    if width * height > MAX_PIXELS:
        raise DataError(
            f"{path}: {width}x{height} pixels is too large to decode safely (limit {MAX_PIXELS:,} pixels, "
            "a decompression-bomb guard). Downscale the file first.",
            path=path,
            problem="too_large",
        )


def _open_errors(path, error):
    """Translate a Pillow error into the DataError that names `path`."""
    if isinstance(error, DataError):
        return error
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return DataError(
            f"{path}: too large to decode safely ({error}). Downscale the file first.", path=path, problem="too_large"
        )
    if isinstance(error, UnidentifiedImageError):
        return DataError(
            f"{path}: not an image file, although its extension is '{path.suffix}'. Remove it or fix its contents.",
            path=path,
            problem="not_an_image",
        )
    return DataError(
        f"{path}: unreadable or truncated image ({error}). Re-download the file or remove it.",
        path=path,
        problem="unreadable",
    )


def read_header(path):
    """Read an image's header only (cheap): its format, mode and (height, width).

    Raises:
        DataError: the file is missing, empty, not an image, or too large to decode safely.
    """
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                _check_pixels(path, width, height)
                return ImageHeader(str(image.format), image.mode, (height, width))
    except _DECODE_ERRORS as error:
        raise _open_errors(path, error) from None


def _decode_for_size(path, image_size, color_mode):
    """Decode one file as uint8; returns (array, needs_resize).

    The array is in `color_mode` when the file is at `image_size` (or image_size is None); otherwise it is RGB at
    the file's size, as `python -m medcnn predict` decodes it, for `resize_pixels` to resize and convert.
    """
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_pixels(path, *image.size)
                image.load()
                needs_resize = image_size is not None and image.size != (image_size[1], image_size[0])
                image = convert_mode(image, "rgb" if needs_resize else color_mode)
    except _DECODE_ERRORS as error:
        raise _open_errors(path, error) from None
    array = np.asarray(image, dtype=np.uint8)
    return (array[..., None] if array.ndim == 2 else array), needs_resize


def read_image(path, image_size=None, color_mode="rgb"):
    """Read one image file as an array of shape (H, W, 1) or (H, W, 3).

    Resizing goes through the same code as a saved model's preprocessing: the file is decoded as RGB (as
    `python -m medcnn predict` decodes it), then `medcnn.data.resize.resize_pixels` resizes it (antialiased
    bilinear) and converts the colour mode in float32, without rounding back to uint8. So the pixels equal what
    `ImagePreprocessing(image_size, color_mode)` computes from the raw file, before its scaling. Keras is imported
    only when a file needs resizing.

    Args:
        path: file to read.
        image_size: None keeps the file's size, else `(height, width)`.
        color_mode: "grayscale" or "rgb", whatever the file's own mode (palette, RGBA, LA, 16-bit, ...).

    Returns:
        uint8 when the file is kept at its size (`image_size` None or equal to it); float32 in [0, 255] when it
        was resized.

    Raises:
        DataError: the file is empty, not an image, truncated, or too large to decode safely.
    """
    path = Path(path)
    image_size = check_image_size(image_size)
    check_color_mode(color_mode)
    array, needs_resize = _decode_for_size(path, image_size, color_mode)
    if not needs_resize:
        return array
    from medcnn.data.resize import resize_pixels  # imports Keras

    return resize_pixels(array[None], image_size, color_mode)[0]
