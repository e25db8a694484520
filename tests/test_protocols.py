"""Rows under several protocols: the table beside the paper, the protocol effect, recall per group, intervals."""

import numpy as np
import pandas as pd

from medcnn.experiment import protocols


def _record(row, protocol, seed, test_auc, collapsed=False):
    val = [[22, 0], [22, 0]] if collapsed else [[18, 4], [6, 16]]
    return {"configuration": f"{row} | {protocol}", "group": protocol, "seed": seed, "val_roc_auc": 0.9,
            "test_roc_auc": test_auc, "test_accuracy": 0.5 if collapsed else 0.75, "val_confusion": val,
            "test_confusion": [[10, 0], [10, 0]] if collapsed else [[8, 2], [3, 7]],
            "settings": {"row": row}}  # fmt: skip


def test_row_records_and_summary_drop_the_protocol():
    records = [_record("a", "honest", seed, 0.7 + seed / 100) for seed in range(3)]
    records.append(_record("a", "published", 0, 0.9))
    assert len(protocols.row_records(records, "a", "honest")) == 3 and protocols.row_of("a | honest") == "a"
    summary = protocols.protocol_summary(records, "honest", ["test_roc_auc", "test_accuracy"])
    assert list(summary.index) == ["a"] and summary.loc["a", "test_roc_auc_mean"] == 0.71


def test_protocols_table_puts_the_paper_beside_each_protocol_with_references():
    records = [_record("a", "honest", s, 0.7 + s / 100) for s in range(3)] + [_record("b", "honest", 0, 0.5, True)]
    paper = pd.DataFrame({"AUC": [0.9, np.nan]}, index=pd.Index(["a", "b"], name="row"))
    summaries = {"honest": protocols.protocol_summary(records, "honest", ["test_roc_auc", "test_accuracy"])}
    frame = protocols.protocols_table(paper, summaries, {"AUC": "test_roc_auc"}, {"b": "note"})
    assert frame.loc["a", "AUC: paper"] == "0.90" and frame.loc["a", "AUC: honest"] == "0.71 ± 0.01"
    assert frame.loc["b", "AUC: honest"] == "collapsed" and frame.loc["b", "note"] == "note"
    assert "reference: chance" in frame.index and frame.index.name == "row"
    thesis = protocols.protocols_table(paper, summaries, {"AUC": "test_roc_auc"}, paper_label="thesis")
    assert list(thesis.columns[:2]) == ["note", "AUC: thesis"] and "AUC: paper" not in thesis


def test_summaries_and_intervals_leave_out_records_without_a_group():
    ungrouped = {key: value for key, value in _record("a", "honest", 1, 0.8).items() if key != "group"}
    records = [_record("a", "honest", 0, 0.7), ungrouped]
    summary = protocols.protocol_summary(records, "honest", ["test_roc_auc"])
    assert summary.loc["a", "test_roc_auc_mean"] == 0.7
    labels = np.r_[np.zeros(4, int), np.ones(4, int)]
    records = [{**record, "test_indices": list(range(8)), "test_probabilities": [[0.6, 0.4]] * 4 + [[0.3, 0.7]] * 4}
               for record in records]  # fmt: skip
    intervals = protocols.grouped_intervals(records, "honest", lambda r: (labels, np.arange(8) % 4, {}), 20)
    assert intervals["seed"].tolist() == [0]


def test_protocol_effect_pairs_seeds_and_names_rows_without_learned_runs():
    records = []
    for seed, noise in enumerate((0.0, 0.04, -0.04)):
        records += [_record("a", "published", seed, 0.95 + noise / 10), _record("a", "honest", seed, 0.75 - noise / 10),
                    _record("b", "published", seed, 0.5, True), _record("b", "honest", seed, 0.7)]  # fmt: skip
    text = protocols.protocol_effect(records, ["a", "b", "c"])
    assert text.startswith("Leakage effect, test AUC published minus honest") and "'a' +0.200" in text
    assert "for 1 of 1 row(s) ('a')" in text and "so not compared: 'b'" in text
    assert protocols.compare_rows_learned(records, "a", "c", "honest") is None


def test_called_positive_table_and_grouped_intervals_read_test_predictions():
    labels = np.r_[np.zeros(8, int), np.ones(8, int)]
    scores = np.r_[np.linspace(0.1, 0.4, 8), [0.3, 0.45, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]]
    record = {**_record("a", "honest", 0, 0.9), "test_indices": list(range(16)),
              "test_probabilities": np.stack([1 - scores, scores], axis=1).tolist()}  # fmt: skip
    kinds = np.array(["normal"] * 8 + ["x"] * 4 + ["y"] * 4)
    table = protocols.called_positive_table([record], ["a"], lambda r: kinds[r["test_indices"]], "honest",
                                            first=["normal"])  # fmt: skip
    assert table["a"].tolist() == ["0/8", "2/4", "4/4"]
    groups = np.array([f"m{i % 4}" for i in range(16)])
    intervals = protocols.grouped_intervals([record], "honest", lambda r: (labels, groups, {"cases": 1}), 50,
                                            names=("metaphases", "karyograms"))  # fmt: skip
    row = intervals.iloc[0]
    assert list(intervals) == ["row", "seed", "test AUC", "low", "high", "metaphases", "cases", "karyograms"]
    assert (row["metaphases"], row["karyograms"]) == (4, 16) and row["low"] <= row["test AUC"] <= row["high"]


