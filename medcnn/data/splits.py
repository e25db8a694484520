"""Seeded, reproducible splits (stratified, and patient-grouped) and a leakage check.

Every function returns sorted integer index arrays into the data set, so the same seed always gives the same
split, whatever the caller does with the data in between.
"""

import hashlib
import warnings
from pathlib import Path

import numpy as np

from medcnn.errors import DataError

SPLIT_NAMES = ("train", "val", "test")
# Whole groups cannot be stratified exactly. A grouped split is lopsided for a class on a side when that side holds
# fewer than half the items the class's overall share predicts for it, or fewer than MIN_ITEMS_PER_SIDE items where
# at least that many were predicted (per-class metrics on that side would rest on one or two images).
MIN_ITEMS_PER_SIDE = 3


class LopsidedSplitWarning(UserWarning):
    """A grouped split left a class nearly absent from one side, because whole groups (patients) go to one side."""


def _check_ratios(ratios):
    if (
        not isinstance(ratios, (tuple, list))
        or len(ratios) not in (2, 3)
        or not all(isinstance(r, (int, float)) and 0 < r < 1 for r in ratios)
        or abs(sum(ratios) - 1.0) > 1e-6
    ):
        raise ValueError(
            "`ratios` must be 2 or 3 fractions in (0, 1) that sum to 1, e.g. (0.7, 0.15, 0.15) or (0.8, 0.2). "
            f"Received: ratios={ratios!r}"
        )
    return tuple(float(r) for r in ratios)


def _check_labels(labels, groups=None):
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"`labels` must be a non-empty 1-D array. Received: labels.shape={labels.shape}")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != labels.shape:
            raise ValueError(
                f"`groups` must have one entry per label: {len(labels)} labels but groups.shape={groups.shape}."
            )
    return labels, groups


def _smallest_class(labels, needed, what):
    values, counts = np.unique(labels, return_counts=True)
    if counts.min() < needed:
        raise DataError(
            f"Class {values[counts.argmin()].item()!r} has {counts.min()} item(s); {what} needs at least {needed} "
            "per class. "
            "Collect more images of that class, or merge or drop it.",
            problem="too_few_items",
        )


def _check_enough_groups(groups, n_splits, what):
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise DataError(
            f"Only {n_groups} patients/groups: {what} needs at least {n_splits}. Use fewer splits or a larger share, "
            "or pass groups=None if images of one patient may sit on both sides.",
            problem="too_few_groups",
        )


def grouped_fold_assignment(labels, groups, n_splits, seed=0):
    """Fold number (0..n_splits-1) per item: whole groups, class-stratified, a different draw for each seed.

    The groups are taken largest first, each size scaled by a seeded random factor in [0.5, 1.5) so that the order
    changes with the seed; the first `n_splits` open one fold each (no fold stays empty), and every later group
    joins the fold that keeps each class's share most even across folds (ties: the smaller fold). sklearn's
    StratifiedGroupKFold sorts the groups by class spread instead, so its shuffle only reorders ties and different
    seeds give (nearly) the same folds.

    Raises:
        ValueError: `groups` is None or `n_splits` < 2.
        DataError: fewer groups than folds.
    """
    labels, groups = _check_labels(labels, groups)
    if groups is None or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError(f"Pass `groups` and an int `n_splits` >= 2. Received: n_splits={n_splits!r}, groups={groups}")
    _check_enough_groups(groups, n_splits, f"a grouped {n_splits}-fold split")
    _, y = np.unique(labels, return_inverse=True)
    names, g = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(names), y.max() + 1))
    np.add.at(counts, (g, y), 1)
    totals = counts.sum(axis=0)
    jitter = np.random.default_rng(seed).uniform(0.5, 1.5, len(names))
    per_fold = np.zeros((n_splits, counts.shape[1]))
    fold_of = np.empty(len(names), dtype=int)
    for rank, group in enumerate(np.argsort(-counts.sum(axis=1) * jitter, kind="stable")):
        if rank < n_splits:
            fold = rank
        else:
            costs = []
            for candidate in range(n_splits):
                trial = per_fold.copy()
                trial[candidate] += counts[group]
                spread = np.std(trial / totals, axis=0).mean()
                costs.append((round(float(spread), 9), per_fold[candidate].sum()))
            fold = min(range(n_splits), key=costs.__getitem__)
        fold_of[group] = fold
        per_fold[fold] += counts[group]
    return fold_of[g]


