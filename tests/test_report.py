"""medcnn.report: paper-vs-ours tables, run descriptions, results.json and report.md."""

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from medcnn import report
from medcnn.errors import DataError

RUN = {
    "scale": "smoke",
    "hardware": {"cpu": "Test CPU", "cpu_cores_usable": 2, "accelerators": []},
    "data": {"name": "all4 (staged)", "counts": {"Benign": 3, "Pro": 2}},
    "weights": "random",
    "seeds": [0, 1],
    "elapsed_s": 12.5,
    "timestamp_utc": "2025-01-01T00:00:00+00:00",
    "versions": {"python": "3.11", "keras": "3.15.1"},
}


@pytest.fixture
def paper():
    return report.paper_table(
        "demo",
        "Table 9",
        "A demo table",
        ["accuracy", "AUC"],
        [("VGG16", 0.83, 0.79), ("InceptionV3", 0.77, 0.86)],
        index_name="network",
    )


def test_paper_table_keeps_numbers_and_attrs(paper):
    assert paper.loc["VGG16", "accuracy"] == 0.83
    assert paper.index.name == "network"
    assert paper.attrs == {
        "study": "demo",
        "table": "Table 9",
        "caption": "A demo table",
        "percent": False,
        "source": "",
    }
    assert paper.copy().attrs["table"] == "Table 9"


def test_paper_table_row_length():
    with pytest.raises(ValueError, match="Each row needs a label and 2 values"):
        report.paper_table("demo", "T", "c", ["a", "b"], [("row", 1.0)], index_name="x")


def test_paper_vs_ours_columns_and_values(paper):
    ours = pd.DataFrame({"accuracy": [0.80, 0.70], "AUC": [0.85, np.nan]}, index=["VGG16", "honest, VGG16"])
    std = pd.DataFrame({"accuracy": [0.01, 0.02], "AUC": [0.03, np.nan]}, index=ours.index)
    comparison = report.paper_vs_ours(paper, ours, RUN, std=std)
    assert list(comparison.columns) == [
        "row",
        "metric",
        "paper",
        "ours",
        "std",
        "delta",
        "status",
        "scale",
        "hardware",
        "data",
        "weights",
        "seeds",
    ]
    # Every row of either side appears: the paper's two, then ours only; two metrics each.
    assert list(comparison["row"]) == ["VGG16", "VGG16", "InceptionV3", "InceptionV3", "honest, VGG16", "honest, VGG16"]
    vgg_accuracy = comparison[(comparison.row == "VGG16") & (comparison.metric == "accuracy")].iloc[0]
    assert vgg_accuracy["paper"] == 0.83 and vgg_accuracy["ours"] == 0.80 and vgg_accuracy["std"] == 0.01
    assert vgg_accuracy["delta"] == pytest.approx(0.80 - 0.83)
    assert vgg_accuracy["status"] == "both"
    inception = comparison[comparison.row == "InceptionV3"]
    assert inception["ours"].isna().all() and inception["delta"].isna().all()
    assert set(inception["status"]) == {"paper only"}
    honest = comparison[comparison.row == "honest, VGG16"]
    assert honest["paper"].isna().all() and set(honest["status"]) == {"ours only"}
    first = comparison.iloc[0]
    assert (first["scale"], first["hardware"], first["data"], first["weights"], first["seeds"]) == (
        "smoke",
        "Test CPU, 2 CPU cores, no GPU",
        "all4 (staged)",
        "random",
        "0, 1",
    )
    assert comparison.attrs["table"] == "Table 9" and comparison.attrs["run_info"] is RUN


def test_paper_vs_ours_keeps_metrics_of_either_side(paper):
    ours = pd.DataFrame({"accuracy": [0.8], "macro F1": [0.7]}, index=["VGG16"])
    comparison = report.paper_vs_ours(paper, ours, RUN)
    assert list(dict.fromkeys(comparison["metric"])) == ["accuracy", "AUC", "macro F1"]
    assert comparison["std"].isna().all()


