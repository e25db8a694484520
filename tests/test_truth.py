"""medcnn.experiment.truth: collapsed runs, majority-class and chance references, comparisons beyond seed noise,
and the tables that show them."""

import json

import numpy as np
import pytest

from medcnn import experiment
from medcnn.experiment import truth
from medcnn.report import paper_table


def record(configuration, seed, confusion, **metrics):
    confusion = np.asarray(confusion)
    accuracy = np.trace(confusion) / confusion.sum()
    balanced = np.mean(np.diag(confusion) / confusion.sum(axis=1))
    return {"configuration": configuration, "group": "g", "seed": seed, "test_confusion": confusion.tolist(),
            "test_accuracy": accuracy, "test_balanced_accuracy": balanced, **metrics}  # fmt: skip


COLLAPSE_CASES = [
    ("one class for everything", {"test_confusion": [[6, 0], [4, 0]]}, True),
    ("96 % one class, near chance", {"test_confusion": [[48, 0], [48, 4]]}, True),
    ("a learned run", {"test_confusion": [[5, 1], [2, 2]]}, False),
    ("95 % one class, but it finds the rare class", {"test_confusion": [[94, 1], [1, 4]]}, False),
    ("constant outputs, AUC 0.5", {"test_confusion": [[3, 3], [2, 2]], "test_roc_auc": 0.5,
                                   "test_probabilities": [[0.5004, 0.4996]] * 5 + [[0.4996, 0.5004]] * 5}, True),
    ("varied outputs", {"test_confusion": [[3, 3], [2, 2]], "test_roc_auc": 0.5,
                        "test_probabilities": [[0.9, 0.1]] * 5 + [[0.2, 0.8]] * 5}, False),
    ("no confusion matrix", {"test_accuracy": 0.5}, False),
]  # fmt: skip


@pytest.mark.parametrize("name, run, expected", COLLAPSE_CASES, ids=[case[0] for case in COLLAPSE_CASES])
def test_is_collapsed(name, run, expected):
    assert experiment.is_collapsed(run) is expected


def test_is_collapsed_thresholds_are_arguments():
    run = {"val_confusion": [[9, 1], [1, 9]]}  # 50 % predicted per class: only a share of 0.5 calls it collapsed
    assert not experiment.is_collapsed(run, side="val")
    assert experiment.is_collapsed(run, side="val", share=0.5, chance_margin=None)


