"""The committed notebooks follow the contract, and the allgray notebook runs end to end at smoke scale."""

import json
from pathlib import Path

import nbformat
import pytest

from medcnn.studies import allgray

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
    assert "SCALE" in tagged[0].source and "DATA_DIR" in tagged[0].source and "OUTPUT_DIR" in tagged[0].source
    assert notebook.cells[0].cell_type == "markdown" and "colab-badge" in notebook.cells[0].source


def test_allgray_smoke_run_writes_every_table1_row(tmp_path):
    """CI's end-to-end check: papermill runs the notebook at smoke scale (a few minutes on 2 CPU cores)."""
    papermill = pytest.importorskip("papermill")
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "allgray.ipynb"
    papermill.execute_notebook(
        str(notebook),
        str(tmp_path / "executed.ipynb"),
        cwd=str(notebook.parent),
        kernel_name="python3",
        parameters={"SCALE": "smoke", "OUTPUT_DIR": str(tmp_path)},
        progress_bar=False,
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["table1"]) == set(allgray.PAPER_TABLE1.index)
    for label, row in results["table1"].items():
        for metric in allgray.METRICS:
            assert row[metric]["paper"] == allgray.PAPER_TABLE1.loc[label, metric]
            assert row[metric]["ours"] is not None
    assert results["run"]["scale"] == "smoke"
    table1_section = (tmp_path / "report.md").read_text().split("## Table 1")[1].split("\n## ")[0]
    for label in allgray.PAPER_TABLE1.index:
        assert table1_section.count(f"| {label} |") == 1
    assert (tmp_path / "model.keras").is_file()
