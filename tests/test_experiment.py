"""medcnn.experiment: a run trains and evaluates, its record cache resumes and invalidates, snapshots equal a
shorter run, summaries and sentences come from the numbers, export classifies raw files, outputs hold every row."""

import collections
import functools
import json
import subprocess
import sys
import types
from dataclasses import replace

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcnn import experiment
from medcnn.report import paper_table
from medcnn.train import compile_model

CLASSES = ["dark", "bright"]


@pytest.fixture(scope="module")
def easy():
    """64 grayscale 16x16 images: dark (label 0) or bright (label 1), with noise. A tiny CNN learns it at once."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 32)
    x = (rng.random((64, 16, 16, 1)) * 0.3 + labels[:, None, None, None] * 0.6).astype("float32")
    order = rng.permutation(64)
    split = {"train": order[:40], "val": order[40:52], "test": order[52:]}
    return x, labels, split


def tiny_cnn():
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(2, activation="softmax")(h)
    return compile_model(keras.Model(inputs, outputs, name="tiny"), "adam", 0.05, loss="categorical_crossentropy")


def make_run(split, epochs=6, seed=0, label="tiny cnn", build_model=tiny_cnn, **kwargs):
    return experiment.Run(
        label=label, seed=seed, build_model=build_model, split=split, epochs=epochs, batch_size=8,
        settings={"epochs": epochs}, data="easy", **kwargs,
    )  # fmt: skip


def test_run_learns_and_records_every_metric(easy, tmp_path):
    x, labels, split = easy
    cache = experiment.RunCache(tmp_path)
    [record] = experiment.train_and_evaluate(make_run(split), x, labels, CLASSES, cache, verbose=0)
    assert record["cached"] is False and record["epochs"] == 6 and len(record["history"]["loss"]) == 6
    assert record["test_accuracy"] == 1.0 and record["val_accuracy"] == 1.0
    truth = labels[split["test"]]
    assert record["test_confusion"] == [[int((truth == 0).sum()), 0], [0, int((truth == 1).sum())]]
    assert record["sizes"] == {"train": 40, "val": 12, "test": 12}
    assert np.argmax(record["test_probabilities"], axis=1).tolist() == truth.tolist()
    assert (tmp_path / "runs" / "tiny-cnn__seed0.json").is_file()
    assert cache.weights_path("tiny-cnn__seed0").is_file()


def test_validation_predictions_are_the_scored_labels_for_softmax_and_sigmoid_outputs(easy, tmp_path):
    x, labels, split = easy

    def sigmoid_cnn():
        inputs = keras.Input((16, 16, 1))
        h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
        outputs = keras.layers.Dense(1, activation="sigmoid")(h)
        return compile_model(keras.Model(inputs, outputs), "adam", 0.05, loss="binary_crossentropy")

    for run in (make_run(split), make_run(split, label="sigmoid", build_model=sigmoid_cnn, one_hot=False)):
        [record] = experiment.train_and_evaluate(run, x, labels, CLASSES, experiment.RunCache(tmp_path), verbose=0)
        assert record["val_accuracy"] == 1.0, run.label
        assert record["val_predicted"] == labels[split["val"]].tolist(), run.label


def test_cache_resumes_only_when_asked_and_when_nothing_changed(easy, tmp_path):
    x, labels, split = easy
    first = experiment.train_and_evaluate(make_run(split), x, labels, CLASSES, experiment.RunCache(tmp_path), verbose=0)
    resume = experiment.RunCache(tmp_path, reuse=True)
    again = experiment.train_and_evaluate(make_run(split), x, labels, CLASSES, resume, verbose=0)
    assert again[0]["cached"] is True and again[0]["test_accuracy"] == first[0]["test_accuracy"]
    # anything that changes the result invalidates the record: epochs, seed, split, data
    changed_split = {**split, "train": split["train"][:-1]}
    for run in (make_run(split, epochs=5), make_run(changed_split)):
        assert experiment.train_and_evaluate(run, x, labels, CLASSES, resume, verbose=0)[0]["cached"] is False
    other_data = make_run(split)
    other_data.data = "other"
    assert resume.load(other_data.key, other_data.fingerprint, "float32") is None
    assert resume.load(other_data.key, make_run(split).fingerprint, "mixed_bfloat16") is None  # precision
    # a fresh reproduction never reuses
    assert (
        experiment.RunCache(tmp_path, reuse=False).load("tiny-cnn__seed0", make_run(split).fingerprint, "float32")
        is None
    )


def wider_cnn(filters=8):
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(filters, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h))
    return compile_model(keras.Model(inputs, outputs), "adam", 0.05, loss="categorical_crossentropy")


def builder_of(filters):
    """A closure over `filters`, bound as a default value, as the study modules write their builders."""
    return lambda f=filters: wider_cnn(f)


def early_stopping(patience, data=None):
    """A callbacks factory whose closure captures a scalar (kept in its identity) and data (left out)."""

    def make():
        return [keras.callbacks.EarlyStopping(patience=patience)] if data is not None else []

    return make


HERE = __name__  # the module name the builders below are defined in
WIDER = {"function": f"{HERE}.wider_cnn", "defaults": [8], "keyword_defaults": {}}
IDENTITY_CASES = [
    ("module function", tiny_cnn, f"{HERE}.tiny_cnn"),
    ("function with defaults", wider_cnn, WIDER),
    ("partial", functools.partial(wider_cnn, 4), {"function": WIDER, "args": [4], "keywords": {}}),
    ("closure lambda", builder_of(4), {"function": f"{HERE}.builder_of.<locals>.<lambda>", "defaults": [4],
                                       "keyword_defaults": {}, "calls": ["wider_cnn"]}),
    ("lambda in a lambda", lambda: (lambda: tiny_cnn())(), {"function": f"{HERE}.<lambda>", "defaults": [],
                                                            "keyword_defaults": {}, "calls": ["tiny_cnn"]}),
    ("closure over a scalar and data", early_stopping(3, np.zeros(4)), {
        "function": f"{HERE}.early_stopping.<locals>.make", "defaults": [], "keyword_defaults": {},
        "calls": ["keras", "callbacks", "EarlyStopping"], "captured": {"patience": 3}}),
    ("class", collections.OrderedDict, "collections.OrderedDict"),
    ("none", None, None),
]  # fmt: skip


@pytest.mark.parametrize("name, function, expected", IDENTITY_CASES, ids=[case[0] for case in IDENTITY_CASES])
def test_callable_identity_names_the_builder_and_its_arguments(name, function, expected):
    identity = experiment.callable_identity(function)
    assert identity == expected
    assert " at 0x" not in json.dumps(identity)  # no memory address: the same in every process


def test_callable_identity_tells_builders_and_arguments_apart():
    identities = [
        experiment.callable_identity(function)
        for function in (tiny_cnn, wider_cnn, builder_of(4), builder_of(8), functools.partial(wider_cnn, 4),
                         functools.partial(wider_cnn, filters=4), lambda: tiny_cnn(), lambda: wider_cnn(),
                         early_stopping(3), early_stopping(5))
    ]  # fmt: skip
    assert len({json.dumps(identity, sort_keys=True) for identity in identities}) == len(identities)
    assert experiment.callable_identity(builder_of(4)) == experiment.callable_identity(builder_of(4))


def test_fingerprint_is_stable_and_moves_with_the_model_factory(easy):
    _, _, split = easy
    base = make_run(split, spec={"learning_rate": 0.05, "seeds": [0]})
    assert base.fingerprint == make_run(split, spec={"learning_rate": 0.05, "seeds": [0]}).fingerprint
    for builder in (wider_cnn, builder_of(4), builder_of(8), functools.partial(wider_cnn, 16)):
        assert replace(base, build_model=builder).fingerprint != base.fingerprint
    assert replace(base, build_model=builder_of(4)).fingerprint != replace(base, build_model=builder_of(8)).fingerprint
    # what can change the result moves it; what only picks runs or times predictions does not
    for changed in (
        {"spec": {"learning_rate": 0.01, "seeds": [0]}},
        {"spec": {"learning_rate": 0.05, "seeds": [0], "a_new_setting": 1}},
        {"batch_size": 16},
        {"one_hot": False},
        {"class_weight": {0: 1.0, 1: 2.0}},
        {"augmentation": lambda seed: keras.layers.RandomFlip(seed=seed)},
        {"callbacks": lambda: [keras.callbacks.EarlyStopping(patience=2)]},
        {"starts_from": make_run(split, epochs=2, label="stage one")},
        {"data": {"files": "easy", "features": "random"}},
    ):
        assert replace(base, **changed).fingerprint != base.fingerprint, changed
    for unchanged in (
        {"spec": {"learning_rate": 0.05, "seeds": [0, 1, 2], "predict_batch_size": 64, "scale": "full"}},
        {"predict_batch_size": 128, "group": "other"},
    ):
        assert replace(base, **unchanged).fingerprint == base.fingerprint, unchanged
    assert set(experiment.NON_RESULT_SETTINGS) >= {"seeds", "scale", "predict_batch_size"}


def test_a_snapshot_equals_the_shorter_run_trained_alone(easy, tmp_path):
    x, labels, split = easy
    short = make_run(split, epochs=3, label="short")
    long = make_run(split, epochs=6, label="long", snapshots=(short,))
    long_record, short_record = experiment.train_and_evaluate(
        long, x, labels, CLASSES, experiment.RunCache(tmp_path), verbose=0
    )
    assert short_record["snapshot_of"] == "long" and short_record["epochs"] == 3
    alone = experiment.train_and_evaluate(
        short, x, labels, CLASSES, experiment.RunCache(tmp_path / "alone"), verbose=0
    )[0]
    assert short_record["history"]["loss"] == pytest.approx(alone["history"]["loss"], rel=1e-5)
    np.testing.assert_allclose(short_record["test_probabilities"], alone["test_probabilities"], atol=1e-3)
    assert long_record["history"]["loss"][:3] == pytest.approx(alone["history"]["loss"], rel=1e-5)
    with pytest.raises(ValueError, match="fewer epochs"):
        make_run(split, epochs=3, label="bad", snapshots=(make_run(split, epochs=6),))


def test_summarise_over_seeds_and_folds():
    records = [
        {"configuration": "a", "group": "g", "seed": 0, "acc": 0.6},
        {"configuration": "a", "group": "g", "seed": 1, "acc": 0.8},
        {"configuration": "b", "group": "h", "seed": 0, "acc": 0.5},
    ]
    summary = experiment.summarise(records, ["acc", "missing"])
    assert list(summary.index) == ["a", "b"]
    assert summary.loc["a", "acc_mean"] == pytest.approx(0.7)
    assert summary.loc["a", "acc_std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert np.isnan(summary.loc["b", "acc_std"]) and summary.loc["a", "runs"] == 2 and summary.loc["b", "group"] == "h"
    folds = experiment.summarise(pd.DataFrame({"fold": [0, 1, 2], "acc": [0.5, 0.6, 0.7]}), ["acc"], by=None)
    assert folds.loc["all", "acc_mean"] == pytest.approx(0.6) and folds.loc["all", "runs"] == 3


def test_best_run_is_chosen_on_validation_and_stuck_runs_on_the_majority_class():
    records = [
        {"configuration": "a", "group": "t", "seed": 0, "val_accuracy": 0.7, "test_accuracy": 0.9},
        {"configuration": "b", "group": "t", "seed": 1, "val_accuracy": 0.8, "test_accuracy": 0.6},
    ]
    assert experiment.best_run(records)["configuration"] == "b"
    learned = {"configuration": "l", "seed": 0, "test_accuracy": 0.7, "test_confusion": [[5, 1], [2, 2]]}
    stuck = {"configuration": "s", "seed": 0, "test_accuracy": 0.6, "test_confusion": [[6, 0], [4, 0]]}
    # within 0.02 of the majority class (0.6) but finds the smaller class: not collapsed, as `truth.is_collapsed`
    near = {"configuration": "n", "seed": 1, "test_accuracy": 0.6, "test_confusion": [[4, 2], [2, 2]]}
    assert experiment.stuck_runs([learned, stuck, near]) == [stuck]
    statement = experiment.stuck_statement([learned, stuck, near])
    assert statement.startswith("1 of 3 runs collapsed (predicted one class") and "s (seed 0)" in statement
    again = [{**stuck, "seed": 2}, {**stuck, "configuration": "t", "seed": 1}, stuck]
    assert experiment.stuck_statement(again).endswith(": s (seeds 0, 2); t (seed 1).")  # by row, seeds in order


def test_compare_and_markdown_print_the_papers_precision():
    paper = paper_table(
        "s", "Table 1", "c", ["val acc", "test acc"], [("a", 0.80, 0.82), ("b", 0.76, 0.7)], "configuration"
    )
    summary = pd.DataFrame(
        {
            "val_accuracy_mean": [0.7],
            "val_accuracy_std": [0.05],
            "test_accuracy_mean": [0.65],
            "test_accuracy_std": [np.nan],
            "runs": [2],
        },
        index=["a"],
    )
    keys = {"val acc": "val_accuracy", "test acc": "test_accuracy"}
    table = experiment.compare(paper, summary, {"scale": "smoke", "seeds": [0, 1]}, keys)
    row = table[(table.row == "a") & (table.metric == "test acc")].iloc[0]
    assert row["ours"] == 0.65 and row["delta"] == pytest.approx(0.65 - 0.82) and row["runs"] == 2
    markdown = experiment.comparison_markdown(table)
    assert "| a | 0.80 | 0.700 ± 0.050 | 0.82 | 0.650 | 2 |" in markdown
    assert "| b | 0.76 |  | 0.70 |  | 0 |" in markdown
    trained = experiment.compare(paper, summary.assign(epochs_mean=6.0), {"scale": "smoke"}, keys)
    assert "| epochs trained | runs |" in experiment.comparison_markdown(trained)
    assert "| a | 0.80 | 0.700 ± 0.050 | 0.82 | 0.650 | 6 | 2 |" in experiment.comparison_markdown(trained)


def test_outputs_hold_every_row_and_the_run_counts(tmp_path):
    paper = paper_table("s", "Table 1", "c", ["test acc"], [("a", 0.82), ("b", 0.75)], "configuration")
    records = [
        {"configuration": "a", "group": "t", "seed": 0, "test_accuracy": 0.6, "train_s": 10.0, "cached": False},
        {"configuration": "b", "group": "t", "seed": 0, "test_accuracy": 0.5, "train_s": 30.0, "cached": True},
    ]
    summary = experiment.summarise(records, ["test_accuracy"])
    table = experiment.compare(paper, summary, {"scale": "smoke", "seeds": [0]}, {"test acc": "test_accuracy"})
    info = {"scale": "smoke", "seeds": [0], "elapsed_s": 55.0}
    payload = experiment.results_payload(
        "s", {"title": "t"}, info, {"Table 1": table}, summary, records, ["one finding"]
    )
    assert set(payload["tables"]["Table 1"]) == {"a", "b"}
    assert (
        payload["run"]["trained_now"] == 1
        and payload["run"]["reused"] == 1
        and payload["run"]["training_s_all_runs"] == 40.0
    )
    results, markdown = experiment.write_outputs(
        tmp_path, payload, "title", [("Table 1", experiment.comparison_markdown(table))]
    )
    assert json.loads(results.read_text())["tables"]["Table 1"]["a"]["test acc"]["paper"] == 0.82
    text = markdown.read_text()
    assert "| runs | 2 (1 trained now, 1 reused) |" in text and "| elapsed | 55.0 s |" in text
    assert "| training | 40.0 s, summed over the runs (10.0 s of it trained in this pass) |" in text
    assert experiment.readme_table(json.loads(results.read_text()), "Table 1") == experiment.comparison_markdown(table)
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- t -->\nold\n<!-- /t -->\nbottom\n")
    experiment.update_readme(readme, "t", "new table")
    assert readme.read_text() == "top\n<!-- t -->\nnew table\n<!-- /t -->\nbottom\n"
    readme.write_text("top\n<!-- t -->\n<!-- /t -->\n<!-- u -->\nkeep\n<!-- /u -->\n")  # a new, empty section
    experiment.update_readme(readme, "t", "first table\n")
    assert readme.read_text() == "top\n<!-- t -->\nfirst table\n<!-- /t -->\n<!-- u -->\nkeep\n<!-- /u -->\n"
    with pytest.raises(ValueError, match="has no '<!-- v -->'"):
        experiment.update_readme(readme, "v", "x")


def test_update_readme_sections_writes_each_committed_section_marked_when_it_predates_v3(tmp_path):
    from medcnn.experiment.outputs import PREDATES_V3, marked_section, update_readme_sections

    assert marked_section("text", {"seed_varies": []}) == "text"
    assert marked_section("text", {}) == f"{PREDATES_V3}\n\ntext"
    for study, scale in (("a", "cpu"), ("b", "full")):
        (tmp_path / "results" / study / scale).mkdir(parents=True)
        (tmp_path / "results" / study / scale / "results.json").write_text(json.dumps({"n": study}))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- a-cpu-table -->\nold\n<!-- /a-cpu-table -->\n<!-- c-cpu-table -->\n<!-- /c-cpu-table -->\n")
    written = update_readme_sections(readme, tmp_path / "results", ["a", "b", "c"], lambda s, k, p: f"{s} {k} {p['n']}")
    assert written == ["a-cpu-table"]  # b has no section, c no results
    assert readme.read_text().startswith("<!-- a-cpu-table -->\na cpu a\n<!-- /a-cpu-table -->")


def fake_study(name="s"):
    """A study module as `Session` reads it: `STUDY`, `CITATION` and `settings(scale, **overrides)`."""

    def settings(scale="smoke", **overrides):
        return {"scale": scale, "seeds": [0], "epochs": 2, **{k: v for k, v in overrides.items() if v is not None}}

    return types.SimpleNamespace(STUDY=name, CITATION={"title": "t"}, settings=settings)


def test_session_sets_up_settings_output_folder_cache_and_figures(tmp_path):
    session = experiment.Session(fake_study(), "smoke", tmp_path / "out", True, seeds=[3], epochs=None)
    assert session.settings == {"scale": "smoke", "seeds": [3], "epochs": 2}
    assert session.out_dir == tmp_path / "out" and session.out_dir.is_dir()
    assert session.cache.reuse and session.precision in ("float32", "mixed_float16")
    assert session.figure("roc_grouped") == tmp_path / "out" / "roc_grouped.png"
    assert list(session.settings_frame()["value"]) == ["smoke", "[3]", "2"]
    assert repr(session).startswith("s smoke run on ")


def test_session_records_the_wall_time_to_its_outputs_and_the_training_apart(tmp_path):
    session = experiment.Session(fake_study(), "smoke", tmp_path)
    session.started -= 30  # as if the notebook had run for 30 s before its tables
    info = session.run_info("data", {"a": 2}, "none", [0], extra={"note": "x"})
    assert info["elapsed_s"] == pytest.approx(30, abs=5) and info["settings"]["epochs"] == 2 and info["note"] == "x"
    session.started -= 60  # then 60 s more (export, figures) before its outputs
    records = [{"configuration": "a", "group": "t", "seed": 0, "test_accuracy": 0.6, "train_s": 12.0, "cached": False}]
    summary = experiment.summarise(records, ["test_accuracy"])
    plt = pytest.importorskip("matplotlib.pyplot")
    figure = plt.figure()
    figure.savefig(session.figure("drawn"))
    plt.close(figure)
    session.figure("never_drawn")
    results, markdown = session.write(info, {}, summary, records, ["one"], [("Findings", "- one")], "title")
    run = json.loads(results.read_text())["run"]
    assert run["elapsed_s"] == pytest.approx(90, abs=5) and run["training_s_all_runs"] == 12.0
    assert run["precision"] == session.precision
    text = markdown.read_text()
    assert f"| elapsed | {run['elapsed_s']:.1f} s |" in text and "| training | 12.0 s, summed over the runs" in text
    assert "![drawn](drawn.png)" in text and "never_drawn" not in text
    given = session.run_info("data", {"a": 2}, "none", [0], elapsed_s=7.0)  # a value of the notebook's own is kept
    results, _ = session.write(given, {}, summary, records, [], [], "title")
    assert json.loads(results.read_text())["run"]["elapsed_s"] == 7.0


def test_exported_model_classifies_raw_files_with_predict(easy, tmp_path):
    x, labels, split = easy
    cache = experiment.RunCache(tmp_path)
    run = make_run(split)
    experiment.train_and_evaluate(run, x, labels, CLASSES, cache, verbose=0)
    path = experiment.export_run(run, x, labels, CLASSES, cache, tmp_path / "model.keras", input_max=1.0)
    for name, value in (("dark.png", 30), ("bright.png", 220)):
        Image.fromarray(np.full((40, 40, 3), value, np.uint8)).save(tmp_path / name)
    files = [str(tmp_path / "dark.png"), str(tmp_path / "bright.png")]
    output = subprocess.run(
        [sys.executable, "-m", "medcnn", "predict", str(path), *files],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "dark.png" in output and "bright.png" in output
    lines = {line.split()[0].split("/")[-1]: line for line in output.splitlines() if ".png" in line}
    assert "dark" in lines["dark.png"].split(maxsplit=1)[1] and "bright" in lines["bright.png"].split(maxsplit=1)[1]
    with pytest.raises(ValueError, match="input_max"):
        experiment.serving_model(tiny_cnn(), CLASSES)


def test_export_retrains_a_run_whose_weights_are_missing(easy, tmp_path):
    x, labels, split = easy
    cache = experiment.RunCache(tmp_path)
    run = make_run(split, epochs=2)
    experiment.train_and_evaluate(run, x, labels, CLASSES, cache, verbose=0)
    cache.weights_path(run.key).unlink()
    said = []
    assert (
        experiment.export_run(
            run, x, labels, CLASSES, cache, tmp_path / "m.keras", 1.0, retrain_missing=False, log=said.append
        )
        is None
    )
    assert "not here" in said[-1]
    path = experiment.export_run(run, x, labels, CLASSES, cache, tmp_path / "m.keras", 1.0, log=said.append)
    assert path.is_file() and any("training that run again" in line for line in said)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_trained_model_loads_retrains_or_refuses(easy, tmp_path):
    """The one policy: the run's weights when the cache has them under its fingerprint, else the run trained again
    in `cache/retrain/` (and that reused next time), else, when retraining is forbidden, FileNotFoundError."""
    x, labels, split = easy
    cache = experiment.RunCache(tmp_path)
    run = make_run(split, epochs=1)
    experiment.train_and_evaluate(run, x, labels, CLASSES, cache, verbose=0)
    said = []

    def weights_of(model):
        return [w.tolist() for w in model.get_weights()]

    recorded = experiment.trained_model(run, x, labels, CLASSES, cache, log=said.append)
    saved = tiny_cnn()
    saved.load_weights(cache.weights_path(run.key))
    assert said == [] and weights_of(recorded) == weights_of(saved)  # present: loaded, nothing trained

    other = make_run(split, epochs=1, seed=1)  # another seed: a run never trained here
    with pytest.raises(FileNotFoundError, match=r"'tiny cnn' seed 1 are not here.*retrain_missing=True"):
        experiment.trained_model(other, x, labels, CLASSES, cache, retrain_missing=False, log=said.append)
    assert said == [] and not (tmp_path / "cache" / "retrain").exists()  # forbidden: nothing trained

    stale = make_run(split, epochs=2)  # same key as `run`, other settings: its weights are not these
    experiment.trained_model(stale, x, labels, CLASSES, cache, log=said.append)
    assert "training that run again" in said[0] and said[-1].startswith("retrained: val")
    assert (tmp_path / "cache" / "retrain" / "cache" / "weights" / f"{stale.key}.weights.h5").is_file()
    said.clear()
    experiment.trained_model(stale, x, labels, CLASSES, cache, log=said.append)
    assert said == []  # the retrained weights carry its fingerprint: loaded, not trained a third time


class _Crashes(Exception):
    pass


def test_cache_writes_weights_with_their_fingerprint_before_the_record(tmp_path):
    """Weights first (with `<key>.weights.json`), record last: a crash while saving the weights leaves no new
    record beside old weights, and the old weights' info is gone, so they are not taken for the new run."""
    cache = experiment.RunCache(tmp_path)
    old = {"fingerprint": "old", "precision": "float32", "test_accuracy": 0.5}
    cache.save("k", old, tiny_cnn())
    assert json.loads(cache.weights_info_path("k").read_text()) == {"fingerprint": "old", "precision": "float32"}
    assert cache.weights_for("k", "old", "float32") == cache.weights_path("k")
    assert cache.weights_for("k", "old", "mixed_float16") is None and cache.weights_for("k", "new", "float32") is None

    class Crashing:
        def save_weights(self, path):
            raise _Crashes

    with pytest.raises(_Crashes):
        cache.save("k", {**old, "fingerprint": "new"}, Crashing())
    assert json.loads(cache.record_path("k").read_text())["fingerprint"] == "old"  # the record was not written
    assert cache.weights_for("k", "old", "float32") is None  # weights of unknown state: trusted by no one


