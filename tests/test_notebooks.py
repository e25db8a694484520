"""The committed notebooks follow the contract, and the allgray notebook trains and learns at smoke scale."""

from pathlib import Path

import nbformat
import numpy as np
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
    for name in ("SCALE", "DATA_DIR", "OUTPUT_DIR", "SEEDS", "REUSE_RUNS: bool = False"):
        assert name in tagged[0].source
    assert "'" not in tagged[0].source, "papermill cannot parse a parameter line whose comment holds a quote"
    assert notebook.cells[0].cell_type == "markdown" and "colab-badge" in notebook.cells[0].source


@pytest.fixture(scope="module")
def allgray_smoke(run_smoke_notebook):
    """CI's end-to-end check: papermill runs the notebook at smoke scale (about 4 minutes on 2 free CPU cores)."""
    return run_smoke_notebook("allgray")


@pytest.mark.slow
def test_allgray_smoke_trains_every_table1_row(allgray_smoke):
    results = allgray_smoke.results
    table = results["tables"]["Table 1"]
    assert set(table) == set(allgray.PAPER_TABLE1.index)
    for label, row in table.items():
        for column in allgray.METRIC_KEYS["Table 1"]:
            assert row[column]["paper"] == allgray.PAPER_TABLE1.loc[label, column]
            assert isinstance(row[column]["ours"], float)
    run = results["run"]
    assert run["scale"] == "smoke" and run["trained_now"] == run["runs"] and run["reused"] == 0
    table1_section = allgray_smoke.section("Table 1")
    for label in allgray.PAPER_TABLE1.index:
        assert table1_section.count(f"| {label} |") == 1
    assert f"| runs | {run['runs']} ({run['runs']} trained now, 0 reused) |" in allgray_smoke.report()


@pytest.mark.slow
def test_allgray_smoke_model_learns_and_predicts_images_it_never_saw(allgray_smoke):
    """The best smoke model beats chance (0.25) by at least 0.15 in balanced test accuracy, and so does the
    exported model.keras on the raw test files of its seed's split (never seen in training)."""
    from sklearn.metrics import balanced_accuracy_score

    from medcnn.data.loaders import load_folders
    from medcnn.data.paths import resolve_dataset

    results = allgray_smoke.results
    best = results["best_run"]
    assert best["test_balanced_accuracy"] >= 0.40
    record = allgray_smoke.record(best)
    files = load_folders(resolve_dataset("all4") / "Original", decode=False)  # the notebook's order, every image
    assert len(files) == sum(results["run"]["data"]["counts"].values())
    test = np.asarray(record["test_indices"])
    predicted = allgray_smoke.predict([files.paths[i] for i in test])
    assert balanced_accuracy_score(files.labels[test], predicted.guesses) >= 0.40
