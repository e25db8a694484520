"""MC dropout on the runs that learned: which rows, one run's entry, and the report of the entries."""

import keras
import numpy as np
import pandas as pd

from medcnn import experiment
from medcnn.experiment import referral


def _record(row, backbone, seed, val_auc, collapsed=False):
    return {"configuration": row, "group": "g", "seed": seed, "val_roc_auc": val_auc,
            "val_confusion": [[22, 0], [22, 0]] if collapsed else [[18, 4], [6, 16]],
            "test_confusion": [[8, 2], [3, 7]], "settings": {"row": row, "backbone": backbone}}  # fmt: skip


def test_best_learned_rows_take_each_backbones_best_row_with_its_learned_runs():
    records = [_record("a", "cnn", 0, 0.7), _record("b", "cnn", 0, 0.8), _record("b", "cnn", 1, 0.5),
               _record("c", "other", 0, 0.6, collapsed=True)]  # fmt: skip
    picks = referral.best_learned_rows(records, {"cnn": "CNN", "other": "Other"})
    assert list(picks) == ["CNN"] and picks["CNN"][0] == "b" and [r["seed"] for r in picks["CNN"][1]] == [0]


def test_best_learned_rows_read_the_row_from_the_label_without_a_recorded_row():
    records = [{**_record(f"{row} | honest", "cnn", seed, auc), "settings": {"backbone": "cnn"}}
               for row, seed, auc in (("a", 0, 0.7), ("b", 0, 0.8), ("b", 1, 0.75))]  # fmt: skip
    picks = referral.best_learned_rows(records, {"cnn": "CNN"})
    assert picks["CNN"][0] == "b" and [r["seed"] for r in picks["CNN"][1]] == [0, 1]


def test_mc_dropout_entry_reports_the_test_side_and_its_wrong_cases():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    # whatever dropout drops, every pass gives softmax([1, 0]): "no" (0.731), so each "yes" item is voted wrong
    bias = keras.initializers.Constant([1.0, 0.0])
    last = keras.layers.Dense(2, "softmax", kernel_initializer="zeros", bias_initializer=bias)
    model = keras.Model(inputs, last(keras.layers.Dropout(0.5)(keras.layers.Dense(8)(inputs))))
    x, labels = np.random.default_rng(0).random((12, 4)).astype("float32"), np.tile([0, 1], 6)
    run = experiment.Run("r", 3, lambda: model, {"train": [0, 1], "test": [4, 5, 6, 7]}, 1, 2, inputs=x)
    table = pd.DataFrame({"kind": ["n", "k"] * 6})
    entry = referral.mc_dropout_entry(run, model, labels, 5, 0.8, ["no", "yes"], table, "kind", ["n"], ("kind",))
    assert entry["seed"] == 3 and entry["passes"].shape == (5, 4, 2) and entry["index"].tolist() == [4, 5, 6, 7]
    assert entry["summary"]["images"] == 4 and entry["summary"]["accuracy_all"] == 0.5
    wrong = entry["wrong"]
    assert wrong["image"].tolist() == [5, 7] and wrong["kind"].tolist() == ["k", "k"]
    assert wrong["true"].tolist() == ["yes", "yes"] and wrong["predicted"].tolist() == ["no", "no"]
    np.testing.assert_allclose(wrong["mean_softmax"], 1 / (1 + np.e), rtol=1e-5)  # of "yes", the positive class
    assert list(entry["groups"].index) == ["n", "k"] and entry["groups"]["images"].tolist() == [2, 2]
    assert entry["groups"]["called positive"].tolist() == [0, 0]
    payload = referral.entries_payload([{**entry, "row": "r"}], ("row", "seed"), "kind_recall")
    assert payload[0]["row"] == "r" and payload[0]["passes"] == 5 and len(payload[0]["kind_recall"]) == 2
    table = referral.entries_table([{**entry, "row": "r", "model": "m"}], ("model", "seed"))
    assert table.index.names == ["model", "seed"] and table.loc[("m", 3), "row"] == "r"
    assert referral.entries_table([]).empty


def test_referral_statement_pairs_the_seeds():
    entries = [{"seed": s, "summary": {"accuracy_retained": 0.8 + d, "accuracy_all": 0.7 + d / 2}}
               for s, d in enumerate((0.0, 0.02, 0.04))]  # fmt: skip
    said = referral.referral_statement(entries, "cells")
    assert said.startswith("The cells it keeps is above all its test cells") and "paired over 3" in said


def _summary(seed, d):
    return {"seed": seed, "summary": {"accuracy_retained": 0.8 + d, "accuracy_all": 0.7 + d / 2, "referred": 3,
                                      "images": 20, "ece": 0.1, "passes": 10}}  # fmt: skip


def test_mc_dropout_entries_run_each_groups_chosen_runs_that_learned():
    chosen = [("g", "b", 0, 0.8), ("g", "b", 1, 0.8), ("g", "a", 0, 0.6), ("h", "a", 0, 0.9), ("h", "a", 1, 0.85),
              ("h", "b", 0, 0.7), ("h", "c", 0, 0.95, True)]  # h's best learned row is "a"; "c" collapsed
    records = [{**_record(f"{row} | {group}", "cnn", seed, auc, *collapsed), "group": group,
                "settings": {"row": row, "backbone": "cnn"}} for group, row, seed, auc, *collapsed in chosen]
    runs = [experiment.Run(r["configuration"], r["seed"], None, {"test": [0]}, 1, 1) for r in records]
    entries = referral.mc_dropout_entries(records, runs, {"cnn": "CNN"}, ("g", "h"),
                                          lambda run: {"seed": run.seed, "label": run.label})  # fmt: skip
    assert [(e["protocol"], e["model"], e["row"], e["seed"], e["label"]) for e in entries] == [
        ("g", "CNN", "b", 0, "b | g"), ("g", "CNN", "b", 1, "b | g"), ("h", "CNN", "a", 0, "a | h"),
        ("h", "CNN", "a", 1, "a | h")]  # fmt: skip


def test_mc_dropout_sentences_give_the_numbers_seed_by_seed_and_say_when_none_learned():
    entries = [{"protocol": "honest", "model": "CNN", "row": "b", **_summary(s, d)} for s, d in ((0, 0.0), (1, 0.02))]
    said = referral.mc_dropout_sentences(entries, ("published", "honest"), 0.8, "cells")
    assert said[0] == ("MC dropout, published protocol: no model learned (validation AUC clearly above 0.5), so none "
                       "was run.")  # fmt: skip
    assert said[1].startswith("MC dropout, honest, CNN ('b', 10 passes, referral below 80%): seed 0: 3 of 20 "
                              "referred, accuracy 0.700 on all, 0.800 on the rest, ECE 0.100; seed 1:")  # fmt: skip
    assert "The cells it keeps" in said[1] and len(said) == 2
