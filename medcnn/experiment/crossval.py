"""Rows of cross-validated runs: compared fold by fold, pooled over every test item, and read per group.

In a k-fold protocol each run of a row tests one fold, so a row's runs are not repeats of one experiment: they test
different items. Two rows are compared fold by fold (each pair tested the same items), every item's prediction
counts once in the pooled scores, and per-group (per patient or case) accuracy shows which groups carry the mean.
Records carry the row they belong to (`row`, default `configuration`), their `seed`, `fold` and, where a study runs
more than one split protocol, `protocol`: together these name the test side a run was scored on.

    verdict = crossval.compare_folds(runs_of(a), runs_of(b), "test_accuracy", "'A'", "'B'", "test accuracy")
    pooled = crossval.pooled_table(records)  # one row per table row: accuracy over every test item, ...
    cases = crossval.group_accuracy(records, labels, groups)  # accuracy per case and row
"""

import numpy as np
import pandas as pd

from medcnn.experiment import truth
from medcnn.experiment.truth import rows_of as rows_of  # used by the studies through crossval too

UNIT = ("seed", "fold", "protocol")  # what identifies one test side: the folds' seed, the fold and the protocol


def unit_of(record):
    """(seed, fold, protocol) of a record: the test side it was scored on (None for a field it lacks)."""
    return tuple(record.get(name) for name in UNIT)


def fold_values(records, key, learned_only=False):
    """(values, units) of `key` per record, NaN where it is missing; with `learned_only` the runs that did not
    collapse (`truth.is_collapsed`). Raises ValueError when two records share a (seed, fold)."""
    chosen = [record for record in records if not (learned_only and truth.is_collapsed(record))]
    units = [unit_of(record) for record in chosen]
    if len(set(units)) < len(units):
        raise ValueError(f"Two records of one row share a test side (seed, fold, protocol): {units}. Pass one row's.")
    values = [record.get(key) if truth._present(record.get(key)) else np.nan for record in chosen]
    return np.asarray(values, dtype="float64"), units


def majority_reference(records, key):
    """What always predicting the largest class scores on `key` over the records' sides (NaN: no reference)."""
    kind = truth.metric_kind(key)
    if kind is None or not records:
        return np.nan
    return truth.reference_value({kind[0]: truth.references(records, kind[0])}, key)


def compare_folds(a_records, b_records, key, a_label, b_label, metric_label, learned_only=False):
    """`truth.compare_rows` of two rows on `key`, paired by test side (seed, fold, protocol) where they share two or
    more (each pair tested the same items), unpaired otherwise (e.g. two protocols' folds), with each row's
    majority-class reference (`truth.compare_rows`' rule)."""
    a_values, a_units = fold_values(a_records, key, learned_only)
    b_values, b_units = fold_values(b_records, key, learned_only)
    majority = (majority_reference(a_records, key), majority_reference(b_records, key))
    if len(set(a_units) & set(b_units)) >= 2:
        return truth.compare_rows(
            a_values, b_values, a_label, b_label, metric_label, seeds_a=a_units, seeds_b=b_units,
            pairs="folds (each pair tested on the same items)", majority=majority,
        )  # fmt: skip
    return truth.compare_rows(a_values, b_values, a_label, b_label, metric_label, paired=False, majority=majority)


def confusion_scores(confusion):
    """Accuracy, balanced accuracy (mean recall over the classes present) and macro F1 (over every class) of a
    confusion matrix (rows = true class)."""
    from medcnn.evaluate import per_class_from_confusion

    matrix = np.asarray(confusion, dtype="float64")
    per_class = per_class_from_confusion(matrix, [str(k) for k in range(len(matrix))])
    present = per_class["support"] > 0
    return {
        "accuracy": float(np.trace(matrix) / matrix.sum()),
        "balanced_accuracy": float(per_class.loc[present, "recall"].mean()),
        "macro_f1": float(per_class["F1"].mean()),
    }


def pooled_scores(records, weighted=()):
    """Scores over every test item of `records` at once: their summed test confusion matrices' accuracy, balanced
    accuracy and macro F1, the items, and each key of `weighted` (e.g. an accuracy after a per-group step) averaged
    with the records' test sizes as weights. Records without a `test_confusion` are left out."""
    chosen = [record for record in records if truth._present(record.get("test_confusion"))]
    if not chosen:
        raise ValueError("No record has a `test_confusion`: there is nothing to pool.")
    confusion = np.sum([np.asarray(record["test_confusion"]) for record in chosen], axis=0)
    scores = {**confusion_scores(confusion), "items": int(confusion.sum()), "runs": len(chosen)}
    for key in weighted:
        pairs = [(record[key], np.asarray(record["test_confusion"]).sum()) for record in chosen if key in record]
        if pairs:
            values, sizes = np.array(pairs, dtype="float64").T
            scores[key] = float(np.average(values, weights=sizes))
    return scores


