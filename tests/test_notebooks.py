"""The committed notebooks follow the contract (tests/test_smoke_notebooks.py runs them)."""

from pathlib import Path

import nbformat
import pytest


NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert {path.stem for path in NOTEBOOKS} >= {"allgray"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_and_with_one_parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code_cells), (
        "clear the outputs before committing"
    )
    tagged = [cell for cell in code_cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("SCALE", "DATA_DIR", "OUTPUT_DIR", "SEEDS", "REUSE_RUNS: bool = False"):
        assert name in tagged[0].source
    assert "'" not in tagged[0].source, "papermill cannot parse a parameter line whose comment holds a quote"
    assert notebook.cells[0].cell_type == "markdown" and "colab-badge" in notebook.cells[0].source
