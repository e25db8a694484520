"""Augmentation as Keras layers: Keras' own where they fit, four small layers for what Keras lacks, named presets.

Conventions: images are float tensors, 3D (HWC) or 4D (NHWC, channels last), with values in `value_range`
(default `(0, 255)`, as `keras.layers.RandomBrightness`). Every layer is inactive at inference: pass
`training=True` to augment. Each random layer draws from its own seeded `keras.random.SeedGenerator`, and each
random draw is per image.

What Keras lacks, and why each layer here exists:
- `RandomPixelNoise`: replaces a random share of pixels with random values (kth: "noise on up to 5 % of pixels").
- `GaussianBlur`: `keras.layers.RandomGaussianBlur` draws one sigma per batch and caps it at 1.0; this one draws
  sigma per image in any range and pads by reflection (no dark border).
- `RandomCentralZoom`: with probability p, a central crop of a random fraction resized back (cnmc). Keras'
  `RandomZoom` zooms every image; this one leaves a share `1 - p` untouched and never zooms out.
- `RandomGaussianNoise`: `keras.layers.GaussianNoise` takes `stddev` in pixel units, limited to [0, 1], and does
  not clip, so on [0, 255] images it is either invisible or leaves the value range; this one scales `stddev` by
  the value range and clips.

Design: these are plain `keras.layers.Layer`s written with `keras.ops` / `keras.random`, not subclasses of Keras'
internal `DataLayer` (formerly `TFDataLayer`). `DataLayer` is what lets Keras' own preprocessing layers run in
`tf.data` under any backend, but it lives in `keras.src` (private, renamed in 2025) and asks for `self.backend`
ops instead of `keras.ops` (keras-team/keras#21785 is the open request for `keras.ops` in `tf.data`). So these
layers run in `tf.data.Dataset.map` under the TensorFlow backend, and everywhere inside a model;
`medcnn.data.pipeline.make_dataset` uses a `keras.utils.PyDataset` under other backends, where they run eagerly.
"""

import itertools
import numbers

import keras
import numpy as np
from keras import layers, ops

_VALUE_RANGE_ERROR = "The `value_range` argument should be a list of two numbers, low < high. "
_RANK_ERROR = "Expected the input image to be rank 3 (HWC) or 4 (NHWC). "


# ---------------------------------------------------------------- argument checks


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_value_range(value_range):
    if not (isinstance(value_range, (tuple, list)) and len(value_range) == 2 and all(map(_is_number, value_range))):
        raise ValueError(_VALUE_RANGE_ERROR + f"Received: value_range={value_range!r}")
    low, high = float(value_range[0]), float(value_range[1])
    if not low < high:
        raise ValueError(_VALUE_RANGE_ERROR + f"Received: value_range={value_range!r}")
    return (low, high)


def _check_probability(probability):
    if not (_is_number(probability) and 0.0 <= probability <= 1.0):
        raise ValueError(f"`probability` must be a number between 0 and 1. Received: probability={probability!r}")
    return float(probability)


def _check_pair(value, name, low, high, low_open=False):
    """A number or a pair of numbers in [low, high] (or (low, high]) -> a sorted pair of floats."""
    pair = (value, value) if _is_number(value) else value
    inside = lambda v: (low < v if low_open else low <= v) and v <= high
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(_is_number(v) and inside(v) for v in pair)):
        bracket = "(" if low_open else "["
        raise ValueError(
            f"`{name}` must be a number or a pair of numbers in {bracket}{low}, {high}]. Received: {name}={value!r}"
        )
    return tuple(sorted(float(v) for v in pair))


def _batched(inputs):
    """(4D images, whether the input was 3D); raises for other ranks."""
    rank = len(inputs.shape)
    if rank == 3:
        return ops.expand_dims(inputs, 0), True
    if rank != 4:
        raise ValueError(_RANK_ERROR + f"Received: inputs.shape={inputs.shape}")
    return inputs, False


