"""Tests for medcnn.data.imageio: colour modes against NumPy, and every bad-file case with its message."""

import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from medcnn.data import imageio
from medcnn.errors import DataError
from medcnn.data.imageio import (
    check_image_size,
    is_hidden,
    is_image_file,
    read_header,
    read_image,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
GRAY = RNG.integers(0, 256, (6, 5), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (6, 5), dtype=np.uint8)
DEEP = RNG.integers(0, 65536, (6, 5), dtype=np.uint16)
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 128, 255], [10, 200, 30]], dtype=np.uint8)
INDICES = RNG.integers(0, 4, (6, 5), dtype=np.uint8)


def luma(rgb):
    """ITU-R 601-2 luma, as Pillow's RGB -> L conversion documents it."""
    rgb = rgb.astype(np.float64)
    return np.round(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114)


def save_palette(path):
    image = Image.fromarray(INDICES, mode="P")
    image.putpalette(PALETTE.ravel().tolist() + [0] * (768 - PALETTE.size))
    image.save(path)


def on_black(rgb, alpha):
    return np.round(rgb.astype(np.float64) * (alpha[..., None] / 255.0))


# name -> (writer(path), color_mode, expected array computed with NumPy)
MODE_CASES = {
    "rgb_as_rgb": (lambda p: Image.fromarray(RGB).save(p), "rgb", RGB),
    "rgb_as_gray": (lambda p: Image.fromarray(RGB).save(p), "grayscale", luma(RGB)[..., None]),
    "gray_among_rgb": (lambda p: Image.fromarray(GRAY).save(p), "rgb", np.repeat(GRAY[..., None], 3, axis=2)),
    "gray_as_gray": (lambda p: Image.fromarray(GRAY).save(p), "grayscale", GRAY[..., None]),
    "palette_as_rgb": (save_palette, "rgb", PALETTE[INDICES]),
    "palette_as_gray": (save_palette, "grayscale", luma(PALETTE[INDICES])[..., None]),
    "rgba_on_black": (lambda p: Image.fromarray(np.dstack([RGB, ALPHA])).save(p), "rgb", on_black(RGB, ALPHA)),
    "la_on_black": (
        lambda p: Image.fromarray(np.dstack([GRAY, ALPHA]), mode="LA").save(p),
        "grayscale",
        on_black(GRAY[..., None], ALPHA),
    ),
    "sixteen_bit_gray": (
        lambda p: Image.fromarray(DEEP).save(p),
        "grayscale",
        np.floor(DEEP / 65535.0 * 255.0 + 0.5)[..., None],
    ),
    "sixteen_bit_as_rgb": (
        lambda p: Image.fromarray(DEEP).save(p),
        "rgb",
        np.repeat(np.floor(DEEP / 65535.0 * 255.0 + 0.5)[..., None], 3, 2),
    ),
    "bilevel": (lambda p: Image.fromarray(GRAY > 127).save(p), "grayscale", np.where(GRAY > 127, 255, 0)[..., None]),
}


@pytest.mark.parametrize("case", sorted(MODE_CASES))
def test_color_modes_match_numpy(tmp_path, case):
    write, color_mode, expected = MODE_CASES[case]
    path = tmp_path / f"{case}.png"
    write(path)
    image = read_image(path, color_mode=color_mode)
    assert image.dtype == np.uint8
    assert image.shape == expected.shape
    np.testing.assert_allclose(image.astype(float), expected, atol=1)


def test_sixteen_bit_mode_is_what_pillow_reads(tmp_path):
    Image.fromarray(DEEP).save(tmp_path / "deep.png")
    assert read_header(tmp_path / "deep.png").mode.startswith("I")


