"""Check a data set before training: counts, sizes, modes, duplicates and every bad file.

`python -m medcnn validate PATH [--layout folders|cnmc|npz|auto]` prints counts per class (and per patient and
fold where the layout has them), image sizes and modes, groups of byte-identical files, and each problem on its
own line naming the file. It exits 0 when the loaders can use the data as it is and 1 when they cannot. Nothing
is changed or deleted.
"""

import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medcnn.errors import DataError
from medcnn.data.imageio import (
    check_image_size,
    is_hidden,
    is_image_file,
    read_header,
    read_image,
)
from medcnn.data.loaders import (
    CNMC_CLASSES,
    CNMC_NAME,
    cnmc_parts,
    list_cnmc,
    list_folders,
    natural_key,
    npz_problems,
    read_npz,
)
from medcnn.data.labels import flat_labels
from medcnn.data.paths import DATASET_SECTIONS, resolve_dataset
from medcnn.data.splits import image_fingerprints

LAYOUTS = ("auto", "folders", "cnmc", "npz")
MAX_SIZES_SHOWN = 10  # a set of variable-size crops (chromosomes) has hundreds of sizes
# Problems of single files, which `skip_bad=True` leaves out; any other problem (an empty class folder, a file
# given for a folder, a bad npz) needs fixing by hand.
SKIPPABLE_PROBLEMS = (
    "missing_file",
    "empty_file",
    "not_an_image",
    "unreadable",
    "too_large",
    "bad_name",
    "label_mismatch",
)


@dataclass
class ValidationReport:
    """What `validate_dataset` found. `usable` is True when there are no problems and at least two classes.

    Attributes:
        path: the data set checked.
        layout: "folders", "cnmc" or "npz".
        class_counts: {class name: readable images}.
        patient_counts: {patient id: {class name: images}} (C-NMC), else None.
        fold_counts: {fold: {class name: images}} (C-NMC with fold folders), else None.
        sizes: Counter of (height, width).
        modes: Counter of colour modes ("RGB", "L", "P", ... or "uint8, 3 channels" for npz).
        formats: Counter of file formats ("JPEG", "PNG", ... or "npz").
        duplicates: groups (lists) of byte-identical files (relative to `path`), or of identical npz images
            ("index 12").
        problems: [(path, message)], one per bad file or folder.
        problem_kinds: the DataError tag of each entry of `problems` ("empty_class", "unreadable", ...).
        notes: remarks that do not stop the loaders (mixed sizes, files that are not images, duplicates across classes).
        n_files: files looked at (images, or npz items).
    """

    path: str
    layout: str
    class_counts: dict = field(default_factory=dict)
    patient_counts: dict = None
    fold_counts: dict = None
    sizes: Counter = field(default_factory=Counter)
    modes: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    duplicates: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    problem_kinds: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    n_files: int = 0

    @property
    def usable(self):
        """True when the loaders can read the data as it is (no problems, two or more non-empty classes)."""
        return not self.problems and sum(count > 0 for count in self.class_counts.values()) >= 2

    def advice(self):
        """One line: whether the data is usable and, if not, the fix that works for these problems."""
        if self.usable:
            return "Usable: yes"
        by_hand = [kind for kind in self.problem_kinds if kind not in SKIPPABLE_PROBLEMS]
        if by_hand or self.layout == "npz":
            return (
                "Usable: NO. Fix the problems above as each line says; skip_bad=True only leaves out unreadable "
                "image files and cannot fix these."
            )
        emptied = [name for name, count in self.class_counts.items() if count == 0]
        if emptied:
            return (
                f"Usable: NO. No image of class(es) {emptied} is readable: replace those files "
                "(skip_bad=True would leave the class empty)."
            )
        if self.problems:
            return "Usable: NO. Fix or remove the files above, or load with skip_bad=True to leave them out."
        return "Usable: NO. A classification data set needs at least two classes with images."

    def to_text(self):
        """The report as printed by `python -m medcnn validate`."""
        lines = [f"Data set: {self.path}", f"Layout: {self.layout}", f"Files checked: {self.n_files}", ""]
        total = sum(self.class_counts.values())
        lines.append(f"Classes ({len(self.class_counts)}), {total} readable images:")
        width = max((len(str(name)) for name in self.class_counts), default=0)
        lines += [f"  {name!s:<{width}}  {count:>6}" for name, count in self.class_counts.items()]
        if self.patient_counts:
            lines += ["", f"Patients ({len(self.patient_counts)}):"]
            lines += [
                f"  {patient:<6} " + ", ".join(f"{name} {count}" for name, count in counts.items())
                for patient, counts in self.patient_counts.items()
            ]
        if self.fold_counts:
            lines += ["", "Folds:"]
            lines += [
                f"  fold {fold}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                for fold, counts in self.fold_counts.items()
            ]
        lines += ["", "Image sizes (H x W):"]
        lines += [f"  {h} x {w}: {count}" for (h, w), count in self.sizes.most_common(MAX_SIZES_SHOWN)]
        if len(self.sizes) > MAX_SIZES_SHOWN:
            heights, widths = zip(*self.sizes)
            lines.append(
                f"  ... {len(self.sizes) - MAX_SIZES_SHOWN} more sizes; height {min(heights)}-{max(heights)}, "
                f"width {min(widths)}-{max(widths)}"
            )
        lines += ["Modes: " + ", ".join(f"{mode} {count}" for mode, count in self.modes.most_common())]
        lines += ["Formats: " + ", ".join(f"{name} {count}" for name, count in self.formats.most_common())]
        copies = sum(len(group) - 1 for group in self.duplicates)
        lines += ["", f"Exact duplicates: {len(self.duplicates)} group(s), {copies} redundant copies"]
        lines += ["  " + " = ".join(group) for group in self.duplicates]
        if self.notes:
            lines += ["", "Notes:"] + [f"  {note}" for note in self.notes]
        lines += ["", f"Problems: {len(self.problems)}"]
        lines += [f"  {_relative(path, self.path)}: {_strip_path(message, path)}" for path, message in self.problems]
        lines += ["", self.advice()]
        return "\n".join(lines)


