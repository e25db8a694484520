"""Tables that tell the truth: collapsed runs, majority-class and chance references, comparisons beyond seed noise.

A run *collapsed* when it predicts one class for (nearly) every image, or gives every image the same output. The
*references* are what two predictors that never look at an image score on the same test side: always predicting
the largest class, and guessing uniformly at random (expected values). "A above B" and "reaches the paper" are only
said beyond two standard errors of seed-to-seed noise.
"""

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

REFERENCE_ROWS = {"majority class": "reference: majority class", "chance": "reference: chance"}
KINDS = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "roc_auc")
# Which reference a metric key has, from its name (e.g. "test_accuracy_percent" -> accuracy, in percent). Unqualified
# F1 keys are weighted F1 (an2dl's `val_f1_max`, cnmc's `*_weighted_f1`); precision, recall, loss and accuracies over
# other units (patients, karyotypes) have none.
_KEY = re.compile(r"^(?P<side>train|val|test)_(?P<name>.+?)(?P<percent>_percent)?$")
_KIND_PATTERNS = (
    ("balanced_accuracy", re.compile(r"^balanced_accuracy(_max)?$")),
    ("roc_auc", re.compile(r"^(roc_)?auc(_max)?$")),
    ("macro_f1", re.compile(r"^(macro_f1|f1_macro)(_max)?$")),
    ("weighted_f1", re.compile(r"^(weighted_f1|f1_weighted|f1)(_max)?$")),
    ("accuracy", re.compile(r"^accuracy(_max)?$")),
)


def _present(value):
    """Whether a record field holds data (not missing, None or a pandas NaN)."""
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def metric_kind(key):
    """(side, kind, scale) of a metric key, e.g. "test_accuracy_percent" -> ("test", "accuracy", 100.0), or None."""
    match = _KEY.match(str(key))
    if not match:
        return None
    kind = next((kind for kind, pattern in _KIND_PATTERNS if pattern.match(match["name"])), None)
    if kind is None:
        return None
    return match["side"], kind, 100.0 if match["percent"] else 1.0


def _balanced_accuracy(confusion):
    """Mean recall over the classes present in the truth of a confusion matrix (true rows x predicted columns)."""
    confusion = np.asarray(confusion, dtype="float64")
    present = confusion.sum(axis=1) > 0
    return float(np.mean(np.diag(confusion)[present] / confusion.sum(axis=1)[present]))


def is_collapsed(record, side="test", share=0.95, tolerance=1e-3, auc_margin=0.05, chance_margin=0.05):
    """True when a run predicts one class for (nearly) every item of `side`, or gives every item the same output.

    Args:
        record: a run record with `<side>_confusion` (true rows x predicted columns) and, optionally,
            `<side>_probabilities` and `<side>_roc_auc`.
        side: "test" or "val".
        share: one class predicted for at least this share of the items counts as collapsed ...
        chance_margin: ... when the run's balanced accuracy is also within this margin of chance (1 / classes), so
            that a run on a test side that is itself 95 % one class, which still finds the other class, is not
            called collapsed. None: the share alone decides.
        tolerance, auc_margin: constant outputs (the probability of the predicted class varies by at most
            `tolerance`) with an AUC within `auc_margin` of 0.5 count as collapsed.

    Returns:
        bool; False when the record has neither a confusion matrix nor probabilities of that side.
    """
    confusion = record.get(f"{side}_confusion")
    if _present(confusion):
        confusion = np.asarray(confusion, dtype="float64")
        predicted = confusion.sum(axis=0) / confusion.sum()
        near_chance = chance_margin is None or (
            _balanced_accuracy(confusion) <= 1.0 / int((confusion.sum(axis=1) > 0).sum()) + chance_margin
        )
        if predicted.max() >= share and near_chance:
            return True
    probabilities = record.get(f"{side}_probabilities")
    auc = record.get(f"{side}_roc_auc")
    if _present(probabilities) and _present(auc) and np.isfinite(auc):
        probabilities = np.asarray(probabilities, dtype="float64")
        if probabilities.ndim == 1 or probabilities.shape[1] == 1:  # one sigmoid output
            positive = probabilities.reshape(-1)
            probabilities = np.stack([1.0 - positive, positive], axis=1)
        top = probabilities.max(axis=1)
        return bool(np.ptp(top) <= tolerance and abs(auc - 0.5) <= auc_margin)
    return False