def _unbatched(images, was_3d):
    return ops.squeeze(images, 0) if was_3d else images


# ---------------------------------------------------------------- fixed operations


def scatter_pixels(images, positions, values, used=None):
    """Set pixels given by flat positions to new values: ``out[n, positions[n, k] // W, positions[n, k] % W] =
    values[n, k]`` for every k where `used[n, k]`; all other pixels keep their values.

    Args:
        images: NHWC float tensor.
        positions: int tensor (N, K), flat pixel indices in [0, H * W).
        values: tensor (N, K, C), the new values of those pixels.
        used: optional bool tensor (N, K); False entries change nothing. Defaults to all True.

    When a position appears twice, one of its values is kept (which one is not specified).
    """
    images = ops.convert_to_tensor(images)
    n, height, width, channels = ops.shape(images)
    pixels = height * width
    k = ops.shape(positions)[1]
    positions = ops.cast(positions, "int32")
    if used is not None:
        positions = ops.where(used, positions, pixels)  # unused updates go to one spare pixel, dropped below
    flat = ops.reshape(images, (n, pixels, channels))
    flat = ops.concatenate([flat, ops.zeros_like(flat[:, :1])], axis=1)
    rows = ops.broadcast_to(ops.arange(n, dtype="int32")[:, None], (n, k))
    indices = ops.reshape(ops.stack([rows, positions], axis=-1), (-1, 2))
    flat = ops.scatter_update(flat, indices, ops.reshape(ops.cast(values, flat.dtype), (-1, channels)))
    return ops.reshape(flat[:, :pixels], (n, height, width, channels))


def gaussian_kernel_1d(sigma, kernel_size):
    """Normalised 1D Gaussian kernels, one row per sigma: (N,) sigmas -> (N, kernel_size) weights summing to 1."""
    offsets = ops.arange(kernel_size, dtype="float32") - (kernel_size - 1) / 2.0
    sigma = ops.reshape(ops.cast(sigma, "float32"), (-1, 1))
    weights = ops.exp(-0.5 * ops.square(offsets[None, :] / sigma))
    return weights / ops.sum(weights, axis=1, keepdims=True)


def gaussian_blur(images, sigma, kernel_size=5):
    """Blur each image with its own Gaussian: a separable depthwise convolution, borders padded by reflection.

    ``out[n] = image[n] * g(sigma[n])`` per channel, with ``g`` the normalised `kernel_size`-tap Gaussian; the
    same as `scipy.ndimage.gaussian_filter(image, (s, s, 0), mode="mirror", truncate=(kernel_size // 2) / s)`.
    Values stay inside the input's range (each output is a weighted mean of inputs).

    Args:
        images: NHWC or HWC float tensor; height and width must exceed `kernel_size // 2`.
        sigma: a positive number, or one per image (shape (N,)), in pixels.
        kernel_size: odd positive int, the taps of the kernel in each direction.

    Returns:
        Blurred images, same shape and dtype.
    """
    images = ops.convert_to_tensor(images)
    batch, was_3d = _batched(images)
    dtype = batch.dtype
    x = ops.cast(batch, "float32")
    n, height, width, channels = ops.shape(x)
    sigma = ops.broadcast_to(ops.reshape(ops.cast(sigma, "float32"), (-1,)), (n,))
    # One depthwise filter per (image, channel): fold the batch into the channel axis, n-major.
    kernels = ops.transpose(ops.repeat(gaussian_kernel_1d(sigma, kernel_size), channels, axis=0))  # (k, N*C)
    x = ops.reshape(ops.transpose(x, (1, 2, 0, 3)), (1, height, width, n * channels))
    pad = kernel_size // 2
    x = ops.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    x = ops.depthwise_conv(x, ops.reshape(kernels, (kernel_size, 1, n * channels, 1)), padding="valid")
    x = ops.depthwise_conv(x, ops.reshape(kernels, (1, kernel_size, n * channels, 1)), padding="valid")
    x = ops.transpose(ops.reshape(x, (height, width, n, channels)), (2, 0, 1, 3))
    return _unbatched(ops.cast(x, dtype), was_3d)