def test_recorded_weights_need_the_fingerprint_and_precision_the_weights_were_saved_under(easy, tmp_path):
    """A committed record beside local weights of other settings (after a pull) does not vouch for them, and a
    record of another precision does not either."""
    from medcnn.experiment.export import recorded_weights

    _, _, split = easy
    cache = experiment.RunCache(tmp_path)
    run = make_run(split, epochs=1)
    record = {"fingerprint": run.fingerprint, "precision": "float32"}
    cache.save(run.key, record, tiny_cnn())
    assert recorded_weights(run, cache, "float32") == cache.weights_path(run.key)
    assert recorded_weights(run, cache, "mixed_float16") is None  # reuse only under the same precision
    cache.save(run.key, {**record, "precision": "mixed_float16"})  # the record alone: the weights stay float32
    assert recorded_weights(run, cache, "mixed_float16") is None and recorded_weights(run, cache, "float32") is None
    # a pulled record of this run beside weights trained under other settings
    cache.save(run.key, {"fingerprint": "elsewhere", "precision": "float32"}, tiny_cnn())
    cache.save(run.key, record)
    assert recorded_weights(run, cache, "float32") is None
    # weights without their info file (made before it existed): not trusted
    cache.save(run.key, record, tiny_cnn())
    cache.weights_info_path(run.key).unlink()
    assert recorded_weights(run, cache, "float32") is None


