"""Summaries of run records: mean ± std over seeds or folds, the best run, collapsed runs.

Also the pieces of a paper-shaped table: a summary's statistics in percent (`scaled`), one row per side (train /
validation / test) of a row's runs (`sides_summary`), one "mean ± std" cell (`row_mean_std`), and a run's test
accuracy on a subset of its test items against the rest (`subset_accuracy`).
"""

import numpy as np
import pandas as pd

from medcnn.experiment import truth


def summarise(records, metrics, by="configuration"):
    """Mean and sample std of `metrics` per `by` value (seeds or folds alike), in first-seen order.

    Args:
        records: run records (dicts) or a DataFrame with one row per run (or fold).
        metrics: the metric columns to summarise; a metric missing from some records averages the others.
        by: the column naming the row, or None for one summary over all records (e.g. over folds).

    Returns:
        DataFrame indexed by `by` with `<metric>_mean`, `<metric>_std` (NaN for one run), `runs` (how many
        records) and, when records have one, `group`; then `collapsed` (runs that predicted one class or gave one
        output for every test image, `truth.is_collapsed`; 0 when no record has a `test_confusion`). When records
        have test confusion matrices it adds `collapse_checked` (runs that had one), `classes`,
        `<metric>_learned_mean` / `<metric>_learned_std` over the runs that did not collapse, and, for metrics with
        a reference (`truth.metric_kind`) on a side with confusion matrices, `<metric>_reference_majority` and
        `<metric>_reference_chance` averaged over the row's runs.
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
    summary["collapsed"] = 0
    if "test_confusion" in frame and frame["test_confusion"].map(truth._present).any():
        summary = _with_truth(summary, frame, metrics, by)
    return summary.rename_axis(None if by == "_all" else by)


def _with_truth(summary, frame, metrics, by):
    """`summary` with the collapsed runs counted, the learned runs summarised apart and the reference columns."""
    records = frame.to_dict("records")
    frame = frame.assign(
        _checked=[truth._present(record.get("test_confusion")) for record in records],
        _collapsed=[truth.is_collapsed(record) for record in records],
        _classes=[len(c) if truth._present(c) else np.nan for c in frame["test_confusion"]],
    )
    grouped = frame.groupby(by, sort=False)
    summary["collapsed"] = grouped["_collapsed"].sum().astype(int)
    summary["collapse_checked"] = grouped["_checked"].sum().astype(int)
    summary["classes"] = grouped["_classes"].max()
    learned = frame[~frame["_collapsed"]].groupby(by, sort=False)[list(metrics)]
    means, stds = learned.mean().reindex(summary.index), learned.std(ddof=1).reindex(summary.index)
    for metric in metrics:
        summary[f"{metric}_learned_mean"], summary[f"{metric}_learned_std"] = means[metric], stds[metric]
    for metric in metrics:
        kind = truth.metric_kind(metric)
        if kind is None or f"{kind[0]}_confusion" not in frame:
            continue
        side, name, scale = kind
        for reference in truth.REFERENCE_ROWS:
            values = [
                truth.reference_metrics(np.asarray(c).sum(axis=1))[reference][name] * scale
                if truth._present(c)
                else np.nan
                for c in frame[f"{side}_confusion"]
            ]
            column = f"{metric}_reference_{reference.split()[0]}"
            summary[column] = frame.assign(_value=values).groupby(by, sort=False)["_value"].mean()
    return summary


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
    """Runs that collapsed (predicted one class, or gave one output, for every `side` image): `truth.is_collapsed`.

    `margin` is kept for the callers written before; the collapse rule does not use it."""
    return [record for record in records if truth.is_collapsed(record, side=side)]


def stuck_statement(records, margin=0.02):
    """How many runs collapsed (predicted one class), and which (`truth.is_collapsed`), by configuration:
    "...: A (seeds 0, 2); B (seed 1)."."""
    stuck = stuck_runs(records, margin)
    seeds = {}
    for r in stuck:
        seeds.setdefault(r["configuration"], []).append(r["seed"])
    names = "; ".join(f"{row} (seed{'s' if len(found) > 1 else ''} {', '.join(map(str, sorted(found)))})"
                      for row, found in seeds.items()) or "none"  # fmt: skip
    return (
        f"{len(stuck)} of {len(records)} runs collapsed (predicted one class, or gave one output, for every test "
        f"image): {names}."
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


SUMMARY_STATS = ("mean", "std", "learned_mean", "learned_std", "reference_majority", "reference_chance")


def scaled(summary, keys, factor=100.0):
    """A copy of a `summarise` output with every statistic of `keys` (mean, std, learned, references) times
    `factor`, e.g. in percent for a paper that printed percentages."""
    scaled_copy = summary.copy()
    for key in keys:
        for stat in SUMMARY_STATS:
            if f"{key}_{stat}" in scaled_copy:
                scaled_copy[f"{key}_{stat}"] = scaled_copy[f"{key}_{stat}"] * factor
    return scaled_copy


def sides_summary(records, row, sides, metric="accuracy", index_name="set", factor=100.0):
    """One `summarise` row per side of the runs of `row` (their `configuration`), e.g. a paper's train /
    validation / test table of its final model.

    Args:
        sides: {row name: record key}, e.g. {"train": "train_accuracy", "validation": "val_accuracy"}.
        metric: the summary's column stem (`<metric>_mean`, `<metric>_std`), beside `epochs`.
        factor: times the values, e.g. 100 for percent.
    """
    rows = [
        {index_name: name, "seed": r["seed"], metric: factor * r.get(key, np.nan), "epochs": r["epochs"]}
        for r in records
        if r["configuration"] == row
        for name, key in sides.items()
    ]
    return summarise(rows, [metric, "epochs"], by=index_name)


def row_mean_std(summary, row, key, digits=3, factor=1.0):
    """'mean ± std' of `key` in a `summarise` row, times `factor` (`mean_std`)."""
    values = summary.loc[row]
    return mean_std(values[f"{key}_mean"] * factor, values[f"{key}_std"] * factor, digits)


def subset_accuracy(record, labels, subset):
    """(accuracy on the test items of a record that are in `subset`, on the other test items, how many are in it);
    NaN for a part with no item."""
    index = np.asarray(record["test_indices"])
    right = np.asarray(record["test_probabilities"]).argmax(axis=1) == np.asarray(labels)[index]
    mask = np.isin(index, np.asarray(subset, dtype=int))
    on = float(right[mask].mean()) if mask.any() else float("nan")
    return on, float(right[~mask].mean()) if (~mask).any() else float("nan"), int(mask.sum())


def stacked_test_scores(records, labels, by="model"):
    """(labels, {record[by]: P(last class)}) of every record's test side, runs stacked one after another; a
    ValueError when the rows were tested on different items (their ROC curves could not share labels)."""
    truths, scores = {}, {}
    for record in records:
        index = np.asarray(record["test_indices"])
        truths.setdefault(record[by], []).append(np.asarray(labels)[index])
        probabilities = np.asarray(record["test_probabilities"]).reshape(len(index), -1)
        scores.setdefault(record[by], []).append(probabilities[:, -1])
    stacked = [np.concatenate(parts) for parts in truths.values()]
    if any(not np.array_equal(stacked[0], other) for other in stacked):
        raise ValueError("The runs were tested on different items; their ROC curves cannot share labels.")
    return stacked[0], {row: np.concatenate(parts) for row, parts in scores.items()}


def row_cell(summary, records, row, key="test_accuracy", by="configuration"):
    """A row's `key` as "mean ± std over n seed(s)" from a `summarise` output; where some runs collapsed
    (`truth.is_collapsed`), the runs that learned: "mean ± std over k of n seeds that learned (all n: mean)";
    "collapsed (...)" when every run of the row collapsed."""
    chosen = truth.rows_of(records, row, by)
    if truth.all_collapsed(chosen):
        return f"collapsed ({len(chosen)} of {len(chosen)} runs predict one class)"
    found = summary.loc[row]
    runs = int(found["runs"])
    failed = sum(truth.is_collapsed(record) for record in chosen)
    if not failed:
        return f"{mean_std(found[f'{key}_mean'], found[f'{key}_std'])} over {runs} seed(s)"
    learned, _ = truth.row_values(chosen, key, learned_only=True)
    spread = learned.std(ddof=1) if learned.size > 1 else np.nan
    return (f"{mean_std(learned.mean(), spread)} over the {learned.size} of {runs} seeds that learned "
            f"(all {runs}: {found[f'{key}_mean']:.3f})")  # fmt: skip