def test_reference_metrics_match_scikit_learn_on_explicit_predictions():
    from sklearn.metrics import balanced_accuracy_score, f1_score

    counts = [6, 3, 1]
    truth = np.repeat([0, 1, 2], counts)
    majority = experiment.reference_metrics(counts)["majority class"]
    assert majority["accuracy"] == pytest.approx(0.6)
    assert majority["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, np.zeros(10)))
    assert majority["macro_f1"] == pytest.approx(f1_score(truth, np.zeros(10), average="macro", zero_division=0))
    assert majority["roc_auc"] == 0.5
    chance = experiment.reference_metrics(counts)["chance"]
    assert chance["accuracy"] == pytest.approx(1 / 3) and chance["balanced_accuracy"] == pytest.approx(1 / 3)
    # expected confusion of uniform guessing: recall 1/3 per class, precision = the class's share
    expected_f1 = np.mean([2 * (n / 10) * (1 / 3) / (n / 10 + 1 / 3) for n in counts])
    assert chance["macro_f1"] == pytest.approx(expected_f1)
    with pytest.raises(ValueError, match="at least two non-negative counts"):
        experiment.reference_metrics([5])


def test_references_average_over_the_runs_test_sides():
    runs = [{"test_confusion": [[8, 0], [2, 0]]}, {"test_confusion": [[6, 0], [4, 0]]}, {"test_accuracy": 0.5}]
    table = experiment.references(runs)
    assert table.loc["majority class", "accuracy"] == pytest.approx(0.7)  # (0.8 + 0.6) / 2
    assert table.loc["chance", "roc_auc"] == 0.5
    assert experiment.references([{"test_accuracy": 0.5}]) is None


@pytest.mark.parametrize(
    "key, expected",
    [("test_accuracy", ("test", "accuracy", 1.0)), ("test_accuracy_percent", ("test", "accuracy", 100.0)),
     ("val_accuracy_max", ("val", "accuracy", 1.0)), ("test_balanced_accuracy", ("test", "balanced_accuracy", 1.0)),
     ("test_weighted_f1_percent", ("test", "weighted_f1", 100.0)), ("test_roc_auc", ("test", "roc_auc", 1.0)),
     ("test_precision", None), ("test_patient_accuracy", None), ("train_loss", None), ("accuracy", None)],
)  # fmt: skip
def test_metric_kind(key, expected):
    assert experiment.metric_kind(key) == expected


def test_summarise_counts_collapsed_runs_and_summarises_the_learned_apart():
    records = [
        record("a", 0, [[5, 1], [1, 3]]),
        record("a", 1, [[4, 2], [1, 3]]),
        record("a", 2, [[6, 0], [4, 0]]),  # collapsed
        record("b", 0, [[6, 0], [4, 0]]),
    ]
    summary = experiment.summarise(records, ["test_accuracy"])
    assert list(summary["collapsed"]) == [1, 1] and list(summary["collapse_checked"]) == [3, 1]
    assert summary.loc["a", "test_accuracy_mean"] == pytest.approx(np.mean([0.8, 0.7, 0.6]))
    assert summary.loc["a", "test_accuracy_learned_mean"] == pytest.approx(0.75)
    assert summary.loc["a", "test_accuracy_learned_std"] == pytest.approx(np.std([0.8, 0.7], ddof=1))
    assert np.isnan(summary.loc["b", "test_accuracy_learned_mean"])
    assert summary.loc["a", "test_accuracy_reference_majority"] == pytest.approx(0.6)
    assert summary.loc["a", "test_accuracy_reference_chance"] == pytest.approx(0.5)
    plain = experiment.summarise([{"configuration": "a", "seed": 0, "acc": 0.5}], ["acc"])
    assert plain.loc["a", "collapsed"] == 0 and "acc_learned_mean" not in plain


def test_compare_rows_pairs_shared_seeds_and_says_within_noise():
    # B is A minus 0.02 on each seed: unpaired the seed spread hides it, paired it is clear
    a, b = [0.70, 0.80, 0.90], [0.68, 0.785, 0.875]
    paired = experiment.compare_rows(a, b, "A", "B", "accuracy", seeds_a=[0, 1, 2], seeds_b=[0, 1, 2])
    assert paired.paired and paired.verdict == "above" and paired.difference == pytest.approx(0.02)
    assert "A is above B on accuracy" in paired.sentence and "paired over 3 shared seeds" in paired.sentence
    unpaired = experiment.compare_rows(a, b, "A", "B", "accuracy", paired=False)
    assert unpaired.verdict == "within noise" and "do not differ" in str(unpaired)
    assert unpaired.standard_error == pytest.approx(np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 3))
    below = experiment.compare_rows(b, a, "B", "A", "accuracy", paired=True)  # by position: a snapshot
    assert below.verdict == "below"
    single = experiment.compare_rows([0.9], [0.5, 0.6], "A", "B", "accuracy")
    assert single.verdict == "not judged" and "cannot be judged" in single.sentence
    with pytest.raises(ValueError, match="as many values"):
        experiment.compare_rows([0.1, 0.2], [0.1, 0.2, 0.3], "A", "B", "accuracy", paired=True)


def test_reaches_paper_needs_the_majority_reference_and_two_standard_errors():
    reached = experiment.reaches_paper([0.83, 0.85, 0.87], 0.83, 0.30, "row", "accuracy")
    assert reached.verdict == "reaches the paper" and "over 3 runs" in reached.sentence
    near = experiment.reaches_paper([0.80, 0.82, 0.84], 0.83, 0.30, "row", "accuracy")
    assert near.verdict == "within noise of the paper" and "over 3 runs" in near.sentence
    below = experiment.reaches_paper([0.60, 0.61, 0.62], 0.83, 0.30)
    assert below.verdict == "below the paper"
    # above the paper, but no better than always predicting the largest class
    majority = experiment.reaches_paper([0.95, 0.952, 0.954], 0.80, 0.952)
    assert majority.verdict == "not above the majority class" and "largest class" in majority.sentence
    assert experiment.reaches_paper([0.9], 0.8, 0.3).verdict == "not judged"


