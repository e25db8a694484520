"""Loaders for every layout the studies use; each returns an `ImageSet`.

Layouts: class-folder trees (`<root>/<class>/*.jpg`), the C-NMC 2019 layout
(`[fold_k/]all|hem/UID_<patient>_<image>_<cell>_<all|hem>.bmp`) and npz files with `images` and `labels`.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medcnn.errors import DataError
from medcnn.imageio import check_color_mode, check_image_size, is_hidden, is_image_file, read_image


@dataclass
class ImageSet:
    """Images (or their paths), integer labels, class names, and optional patient groups and folds.

    `images` is a uint8 array (N, H, W, C) once decoded; `paths` names the source files (None for npz).
    `skipped` lists `(path, reason)` for every file left out because the caller asked to skip bad files.
    """

    labels: np.ndarray
    class_names: list
    paths: list = None
    images: np.ndarray = None
    groups: np.ndarray = None
    folds: np.ndarray = None
    skipped: list = field(default_factory=list)
    source: str = ""

    def __len__(self):
        return len(self.labels)

    def class_counts(self):
        """{class name: count}, in class order."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(count) for name, count in zip(self.class_names, counts)}

    def subset(self, indices):
        """A new ImageSet holding only `indices` (skipped files are kept for the record)."""
        indices = np.asarray(indices, dtype=int)
        pick = lambda values: None if values is None else (  # noqa: E731
            [values[i] for i in indices] if isinstance(values, list) else values[indices]
        )
        return ImageSet(
            labels=self.labels[indices],
            class_names=list(self.class_names),
            paths=pick(self.paths),
            images=pick(self.images),
            groups=pick(self.groups),
            folds=pick(self.folds),
            skipped=list(self.skipped),
            source=self.source,
        )


def decode_files(paths, image_size, color_mode, skip_bad=False):
    """Decode `paths`; return (images, kept indices, skipped [(path, reason)]).

    With `skip_bad=False` the first bad file raises its DataError; otherwise bad files are counted, not dropped silently.
    """
    images, kept, skipped = [], [], []
    for index, path in enumerate(paths):
        try:
            images.append(read_image(path, image_size=image_size, color_mode=color_mode))
            kept.append(index)
        except DataError as error:
            if not skip_bad:
                raise
            skipped.append((str(path), str(error)))
    if images and image_size is None and len({image.shape for image in images}) > 1:
        shapes = sorted({image.shape[:2] for image in images})
        raise DataError(
            f"Images in {Path(paths[0]).parent.parent} have different sizes {shapes[:4]}; pass image_size=(H, W) to resize them.",
            path=Path(paths[0]).parent.parent,
            problem="mixed_sizes",
        )
    channels = 1 if color_mode == "grayscale" else 3
    stacked = np.stack(images) if images else np.zeros((0, *(image_size or (0, 0)), channels), np.uint8)
    return stacked, np.asarray(kept, dtype=int), skipped


def _class_folders(root):
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder. Set MEDCNN_DATA or pass the data folder.", path=root, problem="missing_folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p))
    if len(folders) < 2:
        raise DataError(
            f"{root}: found {len(folders)} class folder(s) {[p.name for p in folders]}; a classification data set needs "
            "at least two, laid out as <root>/<class>/*.jpg.",
            path=root,
            problem="too_few_classes",
        )
    return folders


def _images_in(folder, found_folders):
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise DataError(
            f"No images found for class '{Path(folder).name}' in {folder}. Expected at least one .jpg, .png, .bmp or .tif "
            f"file in each class folder (found folders: {', '.join(repr(n) for n in found_folders)}).",
            path=folder,
            problem="empty_class",
        )
    return files


def list_folders(root):
    """(paths, labels, class_names) of a `<root>/<class>/*` tree, without decoding anything."""
    folders = _class_folders(root)
    names = [p.name for p in folders]
    paths, labels = [], []
    for label, folder in enumerate(folders):
        files = _images_in(folder, names)
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64), names


def load_folders(root, image_size=None, color_mode="rgb", skip_bad=False, decode=True):
    """Load a class-folder tree `<root>/<class>/*.jpg|png|bmp|tif`; labels follow sorted class names."""
    image_size, color_mode = check_image_size(image_size), check_color_mode(color_mode)
    paths, labels, names = list_folders(root)
    return _finish(paths, labels, names, None, None, image_size, color_mode, skip_bad, decode, str(root))


CNMC_NAME = re.compile(r"^UID_(?P<patient>[A-Za-z]*\d+)_(?P<image>\d+)_(?P<cell>\d+)_(?P<label>all|hem)$", re.IGNORECASE)
CNMC_CLASSES = ["all", "hem"]


def parse_cnmc_name(path):
    """(patient id, label name) from a C-NMC file name such as `UID_H10_3_1_hem.bmp`."""
    match = CNMC_NAME.match(Path(path).stem)
    if not match:
        raise DataError(
            f"{path}: file name does not follow the C-NMC pattern UID_<patient>_<image>_<cell>_<all|hem>.",
            path=path,
            problem="bad_name",
        )
    patient = match["patient"]
    patient = ("H" + patient[1:]) if patient[:1] in "hH" else patient  # the data's own 'h3' quirk
    return patient, match["label"].lower()