def pooled_table(records, by="row", weighted=()):
    """`pooled_scores` of each row (`by`, default the record's `row`), in first-seen order, as a DataFrame."""
    rows = {}
    for record in records:
        rows.setdefault(record.get(by, record.get("configuration")), []).append(record)
    table = {
        row: pooled_scores(chosen, weighted)
        for row, chosen in rows.items()
        if any(truth._present(r.get("test_confusion")) for r in chosen)
    }
    return pd.DataFrame.from_dict(table, orient="index").rename_axis(by)


def guesses_of(record):
    """(test indices, predicted labels) of a record: the argmax of `test_probabilities`, else `test_predicted`."""
    index = np.asarray(record["test_indices"])
    if truth._present(record.get("test_probabilities")):
        return index, np.asarray(record["test_probabilities"]).argmax(axis=1)
    return index, np.asarray(record["test_predicted"])


def group_accuracy(records, labels, groups, by="row", rows=None):
    """Accuracy on each group's test items (rows: groups, columns: rows), averaged over the records that tested
    it (e.g. seeds); NaN where a row never tested a group. Records without test predictions are left out.

    Args:
        records: run records with `test_indices` and `test_probabilities` (or `test_predicted`).
        labels, groups: the label and group (patient, case) of every item.
        by: the record field naming the row; `rows`: the rows to show, in order (default: all, first-seen order).
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    correct = []
    for record in records:
        if "test_indices" not in record or not (
            truth._present(record.get("test_probabilities")) or "test_predicted" in record
        ):
            continue
        index, guesses = guesses_of(record)
        frame = pd.DataFrame({"group": groups[index], "right": guesses == labels[index]})
        for group, share in frame.groupby("group", sort=True)["right"].mean().items():
            correct.append({"row": record.get(by, record.get("configuration")), "group": group, "accuracy": share})
    if not correct:
        raise ValueError("No record has test indices and predictions: there is no accuracy per group.")
    frame = pd.DataFrame(correct).pivot_table("accuracy", "group", "row", aggfunc="mean", sort=False)
    order = [row for row in (rows or list(dict.fromkeys(item["row"] for item in correct))) if row in frame.columns]
    return frame[order].sort_index()


def run_fold(configurations, inputs, labels, class_names, make_runs, cache, input_key="pad", verbose=2, log=print):
    """Train (or reuse) one fold's runs, each configuration on its own inputs; returns (records, runs).

    Args:
        configurations: objects with a `label`, in table order; `input_key` names each one's inputs: an attribute
            name, or a callable `configuration -> key of inputs` (default: every configuration reads "pad").
        inputs: {key: x}, the arrays the configurations read (e.g. padded, stretched, larger).
        make_runs: `(configurations, x) -> [Run]`, the study's runs of those configurations on this fold; each run's
            `settings` hold its table row as "label" and may hold "fold" and "protocol".
        cache, verbose, log: as for `experiment.run_all`.

    Returns:
        The records, each with its table `row`, `epochs_cap` (the epochs early stopping may cut short; only for
        runs with callbacks) and the run's `fold` and `protocol`; and the runs, grouped by inputs in first-seen order.
    """
    from medcnn.experiment.plan import run_all

    key_of = input_key if callable(input_key) else (lambda config: getattr(config, input_key, input_key))
    records, runs = [], []
    for key in dict.fromkeys(key_of(config) for config in configurations):
        made = make_runs([config for config in configurations if key_of(config) == key], inputs[key])
        for record, run in zip(run_all(made, inputs[key], labels, class_names, cache, verbose, log), made):
            extra = {name: run.settings[name] for name in ("fold", "protocol") if name in run.settings}
            if run.callbacks:  # a fixed budget (no callbacks) has no cap that could cut it short
                extra["epochs_cap"] = run.epochs
            record.update(row=run.settings.get("label", run.label), **extra)
            records.append(record)
        runs += made
    return records, runs


def fold_table(
    summary, pooled, metric_keys, rows, digits=3, counts=(), pooled_metrics=None, row_notes=None, extra_rows=None
):
    """A table of cross-validated rows: runs, epochs trained and to the best epoch (when the summary has them), each
    metric as mean ± std over folds of the runs that learned ("collapsed" when all collapsed, the pooled score too),
    the pooled score of `pooled_metrics` beside its metric, the collapsed runs, then the majority-class and chance
    reference rows.

    Args:
        summary: `experiment.summarise(records, metrics, by="row")`; pooled: `pooled_table` of the same records.
        metric_keys: {column title: summary metric key}; rows: the rows to show, in order (missing ones skipped).
        counts: titles printed as whole numbers (parameters, images/s) with no reference.
        pooled_metrics: {column title: `pooled` column} shown as "pooled <title>" after the title.
        row_notes: {row: note} adds a `note` column.
        extra_rows: {label: {column: cell}} appended last, e.g. a published number beside ours.
    """
    from medcnn.experiment.outputs import collapsed_cells, reference_cells, summary_cells

    rows = [row for row in rows if row in summary.index]
    frame = pd.DataFrame(index=pd.Index(rows, name=summary.index.name or "row"))
    if row_notes:
        frame["note"] = [row_notes.get(row, "") for row in rows]
    frame["runs (folds x seeds)"] = summary.loc[rows, "runs"].astype(int).astype(str)
    for title, column in {"epochs trained": "epochs_mean", "best epoch": "best_epoch_mean"}.items():
        if column in summary:
            frame[title] = [f"{e:.0f}" if np.isfinite(e) else "" for e in summary.loc[rows, column]]
    references = {}
    for title, key in metric_keys.items():
        if title in counts:
            frame[title] = [f"{m:,.0f}" if np.isfinite(m) else "" for m in summary.loc[rows, f"{key}_mean"]]
            continue
        frame[title] = summary_cells(summary, key, rows, digits)
        for label, cell in reference_cells(summary, key, rows, digits).items():
            references.setdefault(label, {})[title] = cell
        column = (pooled_metrics or {}).get(title)
        if column:
            values = [pooled.at[row, column] if row in pooled.index else np.nan for row in rows]
            cells = [f"{v:.{digits}f}" if np.isfinite(v) else "" for v in values]
            frame[f"pooled {title}"] = [
                "collapsed" if mine == "collapsed" else cell for mine, cell in zip(frame[title], cells)
            ]
    frame["collapsed"] = collapsed_cells(summary, rows)
    reference = pd.DataFrame.from_dict({**references, **(extra_rows or {})}, orient="index")
    return pd.concat([frame, reference.rename_axis(frame.index.name)]).fillna("")


def beyond_noise(records, rows, reference, key, metric_label, learned_only=False):
    """Each of `rows` against the `reference` row (`compare_folds`; with `learned_only`, over the runs that did not
    collapse), and the sentences naming the rows above and below it beyond two standard errors, then those that
    could not be judged: ({row: Verdict}, [sentences])."""
    verdicts = {
        row: compare_folds(rows_of(records, row), rows_of(records, reference), key, row, reference, metric_label,
                           learned_only)  # fmt: skip
        for row in rows
    }
    paired = "paired by fold" + (", runs that learned" if learned_only else "")
    sentences = []
    for direction in ("above", "below"):
        named = [
            f"'{row}' ({v.difference:+.3f}, standard error {v.standard_error:.3f})"
            for row, v in verdicts.items()
            if v.verdict == direction
        ]
        sentences.append(
            f"Rows {direction} '{reference}' on {metric_label} beyond two standard errors, {paired}: "
            f"{', '.join(named) or 'none'}."
        )
    unjudged = [row for row, v in verdicts.items() if v.verdict == "not judged"]
    if unjudged:
        sentences.append(
            f"Not judged against '{reference}' (fewer than two folds a side, or a standard error of 0): "
            f"{', '.join(map(repr, unjudged))}."
        )
    return verdicts, sentences


def gains_over(records, rows, reference, key="val_accuracy"):
    """{row: mean `key` of the row minus the `reference` row's} over `records` (e.g. one fold's), largest first;
    rows without records are left out."""
    mean = {row: np.nanmean(fold_values(rows_of(records, row), key)[0]) for row in [reference, *rows]
            if rows_of(records, row)}  # fmt: skip
    gains = {row: float(mean[row] - mean[reference]) for row in rows if row in mean}
    return dict(sorted(gains.items(), key=lambda item: -item[1]))


def gain_verdicts(records, rows, reference, truths, metric_label="validation accuracy"):
    """{row: `truth.Verdict` of the row against `reference`} on one fold's validation side (`records` of one seed
    and fold): item by item, paired, where both runs kept their validation predictions (`val_predicted`, scored
    against `truths`, the side's labels in the same order); else from the two accuracies and the side's size, each
    item a Bernoulli trial (unpaired). Rows without a record are left out."""
    truths = np.asarray(truths)

    def correct(record):
        predicted = record.get("val_predicted")
        return None if predicted is None else (np.asarray(predicted) == truths).astype("float64")

    base = rows_of(records, reference)
    if not base:
        return {}
    verdicts = {}
    for row in rows:
        chosen = rows_of(records, row)
        if not chosen:
            continue
        a, b = correct(chosen[0]), correct(base[0])
        if a is not None and b is not None:
            verdicts[row] = truth.compare_rows(a, b, f"'{row}'", f"'{reference}'", metric_label, paired=True,
                                               pairs="validation items")  # fmt: skip
            continue
        p_a, p_b, n = chosen[0]["val_accuracy"], base[0]["val_accuracy"], len(truths)
        verdicts[row] = truth.compare_means(p_a, np.sqrt(p_a * (1 - p_a)), n, p_b, np.sqrt(p_b * (1 - p_b)), n,
                                            f"'{row}'", f"'{reference}'", metric_label)  # fmt: skip
    return verdicts


def most_chosen(choices, key):
    """The `choice[key]` most folds' `choices` made (ties: the earliest fold's), as a tuple: e.g. the blocks a row
    runs with in a later protocol."""
    from collections import Counter

    return Counter(tuple(choice[key]) for choice in choices).most_common(1)[0][0]  # ties keep first-seen order