def _confusion_scores(confusion):
    """Accuracy, balanced accuracy, macro and weighted F1 of a (possibly fractional, expected) confusion matrix."""
    confusion = np.asarray(confusion, dtype="float64")
    k = confusion.shape[0]
    true, predicted = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    weights = confusion.ravel()
    keep = weights > 0
    y_true, y_pred, weights = true.ravel()[keep], predicted.ravel()[keep], weights[keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes predicted but absent from the truth
        balanced = balanced_accuracy_score(y_true, y_pred, sample_weight=weights)
    f1 = {
        average: f1_score(y_true, y_pred, labels=np.arange(k), average=average, sample_weight=weights, zero_division=0)
        for average in ("macro", "weighted")
    }
    return {
        "accuracy": float(accuracy_score(y_true, y_pred, sample_weight=weights)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(f1["macro"]),
        "weighted_f1": float(f1["weighted"]),
        "roc_auc": 0.5,  # neither predictor ranks one image above another
    }


def reference_metrics(true_counts):
    """What the majority-class (prior) predictor and chance (uniform guessing, expected values) score.

    Args:
        true_counts: images per true class on one test side (a confusion matrix's row sums).

    Returns:
        {"majority class": {metric: value}, "chance": {metric: value}} with accuracy, balanced accuracy, macro F1,
        weighted F1 and ROC-AUC (0.5 for both). Chance's F1 is that of the expected confusion matrix.
    """
    counts = np.asarray(true_counts, dtype="float64").reshape(-1)
    if counts.size < 2 or counts.sum() <= 0 or (counts < 0).any():
        raise ValueError(f"`true_counts` must hold at least two non-negative counts. Received: true_counts={counts}")
    k = counts.size
    majority = np.zeros((k, k))
    majority[:, int(np.argmax(counts))] = counts
    chance = np.repeat(counts[:, None] / k, k, axis=1)
    return {"majority class": _confusion_scores(majority), "chance": _confusion_scores(chance)}


def references(records, side="test"):
    """The reference metrics averaged over the runs' `side` (seeds may have different test sides).

    Returns:
        DataFrame indexed "majority class", "chance" with one column per metric kind, or None when no record has a
        `<side>_confusion`.
    """
    per_run = [
        reference_metrics(np.asarray(record[f"{side}_confusion"]).sum(axis=1))
        for record in records
        if _present(record.get(f"{side}_confusion"))
    ]
    if not per_run:
        return None
    return pd.DataFrame(
        {name: pd.DataFrame([run[name] for run in per_run]).mean() for name in REFERENCE_ROWS}
    ).T.reindex(columns=list(KINDS))


def reference_value(record_references, key, name="majority class"):
    """The reference of metric `key` (in its units) from {side: `references(...)`}; NaN when there is none."""
    kind = metric_kind(key)
    if kind is None or record_references.get(kind[0]) is None:
        return np.nan
    side, metric, scale = kind
    return float(record_references[side].loc[name, metric] * scale)


def collapsed_note(collapsed, runs):
    """'1 of 3' (collapsed runs of a row, '0 of 3' when none did), '' when it was not checked."""
    if collapsed is None or not np.isfinite(collapsed):
        return ""
    return f"{int(collapsed)} of {int(runs)}"


# ----------------------------------------------------------------------------------------------------------------
# Comparisons beyond seed noise


@dataclass(frozen=True)
class Verdict:
    """The outcome of a comparison: `difference` (first - second), its `standard_error`, `verdict` ("above",
    "below", "within noise", "not judged", "not above the majority class", or for `reaches_paper` "reaches the
    paper", "within noise of the paper", "below the paper"), `runs` per side, whether it was `paired`, and the
    `sentence` to print."""

    difference: float
    standard_error: float
    verdict: str
    sentence: str
    runs: tuple
    paired: bool = False

    def __str__(self):
        return self.sentence


def _direction(difference, standard_error):
    """ "above" / "below" beyond two standard errors, else "within noise"."""
    if abs(difference) > 2 * standard_error:
        return "above" if difference > 0 else "below"
    return "within noise"


def compare_means(mean_a, std_a, n_a, mean_b, std_b, n_b, a_label, b_label, metric_label):
    """`compare_rows` from summary statistics (mean, sample std, runs) of two rows: unpaired."""
    runs = (int(n_a), int(n_b))
    difference = float(mean_a - mean_b)
    if min(runs) < 2:
        return Verdict(
            difference, np.nan, "not judged",
            f"{a_label} vs {b_label} on {metric_label}: {difference:+.3f} ({runs[0]} vs {runs[1]} runs), but with "
            "a single run on a side seed noise cannot be judged.",
            runs,
        )  # fmt: skip
    standard_error = float(np.sqrt(std_a**2 / n_a + std_b**2 / n_b))
    return _verdict(difference, standard_error, runs, False, a_label, b_label, metric_label)


def _verdict(difference, standard_error, runs, paired, a_label, b_label, metric_label, pairs="shared seeds"):
    how = f"paired over {runs[0]} {pairs}" if paired else f"{runs[0]} vs {runs[1]} runs"
    numbers = f"{difference:+.3f}, standard error {standard_error:.3f}, {how}"
    if standard_error <= 1e-12 and abs(difference) > 1e-12:  # 0 up to rounding
        return Verdict(
            difference, standard_error, "not judged",
            f"{a_label} vs {b_label} on {metric_label}: {numbers}; a standard error of 0 with a non-zero difference "
            "means every run (or pair) gave the same value, so seed noise cannot be judged.",
            runs, paired,
        )  # fmt: skip
    direction = _direction(difference, standard_error)
    if direction == "within noise":
        sentence = (
            f"{a_label} and {b_label} do not differ on {metric_label} beyond seed noise ({numbers}: within two "
            "standard errors)."
        )
    else:
        sentence = f"{a_label} is {direction} {b_label} on {metric_label} ({numbers}: beyond two standard errors)."
    return Verdict(difference, standard_error, direction, sentence, runs, paired)


def compare_rows(
    a_values,
    b_values,
    a_label,
    b_label,
    metric_label,
    paired=None,
    seeds_a=None,
    seeds_b=None,
    pairs="shared seeds",
    majority=None,
):
    """Is row A above, below or within seed noise of row B? One sentence for every comparative claim.

    Args:
        a_values, b_values: the metric of each run of the two rows (NaN runs are left out).
        a_label, b_label, metric_label: how the sentence names the rows and the metric.
        paired: True pairs the runs (by shared seed when seeds are given, else by position: e.g. one row is a
            snapshot of the other); False never pairs; None pairs when `seeds_a` and `seeds_b` share two seeds.
        seeds_a, seeds_b: the seed of each run.
        pairs: what a pair is, in the sentence (e.g. "runs" when each run is paired with itself under two metrics).
        majority: what always predicting the largest class scores on the metric (one value, or (A's, B's) when the
            rows were tested on different sides); None: no majority-class rule.

    Returns:
        `Verdict`: "above" / "below" only when |difference| > 2 standard errors and the higher row's mean is above
        its majority-class reference by more than 2 of its standard errors (else "not above the majority class");
        "not judged" with fewer than two runs (or pairs) on a side, or a standard error of 0 with a non-zero
        difference.
    """
    verdict = _compare_rows(a_values, b_values, a_label, b_label, metric_label, paired, seeds_a, seeds_b, pairs)
    if majority is None or verdict.verdict not in ("above", "below"):
        return verdict
    majorities = tuple(majority) if isinstance(majority, (tuple, list)) else (majority, majority)
    winner = 0 if verdict.verdict == "above" else 1
    label, reference = (a_label, b_label)[winner], majorities[winner]
    if reference is None or not np.isfinite(reference):
        return verdict
    values = np.asarray((a_values, b_values)[winner], dtype="float64")
    values = values[np.isfinite(values)]
    standard_error = float(stats.sem(values)) if values.size > 1 else np.nan
    mean = float(values.mean()) if values.size else np.nan
    if values.size > 1 and standard_error > 0 and mean - reference > 2 * standard_error:
        return verdict
    return Verdict(
        verdict.difference, verdict.standard_error, "not above the majority class",
        f"{verdict.sentence[:-1]}; but {label} ({mean:.3f} over {values.size} runs, standard error "
        f"{standard_error:.3f}) is not above always predicting the largest class ({reference:.3f}) by two standard "
        f"errors, so {label} is not above the majority class and we do not say it is {verdict.verdict} the other.",
        verdict.runs, verdict.paired,
    )  # fmt: skip


def _compare_rows(a_values, b_values, a_label, b_label, metric_label, paired, seeds_a, seeds_b, pairs):
    """`compare_rows` without the majority-class rule."""
    a, b = np.asarray(a_values, dtype="float64"), np.asarray(b_values, dtype="float64")
    shared = []
    if seeds_a is not None and seeds_b is not None:
        if len(seeds_a) != len(a) or len(seeds_b) != len(b):
            raise ValueError(
                f"Each value needs its seed. Received {len(a)} values and {len(seeds_a)} seeds for {a_label!r}, "
                f"{len(b)} values and {len(seeds_b)} seeds for {b_label!r}."
            )
        shared = [seed for seed in dict.fromkeys(seeds_a) if seed in set(seeds_b)]
    if paired is None:
        paired = len(shared) >= 2
    if paired:
        if seeds_a is not None and seeds_b is not None:
            a_by, b_by = dict(zip(seeds_a, a)), dict(zip(seeds_b, b))
            a, b = np.array([a_by[s] for s in shared]), np.array([b_by[s] for s in shared])
        elif len(a) != len(b):
            raise ValueError(
                f"Paired runs need as many values on each side. Received {len(a)} for {a_label!r} and {len(b)} for "
                f"{b_label!r}; pass their seeds, or paired=False."
            )
        differences = (a - b)[np.isfinite(a - b)]
        runs = (differences.size, differences.size)
        if differences.size < 2:
            return compare_means(np.mean(a), np.nan, differences.size, np.mean(b), np.nan, differences.size,
                                 a_label, b_label, metric_label)  # fmt: skip
        return _verdict(
            float(differences.mean()), float(stats.sem(differences)), runs, True, a_label, b_label, metric_label, pairs
        )
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    std_a = a.std(ddof=1) if a.size > 1 else np.nan
    std_b = b.std(ddof=1) if b.size > 1 else np.nan
    return compare_means(np.mean(a) if a.size else np.nan, std_a, a.size, np.mean(b) if b.size else np.nan, std_b,
                         b.size, a_label, b_label, metric_label)  # fmt: skip


def reaches_paper(values, paper_value, majority_reference, label="our row", metric_label="the metric"):
    """Does a row reach the paper? "reaches the paper" when its mean is at or above the paper's value, "within noise
    of the paper" when below it by at most 2 standard errors, "below the paper" beyond; any of these only when the
    mean is above the majority-class reference by more than 2 standard errors.

    Args:
        values: the metric of each run of the row (collapsed runs included: they are part of what the row does).
        paper_value: the published number, in the same units.
        majority_reference: what always predicting the largest class scores (NaN or None: no reference).

    Returns:
        `Verdict` with `difference` = mean - paper and verdict "reaches the paper", "within noise of the paper",
        "below the paper", "not above the majority class" or "not judged" (a single run, or a standard error of 0
        below the paper).
    """
    values = np.asarray(values, dtype="float64")
    values = values[np.isfinite(values)]
    mean = float(values.mean()) if values.size else np.nan
    difference = mean - paper_value
    runs = (int(values.size), int(values.size))
    if values.size < 2:
        return Verdict(
            difference, np.nan, "not judged",
            f"{label}: {metric_label} {mean:.3f} against the paper's {paper_value:.3f} from a single run; seed noise "
            "cannot be judged, so we do not say whether it reaches the paper.",
            runs,
        )  # fmt: skip
    standard_error = float(stats.sem(values))
    numbers = f"{mean:.3f} over {values.size} runs, standard error {standard_error:.3f}"
    if majority_reference is not None and np.isfinite(majority_reference):
        if mean - majority_reference <= 2 * standard_error:
            return Verdict(
                difference, standard_error, "not above the majority class",
                f"{label}: {metric_label} {numbers}, is not above always predicting the largest class "
                f"({majority_reference:.3f}) by two standard errors, so it cannot be said to reach the paper's "
                f"{paper_value:.3f}.",
                runs,
            )  # fmt: skip
    if difference > 2 * standard_error:
        verdict, tail = "reaches the paper", "above it by more than two standard errors"
    elif difference >= 0:
        verdict, tail = "reaches the paper", "at or above it, within two standard errors: level with it, not beyond"
    elif standard_error <= 1e-12:
        verdict, tail = "not judged", "below it with a standard error of 0, so seed noise cannot be judged"
    elif difference < -2 * standard_error:
        verdict, tail = "below the paper", "below it by more than two standard errors"
    else:
        verdict, tail = "within noise of the paper", "below it, but within two standard errors"
    return Verdict(
        difference, standard_error, verdict,
        f"{label}: {metric_label} {numbers}, against the paper's {paper_value:.3f} ({difference:+.3f}): {tail}.",
        runs,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Rows of run records


def row_values(records, key, learned_only=False):
    """(values, seeds) of `key` over run records (NaN where a record lacks it); with `learned_only`, the runs that
    did not collapse (`is_collapsed`)."""
    chosen = [record for record in records if not (learned_only and is_collapsed(record))]
    values = [record.get(key) if _present(record.get(key)) else np.nan for record in chosen]
    return np.asarray(values, dtype="float64"), [record.get("seed") for record in chosen]


def all_collapsed(records):
    """True when there are runs and every one of them collapsed (`is_collapsed`)."""
    return bool(records) and all(is_collapsed(record) for record in records)


def per_seed(values, seeds):
    """(means, seeds): the values averaged per seed, in first-seen order (NaN values left out of each mean)."""
    values = np.asarray(values, dtype="float64")
    order = list(dict.fromkeys(seeds))
    means = []
    for seed in order:
        chosen = values[[s == seed for s in seeds]]
        chosen = chosen[np.isfinite(chosen)]
        means.append(float(chosen.mean()) if chosen.size else np.nan)
    return np.asarray(means, dtype="float64"), order


def _majority_of(records, key):
    """The majority-class reference of `key` (in its units) averaged over `records`' sides; NaN when there is none."""
    kind = metric_kind(key)
    if kind is None or not records:
        return np.nan
    return reference_value({kind[0]: references(records, kind[0])}, key)


def compare_records(a_records, b_records, key, a_label, b_label, metric_label, learned_only=False, majority=None):
    """`compare_rows` of two rows' run records on `key`, paired by seed where they share two seeds or more.

    Runs that repeat a seed (folds x seeds scored on the same held-out test) are averaged per seed first: they are
    never treated as independent runs. `majority` (default: each row's own majority-class reference of `key`, from
    its records' confusion matrices; NaN or a None pair to skip) applies `compare_rows`' majority-class rule.
    """
    a_values, a_seeds = row_values(a_records, key, learned_only)
    b_values, b_seeds = row_values(b_records, key, learned_only)
    if majority is None:
        majority = (_majority_of(a_records, key), _majority_of(b_records, key))
    pairs = "shared seeds"
    if None in a_seeds or None in b_seeds:  # runs without a seed cannot be paired
        return compare_rows(a_values, b_values, a_label, b_label, metric_label, paired=False, majority=majority)
    if len(set(a_seeds)) < len(a_seeds) or len(set(b_seeds)) < len(b_seeds):  # folds x seeds: one value per seed
        (a_values, a_seeds), (b_values, b_seeds) = per_seed(a_values, a_seeds), per_seed(b_values, b_seeds)
        pairs = "shared seeds (runs of a seed averaged first)"
    return compare_rows(
        a_values, b_values, a_label, b_label, metric_label, seeds_a=a_seeds, seeds_b=b_seeds, pairs=pairs,
        majority=majority,
    )  # fmt: skip


def weights_notes(rows_weights):
    """{row: "random weights"} for the rows whose backbone loaded random weights, from {row: weights used}."""
    return {row: "random weights" for row, used in rows_weights.items() if str(used).startswith("random")}


def rows_of(records, row, by="row"):
    """The records of one table row (`by`, default the record's `row` field)."""
    return [record for record in records if record.get(by) == row]


def collapsed_rows(records, rows, by="configuration"):
    """The rows of `rows` whose runs (records with `by` == row) all collapsed (`all_collapsed`)."""
    return [row for row in rows if all_collapsed(rows_of(records, row, by))]


def best_row(summary, records, rows, key, metric_label, by="configuration"):
    """(the row of `rows` with the highest `<key>_mean` in a `summarise` output, its `compare_records` against the
    runner-up on `key`, or None for a single row). Choose on a validation metric, never on test."""
    ranked = sorted(rows, key=lambda row: summary.loc[row, f"{key}_mean"], reverse=True)
    if len(ranked) < 2:
        return ranked[0], None
    first, second = ranked[:2]
    return first, compare_records(rows_of(records, first, by), rows_of(records, second, by), key, first, second,
                                  metric_label)  # fmt: skip


def best_after(summary, records, rows, key, metric_label, min_runs=3, by="configuration"):
    """Which of `rows` (those with runs) is best on `key` (a validation metric), said only once every row that
    learned has `min_runs` runs: {"collapsed": rows whose every run collapsed, "rows": the others, "runs": their
    fewest runs, "best": the best of them or None (too few runs, or none left), "verdict": `best_row`'s comparison
    with the runner-up or None}."""
    present = [row for row in rows if rows_of(records, row, by)]
    gone = collapsed_rows(records, present, by)
    left = [row for row in present if row not in gone]
    runs = min((len(rows_of(records, row, by)) for row in left), default=0)
    judged = bool(left) and runs >= min_runs
    best, verdict = best_row(summary, records, left, key, metric_label, by) if judged else (None, None)
    return {"collapsed": gone, "runs": runs, "rows": left, "best": best, "verdict": verdict}


def goal_sentence(records, key, goal, unit="seed"):
    """Whether a row meets a goal of `key` >= `goal`: its mean, and how many of its runs reach it, each named by its
    `unit` (e.g. "seed", or "fold" for cross-validated runs)."""
    kept = [(float(record[key]), record.get(unit)) for record in records
            if _present(record.get(key)) and np.isfinite(record[key])]  # fmt: skip
    if not kept:
        return f"Goal {goal:.2f}: no run has {key}."
    mean = float(np.mean([value for value, _ in kept]))
    each = ", ".join(f"{_beside(value, goal)} ({unit} {name})" for value, name in kept)
    met = sum(value >= goal for value, _ in kept)
    verdict = "meets it" if mean >= goal else "misses it"
    return f"Goal {goal:.2f}: the mean {_beside(mean, goal)} {verdict}; {met} of {len(kept)} runs reach it ({each})."


def _beside(value, goal, digits=3):
    """`value` to `digits` decimals, or more where that rounding would hide which side of `goal` it is on (0.9697
    against 0.97 prints 0.9697, not 0.970)."""
    while value < goal <= round(value, digits) and digits < 8:
        digits += 1
    if value < goal <= round(value, digits):  # below the goal by less than 8 decimals show
        return f"just under {goal}"
    return f"{value:.{digits}f}"


def record_reaches_paper(records, key, paper_value, label, metric_label):
    """`reaches_paper` of a row's runs on `key`, against the majority-class reference of their own sides."""
    kind = metric_kind(key)
    majority = reference_value({kind[0]: references(records, kind[0])}, key) if kind else np.nan
    return reaches_paper([record[key] for record in records], paper_value, majority, label, metric_label)


def row_reaches_paper(records, key, paper_value, label, metric_label):
    """`record_reaches_paper`'s sentence over every run, then, where some collapsed, the same over the runs that
    learned (the value the table shows first); where every run collapsed (`all_collapsed`) a sentence that says so:
    such a row has no value to set beside the paper's."""
    if all_collapsed(records):
        return (f"{label}: every one of its {len(records)} runs collapsed to one class, so it has no {metric_label} to "
                f"set beside the paper's {paper_value:.2f}.")  # fmt: skip
    every = record_reaches_paper(records, key, paper_value, label, metric_label).sentence
    learned = [record for record in records if not is_collapsed(record)]
    if len(learned) == len(records):
        return every
    said = record_reaches_paper(learned, key, paper_value, label, metric_label).sentence
    return (f"{every[:-1]} (every run, {collapsed_note(len(records) - len(learned), len(records))} collapsed); "
            f"the runs that learned only: {said.removeprefix(f'{label}: ')}")


def failure_rates(records, by="configuration", note="the paper's single run cannot show this rate", noted=None):
    """One sentence per row of `records` (in first-seen order) with two runs or more, where some never left the
    majority-class plateau (`is_collapsed`): how often, with its 95 % Wilson interval, followed by `note` for the
    rows of `noted` (None: every row)."""
    sentences = []
    for row in dict.fromkeys(record[by] for record in records):
        chosen = rows_of(records, row, by)
        failed = sum(is_collapsed(record) for record in chosen)
        if len(chosen) > 1 and failed:
            tail = f": {note}" if noted is None or row in noted else ""
            sentences.append(f"'{row}' never left the majority-class plateau within its epochs in "
                             f"{failure_rate(failed, len(chosen))}{tail}.")  # fmt: skip
    return sentences


def failure_rate(failed, runs):
    """'1 of 10 seeds (10%; 95 % interval 2%-40%)': a count of failed runs with its Wilson interval, which says
    how little ten seeds pin down a rate ('0 of 10' still allows 28 %)."""
    low, high = stats.binomtest(failed, runs).proportion_ci(0.95, method="wilson")
    return f"{failed} of {runs} seeds ({failed / runs:.0%}; 95 % interval {low:.0%}-{high:.0%})"


def standard_errors(summary, records, row, keys, by="configuration"):
    """The standard error of the mean of each of `keys` over a row's runs: from the records where the row has two
    or more that all hold every key, else from the `summarise` output's std (NaN for a single run)."""
    from scipy import stats

    chosen, found = rows_of(records or [], row, by), summary.loc[row]
    if len(chosen) > 1 and all(key in record for record in chosen for key in keys):
        return [float(stats.sem([record[key] for record in chosen])) for key in keys]
    runs = int(found["runs"])
    return [found[f"{key}_std"] / np.sqrt(runs) if runs > 1 else np.nan for key in keys]


def nearer_reading(paper_value, values, errors, names, offset=np.nan, offset_what="our runs"):
    """Which of two readings of one printed metric a published value points to (e.g. categorical vs element-wise
    binary accuracy), from our runs' means `values` and their standard `errors`, `names` the readings.

    It points to one only when it lies within two standard errors of that one and beyond two of the other, and is
    nearer to it by more than `offset`, how far `offset_what` sit from the paper where the metric is not in doubt
    (NaN: not known). Returns (the distances as a clause, e.g. "+0.010 from the true accuracy (standard error
    0.004), ...", the verdict clause)."""
    distances = [paper_value - value for value in values]
    near = [np.isfinite(e) and abs(d) <= 2 * e for d, e in zip(distances, errors)]
    nearer_by = abs(abs(distances[0]) - abs(distances[1]))
    unknown = "so these numbers cannot tell which metric the paper printed"
    if np.isfinite(offset) and nearer_by <= offset:
        nearest = names[int(np.argmin(np.abs(distances)))]
        verdict = (f"it is nearer to the {nearest} by {nearer_by:.3f}, less than the {offset:.3f} {offset_what} sit "
                   f"from the paper, {unknown}")  # fmt: skip
    elif not all(np.isfinite(errors)):
        verdict = f"with a single run seed noise cannot be judged, {unknown}"
    elif near[0] != near[1]:
        verdict = (f"only the {names[near.index(True)]} is within two standard errors of it, so the paper most likely "
                   "printed that")  # fmt: skip
    else:
        verdict = f"both are {'within' if near[0] else 'beyond'} two standard errors of it, {unknown}"
    spread = ", ".join(
        f"{d:+.3f} from the {name} (standard error {e:.3f})" if np.isfinite(e) else f"{d:+.3f} from the {name}"
        for name, d, e in zip(names, distances, errors)
    )
    return spread, verdict
