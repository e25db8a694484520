"""The chromosome study: settings per scale, folds and runs, the combination and our row, the karyotype view,
findings and tables, the plan, the notebook."""

import dataclasses
import math

import numpy as np
import pytest

from medcnn import experiment
from medcnn.experiment import crossval
from medcnn.models.blocks import greedy_combination, uses_batch_norm
from medcnn.studies import chromosome
from medcnn.train import bn_warmup_start

K = len(chromosome.CLASS_NAMES)
CHANCE = 1 / K


# ----------------------------------------------------------------------------------------------------------------
# Settings


def test_scales_grow_from_smoke_to_cpu_to_full():
    smoke, cpu, full = (chromosome.settings(scale) for scale in ("smoke", "cpu", "full"))
    assert (smoke["scale"], cpu["scale"], full["scale"]) == ("smoke", "cpu", "full")
    assert set(smoke) == set(cpu) == set(full)
    for key in ("epochs", "ours_epochs", "tuner_trials", "tuner_epochs", "ensemble_size"):
        assert smoke[key] <= cpu[key] <= full[key], key
    for key in ("image_size", "ours_size"):
        pixels = [math.prod(s[key]) for s in (smoke, cpu, full)]
        assert pixels == sorted(pixels), key
    assert all(math.prod(s["ours_size"]) > math.prod(s["image_size"]) for s in (smoke, cpu))  # larger inputs
    # smoke runs one fold of each protocol; cpu and full run every fold, so every case is tested once
    assert (smoke["folds_run"], smoke["image_folds_run"]) == (1, 1)
    assert cpu["folds_run"] is full["folds_run"] is full["image_folds_run"] is None and cpu["image_folds_run"] >= 3
    assert cpu["image_folds"] == full["image_folds"] == 5 and 5 <= cpu["folds"] <= full["folds"]  # CIR-Net's 5
    assert cpu["early_stopping_patience"] and not smoke["early_stopping_patience"]
    assert cpu["allow_random_weights"] is False and smoke["allow_random_weights"] is True
    assert min(smoke["transfer_size"]) >= 32  # MobileNetV2's smallest input
    assert set(chromosome.SETTINGS) == {"smoke", "cpu", "full"}  # medcnn.studies.SCALES


def test_settings_reject_unknown_overrides():
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['epoch'\]"):
        chromosome.settings("smoke", epoch=3)
    assert chromosome.settings("cpu", epochs=2, seeds=None)["epochs"] == 2


def test_the_table_holds_every_row_the_issue_asks_for():
    rows = list(chromosome.ABLATION.index)
    assert rows[0] == "baseline CNN" and rows[-2:] == [chromosome.COMBINATION, chromosome.OURS]
    assert {block for _, block in chromosome.BLOCK_ROWS if block} == set(chromosome.settings()["blocks"])
    assert {chromosome.TUNED, chromosome.TRANSFER, chromosome.ENSEMBLE, chromosome.SVM, chromosome.STRETCHED} < set(
        rows
    )
    assert chromosome.OURS_IMAGE_LEVEL not in rows  # the protocols' comparison is a table of its own
    assert set(chromosome.METRIC_KEYS["Ablation"]) == set(chromosome.ABLATION.columns)


# ----------------------------------------------------------------------------------------------------------------
# Data: what the saved model and the training data share


def _crop(height, width):
    """A white crop holding a dark vertical bar one third of its width."""
    crop = np.full((height, width, 3), 255, dtype=np.uint8)
    crop[:, width // 3 : 2 * width // 3] = 0
    return crop


def test_preprocess_pads_or_stretches_then_inverts():
    crops = [_crop(60, 24), _crop(30, 24), _crop(60, 24)]
    padded = chromosome.preprocess(crops, (32, 16), "pad")
    stretched = chromosome.preprocess(crops, (32, 16), "stretch")
    assert padded.shape == (3, 32, 16, 1) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[0], padded[2])  # the same crop gives the same input, wherever it sits
    # background (white) -> 0, the dark bar -> bright; a 30-px-tall crop padded to 1:2 leaves white rows above and
    # below, stretched it fills the whole height
    assert padded[1, 0].max() < 0.01 and padded[1, 16].max() > 0.9
    assert stretched[1, 0].max() > 0.9
    options = chromosome.preprocessing_options("pad")
    assert options == {"pad_to_aspect_ratio": True, "fill_value": 255.0, "invert": True}
    with pytest.raises(ValueError, match="Received: resize='crop'"):
        chromosome.preprocessing_options("crop")
    inputs = chromosome.model_inputs(crops, chromosome.settings("smoke"))
    assert {key: x.shape[1:3] for key, x in inputs.items()} == {"pad": (32, 16), "stretch": (32, 16), "ours": (48, 24)}


