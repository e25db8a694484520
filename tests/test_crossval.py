"""medcnn.experiment.crossval, derived, records and figures: rows of cross-validated runs, compared fold by fold,
pooled and read per group; ensembles and CNN features + SVM per test side; what records get after training."""

import numpy as np
import pytest

from medcnn import experiment
from medcnn.experiment import crossval, derived, figures, records

K = 4
NAMES = ["a", "b", "c", "d"]


def _record(row, fold, predicted, truth, seed=0, val=0.5, **extra):
    """A run record of `row` on one fold: test indices 10*fold.., one-hot-ish probabilities of `predicted`."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    probabilities = np.full((len(predicted), K), 0.1 / (K - 1))
    probabilities[np.arange(len(predicted)), predicted] = 0.9
    confusion = np.zeros((K, K), int)
    np.add.at(confusion, (truth, predicted), 1)
    return {
        "configuration": f"{row} | fold {fold}", "row": row, "fold": fold, "seed": seed, "group": "blocks",
        "val_accuracy": val, "test_accuracy": float(np.mean(predicted == truth)), "test_confusion": confusion.tolist(),
        "test_indices": list(range(10 * fold, 10 * fold + len(truth))), "test_probabilities": probabilities.tolist(),
        "test_predict_s": 0.5, "train_images_per_s": 100.0, "parameters": 10, "sizes": {"test": len(truth)}, **extra,
    }  # fmt: skip


TRUTH = np.tile(np.arange(K), 2)  # 8 items per fold, 2 per class: the majority class is a quarter


def _row(row, right_per_fold, **extra):
    """One record per fold; fold k gets `right_per_fold[k]` of its 8 items right (the rest predicted as the next
    class)."""
    made = []
    for fold, right in enumerate(right_per_fold, start=1):
        predicted = np.where(np.arange(8) < right, TRUTH, (TRUTH + 1) % K)
        made.append(_record(row, fold, predicted, TRUTH, **extra))
    return made


def test_compare_folds_pairs_by_fold_where_the_folds_differ_more_than_the_rows():
    # folds differ a lot (hard and easy cases), B is one item better in every fold: only pairing sees it
    a, b = _row("A", [3, 7, 4, 8, 5]), _row("B", [4, 8, 5, 8, 6])
    verdict = crossval.compare_folds(b, a, "test_accuracy", "B", "A", "test accuracy")
    assert verdict.paired and verdict.verdict == "above" and verdict.difference == pytest.approx(0.1)
    assert "paired over 5 folds" in verdict.sentence
    unpaired = crossval.compare_folds(b, _row("A", [3, 7, 4, 8, 5], seed=1), "test_accuracy", "B", "A", "accuracy")
    assert not unpaired.paired and unpaired.verdict == "within noise"  # other test sides: only means compare
    single = crossval.compare_folds(b[:1], a[:1], "test_accuracy", "B", "A", "accuracy")
    assert single.verdict == "not judged"
    with pytest.raises(ValueError, match="share a test side"):
        crossval.fold_values(a + a, "test_accuracy")


def test_pooled_scores_count_every_test_item_once():
    rows = _row("A", [2, 8])  # 10 of 16 right
    scores = crossval.pooled_scores(rows + [{"row": "A", "fold": 3}], weighted=("test_accuracy",))
    assert scores["accuracy"] == pytest.approx(10 / 16) and scores["items"] == 16 and scores["runs"] == 2
    assert scores["test_accuracy"] == pytest.approx(10 / 16)  # weighted by test size
    assert scores["balanced_accuracy"] == pytest.approx(10 / 16)  # balanced classes
    table = crossval.pooled_table(rows + _row("B", [8, 8]))
    assert list(table.index) == ["A", "B"] and table.loc["B", "accuracy"] == 1.0
    with pytest.raises(ValueError, match="nothing to pool"):
        crossval.pooled_scores([{"row": "A"}])


def test_group_accuracy_reads_each_case_from_the_fold_that_tested_it():
    labels = np.tile(TRUTH, 2)
    groups = np.repeat(["case1", "case2"], 8)  # fold 1 tests items 10..17? no: indices 10*fold.. so pad below
    labels = np.concatenate([np.zeros(10, int), TRUTH, np.zeros(2, int), TRUTH])
    groups = np.array(["x"] * 10 + ["case1"] * 8 + ["x"] * 2 + ["case2"] * 8)
    table = crossval.group_accuracy(_row("A", [2, 8]) + _row("B", [8, 4]), labels, groups, rows=["B", "A"])
    assert list(table.columns) == ["B", "A"] and list(table.index) == ["case1", "case2"]
    assert table.loc["case1", "A"] == pytest.approx(0.25) and table.loc["case2", "B"] == pytest.approx(0.5)
    svm = {"row": "S", "test_indices": list(range(20, 28)), "test_predicted": TRUTH.tolist()}
    assert crossval.group_accuracy([svm], labels, groups).loc["case2", "S"] == 1.0


def test_gains_over_and_beyond_noise():
    rows = _row("base", [3, 7, 4, 8, 5], val=0.5) + _row("good", [4, 8, 5, 8, 6]) + _row("same", [3, 7, 4, 8, 5])
    for record in rows:
        record["val_accuracy"] = {"base": 0.5, "good": 0.7, "same": 0.4}[record["row"]]
    assert crossval.gains_over(rows, ["same", "good", "absent"], "base") == pytest.approx({"good": 0.2, "same": -0.1})
    verdicts, sentences = crossval.beyond_noise(rows, ["good", "same"], "base", "test_accuracy", "test accuracy")
    assert verdicts["good"].verdict == "above" and verdicts["same"].verdict != "above"
    assert sentences[0].startswith("Rows above 'base' on test accuracy") and "'good' (+0.100" in sentences[0]
    assert sentences[1].endswith("paired by fold: none.") and len(sentences) == 2
    _, one_fold = crossval.beyond_noise(rows[:1] + rows[5:6], ["good"], "base", "test_accuracy", "test accuracy")
    assert one_fold[-1] == "Not judged against 'base' (fewer than two folds a side, or a standard error of 0): 'good'."


def test_fold_table_shows_spread_pooled_scores_references_and_extra_rows():
    every = _row("A", [4, 8], epochs=5, best_epoch=3) + _row("B", [0, 0], epochs=5, best_epoch=1)
    for record in every[2:]:  # B predicts one class for every item: collapsed
        record["test_confusion"] = np.zeros((K, K), int).tolist()
        record["test_confusion"][0][0], record["test_confusion"][1][0] = 2, 6
    summary = experiment.summarise(every, ["test_accuracy", "epochs", "best_epoch", "parameters"], by="row")
    pooled = crossval.pooled_table(every)
    shown = crossval.fold_table(summary, pooled, {"accuracy": "test_accuracy", "parameters": "parameters"},
                                ["A", "B", "C"], counts=("parameters",), pooled_metrics={"accuracy": "accuracy"},
                                extra_rows={"published": {"accuracy": "0.96"}})  # fmt: skip
    assert list(shown.index) == ["A", "B", "reference: majority class", "reference: chance", "published"]
    assert shown.loc["A", "accuracy"] == "0.750 ± 0.354" and shown.loc["A", "pooled accuracy"] == "0.750"
    assert shown.loc["B", "accuracy"] == shown.loc["B", "pooled accuracy"] == "collapsed"
    assert shown.loc["B", "collapsed"] == "2 of 2"
    assert shown.loc["A", "best epoch"] == "3" and shown.loc["A", "parameters"] == "10"
    assert shown.loc["reference: chance", "accuracy"] == "0.250" and shown.loc["published", "accuracy"] == "0.96"


def test_run_fold_trains_each_configuration_on_its_inputs_and_labels_the_records(tmp_path):
    import keras

    from medcnn.experiment import Run

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 12)
    inputs = {name: rng.random((24, size, size, 1)).astype("float32") for name, size in (("small", 4), ("large", 6))}
    split = {"train": np.arange(0, 24, 2), "val": np.arange(1, 12, 2), "test": np.arange(13, 24, 2)}

    class Config:
        def __init__(self, label, inputs):
            self.label, self.inputs = label, inputs

    def build(shape):
        model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(2, "softmax")])
        model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
        return model

    def make_runs(configurations, x):
        return [Run(f"{c.label} | fold 2", 0, lambda: build(x.shape[1:]), split, 2, 8,
                    settings={"label": c.label, "fold": 2, "protocol": "grouped"},
                    callbacks=stopping if c.label != "two" else None) for c in configurations]  # fmt: skip

    def stopping():
        return [keras.callbacks.EarlyStopping(patience=5)]

    configurations = [Config("one", "small"), Config("two", "large"), Config("three", "small")]
    made, runs = crossval.run_fold(configurations, inputs, labels, ["n", "p"], make_runs,
                                   experiment.RunCache(tmp_path), "inputs", verbose=0, log=lambda *a: None)  # fmt: skip
    assert [r["row"] for r in made] == ["one", "three", "two"]  # grouped by inputs, first-seen order
    assert all(r["fold"] == 2 and r["protocol"] == "grouped" for r in made)
    assert [r.get("epochs_cap") for r in made] == [2, 2, None]  # a fixed budget (no callbacks) has no cap
    assert [run.label for run in runs] == ["one | fold 2", "three | fold 2", "two | fold 2"]


# ----------------------------------------------------------------------------------------------------------------
# derived rows


def test_soft_vote_takes_each_folds_best_members_by_validation():
    labels = np.zeros(40, int)
    labels[10:18], labels[20:28] = TRUTH, TRUTH
    sure, weak, bad = _row("sure", [8, 4], val=0.9), _row("weak", [6, 2], val=0.6), _row("bad", [0, 8], val=0.1)
    bad[1]["val_accuracy"] = 0.95  # fold 2: "bad" is best on validation there
    made = derived.soft_vote_records(sure + weak + bad, labels, NAMES, "vote", size=2)
    assert [r["members"] for r in made] == [["sure", "weak"], ["bad", "sure"]]
    mean = (np.asarray(sure[0]["test_probabilities"]) + np.asarray(weak[0]["test_probabilities"])) / 2
    assert [r["fold"] for r in made] == [1, 2] and made[0]["row"] == "vote"
    assert made[0]["test_accuracy"] == pytest.approx(np.mean(mean.argmax(axis=1) == TRUTH))
    np.testing.assert_allclose(made[0]["test_probabilities"], np.round(mean, 4))
    assert made[0]["parameters"] == 20 and made[0]["train_images_per_s"] == pytest.approx(50.0)
    assert "train_s" not in made[0]  # not counted as a trained run
    assert derived.soft_vote_records(sure, labels, NAMES, "vote", size=2) == []  # one candidate per fold
    weak[0]["test_indices"] = list(range(30, 38))
    with pytest.raises(ValueError, match="tested on different items"):
        derived.soft_vote_records(sure + weak, labels, NAMES, "vote", size=2)
    assert [r["row"] for r in derived.best_per_unit(sure + weak + bad)] == ["sure", "bad"]


def test_cnn_svm_records_fit_on_the_penultimate_features_of_the_trained_run(tmp_path):
    import keras

    from medcnn.experiment import Run

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 30)
    x = (rng.normal(size=(60, 2, 3, 1)) + labels[:, None, None, None] * 3.0).astype("float32")
    split = {"train": np.arange(0, 60, 2), "val": np.arange(1, 30, 2), "test": np.arange(31, 60, 2)}

    def build():
        inputs = keras.Input((2, 3, 1))
        hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(inputs))
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probabilities")(hidden))
        model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
        return model

    assert derived.penultimate(build()).output_shape == (None, 8)
    run = Run("net | fold 1", 0, build, split, 3, 16)
    cache = experiment.RunCache(tmp_path)
    (record,) = experiment.run_all([run], x, labels, ["n", "p"], cache, verbose=0, log=lambda *a: None)
    record.update(row="net", fold=1, parameters=42)
    (made,) = derived.cnn_svm_records([(run, record)], lambda r: x, labels, ["n", "p"], cache,
                                      {"pca_components": 4, "C": 1.0}, "svm", log=lambda *a: None)  # fmt: skip
    assert made["row"] == "svm" and made["features_of"] == "net" and made["fold"] == 1 and made["parameters"] == 42
    assert made["test_indices"] == split["test"].tolist() and len(made["test_predicted"]) == len(split["test"])
    assert made["test_accuracy"] >= 0.8  # the classes are three units apart (chance 0.5)


# ----------------------------------------------------------------------------------------------------------------
# records


def test_complete_adds_rates_parameters_and_how_the_run_ended():
    stopped = {"configuration": "r | fold 1", "row": "r", "epochs": 6, "epochs_cap": 20, "test_predict_s": 0.5,
               "sizes": {"test": 50}, "history": {"val_loss": [2.0, 1.0, 0.5, 0.7, 0.8, 0.9]}}  # fmt: skip
    capped = {"configuration": "s", "epochs": 3, "epochs_cap": 3, "history": {"val_loss": [2.0, 1.5, 1.0]}}
    records.complete([stopped, capped, {"configuration": "derived"}], {"r": 123})
    assert stopped["parameters"] == 123 and stopped["test_images_per_s"] == 100.0
    assert (stopped["best_epoch"], stopped["stopped_early"]) == (3, True)
    assert (capped["best_epoch"], capped["stopped_early"]) == (3, False)
    summary = experiment.summarise([stopped, capped], ["best_epoch"], by="configuration")
    sentence = records.convergence_statement(summary, [stopped, capped])
    assert "'r | fold 1' 3, 's' 3" in sentence and "(compared before convergence): 's'" in sentence
    assert records.convergence_statement(summary, [stopped]).endswith("rows are compared at convergence.")
    # a run without a cap trained a fixed budget (no early stopping): never counted as converged
    fixed = {"configuration": "t", "epochs": 3, "history": {"val_loss": [2.0, 1.0, 1.5]}}
    records.complete([fixed])
    assert "stopped_early" not in fixed and fixed["best_epoch"] == 2
    sentence = records.convergence_statement(summary, [stopped, fixed])
    assert sentence.endswith("Rows trained for a fixed number of epochs (no early stopping): 't'.")
    assert records.convergence_statement(summary, [fixed]).endswith("every run trained its whole budget.")


def test_collapse_cause_tells_inference_statistics_from_a_failed_start():
    confusion = np.zeros((K, K), int)
    confusion[:, 0] = 5  # one class for everything
    bn = {"configuration": "bn", "fold": 2, "seed": 0, "test_confusion": confusion.tolist(),
          "history": {"accuracy": [0.3, 0.8], "val_accuracy": [0.25, 0.26]}}  # fmt: skip
    dead = {**bn, "configuration": "dead", "history": {"accuracy": [0.26, 0.27], "val_accuracy": [0.25, 0.25]}}
    assert records.collapse_cause(bn, K).startswith("inference-mode statistics (training accuracy 0.80")
    assert records.collapse_cause(dead, K).startswith("never left chance in training")
    sentence = records.collapse_statement([bn, dead, {**bn, "test_confusion": np.eye(K, dtype=int).tolist()}], K)
    assert sentence.startswith("2 of 3 runs collapsed") and "'bn' fold 2: inference-mode" in sentence
    assert records.collapse_statement([], 24).startswith("No run collapsed (0 runs")


def test_early_stopping_and_parameter_counts():
    import keras

    from medcnn.experiment import Run

    (stopping,) = records.early_stopping(4, 2)()
    assert (stopping.patience, stopping.start_from_epoch, stopping.restore_best_weights) == (4, 2, True)
    assert records.early_stopping(None) is None

    def build():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    runs = [Run(f"r | fold {k}", 0, build, {"train": [0]}, 1, 1, settings={"label": "r"}) for k in (1, 2)]
    assert records.parameter_counts(runs, lambda run: run.settings["label"]) == {"r": 8}


def test_plot_variants_one_row_per_variant(tmp_path):
    labels = np.array([0, 1, 1, 2])
    stored = [np.full((5, 3, 3), 255, np.uint8) for _ in labels]
    padded = np.zeros((4, 8, 4, 1), "float32")
    figure = figures.plot_variants({"stored": stored, "padded": padded}, labels, ["1", "2", "3"], ("3", "1"),
                                   path=tmp_path / "v.png")  # fmt: skip
    axes = figure.get_axes()
    assert len(axes) == 4 and [ax.get_title() for ax in axes[:2]] == ["3", "1"] and axes[2].get_ylabel() == "padded"
    assert (tmp_path / "v.png").is_file()
    with pytest.raises(ValueError, match=r"No image of class\(es\) \['Y'\]"):
        figures.plot_variants({"stored": stored}, labels, ["1", "2", "3"], ("Y",))


def test_two_protocols_are_never_paired_even_on_matching_fold_numbers():
    grouped, image_level = _row("A", [3, 7, 4, 8, 5]), _row("B", [4, 8, 5, 8, 6])
    for record in grouped:
        record["protocol"] = "case-grouped"
    for record in image_level:
        record["protocol"] = "image-level"
    verdict = crossval.compare_folds(image_level, grouped, "test_accuracy", "B", "A", "test accuracy")
    assert not verdict.paired and verdict.runs == (5, 5)


def test_gain_verdicts_pair_validation_items_and_fall_back_to_the_accuracies():
    truths = np.arange(200) % 4
    base = {"row": "base", "val_accuracy": 0.5, "val_predicted": np.where(np.arange(200) < 100, truths, 9).tolist()}
    better = {"row": "better", "val_accuracy": 0.6,  # right on the same 100 items and 20 more
              "val_predicted": np.where(np.arange(200) < 120, truths, 9).tolist()}
    same = {"row": "same", "val_accuracy": 0.5, "val_predicted": np.where(np.arange(200) >= 100, truths, 9).tolist()}
    verdicts = crossval.gain_verdicts([base, better, same], ["better", "same", "absent"], "base", truths)
    assert set(verdicts) == {"better", "same"}
    assert verdicts["better"].verdict == "above" and verdicts["better"].paired  # +0.10, standard error 0.021
    assert verdicts["same"].verdict == "within noise"  # 0.5 vs 0.5 on other items
    # without item predictions: two proportions of 200 items, unpaired: +0.10 is just beyond 2 x 0.049, +0.08 is not
    unpaired = crossval.gain_verdicts([{**base, "val_predicted": None}, better], ["better"], "base", truths)
    assert unpaired["better"].verdict == "above" and not unpaired["better"].paired
    close = crossval.gain_verdicts([{**base, "val_predicted": None}, {**better, "val_accuracy": 0.58}], ["better"],
                                   "base", truths)  # fmt: skip
    assert close["better"].verdict == "within noise"
