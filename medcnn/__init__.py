"""medcnn: helpers shared by the reproductions of five medical-imaging CNN studies.

Importing `medcnn` is light (no Keras); modules that build or train models import Keras themselves.
"""

from medcnn.errors import DataError
from medcnn.data.loaders import ImageSet, load_cnmc, load_folders, load_npz
from medcnn.data.paths import resolve_dataset

__version__ = "0.1.0"
__all__ = ["DataError", "ImageSet", "load_folders", "load_cnmc", "load_npz", "resolve_dataset", "__version__"]
