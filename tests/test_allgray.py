"""allgray on the experiment layer: its configurations, runs, recorded fingerprints and its own findings."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medcnn import experiment
from medcnn.studies import allgray

FULL_RUNS = Path(__file__).resolve().parents[1] / "results" / "allgray" / "full" / "runs"


def test_table1_configurations_match_the_paper_rows():
    assert [c.label for c in allgray.TABLE1] == list(allgray.PAPER_TABLE1.index)
    assert [(c.epochs, c.batch_size) for c in allgray.TABLE1] == [(15, 64), (15, 64), (15, 32), (10, 32)]
    assert allgray.TABLE1[1].loss == "binary_crossentropy"
    assert allgray.SNAPSHOTS == {allgray.TABLE1[3].label: allgray.TABLE1[2].label}


def test_settings_scales_and_errors():
    assert allgray.settings("cpu") == allgray.settings("full")  # the published protocol fits this CPU
    assert allgray.settings("smoke", seeds=[7])["seeds"] == [7]
    with pytest.raises(ValueError, match="Unknown setting"):
        allgray.settings("smoke", epochs=3)


def test_configuration_settings_leave_unset_fields_out():
    """Fields added later default to None and stay out of the fingerprint, so older records stay valid."""
    assert "schedule" not in allgray.TABLE1[0].settings() and "backbone" not in allgray.TABLE1[0].settings()
    assert allgray.OURS.settings()["batch_norm_momentum"] == 0.9 and allgray.OURS.settings()["schedule"] == "cosine"


def make_runs(scale="full", count=40, **overrides):
    labels = np.repeat(np.arange(4), count // 4)
    fingerprints = [f"f{i}" for i in range(count)]
    x = np.zeros((count, 100, 100, 1), "float32")
    return allgray.make_runs(x, labels, fingerprints, allgray.settings(scale, **overrides), "data-hash")


def test_runs_go_seed_by_seed_with_the_10_epoch_row_inside_the_15_epoch_run():
    runs, _ = make_runs(seeds=[0, 1])
    assert [run.seed for run in runs] == sorted(run.seed for run in runs)
    seed0 = [run.label for run in runs if run.seed == 0]
    assert allgray.TABLE1[3].label not in seed0
    batch32 = next(run for run in runs if run.label == allgray.TABLE1[2].label and run.seed == 1)
    assert [(s.label, s.epochs) for s in batch32.snapshots] == [(allgray.TABLE1[3].label, 10)]
    assert [run.label for run in runs if run.seed == 1] == seed0  # every row over the same seeds
    smoke, _ = make_runs("smoke")
    assert {run.group for run in smoke} == {"table1", "ours"} and [run.epochs for run in smoke] == [5, 5, 5, 4]
    assert smoke[2].snapshots[0].epochs == 4  # 10 x 0.35, inside the 5-epoch batch-32 run


def test_the_transfer_row_fingerprints_the_weights_its_backbone_loads(monkeypatch):
    from types import SimpleNamespace

    from medcnn.models import backbones

    def runs_with(used):
        monkeypatch.setattr(backbones, "resolve_backbone_weights", lambda *args: SimpleNamespace(used=used))
        runs, _ = make_runs(seeds=[0])
        return {run.label: run for run in runs}

    random, imagenet = runs_with("random"), runs_with("imagenet")
    transfer = allgray.TRANSFER.label
    assert random[transfer].data == {"files": "data-hash", "backbone_weights": "random"}
    assert random[transfer].fingerprint != imagenet[transfer].fingerprint
    cnn = allgray.TABLE1[0].label  # no backbone: the data hash alone, as before
    assert random[cnn].data == "data-hash" and random[cnn].fingerprint == imagenet[cnn].fingerprint


# One changed value per setting of the scale; `test_every_setting_moves_the_fingerprint_but_the_non_result_ones`
# fails when a setting is added without a row here.
CHANGED_SETTINGS = {
    "allow_random_weights": True,
    "class_names": ["Pro", "Pre", "Early", "Benign"],
    "epoch_scale": 0.5,
    "groups": {"table1": None},  # picks runs: the table1 runs that stay are the same runs
    "hog_pca_components": 50,
    "image_size": (64, 64),
    "learning_rate": 1e-4,
    "load_size": (256, 256),
    "max_epochs": {"table1": 3},
    "max_images": 500,
    "predict_batch_size": 64,
    "ratios": (0.6, 0.2, 0.2),
    "scale": "smoke",
    "seeds": [0, 1],
}


def fingerprints_of(run_settings):
    runs, _ = make_runs_with(run_settings)
    return {item.key: item.fingerprint for run in runs for item in (run, *run.snapshots)}


def make_runs_with(run_settings, count=40):
    labels = np.repeat(np.arange(4), count // 4)
    x = np.zeros((count, 100, 100, 1), "float32")
    return allgray.make_runs(x, labels, [f"f{i}" for i in range(count)], run_settings, "data-hash")


def test_every_setting_moves_the_fingerprint_but_the_non_result_ones():
    """Each setting of the scale, changed alone, moves the fingerprint of every run built under both values, except
    the library's documented `NON_RESULT_SETTINGS`, which leave every such run's fingerprint where it was."""
    base_settings = allgray.settings("full", seeds=[0])
    assert set(CHANGED_SETTINGS) == set(base_settings)
    base = fingerprints_of(base_settings)
    for key, value in CHANGED_SETTINGS.items():
        changed = fingerprints_of({**allgray.settings("full", seeds=[0]), key: value})
        common = set(base) & set(changed)
        assert common, key
        moved = {run for run in common if base[run] != changed[run]}
        if key in experiment.NON_RESULT_SETTINGS:
            assert not moved, key
        else:
            assert moved == common, (key, common - moved)


def test_the_same_spec_built_twice_gives_the_same_fingerprints():
    first = fingerprints_of(allgray.settings("full", seeds=[0, 1]))
    assert fingerprints_of(allgray.settings("full", seeds=[0, 1])) == first
    runs_per_seed = len(allgray.configurations(allgray.GROUPS))
    assert len(set(first.values())) == len(first) == 2 * runs_per_seed


def test_another_model_builder_moves_the_fingerprint():
    runs, _ = make_runs_with(allgray.settings("smoke"))
    run = runs[0]
    other = replace(run, build_model=lambda: allgray.build_model(allgray.OURS, (100, 100, 1), 1, 1))
    assert other.fingerprint != run.fingerprint
    no_flips = next(item for item in runs if item.augmentation is not None)
    assert replace(no_flips, augmentation=None).fingerprint != no_flips.fingerprint


@pytest.mark.skipif(not FULL_RUNS.is_dir(), reason="no committed full run")
def test_committed_full_results_and_run_records_agree():
    """results.json lists exactly the committed run records (its reference rows, HOG + PCA + SVM, have none), with
    their numbers; each record names a fingerprint.

    (Rebuilt runs no longer find these records: they predate fingerprints of the whole run spec, so a run with
    REUSE_RUNS trains again until the study is re-run.)
    """
    results = json.loads((FULL_RUNS.parent / "results.json").read_text())
    records = {path.stem: json.loads(path.read_text()) for path in FULL_RUNS.glob("*.json")}
    records = {key: record for key, record in records.items() if record["group"] in allgray.GROUPS}
    listed = {
        f"{experiment.slugify(run['configuration'])}__seed{run['seed']}": run
        for run in results["runs"]
        if run["group"] in allgray.GROUPS
    }
    assert set(listed) == set(records)
    settings_of = {config.label: config.settings() for config in allgray.configurations()}
    for key, run in listed.items():
        record = records[key]
        assert (record["configuration"], record["seed"], record["epochs"]) == (run["configuration"], run["seed"],
                                                                               run["epochs"])  # fmt: skip
        for metric in ("val_accuracy", "test_accuracy", "test_macro_f1"):
            assert record[metric] == pytest.approx(run[metric]), (key, metric)
        assert record["settings"] == settings_of[record["configuration"]]
        assert len(record["fingerprint"]) == 16 and int(record["fingerprint"], 16) >= 0
    assert {run["seed"] for run in results["runs"]} == set(results["run"]["seeds"])


def summary_of(rows):
    frame = pd.DataFrame(rows)
    return experiment.summarise(frame, ["test_accuracy", "test_keras2_accuracy"])


def test_findings_come_from_the_numbers():
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for config, acc, keras2 in zip(allgray.TABLE1, (0.70, 0.74, 0.69, 0.70), (0.85, 0.87, 0.84, 0.85)):
            rows.append({"configuration": config.label, "group": "table1", "seed": seed, "test_accuracy": acc + shift,
                         "test_keras2_accuracy": keras2, "test_confusion": [[5, 5], [0, 10]]})  # fmt: skip
        rows.append({"configuration": allgray.OURS.label, "group": "ours", "seed": seed, "test_accuracy": 0.83 + shift,
                     "test_keras2_accuracy": 0.9, "test_confusion": [[9, 1], [1, 9]]})  # fmt: skip
    summary = summary_of(rows)
    sentences = allgray.findings(summary, rows)
    assert sentences[0].startswith("The paper's best configuration") and "below it by more than two" in sentences[0]
    assert "test accuracy 0.710 over 2 runs" in sentences[0] and "0.820" in sentences[0]
    # every seed moves all rows together: paired by seed, 15 epochs batch 64 vs batch 32 is +0.010 with no spread,
    # a standard error of 0: not judged
    assert "do not differ" not in sentences[1] and "is above" not in sentences[1]
    assert "standard error of 0" in sentences[1] and "paired over 2 shared" in sentences[1]
    binary = next(s for s in sentences if s.startswith("Had the paper compiled binary cross-entropy"))
    assert "tf.keras 2 (TensorFlow 2.15 and earlier) would have silently reported" in binary
    assert "true 4-class test accuracy of 0.750 but would have printed 0.870" in binary
    assert "it is nearer to the true 4-class accuracy by 0.060" in binary
    assert "cannot tell which metric the paper printed" in binary  # 0.78 is 0.03 / 0.09 away; ours miss by 0.11
    assert f"'{allgray.OURS.label}': test accuracy 0.840 over 2 runs" in sentences[-1]
    assert "at or above it" in sentences[-1]
    assert any(s.startswith("0 of 10 runs collapsed") for s in sentences)


def test_findings_say_within_noise_and_collapsed():
    rows = []
    for seed, (a, b) in enumerate(((0.70, 0.74), (0.76, 0.70), (0.72, 0.71))):
        for config, acc in zip(allgray.TABLE1, (a, 0.7, b, b)):
            rows.append({"configuration": config.label, "group": "table1", "seed": seed, "test_accuracy": acc,
                         "test_keras2_accuracy": 0.85, "test_confusion": [[5, 5], [0, 10]]})  # fmt: skip
        # a row that predicts one class for every image
        rows.append({"configuration": allgray.OURS.label, "group": "ours", "seed": seed, "test_accuracy": 0.5,
                     "test_keras2_accuracy": 0.75, "test_confusion": [[0, 10], [0, 10]]})  # fmt: skip
    sentences = allgray.findings(summary_of(rows), rows)
    assert "do not differ on test accuracy beyond seed noise" in sentences[1]
    assert f"'{allgray.OURS.label}': every one of its 3 runs collapsed to one class" in sentences[-1]
    assert "reaches" not in sentences[-1] and "0.500" not in sentences[-1]


def test_failed_starts_are_counted_apart_and_a_snapshot_counts_once():
    learned, flat = [[8, 2], [2, 8]], [[10, 0], [10, 0]]
    rows = []
    for seed in range(3):
        for config, acc in zip(allgray.TABLE1, (0.80, 0.80, 0.78, 0.77)):
            failed = seed == 2 and config in allgray.TABLE1[2:]  # the batch-32 run and its 10-epoch snapshot
            snapshot = {"snapshot_of": allgray.TABLE1[2].label} if config is allgray.TABLE1[3] else {}
            rows.append({"configuration": config.label, "group": "table1", "seed": seed,
                         "test_accuracy": 0.5 if failed else acc + 0.01 * seed, "test_keras2_accuracy": 0.85,
                         "test_confusion": flat if failed else learned, **snapshot})  # fmt: skip
    sentences = allgray.findings(summary_of(rows), rows)
    gap = next(s for s in sentences if s.startswith(f"The paper prints 0.82 for '{allgray.TABLE1[0].label}' and "
                                                    f"0.75 for '{allgray.TABLE1[2].label}' (+0.07); ours: "))
    # over the runs that learned: +0.02 on both shared seeds, no spread; the failed start is named, not averaged in
    assert "paired over 2 shared seeds" in gap and "0 of 3 and 1 of 3 runs collapsed" in gap
    rates = [s for s in sentences if "never left the majority-class plateau" in s]
    assert len(rates) == 1 and rates[0].startswith(f"'{allgray.TABLE1[2].label}' never left")
    assert "1 of 3 seeds (33%; 95 % interval" in rates[0] and "the paper's single run cannot show" in rates[0]
    assert any(s.startswith("1 of 9 runs collapsed") and "counted there once" in s for s in sentences)


def test_reaches_the_paper_only_above_the_majority_class():
    rows = [{"configuration": allgray.OURS.label, "group": "ours", "seed": seed, "test_accuracy": 0.9 + 0.001 * seed,
             "test_keras2_accuracy": 0.9, "test_confusion": [[1, 1], [0, 98]]} for seed in range(3)]  # fmt: skip
    rows += [{**row, "configuration": allgray.TABLE1[0].label, "group": "table1"} for row in rows]
    sentences = allgray.findings(summary_of(rows), rows)
    assert "is not above always predicting the largest class (0.980)" in sentences[-1]


def test_paper_column_keeps_the_printed_precision(tmp_path):
    summary = summary_of([{"configuration": c.label, "group": "table1", "seed": 0, "test_accuracy": 0.7,
                           "test_keras2_accuracy": 0.8} for c in allgray.TABLE1])  # fmt: skip
    table = experiment.compare(allgray.PAPER_TABLE1, summary, {"scale": "smoke", "seeds": [0]},
                               {"test acc": "test_accuracy"})  # fmt: skip
    assert "| 15 epochs, batch 64, categorical CE | 0.82 | 0.700 | 1 |" in experiment.comparison_markdown(table)
    assert "| 10 epochs, batch 32, categorical CE | 0.81 |" in experiment.comparison_markdown(table)


def test_models_compile_through_the_library():
    import keras

    ours = allgray.build_model(allgray.OURS, (100, 100, 1), steps_per_epoch=10, epochs=4)
    assert [layer.momentum for layer in ours.layers if isinstance(layer, keras.layers.BatchNormalization)] == [0.9] * 3
    schedule = ours.optimizer.learning_rate
    assert float(ours.optimizer._learning_rate(0)) == pytest.approx(1e-3)
    assert float(ours.optimizer._learning_rate(40)) == pytest.approx(0.0, abs=1e-9)
    assert schedule is not None
    transfer = allgray.build_model(allgray.TRANSFER, (100, 100, 1), steps_per_epoch=10, epochs=4)
    assert transfer.weights_used == "imagenet"  # the staged MobileNetV2 file, loaded at 100 px
    assert transfer.get_layer("backbone").trainable is False


def test_committed_results_have_no_machine_paths():
    for scale in ("smoke", "full"):
        path = FULL_RUNS.parents[1] / scale / "results.json"
        if path.is_file():
            text = path.read_text()
            assert "/work/" not in text and "/home/" not in text and "/content/" not in text
            assert set(json.loads(text)["tables"]["Table 1"]) == set(allgray.PAPER_TABLE1.index)


# ----------------------------------------------------------------------------------------------------------------
# Checks of the smoke run (tests/test_smoke_notebooks.py runs the notebook once and calls every check_smoke_*)


def check_smoke_trains_every_table1_row(allgray_smoke):
    results = allgray_smoke.results
    table = results["tables"]["Table 1"]
    assert set(table) == set(allgray.PAPER_TABLE1.index)
    for label, row in table.items():
        for column in allgray.METRIC_KEYS["Table 1"]:
            assert row[column]["paper"] == allgray.PAPER_TABLE1.loc[label, column]
            assert isinstance(row[column]["ours"], float)
    run = results["run"]
    assert run["scale"] == "smoke" and run["trained_now"] == run["runs"] and run["reused"] == 0
    table1_section = allgray_smoke.section("Table 1")
    for label in allgray.PAPER_TABLE1.index:  # a row may carry its note in italics after the label
        rows = [line for line in table1_section.splitlines() if line.startswith((f"| {label} |", f"| {label} *("))]
        assert len(rows) == 1, label
    assert f"| runs | {run['runs']} ({run['runs']} trained now, 0 reused) |" in allgray_smoke.report()


def check_smoke_model_learns_and_predicts_images_it_never_saw(allgray_smoke):
    """The best smoke model beats chance (0.25) by at least 0.15 in balanced test accuracy, and so does the
    exported model.keras on the raw test files of its seed's split (never seen in training)."""
    from sklearn.metrics import balanced_accuracy_score

    from medcnn.data.loaders import load_folders
    from medcnn.data.paths import resolve_dataset

    results = allgray_smoke.results
    best = results["best_run"]
    assert best["test_balanced_accuracy"] >= 0.40
    record = allgray_smoke.record(best)
    files = load_folders(resolve_dataset("all4") / "Original", decode=False)  # the notebook's order, every image
    assert len(files) == sum(results["run"]["data"]["counts"].values())
    test = np.asarray(record["test_indices"])
    predicted = allgray_smoke.predict([files.paths[i] for i in test])
    assert balanced_accuracy_score(files.labels[test], predicted.guesses) >= 0.40


