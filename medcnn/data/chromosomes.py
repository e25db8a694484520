"""Single-chromosome crops (the `chromosome` study, and the material of the `kth` karyogram stand-in).

Layout: `<root>/<class>/*.png` with class folders `1`..`22`, `X`, `Y` (`23` and `24` are read as X and Y, as in the
CIR-Net archive and BioImLab). CIR-Net file names, `<class>_<copy>_<case>_<slide>_<cell>` (e.g.
`21_1_56131_115966_1341591.png`), say which case and which metaphase (cell) a crop comes from; `chromosome_metadata`
reads them, and `load_chromosomes` puts the case in `ImageSet.groups`. A tree whose names follow no such pattern
(BioImLab) loads without groups.

Crops are small, long and thin and vary in size. `fit_image` brings one to a fixed size, either keeping its aspect
ratio and padding with the background ("pad") or stretching it ("stretch"), so a notebook can compare the two.
"""

import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from skimage.transform import resize as _resize

from medcnn.data.imageio import check_color_mode, check_image_size, read_image
from medcnn.data.loaders import ImageSet, load_folders
from medcnn.data.paths import resolve_dataset
from medcnn.errors import DataError

KARYOTYPE_ORDER = (*(str(number) for number in range(1, 23)), "X", "Y")
AUTOSOMES = KARYOTYPE_ORDER[:22]
RESIZE_MODES = ("pad", "stretch")
# CIR-Net: <class 1-24>_<copy>_<case>_<slide>_<cell>; the slide id is one per case, the cell id one per metaphase.
CIRNET_NAME = re.compile(r"^(?P<number>\d{1,2})_(?P<copy>\d+)_(?P<case>\d+)_(?P<slide>\d+)_(?P<cell>\d+)$")
# Class folder names: '1'..'24', 'X', 'Y', optionally prefixed 'chr' / 'ch' / 'chr_' (any case).
CLASS_FOLDER = re.compile(r"^(?:chr?_?)?(?P<name>\d{1,2}|x|y)$", re.IGNORECASE)
METADATA_COLUMNS = ["path", "file", "class_name", "copy", "case", "metaphase"]


def canonical_class(name):
    """'1'..'22', 'X' or 'Y' for a class folder or file-name class ('23' -> 'X', '24' -> 'Y', 'chr7' -> '7').

    Returns None when `name` names no human chromosome.
    """
    match = CLASS_FOLDER.fullmatch(str(name))
    if not match:
        return None
    value = match["name"].upper()
    if value.isdigit():
        number = int(value)
        value = {23: "X", 24: "Y"}.get(number, str(number))
    return value if value in KARYOTYPE_ORDER else None


def parse_chromosome_name(path):
    """The class, copy, case and metaphase a CIR-Net file name encodes, as a dict.

    `21_2_56131_115966_1341591.png` gives class '21', copy 2, case '56131' and metaphase '56131_115966_1341591'
    (case, slide and cell together, unique across the data set).

    Raises:
        DataError: the name does not follow `<class>_<copy>_<case>_<slide>_<cell>`, or its class is not 1..24.
    """
    match = CIRNET_NAME.fullmatch(Path(path).stem)
    class_name = canonical_class(match["number"]) if match else None
    if class_name is None:
        raise DataError(
            f"{path}: file name does not follow the CIR-Net pattern <class 1-24>_<copy>_<case>_<slide>_<cell>, "
            "e.g. 21_1_56131_115966_1341591.png. Rename it, or move it out of the data folder.",
            path=path,
            problem="bad_name",
        )
    return {
        "class_name": class_name,
        "copy": int(match["copy"]),
        "case": match["case"],
        "metaphase": f"{match['case']}_{match['slide']}_{match['cell']}",
    }


def chromosome_metadata(data_or_paths):
    """One row per file: path, file, class_name, copy, case, metaphase (in the order given).

    Args:
        data_or_paths: an `ImageSet` with `paths` (e.g. from `load_chromosomes`, also after `subset`) or a list
            of CIR-Net file paths.

    Returns:
        A DataFrame with `METADATA_COLUMNS`; `metaphase` is unique across cases.

    Raises:
        DataError: a file name does not follow the CIR-Net pattern (BioImLab names carry no case or metaphase).
    """
    paths = data_or_paths.paths if isinstance(data_or_paths, ImageSet) else data_or_paths
    if paths is None:
        raise ValueError("The ImageSet has no `paths` (an npz set?); metadata comes from CIR-Net file names.")
    rows = [{"path": str(path), "file": Path(path).name, **parse_chromosome_name(path)} for path in paths]
    return pd.DataFrame(rows, columns=METADATA_COLUMNS)