@pytest.fixture
def truthful_table():
    paper = paper_table("s", "Table 1", "c", ["test acc"], [("a", 0.82), ("b", 0.75), ("c", 0.70)], "configuration")
    records = [
        record("a", 0, [[5, 1], [1, 3]], test_roc_auc=0.8),
        record("a", 1, [[4, 2], [1, 3]], test_roc_auc=0.7),
        record("a", 2, [[6, 0], [4, 0]], test_roc_auc=0.5),
        record("b", 0, [[6, 0], [4, 0]], test_roc_auc=0.5),
        record("b", 1, [[6, 0], [4, 0]], test_roc_auc=0.5),
    ]
    summary = experiment.summarise(records, ["test_accuracy", "test_balanced_accuracy", "test_roc_auc"])
    table = experiment.compare(
        paper, summary, {"scale": "smoke"}, {"test acc": "test_accuracy"}, {"b": "random weights"}
    )
    return records, summary, table


def test_compare_adds_references_collapsed_counts_and_balanced_accuracy(truthful_table):
    _, _, table = truthful_table
    majority = table[(table.row == "reference: majority class") & (table.metric == "test acc")].iloc[0]
    assert majority["ours"] == pytest.approx(0.6) and np.isnan(majority["paper"]) and majority["status"] == "reference"
    assert set(table["metric"]) == {"test acc", "test balanced accuracy", "test ROC-AUC"}  # two classes: AUC too
    a = table[(table.row == "a") & (table.metric == "test acc")].iloc[0]
    assert a["collapsed"] == 1 and a["learned"] == pytest.approx(0.75) and a["ours"] == pytest.approx(0.7)
    markdown = experiment.comparison_markdown(table)
    lines = markdown.splitlines()
    assert lines[0] == (
        "| configuration | paper test acc | ours test acc | ours test balanced accuracy | ours test ROC-AUC | runs "
        "| collapsed |"
    )
    assert lines[2] == (
        "| a | 0.82 | 0.750 ± 0.071 (all 3: 0.700) | 0.750 ± 0.059 (all 3: 0.667) | 0.750 ± 0.071 (all 3: 0.667) "
        "| 3 | 1 of 3 |"
    )
    assert lines[3] == "| b *(random weights)* | 0.75 | collapsed | collapsed | collapsed | 2 | 2 of 2 |"
    assert lines[4] == "| c | 0.70 |  |  |  | 0 |  |"
    assert lines[5] == "| reference: majority class |  | 0.600 | 0.500 | 0.500 |  |  |"
    assert lines[6] == "| reference: chance |  | 0.500 | 0.500 | 0.500 |  |  |"


def test_results_json_round_trips_the_truthful_table(truthful_table, tmp_path):
    records, summary, table = truthful_table
    payload = experiment.results_payload("s", {}, {"scale": "smoke", "seeds": [0, 1, 2]}, {"T": table}, summary,
                                         records, [])  # fmt: skip
    assert set(payload["tables"]["T"]) == {"a", "b", "c"}
    assert payload["tables"]["T"]["a"]["collapsed"] == 1 and payload["tables"]["T"]["b"]["note"] == "random weights"
    assert payload["references"]["T"]["reference: majority class"]["test acc"] == pytest.approx(0.6)
    written = json.loads(json.dumps(payload, default=float).replace("NaN", "null"))
    assert experiment.readme_table(written, "T") == experiment.comparison_markdown(table)


def test_readme_table_computes_the_truth_of_an_old_results_json(truthful_table):
    """A results.json written before this change: no references, no collapsed counts; the runs have them."""
    records, _, table = truthful_table
    old_rows = {
        row: {"test acc": {"paper": paper, "ours": ours, "std": std, "delta": None}, "runs": runs}
        for row, paper, ours, std, runs in (("a", 0.82, np.mean([0.8, 0.7, 0.6]), 0.1, 3), ("b", 0.75, 0.6, 0.0, 2))
    }  # fmt: skip
    payload = {"tables": {"T": old_rows}, "paper_decimals": {"T": 2}, "runs": records}
    lines = experiment.readme_table(payload, "T").splitlines()
    assert "| ours test balanced accuracy | ours test ROC-AUC |" in lines[0] and lines[0].endswith("| collapsed |")
    assert lines[2].startswith("| a | 0.82 | 0.750 ± 0.071 (all 3: 0.700) |") and lines[2].endswith("| 3 | 1 of 3 |")
    assert lines[3] == "| b | 0.75 | collapsed | collapsed | collapsed | 2 | 2 of 2 |"
    assert lines[4] == "| reference: majority class |  | 0.600 | 0.500 | 0.500 |  |  |"


