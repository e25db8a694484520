"""Finding ImageNet weight files: offline copies first, then Keras' own download, never a silent fallback.

Order, for the exact file Keras would download (e.g. `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`):
1. each folder of `medcnn.data.paths.weights_dirs()`: `$MEDCNN_WEIGHTS`, `../shared/weights`, the Keras cache
   (`$KERAS_HOME/models`, default `~/.keras/models`);
2. a stand-in file in those folders, where one is valid (MobileNetV2 at 96..192 px can use the 224 px file: the
   weights of a fully convolutional backbone do not depend on the input size; Keras trained one checkpoint per
   size, so results can differ a little from Keras' own file for that size);
3. `keras.utils.get_file`, which downloads into the Keras cache (what `weights="imagenet"` does, e.g. on Colab);
4. otherwise `WeightsUnavailableError`, naming the file and the folders to put it in, unless the caller allowed
   random initialisation: then a `RandomWeightsWarning` (pointing at the caller's line) and `used == "random"`.

A caller may also name a weights file itself, as `keras.applications` allows (`weights="/path/file.h5"`): see
`weights_file_info`.
"""

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras

from medcnn.errors import DataError
from medcnn.data.paths import weights_dirs


class WeightsUnavailableError(DataError):
    """ImageNet weights were asked for, no offline copy exists and the download failed."""


class RandomWeightsWarning(UserWarning):
    """A backbone starts from random initialisation because its ImageNet weights are unavailable."""


@dataclass(frozen=True)
class WeightsInfo:
    """Where a backbone's weights came from.

    used: "imagenet", "random", or "file" (a weights file the caller named that is not Keras' ImageNet file):
        what a run's results record as `weights`.
    path: the file loaded, or None.
    source: "local", "download", "file" (named by the caller), or None when random.
    """

    used: str
    path: str | None = None
    source: str | None = None

    def as_dict(self):
        return {"weights": self.used, "weights_file": self.path, "weights_source": self.source}


def caller_stacklevel():
    """The `stacklevel` for `warnings.warn` that points at the first caller outside `medcnn/models`.

    Call it from the function that warns. However deep the library's own calls go (`transfer_model` ->
    `build_backbone` -> ...), the warning then names the user's line, not a line of this package.
    """
    models_folder = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1  # the warning function's frame is stacklevel 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == models_folder:
        frame, level = frame.f_back, level + 1
    return level


def weights_file_info(weights, imagenet_file_names):
    """WeightsInfo for a weights file the caller named (`weights="/path/file.h5"`, as keras.applications takes).

    Args:
        weights: path (str or os.PathLike) of an existing file.
        imagenet_file_names: the names Keras gives this backbone's ImageNet files; a file of one of those names
            is recorded (and loaded) as ImageNet weights, any other as "file".

    Raises:
        WeightsUnavailableError: the file does not exist.
    """
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(
            f"`weights` must be 'imagenet', None or the path of an existing weights file. Received: "
            f"weights={str(weights)!r}, which is no such file.",
            path=path,
            problem="weights_file_missing",
        )
    used = "imagenet" if path.name in set(imagenet_file_names) else "file"
    return WeightsInfo(used, str(path), "file")


def find_local_file(file_names, dirs=None):
    """The first existing `<dir>/<name>`, trying every name in every folder in order (names first), or None."""
    folders = weights_dirs() if dirs is None else [Path(d) for d in dirs]
    for name in file_names:
        for folder in folders:
            candidate = Path(folder).expanduser() / name
            if candidate.is_file():
                return candidate
    return None


def resolve_weights_file(label, file_name, origin, file_hash=None, stand_ins=(), allow_random=False):
    """Find or download one ImageNet weight file.

    Args:
        label: what the file is for, used in messages (e.g. "mobilenet_v2").
        file_name: the exact file name Keras downloads.
        origin: its URL.
        file_hash: md5 or sha256 of the file, checked after a download (None: no check, as Keras does for some).
        stand_ins: other local file names that hold the same weights (tried after `file_name`, never downloaded).
        allow_random: when nothing is found, warn and return `used="random"` instead of raising.

    Returns:
        WeightsInfo.
    """
    local = find_local_file((file_name, *stand_ins))
    if local is not None:
        return WeightsInfo("imagenet", str(local), "local")
    try:
        downloaded = keras.utils.get_file(file_name, origin, cache_subdir="models", file_hash=file_hash)
    except Exception as error:  # any failure means the weights are unavailable
        folders = ", ".join(str(folder) for folder in weights_dirs())
        message = (
            f"ImageNet weights for '{label}' were not found offline and could not be downloaded "
            f"({type(error).__name__}: {error}). Needed: {file_name} from {origin}. Put that file in one of: "
            f"{folders} (or set MEDCNN_WEIGHTS to a folder that holds it), or pass allow_random=True to train from "
            "random initialisation; the run then records `weights: random`."
        )
        if not allow_random:
            raise WeightsUnavailableError(message, path=file_name, problem="weights_unavailable") from error
        warnings.warn(
            f"RANDOM INITIALISATION for '{label}': {message} Results will not be comparable with the paper's.",
            RandomWeightsWarning,
            stacklevel=caller_stacklevel(),
        )
        return WeightsInfo("random")
    return WeightsInfo("imagenet", str(downloaded), "download")