# ----------------------------------------------------------------------------------------------------------------
# Converting the original CIR-Net TIFF files


def read_cirnet_tiff(path):
    """One original CIR-Net TIFF as a 2-D uint8 array, read from its first strip.

    The archive's TIFFs list two strips, the second past the end of the file, while the first already holds the
    whole uncompressed 8-bit image; Pillow then reports the file as truncated. This reads the first strip's
    `width * height` bytes raw, as the staged PNGs were made (see data/README.md).

    Raises:
        DataError: not a TIFF, or not one uncompressed 8-bit grayscale image in its first strip.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            tags = image.tag_v2
            layout = (image.format, tags.get(258), tags.get(259, 1), tags.get(277, 1))
            offset, count = tags.get(273, (0,))[0], tags.get(279, (0,))[0]
    except (OSError, UnidentifiedImageError, AttributeError) as error:
        raise DataError(f"{path}: not a readable TIFF file ({error}).", path=path, problem="unreadable") from None
    if layout[0] != "TIFF" or layout[1] not in (8, (8,)) or layout[2] != 1 or layout[3] != 1 or count < width * height:
        raise DataError(
            f"{path}: expected one uncompressed 8-bit grayscale image in the first strip (the CIR-Net layout); "
            f"found format, bits, compression, samples = {layout} and a first strip of {count} bytes for "
            f"{width}x{height} pixels.",
            path=path,
            problem="unreadable",
        )
    with open(path, "rb") as file:
        file.seek(offset)
        pixels = file.read(width * height)
    if len(pixels) < width * height:
        raise DataError(f"{path}: the first strip ends early; the file is truncated.", path=path, problem="unreadable")
    return np.frombuffer(pixels, np.uint8).reshape(height, width).copy()


def convert_cirnet(source, out_dir):
    """Convert an unpacked CIR-Net archive (`origin.tar.gz`) into the loader's layout: `<out_dir>/<class>/*.png`.

    Every `*.tif` / `*.tiff` under `source` is read with `read_cirnet_tiff` and saved as 8-bit grayscale PNG under
    its class folder (`1`..`22`, `X`, `Y`), keeping its name. Nothing is overwritten.

    Returns:
        The number of files written.

    Raises:
        DataError: a badly named or unreadable file, or an existing file in the way.
    """
    files = sorted(p for p in Path(source).rglob("*") if p.suffix.lower() in (".tif", ".tiff") and p.is_file())
    if not files:
        raise DataError(f"{source}: no .tif or .tiff files found; unpack origin.tar.gz there first.", path=source)
    targets = [Path(out_dir) / parse_chromosome_name(path)["class_name"] / f"{path.stem}.png" for path in files]
    in_the_way = [target for target in targets if target.exists()]
    if in_the_way:
        raise DataError(f"{in_the_way[0]}: already exists; convert into an empty folder.", path=in_the_way[0])
    for path, target in zip(files, targets):
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(read_cirnet_tiff(path)).save(target)
    return len(files)


# ----------------------------------------------------------------------------------------------------------------
# Resizing long, thin crops


def border_background(image):
    """The median value of an image's outer border: the background of a crop (255 for white G-band crops)."""
    image = np.asarray(image)
    border = np.concatenate([image[0].ravel(), image[-1].ravel(), image[:, 0].ravel(), image[:, -1].ravel()])
    return int(np.median(border))


def _check_mode(mode):
    if mode not in RESIZE_MODES:
        raise ValueError(f"`mode` must be one of {RESIZE_MODES}. Received: mode={mode!r}")
    return mode