def load_cnmc(root, image_size=None, color_mode="rgb", skip_bad=False, decode=True):
    """Load C-NMC 2019: `[fold_k/]all|hem/UID_...`; label from the folder, patient from the name, fold from `fold_k`.

    A file whose name suffix disagrees with its folder raises (the label would be ambiguous).
    """
    image_size, color_mode = check_image_size(image_size), check_color_mode(color_mode)
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder.", path=root, problem="missing_folder")
    fold_dirs = sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"fold_\d+", p.name))
    parts = [(int(p.name.split("_")[1]), p) for p in fold_dirs] or [(None, root)]
    paths, labels, groups, folds = [], [], [], []
    for fold, base in parts:
        for label, name in enumerate(CNMC_CLASSES):
            folder = base / name
            if not folder.is_dir():
                raise DataError(
                    f"{base}: expected class folders 'all' and 'hem' (C-NMC layout), '{name}' is missing.",
                    path=folder,
                    problem="empty_class",
                )
            for path in _images_in(folder, CNMC_CLASSES):
                patient, suffix = parse_cnmc_name(path)
                if suffix != name:
                    raise DataError(
                        f"{path}: the name says '{suffix}' but the file sits in the '{name}' folder.",
                        path=path,
                        problem="label_mismatch",
                    )
                paths.append(str(path))
                labels.append(label)
                groups.append(patient)
                folds.append(-1 if fold is None else fold)
    folds = None if parts[0][0] is None else np.asarray(folds)
    return _finish(
        paths, np.asarray(labels, np.int64), list(CNMC_CLASSES), np.asarray(groups), folds,
        image_size, color_mode, skip_bad, decode, str(root),
    )


def _finish(paths, labels, names, groups, folds, image_size, color_mode, skip_bad, decode, source):
    data = ImageSet(labels=labels, class_names=names, paths=paths, groups=groups, folds=folds, source=source)
    if not decode:
        return data
    images, kept, skipped = decode_files(paths, image_size, color_mode, skip_bad=skip_bad)
    data = data.subset(kept)
    data.images, data.skipped = images, skipped
    return data


def load_npz(path, class_names=None, images_key="images", labels_key="labels"):
    """Load an npz with `images` (N, H, W[, C]) and integer `labels` (N,); never unpickles.

    Images are kept as stored (uint8 or float); checks cover lengths, rank, NaN/inf and the label range.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.", path=path, problem="missing_file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in (images_key, labels_key) if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: missing array(s) {missing}; found {archive.files}. Expected '{images_key}' and '{labels_key}'.",
                    path=path,
                    problem="missing_array",
                )
            images, labels = archive[images_key], archive[labels_key]
    except DataError:
        raise
    except ValueError as error:  # object arrays need pickle, which we refuse
        raise DataError(f"{path}: holds object (pickled) arrays, which are never loaded ({error}).", path=path, problem="pickled") from None
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable npz file ({error}).", path=path, problem="unreadable") from None
    labels = _check_npz_arrays(path, images, labels, class_names)
    if images.ndim == 3:
        images = images[..., None]
    names = list(class_names) if class_names is not None else [str(i) for i in range(int(labels.max()) + 1)]
    return ImageSet(labels=labels, class_names=names, images=images, source=str(path))


def _check_npz_arrays(path, images, labels, class_names):
    def fail(message, problem):
        raise DataError(f"{path}: {message}", path=path, problem=problem)

    if images.dtype == object or labels.dtype == object:
        fail("holds object arrays; store plain numeric arrays.", "pickled")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
        fail(f"images must have shape (N, H, W) or (N, H, W, C) with C in 1/3/4. Received: shape={images.shape}", "bad_rank")
    labels = labels.squeeze()
    if labels.ndim == 2:  # one-hot
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        fail(f"labels must have shape (N,). Received: shape={labels.shape}", "bad_rank")
    if len(images) != len(labels):
        fail(f"{len(images)} images but {len(labels)} labels; the arrays must have the same length.", "length_mismatch")
    if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
        bad = int((~np.isfinite(images)).reshape(len(images), -1).any(axis=1).sum())
        fail(f"{bad} image(s) hold NaN or inf values.", "non_finite")
    if np.issubdtype(labels.dtype, np.floating):
        if not np.isfinite(labels).all() or not np.all(labels == np.round(labels)):
            fail("labels must be whole numbers.", "bad_labels")
    elif not np.issubdtype(labels.dtype, np.integer):
        fail(f"labels must be integers. Received: dtype={labels.dtype}", "bad_labels")
    labels = labels.astype(np.int64)
    n_classes = len(class_names) if class_names is not None else None
    if labels.size and labels.min() < 0:
        fail(f"labels must be >= 0; found {int(labels.min())}.", "bad_labels")
    if n_classes is not None and labels.size and labels.max() >= n_classes:
        fail(f"label {int(labels.max())} is outside the {n_classes} classes {list(class_names)}.", "bad_labels")
    return labels
