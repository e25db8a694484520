"""Loaders for every layout the studies use; each returns an `ImageSet`.

Layouts: class-folder trees (`<root>/<class>/*.jpg`), the C-NMC 2019 layout
(`[fold_k/]all|hem/UID_<patient>_<image>_<cell>_<all|hem>.bmp`) and npz files with `images` and `labels`.
Every problem raises `DataError` naming the file; with `skip_bad=True` bad files are left out, counted and
listed in `ImageSet.skipped` instead.
"""

import re
import zipfile
from collections import Counter
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medcnn.errors import DataError
from medcnn.data.imageio import (
    IMAGE_EXTENSIONS,
    check_color_mode,
    check_image_size,
    is_hidden,
    is_image_file,
    read_image,
)
from medcnn.data.labels import flat_labels


@dataclass(repr=False)
class ImageSet:
    """Images (or their paths), integer labels, class names, and optional patient groups and folds.

    `images` is an array (N, H, W, C) once decoded: uint8 as stored, or float32 in [0, 255] when files were resized
    (see `load_folders`); `paths` names the source files (None for npz).
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

    def __repr__(self):
        """A one-line summary (counts, classes, image shape, groups, source), never the list of paths."""
        if self.images is None:
            images = "not decoded"
        elif hasattr(self.images, "shape"):
            images = f"{tuple(self.images.shape)} {self.images.dtype}"
        else:  # a list of arrays of different sizes
            images = f"{len(self.images)} arrays of different sizes"
        parts = [
            f"{len(self)} items",
            f"classes={self.class_counts()}",
            f"images={images}",
            f"groups={'None' if self.groups is None else f'{len(set(np.asarray(self.groups).tolist()))} distinct'}",
        ]
        if self.folds is not None:
            parts.append(f"folds={sorted(set(np.asarray(self.folds).tolist()))}")
        if self.skipped:
            parts.append(f"skipped={len(self.skipped)}")
        parts.append(f"source={self.source!r}")
        return f"ImageSet({', '.join(parts)})"

    def class_counts(self):
        """{class name: count}, in class order."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(count) for name, count in zip(self.class_names, counts)}

    def names(self):
        """A short name per item: the file name, or `index <i>` for arrays without files."""
        if self.paths is not None:
            return [Path(p).name for p in self.paths]
        return [f"index {i}" for i in range(len(self))]

    def subset(self, indices):
        """A new ImageSet holding only `indices` (skipped files are kept for the record)."""
        indices = np.asarray(indices, dtype=int)

        def pick(values):
            if values is None:
                return None
            return [values[i] for i in indices] if isinstance(values, list) else values[indices]

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


# ----------------------------------------------------------------------------------------------------------------
# Decoding


