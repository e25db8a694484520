"""What a study does with a decoded `ImageSet` besides training on it: its images decoded again at another size,
offline augmented copies laid out after the originals, and images written as files for `predict`.

Copy k of image i sits at row `k * N + i`, the layout `medcnn.experiment.features` uses for augmented views, so
`features.view_rows(train, N, copies)` gives a split's training side with its copies.
"""

from pathlib import Path

import numpy as np


def images_at(data, image_size):
    """The images of `data` at another `image_size`, (N, H, W, 3) float32 in [0, 255], in `data`'s order: decoded
    again from their files (resized exactly as a saved model's preprocessing resizes a raw file), or resized from
    in-memory images when there are no files. A file that cannot be decoded raises its `DataError`."""
    from medcnn.data.loaders import decode_files
    from medcnn.data.resize import resize_pixels

    size = tuple(int(side) for side in image_size)
    if data.paths is None:
        return np.asarray(resize_pixels(np.asarray(data.images, dtype=np.float32), size), dtype=np.float32)
    images, _, _ = decode_files(data.paths, size, "rgb")
    return np.asarray(images, dtype=np.float32)


def images_with_copies(images, copies, augmentation, seed=0):
    """(N * (1 + copies), H, W, C) float32: `images`, then `copies` augmented versions of every one, drawn by
    `augmentation` (a Keras layer on [0, 255] images, re-seeded with `seed`: `offline_augment.expand`)."""
    from medcnn.data.loaders import ImageSet
    from medcnn.data.offline_augment import expand

    images = np.asarray(images, dtype=np.float32)
    if not copies:
        return images
    holder = ImageSet(labels=np.zeros(len(images), dtype=int), class_names=["all"], images=images)
    return expand(holder, copies, augmentation, seed=seed).images


def as_files(data, indices, folder):
    """Raw image files of `indices` (e.g. for `python -m medcnn predict`): the source files, or PNGs written to
    `folder` from in-memory images, named `image<index>_<class>.png`."""
    from PIL import Image

    if data.paths is not None:
        return [str(data.paths[i]) for i in indices]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in indices:
        path = folder / f"image{index:05d}_{data.class_names[data.labels[index]]}.png"
        Image.fromarray(np.clip(np.rint(data.images[index]), 0, 255).astype(np.uint8)).save(path)
        files.append(str(path))
    return files


def image_set_digest(data):
    """A hash of what `data` holds, for a run's fingerprint: its files' relative paths and sizes
    (`report.file_list_hash`), or the sha256 of its in-memory images' bytes when there are no files (an npz)."""
    import hashlib

    from medcnn.report import file_list_hash

    if data.paths is not None:
        return file_list_hash(data.paths)
    return hashlib.sha256(np.ascontiguousarray(data.images).tobytes()).hexdigest()