def triangle_weights(n_in, n_out):
    """(n_out, n_in) weights of antialiased bilinear resizing: a triangle kernel widened by the downscale factor,
    centred on each output pixel, normalised to sum to one."""
    scale = n_out / n_in
    centers = (np.arange(n_out) + 0.5) / scale
    distances = (np.arange(n_in)[None, :] + 0.5) - centers[:, None]
    weights = np.clip(1.0 - np.abs(distances) * min(scale, 1.0), 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def resized_by_numpy(image, size):
    return np.einsum(
        "ah,hwc,bw->abc",
        triangle_weights(image.shape[0], size[0]),
        image.astype(float),
        triangle_weights(image.shape[1], size[1]),
    )


@pytest.mark.parametrize("shape, size", [((6, 5), (4, 9)), ((40, 33), (7, 12)), ((9, 11), (9, 4))])
def test_resize_is_antialiased_bilinear_without_rounding(tmp_path, shape, size):
    raw = RNG.integers(0, 256, (*shape, 3), dtype=np.uint8)
    Image.fromarray(raw).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png", image_size=size)
    assert image.shape == (*size, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image, resized_by_numpy(raw, size), atol=1e-3)


def test_resized_grayscale_is_the_luma_of_the_resized_rgb(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png", image_size=(4, 9), color_mode="grayscale")
    assert image.shape == (4, 9, 1) and image.dtype == np.float32
    # Keras' luma weights (0.2989, 0.587, 0.114), unrounded: what ImagePreprocessing computes.
    expected = resized_by_numpy(RGB, (4, 9)) @ np.array([0.2989, 0.587, 0.114])
    np.testing.assert_allclose(image[..., 0], expected, atol=1e-3)


@pytest.mark.parametrize("color_mode", ["rgb", "grayscale"])
def test_image_already_at_size_keeps_its_uint8_pixels(tmp_path, color_mode):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png", image_size=(6, 5), color_mode=color_mode)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, read_image(tmp_path / "a.png", color_mode=color_mode))


def test_read_header_does_not_decode(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "a.jpg")
    header = read_header(tmp_path / "a.jpg")
    assert (header.format, header.mode, header.size) == ("JPEG", "RGB", (6, 5))


def png_header_only(width, height):
    """A tiny PNG whose header claims `width` x `height` pixels and holds no pixel data."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def truncated(fmt):
    def write(path):
        Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, fmt)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return write


# name -> (file name, writer(path), problem tag, words the message must hold)
BAD_CASES = {
    "zero_bytes": ("empty.png", lambda p: p.write_bytes(b""), "empty_file", "empty (0 bytes)"),
    "text_named_png": ("notes.png", lambda p: p.write_text("not an image"), "not_an_image", "not an image file"),
    "html_named_jpg": ("page.jpg", lambda p: p.write_text("<html></html>"), "not_an_image", "extension is '.jpg'"),
    "truncated_png": ("cut.png", truncated("PNG"), "unreadable", "truncated"),
    "truncated_jpeg": ("cut.jpg", truncated("JPEG"), "unreadable", "truncated"),
    "truncated_bmp": ("cut.bmp", truncated("BMP"), "unreadable", "truncated"),
    "bomb_header": ("bomb.png", lambda p: p.write_bytes(png_header_only(50_000, 50_000)), "too_large", "too large"),
    "over_max_pixels": ("big.png", lambda p: p.write_bytes(png_header_only(9_000, 9_000)), "too_large", "too large"),
}


# A header check alone cannot see truncated pixel data; the full decode does.
READER_CASES = [(read_image, case) for case in sorted(BAD_CASES)] + [
    (read_header, case) for case in sorted(BAD_CASES) if not case.startswith("truncated")
]


@pytest.mark.parametrize("reader, case", READER_CASES, ids=lambda v: getattr(v, "__name__", v))
def test_bad_files_raise_data_error_naming_the_file(tmp_path, case, reader):
    name, write, problem, words = BAD_CASES[case]
    write(tmp_path / name)
    with pytest.raises(DataError, match=re.escape(words)) as info:
        reader(tmp_path / name)
    assert name in str(info.value)
    assert info.value.problem == problem
    assert info.value.path == str(tmp_path / name)


def test_max_pixels_guard_can_be_lowered(tmp_path, monkeypatch):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    monkeypatch.setattr(imageio, "MAX_PIXELS", 29)
    with pytest.raises(DataError, match=r"5x6 pixels is too large.*limit 29 pixels"):
        read_image(tmp_path / "a.png")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_image(tmp_path / "nothing.png")


@pytest.mark.parametrize("image_size", [(0, 4), (4,), "224", (4.0, 4), (True, 4), (4, -1)])
def test_image_size_incorrect(image_size):
    with pytest.raises(ValueError, match=r"`image_size` must be a pair of positive ints.*Received: image_size="):
        check_image_size(image_size)


def test_color_mode_incorrect(tmp_path):
    with pytest.raises(ValueError, match="Received: color_mode='RGB'"):
        read_image(tmp_path / "a.png", color_mode="RGB")


@pytest.mark.parametrize(
    "name, hidden, image",
    [
        (".DS_Store", True, False),
        ("Thumbs.db", True, False),
        ("._cell.png", True, False),
        ("__MACOSX", True, False),
        ("cell.PNG", False, True),
        ("cell.tiff", False, True),
        ("cell.txt", False, False),
    ],
)
def test_hidden_and_image_files(name, hidden, image):
    assert is_hidden(name) is hidden
    assert is_image_file(name) is image
