"""Tests for medcnn.data.splits: ratios, stratification, groups, reproducibility and the leakage check."""

import hashlib
import warnings

import numpy as np
import pytest

from medcnn.errors import DataError
from medcnn.data.splits import (
    LopsidedSplitWarning,
    capped_group_split,
    capped_split_rows,
    check_folds_no_leakage,
    check_no_leakage,
    deduplicated_split,
    grouped_fold_assignment,
    grouped_kfold,
    image_fingerprints,
    lopsided_classes,
    split_counts,
    stratified_kfold,
    train_val_test_split,
)

# 200 items, imbalanced: 120 / 50 / 30.
LABELS = np.repeat([0, 1, 2], [120, 50, 30])
# 40 patients of 5 items each, each patient in one class (as in C-NMC): 24 / 10 / 6 patients.
GROUPS = np.repeat([f"P{i:02d}" for i in range(40)], 5)


def assert_partition(parts, n):
    joined = np.concatenate(parts)
    assert len(joined) == n and len(np.unique(joined)) == n
    assert all((np.diff(part) > 0).all() for part in parts)  # sorted, no repeats


@pytest.mark.parametrize("ratios", [(0.7, 0.15, 0.15), (0.64, 0.16, 0.2), (0.8, 0.2)])
def test_ratios_and_stratification(ratios):
    parts = train_val_test_split(LABELS, ratios=ratios, seed=3)
    assert len(parts) == len(ratios)
    assert_partition(parts, len(LABELS))
    for part, ratio in zip(parts, ratios):
        assert abs(len(part) - ratio * len(LABELS)) <= 2
        shares = np.bincount(LABELS[part], minlength=3) / len(part)
        np.testing.assert_allclose(shares, [0.6, 0.25, 0.15], atol=0.04)


def test_same_seed_same_split_different_seed_different():
    first = train_val_test_split(LABELS, seed=1)
    again = train_val_test_split(LABELS, seed=1)
    other = train_val_test_split(LABELS, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[2], other[2])


@pytest.mark.parametrize("ratios", [(0.7, 0.15, 0.15), (0.64, 0.16, 0.2), (0.8, 0.2)])
def test_grouped_split_keeps_each_patient_on_one_side(ratios):
    parts = train_val_test_split(LABELS, ratios=ratios, seed=0, groups=GROUPS)
    assert_partition(parts, len(LABELS))
    sides = [set(GROUPS[part]) for part in parts]
    for i in range(len(sides)):
        for j in range(i + 1, len(sides)):
            assert not sides[i] & sides[j]
    check_no_leakage(dict(zip(["train", "val", "test"], parts)), groups=GROUPS)
    for part, ratio in zip(parts, ratios):
        assert abs(len(part) / len(LABELS) - ratio) < 0.08
    for part in parts:
        assert set(LABELS[part]) == {0, 1, 2}  # every class on every side


def test_grouped_split_is_reproducible():
    first = train_val_test_split(LABELS, groups=GROUPS, seed=5)
    again = train_val_test_split(LABELS, groups=GROUPS, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))



def test_grouped_split_varies_with_the_seed():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(14), 60)
    labels = rng.integers(0, 24, len(groups))
    tests = {tuple(np.unique(groups[train_val_test_split(labels, groups=groups, seed=s)[2]])) for s in range(6)}
    assert len(tests) >= 4


def test_grouped_fold_assignment_varies_with_the_seed_and_keeps_classes_even():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(15), 40)
    labels = rng.integers(0, 4, len(groups))
    draws = [grouped_fold_assignment(labels, groups, 3, seed) for seed in range(5)]
    partitions = {frozenset(frozenset(groups[fold_of == k]) for k in range(3)) for fold_of in draws}
    assert len(partitions) >= 4
    for fold_of in draws:
        shares = np.array([np.bincount(labels[fold_of == k], minlength=4) / np.bincount(labels) for k in range(3)])
        assert np.abs(shares - 1 / 3).max() < 0.12
        assert np.array_equal(np.bincount(fold_of), [200, 200, 200])  # equal groups: 5 per fold


def test_grouped_fold_assignment_opens_every_fold():
    fold_of = grouped_fold_assignment([0, 0, 0, 1, 1, 1], ["a", "a", "b", "c", "d", "e"], 3, seed=4)
    assert sorted(set(fold_of)) == [0, 1, 2]
    assert fold_of[0] == fold_of[1]
    with pytest.raises(DataError, match="Only 2 patients/groups"):
        grouped_fold_assignment([0, 1, 1], ["a", "b", "b"], 3)
    with pytest.raises(ValueError, match="Pass `groups`"):
        grouped_fold_assignment([0, 1, 1], None, 2)
    with pytest.raises(ValueError, match="n_splits=1"):
        grouped_fold_assignment([0, 1, 1], ["a", "b", "c"], 1)