def decode_files(paths, image_size, color_mode, skip_bad=False):
    """Decode `paths`; return (images, kept indices, skipped [(path, reason)]).

    Files already at `image_size` keep their uint8 pixels. Other files are resized by `read_image` through the
    resize of a saved model's `ImagePreprocessing`, so the pixels equal what the model computes from the raw
    file; they are not rounded, so `images` is then float32 (values in [0, 255]), and uint8 only when no file
    needed resizing. With `skip_bad=False` the first bad file raises its DataError; otherwise bad files are
    counted and listed, never dropped silently.
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
        folder = Path(paths[0]).parent.parent
        raise DataError(
            f"Images in {folder} have {len(shapes)} different sizes (H, W), e.g. {shapes[:4]}; "
            "pass image_size=(H, W) to resize them.",
            path=folder,
            problem="mixed_sizes",
        )
    channels = 1 if color_mode == "grayscale" else 3
    stacked = np.stack(images) if images else np.zeros((0, *(image_size or (0, 0)), channels), np.uint8)
    return stacked, np.asarray(kept, dtype=int), skipped


def decode_set(data, image_size=None, color_mode="rgb", skip_bad=False):
    """Decode an ImageSet listed with `decode=False` (e.g. after `subset`); returns a new, decoded ImageSet.

    Raises DataError when skipping bad files would leave a class without images.
    """
    image_size, color_mode = check_image_size(image_size), check_color_mode(color_mode)
    images, kept, skipped = decode_files(data.paths, image_size, color_mode, skip_bad=skip_bad)
    result = data.subset(kept)
    result.images, result.skipped = images, list(data.skipped) + skipped
    if skipped:
        _check_classes_left(result, data)
    return result


def _check_classes_left(result, before):
    counts_before, counts_after = before.class_counts(), result.class_counts()
    emptied = [name for name in before.class_names if counts_before[name] and not counts_after[name]]
    if emptied:
        raise DataError(
            f"{before.source}: every image of class(es) {emptied} was unreadable and skipped "
            f"({len(result.skipped)} skipped files, first: {result.skipped[0][0]}). Fix or replace those files.",
            path=before.source,
            problem="empty_class",
        )


# ----------------------------------------------------------------------------------------------------------------
# Listing class folders


def _raiser(error):
    raise error


def _check_folder(root):
    """DataError unless `root` is a folder: a file gets advice of its own, a missing path the download steps."""
    if root.is_file():
        raise DataError(
            f"{root}: a file, not a folder. Pass its folder (the one holding the class sub-folders), or an .npz "
            "file (load_npz).",
            path=root,
            problem="not_a_folder",
        )
    if not root.is_dir():
        raise DataError(
            f"{root}: no such folder. Set MEDCNN_DATA or pass the data folder; data/README.md gives the "
            "download steps.",
            path=root,
            problem="missing_folder",
        )


def natural_key(text):
    """Sort key for natural order: digit runs compare by value, so 'H2' < 'H10' and '1' < '2' < '10' < 'X'.

    Names that start with a number come before names that start with a letter; names without digits keep plain
    string order (so 'Benign', 'Early', 'Pre', 'Pro' are unchanged).
    """
    chunks = re.split(r"(\d+)", str(text))
    return tuple(int(chunk) if index % 2 else chunk for index, chunk in enumerate(chunks)), str(text)


def _check_class_order(class_order, folders, root):
    """`folders` reordered as `class_order`; DataError naming the missing and unknown class folders."""
    if isinstance(class_order, str) or not all(isinstance(name, str) for name in class_order):
        raise ValueError(
            f"`class_order` must be a list of class folder names, e.g. ['1', '2', 'X']. Received: "
            f"class_order={class_order!r}"
        )
    repeated = [name for name, count in Counter(class_order).items() if count > 1]
    if repeated:
        raise ValueError(f"`class_order` names {repeated} more than once. Received: class_order={class_order!r}")
    by_name = {folder.name: folder for folder in folders}
    missing = [name for name in class_order if name not in by_name]
    unknown = [name for name in by_name if name not in class_order]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"no folder for class(es) {missing}")
        if unknown:
            parts.append(f"folder(s) {unknown} are not in class_order")
        raise DataError(
            f"{root}: the class folders do not match class_order: {'; '.join(parts)}. Found folders "
            f"{sorted(by_name, key=natural_key)}; pass a class_order that lists each class folder once.",
            path=root,
            problem="class_order",
        )
    return [by_name[name] for name in class_order]


def _class_folders(root, class_order=None):
    root = Path(root)
    _check_folder(root)
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not is_hidden(p)), key=lambda p: natural_key(p.name))
    if class_order is not None:
        folders = _check_class_order(class_order, folders, root)
    if len(folders) < 2:
        hint = ""
        if len(folders) == 1 and sum(p.is_dir() and not is_hidden(p) for p in folders[0].iterdir()) >= 2:
            hint = f" The classes may sit one level down: try {folders[0]}."
        raise DataError(
            f"{root}: found {len(folders)} class folder(s) {[p.name for p in folders]}; a classification data set "
            f"needs at least two, laid out as <root>/<class>/*.jpg.{hint}",
            path=root,
            problem="too_few_classes",
        )
    return folders


def _images_in(folder, found_folders, fix="Add images to it, or remove the folder if it is not a class."):
    entries = [p for p in Path(folder).iterdir() if p.is_file() and not is_hidden(p)]
    files = sorted(p for p in entries if is_image_file(p))
    if not files:
        others = sorted(p.name for p in entries)
        seen = f" It holds {len(others)} other file(s), e.g. {others[:3]}." if others else ""
        raise DataError(
            f"No images found for class '{Path(folder).name}' in {folder}. Expected at least one "
            f"{', '.join(IMAGE_EXTENSIONS)} file in each class folder (found folders: "
            f"{', '.join(repr(n) for n in found_folders)}).{seen} {fix}",
            path=folder,
            problem="empty_class",
        )
    return files


def list_folders(root, on_error=None, class_order=None):
    """(paths, labels, class_names) of a `<root>/<class>/*` tree, without decoding anything.

    Class folders are in natural order (see `natural_key`: '1', '2', ..., '10', ..., 'X', 'Y'), or in
    `class_order` when given (it must name every class folder exactly once). `on_error(DataError)` receives each
    empty class folder instead of raising (the validator collects them); fewer than two class folders always raises.
    """
    on_error = on_error or _raiser
    folders = _class_folders(root, class_order)
    names = [p.name for p in folders]
    paths, labels = [], []
    for label, folder in enumerate(folders):
        try:
            files = _images_in(folder, names)
        except DataError as error:
            on_error(error)
            continue
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64), names


def load_folders(root, image_size=None, color_mode="rgb", skip_bad=False, decode=True, class_order=None):
    """Load a class-folder tree `<root>/<class>/*.jpg|png|bmp|tif`; labels follow the class order.

    Args:
        root: the folder holding one sub-folder per class.
        image_size: None keeps the files' size (they must all agree), else `(height, width)`. Files of another
            size are resized exactly as a saved model's `medcnn.preprocessing.ImagePreprocessing(image_size, ...)`
            resizes the raw file (one code path, antialiased bilinear, see `medcnn.data.imageio.read_image`), so
            training and serving see the same pixels. Those pixels are not rounded: `images` is then float32 in
            [0, 255]. Files already at `image_size` are not touched, and when none needed resizing `images` stays
            uint8 (4 times less memory). Resizing imports Keras.
        color_mode: "grayscale" or "rgb".
        skip_bad: leave unreadable files out, listing them in `skipped`, instead of raising.
        decode: False lists paths and labels only (`images` stays None); see `decode_set`.
        class_order: None for natural order of the folder names ('1', '2', ..., '10', ..., 'X', 'Y'; names
            without digits sort alphabetically), or the list of class folder names in label order. A folder
            missing from it, or a name without a folder, raises DataError naming them.
    """
    image_size, color_mode = check_image_size(image_size), check_color_mode(color_mode)
    paths, labels, names = list_folders(root, class_order=class_order)
    data = ImageSet(labels=labels, class_names=names, paths=paths, source=str(root))
    return decode_set(data, image_size, color_mode, skip_bad) if decode else data


# ----------------------------------------------------------------------------------------------------------------
# C-NMC 2019

CNMC_NAME = re.compile(
    r"^UID_(?P<patient>[A-Za-z]*\d+)_(?P<image>\d+)_(?P<cell>\d+)_(?P<label>all|hem)$", re.IGNORECASE
)
CNMC_CLASSES = ["all", "hem"]
FOLD_FOLDER = re.compile(r"fold_(\d+)")


def parse_cnmc_name(path):
    """(patient id, label name) from a C-NMC file name such as `UID_H10_3_1_hem.bmp`; 'h3' is read as 'H3'."""
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


def cnmc_parts(root):
    """[(fold or None, folder holding all/ and hem/)] of a C-NMC tree: its `fold_k/` folders, else root itself."""
    root = Path(root)
    _check_folder(root)
    fold_dirs = sorted(
        (int(FOLD_FOLDER.fullmatch(p.name)[1]), p)
        for p in root.iterdir()
        if p.is_dir() and FOLD_FOLDER.fullmatch(p.name)
    )
    return fold_dirs or [(None, root)]


def list_cnmc(root, on_error=None):
    """(paths, labels, groups, folds) of a C-NMC tree, without decoding; `folds` is None without fold folders.

    `on_error(DataError)` receives each badly named or mislabelled file (and each empty class folder) instead
    of raising; a missing `all/` or `hem/` folder always raises.
    """
    on_error = on_error or _raiser
    parts = cnmc_parts(root)
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
            try:
                files = _images_in(folder, CNMC_CLASSES, fix="Add the class's images to it.")
            except DataError as error:
                on_error(error)
                continue
            for path in files:
                try:
                    patient, suffix = parse_cnmc_name(path)
                    if suffix != name:
                        raise DataError(
                            f"{path}: the name says '{suffix}' but the file sits in the '{name}' folder.",
                            path=path,
                            problem="label_mismatch",
                        )
                except DataError as error:
                    on_error(error)
                    continue
                paths.append(str(path))
                labels.append(label)
                groups.append(patient)
                folds.append(-1 if fold is None else fold)
    folds = None if parts[0][0] is None else np.asarray(folds, dtype=np.int64)
    return paths, np.asarray(labels, dtype=np.int64), np.asarray(groups, dtype=str), folds


def load_cnmc(root, image_size=None, color_mode="rgb", skip_bad=False, decode=True):
    """Load C-NMC 2019: `[fold_k/]all|hem/UID_...`; label from the folder, patient from the name, fold from `fold_k`.

    A file whose name suffix disagrees with its folder, or that does not follow the pattern, raises (or, with
    `skip_bad=True`, is listed in `skipped`). Other arguments as in `load_folders`.
    """
    image_size, color_mode = check_image_size(image_size), check_color_mode(color_mode)
    errors = []
    paths, labels, groups, folds = list_cnmc(root, on_error=errors.append if skip_bad else None)
    for error in errors:
        if error.problem == "empty_class":  # structural: skipping cannot fix it
            raise error
    skipped = [(error.path, str(error)) for error in errors]
    data = ImageSet(
        labels=labels,
        class_names=list(CNMC_CLASSES),
        paths=paths,
        groups=groups,
        folds=folds,
        skipped=skipped,
        source=str(root),
    )
    if not len(data):
        raise DataError(f"{root}: no usable C-NMC images ({len(skipped)} skipped).", path=root, problem="empty_class")
    return decode_set(data, image_size, color_mode, skip_bad) if decode else data


# ----------------------------------------------------------------------------------------------------------------
# npz


def read_npz(path, images_key="images", labels_key="labels"):
    """(images, labels) arrays of an npz file, read with `allow_pickle=False`; DataError for anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.", path=path, problem="missing_file")
    if path.stat().st_size == 0:
        raise DataError(
            f"{path}: the file is empty (0 bytes). Re-download or remove it.", path=path, problem="empty_file"
        )
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"{path}: not an npz archive, or a truncated one (an npz is a zip of .npy arrays; save one with "
            "numpy.savez).",
            path=path,
            problem="not_npz",
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in (images_key, labels_key) if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: missing array(s) {missing}; found {archive.files}. Expected '{images_key}' and "
                    f"'{labels_key}'.",
                    path=path,
                    problem="missing_array",
                )
            return archive[images_key], archive[labels_key]
    except DataError:
        raise
    except ValueError as error:  # object arrays need pickle, which we refuse
        raise DataError(
            f"{path}: holds object (pickled) arrays, which are never loaded ({error}). Store plain numeric arrays.",
            path=path,
            problem="pickled",
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path}: not a readable npz file ({error}).", path=path, problem="unreadable") from None


