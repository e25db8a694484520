"""medcnn.experiment.karyotype: crops of one metaphase assigned jointly, two per autosome and XX or XY."""

import itertools

import numpy as np
import pytest

from medcnn.experiment import karyotype

K = 24  # 22 autosomes, X, Y (the last two)


def test_constrained_assignment_matches_brute_force():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=5)
    capacities = np.array([2, 2, 1])
    labels, cost = karyotype.constrained_assignment(probabilities, capacities)
    feasible = [
        choice
        for choice in itertools.product(range(3), repeat=5)
        if all(choice.count(k) <= capacities[k] for k in range(3))
    ]
    best = min(feasible, key=lambda choice: -np.log(probabilities[np.arange(5), choice]).sum())
    assert tuple(labels) == best
    assert cost == pytest.approx(-np.log(probabilities[np.arange(5), best]).sum())


def test_three_crops_wanting_one_class_are_split_two_and_one():
    probabilities = np.array([[0.6, 0.4], [0.55, 0.45], [0.9, 0.1]])
    labels, _ = karyotype.constrained_assignment(probabilities, [2, 2])
    assert labels.tolist() == [0, 1, 0]  # the crop that loses least moves
    with pytest.raises(ValueError, match=r"Received: probabilities.shape=\(3, 2\)"):
        karyotype.constrained_assignment(probabilities, [2, 2, 2])


def test_more_crops_than_places_still_get_a_class():
    probabilities = np.tile([0.9, 0.1], (5, 1))
    labels, _ = karyotype.constrained_assignment(probabilities, [2, 0])
    assert sorted(labels.tolist()) == [0, 0, 0, 0, 1]  # places (2, 0) -> (3, 1) -> (4, 2): all five fit


def _metaphase(sex):
    """Two crops per autosome and XX or XY, with probabilities whose per-crop argmax makes one known mistake:
    one of the two 21s looks most like a 22 (0.5 vs 0.4), while both 22s are sure (0.9)."""
    truth = [k for k in range(22) for _ in (0, 1)] + ([22, 22] if sex == "female" else [22, 23])
    probabilities = np.full((len(truth), K), 0.1 / (K - 1))
    probabilities[np.arange(len(truth)), truth] = 0.9
    first_21 = truth.index(20)
    probabilities[first_21] = 0.1 / (K - 2)
    probabilities[first_21, [20, 21]] = (0.4, 0.5)
    return np.array(truth), probabilities / probabilities.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("sex", ["female", "male"])
def test_karyotype_assignment_fixes_the_third_22_and_reads_the_sex(sex):
    truth, probabilities = _metaphase(sex)
    assert (probabilities.argmax(axis=1) == truth).sum() == len(truth) - 1
    labels, sexes = karyotype.karyotype_predictions(probabilities, ["cell"] * len(truth))
    assert labels.tolist() == truth.tolist() and sexes == {"cell": sex}


def test_karyotype_accuracy_and_view_over_folds():
    female, female_p = _metaphase("female")
    male, male_p = _metaphase("male")
    labels = np.concatenate([male, female])
    cells = np.array(["a"] * len(male) + ["b"] * len(female))
    folds = [
        {"fold": 1, "test_indices": list(range(len(male))), "test_probabilities": male_p.tolist()},
        {"fold": 2, "test_indices": list(range(len(male), len(labels))), "test_probabilities": female_p.tolist()},
    ]
    assert karyotype.karyotype_accuracy(folds[0], labels, cells) == 1.0
    view = karyotype.karyotype_view(folds, labels, cells)
    assert view["fold"].tolist() == [1, 2] and view["crops"].tolist() == [46, 46]
    assert view["correct per image"].tolist() == [45, 45] and view["correct, karyotype"].tolist() == [46, 46]
    assert view["sex called"].tolist() == view["sex (from its crops)"].tolist() == ["male", "female"]
    assert karyotype.karyotype_accuracy({"test_indices": [0]}, labels, cells) is None
    assert karyotype.karyotype_accuracy({"test_indices": [0]}, labels, cells) is None