def _relative(path, root):
    """`path` relative to the data set folder when it lies inside it, else as given."""
    try:
        relative = Path(path).relative_to(root)
    except ValueError:
        return str(path)
    return str(path) if relative == Path(".") else str(relative)


def _strip_path(message, path):
    """Messages already start with the path; avoid printing it twice."""
    prefix = f"{path}: "
    return message[len(prefix) :] if path and message.startswith(prefix) else message


# ----------------------------------------------------------------------------------------------------------------


def detect_layout(path):
    """Guess the layout: npz for a .npz file, cnmc for all/ + hem/ (or fold_k/all|hem) of UID_ files, else folders."""
    path = Path(path)
    if path.is_file():
        return "npz" if path.suffix.lower() == ".npz" else "folders"
    try:
        parts = cnmc_parts(path)
    except DataError:
        return "folders"
    for _, base in parts:
        if not all((base / name).is_dir() for name in CNMC_CLASSES):
            return "folders"
        sample = [p for name in CNMC_CLASSES for p in sorted((base / name).iterdir())[:20] if is_image_file(p)]
        if not sample or not any(CNMC_NAME.match(p.stem) for p in sample):
            return "folders"
    return "cnmc"


def validate_dataset(path, layout="auto", image_size=None):
    """Read every file of a data set (header check, then a full decode) and report all it finds.

    Args:
        path: a class-folder tree, a C-NMC tree or an npz file; a data set id such as "all4" is resolved too.
        layout: "auto", "folders", "cnmc" or "npz".
        image_size: None, or `(height, width)` to decode at, as the loaders would.

    Returns:
        ValidationReport; problems are collected, not raised.

    Raises:
        DataError: the path does not exist.
        ValueError: `layout` or `image_size` is not valid.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"`layout` must be one of {LAYOUTS}. Received: layout={layout!r}")
    image_size = check_image_size(image_size)
    path = Path(path)
    if not path.exists() and str(path) in DATASET_SECTIONS:
        path = resolve_dataset(str(path))
        subfolders = [p for p in path.iterdir() if p.is_dir() and not is_hidden(p)]
        if len(subfolders) == 1:  # e.g. all4/Original/<class>/
            path = subfolders[0]
    if not path.exists():
        raise DataError(f"{path}: no such file or folder.", path=path, problem="missing_folder")
    if layout == "auto":
        layout = detect_layout(path)
    report = ValidationReport(path=str(path), layout=layout)
    if layout == "npz":
        _check_npz(report, path)
    else:
        _check_tree(report, path, image_size)
    return report


def _problem(report, error):
    report.problems.append((error.path or report.path, str(error)))
    report.problem_kinds.append(error.problem)


def _check_tree(report, root, image_size):
    """Folders and C-NMC: list the files (collecting listing problems), then read each one."""
    groups = folds = None
    try:
        if report.layout == "cnmc":
            paths, labels, groups, folds = list_cnmc(root, on_error=lambda error: _problem(report, error))
            class_names = list(CNMC_CLASSES)
        else:
            paths, labels, class_names = list_folders(root, on_error=lambda error: _problem(report, error))
    except DataError as error:  # no tree to speak of (too few classes, missing all/ or hem/)
        _problem(report, error)
        return
    _note_other_files(report, root, class_names)

    readable = np.zeros(len(paths), dtype=bool)
    for index, file in enumerate(paths):
        report.n_files += 1
        try:
            header = read_header(file)
            read_image(file, image_size=image_size, color_mode="rgb")
        except DataError as error:
            _problem(report, error)
            continue
        readable[index] = True
        report.sizes[header.size] += 1
        report.modes[header.mode] += 1
        report.formats[header.format] += 1

    counts = np.bincount(labels[readable], minlength=len(class_names))
    report.class_counts = {name: int(count) for name, count in zip(class_names, counts)}
    if groups is not None:
        patients = defaultdict(Counter)
        for patient, label in zip(groups[readable].tolist(), labels[readable].tolist()):
            patients[patient][class_names[label]] += 1
        report.patient_counts = {patient: dict(patients[patient]) for patient in sorted(patients, key=natural_key)}
    if folds is not None:
        report.fold_counts = {
            int(fold): {
                name: int(((folds == fold) & (labels == k) & readable).sum()) for k, name in enumerate(class_names)
            }
            for fold in np.unique(folds)
        }
    kept = np.flatnonzero(readable)
    by_digest = _indices_by_fingerprint(image_fingerprints([paths[i] for i in kept]), kept)
    _duplicates(report, by_digest, [_relative(p, root) for p in paths], labels, class_names)
    if len(report.sizes) > 1 and image_size is None:
        report.notes.append(f"{len(report.sizes)} different image sizes: load with image_size=(H, W) to resize them.")


def _check_npz(report, path):
    report.formats["npz"] = 1
    try:
        images, labels = read_npz(path)
    except DataError as error:
        _problem(report, error)
        return
    for kind, message in npz_problems(images, labels):
        report.problems.append((str(path), message))
        report.problem_kinds.append(kind)
    if report.problems:
        return
    labels = flat_labels(labels).astype(np.int64)
    report.n_files = len(images)
    names = [str(i) for i in range(int(labels.max()) + 1)]
    report.class_counts = {name: int(count) for name, count in zip(names, np.bincount(labels, minlength=len(names)))}
    report.sizes[tuple(int(v) for v in images.shape[1:3])] = len(images)
    channels = images.shape[3] if images.ndim == 4 else 1
    report.modes[f"{images.dtype}, {channels} channel(s)"] = len(images)
    by_digest = _indices_by_fingerprint(image_fingerprints(images), np.arange(len(images)))
    _duplicates(report, by_digest, [f"index {i}" for i in range(len(images))], labels, names)


def _indices_by_fingerprint(fingerprints, indices):
    """{fingerprint: [index, ...]} in index order."""
    by_digest = defaultdict(list)
    for fingerprint, index in zip(fingerprints.tolist(), indices.tolist()):
        by_digest[fingerprint].append(index)
    return by_digest


def _duplicates(report, by_digest, names, labels, class_names):
    groups = [indices for indices in by_digest.values() if len(indices) > 1]
    report.duplicates = [[names[i] for i in indices] for indices in groups]
    mixed = [indices for indices in groups if len(set(labels[indices].tolist())) > 1]
    for indices in mixed:
        labelled = ", ".join(f"{names[i]} ({class_names[labels[i]]})" for i in indices)
        report.notes.append(f"identical images carry different labels: {labelled}")


def _note_other_files(report, root, class_names):
    """Files in class folders that the loaders ignore (not images), so nothing is left out unseen."""
    if report.layout == "cnmc":
        folders = [base / name for _, base in cnmc_parts(root) for name in class_names]
    else:
        folders = [Path(root) / name for name in class_names]
    ignored = [
        p
        for folder in folders
        if folder.is_dir()
        for p in folder.iterdir()
        if p.is_file() and not is_hidden(p) and not is_image_file(p)
    ]
    if ignored:
        shown = ", ".join(str(p) for p in sorted(ignored)[:5])
        report.notes.append(f"{len(ignored)} file(s) without an image extension are ignored, e.g. {shown}")


# ----------------------------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser):
    """Add the `validate` arguments to an argparse parser."""
    parser.add_argument(
        "path", metavar="PATH", help="class-folder tree, C-NMC tree, .npz file, or a data set id (all4, cnmc, ...)"
    )
    parser.add_argument("--layout", choices=LAYOUTS, default="auto", help="data layout (default: detect it)")
    parser.add_argument(
        "--image-size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        default=None,
        help="decode at this size, as a loader would",
    )
    parser.set_defaults(run=run)
    return parser


def run(args):
    """Print the report; return 0 when the data is usable, 1 when not (bad data never gives a traceback)."""
    try:
        report = validate_dataset(args.path, layout=args.layout, image_size=args.image_size and tuple(args.image_size))
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report.to_text())
    return 0 if report.usable else 1