def test_grouped_split_varies_with_the_seed_when_each_fold_holds_one_group():
    groups = np.repeat(np.arange(7), 10)
    labels = np.tile([0, 1], 35)
    tests = {tuple(np.unique(groups[train_val_test_split(labels, groups=groups, seed=s)[2]])) for s in range(10)}
    assert len(tests) >= 4


def test_grouped_holdout_prefers_a_part_with_the_overall_class_mix():
    # five groups of 40 (a 20 % holdout takes one): two all class 0, two all class 1, one half and half
    groups = np.repeat(np.arange(5), 40)
    labels = np.concatenate([np.full(40, 0), np.full(40, 1), np.tile([0, 1], 20), np.full(40, 0), np.full(40, 1)])
    for seed in range(8):
        _, test = train_val_test_split(labels, (0.8, 0.2), seed=seed, groups=groups)
        assert set(groups[test]) == {2}

def test_stratified_kfold():
    folds = stratified_kfold(LABELS, n_splits=5, seed=0)
    assert len(folds) == 5
    assert_partition([val for _, val in folds], len(LABELS))
    for train, val in folds:
        assert not set(train) & set(val) and len(train) + len(val) == len(LABELS)
        assert np.bincount(LABELS[val], minlength=3).tolist() == [24, 10, 6]
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, stratified_kfold(LABELS, n_splits=5, seed=0)))


def test_grouped_kfold_validates_each_patient_once():
    folds = grouped_kfold(LABELS, GROUPS, n_splits=3, seed=0)
    assert len(folds) == 3
    assert_partition([val for _, val in folds], len(LABELS))
    seen = []
    for train, val in folds:
        assert not set(GROUPS[train]) & set(GROUPS[val])
        assert set(LABELS[val]) == {0, 1, 2}
        seen += sorted(set(GROUPS[val]))
    assert sorted(seen) == sorted(set(GROUPS))


def test_leak_of_a_patient_names_it_and_the_sides():
    groups = np.array(["P07"] * 4 + ["P08"] * 2)
    with pytest.raises(DataError, match=r"Patient/group 'P07' has 3 in train and 1 in test") as info:
        check_no_leakage({"train": [0, 1, 2, 4, 5], "test": [3]}, groups=groups)
    assert info.value.problem == "leak_group"


def test_leak_of_an_identical_image():
    images = np.zeros((4, 2, 2, 1), np.uint8)
    images[1] = 9
    images[3] = 7
    fingerprints = image_fingerprints(images)
    assert fingerprints[0] == fingerprints[2] != fingerprints[1]
    with pytest.raises(
        DataError, match=r"An identical image \(md5 .*\) has 1 in train and 1 in val \(indices train 0, val 2\)"
    ):
        check_no_leakage({"train": [0, 1], "val": [2, 3]}, fingerprints=fingerprints)
    check_no_leakage({"train": [0, 2], "val": [1, 3]}, fingerprints=fingerprints)


def test_same_item_in_two_splits():
    with pytest.raises(DataError) as info:
        check_no_leakage({"train": [0, 1, 2], "val": [2, 3]})
    assert str(info.value) == (
        "Item 2 is in train and val; 1 item(s) sit in more than one split. Each item must be in one split only: "
        "check how the splits were made."
    )


def test_leak_in_a_fold_names_the_fold():
    groups = np.array(["P1", "P1", "P2", "P2", "P3", "P4", "P4"])
    good = (np.array([0, 1, 2, 3]), np.array([4, 5, 6]))
    leaky = (np.array([0, 1, 2, 3, 5]), np.array([4, 6]))  # P4 on both sides
    check_folds_no_leakage([good, good], groups=groups)
    with pytest.raises(DataError) as info:
        check_folds_no_leakage([good, leaky], groups=groups)
    assert str(info.value) == (
        "Fold 1: Patient/group 'P4' has 1 in train and 1 in val; 1 group(s) sit on more than one side. Each must be "
        "on one side only. Make the split with the patient ids as `groups` (train_val_test_split(groups=...) or "
        "grouped_kfold)."
    )
    assert info.value.problem == "leak_group"
    with pytest.raises(DataError, match=r"^Fold 0: Item 3 is in train and val") as info:
        check_folds_no_leakage([(np.array([0, 1, 2, 3]), np.array([3, 4]))])
    assert info.value.problem == "leak_item"


