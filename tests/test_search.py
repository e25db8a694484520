"""A KerasTuner search judged against the paper's setting on validation (`medcnn.experiment.search`)."""

import numpy as np
import pandas as pd
import pytest

from medcnn.experiment import search

LABELS = np.r_[np.zeros(22, int), np.ones(22, int)]
PAPER = {"learning_rate": 1e-3, "batch_size": 16}


def test_search_verdict_uses_the_search_only_where_it_beats_the_default_and_says_when_within_noise():
    trials = pd.DataFrame({"score": [0.60, 0.66, 0.63]})
    best = {"learning_rate": 0.002, "batch_size": 8, "dropout": 0.5}
    won = search.search_verdict(trials, best, 0.62, LABELS, PAPER, "thesis")
    assert won["used"] == "search" and won["search"] == {"learning_rate": 0.002, "batch_size": 8}
    assert won["thesis"] == PAPER and won["thesis_score"] == 0.62 and "default_score" not in won
    assert won["within_noise"] and won["trials_range"] == [0.60, 0.66]
    assert won["standard_error"] == pytest.approx(0.082, abs=0.002)  # Hanley-McNeil at 0.66 on 22 + 22
    lost = search.search_verdict(trials, best, 0.95, LABELS, PAPER)
    assert lost["used"] == "default" and not lost["within_noise"] and lost["default"] == PAPER
    empty = search.search_verdict(pd.DataFrame(), {}, 0.7, LABELS, PAPER)
    assert empty["search"] == {} and empty["used"] == "default" and empty["trials_range"] == []


@pytest.mark.parametrize("labels", [np.r_[LABELS, 2], np.eye(2, dtype=int)[LABELS]])
def test_search_verdict_rejects_labels_that_are_not_binary(labels):
    trials = pd.DataFrame({"score": [0.60, 0.66]})
    with pytest.raises(ValueError, match=r"binary labels \(0/1, one per item\).*Received labels of shape"):
        search.search_verdict(trials, {"learning_rate": 0.002, "batch_size": 8}, 0.62, labels, PAPER)


def test_search_sentence_names_both_settings_the_noise_and_the_rows():
    trials = pd.DataFrame({"score": [0.60, 0.66, 0.63]})
    choice = {**search.search_verdict(trials, {"learning_rate": 0.002, "batch_size": 8}, 0.62, LABELS, PAPER,
                                      "thesis"), "rows": ["a row"]}  # fmt: skip
    said = search.search_sentence(choice, 3, "thesis", "the thesis'")
    assert said.startswith("The Bayesian search (3 trials on the training side, validation AUC) chose learning rate "
                           "0.002, batch size 8: validation AUC 0.660 against 0.620 for the thesis' learning rate")
    assert "within two standard errors" in said and "within that noise" in said
    assert said.endswith("'a row' uses its choice.")
    lost = search.search_sentence({**choice, "used": "thesis", "rows": ["a", "b"]}, 3, "thesis", "the thesis'")
    assert lost.endswith("'a', 'b' use the thesis' setting.")
    assert search.search_sentence({**choice, "search": {}}, 3, "thesis") == "The Bayesian search finished no trial."


def test_search_against_default_scores_the_default_setting_on_the_same_split(tmp_path):
    import keras

    from medcnn import tune

    rng = np.random.default_rng(0)
    x = rng.random((40, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[(x[:, 0] > 0.5).astype(int)]
    train, val = (x[:30], y[:30]), (x[30:], y[30:])

    def build(dropout):
        inputs = keras.Input((3,))
        return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Dropout(dropout)(inputs)))

    def metrics():
        return [keras.metrics.AUC(name="auc")]

    hypermodel = tune.ClassifierHyperModel(build, batch_sizes=(8,), dropout=(0.0, 0.0), head_units=(),
                                           loss="categorical_crossentropy", metrics=metrics)  # fmt: skip

    def paper_model():
        from medcnn.train import compile_model

        return compile_model(build(0.0), "adam", 1e-3, loss="categorical_crossentropy", metrics=metrics())

    table, best, score = search.search_against_default(hypermodel, train, val, paper_model, 8, tmp_path, "val_auc",
                                                       trials=1, epochs=2, verbose=0)  # fmt: skip
    assert len(table) == 1 and set(best) >= {"learning_rate", "batch_size"} and 0.0 <= score <= 1.0
    again = search.search_against_default(hypermodel, train, val, paper_model, 8, tmp_path, "val_auc", trials=1,
                                          epochs=2, verbose=0, overwrite=False)  # resumed: the trial is not rerun
    assert again[1] == best and again[2] == pytest.approx(score)


def test_search_head_against_default_searches_the_spaces_rates_and_batches_on_the_split(tmp_path):
    import keras

    rng = np.random.default_rng(0)
    x = rng.random((40, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[(x[:, 0] > 0.5).astype(int)]

    def head(dropout):
        inputs = keras.Input((3,))
        return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Dropout(dropout)(inputs)))

    def paper_model():
        from medcnn.train import compile_model

        return compile_model(head(0.0), "adam", 1e-3, loss="categorical_crossentropy", metrics=["accuracy"])

    space = {"objective": "val_accuracy", "learning_rate": (1e-3, 1e-2), "batch_sizes": (8,)}
    split = {"train": np.arange(30), "val": np.arange(30, 40)}
    table, best, score = search.search_head_against_default(
        head, x, y, split, space, paper_model, 8, tmp_path, trials=1, epochs=2, verbose=0, dropout=(0.0, 0.0),
        head_units=(), loss="categorical_crossentropy",
    )  # fmt: skip
    assert len(table) == 1 and best["batch_size"] == 8 and 1e-3 <= best["learning_rate"] <= 1e-2
    assert 0.0 <= score <= 1.0


def test_search_split_trains_on_the_train_rows_and_scores_the_val_rows(tmp_path):
    import keras

    from medcnn import tune

    rng = np.random.default_rng(0)
    x = rng.random((40, 3)).astype("float32")
    labels = (x[:, 0] > 0.5).astype(int)

    def build(dropout):
        inputs = keras.Input((3,))
        return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Dropout(dropout)(inputs)))

    hypermodel = tune.ClassifierHyperModel(build, batch_sizes=(8,), dropout=(0.0, 0.0), head_units=())
    split = {"train": np.arange(30), "val": np.arange(30, 40), "test": np.arange(0)}
    table, best = search.search_split(hypermodel, x, labels, split, tmp_path, "val_accuracy", 1, 1, verbose=0)
    assert len(table) == 1 and set(best) >= {"learning_rate", "batch_size"}