def test_percent_table_warns_about_fractions():
    paper = report.paper_table("demo", "Table 2", "c", ["accuracy %"], [("ResNet50", 87.32)], "model", percent=True)
    ours = pd.DataFrame({"accuracy %": [0.85]}, index=["ResNet50"])
    with pytest.warns(UserWarning, match="look like fractions"):
        report.paper_vs_ours(paper, ours, RUN)
    comparison = report.paper_vs_ours(paper, report.as_percent(ours), RUN)
    assert comparison.loc[0, "delta"] == pytest.approx(85.0 - 87.32)


def test_to_wide(paper):
    ours = pd.DataFrame({"accuracy": [0.80], "AUC": [0.85]}, index=["VGG16"])
    wide = report.to_wide(report.paper_vs_ours(paper, ours, RUN))
    assert list(wide.index) == ["VGG16", "InceptionV3"]
    assert wide.index.name == "network"
    assert wide.loc["VGG16", ("AUC", "delta")] == pytest.approx(0.06)
    assert list(wide.columns[:4]) == [
        ("accuracy", "paper"),
        ("accuracy", "ours"),
        ("accuracy", "std"),
        ("accuracy", "delta"),
    ]


def test_table_from_metrics():
    metrics = {"VGG16": {"accuracy": 0.9, "f1_weighted": 0.8}, "Inception": {"accuracy": 0.7}}
    frame = report.table_from_metrics(
        metrics, {"accuracy %": "accuracy", "F1 %": "f1_weighted"}, percent=True, index_name="model"
    )
    assert frame.loc["VGG16", "F1 %"] == pytest.approx(80.0)
    assert np.isnan(frame.loc["Inception", "F1 %"])
    assert frame.attrs["percent"] is True


def test_run_info_uses_medcnn_hardware_when_present(monkeypatch):
    fake = types.ModuleType("medcnn.hardware")
    fake.describe_hardware = lambda: {"accelerators": [{"name": "NVIDIA T4", "kind": "gpu"}]}
    monkeypatch.setitem(sys.modules, "medcnn.hardware", fake)
    info = report.run_info("smoke", "all4", {"Benign": 3}, "imagenet", 7, 1.25, extra={"note": "x"})
    assert info["hardware"] == {"accelerators": [{"name": "NVIDIA T4", "kind": "gpu"}]}
    assert info["seeds"] == [7] and info["elapsed_s"] == 1.25 and info["note"] == "x"
    assert info["data"] == {"name": "all4", "counts": {"Benign": 3}}
    assert {"python", "keras", "backend", "backend_version"} <= set(info["versions"])
    assert info["timestamp_utc"].endswith("+00:00")
    assert report.run_summary(info)["hardware"] == "NVIDIA T4 (gpu)"


def test_run_info_falls_back_to_platform(monkeypatch):
    monkeypatch.setitem(sys.modules, "medcnn.hardware", None)  # importing it now raises ImportError
    hardware = report.run_info("full", "x", {}, "none", [0], None)["hardware"]
    assert hardware["source"] == "platform" and hardware["cpu_count"] >= 1


def test_file_list_hash(tmp_path):
    for root in ("a", "b"):
        (tmp_path / root / "cls").mkdir(parents=True)
        (tmp_path / root / "cls" / "1.png").write_bytes(b"12345")
        (tmp_path / root / "cls" / "2.png").write_bytes(b"12")
    first = [tmp_path / "a" / "cls" / "1.png", tmp_path / "a" / "cls" / "2.png"]
    second = [tmp_path / "b" / "cls" / "2.png", tmp_path / "b" / "cls" / "1.png"]
    assert report.file_list_hash(first, root=tmp_path / "a") == report.file_list_hash(second, root=tmp_path / "b")
    assert len(report.file_list_hash(first)) == 64
    before = report.file_list_hash(first, root=tmp_path / "a")
    (tmp_path / "a" / "cls" / "2.png").write_bytes(b"123")
    assert report.file_list_hash(first, root=tmp_path / "a") != before