def test_fingerprints_of_files_are_md5_of_bytes(tmp_path):
    (tmp_path / "a.png").write_bytes(b"same")
    (tmp_path / "b.png").write_bytes(b"same")
    (tmp_path / "c.png").write_bytes(b"other")
    prints = image_fingerprints([tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"])
    assert prints.tolist() == [hashlib.md5(b"same").hexdigest()] * 2 + [hashlib.md5(b"other").hexdigest()]


@pytest.mark.parametrize("ratios", [(0.7, 0.2), (0.5, 0.5, 0.5, -0.5), (1.0,), (0, 0.5, 0.5), "70/30"])
def test_ratios_incorrect(ratios):
    with pytest.raises(ValueError, match="Received: ratios="):
        train_val_test_split(LABELS, ratios=ratios)


def test_too_few_groups():
    with pytest.raises(DataError, match="Only 2 patients/groups: a grouped 3-fold split needs at least 3"):
        grouped_kfold([0, 0, 1, 1], ["a", "a", "b", "b"], n_splits=3)
    with pytest.raises(DataError, match="Only 2 patients/groups: a 15% grouped holdout needs at least 7"):
        train_val_test_split([0, 0, 1, 1], groups=["a", "a", "b", "b"])


def test_class_too_small_to_stratify():
    labels = np.array([0] * 10 + [1])
    with pytest.raises(DataError, match="Class 1 has 1 item"):
        train_val_test_split(labels)
    with pytest.raises(DataError, match="5-fold stratified cross-validation needs at least 5 per class"):
        stratified_kfold(np.array([0] * 10 + [1] * 3), n_splits=5)


def test_groups_length_mismatch():
    with pytest.raises(ValueError, match="one entry per label"):
        grouped_kfold(LABELS, GROUPS[:10])


def test_split_counts_table():
    table = split_counts(LABELS, {"train": np.arange(150), "val": np.arange(150, 200)}, ["a", "b", "c"])
    assert table.loc["a", "train"] == 120 and table.loc["b", "val"] == 20 and table.loc["total"].tolist() == [150, 50]


# --------------------------------------------------------------------------------------------------------------
# Grouped splits that leave a class nearly absent from a side

# 100 items of class 0 in 20 patients of 5; 90 of class 1, 80 of them in two patients, 10 in patients of one item.
LOPSIDED_LABELS = np.repeat([0, 1], [100, 90])
LOPSIDED_GROUPS = np.array(
    [f"A{i}" for i in range(20) for _ in range(5)] + ["B0"] * 40 + ["B1"] * 40 + [f"C{i}" for i in range(10)]
)


def per_class(labels, indices):
    counts = np.bincount(labels[indices], minlength=2)
    return f"{{0: {counts[0]}, 1: {counts[1]}}}"


def test_lopsided_classes_share_rule():
    labels = np.repeat([0, 1], [60, 40])
    splits = {"train": np.r_[0:50, 60:98], "val": np.r_[50:60, 98:100]}  # val: 10 of class 0, 2 of class 1
    assert lopsided_classes(labels, splits) == [(1, "val", 2, 12, pytest.approx(0.4 * 12))]


def test_lopsided_classes_count_rule():
    labels = np.repeat([0, 1], [90, 10])
    # 2 of class 1 among 40 (4 expected): at least half, but under 3 where 4 were expected.
    assert lopsided_classes(labels, {"train": np.r_[0:52, 90:98], "val": np.r_[52:90, 98:100]}) == [
        (1, "val", 2, 40, pytest.approx(4.0))
    ]
    # 1 of class 1 among 20 (2 expected): half of it, and under 3 only because fewer than 3 were expected.
    assert lopsided_classes(labels, {"train": np.r_[0:71, 90:99], "val": np.r_[71:90, 99:100]}) == []


def test_grouped_split_warns_at_the_callers_line():
    with pytest.warns(LopsidedSplitWarning) as record:
        train, val, test = train_val_test_split(LOPSIDED_LABELS, groups=LOPSIDED_GROUPS, seed=0)
    assert len(record) == 1 and record[0].filename == __file__
    message = str(record[0].message)
    for side, part in (("train", train), ("val", val), ("test", test)):
        assert f"{side} {per_class(LOPSIDED_LABELS, part)}" in message
    # The big patients B0 and B1 (80 of the 90 class-1 items) cannot sit in a 15% side.
    assert np.bincount(LOPSIDED_LABELS[val], minlength=2)[1] < 0.5 * 90 / 190 * len(val)
    assert message.startswith("The grouped split (0.7, 0.15, 0.15) leaves a class nearly absent from a side")
    assert f"class 1 has {np.sum(LOPSIDED_LABELS[val] == 1)} of {len(val)} items in val" in message


def test_grouped_kfold_warns_naming_the_fold():
    with pytest.warns(LopsidedSplitWarning) as record:
        folds = grouped_kfold(LOPSIDED_LABELS, LOPSIDED_GROUPS, n_splits=4, seed=0)
    assert len(record) == 1 and record[0].filename == __file__
    message = str(record[0].message)
    lopsided = [k for k, (_, val) in enumerate(folds) if np.sum(LOPSIDED_LABELS[val] == 1) < 0.5 * 90 / 190 * len(val)]
    assert len(lopsided) == 2  # the two folds without B0 or B1
    for k in lopsided:
        val = folds[k][1]
        assert f"class 1 has {np.sum(LOPSIDED_LABELS[val] == 1)} of {len(val)} items in fold {k} val" in message
    for k, (train, val) in enumerate(folds):
        assert f"fold {k} train {per_class(LOPSIDED_LABELS, train)}" in message
        assert f"fold {k} val {per_class(LOPSIDED_LABELS, val)}" in message


def test_balanced_grouped_splits_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", LopsidedSplitWarning)
        train_val_test_split(LABELS, groups=GROUPS, seed=0)
        grouped_kfold(LABELS, GROUPS, n_splits=3, seed=0)
        train_val_test_split(LOPSIDED_LABELS, seed=0)  # not grouped: stratified exactly


def test_staged_cnmc_grouped_split_warns(shared_data):
    from medcnn.data.loaders import load_cnmc

    data = load_cnmc(shared_data / "cnmc", decode=False)
    with pytest.warns(LopsidedSplitWarning) as record:
        train, val, test = train_val_test_split(data.labels, groups=data.groups, seed=0)
    hem_share = 320 / 840  # PROVENANCE.md: 520 ALL, 320 HEM
    hem_in_val = int(np.sum(data.labels[val] == 1))
    assert hem_in_val < 0.5 * hem_share * len(val)  # two HEM patients hold 300 of the 320 HEM cells
    message = str(record[0].message)
    assert record[0].filename == __file__
    assert f"class 1 has {hem_in_val} of {len(val)} items in val" in message
    assert f"val {per_class(data.labels, val)}" in message


def test_stratified_subset_keeps_class_shares_and_is_seeded():
    from medcnn.data.splits import stratified_subset

    labels = np.repeat([0, 1], [60, 20])
    picked = stratified_subset(labels, 40, seed=3)
    assert len(picked) == 40 and np.all(np.diff(picked) > 0)
    assert np.bincount(labels[picked]).tolist() == [30, 10]
    assert stratified_subset(labels, 40, seed=3).tolist() == picked.tolist()
    assert stratified_subset(labels, None).tolist() == list(range(80))


# ----------------------------------------------------------------------------------------------------------------
# Cross-validation with a validation side inside each fold


def test_grouped_cross_validation_tests_every_patient_once_and_validates_inside_the_training_patients():
    from medcnn.data.splits import cross_validation_splits

    folds = cross_validation_splits(LABELS, 5, seed=0, val_fraction=0.2, groups=GROUPS)
    assert len(folds) == 5
    assert_partition([fold["test"] for fold in folds], len(LABELS))  # every item tested exactly once
    for fold in folds:
        assert_partition([fold["train"], fold["val"], fold["test"]], len(LABELS))
        sides = [set(GROUPS[fold[side]]) for side in ("train", "val", "test")]
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
        assert 0.1 < len(fold["val"]) / (len(fold["train"]) + len(fold["val"])) < 0.3
    again = cross_validation_splits(LABELS, 5, seed=0, val_fraction=0.2, groups=GROUPS)
    other = cross_validation_splits(LABELS, 5, seed=1, val_fraction=0.2, groups=GROUPS)
    assert all(np.array_equal(a["val"], b["val"]) for a, b in zip(folds, again))
    assert any(not np.array_equal(a["test"], b["test"]) for a, b in zip(folds, other))


def test_grouped_validation_sides_hold_a_rare_class_where_whole_groups_allow():
    """A class found in 3 of 20 groups (like Y in the male cases): every fold's validation side still holds it, so
    early stopping cannot ignore it (without the rule, 44 of these 50 folds lacked it)."""
    from medcnn.data.splits import cross_validation_splits

    groups = np.repeat(np.arange(20), 10)
    labels = np.arange(200) % 2
    labels[np.isin(groups, (0, 7, 13)) & (np.arange(200) % 10 < 3)] = 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rare class is lopsided on some test sides
        for seed in range(10):
            for fold in cross_validation_splits(labels, 5, seed=seed, val_fraction=0.2, groups=groups):
                assert 2 in labels[fold["val"]] and 2 in labels[fold["train"]], (seed, fold)


def test_image_level_cross_validation_is_stratified_k_fold_with_a_stratified_validation_side():
    from medcnn.data.splits import cross_validation_splits

    folds = cross_validation_splits(LABELS, 5, seed=0, val_fraction=0.25)
    assert_partition([fold["test"] for fold in folds], len(LABELS))
    for fold, (_, test) in zip(folds, stratified_kfold(LABELS, 5, seed=0)):
        assert np.array_equal(fold["test"], test)
        assert np.bincount(LABELS[fold["val"]], minlength=3).tolist() == [24, 10, 6]  # a quarter of 96 / 40 / 24
        assert set(GROUPS[fold["train"]]) & set(GROUPS[fold["test"]])  # image-level: patients on both sides


@pytest.mark.parametrize("val_fraction", [0, 1.0, 0.5j, "0.2"])
def test_cross_validation_rejects_a_validation_share_outside_0_1(val_fraction):
    from medcnn.data.splits import cross_validation_splits

    with pytest.raises(ValueError, match="Received: val_fraction="):
        cross_validation_splits(LABELS, 5, val_fraction=val_fraction)


def test_cross_validation_needs_a_group_per_fold():
    from medcnn.data.splits import cross_validation_splits

    with pytest.raises(DataError, match="Only 2 patients/groups"):
        cross_validation_splits([0, 0, 1, 1], 3, groups=["a", "a", "b", "b"])


def test_deduplicated_split_has_no_copy_on_two_sides():
    labels = np.repeat(np.arange(4), 25)
    fingerprints = [f"img{i // 2}" if i < 40 else f"img{i}" for i in range(100)]  # 20 duplicate pairs
    split, info = deduplicated_split(labels, fingerprints, seed=0, deduplicate=True)
    assert info["duplicates_removed"] == 20 and info["duplicates_across_sides"] == {"val": 0, "test": 0}
    assert sum(len(v) for v in split.values()) == 80
    published, info = deduplicated_split(labels, fingerprints, seed=0)
    assert sum(len(v) for v in published.values()) == 100
    in_train = {fingerprints[i] for i in published["train"]}
    assert info["duplicates_across_sides"]["test"] == sum(fingerprints[i] in in_train for i in published["test"])


def test_capped_group_split_caps_the_large_group_in_turn_and_folds_the_rest_two_ways():
    groups = np.repeat([str(p) for p in range(12)] + ["L1", "L2"] + [f"s{p}" for p in range(10)],
                       [40] * 12 + [150, 150] + [2] * 10)  # fmt: skip
    labels = np.array([0 if g.isdigit() else 1 for g in groups])
    parts = [capped_group_split(labels, groups, seed, first_share=0.65) for seed in (0, 1)]
    assert [part["held_out"] for part in parts] == ["L1", "L2"] and parts[0]["large"] == ["L1", "L2"]
    for part in parts:
        test, rest, unused = part["test"], part["rest"], part["unused"]
        assert 0.6 < np.mean(labels[test] == 0) < 0.7 and set(groups[unused]) == {part["held_out"]}
        assert sorted(np.concatenate([test, rest, unused]).tolist()) == list(range(len(labels)))
        assert not set(groups[rest]) & set(groups[np.concatenate([test, unused])])
        assert all(not set(groups[t]) & set(groups[v]) for t, v in part["folds"]["grouped"])
        assert max(len(set(groups[t]) & set(groups[v])) for t, v in part["folds"]["published"]) > 0
    rows = capped_split_rows(labels, groups, dict(enumerate(parts)), ["a", "b"], "patient")
    assert list(rows) == ["seed 0", "seed 1"] and rows["seed 1"]["B patient held out"] == "L2"
    columns = ["A cells", "B cells", "A share", "patients", "B patient held out", "its cells unused"]
    assert list(rows["seed 0"]) == columns
    assert rows["seed 0"]["A cells"] == int((labels[parts[0]["test"]] == 0).sum())
    plain = capped_group_split(labels, groups, seed=0, min_items=1000)  # no large group: whole groups only
    assert plain["held_out"] is None and not len(plain["unused"])