def test_rows_on_different_test_sides_show_their_own_majority_reference():
    paper = paper_table("s", "T", "c", ["test acc"], [("a", 0.9), ("b", 0.9)], "configuration")
    records = [record("a", 0, [[7, 1], [1, 1]]), record("a", 1, [[6, 2], [0, 2]]),
               record("b", 0, [[3, 2], [1, 4]]), record("b", 1, [[4, 1], [2, 3]])]  # fmt: skip
    table = experiment.compare(
        paper, experiment.summarise(records, ["test_accuracy"]), {}, {"test acc": "test_accuracy"}
    )
    lines = experiment.comparison_markdown(table).splitlines()
    assert lines[0].endswith("| runs | collapsed | majority class, test acc |")
    assert lines[2].endswith("| 0.800 |") and lines[3].endswith("| 0.500 |")
    # the pooled reference would average two test sides (0.650, matching neither): the row shows their range
    assert lines[4] == "| reference: majority class |  | 0.500–0.800 |  |  |  |"


def test_compare_records_pairs_by_seed_and_leaves_collapsed_runs_out_when_asked():
    learned, stuck = [[8, 2], [2, 8]], [[10, 0], [10, 0]]
    a = [{"seed": s, "acc": 0.8 + 0.01 * s, "test_confusion": learned} for s in range(3)]
    b = [{"seed": s, "acc": 0.7 + 0.012 * s, "test_confusion": learned} for s in range(3)]
    verdict = truth.compare_records(a, b, "acc", "A", "B", "accuracy")
    assert verdict.paired and verdict.verdict == "above" and "paired over 3 shared seeds" in verdict.sentence
    b[0]["test_confusion"] = stuck
    assert truth.compare_records(a, b, "acc", "A", "B", "accuracy", learned_only=True).runs == (2, 2)
    assert truth.all_collapsed([{"test_confusion": stuck}]) and not truth.all_collapsed([])
    runs = truth.compare_rows(
        [0.9, 0.8, 0.7], [0.8, 0.7, 0.6], "with", "without", "accuracy", paired=True, pairs="runs"
    )
    assert "paired over 3 runs" in runs.sentence
    assert truth.weights_notes({"A": "random", "B": "imagenet"}) == {"A": "random weights"}


def test_compare_records_averages_the_folds_of_a_seed_before_pairing():
    learned = [[8, 2], [2, 8]]
    # 3 seeds x 2 folds on the same test patients: 3 pairs, never 6 independent runs
    a = [{"seed": s, "acc": 0.8 + 0.01 * s + f, "test_confusion": learned} for s in range(3) for f in (0.0, 0.02)]
    b = [{"seed": s, "acc": 0.7 + 0.01 * s + f, "test_confusion": learned} for s in range(3) for f in (0.0, 0.04)]
    verdict = truth.compare_records(a, b, "acc", "A", "B", "accuracy")
    assert verdict.paired and verdict.runs == (3, 3) and verdict.difference == pytest.approx(0.09)
    assert "paired over 3 shared seeds (runs of a seed averaged first)" in verdict.sentence
    means, seeds = truth.per_seed([0.1, 0.3, 0.5, np.nan], [1, 1, 2, 2])
    assert seeds == [1, 2] and means == pytest.approx([0.2, 0.5])


def test_above_needs_the_winner_above_the_majority_class():
    a, b = [0.91, 0.92, 0.93], [0.80, 0.815, 0.825]
    assert experiment.compare_rows(a, b, "A", "B", "acc", paired=True, majority=0.5).verdict == "above"
    held = experiment.compare_rows(a, b, "A", "B", "acc", paired=True, majority=0.92)
    assert held.verdict == "not above the majority class" and "A is not above the majority class" in held.sentence
    below = experiment.compare_rows(b, a, "B", "A", "acc", paired=True, majority=(0.5, 0.95))
    assert below.verdict == "not above the majority class" and "A is not above the majority class" in below.sentence
    # compare_records takes each row's majority-class reference from its confusion matrices (0.9 here)
    skewed = [[9, 0], [1, 0]]
    ra = [{"seed": s, "test_accuracy": 0.9 + 0.001 * s, "test_confusion": skewed} for s in range(3)]
    rb = [{"seed": s, "test_accuracy": 0.5 + 0.01 * s, "test_confusion": skewed} for s in range(3)]
    verdict = truth.compare_records(ra, rb, "test_accuracy", "A", "B", "test accuracy")
    assert verdict.verdict == "not above the majority class"


