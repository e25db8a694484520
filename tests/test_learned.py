"""`medcnn.experiment.learned`: which runs learned, the best learned row, comparisons kept to learned runs."""

import numpy as np
import pytest

from medcnn.experiment.learned import best_learned, compare_learned, learned


def run(label, seed, val_auc, test_auc=0.7, collapsed=False, val=(22, 22)):
    negatives, positives = val
    confusion = [[negatives, 0], [positives, 0]] if collapsed else [[negatives - 4, 4], [6, positives - 6]]
    test = [[10, 0], [10, 0]] if collapsed else [[8, 2], [3, 7]]
    return {"configuration": label, "seed": seed, "val_roc_auc": val_auc, "test_roc_auc": test_auc,
            "val_confusion": confusion, "test_confusion": test}  # fmt: skip


@pytest.mark.parametrize(
    "record, expected",
    [
        (run("a", 0, 0.80), True),
        (run("a", 0, 0.60), False),  # 22 + 22 validation images: 0.60 is within noise of 0.5
        (run("a", 0, 0.60, val=(400, 400)), True),  # the same AUC on more images is clear
        (run("a", 0, 0.90, collapsed=True), False),  # one class for every image
        ({**run("a", 0, 0.9), "val_confusion": None}, False),
        ({**run("a", 0, 0.9), "val_roc_auc": float("nan")}, False),
    ],
    ids=["clear", "within_noise", "more_images", "collapsed", "no_confusion", "no_auc"],
)
def test_learned(record, expected):
    assert learned(record) is expected


def test_best_learned_row_uses_only_the_runs_that_learned():
    records = [
        run("a", 0, 0.80),
        run("a", 1, 0.55),
        run("b", 0, 0.75),
        run("b", 1, 0.78),
        run("c", 0, 0.99, collapsed=True),
    ]
    label, runs = best_learned(records)
    assert label == "a" and [r["seed"] for r in runs] == [0]  # a's learned mean 0.80 beats b's 0.765
    assert best_learned([run("c", 0, 0.99, collapsed=True)]) is None


def test_compare_learned_pairs_by_seed_or_names_the_row_that_did_not_learn():
    a = [run("a", seed, 0.8, 0.80 + d) for seed, d in enumerate((0.0, 0.01, 0.02))]
    b = [run("b", seed, 0.8, 0.60 + d) for seed, d in enumerate((0.0, 0.02, 0.01))]
    verdict = compare_learned(a, b, "A", "B")
    assert verdict.verdict == "above" and verdict.paired and verdict.difference == pytest.approx(0.2)
    none = compare_learned(a, [run("b", 0, 0.5, collapsed=True)], "A", "B")
    assert none.verdict == "not judged" and none.sentence == "no run of B learned, so the two are not compared."
    assert np.isnan(none.difference)
