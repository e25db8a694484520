"""Summaries of run records: mean ± std over seeds or folds, the best run, stuck runs, gap-versus-noise sentences."""

import numpy as np
import pandas as pd


def summarise(records, metrics, by="configuration"):
    """Mean and sample std of `metrics` per `by` value (seeds or folds alike), in first-seen order.

    Args:
        records: run records (dicts) or a DataFrame with one row per run (or fold).
        metrics: the metric columns to summarise; a metric missing from some records averages the others.
        by: the column naming the row, or None for one summary over all records (e.g. over folds).

    Returns:
        DataFrame indexed by `by` with `<metric>_mean`, `<metric>_std` (NaN for one run), `runs` (how many
        records) and, when records have one, `group`.
    """
    frame = pd.DataFrame(records).copy()
    if frame.empty:
        raise ValueError("`records` is empty: there is nothing to summarise.")
    if by is None:
        by = "_all"
        frame[by] = "all"
    for metric in metrics:
        if metric not in frame:
            frame[metric] = np.nan
    frame[list(metrics)] = frame[list(metrics)].apply(pd.to_numeric, errors="coerce")
    grouped = frame.groupby(by, sort=False)
    summary = (
        grouped[list(metrics)].mean().add_suffix("_mean").join(grouped[list(metrics)].std(ddof=1).add_suffix("_std"))
    )
    summary = summary[[f"{metric}_{stat}" for metric in metrics for stat in ("mean", "std")]]
    summary["runs"] = grouped.size()
    if "group" in frame:
        summary["group"] = grouped["group"].first()
    return summary.rename_axis(None if by == "_all" else by)


def mean_std(mean, std=None, digits=3):
    """'0.812 ± 0.014', or just the mean when there is no std (one run)."""
    if mean is None or not np.isfinite(mean):
        return ""
    if std is None or not np.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def best_run(records, metric="val_accuracy", group=None):
    """The record with the highest `metric` (a validation metric: never choose on test); ties go to the lower seed."""
    candidates = [record for record in records if group is None or record.get("group") == group]
    if not candidates:
        raise ValueError(f"No run in group {group!r}. Groups present: {sorted({r.get('group') for r in records})}")
    return max(candidates, key=lambda record: (record[metric], -record["seed"]))


def majority_share(confusion):
    """The accuracy of always predicting the largest class of a confusion matrix's true counts."""
    counts = np.asarray(confusion).sum(axis=1)
    return float(counts.max() / counts.sum())


def stuck_runs(records, margin=0.02, side="test"):
    """Runs stuck on the majority-class plateau: accuracy within `margin` of always guessing the largest class."""
    return [
        record
        for record in records
        if record[f"{side}_accuracy"] <= majority_share(record[f"{side}_confusion"]) + margin
    ]


def gap_statement(summary, paper, first, second, metric="test_accuracy", label=None):
    """One sentence: is the paper's gap between two rows beyond our seed-to-seed noise?

    Args:
        summary: `summarise` output holding both rows.
        paper: {row: published value of `metric`} (e.g. a paper table's column).
        first, second: the two row labels.
        metric: the metric both are compared on.
        label: how to name the metric in the sentence (default: the metric with spaces).
    """
    label = label or metric.replace("_", " ")
    paper_gap = paper[first] - paper[second]
    a, b = summary.loc[first], summary.loc[second]
    ours_gap = a[f"{metric}_mean"] - b[f"{metric}_mean"]
    n = int(min(a["runs"], b["runs"]))
    if n < 2:
        return (
            f"The paper reports {label} {paper[first]:.2f} for '{first}' vs {paper[second]:.2f} for '{second}'; "
            "with a single seed we cannot tell whether such a gap is beyond noise."
        )
    noise = float(np.sqrt((a[f"{metric}_std"] ** 2 + b[f"{metric}_std"] ** 2) / n))
    verdict = "beyond" if abs(ours_gap) > 2 * noise else "within"
    return (
        f"The paper's {label} gap between '{first}' and '{second}' is {paper_gap:+.2f}; over {n} seeds ours is "
        f"{ours_gap:+.3f} with a standard error of {noise:.3f}, so our difference is {verdict} two standard errors "
        f"of seed-to-seed noise (split and initialisation)."
    )


def stuck_statement(records, margin=0.02):
    """How many runs stayed on the majority-class plateau, and which."""
    stuck = stuck_runs(records, margin)
    names = "; ".join(f"{r['configuration']} (seed {r['seed']})" for r in stuck) or "none"
    return (
        f"{len(stuck)} of {len(records)} runs never left the majority-class plateau (test accuracy within {margin} of "
        f"always predicting the largest class): {names}."
    )


def test_predictions(record):
    """(test indices, predicted labels, confidence) of a run record."""
    index = np.asarray(record["test_indices"])
    if "test_probabilities" in record:
        probabilities = np.asarray(record["test_probabilities"])
        return index, probabilities.argmax(axis=1), probabilities.max(axis=1)
    # records written before the probabilities were kept
    return index, np.asarray(record["test_predicted"]), np.asarray(record["test_confidence"])


def sample_predictions(record, labels, per_class=3):
    """`per_class` held-out test images of each true class with the run's prediction: dict of arrays."""
    index, predicted, confidence = test_predictions(record)
    truth = np.asarray(labels)[index]
    chosen = np.concatenate([np.flatnonzero(truth == k)[:per_class] for k in np.unique(truth)])
    return {
        "index": index[chosen],
        "true": truth[chosen],
        "predicted": predicted[chosen],
        "confidence": confidence[chosen],
    }
