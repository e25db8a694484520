"""How sure a test score is: an AUC clearly above chance, its standard error, a bootstrap over groups of test items,
and the share of each group called positive.

Test items are often not independent: kth's honest test karyograms are composed from 11-13 metaphases, several
from each. A bootstrap that resamples whole groups (`bootstrap_by_group`) gives an interval that reflects how many
independent sources there are; resampling single items would pretend there are as many as items. An AUC measured on
a few dozen images moves by about 0.1 from one validation side to another (`auc_standard_error`): "clearly above
chance" (`auc_above_chance`) is a one-sided rank test, not "above 0.5".

    clear, p = auc_above_chance(0.71, positives=20, negatives=24)          # (True, 0.009)
    interval = bootstrap_by_group(labels, p_abnormal, metaphases, "roc_auc", seed=0)
    table = called_positive_by_group(predicted, aberrations, first=["normal"])
"""

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

METRICS = {
    "roc_auc": roc_auc_score,
    "accuracy": lambda labels, scores: accuracy_score(labels, np.asarray(scores) >= 0.5),
    "balanced_accuracy": lambda labels, scores: balanced_accuracy_score(labels, np.asarray(scores) >= 0.5),
}


def _check_counts(positives, negatives):
    for name, value in (("positives", positives), ("negatives", negatives)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be an int >= 1 (items of that class). Received: {name}={value!r}")


def auc_standard_error(auc, positives, negatives):
    """The standard error of an AUC measured on `positives` + `negatives` items (Hanley and McNeil, 1982).

    SE^2 = (A(1 - A) + (n1 - 1)(Q1 - A^2) + (n2 - 1)(Q2 - A^2)) / (n1 n2), with Q1 = A / (2 - A) and
    Q2 = 2A^2 / (1 + A). At A = 0.5 with 22 + 22 items it is 0.088: two AUCs on such a side 0.1 apart are within
    noise.
    """
    _check_counts(positives, negatives)
    if not 0.0 <= auc <= 1.0:
        raise ValueError(f"`auc` must be between 0 and 1. Received: auc={auc}")
    q1, q2 = auc / (2.0 - auc), 2.0 * auc**2 / (1.0 + auc)
    variance = auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    return float(np.sqrt(max(variance, 0.0) / (positives * negatives)))


def auc_above_chance(auc, positives, negatives, alpha=0.05):
    """Is an AUC clearly above 0.5? A one-sided Mann-Whitney test in its normal approximation.

    Under "the scores do not rank the classes" the AUC has mean 0.5 and standard error
    sqrt((n1 + n2 + 1) / (12 n1 n2)) (no ties).

    Args:
        auc: the AUC measured; NaN (e.g. one class on the side) is never above chance.
        positives, negatives: the items of each class it was measured on.
        alpha: the test's level: 0.05 asks for about 1.645 standard errors above 0.5.

    Returns:
        (clearly above: bool, one-sided p-value).
    """
    _check_counts(positives, negatives)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`alpha` must be between 0 and 1. Received: alpha={alpha}")
    if auc is None or not np.isfinite(auc):
        return False, float("nan")
    null_error = np.sqrt((positives + negatives + 1) / (12.0 * positives * negatives))
    p_value = float(stats.norm.sf((auc - 0.5) / null_error))
    return bool(p_value < alpha), p_value


def _metric(metric):
    if callable(metric):
        return metric
    if metric not in METRICS:
        raise ValueError(f"`metric` must be a callable or one of {list(METRICS)}. Received: metric={metric!r}")
    return METRICS[metric]


def bootstrap_by_group(labels, scores, groups, metric="roc_auc", resamples=1000, confidence=0.95, seed=0):
    """A percentile bootstrap interval of a test score that resamples whole groups of items with replacement.

    Args:
        labels: true labels (N,), 1 the positive class.
        scores: the positive class's probability (N,).
        groups: the group of each item (N,), e.g. the metaphase a karyogram was composed from.
        metric: "roc_auc", "accuracy", "balanced_accuracy" (at a 0.5 threshold) or `(labels, scores) -> float`.
        resamples: bootstrap resamples; a resample with one class only (no AUC) is skipped and counted.
        confidence: the interval's coverage, e.g. 0.95.
        seed: the resampling's seed.

    Returns:
        {"estimate" (on all items), "low", "high", "groups", "items", "resamples" (used), "skipped"}; low and high
        are NaN when fewer than 2 groups or no resample could be scored.
    """
    labels, scores, groups = np.asarray(labels), np.asarray(scores, dtype="float64"), np.asarray(groups)
    if not (len(labels) == len(scores) == len(groups)) or not len(labels):
        raise ValueError(
            "`labels`, `scores` and `groups` must be non-empty and equally long. Received lengths "
            f"{len(labels)}, {len(scores)} and {len(groups)}."
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be between 0 and 1. Received: confidence={confidence}")
    score = _metric(metric)
    names, members = np.unique(groups, return_inverse=True)
    indices = [np.flatnonzero(members == group) for group in range(len(names))]
    defined = lambda chosen: len(np.unique(labels[chosen])) > 1  # noqa: E731
    estimate = float(score(labels, scores)) if defined(np.arange(len(labels))) else float("nan")
    values, skipped = [], 0
    if len(names) > 1:
        rng = np.random.default_rng(seed)
        for _ in range(int(resamples)):
            chosen = np.concatenate([indices[g] for g in rng.integers(0, len(names), len(names))])
            if defined(chosen):
                values.append(float(score(labels[chosen], scores[chosen])))
            else:
                skipped += 1
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail]) if values else (np.nan, np.nan)
    return {"estimate": estimate, "low": float(low), "high": float(high), "groups": len(names),
            "items": len(labels), "resamples": len(values), "skipped": skipped}  # fmt: skip


