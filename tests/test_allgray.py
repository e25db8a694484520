"""allgray on the experiment layer: its configurations, runs, recorded fingerprints and its own findings."""

import json
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
    assert allgray.TABLE1[3].label not in seed0 and allgray.BEYOND.label in seed0
    batch32 = next(run for run in runs if run.label == allgray.TABLE1[2].label and run.seed == 1)
    assert [(s.label, s.epochs) for s in batch32.snapshots] == [(allgray.TABLE1[3].label, 10)]
    assert allgray.BEYOND.label not in [run.label for run in runs if run.seed == 1]  # beyond: seed 0 only
    smoke, _ = make_runs("smoke")
    assert {run.group for run in smoke} == {"table1", "ours"} and [run.epochs for run in smoke] == [5, 5, 5, 2]
    assert smoke[2].snapshots[0].epochs == 4  # 10 x 0.35, inside the 5-epoch batch-32 run


def test_deduplicated_split_has_no_copy_on_two_sides():
    labels = np.repeat(np.arange(4), 25)
    fingerprints = [f"img{i // 2}" if i < 40 else f"img{i}" for i in range(100)]  # 20 duplicate pairs
    split, info = allgray.make_split(labels, fingerprints, seed=0, deduplicate=True)
    assert info["duplicates_removed"] == 20 and info["duplicates_across_sides"] == {"val": 0, "test": 0}
    assert sum(len(v) for v in split.values()) == 80
    published, info = allgray.make_split(labels, fingerprints, seed=0)
    assert sum(len(v) for v in published.values()) == 100
    in_train = {fingerprints[i] for i in published["train"]}
    assert info["duplicates_across_sides"]["test"] == sum(fingerprints[i] in in_train for i in published["test"])


@pytest.mark.skipif(not FULL_RUNS.is_dir(), reason="no committed full run")
def test_committed_full_records_are_found_by_the_rebuilt_runs():
    """The experiment layer fingerprints a run exactly as the records were written: they resume, not retrain."""
    from medcnn.data.loaders import load_folders
    from medcnn.data.paths import resolve_dataset
    from medcnn.data.splits import image_fingerprints
    from medcnn.report import file_list_hash

    data = load_folders(resolve_dataset("all4") / "Original", decode=False)
    x = np.zeros((len(data), 100, 100, 1), "float32")
    settings = allgray.settings("full", seeds=[0])
    runs, _ = allgray.make_runs(x, data.labels, image_fingerprints(data.paths), settings, file_list_hash(data.paths))
    cache = experiment.RunCache(FULL_RUNS.parent, reuse=True)
    found = {}
    for run in runs:
        for item in (run, *run.snapshots):
            record = cache.load(item.key, item.fingerprint, "float32")
            found[item.label] = record is not None
    assert all(found[c.label] for c in allgray.TABLE1), found
    assert found[allgray.HONEST.label] and found[allgray.CONV_LAYER_VARIANTS[0].label]


def test_keras2_accuracy_is_element_wise():
    labels = np.array([0, 1])
    probabilities = np.array([[0.9, 0.1, 0.0, 0.0], [0.6, 0.2, 0.1, 0.1]])  # right, then wrong
    # first: 4 of 4 elements match; second: predicts class 0 (1 wrong) and misses class 1 (1 wrong): 2 of 4
    assert allgray.keras2_accuracy(labels, probabilities) == {"keras2_accuracy": 0.75}


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
    assert sentences[0].startswith("The paper's best configuration") and "does not reach" in sentences[0]
    assert "0.710 ± 0.014 over 2 seed(s) vs 0.82" in sentences[0]
    assert "true 4-class test accuracy of 0.750 but would have printed 0.870" in sentences[3]
    assert "closer to the true 4-class accuracy" in sentences[3]
    assert f"'{allgray.OURS.label}' reaches the paper's 0.82: test accuracy 0.840 ± 0.014" in sentences[-1]
    assert any(s.startswith("0 of 10 runs never left") for s in sentences)


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
