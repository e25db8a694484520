"""medcnn.experiment.cleaning_report: what a test-first cleaning removed, and the sentence that says it."""

import numpy as np
import pandas as pd

from medcnn.experiment.cleaning_report import cleaning_sentence, cleaning_summary


def test_cleaning_summary_and_sentence():
    labels = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    splits = {3: {"train": np.array([0, 1, 2]), "val": np.array([3]), "test": np.array([6, 7])}}
    infos = {3: {"outliers": np.array([4, 5]), "test_flagged": np.array([7])}}
    best = {"seed": 3, "test_indices": [6, 7], "test_probabilities": [[0.2, 0.8], [0.9, 0.1]]}
    pairs = pd.DataFrame({"kept_index": [0], "removed_index": [9], "kind": ["exact"]})
    cleaning = cleaning_summary(pairs, infos, splits, best, labels, ["a", "b"])
    assert cleaning["duplicates"] == 1 and cleaning["duplicate_kinds"] == {"exact": 1}
    assert cleaning["outliers"] == 2 and cleaning["outlier_classes"] == {"a": 1, "b": 1}
    assert cleaning["pool"] == 6 and cleaning["pool_classes"] == {"a": 3, "b": 3}
    assert cleaning["outliers_per_seed"] == {3: 2} and cleaning["flagged_accuracy"] == (1.0, 1.0, 1)
    sentence = cleaning_sentence(cleaning, best)
    assert sentence.startswith("Cleaning removed 1 duplicate(s), then 2 of 6 training and validation images")
    assert "(1 of them a, a class that makes up 50 % of those 6) (seed 3)" in sentence
    assert sentence.endswith("100.0 % right against 100.0 % on the rest.")
    none = cleaning_sentence({**cleaning, "flagged_accuracy": (float("nan"), 1.0, 0), "outlier_classes": {}}, best)
    assert none.endswith("flagged 0 test images, on which the best run is not measured.")
