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


def test_mc_dropout_entry_reports_the_test_side_and_its_wrong_cases():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Dropout(0.5)(keras.layers.Dense(8)(inputs)))
    model = keras.Model(inputs, outputs)
    x, labels = np.random.default_rng(0).random((12, 4)).astype("float32"), np.tile([0, 1], 6)
    run = experiment.Run("r", 3, lambda: model, {"train": [0, 1], "test": [4, 5, 6, 7]}, 1, 2, inputs=x)
    table = pd.DataFrame({"kind": ["n", "k"] * 6})
    entry = referral.mc_dropout_entry(run, model, labels, 5, 0.8, ["no", "yes"], table, "kind", ["n"], ("kind",))
    assert entry["seed"] == 3 and entry["passes"].shape == (5, 4, 2) and entry["index"].tolist() == [4, 5, 6, 7]
    assert entry["summary"]["images"] == 4 and set(entry["wrong"]["image"]) <= {4, 5, 6, 7}
    assert list(entry["groups"].index) == ["n", "k"] and entry["groups"]["images"].tolist() == [2, 2]
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
    records = [{**_record("b", "cnn", seed, 0.8), "group": group} for group in ("g", "h") for seed in (0, 1)]
    records.append({**_record("a", "cnn", 0, 0.6), "group": "g"})
    runs = [experiment.Run(r["configuration"], r["seed"], None, {"test": [0]}, 1, 1) for r in records[:2]]
    entries = referral.mc_dropout_entries(records[:2] + records[4:], runs, {"cnn": "CNN"}, ("g", "h"),
                                          lambda run: {"seed": run.seed, "label": run.label})  # fmt: skip
    assert [(e["protocol"], e["model"], e["row"], e["seed"]) for e in entries] == [("g", "CNN", "b", 0),
                                                                                 ("g", "CNN", "b", 1)]  # fmt: skip


def test_mc_dropout_sentences_give_the_numbers_seed_by_seed_and_say_when_none_learned():
    entries = [{"protocol": "honest", "model": "CNN", "row": "b", **_summary(s, d)} for s, d in ((0, 0.0), (1, 0.02))]
    said = referral.mc_dropout_sentences(entries, ("published", "honest"), 0.8, "cells")
    assert said[0] == ("MC dropout, published protocol: no model learned (validation AUC clearly above 0.5), so none "
                       "was run.")  # fmt: skip
    assert said[1].startswith("MC dropout, honest, CNN ('b', 10 passes, referral below 80%): seed 0: 3 of 20 "
                              "referred, accuracy 0.700 on all, 0.800 on the rest, ECE 0.100; seed 1:")  # fmt: skip
    assert "The cells it keeps" in said[1] and len(said) == 2