def test_file_list_hash_missing_file(tmp_path):
    with pytest.raises(DataError, match="gone.png"):
        report.file_list_hash([tmp_path / "gone.png"])


def test_write_results_plain_json(tmp_path):
    table = pd.DataFrame({"accuracy": [0.5, np.nan]}, index=pd.Index(["a", "b"], name="model"))
    results = {
        "table": table,
        "value": np.float32(0.25),
        "count": np.int64(3),
        "array": np.array([1.0, np.inf]),
        "nan": float("nan"),
        "flag": np.bool_(True),
        "path": tmp_path,
        "nested": {1: [np.nan]},
    }
    path = report.write_results(tmp_path / "out", results)
    assert path.name == "results.json"
    loaded = json.loads(path.read_text())
    assert loaded["table"] == [{"model": "a", "accuracy": 0.5}, {"model": "b", "accuracy": None}]
    assert loaded["value"] == 0.25 and loaded["count"] == 3 and loaded["flag"] is True
    assert loaded["array"] == [1.0, None] and loaded["nan"] is None and loaded["nested"] == {"1": [None]}
    assert loaded["path"] == str(tmp_path)


def test_markdown_table():
    frame = pd.DataFrame({"acc": [0.98765, np.nan], "note": ["a|b", "c"]}, index=pd.Index(["x", "y"], name="model"))
    assert report.markdown_table(frame).splitlines() == [
        "| model | acc | note |",
        "|---|---|---|",
        "| x | 0.9877 | a\\|b |",
        "| y |  | c |",
    ]


def test_write_report(tmp_path, paper):
    out = report.results_dir("demo", "smoke", root=tmp_path / "results")
    figure = out / "roc.png"
    figure.write_bytes(b"\x89PNG")
    path = report.write_report(
        out,
        "Demo reproduction",
        RUN,
        sections=[("Table 9", paper), ("Notes", "Numbers are *smoke* scale.")],
        figures=[figure],
    )
    text = path.read_text()
    assert text.startswith("# Demo reproduction\n")
    assert "| scale | smoke |" in text and "| weights | random |" in text and '"Benign": 3' in text
    assert "## Table 9" in text and "| VGG16 | 0.83 | 0.79 |" in text
    assert "Numbers are *smoke* scale." in text
    assert "![roc](roc.png)" in text


def test_write_report_missing_figure(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        report.write_report(tmp_path, "t", RUN, figures=[tmp_path / "missing.png"])


def test_results_dir(tmp_path):
    path = report.results_dir("kth", "smoke", root=tmp_path)
    assert path == tmp_path / "kth" / "smoke" and path.is_dir()
    with pytest.raises(ValueError, match=r"Received: scale='\.\./x'"):
        report.results_dir("kth", "../x", root=tmp_path)


def test_hardware_label_counts_identical_gpus():
    hardware = {"accelerators": [{"name": "NVIDIA H100", "kind": "gpu"}, {"name": "NVIDIA H100", "kind": "gpu"}]}
    assert report.run_summary({"hardware": hardware})["hardware"] == "2 x NVIDIA H100 (gpu)"


def test_with_extra_row_adds_a_row_of_ours_without_paper_numbers():
    from medcnn.report.published import with_extra_row

    paper = report.paper_table("demo", "Table 1", "caption", ["accuracy %"], [("A", 90.0)], "model", percent=True)
    extended = with_extra_row(paper, "ours")
    assert list(extended.index) == ["A", "ours"] and np.isnan(extended.loc["ours", "accuracy %"])
    assert extended.index.name == "model" and extended.attrs == paper.attrs and list(paper.index) == ["A"]
    assert list(with_extra_row(paper, "ours", "more").index) == ["A", "ours", "more"]