# ----------------------------------------------------------------------------------------------------------------
# Folds and runs


@pytest.fixture(scope="module")
def synthetic():
    """14 cases, each with one metaphase of two crops per class: labels, cases and tiny inputs."""
    labels = np.tile(np.repeat(np.arange(K), 2), 14)
    cases = np.repeat([f"case{c}" for c in range(14)], 2 * K)
    return np.zeros((len(labels), 32, 16, 1), "float32"), labels, cases


def test_case_grouped_folds_test_every_case_once_and_validate_inside_the_training_cases(synthetic):
    _, labels, cases = synthetic
    run_settings = chromosome.settings("full")
    folds = chromosome.make_folds(labels, cases, 0, run_settings)
    assert len(folds) == run_settings["folds"] == 7
    tested = [sorted(set(cases[fold["test"]])) for fold in folds]
    assert sorted(sum(tested, [])) == sorted(set(cases)) and {len(t) for t in tested} == {2}  # 7 folds of 2 cases
    for fold in folds:
        sides = [set(cases[fold[side]]) for side in ("train", "val", "test")]
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert len(chromosome.make_folds(labels, cases, 0, chromosome.settings("smoke"))) == 1  # the first fold only
    image_level = chromosome.make_folds(labels, cases, 0, run_settings, "image-level")
    assert len(image_level) == 5 and all(set(cases[f["train"]]) & set(cases[f["test"]]) for f in image_level)


def test_make_runs_label_each_fold_and_fingerprint_what_differs(synthetic, monkeypatch):
    x, labels, cases = synthetic
    run_settings = chromosome.settings("smoke")
    folds = chromosome.make_folds(labels, cases, 0, {**run_settings, "folds_run": 2})
    monkeypatch.setattr(chromosome, "transfer_weights", lambda settings, channels=1: {"mobilenet_v2": "random"})
    best = {"learning_rate": 3e-3, "batch_size": 16, "dropout": 0.25, "optimizer": "sgd"}
    tuned = chromosome.tuned_configuration(best)
    configurations = [*chromosome.BLOCK_CONFIGURATIONS[:2], tuned, *chromosome.transfer_configurations(run_settings)]
    runs = [run for fold, split in enumerate(folds)
            for run in chromosome.make_runs(configurations, x, split, 0, fold, run_settings, "data-hash")]  # fmt: skip
    assert [run.label for run in runs[:2]] == ["baseline CNN | fold 1", "+ residual connections | fold 1"]
    assert runs[4].label == "baseline CNN | fold 2" and runs[4].settings["fold"] == 2
    assert runs[0].settings == {"label": "baseline CNN", "group": "blocks", "resize": "pad", "inputs": "pad",
                                "fold": 1, "protocol": "case-grouped"}  # fmt: skip
    assert [run.batch_size for run in runs[:4]] == [32, 32, 16, 32]
    assert runs[3].data == {"files": "data-hash", "backbone_weights": "random"} and runs[0].data == "data-hash"
    assert len({run.fingerprint for run in runs}) == len(runs)  # each fold's split is hashed
    assert all(run.augmentation is None for run in runs)
    ours = chromosome.later_configurations(("spp", "batch_norm"))[-1]
    (run,) = chromosome.make_runs([ours], x, folds[0], 3, 0, run_settings, "data-hash", "image-level")
    assert run.epochs == run_settings["ours_epochs"] and run.settings["protocol"] == "image-level"
    cpu = chromosome.settings("cpu")  # early stopping on: every ablation row stops early, our row never
    (fixed,), (stopping,) = (chromosome.make_runs([c], x, folds[0], 0, 0, cpu, "d") for c in (ours, configurations[0]))
    assert fixed.callbacks is None and fixed.settings["schedule"] == "cosine" and stopping.callbacks is not None
    assert run.augmentation is not None and run.augmentation.keywords == {"rotation": run_settings["ours_rotation"]}
    # changing our recipe re-trains our row only: the ablation's fingerprints hash the settings their runs read
    recipe = {**run_settings, "ours_epochs": 7, "ours_size": (64, 32), "ours_rotation": 0.05}
    (again,) = chromosome.make_runs([ours], x, folds[0], 3, 0, recipe, "data-hash", "image-level")
    same = chromosome.make_runs(configurations[:1], x, folds[0], 0, 0, recipe, "data-hash")[0]
    assert again.fingerprint != run.fingerprint and same.fingerprint == runs[0].fingerprint
    changed = chromosome.make_runs(configurations[:1], x, folds[0], 0, 0, {**run_settings, "epochs": 4}, "data-hash")
    assert changed[0].fingerprint != runs[0].fingerprint


