"""Rows under several protocols: the table beside the paper, the protocol effect, recall per group, intervals."""

import numpy as np
import pandas as pd

from medcnn.experiment import protocols


def _record(row, protocol, seed, test_auc, collapsed=False):
    val = [[22, 0], [22, 0]] if collapsed else [[18, 4], [6, 16]]
    return {"configuration": f"{row} | {protocol}", "group": protocol, "seed": seed, "val_roc_auc": 0.9,
            "test_roc_auc": test_auc, "test_accuracy": 0.5 if collapsed else 0.75, "val_confusion": val,
            "test_confusion": [[10, 0], [10, 0]] if collapsed else [[8, 2], [3, 7]],
            "settings": {"row": row}}  # fmt: skip


def test_row_records_and_summary_drop_the_protocol():
    records = [_record("a", "honest", seed, 0.7 + seed / 100) for seed in range(3)]
    records.append(_record("a", "published", 0, 0.9))
    assert len(protocols.row_records(records, "a", "honest")) == 3 and protocols.row_of("a | honest") == "a"
    summary = protocols.protocol_summary(records, "honest", ["test_roc_auc", "test_accuracy"])
    assert list(summary.index) == ["a"] and summary.loc["a", "test_roc_auc_mean"] == 0.71


def test_protocols_table_puts_the_paper_beside_each_protocol_with_references():
    records = [_record("a", "honest", s, 0.7 + s / 100) for s in range(3)] + [_record("b", "honest", 0, 0.5, True)]
    paper = pd.DataFrame({"AUC": [0.9, np.nan]}, index=pd.Index(["a", "b"], name="row"))
    summaries = {"honest": protocols.protocol_summary(records, "honest", ["test_roc_auc", "test_accuracy"])}
    frame = protocols.protocols_table(paper, summaries, {"AUC": "test_roc_auc"}, {"b": "note"})
    assert frame.loc["a", "AUC: thesis"] == "0.90" and frame.loc["a", "AUC: honest"] == "0.71 ± 0.01"
    assert frame.loc["b", "AUC: honest"] == "collapsed" and frame.loc["b", "note"] == "note"
    assert "reference: chance" in frame.index and frame.index.name == "row"


def test_protocol_effect_pairs_seeds_and_names_rows_without_learned_runs():
    records = []
    for seed, noise in enumerate((0.0, 0.04, -0.04)):
        records += [_record("a", "published", seed, 0.95 + noise / 10), _record("a", "honest", seed, 0.75 - noise / 10),
                    _record("b", "published", seed, 0.5, True), _record("b", "honest", seed, 0.7)]  # fmt: skip
    text = protocols.protocol_effect(records, ["a", "b", "c"])
    assert text.startswith("Leakage effect, test AUC published minus honest") and "'a' +0.200" in text
    assert "for 1 of 1 row(s) ('a')" in text and "so not compared: 'b'" in text
    assert protocols.compare_rows_learned(records, "a", "c", "honest") is None


def test_called_positive_table_and_grouped_intervals_read_test_predictions():
    labels = np.r_[np.zeros(8, int), np.ones(8, int)]
    scores = np.r_[np.linspace(0.1, 0.4, 8), [0.3, 0.45, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]]
    record = {**_record("a", "honest", 0, 0.9), "test_indices": list(range(16)),
              "test_probabilities": np.stack([1 - scores, scores], axis=1).tolist()}  # fmt: skip
    kinds = np.array(["normal"] * 8 + ["x"] * 4 + ["y"] * 4)
    table = protocols.called_positive_table([record], ["a"], lambda r: kinds[r["test_indices"]], "honest",
                                            first=["normal"])  # fmt: skip
    assert table["a"].tolist() == ["0/8", "2/4", "4/4"]
    groups = np.array([f"m{i % 4}" for i in range(16)])
    intervals = protocols.grouped_intervals([record], "honest", lambda r: (labels, groups, {"cases": 1}), 50,
                                            names=("metaphases", "karyograms"))  # fmt: skip
    row = intervals.iloc[0]
    assert list(intervals) == ["row", "seed", "test AUC", "low", "high", "metaphases", "cases", "karyograms"]
    assert (row["metaphases"], row["karyograms"]) == (4, 16) and row["low"] <= row["test AUC"] <= row["high"]