def central_crop_resize(images, fraction, interpolation="bilinear"):
    """Crop the central `fraction` of each image's height and width and resize it back to the input size.

    Done in one resampling step, ``input_xy = fraction * output_xy + (1 - fraction) * (size - 1) / 2``: a crop of
    `fraction * size` pixels (also when that is not a whole number) resized with half-pixel centres and no
    antialiasing. It equals `ops.image.resize(crop, size)` except on the outermost ring of pixels, which samples
    the image just outside the crop instead of repeating the crop's edge. `fraction = 1` returns the image.

    Args:
        images: NHWC or HWC float tensor.
        fraction: a number in (0, 1], or one per image (shape (N,)).
        interpolation: "bilinear" or "nearest".

    Returns:
        Zoomed images, same shape and dtype, values inside the input's range.
    """
    images = ops.convert_to_tensor(images)
    batch, was_3d = _batched(images)
    dtype = batch.dtype
    x = ops.cast(batch, "float32")
    n, height, width = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
    f = ops.broadcast_to(ops.reshape(ops.cast(fraction, "float32"), (-1,)), (n,))
    zeros = ops.zeros_like(f)
    offset_x = (1.0 - f) * (ops.cast(width, "float32") - 1.0) / 2.0
    offset_y = (1.0 - f) * (ops.cast(height, "float32") - 1.0) / 2.0
    # Rows [a0, a1, a2, b0, b1, b2, c0, c1]: input (x, y) = (a0 x + a1 y + a2, b0 x + b1 y + b2).
    transform = ops.stack([f, zeros, offset_x, zeros, f, offset_y, zeros, zeros], axis=1)
    x = ops.image.affine_transform(x, transform, interpolation=interpolation, fill_mode="nearest")
    return _unbatched(ops.cast(x, dtype), was_3d)


# ---------------------------------------------------------------- random layers