def test_fingerprint_hashes_the_version_of_what_the_library_trains(easy, monkeypatch):
    from medcnn.experiment import runs

    _, _, split = easy
    run = make_run(split)
    assert run.fingerprint_inputs["version"] == runs.FINGERPRINT_VERSION >= 3
    before = run.fingerprint
    monkeypatch.setattr(runs, "FINGERPRINT_VERSION", runs.FINGERPRINT_VERSION + 1)
    assert make_run(split).fingerprint != before


def test_serving_model_takes_further_preprocessing_options():
    options = {"pad_to_aspect_ratio": True, "fill_value": 255.0, "invert": True}
    served = experiment.serving_model(tiny_cnn(), CLASSES, input_max=1.0, preprocessing=options)
    config = served.get_layer("preprocessing").get_config()
    assert {key: config[key] for key in options} == options and config["scale"] == 1.0 / 255.0
    plain = experiment.serving_model(tiny_cnn(), CLASSES, input_max=1.0).get_layer("preprocessing").get_config()
    assert (plain["pad_to_aspect_ratio"], plain["invert"]) == (False, False)


def test_readme_table_with_values_the_paper_never_printed():
    """NaN paper values are written to results.json as null; the README table leaves those cells empty."""
    payload = {
        "tables": {
            "Ablation": {"baseline": {"accuracy": {"paper": None, "ours": 0.5, "std": None, "delta": None}, "runs": 1}}
        },
        "paper_decimals": {"Ablation": 2},
    }
    assert experiment.readme_table(payload, "Ablation").splitlines()[-1] == "| baseline |  | 0.500 | 1 |"