def npz_problems(images, labels, class_names=None):
    """Every problem of an (images, labels) pair as `[(tag, message)]`; empty when the arrays are usable."""
    problems = []
    if images.dtype == object or labels.dtype == object:
        return [("pickled", "holds object arrays; store plain numeric arrays.")]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
        problems.append(
            (
                "bad_rank",
                f"images must have shape (N, H, W) or (N, H, W, C) with C in 1/3/4. Received: shape={images.shape}",
            )
        )
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        problems.append(("bad_dtype", f"images must be integer or float. Received: dtype={images.dtype}"))
    elif np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
        bad = int((~np.isfinite(images)).reshape(len(images), -1).any(axis=1).sum()) if images.ndim else 1
        problems.append(("non_finite", f"{bad} image(s) hold NaN or inf values."))
    labels = flat_labels(labels)
    if labels.ndim != 1:
        problems.append(("bad_rank", f"labels must have shape (N,) or one-hot (N, K). Received: shape={labels.shape}"))
        return problems
    if images.ndim and len(images) != len(labels):
        problems.append(
            ("length_mismatch", f"{len(images)} images but {len(labels)} labels; the arrays must have the same length.")
        )
    if np.issubdtype(labels.dtype, np.floating):
        if not np.isfinite(labels).all() or not np.all(labels == np.round(labels)):
            problems.append(("bad_labels", "labels must be whole numbers (found NaN, inf or fractions)."))
            return problems
    elif not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        problems.append(("bad_labels", f"labels must be integers. Received: dtype={labels.dtype}"))
        return problems
    if labels.size and len(np.unique(labels)) < 2:
        problems.append(
            (
                "too_few_classes",
                f"all {labels.size} labels are {labels.flat[0]!r}; a classification set needs two classes.",
            )
        )
    if labels.size and labels.min() < 0:
        problems.append(
            ("bad_labels", f"labels must be >= 0; found {int(labels.min())} ({int((labels < 0).sum())} label(s)).")
        )
    if class_names is not None and labels.size and labels.max() >= len(class_names):
        outside = int((labels >= len(class_names)).sum())
        problems.append(
            (
                "bad_labels",
                (
                    f"label {int(labels.max())} is outside the {len(class_names)} classes {list(class_names)} "
                    f"({outside} label(s) >= {len(class_names)})."
                ),
            )
        )
    return problems


def load_npz(path, class_names=None, images_key="images", labels_key="labels"):
    """Load an npz with `images` (N, H, W[, C]) and integer or one-hot `labels`; never unpickles.

    Images are kept as stored (uint8 or float), (N, H, W) gaining a channel axis. Checks cover object arrays,
    lengths, rank, NaN/inf and the label range; the first problem raises DataError naming the file.
    """
    images, labels = read_npz(path, images_key, labels_key)
    problems = npz_problems(images, labels, class_names)
    if problems:
        tag, message = problems[0]
        raise DataError(f"{path}: {message}", path=path, problem=tag)
    labels = flat_labels(labels).astype(np.int64)
    if images.ndim == 3:
        images = images[..., None]
    names = list(class_names) if class_names is not None else [str(i) for i in range(int(labels.max(initial=-1)) + 1)]
    return ImageSet(labels=labels, class_names=names, images=images, source=str(path))