def test_compare_pairs_names_the_pairs_without_learned_runs():
    records = [_record("a", "honest", s, 0.8 + s / 100) for s in range(3)]
    records += [_record("b", "honest", s, 0.6 + s / 100) for s in range(3)]
    records += [_record("c", "honest", s, 0.5, collapsed=True) for s in range(3)]
    said = protocols.compare_pairs(records, [("a", "b"), ("a", "c"), ("a", "missing")], "honest")
    assert said[0].startswith("Honest protocol: ") and "'a'" in said[0] and "'b'" in said[0]
    assert said[-1] == "Honest protocol, not compared (a row without a run that learned): 'a' vs 'c'."
    assert len(said) == 2


def test_compare_pairs_keeps_a_pair_compared_on_one_run_a_side():
    records = [_record("no a", "honest", 0, 0.8), _record("no b", "honest", 0, 0.6)]
    records += [_record("no c", "honest", 0, 0.5, collapsed=True)]
    said = protocols.compare_pairs(records, [("no a", "no b"), ("no a", "no c")], "honest")
    assert said[0].startswith("Honest protocol: 'no a' vs 'no b' on test AUC: +0.200 (1 vs 1 runs)")
    assert said[1] == "Honest protocol, not compared (a row without a run that learned): 'no a' vs 'no c'."
    assert len(said) == 2


def test_best_run_sentence_adds_the_interval_of_its_row_and_seed():
    best = {"configuration": "a | honest", "seed": 1, "test_accuracy": 0.8, "test_balanced_accuracy": 0.75,
            "test_roc_auc": 0.85}  # fmt: skip
    intervals = pd.DataFrame([{"row": "a", "seed": 0, "low": 0.1, "high": 0.2, "metaphases": 9, "cases": 3},
                              {"row": "a", "seed": 1, "low": 0.7, "high": 0.9, "metaphases": 12, "cases": 4}])
    said = protocols.best_run_sentence(best, intervals, counts=("metaphases", "cases"), unseen="unseen cases")
    assert said == ("Best run on the honest validation AUC: 'a | honest' (seed 1): test accuracy 0.800, balanced "
                    "0.750, AUC 0.850; 95 % interval over its 12 test metaphases (4 cases): 0.700-0.900, on unseen "
                    "cases; this is the exported model.")  # fmt: skip
    assert "interval" not in protocols.best_run_sentence(best, pd.DataFrame())


def test_protocols_readme_section_shows_every_protocols_table_before_the_findings(monkeypatch):
    from medcnn.experiment import outputs

    seen = {}

    def intro(payload, text):
        seen["counts"] = payload["run"]["data"]["counts"]
        return f"intro {text}"

    monkeypatch.setattr(outputs, "readme_intro", intro)
    monkeypatch.setattr(outputs, "readme_table", lambda payload, table, headers, row_notes=None: f"[{table}]")
    findings = ["What the run shows: x", "", "- What the run shows"]  # the heading's words again: no split on them
    monkeypatch.setattr(outputs, "readme_findings", lambda payload: findings)
    payload = {"run": {"data": {"counts": {"train": {"n": 2, "y": 1}, "test": {"n": 1}}}}}
    tables = {"published": "T (p)", "honest": "T (h)"}
    text = protocols.protocols_readme_section(payload, tables, {}, "text", ["n", "y"])
    assert text == ("intro text\n\n[T (p)]\n\nHonest protocol:\n\n[T (h)]\n\nWhat the run shows: x\n\n"
                    "- What the run shows")  # fmt: skip
    assert seen["counts"] == {"n": 3, "y": 1}


def test_protocols_readme_section_with_one_protocol_is_the_plain_readme_section(monkeypatch):
    from medcnn.experiment import outputs

    monkeypatch.setattr(outputs, "readme_table", lambda payload, table, headers, row_notes=None: f"[{table}]")
    payload = {"run": {"scale": "smoke", "hardware": {"cpu": "a CPU"}, "data": {"counts": {"n": 3, "y": 1}},
                       "training_s_all_runs": 60, "runs": 2, "trained_now": 2, "reused": 0, "seeds": [0]},
               "seed_varies": ["split"], "findings": ["A sentence."]}  # fmt: skip
    plain = outputs.readme_section(payload, "T", {}, "text")
    assert protocols.protocols_readme_section(payload, {"published": "T"}, {}, "text", ["n", "y"]) == plain
    assert plain.startswith("Smoke scale on ") and plain.endswith("What the run shows (printed by the notebook from "
                                                                   "the same results):\n\n- A sentence.")  # fmt: skip


def test_shown_rows_keep_the_rows_that_ran_or_carry_a_note_in_the_papers_order():
    paper = pd.DataFrame({"AUC": [0.9, 0.8, 0.7]}, index=["a", "b", "c"])
    records = [_record("c", "honest", 0, 0.7), _record("a", "published", 0, 0.8)]
    assert protocols.ran_rows(records) == {"a", "c"}
    assert list(protocols.shown_rows(paper, records).index) == ["a", "c"]
    assert list(protocols.shown_rows(paper, records, {"b": "needs ImageNet weights"}).index) == ["a", "b", "c"]
