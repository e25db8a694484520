"""Which runs learned, and comparisons kept to them.

A run *learned* when it did not collapse (`truth.is_collapsed`, on its test and validation sides) and its validation
AUC is clearly above 0.5 (`significance.auc_above_chance` for the validation side's class counts). What describes a
model's behaviour (MC dropout's referral and calibration, a protocol's effect on a row, one row against another)
is measured on those runs only: the "confidence" of a constant predictor describes the constant.

    kept = [record for record in records if learned(record)]
    row, runs = best_learned(records_of_one_backbone)            # e.g. the model MC dropout runs on
    verdict = compare_learned(published, honest, "published", "honest")
"""

import numpy as np

from medcnn.experiment import truth
from medcnn.significance import auc_above_chance


def learned(record, alpha=0.05):
    """True when a binary run did not collapse on test or validation and its validation AUC is above 0.5 by a
    one-sided rank test at level `alpha`. Needs `val_confusion` and `val_roc_auc`; False without them."""
    confusion = record.get("val_confusion")
    confusion = np.asarray(confusion if truth._present(confusion) else [[0]])
    if confusion.shape != (2, 2) or confusion.sum(axis=1).min() < 1 or truth.is_collapsed(record):
        return False
    negatives, positives = (int(count) for count in confusion.sum(axis=1))
    clear, _ = auc_above_chance(record.get("val_roc_auc", np.nan), positives, negatives, alpha)
    return clear and not truth.is_collapsed(record, side="val")


def best_learned(records, by="configuration", key="val_roc_auc", alpha=0.05):
    """(value of `by`, [its runs that learned]) for the `by` value whose runs that learned have the best mean `key`
    (a validation metric: never choose on test); None when no run learned."""
    groups = {}
    for record in records:
        if learned(record, alpha):
            groups.setdefault(record[by], []).append(record)
    if not groups:
        return None
    best = max(groups, key=lambda value: np.mean([record[key] for record in groups[value]]))
    return best, groups[best]


def compare_learned(a_records, b_records, a_label, b_label, key="test_roc_auc", metric_label="test AUC", alpha=0.05):
    """`truth.compare_records` of two rows on their runs that learned (paired by seed where they share seeds); a
    "not judged" `truth.Verdict` naming the row(s) with no run that learned otherwise (`none_learned`)."""
    a, b = ([r for r in records if learned(r, alpha)] for records in (a_records, b_records))
    missing = [label for label, runs in ((a_label, a), (b_label, b)) if not runs]
    if missing:
        runs = (len(a), len(b))
        sentence = f"no run of {' and '.join(missing)} learned, so the two are not compared."
        return truth.Verdict(np.nan, np.nan, "not judged", sentence, runs)
    return truth.compare_records(a, b, key, a_label, b_label, metric_label)


def none_learned(verdict):
    """True for a `compare_learned` verdict on which a row had no run that learned (nothing was compared); False for
    a comparison, judged or not (e.g. "not judged" with one run a side)."""
    return verdict.verdict == "not judged" and 0 in verdict.runs