def test_cure_sentence_sets_failure_rates_and_dead_channels_of_the_same_cnn_side_by_side():
    learned, flat = [[8, 2], [2, 8]], [[10, 0], [10, 0]]
    rows = []
    for seed in range(3):
        failed = seed == 1
        rows.append({"configuration": allgray.TABLE1[0].label, "group": "table1", "seed": seed,
                     "test_accuracy": 0.5 if failed else 0.7, "test_keras2_accuracy": 0.85,
                     "test_confusion": flat if failed else learned,
                     "history": {"loss": [1.0], "dead_conv2": [1.0 if failed else 0.8]}})  # fmt: skip
        rows.append({"configuration": allgray.CURE.label, "group": "cure", "seed": seed,
                     "test_accuracy": 0.85 + 0.01 * seed, "test_keras2_accuracy": 0.9, "test_confusion": learned,
                     "history": {"loss": [1.0], "dead_conv2": [0.2 + 0.1 * seed]}})  # fmt: skip
    cure = next(s for s in allgray.findings(summary_of(rows), rows) if s.startswith("The paper's CNN on centred"))
    assert "Failed starts: centred 0 of 3 seeds (0%; 95 % interval 0%-56%)" in cure
    assert "mean (min–max): 0.30 (0.20–0.40) in the runs that learned), as published 1 of 3 seeds" in cure
    assert "0.80 in the runs that learned, 1.00 in the collapsed" in cure and "2 conv" not in cure
    assert "3 seeds cannot show that a rare failure is gone" in cure


