"""Shared fixtures. Tests run on the CPU with the TensorFlow backend unless KERAS_BACKEND says otherwise."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from medcnn.data.paths import data_root  # noqa: E402


@pytest.fixture(scope="session")
def shared_data():
    """The staged data root (../shared/data or MEDCNN_DATA); tests that need it skip with a reason when absent."""
    root = data_root()
    if root is None or not root.is_dir():
        pytest.skip("staged data not found: set MEDCNN_DATA or place ../shared/data beside the repository")
    return root