def test_our_augmentation_mirrors_and_rotates_a_little_and_varies_with_the_seed():
    image = np.zeros((1, 32, 16, 1), "float32")
    image[0, 4:28, 2:6] = 1.0  # a bar on the left
    draws = [np.asarray(chromosome.flips_and_rotations(seed)(np.repeat(image, 8, 0), training=True)) for seed in (0, 1)]
    left, right = (draws[0][:, :, :8].sum(axis=(1, 2, 3)), draws[0][:, :, 8:].sum(axis=(1, 2, 3)))
    assert (right > left).any() and (left > right).any()  # some mirrored, some not
    assert np.abs(draws[0].sum(axis=(1, 2, 3)) - image.sum()).max() < 0.2 * image.sum()  # small rotations keep it
    assert not np.allclose(draws[0], draws[1])


def test_tuned_configuration_without_dropout_is_the_plain_baseline():
    config = chromosome.tuned_configuration({"learning_rate": 1e-3, "batch_size": 64, "dropout": 0.0})
    assert config.blocks == () and config.dropout is None and config.optimizer is None


def test_models_build_with_their_blocks_and_inputs():
    run_settings = chromosome.settings("smoke")
    tuned = chromosome.tuned_configuration({"learning_rate": 1e-3, "batch_size": 32, "dropout": 0.3,
                                            "optimizer": "rmsprop"})  # fmt: skip
    model = chromosome.build_model(tuned, (32, 16, 1), run_settings)
    assert model.get_layer("dropout").rate == 0.3 and type(model.optimizer).__name__ == "RMSprop"
    stretched, combined, ours = chromosome.later_configurations(("spp", "se"))
    assert stretched.inputs == "stretch" and combined.inputs == "pad" and ours.inputs == "ours" and ours.augment
    model = chromosome.build_model(combined, (32, 16, 1), run_settings)
    assert model.name == "baseline_spp_se" and model.output_shape == (None, K)
    model = chromosome.build_model(ours, (48, 24, 1), run_settings, steps_per_epoch=10)
    assert ours.blocks == ("spp", "se") and model.get_layer("spp") is not None  # as chosen
    # our row's learning rate decays from the scale's rate to 0 over its epochs, then stays there
    rate = model.optimizer.learning_rate if callable(model.optimizer.learning_rate) else model.optimizer._learning_rate
    steps = 10 * run_settings["ours_epochs"]
    assert [round(float(rate(step)), 6) for step in (0, steps // 2, steps, steps + 5)] == [1e-3, 5e-4, 0.0, 0.0]
    with pytest.raises(ValueError, match="steps_per_epoch"):
        chromosome.build_model(ours, (48, 24, 1), run_settings)
    with pytest.raises(ValueError, match="schedule='step'"):
        chromosome.build_model(dataclasses.replace(ours, schedule="step"), (48, 24, 1), run_settings, 10)
    transfer = chromosome.transfer_configurations(run_settings)[0]
    model = chromosome.build_model(transfer, (32, 16, 1), run_settings)
    assert model.get_layer("to_backbone_size").output.shape[1:3] == tuple(run_settings["transfer_size"])
    assert model.transfer_info["weights"] in ("imagenet", "random") and model.output_shape == (None, K)
    from medcnn.experiment.derived import penultimate

    features = penultimate(chromosome.build_model(chromosome.BLOCK_CONFIGURATIONS[8], (32, 16, 1), run_settings))
    assert features.output_shape == (None, 128 * (1 + 4 + 16))  # SPP bins 1, 2, 4 over 128 channels


def test_early_stopping_waits_for_batch_norm_statistics_on_batch_norm_rows(synthetic):
    """The BatchNorm rows stopped at epoch 7 and restored epoch 1 (validation at chance); early stopping now starts
    once their moving statistics have settled (`medcnn.train.bn_warmup_epochs`, momentum 0.9: 29 steps)."""
    run_settings = chromosome.settings("cpu")
    by_label = {config.label: config for config in chromosome.BLOCK_CONFIGURATIONS}
    batch = run_settings["batch_size"]
    starts = {label: bn_warmup_start(10 * batch, batch, uses_batch_norm(c.blocks)) for label, c in by_label.items()}
    batch_norm_blocks = {"residual", "dense", "batch_norm"}
    with_batch_norm = {label for label, config in by_label.items() if batch_norm_blocks & set(config.blocks)}
    assert len(with_batch_norm) == 3
    assert {label: start for label, start in starts.items() if start} == dict.fromkeys(with_batch_norm, 3)
    transfer = chromosome.transfer_configurations(run_settings)[0]
    x, labels, cases = synthetic
    split = {"train": np.arange(300), "val": np.arange(300, 320), "test": np.arange(320, 340)}
    configurations = [*chromosome.BLOCK_CONFIGURATIONS[6:8], transfer]
    runs = chromosome.make_runs(configurations, x, split, 0, 0, run_settings, "data-hash")
    (plain,), (batch_norm,), (frozen,) = (run.callbacks() for run in runs)
    # 10 steps per epoch: 29 steps in 3; the transfer row trains no BatchNorm
    assert (plain.start_from_epoch, batch_norm.start_from_epoch, frozen.start_from_epoch) == (0, 3, 0)
    assert batch_norm.patience == run_settings["early_stopping_patience"] and batch_norm.restore_best_weights
    assert chromosome.make_runs(runs and chromosome.BLOCK_CONFIGURATIONS[:1], x, split, 0, 0,
                                chromosome.settings("smoke"), "data-hash")[0].callbacks is None  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# The best combination and our row


def test_best_combination_is_greedy_by_gain_one_block_per_slot():
    gains = {"spp": 0.5, "recurrent": 0.4, "se": 0.2, "dense": 0.1, "batch_norm": 0.05, "dropout": -0.1}
    assert greedy_combination(gains, size=3) == ("spp", "se", "dense")  # recurrent: pooling is taken
    assert greedy_combination(gains, size=5) == ("spp", "se", "dense", "batch_norm")  # only gains > 0
    assert greedy_combination({"separable": 0.3, "batch_norm": 0.2, "cbam": 0.1}) == ("separable", "cbam")
    assert greedy_combination({"dropout": -0.01, "se": -0.05}) == ("dropout",)  # at least the best block
    # with `beyond`, blocks after the first join only when their gain is beyond noise
    assert greedy_combination(gains, size=3, beyond=["dense"]) == ("spp", "dense")
    assert greedy_combination(gains, size=3, beyond=[]) == ("spp",)


def test_block_gains_of_one_folds_records_and_our_rows_blocks():
    records = [
        {"row": label, "configuration": f"{label} | fold 1", "group": "blocks", "seed": 0, "fold": 1,
         "val_accuracy": 0.3 + 0.01 * i}
        for i, (label, _) in enumerate(chromosome.BLOCK_ROWS)
    ]  # fmt: skip
    gains = chromosome.block_gains(records + [{"row": chromosome.TUNED, "group": "tuned", "val_accuracy": 0.9}])
    assert list(gains) == [block for _, block in chromosome.BLOCK_ROWS[:0:-1]]  # the later rows gain more here
    assert gains["deformable"] == pytest.approx(0.11) and gains["residual"] == pytest.approx(0.01)
    assert chromosome.ours_blocks(("spp", "se", "batch_norm")) == ("spp", "se", "batch_norm")  # the fold's choice
    choices = [{"ours": ["se", "recurrent"]}, {"ours": ["recurrent"]}, {"ours": ["recurrent"]},
               {"ours": ["se", "recurrent"]}]  # fmt: skip
    assert crossval.most_chosen(choices, "ours") == ("se", "recurrent")  # a tie: the earliest fold's


# ----------------------------------------------------------------------------------------------------------------
# The karyotype view (`experiment.karyotype`)


def test_complete_adds_the_karyotype_accuracy_of_whole_metaphases_only():
    truth = [k for k in range(22) for _ in (0, 1)] + [22, 23]
    probabilities = np.full((len(truth), K), 0.1 / (K - 1))
    probabilities[np.arange(len(truth)), truth] = 0.9
    labels, cells = np.array(truth), np.array(["a"] * len(truth))
    folds = [{"fold": 1, "test_indices": list(range(len(truth))), "test_probabilities": probabilities.tolist()}]
    record = {"row": "r", "test_predict_s": 0.5, "sizes": {"test": 46}, **folds[0]}
    image_level = {**record, "protocol": "image-level"}  # parts of metaphases: no karyotype view
    chromosome.complete([record, image_level], labels, cells)
    assert record["test_karyotype_accuracy"] == 1.0 and record["test_images_per_s"] == pytest.approx(92.0)
    assert "test_karyotype_accuracy" not in image_level


# ----------------------------------------------------------------------------------------------------------------
# Findings and tables


def _fake_run(row, fold, accuracy, val, group="blocks", protocol="case-grouped"):
    confusion = np.zeros((K, K), int)
    right = int(round(accuracy * 100))
    for k in range(4):  # 4 classes of 25 crops: the majority class is a quarter, below every row here
        share = right // 4 + (k < right % 4)
        confusion[k, k], confusion[k, k + 1] = share, 25 - share
    return {
        "configuration": f"{row} | fold {fold}", "row": row, "fold": fold, "protocol": protocol, "group": group,
        "seed": 0, "val_accuracy": val, "test_accuracy": right / 100, "test_balanced_accuracy": right / 100,
        "test_macro_f1": right / 100, "test_karyotype_accuracy": right / 100 + 0.05,
        "test_confusion": confusion.tolist(),
        "epochs": 12, "epochs_cap": 20, "best_epoch": 8, "stopped_early": True, "parameters": 95768,
        "train_images_per_s": 1500.0, "test_images_per_s": 2500.0,
        "history": {"accuracy": [0.5], "val_accuracy": [val]},
    }  # fmt: skip


@pytest.fixture(scope="module")
def fake_cv():
    """Three folds of every row; the SPP row is 0.3 above the baseline in every fold (folds differ by 0.04)."""
    accuracy = {label: 0.40 for label in chromosome.ABLATION.index}
    accuracy.update({"+ spatial pyramid pooling": 0.70, chromosome.COMBINATION: 0.72, chromosome.STRETCHED: 0.60,
                     chromosome.OURS: 0.85, chromosome.OURS_IMAGE_LEVEL: 0.92})  # fmt: skip
    records = []
    for fold in (1, 2, 3):
        for i, (row, value) in enumerate(accuracy.items()):
            noise = 0.0 if row == "+ spatial pyramid pooling" else 0.01 * (i % 3 + 1) * (fold - 2)
            value = value + 0.02 * fold + noise
            protocol = "image-level" if row == chromosome.OURS_IMAGE_LEVEL else "case-grouped"
            records.append(_fake_run(row, fold, value, value, protocol=protocol))
    for record in records:
        if record["row"] == "+ batch normalisation" and record["fold"] == 2:  # one class for every crop
            record["test_confusion"] = np.zeros((K, K), int).tolist()
            record["test_confusion"][0][1] = 100
            record["history"] = {"accuracy": [0.7], "val_accuracy": [0.04]}
        if record["row"] == "+ dense block":
            record["stopped_early"] = False
    summary = experiment.summarise(records, chromosome.SUMMARY_METRICS, by="row")
    return records, summary, crossval.pooled_table(records, weighted=("test_karyotype_accuracy",))


def test_findings_are_computed_from_the_numbers_given(fake_cv):
    records, summary, pooled = fake_cv
    choices = [{"fold": k, "seed": 0, "combination": ["spp", "se"], "ours": ["se", "recurrent"],
                "tuned": {"learning_rate": 0.002}} for k in (1, 2, 3)]  # fmt: skip
    text = "\n".join(chromosome.findings(summary, pooled, records, choices, {"mobilenet_v2": "imagenet"},
                                         [("6", "8", 7)], chromosome.settings("cpu")))  # fmt: skip
    assert "1 of 60 runs collapsed, with their cause: '+ batch normalisation' fold 2: inference-mode statistics" in text
    assert "'+ spatial pyramid pooling' 8" in text and "compared before convergence): '+ dense block'" in text
    assert ("Rows above 'baseline CNN' on test accuracy beyond two standard errors, paired by fold, runs that "
            "learned: ") in text
    assert "'+ spatial pyramid pooling' (+0.300, standard error 0.006" in text  # paired: the folds' spread cancels
    assert "spp + se (3 of 3 folds)" in text and "test accuracy 0.760 ± 0.050 over folds, pooled 0.760" in text
    assert "Padding the crops to the input's aspect ratio is above stretching on test accuracy" in text
    assert "the tuned baseline and the untuned one do not differ on test accuracy beyond seed noise" in text
    assert "Our row (se + recurrent) on unseen cases: accuracy 0.890 ± 0.030 over folds, pooled 0.890" in text
    assert "after the karyotype assignment 0.940 ± 0.030" in text and "Our row is above the best combination" in text
    # two protocols test other items: never paired, even where their fold numbers match
    assert "Image-level folds (CIR-Net's protocol) is above case-grouped folds on test accuracy (+0.070" in text
    assert "3 vs 3 runs: beyond" in text and "image-level 0.960 ± 0.040 over folds, pooled 0.960" in text
    assert "against CIR-Net's published accuracy: test accuracy 0.960 over 3 runs, standard error 0.023" in text
    assert "6 and 8 (7)" in text and text.count("runs collapsed") == 1  # said once, with the cause
    assert "The search (3 trials of 4 epochs per fold; KerasTuner draws its first 12 trials at random" in text
    assert "a block joins only when its gain over the baseline is beyond two standard errors" in text
    assert "Our row, accuracy on unseen cases: Goal 0.93: the mean 0.890 misses it; 0 of 3 runs reach it (0." in text
    assert "(fold 1)" in text and "karyotype accuracy on unseen cases: Goal 0.97: the mean 0.940 misses it" in text
    assert "The karyotype constraint (each metaphase" in text and "on our row's folds: " in text
    assert "Same model, two protocols" in text  # every fold chose se + recurrent
    for record in crossval.rows_of(records, chromosome.TUNED):
        record["test_confusion"] = [[5] + [0] * (K - 1)] * K  # every crop called "1"
    text = "\n".join(chromosome.findings(summary, pooled, records, choices, {"mobilenet_v2": "imagenet"}, []))
    assert "the tuned baseline collapsed in every fold: there is nothing to compare it with." in text


def test_table_lists_every_row_then_references_and_the_anchor(fake_cv):
    _, summary, pooled = fake_cv
    shown = chromosome.table(summary, pooled)
    assert list(shown.index[:-3]) == list(chromosome.ABLATION.index) and "CIR-Net" in shown.index[-1]
    assert list(shown.index[-3:-1]) == ["reference: majority class", "reference: chance"]
    assert shown.loc["reference: chance", "accuracy"] == f"{1 / K:.3f}" and shown.iloc[-1]["accuracy"] == "0.9598"
    assert shown.loc["baseline CNN", "runs (folds x seeds)"] == "3"
    assert shown.loc["baseline CNN", "collapsed"] == "0 of 3"
    assert shown.loc["+ batch normalisation", "collapsed"] == "1 of 3"
    assert shown.loc["baseline CNN", "parameters"] == "95,768" and shown.loc["baseline CNN", "best epoch"] == "8"
    assert shown.loc[chromosome.OURS, "pooled accuracy"] == "0.890"
    assert shown.loc[chromosome.OURS, "pooled karyotype accuracy"] == "0.940"
    both = chromosome.table(summary, pooled, rows=[chromosome.OURS, chromosome.OURS_IMAGE_LEVEL])
    assert list(both.index[:2]) == [chromosome.OURS, chromosome.OURS_IMAGE_LEVEL]


def test_seeding_says_the_search_is_held_fixed_and_our_augmentation_varies():
    policy = chromosome.seeding(chromosome.settings("smoke"), {"mobilenet_v2": "imagenet"})
    assert "augmentation draws (ours)" in policy["seed_varies"] and "search" in policy["held_fixed"]
    assert "pretrained backbone weights" in policy["held_fixed"]


# ----------------------------------------------------------------------------------------------------------------
# The plan


def test_plan_lists_every_fold_of_both_protocols(shared_data):
    run_settings = chromosome.settings("cpu")
    planned = chromosome.plan_runs(run_settings, shared_data)
    rows = len(chromosome.BLOCK_ROWS) + 1 + 1 + 3  # blocks, tuned, transfer, stretched, combination, ours
    folds = run_settings["folds"]
    image_folds = run_settings["image_folds_run"]
    assert len(planned) == folds * (1 + rows) + image_folds  # a search per fold
    trials = f"{run_settings['tuner_trials']} trials x {run_settings['tuner_epochs']} epochs"
    assert planned[0].label == f"{chromosome.TUNED}: search, {trials} | fold 1"
    assert planned[1].label == "baseline CNN | fold 1"
    ours = [run for run in planned if run.model == "chromosome_cnn:ours"]
    assert len(ours) == folds + image_folds and {run.image_size for run in ours} == {run_settings["ours_size"]}
    assert {run.epochs for run in ours} == {run_settings["ours_epochs"]} and not any(run.early_stopping for run in ours)
    stopped = [run for run in planned if run.model != "chromosome_cnn:ours" and ": search" not in run.label]
    assert all(run.early_stopping for run in stopped)
    # every crop is tested once: each fold trains on the others less its validation cases
    assert all(1400 < run.images_per_epoch < 2200 for run in planned)


# ----------------------------------------------------------------------------------------------------------------
# The notebook, end to end at smoke scale


def check_smoke_fills_every_row_of_the_table(chromosome_smoke):
    results = chromosome_smoke.results
    table = results["tables"]["Ablation"]
    assert list(table) == list(chromosome.ABLATION.index)
    for label, row in table.items():
        for column in ("accuracy", "balanced accuracy", "macro F1", "parameters", "inference images/s"):
            assert isinstance(row[column]["ours"], float) and math.isfinite(row[column]["ours"]), (label, column)
            assert row[column]["paper"] is None or math.isnan(row[column]["paper"])
    run = results["run"]
    rows = len(table) - 2 + 1  # the ensemble and SVM are derived; our row also runs in an image-level fold
    assert run["scale"] == "smoke" and run["trained_now"] == run["runs"] == rows
    section = chromosome_smoke.section("Ablation")
    for label in chromosome.ABLATION.index:
        assert section.count(f"| {label} |") == 1
    assert results["anchor"]["accuracy"] == chromosome.ANCHOR["accuracy"]
    runs = results["runs"]
    assert {r["protocol"] for r in runs if "protocol" in r} == {"case-grouped", "image-level"}
    assert all(r["fold"] == 1 for r in runs) and "1 of 7 case-grouped folds" in chromosome_smoke.report()


def check_smoke_model_learns_and_predicts_crops_of_cases_it_never_saw(chromosome_smoke):
    """The best smoke model's balanced test accuracy is at least chance (1/24) + 0.15, and so is that of the
    exported model.keras on the raw crop files of its fold's test cases."""
    from sklearn.metrics import balanced_accuracy_score

    best = chromosome_smoke.results["best_run"]
    assert best["test_balanced_accuracy"] >= CHANCE + 0.15
    record = chromosome_smoke.record(best)
    data, _ = chromosome.load_data()
    test = np.asarray(record["test_indices"])
    predicted = chromosome_smoke.predict([data.paths[i] for i in test])
    assert predicted.names == chromosome.CLASS_NAMES
    assert balanced_accuracy_score(data.labels[test], predicted.guesses) >= CHANCE + 0.15
    # the saved model computes from the raw files what the notebook computed from its own inputs (no skew)
    np.testing.assert_allclose(predicted.probabilities, record["test_probabilities"], atol=2e-3)


def test_readme_section_from_the_committed_smoke_run(committed_results):
    payload = committed_results("chromosome")
    section = chromosome.readme_section(payload, "smoke")
    assert all(f"| {label} |" in section for label in payload["tables"]["Ablation"])
    assert "results/chromosome/smoke/report.md" in section and "CIR-Net" in section
    protocol = payload.get("protocol")
    assert protocol is None or protocol in section  # a run since the cross-validation names its protocol
    assert "mean ± std over the case-grouped folds" in section  # a v3 run's spread is over folds, not seeds


def test_protocol_text_says_how_many_folds_of_each_protocol_ran():
    cpu = chromosome.protocol_text(chromosome.settings("cpu"))
    assert "5-fold cross-validation of the CIR-Net crops (all of them, so every case is tested once)" in cpu
    assert "our row also in 3 of the 5 folds of image-level cross-validation" in cpu
    smoke = chromosome.protocol_text(chromosome.settings("smoke"))
    assert "case-grouped 7-fold cross-validation of the CIR-Net crops (1 of them run)" in smoke
    assert "in 1 of the 5 folds of image-level" in smoke
    full = chromosome.protocol_text(chromosome.settings("full"))
    assert "every case is tested once" in full and "also in 5 folds of image-level" in full