def test_a_standard_error_of_zero_is_not_judged():
    same = experiment.compare_rows([0.8, 0.9, 0.7], [0.79, 0.89, 0.69], "A", "B", "acc", paired=True)
    assert same.verdict == "not judged" and "standard error of 0" in same.sentence and "3" in same.sentence
    equal = experiment.compare_rows([0.8, 0.9], [0.8, 0.9], "A", "B", "acc", paired=True)
    assert equal.verdict == "within noise"
    flat = experiment.reaches_paper([0.8, 0.8, 0.8], 0.85, 0.3)
    assert flat.verdict == "not judged" and "over 3 runs" in flat.sentence
    assert experiment.reaches_paper([0.9, 0.9], 0.85, 0.3).verdict == "reaches the paper"


def _rows(values, confusion=((5, 1), (1, 5)), row="A"):
    return [{"configuration": row, "seed": seed, "val_accuracy": v, "test_accuracy": v, "test_confusion": confusion}
            for seed, v in enumerate(values)]  # fmt: skip


def test_best_row_best_after_and_collapsed_rows():
    stuck = ((6, 0), (6, 0))  # one class for every image
    records = _rows([0.9, 0.92, 0.91]) + _rows([0.6, 0.65, 0.61], row="B") + _rows([0.5, 0.5, 0.5], stuck, "C")
    summary = experiment.summarise(records, ["val_accuracy"])
    assert truth.collapsed_rows(records, ["A", "B", "C"]) == ["C"]
    best, verdict = truth.best_row(summary, records, ["B", "A"], "val_accuracy", "validation accuracy")
    assert best == "A" and verdict.verdict == "above"
    assert truth.best_row(summary, records, ["B"], "val_accuracy", "validation accuracy") == ("B", None)
    chosen = truth.best_after(summary, records, ["A", "B", "C", "D"], "val_accuracy", "validation accuracy")
    assert chosen["collapsed"] == ["C"] and chosen["rows"] == ["A", "B"] and chosen["runs"] == 3
    assert chosen["best"] == "A" and chosen["verdict"].verdict == "above"
    early = truth.best_after(summary, records, ["A", "B"], "val_accuracy", "validation accuracy", min_runs=4)
    assert early["best"] is None and early["verdict"] is None and early["runs"] == 3


def test_record_reaches_paper_uses_the_rows_own_majority_reference():
    records = _rows([0.95, 0.96, 0.97], confusion=((9, 1), (1, 9)))
    verdict = truth.record_reaches_paper(records, "test_accuracy", 0.9, "A", "test accuracy")
    assert verdict.verdict == "reaches the paper"
    low = truth.record_reaches_paper(_rows([0.5, 0.52, 0.51]), "test_accuracy", 0.9, "B", "test accuracy")
    assert low.verdict == "not above the majority class"  # a 6/6 test side: always one class scores 0.5


def test_row_reaches_paper_summary_row_cell_and_failure_rates_say_when_every_run_collapsed():
    import pandas as pd

    stuck = [record("A", seed, [[6, 0], [4, 0]]) for seed in (0, 1)]
    learned = [record("B", seed, [[5, 1], [1 + seed, 3 - seed]]) for seed in (0, 1)]
    said = truth.row_reaches_paper(stuck, "test_accuracy", 0.82, "Row A", "test accuracy")
    assert said == ("Row A: every one of its 2 runs collapsed to one class, so it has no test accuracy to set beside "
                    "the paper's 0.82.")  # fmt: skip
    assert said != truth.row_reaches_paper(learned, "test_accuracy", 0.82, "Row B", "test accuracy")
    summary = pd.DataFrame({"test_accuracy_mean": [0.6, 0.75], "test_accuracy_std": [0.0, 0.05], "runs": [2, 2]},
                           index=["A", "B"])  # fmt: skip
    from medcnn.experiment.summary import row_cell

    assert row_cell(summary, stuck + learned, "A") == "collapsed (2 of 2 runs predict one class)"
    assert row_cell(summary, stuck + learned, "B") == "0.750 ± 0.050 over 2 seed(s)"
    mixed = [stuck[0], {**learned[1], "configuration": "A"}, *learned]
    rate = "'A' never left the majority-class plateau within its epochs in 1 of 2 seeds (50%; 95 % interval 9%-91%)"
    assert truth.failure_rates(mixed, note="single runs hide it") == [f"{rate}: single runs hide it."]
    assert truth.failure_rates(mixed, note="single runs hide it", noted=["B"]) == [
        "'A' never left the majority-class plateau within its epochs in 1 of 2 seeds (50%; 95 % interval 9%-91%)."
    ]
    partial = pd.DataFrame({"test_accuracy_mean": [0.4], "test_accuracy_std": [0.2], "runs": [3]}, index=["A"])
    three = [*stuck, {**learned[0], "configuration": "A", "seed": 2}]  # test accuracy 0.8 where it learned
    assert row_cell(partial, three, "A") == "0.800 over the 1 of 3 seeds that learned (all 3: 0.400)"