class _RandomLayer(layers.Layer):
    """What the random layers share: `seed` and its own `keras.random.SeedGenerator`, outputs of the inputs' shape,
    and `seed` in the config (each subclass adds its own arguments)."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def _where_drawn(changed, images, probability, seed_generator):
    """`changed` for the images whose uniform draw (one per image) falls below `probability`, else `images` (4D)."""
    apply = keras.random.uniform((ops.shape(images)[0],), seed=seed_generator) < probability
    return ops.where(ops.reshape(apply, (-1, 1, 1, 1)), changed, images)


@keras.saving.register_keras_serializable(package="medcnn")
class RandomPixelNoise(_RandomLayer):
    """Replace a random share of each image's pixels with random values (salt-and-pepper-like noise).

    Inactive at inference: the output equals the input; pass `training=True` to add noise. Per image, a share
    `s ~ U[0, max_fraction]` is drawn and `floor(s * H * W)` pixel positions, drawn uniformly with replacement,
    get new values drawn uniformly from `value_range` (each channel its own value): at most a share `s` of the
    pixels changes. The fixed operation is `scatter_pixels`. Written for the kth study, whose karyograms were
    augmented with "noise on up to 5 % of pixels"; Keras has no layer for it (`GaussianNoise` moves every pixel).

    Args:
        max_fraction: float in [0, 1], the largest share of pixels replaced. 0 leaves images unchanged, 1 may
            replace every pixel. Defaults to 0.05.
        value_range: `[low, high]` of the images, also the range of the new values. Defaults to `(0, 255)`.
        seed: optional integer, for fixed RNG behavior.

    Inputs: 3D (HWC) or 4D (NHWC) float tensor, values in `value_range`.
    Output: same shape, compute dtype, values in `value_range`.

    Example:
    >>> layer = RandomPixelNoise(max_fraction=0.05, seed=0)
    >>> layer(np.full((2, 16, 16, 1), 128.0), training=True).shape
    (2, 16, 16, 1)
    """

    def __init__(self, max_fraction=0.05, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not (_is_number(max_fraction) and 0.0 <= max_fraction <= 1.0):
            raise ValueError(
                f"`max_fraction` must be a number between 0 and 1. Received: max_fraction={max_fraction!r}"
            )
        self.max_fraction = float(max_fraction)
        self.value_range = _check_value_range(value_range)

    def call(self, inputs, training=False):
        if not training or self.max_fraction == 0:
            return inputs
        images, was_3d = _batched(ops.cast(inputs, self.compute_dtype))
        n, height, width, channels = ops.shape(images)
        pixels = height * width
        most = ops.cast(ops.floor(self.max_fraction * ops.cast(pixels, "float32")), "int32")
        if isinstance(pixels, int):
            most = int(np.floor(self.max_fraction * pixels))
        if isinstance(most, int) and most == 0:
            return _unbatched(images, was_3d)
        # All random draws in one place: per image a share, then `most` candidate positions and values, of which
        # the first floor(share * pixels) are used. Drawing positions (not a full-size mask) is ~5x faster; two
        # draws may hit the same pixel, so at most floor(share * pixels) pixels change.
        share = keras.random.uniform((n, 1), 0.0, self.max_fraction, seed=self.seed_generator)
        positions = keras.random.randint((n, most), 0, pixels, seed=self.seed_generator)
        values = keras.random.uniform((n, most, channels), *self.value_range, seed=self.seed_generator)
        count = ops.floor(share * ops.cast(pixels, "float32"))
        used = ops.cast(ops.arange(most), "float32")[None, :] < count
        return _unbatched(scatter_pixels(images, positions, values, used), was_3d)

    def get_config(self):
        config = {"max_fraction": self.max_fraction, "value_range": list(self.value_range)}
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="medcnn")
class GaussianBlur(_RandomLayer):
    """Blur images, each with probability `probability`, with a Gaussian of random sigma drawn per image.

    Inactive at inference: the output equals the input; pass `training=True` to blur. The fixed operation is
    `gaussian_blur`. Differs from `keras.layers.RandomGaussianBlur`, which draws one sigma per batch, limits sigma
    to [0, 1] and pads with zeros. Used by the kth study (blur among its order-preserving augmentations).

    Args:
        sigma: float > 0 or a pair `(low, high)`; sigma in pixels is drawn uniformly from the pair per image.
            Small values (0.1) barely change the image. Defaults to `(0.1, 1.5)`.
        kernel_size: odd int >= 1, taps of the kernel in each direction; cover about 3 sigma on each side
            (5 covers sigma up to about 1.5). Defaults to 5.
        probability: float in [0, 1], the chance that an image is blurred at all. Defaults to 0.5.
        seed: optional integer, for fixed RNG behavior.

    Inputs: 3D (HWC) or 4D (NHWC) float tensor, height and width larger than `kernel_size // 2`.
    Output: same shape, compute dtype; values stay inside the input's range.

    Example:
    >>> layer = GaussianBlur(sigma=(0.5, 1.5), probability=1.0, seed=0)
    >>> layer(np.random.uniform(0, 255, (2, 16, 16, 3)), training=True).shape
    (2, 16, 16, 3)
    """

    def __init__(self, sigma=(0.1, 1.5), kernel_size=5, probability=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.sigma = _check_pair(sigma, "sigma", 0.0, float("inf"), low_open=True)
        if (
            not (isinstance(kernel_size, (int, np.integer)) and not isinstance(kernel_size, bool))
            or kernel_size < 1
            or kernel_size % 2 == 0
        ):
            raise ValueError(
                f"`kernel_size` must be an odd positive int, e.g. 5. Received: kernel_size={kernel_size!r}"
            )
        self.kernel_size = int(kernel_size)
        self.probability = _check_probability(probability)

    def call(self, inputs, training=False):
        if not training or self.probability == 0:
            return inputs
        images, was_3d = _batched(ops.cast(inputs, self.compute_dtype))
        for size in images.shape[1:3]:
            if size is not None and size <= self.kernel_size // 2:
                raise ValueError(
                    f"Images must be larger than kernel_size // 2 = {self.kernel_size // 2} pixels for reflection "
                    f"padding. Received: inputs.shape={inputs.shape}"
                )
        n = ops.shape(images)[0]
        sigma = keras.random.uniform((n,), *self.sigma, seed=self.seed_generator)
        blurred = gaussian_blur(images, sigma, self.kernel_size)
        return _unbatched(_where_drawn(blurred, images, self.probability, self.seed_generator), was_3d)

    def get_config(self):
        config = {"sigma": list(self.sigma), "kernel_size": self.kernel_size, "probability": self.probability}
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="medcnn")
class RandomCentralZoom(_RandomLayer):
    """With probability p, crop the central part of an image (a random fraction of its size) and resize it back.

    Inactive at inference: the output equals the input; pass `training=True` to zoom. The fixed operation is
    `central_crop_resize`. From the cnmc study: "with a probability greater than 70 %, the image is centrally
    cropped by various fractions of its original size". Unlike `keras.layers.RandomZoom` it leaves a share
    `1 - probability` of images untouched, keeps the centre fixed and never zooms out (no fill).

    Args:
        probability: float in [0, 1], the chance an image is zoomed. Defaults to 0.7.
        fraction: float in (0, 1] or a pair; the side of the crop as a share of the image's side, drawn uniformly
            per image. 1 keeps the whole image, 0.5 shows the central quarter of its area. Defaults to `(0.6, 1.0)`.
        interpolation: "bilinear" (default) or "nearest".
        seed: optional integer, for fixed RNG behavior.

    Inputs: 3D (HWC) or 4D (NHWC) float tensor.
    Output: same shape, compute dtype; values stay inside the input's range.

    Example:
    >>> layer = RandomCentralZoom(probability=0.7, fraction=(0.6, 1.0), seed=0)
    >>> layer(np.random.uniform(0, 255, (2, 32, 32, 3)), training=True).shape
    (2, 32, 32, 3)
    """

    def __init__(self, probability=0.7, fraction=(0.6, 1.0), interpolation="bilinear", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.probability = _check_probability(probability)
        self.fraction = _check_pair(fraction, "fraction", 0.0, 1.0, low_open=True)
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(
                f"`interpolation` must be 'bilinear' or 'nearest'. Received: interpolation={interpolation!r}"
            )
        self.interpolation = interpolation

    def call(self, inputs, training=False):
        if not training or self.probability == 0:
            return inputs
        images, was_3d = _batched(ops.cast(inputs, self.compute_dtype))
        n = ops.shape(images)[0]
        fraction = keras.random.uniform((n,), *self.fraction, seed=self.seed_generator)
        zoomed = central_crop_resize(images, fraction, self.interpolation)
        return _unbatched(_where_drawn(zoomed, images, self.probability, self.seed_generator), was_3d)

    def get_config(self):
        config = {"probability": self.probability, "fraction": list(self.fraction), "interpolation": self.interpolation}
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="medcnn")
class RandomGaussianNoise(_RandomLayer):
    """Add zero-mean Gaussian noise whose standard deviation is a share of the value range, then clip to it.

    Inactive at inference: the output equals the input; pass `training=True` to add noise.
    ``out = clip(x + N(0, (stddev * (high - low))^2), low, high)``. Differs from `keras.layers.GaussianNoise`
    (a regulariser: `stddev` in pixel units, at most 1, no clipping), which on [0, 255] images is either
    invisible or leaves the value range. Used by the an2dl study (Gaussian noise among its augmentations).

    Args:
        stddev: float in [0, 1], the noise's standard deviation as a share of `high - low`; 0 adds nothing,
            0.02 is about 5 grey levels on [0, 255]. Defaults to 0.02.
        value_range: `[low, high]` of the images; outputs are clipped to it. Defaults to `(0, 255)`.
        seed: optional integer, for fixed RNG behavior.

    Inputs: 3D (HWC) or 4D (NHWC) float tensor, values in `value_range`.
    Output: same shape, compute dtype, values in `value_range`.

    Example:
    >>> layer = RandomGaussianNoise(stddev=0.02, seed=0)
    >>> layer(np.full((2, 8, 8, 1), 128.0), training=True).shape
    (2, 8, 8, 1)
    """

    def __init__(self, stddev=0.02, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not (_is_number(stddev) and 0.0 <= stddev <= 1.0):
            raise ValueError(f"`stddev` must be a number between 0 and 1. Received: stddev={stddev!r}")
        self.stddev = float(stddev)
        self.value_range = _check_value_range(value_range)

    def call(self, inputs, training=False):
        if not training or self.stddev == 0:
            return inputs
        images = ops.cast(inputs, self.compute_dtype)
        low, high = self.value_range
        noise = keras.random.normal(ops.shape(images), stddev=self.stddev * (high - low), seed=self.seed_generator)
        return ops.clip(images + ops.cast(noise, images.dtype), low, high)

    def get_config(self):
        config = {"stddev": self.stddev, "value_range": list(self.value_range)}
        return {**super().get_config(), **config}


# ---------------------------------------------------------------- presets


def _seeds(seed, count):
    return [None] * count if seed is None else [seed + index for index in range(count)]


def order_preserving(brightness=0.25, pixel_noise=0.05, blur_probability=0.5, value_range=(0, 255), seed=0):
    """Brightness, pixel noise and blur only: no flip, rotation or zoom, so the layout of an image is kept.

    For images whose layout means something (kth karyograms: "brightness between -25 % and +25 % and noise up to
    5 % of pixels", plus blur).

    Args:
        brightness: float in [0, 1]; `keras.layers.RandomBrightness(brightness)` adds a shift drawn from
            `[-brightness, +brightness] * (high - low)` per image, then clips. Defaults to 0.25.
        pixel_noise: `RandomPixelNoise(max_fraction=pixel_noise)`. Defaults to 0.05.
        blur_probability: `GaussianBlur(sigma=(0.1, 1.5), probability=blur_probability)`. Defaults to 0.5.
        value_range: `[low, high]` of the images. Defaults to `(0, 255)`.
        seed: int or None; layer i is seeded with `seed + i`.

    Returns:
        A `keras.Sequential` named "order_preserving".
    """
    seeds = _seeds(seed, 3)
    return keras.Sequential(
        [
            layers.RandomBrightness(brightness, value_range=_check_value_range(value_range), seed=seeds[0]),
            RandomPixelNoise(pixel_noise, value_range=value_range, seed=seeds[1]),
            GaussianBlur(sigma=(0.1, 1.5), kernel_size=5, probability=blur_probability, seed=seeds[2]),
        ],
        name="order_preserving",
    )


def geometric_and_zoom(rotation=0.5, zoom=0.1, central_zoom_probability=0.7, central_zoom_fraction=(0.6, 1.0), seed=0):
    """Rotation, horizontal and vertical flips, zoom, then a central zoom with probability p.

    For single centred objects on a dark background (cnmc: "rotation, flipping, cropping and zooming; with a
    probability greater than 70 % a central crop of various fractions"). Areas uncovered by rotation or zoom out
    are filled with 0 (black), like the cells' background.

    Args:
        rotation: `keras.layers.RandomRotation(rotation)`, a share of a full turn; 0.5 allows any angle.
            Defaults to 0.5.
        zoom: `keras.layers.RandomZoom(zoom)`; heights and widths change by up to +/- zoom. Defaults to 0.1.
        central_zoom_probability, central_zoom_fraction: `RandomCentralZoom(probability, fraction)`.
        seed: int or None; layer i is seeded with `seed + i`.

    Returns:
        A `keras.Sequential` named "geometric_and_zoom".
    """
    seeds = _seeds(seed, 4)
    return keras.Sequential(
        [
            layers.RandomRotation(rotation, fill_mode="constant", fill_value=0.0, seed=seeds[0]),
            layers.RandomFlip("horizontal_and_vertical", seed=seeds[1]),
            layers.RandomZoom(zoom, fill_mode="constant", fill_value=0.0, seed=seeds[2]),
            RandomCentralZoom(central_zoom_probability, central_zoom_fraction, seed=seeds[3]),
        ],
        name="geometric_and_zoom",
    )


def rotation_flip_zoom_brightness_noise(
    rotation=0.5, zoom=0.1, brightness=0.1, noise_stddev=0.02, value_range=(0, 255), seed=0
):
    """Rotation, flips, zoom, brightness and Gaussian noise; no translation (an2dl's list).

    Args:
        rotation: `keras.layers.RandomRotation(rotation)` (share of a full turn, filled by reflection).
            Defaults to 0.5.
        zoom: `keras.layers.RandomZoom(zoom)`. Defaults to 0.1.
        brightness: `keras.layers.RandomBrightness(brightness)`. Defaults to 0.1.
        noise_stddev: `RandomGaussianNoise(stddev=noise_stddev)`, a share of the value range. Defaults to 0.02.
        value_range: `[low, high]` of the images. Defaults to `(0, 255)`.
        seed: int or None; layer i is seeded with `seed + i`.

    Returns:
        A `keras.Sequential` named "rotation_flip_zoom_brightness_noise".
    """
    seeds = _seeds(seed, 5)
    return keras.Sequential(
        [
            layers.RandomRotation(rotation, seed=seeds[0]),
            layers.RandomFlip("horizontal_and_vertical", seed=seeds[1]),
            layers.RandomZoom(zoom, seed=seeds[2]),
            layers.RandomBrightness(brightness, value_range=_check_value_range(value_range), seed=seeds[3]),
            RandomGaussianNoise(noise_stddev, value_range=value_range, seed=seeds[4]),
        ],
        name="rotation_flip_zoom_brightness_noise",
    )


PRESETS = {
    "order_preserving": order_preserving,
    "geometric_and_zoom": geometric_and_zoom,
    "rotation_flip_zoom_brightness_noise": rotation_flip_zoom_brightness_noise,
}


# ---------------------------------------------------------------- helpers


def with_seed(augmentation, seed):
    """A fresh copy of `augmentation` (a layer or Sequential) whose random layers are seeded `seed`, `seed + 1`, ...

    The copy starts from a new random state, so the same `seed` gives the same draws however often the original
    was called. Built from the layer's config (every layer in it must be serialisable).
    """
    counter = itertools.count(int(seed))

    def reseed(node):
        if isinstance(node, dict):
            return {key: (next(counter) if key == "seed" else reseed(value)) for key, value in node.items()}
        if isinstance(node, list):
            return [reseed(value) for value in node]
        return node

    config = reseed(keras.saving.serialize_keras_object(augmentation))
    return keras.saving.deserialize_keras_object(config)


def preview(augmentation, image, count=9):
    """`count` augmented versions of one HWC image, as a float32 NumPy array (count, H, W, C), for a notebook grid."""
    image = np.asarray(image, dtype="float32")
    if image.ndim != 3:
        raise ValueError(f"`image` must be one HWC image. Received: image.shape={image.shape}")
    batch = np.repeat(image[None], count, axis=0)
    return ops.convert_to_numpy(augmentation(batch, training=True)).astype("float32")