def test_rows_table_shows_learned_runs_collapsed_counts_and_notes():
    learned, stuck = [[8, 2], [2, 8]], [[10, 0], [10, 0]]
    records = [
        {"configuration": "A", "seed": 0, "test_accuracy": 0.8, "test_confusion": learned},
        {"configuration": "A", "seed": 1, "test_accuracy": 0.9, "test_confusion": learned},
        {"configuration": "A", "seed": 2, "test_accuracy": 0.5, "test_confusion": stuck},
        {"configuration": "B", "seed": 0, "test_accuracy": 0.5, "test_confusion": stuck},
        {"configuration": "B", "seed": 1, "test_accuracy": 0.5, "test_confusion": stuck},
    ]
    summary = experiment.summarise(records, ["test_accuracy"])
    table = experiment.rows_table(summary, {"test_accuracy": "test acc"}, row_notes={"B": "random weights"})
    assert table.loc["A", "test acc"] == "0.850 ± 0.071 (all 3: 0.733)" and table.loc["A", "collapsed"] == "1 of 3"
    assert table.loc["B", "test acc"] == "collapsed" and table.loc["B", "collapsed"] == "2 of 2"
    assert table.loc["B", "note"] == "random weights" and table.loc["A", "note"] == ""
    weighted = experiment.rows_table(summary, {"test_accuracy": "test acc"}, ["B"], 3, {"B": "random"}, "weights",
                                     {"anchor: published": {"test acc": "0.958"}})  # fmt: skip
    assert list(weighted.index) == ["B", "anchor: published"] and list(weighted.columns[:2]) == ["weights", "runs"]
    assert weighted.loc["anchor: published", "test acc"] == "0.958" and weighted.loc["anchor: published", "runs"] == ""
    referenced = experiment.rows_table(summary, {"test_accuracy": "test acc"}, ["A"], references=True,
                                       extra_rows={"anchor: published": {"test acc": "0.958"}})  # fmt: skip
    assert list(referenced.index) == ["A", "reference: majority class", "reference: chance", "anchor: published"]
    assert referenced.index.name == "configuration"
    assert referenced.loc["reference: majority class", "test acc"] == referenced.loc["reference: chance", "test acc"]


