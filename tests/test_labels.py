"""Tests for medcnn.data.labels' class weights (flat_labels and as_labels are tested with the metrics, in
test_evaluate.py): the one place class weights come from, for every study."""

import numpy as np
import pytest

from medcnn.data.labels import class_weights


@pytest.mark.parametrize(
    "labels, num_classes, counts",
    [
        pytest.param([0] * 6 + [1] * 3 + [2], None, {0: 6, 1: 3, 2: 1}, id="three classes present"),
        pytest.param([0, 0, 0, 1], 2, {0: 3, 1: 1}, id="C-NMC: two classes, ALL = 0"),
        pytest.param([2, 2, 5], None, {2: 2, 5: 1}, id="labels that skip classes"),
        pytest.param(np.eye(2)[[0, 1, 1, 1]], None, {0: 1, 1: 3}, id="one-hot labels"),
    ],
)
def test_class_weights_are_balanced(labels, num_classes, counts):
    weights = class_weights(labels, num_classes=num_classes)
    total = sum(counts.values())
    expected = {label: total / (len(counts) * count) for label, count in counts.items()}  # sklearn's "balanced"
    assert weights == pytest.approx(expected)
    assert all(type(label) is int and type(weight) is float for label, weight in weights.items())
    # every class weighs the same in total
    assert len({round(weights[label] * count, 9) for label, count in counts.items()}) == 1


def test_no_weights_and_unknown_weighting():
    assert class_weights([0, 1], None) is None
    with pytest.raises(ValueError, match="Received: class_weight='equal'"):
        class_weights([0, 1], "equal")


def test_a_class_without_items_is_named():
    with pytest.raises(ValueError, match=r"Classes \[1\] have none among 3 labels \(num_classes=2\)"):
        class_weights([0, 0, 0], num_classes=2)