def _resample(image, shape):
    """`image` (uint8, 2-D or HWC) resized to `shape` (height, width), anti-aliased when shrinking."""
    if tuple(image.shape[:2]) == tuple(shape):
        return image.copy()
    shrinking = shape[0] < image.shape[0] or shape[1] < image.shape[1]
    out = _resize(image, (*shape, *image.shape[2:]), order=1, anti_aliasing=shrinking, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def fit_image(image, image_size, mode="pad", background=None):
    """One crop brought to `image_size`, keeping its aspect ratio ("pad") or not ("stretch").

    "pad" scales the crop by one factor until its longer side fits, then centres it on a canvas of the background
    value, so a chromosome keeps its shape; "stretch" resizes height and width independently (what
    `load_folders(image_size=...)` does), so a long chromosome gets fatter and a short one thinner.

    Args:
        image: uint8 array, (H, W) or (H, W, C).
        image_size: (height, width) of the result.
        mode: "pad" or "stretch".
        background: the padding value; None takes the median of the crop's border (255 for CIR-Net crops).

    Returns:
        A uint8 array of shape `image_size` (+ the input's channel axis).
    """
    image_size, mode = check_image_size(image_size), _check_mode(mode)
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"`image` must be a non-empty (H, W) or (H, W, C) array. Received: shape={image.shape}")
    if mode == "stretch":
        return _resample(image, image_size)
    height, width = image.shape[:2]
    scale = min(image_size[0] / height, image_size[1] / width)
    shape = (min(image_size[0], max(1, round(height * scale))), min(image_size[1], max(1, round(width * scale))))
    fill = border_background(image) if background is None else background
    canvas = np.full((*image_size, *image.shape[2:]), fill, dtype=np.uint8)
    top, left = (image_size[0] - shape[0]) // 2, (image_size[1] - shape[1]) // 2
    canvas[top : top + shape[0], left : left + shape[1]] = _resample(image, shape)
    return canvas


def fit_images(images, image_size, mode="pad", background=None):
    """`fit_image` over a list of crops of different sizes; returns one uint8 array (N, H, W[, C])."""
    fitted = [fit_image(image, image_size, mode, background) for image in images]
    if not fitted:
        raise ValueError("`images` is empty; there is nothing to resize.")
    return np.stack(fitted)


# ----------------------------------------------------------------------------------------------------------------
# Loading


def _karyotype_labels(data, class_order, root):
    """Labels of `data` (folders in natural order) renumbered to `class_order`, with folder names made canonical."""
    if (
        isinstance(class_order, str)
        or not all(canonical_class(name) == name for name in class_order)
        or len(set(class_order)) != len(class_order)
    ):
        raise ValueError(
            "`class_order` must list chromosome classes among '1'..'22', 'X', 'Y', each once, e.g. KARYOTYPE_ORDER. "
            f"Received: class_order={class_order!r}"
        )
    class_order = tuple(class_order)
    folders = {}
    for folder in data.class_names:
        name = canonical_class(folder)
        if name is None or name in folders:
            problem = "names no chromosome" if name is None else f"repeats class {name} (also '{folders[name]}')"
            raise DataError(
                f"{Path(root) / folder}: the class folder '{folder}' {problem}. Expected one folder per class, named "
                "1..22, X, Y (23 and 24 are read as X and Y).",
                path=Path(root) / folder,
                problem="class_order",
            )
        folders[name] = folder
    missing = [name for name in class_order if name not in folders]
    unknown = [folders[name] for name in folders if name not in class_order]
    if missing or unknown:
        parts = [f"no folder for class(es) {missing}"] if missing else []
        parts += [f"folder(s) {unknown} are not in class_order"] if unknown else []
        raise DataError(
            f"{root}: the class folders do not match class_order: {'; '.join(parts)}. Found folders "
            f"{list(data.class_names)}; pass a class_order that lists each class once.",
            path=root,
            problem="class_order",
        )
    position = {folders[name]: index for index, name in enumerate(class_order)}
    remap = np.array([position[folder] for folder in data.class_names], dtype=np.int64)
    return remap[data.labels]


