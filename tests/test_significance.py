"""`medcnn.significance`: an AUC clearly above chance, its standard error, a bootstrap over groups, shares by group."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medcnn import significance


@pytest.mark.parametrize(
    "auc, positives, negatives, expected",
    [
        (0.5, 22, 22, 0.0880),  # worked by hand from Hanley and McNeil's formula
        (0.9, 50, 50, 0.0321),
        (1.0, 5, 5, 0.0),
    ],
)
def test_auc_standard_error_follows_hanley_and_mcneil(auc, positives, negatives, expected):
    assert significance.auc_standard_error(auc, positives, negatives) == pytest.approx(expected, abs=5e-4)


def test_auc_standard_error_incorrect_arguments():
    with pytest.raises(ValueError, match="Received: auc=1.2"):
        significance.auc_standard_error(1.2, 5, 5)
    with pytest.raises(ValueError, match="Received: positives=0"):
        significance.auc_standard_error(0.6, 0, 5)


def test_auc_above_chance_needs_about_1_6_null_standard_errors():
    null_error = np.sqrt(45 / (12 * 22 * 22))  # 0.0884 on 22 + 22 items
    assert significance.auc_above_chance(0.5 + 1.7 * null_error, 22, 22) == (True, pytest.approx(0.0446, abs=1e-3))
    clear, p = significance.auc_above_chance(0.5 + 1.5 * null_error, 22, 22)
    assert not clear and p == pytest.approx(0.0668, abs=1e-3)
    assert significance.auc_above_chance(0.62, 200, 200)[0]  # the same AUC on more items is clear
    assert significance.auc_above_chance(float("nan"), 5, 5)[0] is False
    with pytest.raises(ValueError, match="Received: alpha=0"):
        significance.auc_above_chance(0.7, 5, 5, alpha=0)


def test_auc_above_chance_agrees_with_a_permutation_test():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(30, int), np.ones(20, int)]
    scores = rng.normal(size=50) + 0.5 * labels
    auc = roc_auc_score(labels, scores)
    permuted = np.array([roc_auc_score(rng.permutation(labels), scores) for _ in range(4000)])
    _, p = significance.auc_above_chance(auc, 20, 30)
    assert p == pytest.approx((permuted >= auc).mean(), abs=0.02)


def _grouped(groups=12, per_group=10, shift=1.0, seed=0):
    """Items in groups that share a random offset (so items of a group are not independent)."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(groups), per_group)
    labels = rng.integers(0, 2, len(group))
    offsets = rng.normal(scale=1.5, size=groups)[group]
    scores = 1 / (
        1 + np.exp(-(offsets * (2 * labels - 1) * 0.5 + shift * (labels - 0.5) + rng.normal(size=len(group))))
    )
    return labels, scores, group


def test_bootstrap_by_group_is_wider_than_by_item_and_reproducible():
    labels, scores, groups = _grouped()
    by_group = significance.bootstrap_by_group(labels, scores, groups, "roc_auc", resamples=500, seed=1)
    by_item = significance.bootstrap_by_group(labels, scores, np.arange(len(labels)), "roc_auc", 500, seed=1)
    assert by_group["estimate"] == pytest.approx(roc_auc_score(labels, scores))
    assert by_group["low"] <= by_group["estimate"] <= by_group["high"]
    assert (by_group["groups"], by_group["items"], by_group["resamples"]) == (12, 120, 500)
    assert by_group["high"] - by_group["low"] > by_item["high"] - by_item["low"]
    assert significance.bootstrap_by_group(labels, scores, groups, "roc_auc", 500, seed=1) == by_group
    accuracy = significance.bootstrap_by_group(labels, scores, groups, "accuracy", 200)
    assert accuracy["estimate"] == pytest.approx(np.mean((scores >= 0.5) == labels))


def test_bootstrap_by_group_skips_resamples_without_both_classes():
    labels, scores, groups = np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])
    result = significance.bootstrap_by_group(labels, scores, groups, resamples=200, seed=0)
    assert result["skipped"] > 0 and result["resamples"] + result["skipped"] == 200
    one = significance.bootstrap_by_group(labels, scores, np.zeros(4), resamples=10)
    assert one["groups"] == 1 and np.isnan(one["low"]) and one["estimate"] == 1.0
    with pytest.raises(ValueError, match="equally long"):
        significance.bootstrap_by_group(labels, scores[:3], groups)
    with pytest.raises(ValueError, match="Received: metric='f1'"):
        significance.bootstrap_by_group(labels, scores, groups, "f1")


def test_called_positive_by_group_lists_the_negative_group_first():
    table = significance.called_positive_by_group(
        [1, 1, 0, 0, 1, 0], ["trisomy", "normal", "deletion", "trisomy", "deletion", "normal"], first=["normal"]
    )
    assert table.index.tolist() == ["normal", "deletion", "trisomy"]
    assert table["images"].tolist() == [2, 2, 2] and table["called positive"].tolist() == [1, 1, 1]
    assert table["share called positive"].tolist() == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="`predicted` has 2 items"):
        significance.called_positive_by_group([1, 0], ["a"])


def test_beats_default_compares_the_best_trial_with_the_default_within_auc_noise():
    result = significance.beats_default([0.60, float("nan"), 0.66, 0.63], 0.62, 22, 22)
    assert result["beats"] and result["search_score"] == 0.66 and result["trials_range"] == [0.60, 0.66]
    assert result["standard_error"] == pytest.approx(significance.auc_standard_error(0.66, 22, 22))
    assert result["within_noise"] and result["trials_within_noise"]  # 0.04 and 0.06 against 2 x 0.082
    lost = significance.beats_default([0.60, 0.66], 0.95, 22, 22)
    assert not lost["beats"] and not lost["within_noise"]
    spread = significance.beats_default([0.55, 0.95], 0.5, 200, 200)
    assert spread["beats"] and not spread["trials_within_noise"]
    none = significance.beats_default([], 0.7, 22, 22)
    assert not none["beats"] and np.isnan(none["search_score"]) and none["trials_range"] == []
