"""medcnn: helpers shared by the reproductions of five medical-imaging CNN studies.

Importing `medcnn` is light (no Keras or TensorFlow); modules that build or train models import Keras themselves.
The names here are what a notebook reaches for first: find a data set, check it, load it, split it.
"""

from medcnn.data.loaders import ImageSet, load_cnmc, load_folders, load_npz
from medcnn.data.paths import resolve_dataset
from medcnn.data.splits import (
    check_no_leakage,
    grouped_kfold,
    stratified_kfold,
    train_val_test_split,
)
from medcnn.data.validate import validate_dataset
from medcnn.errors import DataError

__version__ = "0.1.0"
__all__ = [
    "resolve_dataset",
    "validate_dataset",
    "load_folders",
    "load_cnmc",
    "load_npz",
    "ImageSet",
    "DataError",
    "train_val_test_split",
    "stratified_kfold",
    "grouped_kfold",
    "check_no_leakage",
    "__version__",
]