def _class_shift(labels, part, whole):
    """Total variation distance between the class shares of `part` and of `whole` (0 = same mix, 1 = disjoint)."""
    classes = np.unique(labels[whole])
    shares = [np.mean(labels[idx][:, None] == classes, axis=0) for idx in (part, whole)]
    return 0.5 * float(np.abs(shares[0] - shares[1]).sum())


def _grouped_holdout(labels, groups, indices, fraction, seed, tolerance=0.1, missing_penalty=0.0):
    """Split `indices` into (rest, holdout) with whole groups, holdout about `fraction` of them, class-stratified.

    The folds of `grouped_fold_assignment` (round(1 / fraction) of them) are scored by their relative size error
    plus `_class_shift`, plus `missing_penalty` for each class of `indices` the fold lacks; the holdout is drawn
    (seeded) among those within `tolerance` of the best score, so that the seed still moves the split when each fold
    holds a single group.
    """
    n_splits = max(2, round(1.0 / fraction))
    _check_enough_groups(groups[indices], n_splits, f"a {fraction:.0%} grouped holdout")
    fold_of = grouped_fold_assignment(labels[indices], groups[indices], n_splits, seed)
    target = fraction * len(indices)
    present = set(np.unique(labels[indices]).tolist())
    scores = np.array(
        [
            abs((fold_of == fold).sum() - target) / target
            + _class_shift(labels, indices[fold_of == fold], indices)
            + missing_penalty * len(present - set(np.unique(labels[indices[fold_of == fold]]).tolist()))
            for fold in range(n_splits)
        ]
    )
    close = np.flatnonzero(scores <= scores.min() + tolerance)
    chosen = np.random.default_rng(seed).choice(close)
    return indices[fold_of != chosen], indices[fold_of == chosen]


def train_val_test_split(labels, ratios=(0.7, 0.15, 0.15), seed=0, groups=None):
    """Stratified split by `ratios`; with `groups` (patient ids) every group lands on one side only.

    Args:
        labels: integer labels, one per item.
        ratios: (train, val, test) fractions, e.g. (0.7, 0.15, 0.15) or (0.64, 0.16, 0.2); or two fractions,
            (train, val), e.g. (0.8, 0.2).
        seed: the same seed gives the same split.
        groups: optional group id per item; grouped splits follow the ratios only as closely as whole groups allow,
            and warn (`LopsidedSplitWarning`, with the counts per class and side) when a class ends up nearly
            absent from a side (see `lopsided_classes`).

    Returns:
        One sorted index array per ratio: (train_idx, val_idx, test_idx), or (train_idx, val_idx) for two ratios.
    """
    from sklearn.model_selection import train_test_split

    ratios = _check_ratios(ratios)
    labels, groups = _check_labels(labels, groups)
    indices = np.arange(len(labels))
    held_out = []
    remaining = 1.0
    for ratio in ratios[:0:-1]:  # peel off test, then val, from the end
        fraction = ratio / remaining
        if groups is None:
            _smallest_class(labels[indices], 2, "a stratified split")
            try:
                indices, holdout = train_test_split(
                    indices, test_size=fraction, stratify=labels[indices], random_state=seed
                )
            except ValueError as error:
                raise DataError(
                    f"Cannot split {len(indices)} items by ratios {ratios}: {error}", problem="too_few_items"
                ) from None
        else:
            indices, holdout = _grouped_holdout(labels, groups, indices, fraction, seed)
        held_out.insert(0, np.sort(holdout))
        remaining -= ratio
    parts = (np.sort(indices), *held_out)
    if groups is not None:
        _warn_if_lopsided(labels, dict(zip(SPLIT_NAMES, parts)), f"The grouped split {ratios}")
    return parts


