"""Offline augmentation: N augmented copies per image, in memory (`expand`) or written to disk (`write_augmented`).

For the kth protocol, which augments before splitting. `expand` records the source of every image in `groups`, so
that a group-aware split (or the leakage check) can keep all copies of one source on one side, and a notebook can
show how many sources the published protocol puts on two sides.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from medcnn.augment import with_seed
from medcnn.errors import DataError
from medcnn.data.loaders import ImageSet

# Images augmented per call of the augmentation: bounds memory for large images (416x416 kth karyograms).
CHUNK = 32


def _check_copies(copies):
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 1:
        raise ValueError(f"`copies` must be a positive int. Received: copies={copies!r}")
    return int(copies)


def _augmented_copies(images, copies, augmentation, seed):
    """Array (copies, N, H, W, C) of the images' dtype: copy k of every image, from a fresh copy of `augmentation`.

    Values are clipped to [0, 255]; uint8 images are rounded back to uint8, float32 ones are not rounded.
    """
    import keras

    layer = with_seed(augmentation, seed)
    out = np.empty((copies, *images.shape), dtype=images.dtype)
    for k in range(copies):
        for start in range(0, len(images), CHUNK):
            batch = images[start : start + CHUNK].astype(np.float32)
            augmented = np.clip(keras.ops.convert_to_numpy(layer(batch, training=True)), 0, 255)
            out[k, start : start + CHUNK] = np.rint(augmented) if images.dtype == np.uint8 else augmented
    return out


def expand(data: ImageSet, copies, augmentation, seed=0, include_original=True) -> ImageSet:
    """Return `data` with `copies` augmented versions of every image added (or, without originals, only those).

    Args:
        data: an ImageSet with decoded `images` (N, H, W, C), uint8 or float32 in [0, 255] (as the loaders
            return resized images); the copies keep that dtype.
        copies: positive int, augmented versions per image.
        augmentation: a Keras layer or Sequential working on [0, 255] float images (e.g.
            `medcnn.augment.order_preserving()`); a fresh copy seeded with `seed` is used (see
            `medcnn.augment.with_seed`), so the same seed gives the same images.
        seed: int seed of the copies.
        include_original: keep the N originals in front.

    Returns:
        An ImageSet ordered originals first, then copy 1 of every image, copy 2, ...: `labels` and `paths` are
        those of the source, `groups` the source's index in `data` (so copies of one source share a group),
        `folds` the source's fold. Its `source` says "augmented".
    """
    if data.images is None:
        raise DataError(
            f"{data.source or 'data'}: images are not decoded; load with decode=True.", problem="not_decoded"
        )
    copies = _check_copies(copies)
    images = np.asarray(data.images)
    if images.dtype not in (np.uint8, np.float32):
        raise ValueError(
            f"`data.images` must be uint8 or float32 in [0, 255] (N, H, W, C). Received: dtype={images.dtype}"
        )
    augmented = _augmented_copies(images, copies, augmentation, seed).reshape(-1, *images.shape[1:])
    sources = np.tile(np.arange(len(images)), copies)
    if include_original:
        augmented = np.concatenate([images, augmented])
        sources = np.concatenate([np.arange(len(images)), sources])
    expanded = data.subset(sources)
    expanded.images = augmented
    expanded.groups = sources
    expanded.source = f"{data.source} (augmented: {copies} copies per image, seed {seed})"
    return expanded


def _stems(data):
    """One file stem per image: the source file's stem, or image<index> when there are no paths."""
    if data.paths is None:
        return [f"image{index:05d}" for index in range(len(data))]
    return [Path(path).stem for path in data.paths]


def write_augmented(data: ImageSet, out_dir, copies, augmentation, seed=0):
    """Write `copies` augmented versions of each image as `<out_dir>/<class>/<stem>_aug<k>.png`, k = 1..copies.

    Same images as `expand(data, copies, augmentation, seed, include_original=False)`. Existing files of the
    same name are overwritten; two sources of one class with the same file stem raise DataError (their copies
    would overwrite each other).

    Returns:
        The list of written paths (`pathlib.Path`), in the order copy 1 of every image, copy 2, ...
    """
    copies = _check_copies(copies)
    stems = _stems(data)
    seen = {}
    for index, (label, stem) in enumerate(zip(data.labels, stems)):
        key = (int(label), stem)
        if key in seen:
            first = data.paths[seen[key]] if data.paths else seen[key]
            second = data.paths[index] if data.paths else index
            raise DataError(
                f"{second}: same file stem '{stem}' as {first} in class '{data.class_names[label]}'; their augmented "
                "copies would overwrite each other. Rename one of them.",
                path=second,
                problem="duplicate_stem",
            )
        seen[key] = index
    expanded = expand(data, copies, augmentation, seed=seed, include_original=False)
    out_dir = Path(out_dir)
    written = []
    for position, (image, source) in enumerate(zip(expanded.images, expanded.groups)):
        k = position // len(data) + 1
        folder = out_dir / data.class_names[data.labels[source]]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stems[source]}_aug{k}.png"
        pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)  # PNG holds uint8; float copies are rounded here
        Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)
        written.append(path)
    return written