def test_table1_labels_the_snapshot_row_as_the_same_runs():
    assert allgray.TABLE1_NOTES == {
        allgray.TABLE1[3].label: f"epoch 10 of the '{allgray.TABLE1[2].label}' runs: the same runs"
    }


def test_binary_accuracy_statement_leaves_collapsed_runs_out():
    binary, learned, flat = allgray.TABLE1[1].label, [[9, 1], [1, 9]], [[10, 0], [10, 0]]
    rows = [{"configuration": binary, "seed": seed, "test_accuracy": acc, "test_keras2_accuracy": keras2,
             "test_confusion": flat if acc == 0.5 else learned}
            for seed, acc, keras2 in ((0, 0.5, 0.75), (1, 0.70, 0.85), (2, 0.72, 0.87))]  # fmt: skip
    said = allgray.binary_accuracy_statement(summary_of(rows), records=rows)
    assert "the runs of that row that learned (1 of 3 collapsed) reach a true 4-class test accuracy of 0.710" in said
    assert "would have printed 0.860" in said  # the collapsed run's 0.500 and 0.750 are not averaged in
    flat_only = allgray.binary_accuracy_statement(summary_of(rows[:1]), records=rows[:1])
    assert flat_only == f"'{binary}': every one of its 1 runs collapsed to one class, so our numbers cannot say what " \
                        "the paper's 0.78 measured."