def deduplicated_split(labels, fingerprints, seed=0, ratios=(0.7, 0.15, 0.15), deduplicate=False):
    """`train_val_test_split` as {"train", "val", "test": indices}; with `deduplicate`, only the first of each set of
    identical items (same fingerprint, e.g. `image_fingerprints`) is kept before the split.

    Returns (split, info): info counts the duplicates removed and the val/test items with a copy in train.
    """
    fingerprints = np.asarray(fingerprints)
    keep = np.sort(np.unique(fingerprints, return_index=True)[1]) if deduplicate else np.arange(len(labels))
    train, val, test = train_val_test_split(np.asarray(labels)[keep], ratios=ratios, seed=seed)
    split = {"train": keep[train], "val": keep[val], "test": keep[test]}
    in_train = set(fingerprints[split["train"]])
    across = {side: int(sum(f in in_train for f in fingerprints[split[side]])) for side in ("val", "test")}
    return split, {"duplicates_removed": len(labels) - len(keep), "duplicates_across_sides": across}


def stratified_kfold(labels, n_splits=5, seed=0):
    """Shuffled, stratified k-fold: a list of `n_splits` (train_idx, val_idx) pairs."""
    from sklearn.model_selection import StratifiedKFold

    labels, _ = _check_labels(labels)
    _smallest_class(labels, n_splits, f"{n_splits}-fold stratified cross-validation")
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(np.sort(train), np.sort(val)) for train, val in folds.split(np.zeros(len(labels)), labels)]


def grouped_kfold(labels, groups, n_splits=3, seed=0):
    """Patient-grouped, class-stratified k-fold (`grouped_fold_assignment`): each group is validated exactly once.

    Warns (`LopsidedSplitWarning`) when a fold leaves a class nearly absent from its train or validation side.
    Returns a list of `n_splits` sorted (train_idx, val_idx) pairs.
    """
    labels, groups = _check_labels(labels, groups)
    if groups is None:
        raise ValueError("`groups` is required for a grouped k-fold. Received: groups=None")
    fold_of = grouped_fold_assignment(labels, groups, n_splits, seed)
    everything = np.arange(len(labels))
    pairs = [(everything[fold_of != fold], everything[fold_of == fold]) for fold in range(n_splits)]
    sides = {f"fold {k} {side}": part for k, pair in enumerate(pairs) for side, part in zip(("train", "val"), pair)}
    _warn_if_lopsided(labels, sides, f"The grouped {n_splits}-fold split")
    return pairs


def capped_group_split(labels, groups, seed=0, folds=3, test_fraction=0.2, first_share=0.65, large_class=1,
                       min_items=30):  # fmt: skip
    """A test part of whole groups, one large group capped in it, and two kinds of folds over the rest, from `seed`.

    The large groups are those of class `large_class` with at least `min_items` items; the others are split whole:
    about `test_fraction` of their items form the test part (`train_val_test_split` with groups). One large group
    (the `seed`-th in turn) joins it, capped so that class 0 makes up about `first_share` of the test part; its other
    items are "unused", the other large groups join the rest. The rest is split into `folds` stratified folds twice:
    "published" item by item (a group's items on both sides of a fold, as item-level folds are often published),
    "grouped" group by group.

    Returns:
        {"test", "rest", "unused": indices, "folds": {"published", "grouped": [(train, val), ...]}, "large": the
        large groups, sorted, "held_out": the one in the test part (None without one), "warnings": the
        lopsided-split warnings}.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    large = sorted(g for g in np.unique(groups[labels == large_class]) if (groups == g).sum() >= min_items)
    held = large[seed % len(large)] if large else None
    drawn = np.flatnonzero(~np.isin(groups, large))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept, test = train_val_test_split(labels[drawn], (1 - test_fraction, test_fraction), seed, groups=groups[drawn])
        rest = np.sort(np.concatenate([drawn[kept], np.flatnonzero(np.isin(groups, large) & (groups != held))]))
        test, unused = drawn[test], np.array([], dtype=int)
        if held is not None:
            items = np.random.default_rng(seed).permutation(np.flatnonzero(groups == held))
            first, others = int((labels[test] == 0).sum()), int((labels[test] != 0).sum())
            cap = int(np.clip(round(first * (1 - first_share) / first_share) - others, 1, len(items)))
            test, unused = np.sort(np.concatenate([test, items[:cap]])), np.sort(items[cap:])
        grouped = grouped_kfold(labels[rest], groups[rest], folds, seed)
    published = stratified_kfold(labels[rest], folds, seed)
    by_kind = {"published": [(rest[t], rest[v]) for t, v in published],
               "grouped": [(rest[t], rest[v]) for t, v in grouped]}  # fmt: skip
    check_no_leakage({"rest": rest, "test": np.concatenate([test, unused])}, groups=groups)
    check_folds_no_leakage(by_kind["grouped"], groups=groups)
    return {"test": test, "rest": rest, "unused": unused, "folds": by_kind, "large": large, "held_out": held,
            "warnings": [str(w.message) for w in caught]}  # fmt: skip


def capped_split_rows(labels, groups, splits_by_seed, class_names, group="patient", large_class=1):
    """{"seed <n>": row} of `capped_group_split`s by seed: the test part's items per class ("<CLASS> cells"), the
    first class's share, its groups ("<group>s"), the large group held out in it and its items left unused."""
    labels, groups, names = np.asarray(labels), np.asarray(groups), [name.upper() for name in class_names]
    rows = {}
    for seed, split in splits_by_seed.items():
        test = split["test"]
        row = {f"{name} cells": int((labels[test] == k).sum()) for k, name in enumerate(names)}
        rows[f"seed {seed}"] = {**row, f"{names[0]} share": round(row[f"{names[0]} cells"] / len(test), 3),
                                f"{group}s": len(set(groups[test])), f"{names[large_class]} {group} held out":
                                split["held_out"] or "", "its cells unused": len(split["unused"])}  # fmt: skip
    return rows


