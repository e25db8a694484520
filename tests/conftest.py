"""Shared fixtures. Tests run on the CPU with the TensorFlow backend unless KERAS_BACKEND says otherwise."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402
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


class Predicted(NamedTuple):
    """The exported model on raw files: its class names, `predict_files`' rows, the guessed label of each file and
    the probabilities (files, classes) in the order of `names`."""

    names: list
    rows: list
    guesses: list
    probabilities: np.ndarray


class SmokeRun(NamedTuple):
    """A notebook's smoke run: its output folder and results.json (unpacks as `out, results`), and what the smoke
    tests read from the folder."""

    out: Path
    results: dict

    def record(self, run):
        """The run record the notebook cached for `run` (an entry of results.json with configuration and seed)."""
        from medcnn.experiment import slugify

        path = self.out / "runs" / f"{slugify(run['configuration'])}__seed{run['seed']}.json"
        return json.loads(path.read_text())

    def report(self):
        """report.md's text."""
        return (self.out / "report.md").read_text()

    def section(self, heading):
        """report.md's section under the first `## ` heading starting with `heading` (without the next heading)."""
        parts = ("\n" + self.report()).split(f"\n## {heading}")
        assert len(parts) > 1, f"report.md has no '## {heading}' section"
        return parts[1].split("\n## ")[0]

    def row_count(self, heading, label):
        """How many table rows of the `heading` section are labelled `label` (a note such as "*(random weights)*"
        may follow the label in its cell)."""
        cells = [line.split(" | ")[0].removeprefix("| ") for line in self.section(heading).splitlines()]
        return sum(cell == label or cell.startswith(f"{label} *(") for cell in cells)

    def predict(self, files):
        """`Predicted`: the exported model.keras (loaded as `python -m medcnn predict` loads it) on raw `files`."""
        from medcnn.predict import load_model, predict_files

        model, names = load_model(self.out / "model.keras")
        rows = list(predict_files(model, names, files))
        probabilities = np.array([[row["probabilities"][name] for name in names] for row in rows])
        return Predicted(names, rows, [names.index(row["class"]) for row in rows], probabilities)


@pytest.fixture(scope="session")
def run_smoke_notebook(tmp_path_factory):
    """`run(study) -> SmokeRun`: papermill runs `notebooks/<study>.ipynb` at smoke scale into a fresh folder.

    Call it from one module-scoped fixture per study, so that each notebook runs once per session.
    """

    def run(study):
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
        return SmokeRun(out, json.loads((out / "results.json").read_text()))

    return run


@pytest.fixture(scope="session")
def committed_results():
    """`load(study, scale="smoke")`: the committed `results/<study>/<scale>/results.json`; skips when it is not
    committed yet."""

    def load(study, scale="smoke"):
        path = Path(REPOSITORY) / "results" / study / scale / "results.json"
        if not path.is_file():
            pytest.skip(f"{path} not committed yet")
        return json.loads(path.read_text())

    return load


@pytest.fixture(scope="session")
def fresh_python():
    """`run(code)`: the stripped stdout of `code` run in a fresh Python (so modules imported by other tests do not
    count); fails with its stderr when it exits non-zero."""

    def run(code):
        import subprocess
        import sys

        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPOSITORY)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.strip()

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


@pytest.fixture
def cnmc_fold_tree(tmp_path):
    """A fake C-NMC training folder in `tmp_path`, returned: `fold_<k>/{all,hem}/UID_<patient>_<cell>_1_<class>.bmp`,
    random 8x6 (height x width) RGB images. fold_0: patients 1 (all) and H2 (hem); fold_1: patients 3 (all) and h4
    (hem, lower-case as in the data); two cells each."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for fold, (ill, healthy) in enumerate([("1", "H2"), ("3", "h4")]):
        for cell in range(2):
            for patient, name in ((ill, "all"), (healthy, "hem")):
                path = tmp_path / f"fold_{fold}" / name / f"UID_{patient}_{cell}_1_{name}.bmp"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)).save(path)
    return tmp_path


def pytest_collection_modifyitems(items):
    """Longest first (a stable sort: the smoke notebooks, other slow tests, the rest), so that under `pytest -n 2`
    (CI) they start early instead of ending the run on one worker."""

    def rank(item):
        return 2 if item.get_closest_marker("slow") is None else 0 if "smoke_run" in item.fixturenames else 1

    items.sort(key=rank)