def _check_names(data, skip_bad):
    """(case per file, or None when no name follows CIR-Net, kept indices, skipped) for a listed set."""
    cases, kept, skipped, cirnet = [], [], [], False
    bad = []
    for index, (path, label) in enumerate(zip(data.paths, data.labels)):
        try:
            meta = parse_chromosome_name(path)
        except DataError as error:
            bad.append((index, error))
            continue
        cirnet = True
        if meta["class_name"] != data.class_names[label]:
            bad.append(
                (
                    index,
                    DataError(
                        f"{path}: the name says class {meta['class_name']} but the file sits in the folder of class "
                        f"{data.class_names[label]}. Move the file to its class folder.",
                        path=path,
                        problem="label_mismatch",
                    ),
                )
            )
            continue
        cases.append(meta["case"])
        kept.append(index)
    if not cirnet:  # no CIR-Net names at all: a plain class-folder set such as BioImLab
        return None, np.arange(len(data)), []
    if bad and not skip_bad:
        raise bad[0][1]
    skipped = [(data.paths[index], str(error)) for index, error in bad]
    return np.asarray(cases, dtype=str), np.asarray(kept, dtype=int), skipped


def _decode_native(data, color_mode, skip_bad):
    """Each file at its own size, as a list of (H, W, C) arrays; (images, kept indices, skipped)."""
    images, kept, skipped = [], [], []
    for index, path in enumerate(data.paths):
        try:
            images.append(read_image(path, color_mode=color_mode))
            kept.append(index)
        except DataError as error:
            if not skip_bad:
                raise
            skipped.append((str(path), str(error)))
    return images, np.asarray(kept, dtype=int), skipped


def load_chromosomes(
    root=None,
    image_size=None,
    color_mode="grayscale",
    class_order=KARYOTYPE_ORDER,
    skip_bad=False,
    decode=True,
    resize="pad",
):
    """Load single-chromosome crops with labels in karyotype order and the case of each crop as its group.

    Args:
        root: the folder holding the class folders; None resolves data set "chromosomes" (MEDCNN_DATA or
            ../shared/data, see `medcnn.data.paths.resolve_dataset`).
        image_size: None keeps each crop's own size (`images` is then a list of (H, W, C) arrays of different
            sizes); `(height, width)` fits every crop to it with `resize`.
        color_mode: "grayscale" (the crops' own mode) or "rgb" (three equal channels, for ImageNet backbones).
        class_order: the classes in label order, each of '1'..'22', 'X', 'Y' once; every class folder must be
            listed. Defaults to 1..22, X, Y.
        skip_bad: leave unreadable files and badly named files out, listing them in `skipped`, instead of raising.
        decode: False lists paths, labels and groups only; decode later with `fit_images` or `decode_set`.
        resize: "pad" (keep the aspect ratio, pad with the background) or "stretch"; see `fit_image`.

    Returns:
        An `ImageSet`; `groups` holds the case id of each crop (None when no file name follows the CIR-Net
        pattern, e.g. BioImLab). `chromosome_metadata(result)` gives the metaphase of each crop.

    Raises:
        DataError: a missing folder, a class folder that names no chromosome or is missing from `class_order`, a
            badly named file or one whose name disagrees with its folder, an unreadable file (unless `skip_bad`).
    """
    image_size, color_mode, resize = check_image_size(image_size), check_color_mode(color_mode), _check_mode(resize)
    root = resolve_dataset("chromosomes", root)
    listed = load_folders(root, decode=False)
    labels = _karyotype_labels(listed, class_order, root)
    data = ImageSet(labels=labels, class_names=list(class_order), paths=listed.paths, source=str(root))
    groups, kept, skipped = _check_names(data, skip_bad)
    data = data.subset(kept)
    data.groups, data.skipped = groups, skipped
    if decode:
        images, kept, unreadable = _decode_native(data, color_mode, skip_bad)
        data = data.subset(kept)
        data.skipped = skipped + unreadable
        data.images = images if image_size is None else fit_images(images, image_size, resize)
    _check_classes_left(data, skipped=len(data.skipped))
    return data


def _check_classes_left(data, skipped):
    empty = [name for name, count in data.class_counts().items() if count == 0]
    if empty:
        first = f" First skipped: {data.skipped[0][0]}." if data.skipped else ""
        raise DataError(
            f"{data.source}: no usable image of class(es) {empty} ({skipped} file(s) skipped).{first} "
            "Fix or replace those files.",
            path=data.source,
            problem="empty_class",
        )