def test_readme_table_labels_rows_from_row_notes():
    learned = [[8, 2], [2, 8]]
    records = [{"configuration": "A", "seed": s, "test_accuracy": 0.8, "test_confusion": learned} for s in (0, 1)]
    summary = experiment.summarise(records, ["test_accuracy"])
    paper = paper_table("x", "T", "t", ["test acc"], [("A", 0.9)], index_name="row")
    table = experiment.compare(paper, summary, {"scale": "smoke", "seeds": [0, 1]}, {"test acc": "test_accuracy"})
    payload = {"tables": {"T": experiment.outputs.table_payload(table)}, "paper_decimals": {"T": 2}}
    assert "| A *(random weights)* |" in experiment.readme_table(payload, "T", row_notes={"A": "random weights"})
    assert "| A |" in experiment.readme_table(payload, "T")


def test_readme_section_flags_findings_from_before_the_v3_rules(committed_results):
    payload = committed_results("allgray")
    payload["findings"] = ["A is above B."]
    payload.pop("seed_varies", None)  # as results.json files written before the v3 rules
    old = experiment.readme_section(payload, "Table 1", None, "p.")
    assert "before the library's v3 rules" in old and old.index("v3 rules") < old.index("- A is above B.")
    assert "each fixes the split and the initialisation" in old
    payload["seed_varies"] = ["split", "initialisation"]
    payload["run"].pop("precision", None)
    new = experiment.readme_section(payload, "Table 1", None, "p.")
    assert "v3 rules" not in new and "each draws anew: split, initialisation" in new
    assert "precision not recorded" in new and "float32" not in new.split("\n")[0]


def test_reference_ranges_print_one_value_where_both_ends_round_alike():
    assert experiment.outputs.value_range(0.2461, 0.2458) == "0.246"
    assert experiment.outputs.value_range(0.302, 0.306) == "0.302–0.306"
    assert experiment.outputs.value_range(0.31, 0.32, digits=1) == "0.3"
