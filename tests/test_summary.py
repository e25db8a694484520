"""medcnn.experiment.summary's helpers for a study's tables: scaled summaries, one row's sides, a cell, and the
accuracy of a run on part of its test side."""

import math

import numpy as np
import pytest

from medcnn.experiment import summarise
from medcnn.experiment.summary import row_mean_std, scaled, sides_summary, subset_accuracy


def _records():
    return [
        {"configuration": "A", "seed": seed, "epochs": 5, "train_accuracy": 0.9 + 0.02 * seed,
         "val_accuracy": 0.8 + 0.02 * seed, "test_accuracy": 0.7}
        for seed in (0, 1)
    ]  # fmt: skip


def test_scaled_and_row_mean_std():
    summary = summarise(_records(), ["val_accuracy", "epochs"])
    percent = scaled(summary, ["val_accuracy"])
    assert percent.loc["A", "val_accuracy_mean"] == pytest.approx(81.0) and percent.loc["A", "epochs_mean"] == 5
    assert summary.loc["A", "val_accuracy_mean"] == pytest.approx(0.81)  # the original is left alone
    assert row_mean_std(summary, "A", "val_accuracy", 1, 100) == "81.0 ± 1.4"


def test_sides_summary_is_one_row_per_side():
    sides = {"train": "train_accuracy", "validation": "val_accuracy", "test": "test_accuracy"}
    table = sides_summary(_records(), "A", sides)
    assert list(table.index) == ["train", "validation", "test"] and table.index.name == "set"
    assert table.loc["train", "accuracy_mean"] == pytest.approx(91.0) and table.loc["test", "runs"] == 2


def test_subset_accuracy_splits_the_test_side():
    record = {"test_indices": [5, 6, 7, 8], "test_probabilities": np.eye(4)[[0, 1, 1, 3]].tolist()}
    labels = np.zeros(10, int)
    labels[[5, 6, 7, 8]] = [0, 1, 2, 3]
    assert subset_accuracy(record, labels, [7, 8]) == (0.5, 1.0, 2)
    on, off, count = subset_accuracy(record, labels, [])
    assert math.isnan(on) and off == 0.75 and count == 0


def test_stacked_test_scores_refuses_rows_tested_on_different_items():
    import pytest

    from medcnn.experiment.summary import stacked_test_scores

    labels = np.array([0, 1, 1, 0])
    records = [{"model": "a", "test_indices": [0, 1], "test_probabilities": [[0.8, 0.2], [0.3, 0.7]]},
               {"model": "a", "test_indices": [2, 3], "test_probabilities": [[0.4, 0.6], [0.9, 0.1]]},
               {"model": "b", "test_indices": [0, 1, 2, 3], "test_probabilities": [0.1, 0.9, 0.8, 0.3]}]  # fmt: skip
    truth, scores = stacked_test_scores(records, labels)
    assert truth.tolist() == [0, 1, 1, 0] and scores["a"].tolist() == [0.2, 0.7, 0.6, 0.1]
    with pytest.raises(ValueError, match="different items"):
        stacked_test_scores([*records, {"model": "c", "test_indices": [3], "test_probabilities": [0.5]}], labels)