def cross_validation_splits(labels, n_splits, seed=0, val_fraction=0.15, groups=None):
    """K-fold cross-validation with a validation side inside each fold's training side: every item tested once.

    With `groups` (patient or case ids) the folds hold whole groups (`grouped_fold_assignment`) and each fold's
    validation side is about `val_fraction` of its training groups (whole groups, class-stratified, seeded per
    fold, holding every class of the training side where whole groups allow), so no group sits on two sides of any
    fold. Without `groups` the folds are image-level (`stratified_kfold`) and the validation side a stratified
    `val_fraction` of the training items.

    Args:
        labels: class label per item.
        n_splits: int >= 2, the folds; each item is in exactly one fold's test side.
        seed: draws the folds and each fold's validation side.
        val_fraction: float in (0, 1), the share of each fold's training side held out for validation.
        groups: optional group id per item.

    Returns:
        A list of `n_splits` dicts {"train", "val", "test"} of sorted index arrays.

    Warns:
        LopsidedSplitWarning: (grouped) a fold leaves a class nearly absent from a side.
    """
    from sklearn.model_selection import train_test_split

    labels, groups = _check_labels(labels, groups)
    if not (isinstance(val_fraction, float) and 0 < val_fraction < 1):
        raise ValueError(f"`val_fraction` must be a float in (0, 1). Received: val_fraction={val_fraction!r}")
    if groups is None:
        pairs = stratified_kfold(labels, n_splits, seed)
    else:
        fold_of = grouped_fold_assignment(labels, groups, n_splits, seed)
        everything = np.arange(len(labels))
        pairs = [(everything[fold_of != fold], everything[fold_of == fold]) for fold in range(n_splits)]
    folds = []
    for fold, (rest, test) in enumerate(pairs):
        if groups is None:
            train, val = train_test_split(rest, test_size=val_fraction, stratify=labels[rest], random_state=seed + fold)
        else:
            # a validation side without some class would let early stopping ignore it: avoided where a holdout of
            # whole groups can hold every class of the fold's training side
            train, val = _grouped_holdout(labels, groups, rest, val_fraction, seed + fold, missing_penalty=1.0)
        folds.append({"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)})
    if groups is not None:
        sides = {f"fold {k} {side}": part for k, fold in enumerate(folds) for side, part in fold.items()}
        _warn_if_lopsided(labels, sides, f"The grouped {n_splits}-fold cross-validation")
    return folds


def lopsided_classes(labels, splits):
    """Classes that a split leaves nearly absent from a side, compared with their share of the whole data set.

    A class is listed for a side when the side holds fewer than half the items the class's overall share predicts
    for it, or fewer than `MIN_ITEMS_PER_SIDE` items where at least that many were predicted.

    Args:
        labels: class label per item of the whole data set.
        splits: {side name: indices}, e.g. {"train": train_idx, "val": val_idx}.

    Returns:
        [(class, side, count, side size, expected count)], in side order, then class order.
    """
    labels = np.asarray(labels)
    classes, totals = np.unique(labels, return_counts=True)
    shares = totals / len(labels)
    found = []
    for side, indices in splits.items():
        side_labels = labels[np.asarray(indices, dtype=int)]
        for value, share in zip(classes, shares):
            count, expected = int((side_labels == value).sum()), float(share * len(side_labels))
            if count < expected / 2 or count < MIN_ITEMS_PER_SIDE <= expected:
                found.append((value.item(), side, count, len(side_labels), expected))
    return found


def _warn_if_lopsided(labels, splits, what):
    """Warn, pointing at the caller of the public split function, when `lopsided_classes` finds any."""
    flagged = lopsided_classes(labels, splits)
    if not flagged:
        return
    labels = np.asarray(labels)
    classes = np.unique(labels)
    details = "; ".join(
        f"class {value!r} has {count} of {size} items in {side} ({count / size:.1%}; {expected:.1f} expected "
        f"from its {np.mean(labels == value):.1%} overall)"
        for value, side, count, size, expected in flagged
    )
    table = ", ".join(
        f"{side} {dict(zip(classes.tolist(), [int((labels[idx] == c).sum()) for c in classes]))}"
        for side, idx in ((side, np.asarray(indices, dtype=int)) for side, indices in splits.items())
    )
    warnings.warn(
        f"{what} leaves a class nearly absent from a side, because each group (patient) sits on one side only: "
        f"{details}. Items per class and side: {table}. Metrics of that class on that side rest on few items. "
        "When a few large groups hold most of a class (count items per group), whole groups cannot do better: "
        "report that class's results with this caveat; otherwise try other seeds or ratios.",
        LopsidedSplitWarning,
        stacklevel=3,
    )


def image_fingerprints(images_or_paths):
    """md5 hex digest per image: of the pixel array for images (N, H, W, C), of the file bytes for paths.

    An `ImageSet` gives the fingerprints of its decoded images, or of its files when not decoded.
    """
    source = images_or_paths
    if hasattr(source, "labels") and hasattr(source, "images"):  # an ImageSet
        source = source.images if source.images is not None else source.paths
    if isinstance(source, np.ndarray) and source.dtype.kind not in "USO":
        return np.array([hashlib.md5(np.ascontiguousarray(image).tobytes()).hexdigest() for image in source])
    digests = []
    for path in source:
        try:
            digests.append(hashlib.md5(Path(path).read_bytes()).hexdigest())
        except OSError as error:
            raise DataError(f"{path}: cannot read the file ({error}).", path=path, problem="unreadable") from None
    return np.array(digests)


def check_no_leakage(splits, groups=None, fingerprints=None):
    """Raise DataError if an item, a group (patient) or an identical image sits in more than one split.

    Args:
        splits: {name: indices}, e.g. {"train": train_idx, "val": val_idx, "test": test_idx}.
        groups: optional group id per item of the whole data set.
        fingerprints: optional fingerprint per item (see `image_fingerprints`).
    """
    import pandas as pd  # here, so that `import medcnn` stays light

    parts = [np.asarray(indices, dtype=int).ravel() for indices in splits.values()]
    rows = pd.DataFrame(
        {"split": np.repeat(list(splits), [len(part) for part in parts]), "index": np.concatenate(parts)}
    )
    shared = rows.groupby("index")["split"].nunique()
    if (shared > 1).any():
        index = int(shared[shared > 1].index[0])
        sides = rows.loc[rows["index"] == index, "split"].tolist()
        raise DataError(
            f"Item {index} is in {' and '.join(sides)}; {int((shared > 1).sum())} item(s) sit in more than one split. "
            "Each item must be in one split only: check how the splits were made.",
            problem="leak_item",
        )
    for key, values, what, fix in (
        (
            "group",
            groups,
            "Patient/group",
            "Make the split with the patient ids as `groups` (train_val_test_split(groups=...) or grouped_kfold).",
        ),
        ("fingerprint", fingerprints, "An identical image", "Remove exact duplicates first (medcnn.data.cleaning)."),
    ):
        if values is None:
            continue
        values = np.asarray(values)
        table = rows.assign(key=values[rows["index"].to_numpy()])
        counts = table.groupby(["key", "split"]).size().unstack(fill_value=0)
        counts = counts[[name for name in splits if name in counts.columns]]  # sides in the caller's order
        leaking = counts[(counts > 0).sum(axis=1) > 1]
        if len(leaking):
            first = leaking.iloc[0]
            sides = " and ".join(f"{int(n)} in {name}" for name, n in first.items() if n > 0)
            label = f"'{leaking.index[0]}'" if key == "group" else f"(md5 {str(leaking.index[0])[:12]})"
            if key == "fingerprint":
                where = table[table["key"] == leaking.index[0]]
                sides += " (indices " + ", ".join(f"{s} {i}" for s, i in zip(where["split"], where["index"])) + ")"
            raise DataError(
                f"{what} {label} has {sides}; {len(leaking)} {key}(s) sit on more than one side. "
                f"Each must be on one side only. {fix}",
                problem=f"leak_{key}",
            )


def check_folds_no_leakage(folds, groups=None, fingerprints=None):
    """`check_no_leakage` for each (train_idx, val_idx) pair of a k-fold split; the message starts `Fold k: `.

    Args:
        folds: list of (train_idx, val_idx) pairs, e.g. from `grouped_kfold`.
        groups, fingerprints: as in `check_no_leakage`.

    Raises:
        DataError: the first fold where an item, a group or an identical image sits on both sides.
    """
    for fold, (train_idx, val_idx) in enumerate(folds):
        try:
            check_no_leakage({"train": train_idx, "val": val_idx}, groups=groups, fingerprints=fingerprints)
        except DataError as error:
            raise DataError(f"Fold {fold}: {error}", path=error.path, problem=error.problem) from None


def split_counts(labels, splits, class_names=None):
    """A table of items per class (rows) and split (columns), with a total row."""
    import pandas as pd

    labels = np.asarray(labels)
    names = class_names if class_names is not None else [str(k) for k in range(int(labels.max()) + 1)]
    table = pd.DataFrame(
        {
            split: np.bincount(labels[np.asarray(indices, dtype=int)], minlength=len(names))
            for split, indices in splits.items()
        },
        index=list(names),
    )
    table.loc["total"] = table.sum()
    return table


def stratified_subset(labels, size, seed=0):
    """Sorted indices of a stratified random subset of `size` items (all indices when `size` is None or larger)."""
    from sklearn.model_selection import train_test_split

    everything = np.arange(len(labels))
    if size is None or size >= len(labels):
        return everything
    picked, _ = train_test_split(everything, train_size=size, stratify=labels, random_state=seed)
    return np.sort(picked)


def fold_composition(labels, groups, folds_by_protocol, class_names, group_name="groups"):
    """One row per protocol and fold ({protocol: [(train, val), ...]}): items per class and side, groups (e.g.
    patients, named `group_name`) per side and on both sides; a DataFrame indexed by (protocol, fold)."""
    import pandas as pd

    labels, groups = np.asarray(labels), np.asarray(groups)
    rows = []
    for protocol, folds in folds_by_protocol.items():
        for fold, (train, val) in enumerate(folds, start=1):
            row = {"protocol": protocol, "fold": fold}
            for side, index in (("train", train), ("val", val)):
                for k, name in enumerate(class_names):
                    row[f"{side} {name} cells"] = int((labels[index] == k).sum())
                row[f"{side} {group_name}"] = len(set(groups[index]))
            row[f"{group_name} on both sides"] = len(set(groups[train]) & set(groups[val]))
            rows.append(row)
    return pd.DataFrame(rows).set_index(["protocol", "fold"])