def called_positive_by_group(predicted, groups, positive=1, first=()):
    """Per group of items: how many there are, how many were called positive, and that share.

    For the positive kinds (e.g. each aberration type) the share is the recall of that kind; for a negative group
    ("normal") it is one minus the specificity.

    Args:
        predicted: predicted labels (N,).
        groups: the group of each item (N,).
        positive: the positive label.
        first: groups listed first, in this order (e.g. ["normal"]); the others follow sorted by name.

    Returns:
        DataFrame indexed by group with "images", "called positive", "share called positive".
    """
    predicted, groups = np.asarray(predicted), np.asarray(groups)
    if len(predicted) != len(groups):
        raise ValueError(f"`predicted` has {len(predicted)} items but `groups` has {len(groups)}.")
    frame = pd.DataFrame({"group": groups, "called": predicted == positive})
    grouped = frame.groupby("group", sort=False)["called"]
    result = pd.DataFrame({"images": grouped.size(), "called positive": grouped.sum().astype(int)})
    result["share called positive"] = result["called positive"] / result["images"]
    order = [name for name in first if name in result.index]
    order += sorted(name for name in result.index if name not in order)
    return result.loc[order].rename_axis("group")


def beats_default(trial_scores, default_score, positives, negatives):
    """Does a hyper-parameter search beat a default setting on a validation AUC, and by more than the AUC's noise?

    Args:
        trial_scores: the search's trials' validation AUCs (NaN for unfinished trials).
        default_score: the default setting's validation AUC, trained on the same split for the same epochs.
        positives, negatives: the validation side's class counts.

    Returns:
        {"search_score" (the best trial; NaN without one), "default_score", "standard_error" (`auc_standard_error`
        at the higher score), "beats" (the best trial above the default), "within_noise" (the two within two
        standard errors), "trials_range" ([lowest, highest] trial, or []), "trials_within_noise" (the trials'
        spread within two standard errors)}.
    """
    scores = np.asarray(trial_scores, dtype="float64")
    scores = scores[np.isfinite(scores)]
    best = float(scores.max()) if scores.size else float("nan")
    error = auc_standard_error(float(np.nanmax([best, default_score])), positives, negatives)
    return {
        "search_score": best,
        "default_score": float(default_score),
        "standard_error": error,
        "beats": bool(scores.size and best > default_score),
        "within_noise": bool(not scores.size or abs(best - default_score) <= 2 * error),
        "trials_range": [float(scores.min()), best] if scores.size else [],
        "trials_within_noise": bool(scores.size and np.ptp(scores) <= 2 * error),
    }
