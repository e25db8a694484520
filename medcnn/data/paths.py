"""Where data and weights live: one resolver used everywhere.

Order: an explicit argument, then the `MEDCNN_DATA` (or `MEDCNN_WEIGHTS`) environment variable, then
`../shared/data` (or `../shared/weights`) beside the repository, when it exists.
"""

import os
from pathlib import Path

from medcnn.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
DATA_README = "data/README.md"

# data set id -> (section of data/README.md that tells how to fetch it)
DATASET_SECTIONS = {
    "all4": "#all4--kaggle-leukemia-allgray",
    "cnmc": "#cnmc--c-nmc-2019-cnmc",
    "cnmc-sample": "#cnmc--c-nmc-2019-cnmc",
    "pbc": "#pbc--pbc-blood-cells-an2dl",
    "chromosomes": "#chromosomes--g-band-crops-chromosome",
    "kth": "#kth--karyograms-kth",
}


def data_root(data_dir=None):
    """The folder holding one sub-folder per data set id, or None when nothing is configured."""
    return _data_root(data_dir)[0]


def _data_root(data_dir=None):
    """(root, where it came from) following the resolver's order; (None, None) when nothing is configured."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "data_dir"
    if os.environ.get("MEDCNN_DATA"):
        return Path(os.environ["MEDCNN_DATA"]).expanduser(), "MEDCNN_DATA"
    if (SHARED / "data").is_dir():
        return SHARED / "data", "../shared/data"
    return None, None


def resolve_dataset(dataset_id, data_dir=None, inner=()):
    """Path of data set `dataset_id` (e.g. "all4"), or a DataError that says how to get it.

    `data_dir` may point at the data set itself or at a root that holds `<dataset_id>/`. `inner`: folders inside the
    data set (e.g. a download's "training_data"); the first that exists is returned in its place.
    """
    found = _resolve_dataset(dataset_id, data_dir)
    return next((found / folder for folder in inner if (found / folder).is_dir()), found)


def _resolve_dataset(dataset_id, data_dir=None):
    root, origin = _data_root(data_dir)
    section = DATA_README + DATASET_SECTIONS.get(dataset_id, "")
    if root is None:
        raise DataError(
            f"Data set '{dataset_id}' not found: no data folder is configured. Set MEDCNN_DATA to the folder "
            f"that holds '{dataset_id}/', or pass data_dir=. {section} gives the download steps.",
            path=None,
            problem="missing_dataset",
        )
    if (root / dataset_id).is_dir():
        return root / dataset_id
    holds_other_sets = root.is_dir() and any((root / other).is_dir() for other in DATASET_SECTIONS)
    if data_dir is not None and root.is_dir() and not holds_other_sets:
        return root  # the caller pointed at the data set itself
    where = "does not exist" if not root.is_dir() else f"has no '{dataset_id}/' folder"
    raise DataError(
        f"Data set '{dataset_id}' not found: the data root {root} (from {origin}) {where}. "
        f"Expected {root / dataset_id}. Set MEDCNN_DATA or pass data_dir=; {section} gives the download steps.",
        path=root / dataset_id,
        problem="missing_dataset",
    )


def weights_dirs():
    """Folders searched for offline backbone weights, in order."""
    dirs = []
    if os.environ.get("MEDCNN_WEIGHTS"):
        dirs.append(Path(os.environ["MEDCNN_WEIGHTS"]).expanduser())
    if (SHARED / "weights").is_dir():
        dirs.append(SHARED / "weights")
    dirs.append(Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models")
    return dirs
