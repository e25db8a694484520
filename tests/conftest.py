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


REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def run_smoke_notebook(tmp_path_factory):
    """`run(study) -> (output folder, results.json)`: papermill runs `notebooks/<study>.ipynb` at smoke scale."""

    def run(study):
        import json
        from pathlib import Path

        papermill = pytest.importorskip("papermill")
        out = tmp_path_factory.mktemp(f"{study}_smoke")
        notebook = Path(REPOSITORY) / "notebooks" / f"{study}.ipynb"
        papermill.execute_notebook(
            str(notebook),
            str(out / "executed.ipynb"),
            cwd=str(notebook.parent),
            kernel_name="python3",
            parameters={"SCALE": "smoke", "OUTPUT_DIR": str(out)},
            progress_bar=False,
        )
        return out, json.loads((out / "results.json").read_text())

    return run


@pytest.fixture(scope="session")
def run_under_jax():
    """`run(script, done_line)`: runs `script` in a fresh Python with KERAS_BACKEND=jax on the CPU and checks that
    it exits 0 and prints `done_line`; skips when JAX is not installed."""

    def run(script, done_line):
        import importlib.util
        import subprocess
        import sys

        if importlib.util.find_spec("jax") is None:
            pytest.skip("jax is not installed (pip install jax): the JAX backend cannot be checked")
        env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPOSITORY, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert done_line in result.stdout

    return run