def test_standard_errors_and_nearer_reading():
    import pandas as pd

    summary = pd.DataFrame({"a_mean": [0.5], "a_std": [0.1], "b_std": [0.2], "runs": [4]}, index=["row"])
    runs = [{"configuration": "row", "a": a, "b": b} for a, b in ((0.4, 0.9), (0.6, 0.7))]
    assert truth.standard_errors(summary, runs, "row", ("a", "b")) == pytest.approx([0.1, 0.1])
    assert truth.standard_errors(summary, [], "row", ("a", "b")) == pytest.approx([0.05, 0.1])
    names = ("true accuracy", "binary accuracy")
    spread, verdict = truth.nearer_reading(0.80, (0.79, 0.90), (0.01, 0.01), names)
    assert spread == ("+0.010 from the true accuracy (standard error 0.010), -0.100 from the binary accuracy "
                      "(standard error 0.010)")
    assert verdict.startswith("only the true accuracy is within two standard errors")
    offset = truth.nearer_reading(0.80, (0.79, 0.90), (0.01, 0.01), names, offset=0.5)[1]
    assert offset.startswith("it is nearer to the true accuracy by 0.090, less than the 0.500")
    assert "cannot tell" in offset
    assert "single run" in truth.nearer_reading(0.80, (0.79, 0.90), (np.nan, np.nan), names)[1]
    assert "both are beyond" in truth.nearer_reading(0.5, (0.79, 0.90), (0.01, 0.01), names)[1]


def test_goal_sentence_gives_the_mean_and_the_runs_that_reach_it():
    records = [{"seed": s, "test_accuracy": v} for s, v in ((0, 0.967), (1, 0.955), (2, 0.973))]
    sentence = truth.goal_sentence(records, "test_accuracy", 0.96)
    assert "the mean 0.965 meets it; 2 of 3 runs reach it" in sentence and "0.955 (seed 1)" in sentence
    assert "misses it; 0 of 3" in truth.goal_sentence(records, "test_accuracy", 0.98)
    assert "no run has" in truth.goal_sentence([{"seed": 0}], "test_accuracy", 0.9)
    # a value just below the goal keeps the digits that show it (0.970 would read as reaching 0.97)
    near = [{"fold": 1, "k": 0.96971}, {"fold": 2, "k": 0.9703}, {"fold": 3, "k": 0.96969}]
    assert truth.goal_sentence(near, "k", 0.97, unit="fold") == (
        "Goal 0.97: the mean 0.9699 misses it; 1 of 3 runs reach it (0.9697 (fold 1), 0.970 (fold 2), 0.9697 (fold 3))."
    )
    assert "the mean just under 0.97 misses it" in truth.goal_sentence([{"seed": 0, "k": 0.97 - 1e-12}], "k", 0.97)


def test_reaches_paper_says_level_within_two_standard_errors_and_above_beyond():
    level = experiment.reaches_paper([0.967, 0.955, 0.973], 0.958, 0.2)
    assert level.verdict == "reaches the paper" and "level with it, not beyond" in level.sentence
    above = experiment.reaches_paper([0.97, 0.98, 0.99], 0.90, 0.2)
    assert above.verdict == "reaches the paper" and "above it by more than two standard errors" in above.sentence


def test_row_reaches_paper_adds_the_runs_that_learned_where_some_collapsed():
    stuck = record("A", 0, [[6, 0], [4, 0]])  # 0.6: one class for every image
    learned = [record("A", seed, [[5, 1], [0, 4]]) for seed in (1, 2)] + [record("A", 3, [[6, 0], [1, 3]])]
    said = truth.row_reaches_paper([stuck, *learned], "test_accuracy", 0.82, "Row A", "test accuracy")
    every, _, rest = said.partition(" (every run, 1 of 4 collapsed); the runs that learned only: ")
    assert every.startswith("Row A: test accuracy 0.825 over 4 runs") and "(+0.005)" in every
    assert rest.startswith("test accuracy 0.900 over 3 runs") and "(+0.080)" in rest and rest.endswith(".")
    alone = truth.row_reaches_paper(learned, "test_accuracy", 0.82, "Row A", "test accuracy")
    assert alone.startswith("Row A: test accuracy 0.900 over 3 runs") and "learned only" not in alone
