"""The kth study: settings, rows, the pool and its two protocols, leakage, models and stages, which models learned,
MC dropout, the findings, the plan and the notebook."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcnn import experiment
from medcnn.data import karyogram_pool
from medcnn.experiment.protocols import compare_rows_learned
from medcnn.experiment.referral import best_learned_rows, wrong_test_cases
from medcnn.models.heads import HeadSpec, build_head
from medcnn.report.published import with_extra_row
from medcnn.studies import kth

CHANCE = 1 / len(kth.CLASS_NAMES)
OFFLINE = {"vgg16": "random", "inception_v3": "random", "mobilenet_v2": "imagenet"}


# ----------------------------------------------------------------------------------------------------------------
# Settings and rows


def test_scales_grow_from_smoke_to_cpu_to_full():
    smoke, cpu, full = (kth.settings(scale) for scale in ("smoke", "cpu", "full"))
    assert (smoke["scale"], cpu["scale"], full["scale"]) == ("smoke", "cpu", "full")
    assert set(smoke) == set(cpu) == set(full)
    for key in ("fine_tune_epochs", "tuner_trials", "tuner_epochs", "mc_passes", "bootstrap_resamples"):
        assert smoke[key] <= cpu[key] <= full[key], key
    for key in ("image_size", "transfer_size", "scratch_size"):
        pixels = [math.prod(s[key]) for s in (smoke, cpu, full)]
        assert pixels == sorted(pixels), key
    assert min(smoke["image_size"]) >= 75  # InceptionV3's smallest input
    assert smoke["resolution_size"] is None and min(cpu["resolution_size"]) >= 300 > max(cpu["scratch_size"])
    assert full["image_size"] == (416, 416) and full["mc_passes"] == 100
    assert full["original_counts"] == cpu["original_counts"] == {"normal": 105, "abnormal": 41}
    assert full["augmented_counts"] == {"normal": 376, "abnormal": 316}
    assert len(smoke["seeds"]) < len(cpu["seeds"]) <= len(full["seeds"])
    assert set(kth.SETTINGS) == {"smoke", "cpu", "full"}  # medcnn.studies.SCALES


def test_settings_reject_unknown_overrides():
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['epoch'\]"):
        kth.settings("smoke", epoch=3)
    assert kth.settings("cpu", epochs=2, seeds=None)["epochs"] == 2


def test_configurations_are_table_5_1_then_the_stand_in_and_the_small_cnn():
    assert [c.row for c in kth.CONFIGURATIONS] == list(kth.TABLE_5_1.index) + kth.OUR_ROWS
    assert [c.stage for c in kth.CONFIGURATIONS] == [1, 1, 1, 1, 2, 2, 2, 1, 1, 2, 2, 2, 0, 0, 0]
    stand_in = [kth.BY_ROW[row] for row in kth.STAND_IN_ROWS]
    assert [(c.data, c.trainable) for c in stand_in] == [("original", 0), ("augmented", 0), ("augmented", 1),
                                                          ("augmented", 2), ("augmented", "all")]  # fmt: skip
    assert [c.trainable for c in kth.STAGE_TWO[:3]] == [1, 2, "all"]  # VGG16's two, InceptionV3 whole
    for config in kth.STAGE_TWO:
        first = kth.stage_one_of(config)
        assert first.stage == 1 and first.backbone == config.backbone and first.data == "augmented"
    small = [kth.BY_ROW[row] for row in (kth.FLATTEN_ROW, kth.GAP_ROW, kth.RESOLUTION_ROW)]
    assert [(c.pooling, c.input_size(kth.settings("cpu"))) for c in small] == [
        ("flatten", (150, 150)),
        ("gap", (150, 150)),
        ("flatten", kth.settings("cpu")["resolution_size"]),
    ]
    assert kth.CONFIGURATIONS[0].label("honest") == "original data, VGG16 | honest"
    assert set(kth.METRIC_KEYS["Table 5.1"]) == set(kth.TABLE_5_1.columns)


def test_rows_run_only_with_imagenet_weights_and_the_resolution_row_from_cpu_on():
    smoke, cpu = kth.settings("smoke"), kth.settings("cpu")
    offline = [c.row for c in kth.configurations_to_run(smoke, OFFLINE)]
    assert offline == kth.STAND_IN_ROWS + [kth.FLATTEN_ROW, kth.GAP_ROW]
    assert kth.RESOLUTION_ROW in [c.row for c in kth.configurations_to_run(cpu, OFFLINE)]
    everything = {name: "imagenet" for name in OFFLINE}
    assert len(kth.configurations_to_run(cpu, everything)) == len(kth.CONFIGURATIONS)
    assert kth.backbone_weights(smoke)["mobilenet_v2"] == "imagenet"  # staged in ../shared/weights
    notes = kth.row_notes(OFFLINE)
    assert notes == {row: kth.NEEDS_WEIGHTS for row in kth.ROWS}
    assert kth.row_notes({"VGG16": "random"}, ran=[kth.ROWS[0]])[kth.ROWS[0]] == "random weights"


def test_table_ids_and_our_rows():
    assert kth.table_id("published") == "Table 5.1 (published)"
    with pytest.raises(ValueError, match="Received: protocol='leaky'"):
        kth.table_id("leaky")
    table = with_extra_row(kth.TABLE_5_1, *kth.OUR_ROWS)  # Table 5.1 beside our rows (`_paper_and_notes`)
    assert list(table.index) == list(kth.TABLE_5_1.index) + kth.OUR_ROWS
    assert table.loc[kth.OUR_ROWS].isna().all().all() and table.loc[kth.TABLE_5_1.index[0], "AUC"] == 0.79
    assert table.index.name == "network and condition"


# ----------------------------------------------------------------------------------------------------------------
# The pool of a user's folders (`medcnn.data.karyogram_pool`, tested in test_karyogram_pool.py)


def _karyogram_folder(root):
    """A user's karyogram folders (normal/, abnormal/) of 25 tiny white images with dark bars."""
    rng = np.random.default_rng(3)
    for index in range(25):
        image = np.full((32, 32), 255, np.uint8)
        for row in (4, 14, 24):
            start = int(rng.integers(2, 8))
            image[row : row + 5, start : start + 20] = int(rng.integers(20, 90))
        name = "abnormal" if index < 10 else "normal"
        (root / name).mkdir(exist_ok=True)
        Image.fromarray(image).save(root / name / f"k{index:02d}.png")
    return root


@pytest.fixture(scope="module")
def folder_pool(tmp_path_factory):
    """The pool of a user's karyogram folders at tiny counts."""
    tiny = {"source_size": (32, 32), "original_counts": {"normal": 15, "abnormal": 10},
            "augmented_counts": {"normal": 25, "abnormal": 25}}  # fmt: skip
    source = karyogram_pool.load_source(_karyogram_folder(tmp_path_factory.mktemp("karyograms")), (32, 32))
    return source, karyogram_pool.build_pool(source, kth.settings("smoke", **tiny), seed=0)


# ----------------------------------------------------------------------------------------------------------------
# Models: the head, the stages, the exported image model


def test_head_spec_batch_norm_momentum():
    head = build_head(HeadSpec(2, batch_norm=True, batch_norm_momentum=0.9), (2, 2, 8))
    assert head.get_layer("bn").momentum == 0.9
    assert build_head(HeadSpec(2, batch_norm=True), (2, 2, 8)).get_layer("bn").momentum == 0.99
    with pytest.raises(ValueError, match="Received: batch_norm_momentum=1.5"):
        HeadSpec(2, batch_norm=True, batch_norm_momentum=1.5)


def test_head_model_is_the_thesis_head_with_kth_metrics():
    run_settings = kth.settings()
    model = kth.head_model((2, 2, 8), run_settings)
    assert [type(layer).__name__ for layer in model.layers[1:]] == [
        "GlobalAveragePooling2D", "BatchNormalization", "Dropout", "Dense", "Dropout", "Dense",
    ]  # fmt: skip
    assert model.get_layer("bn").momentum == run_settings["batch_norm_momentum"]
    assert model.output_shape == (None, 2)
    x = np.random.default_rng(0).random((32, 2, 2, 8)).astype("float32")
    y = np.eye(2, dtype="float32")[np.r_[np.zeros(16, int), np.ones(16, int)]]
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert {"auc", "precision", "recall", "accuracy"} <= set(logs)


def test_auc_metric_is_the_abnormal_columns_auc():
    from sklearn.metrics import roc_auc_score

    metric = kth.kth_metrics()[1]
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    p = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    metric.update_state(np.eye(2)[labels], np.stack([1 - p, p], axis=1))
    assert float(metric.result()) == pytest.approx(roc_auc_score(labels, p), abs=0.01)


# ----------------------------------------------------------------------------------------------------------------
# Models and runs (MobileNetV2 at 32 px: its staged ImageNet file fits every size)


@pytest.fixture(scope="module")
def small_settings():
    """Smoke settings on 32 px inputs, a narrow head, two epochs."""
    return kth.settings("smoke", image_size=(32, 32), transfer_size=(32, 32), scratch_size=(32, 32), head_units=8,
                        epochs=2, fine_tune_epochs=1, scratch_epochs=2)  # fmt: skip


def test_small_cnn_with_gap_is_the_same_cnn_without_position(small_settings):
    flat = kth.small_cnn((32, 32, 1), small_settings, "flatten", seed=0)
    gap = kth.small_cnn((32, 32, 1), small_settings, "gap", seed=0)
    names = lambda model: [layer.name for layer in model.layers]  # noqa: E731
    convs = lambda model: [(layer.name, layer.kernel.shape) for layer in model.layers if layer.name[:4] == "conv"]  # noqa: E731
    assert convs(flat) == convs(gap) and len(convs(flat)) == 3
    assert "flatten" in names(flat) and "flatten" not in names(gap) and "gap" in names(gap)
    assert gap.output_shape == flat.output_shape == (None, 2)
    assert gap.get_layer("probabilities_gap").kernel.shape == (64, 2)  # one weight per channel: no place


def test_stage_two_trains_the_last_block_on_stem_features_from_the_stage_one_head(small_settings, tmp_path):
    config = kth.BY_ROW["MobileNetV2, last block trained"]
    spec = kth.feature_spec("mobilenet_v2", small_settings)
    head = kth.head_model((1, 1, 1280), small_settings)
    head.get_layer("dense1").set_weights([w + 1.0 for w in head.get_layer("dense1").get_weights()])
    path = tmp_path / "head.weights.h5"
    head.save_weights(path)
    model = kth.fine_tune_model(config, small_settings, seed=0, head_weights=path)
    assert model.input_shape[1:] == (1, 1, 160)  # the input of block_16: the stem serves both last-block rows
    for mine, theirs in zip(model.get_layer("head").get_weights(), head.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    tail = model.layers[1]
    assert {layer.name for layer in tail.layers if layer.trainable_weights} == {"Conv_1"}  # Conv_1_bn stays frozen
    assert kth.stem_blocks("mobilenet_v2") == kth.stem_blocks("vgg16") == 2
    assert model.optimizer.learning_rate.numpy() == pytest.approx(small_settings["fine_tune_learning_rate"])
    assert spec.outputs == ("map",) and kth.feature_spec("mobilenet_v2", small_settings, stem_blocks=2).stem_blocks
    with pytest.raises(FileNotFoundError, match="REUSE_RUNS=False"):
        kth.fine_tune_model(config, small_settings, head_weights=tmp_path / "missing.weights.h5")


def test_a_stem_model_exported_on_its_backbone_predicts_as_on_the_stem_features(small_settings, tmp_path):
    config = kth.BY_ROW["MobileNetV2, last two blocks trained"]
    spec = kth.feature_spec("mobilenet_v2", small_settings, stem_blocks=2)
    images = np.round(np.random.default_rng(0).random((4, 32, 32, 1)) * 255).astype("float32") / 255
    stems = experiment.extract(spec, images, log=lambda *a: None).x
    model = kth.fine_tune_model(config, small_settings, seed=0)
    run = experiment.Run("x", 0, lambda: model, {"train": [0]}, 1, 1, settings=config.settings("honest"))
    path = kth.export(run, model, {"specs": {("mobilenet_v2", "stem"): spec}}, tmp_path / "model.keras")
    import keras

    exported = keras.saving.load_model(path)
    raw = np.round(images * 255).astype("float32")  # the saved model reads raw pixels and scales them itself
    np.testing.assert_allclose(exported.predict(raw, verbose=0), model.predict(stems, verbose=0), atol=1e-4)


def _blank_inputs(pool, small_settings):
    """`prepare_inputs`' shape without computing anything: zero features (lazy, as the library gives them) and
    zero 32x32 images."""
    zeros = lambda shape: experiment.LazyInputs(
        lambda: (np.zeros((len(pool), *shape), "float32"), pool.labels), {"zeros": list(shape)}
    )  # noqa: E731
    return {"features": {("mobilenet_v2", "map"): zeros((1, 1, 1280)), ("mobilenet_v2", "stem"): zeros((1, 1, 160))},
            "images": {(32, 32): np.zeros((len(pool), 32, 32, 1), "float32")}, "specs": {}}  # fmt: skip


def test_make_run_carries_its_own_inputs_and_starts_from_stage_one(folder_pool, small_settings, tmp_path):
    _, pool = folder_pool
    inputs = _blank_inputs(pool, small_settings)
    cache = experiment.RunCache(tmp_path)
    make = lambda row, protocol="honest", search=None: kth.make_run(  # noqa: E731
        kth.BY_ROW[row], protocol, pool, inputs, small_settings, "data", cache, search
    )
    first, x_first = make(kth.STAND_IN_ROWS[1])
    last_block, x_block = make(kth.STAND_IN_ROWS[2])
    whole, x_whole = make(kth.STAND_IN_ROWS[4])
    gap, x_gap = make(kth.GAP_ROW)
    assert (
        x_first is inputs["features"][("mobilenet_v2", "map")]
        and x_block is inputs["features"][("mobilenet_v2", "stem")]
    )
    assert x_whole[0].shape[1:] == x_gap[0].shape[1:] == (32, 32, 1) and np.array_equal(x_gap[1], pool.labels)
    assert gap.epochs == small_settings["scratch_epochs"] and gap.starts_from is None
    assert first.epochs == small_settings["epochs"] and whole.epochs == small_settings["fine_tune_epochs"]
    assert last_block.starts_from.fingerprint == whole.starts_from.fingerprint == first.fingerprint
    assert first.label == "augmented data, MobileNetV2 | honest" and first.group == "honest"
    np.testing.assert_array_equal(first.split["train"], pool.splits["honest"]["augmented"]["train"])
    assert make(kth.STAND_IN_ROWS[1], "published")[0].fingerprint != first.fingerprint
    # the search's choice changes the rows it tuned (and what starts from them) when it beat the thesis' setting
    won = {"used": "search", "rows": [kth.STAND_IN_ROWS[1]], "search": {"learning_rate": 0.003, "batch_size": 8}}
    tuned, _ = make(kth.STAND_IN_ROWS[1], search=won)
    assert tuned.batch_size == 8 and tuned.fingerprint != first.fingerprint
    assert make(kth.STAND_IN_ROWS[2], search=won)[0].starts_from.fingerprint == tuned.fingerprint
    assert make(kth.STAND_IN_ROWS[1], search={**won, "used": "thesis"})[0].fingerprint == first.fingerprint
    model = gap.build_model()
    assert model.output_shape == (None, 2) and any(layer.name == "gap" for layer in model.layers)


def test_stage_two_loads_stage_ones_head_saved_under_its_fingerprint_else_restores_it(
    folder_pool, small_settings, tmp_path, capsys
):
    import keras

    _, pool = folder_pool
    inputs = _blank_inputs(pool, small_settings)
    cache = experiment.RunCache(tmp_path)
    first, _ = kth.make_run(kth.BY_ROW[kth.STAND_IN_ROWS[1]], "honest", pool, inputs, small_settings, "data", cache)
    head = kth.head_model((1, 1, 1280), small_settings)
    precision = keras.config.dtype_policy().name
    cache.save(first.key, {"fingerprint": "other settings", "precision": precision}, head)
    cache.save(first.key, {"fingerprint": first.fingerprint, "precision": precision})
    restored = tmp_path / "cache" / "retrain" / "cache" / "weights" / f"{first.key}.weights.h5"
    assert kth.stage_one_weights(first, cache) == restored  # weights of other settings: stage one trained again
    assert f"'{first.label}' seed 0" in capsys.readouterr().out
    cache.save(first.key, {"fingerprint": first.fingerprint, "precision": precision}, head)
    assert kth.stage_one_weights(first, cache) == cache.weights_path(first.key)


# ----------------------------------------------------------------------------------------------------------------
# Which models learned, MC dropout, the search


def _record(row, protocol, seed, val_auc, test_auc=0.7, collapsed=False, val=(22, 22)):
    config = kth.BY_ROW[row]
    negatives, positives = val
    val_confusion = [[negatives, 0], [positives, 0]] if collapsed else [[negatives - 4, 4], [6, positives - 6]]
    return {"configuration": config.label(protocol), "group": protocol, "seed": seed, "val_roc_auc": val_auc,
            "test_roc_auc": test_auc, "val_confusion": val_confusion, "settings": config.settings(protocol),
            "test_confusion": [[10, 0], [10, 0]] if collapsed else [[8, 2], [3, 7]]}  # fmt: skip


def test_mc_choices_take_each_backbones_best_learned_row_with_every_seed_that_learned():
    records = [_record(row, "honest", 0, 0.70 + 0.01 * i) for i, row in enumerate(kth.OUR_ROWS)]
    records += [_record(kth.STAND_IN_ROWS[1], "honest", 1, 0.99), _record(kth.STAND_IN_ROWS[1], "honest", 2, 0.55)]
    records += [_record(kth.STAND_IN_ROWS[4], "honest", 1, 0.50), _record(kth.GAP_ROW, "published", 0, 0.99)]
    picks = best_learned_rows([r for r in records if r["group"] == "honest"], kth.BACKBONE_NAMES)
    assert set(picks) == {"MobileNetV2", "small CNN"}  # no VGG16 or InceptionV3 run
    row, chosen = picks["MobileNetV2"]  # seed 1's 0.99 makes the augmented row's learned mean the best
    assert row == kth.STAND_IN_ROWS[1] and [r["seed"] for r in chosen] == [0, 1]  # seed 2 did not learn
    assert picks["small CNN"][0] == kth.RESOLUTION_ROW
    assert best_learned_rows([_record(kth.GAP_ROW, "honest", 0, 0.5)], kth.BACKBONE_NAMES) == {}


def test_search_choice_uses_the_search_only_where_it_beats_the_thesis_and_says_when_within_noise():
    trials = pd.DataFrame({"score": [0.60, 0.66, 0.63]})
    labels = np.r_[np.zeros(22, int), np.ones(22, int)]
    best = {"learning_rate": 0.002, "batch_size": 8, "dropout": 0.5}
    settings = kth.settings("smoke")
    won = kth.search_choice(trials, best, 0.62, labels, settings, "mobilenet_v2")
    assert won["used"] == "search" and won["search"] == {"learning_rate": 0.002, "batch_size": 8}
    assert won["within_noise"] and won["rows"] == [kth.STAND_IN_ROWS[1]] and won["trials_range"] == [0.60, 0.66]
    assert won["standard_error"] == pytest.approx(0.082, abs=0.002)  # Hanley-McNeil at 0.66 on 22 + 22
    lost = kth.search_choice(trials, best, 0.95, labels, settings, "mobilenet_v2")
    assert lost["used"] == "thesis" and not lost["within_noise"]
    config = kth.BY_ROW[kth.STAND_IN_ROWS[1]]
    assert kth.settings_for(config, settings, won)["batch_size"] == 8
    assert kth.settings_for(config, settings, lost) is settings
    assert kth.settings_for(kth.BY_ROW[kth.STAND_IN_ROWS[0]], settings, won) is settings


def _passes(votes_for_abnormal, passes=10):
    """(passes, N, 2): image i gets `votes_for_abnormal[i]` passes with P(abnormal) 0.9, the rest 0.1."""
    out = np.zeros((passes, len(votes_for_abnormal), 2))
    for i, votes in enumerate(votes_for_abnormal):
        p = np.r_[np.full(votes, 0.9), np.full(passes - votes, 0.1)]
        out[:, i] = np.stack([1 - p, p], axis=1)
    return out


def _fake_pool(labels, aberrations, metaphases):
    table = pd.DataFrame({"aberration": aberrations, "karyotype": [f"k{i}" for i in range(len(labels))],
                          "host_metaphase": metaphases, "host_case": [m[0] for m in metaphases]})  # fmt: skip
    return karyogram_pool.Pool(np.zeros((len(labels), 2, 2, 1), np.uint8), np.asarray(labels), table, {}, 0)


def test_mc_wrong_cases_name_the_pool_image_and_its_aberration():
    pool = _fake_pool([0, 1, 1, 0], ["normal", "deletion", "trisomy_21", "normal"], ["a1", "a2", "b1", "b2"])
    index = np.array([3, 1, 2])
    wrong = wrong_test_cases(_passes([10, 0, 9]), pool.labels[index], index, kth.CLASS_NAMES, 0.8, pool.table,
                             ("aberration", "karyotype"), item="pool image")
    assert wrong["pool image"].tolist() == [3, 1]  # image 2 (trisomy_21, 9 votes) is right
    assert wrong["mean_softmax"].tolist() == pytest.approx([0.9, 0.1])
    assert wrong["aberration"].tolist() == ["normal", "deletion"]


def test_aberration_table_and_metaphase_intervals_read_the_test_predictions():
    labels = np.r_[np.zeros(8, int), np.ones(8, int)]
    kinds = ["normal"] * 8 + ["deletion"] * 4 + ["trisomy_21"] * 4
    pool = _fake_pool(labels, kinds, [f"m{i % 4}" for i in range(16)])
    scores = np.r_[np.linspace(0.1, 0.4, 8), [0.3, 0.45, 0.6, 0.7], [0.8, 0.9, 0.95, 0.99]]
    record = {**_record(kth.FLATTEN_ROW, "honest", 0, 0.9), "test_indices": list(range(16)),
              "test_probabilities": np.stack([1 - scores, scores], axis=1).tolist()}  # fmt: skip
    collapsed = {**_record(kth.GAP_ROW, "honest", 0, 0.9, collapsed=True), "test_indices": list(range(16)),
                 "test_probabilities": [[0.1, 0.9]] * 16}  # fmt: skip
    table = kth.aberration_table([record, collapsed], {0: pool}, [kth.FLATTEN_ROW, kth.GAP_ROW])
    assert table.index.tolist() == ["normal", "deletion", "trisomy_21"] and list(table) == [kth.FLATTEN_ROW]
    assert table[kth.FLATTEN_ROW].tolist() == ["0/8", "2/4", "4/4"]
    intervals = kth.metaphase_intervals([record], {0: pool}, kth.settings("smoke"))
    row = intervals.iloc[0]
    assert (row["metaphases"], row["karyograms"], row["cases"]) == (4, 16, 1)
    assert row["low"] <= row["test AUC"] <= row["high"] and row["test AUC"] == pytest.approx(scores_auc(labels, scores))


def scores_auc(labels, scores):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(labels, scores)


# ----------------------------------------------------------------------------------------------------------------
# Tables and findings


def test_leakage_is_judged_per_row_on_the_runs_that_learned():
    records = []
    for seed, noise in enumerate((0.0, 0.04, -0.04)):
        records += [_record(kth.FLATTEN_ROW, "published", seed, 0.9, 0.95 + noise / 10),
                    _record(kth.FLATTEN_ROW, "honest", seed, 0.8, 0.75 - noise / 10),  # +0.2 +- 0.008: beyond noise
                    _record(kth.STAND_IN_ROWS[1], "published", seed, 0.8, 0.6 + noise),
                    _record(kth.STAND_IN_ROWS[1], "honest", seed, 0.8, 0.6 - noise),  # around zero: within noise
                    _record(kth.GAP_ROW, "published", seed, 0.5, 0.5, collapsed=True),
                    _record(kth.GAP_ROW, "honest", seed, 0.8, 0.7)]  # fmt: skip
    text = kth.leakage_statement(records)
    assert f"'{kth.FLATTEN_ROW}' +0.200" in text and "(above)" in text and "(within noise)" in text
    assert "beyond two standard errors for 1 of 2 row(s)" in text
    assert f"so not compared: '{kth.GAP_ROW}'" in text
    said = compare_rows_learned(records, kth.FLATTEN_ROW, kth.GAP_ROW, "published", 0.05)
    assert said == f"no run of '{kth.GAP_ROW}' learned, so the two are not compared."
    assert "is above" in compare_rows_learned(records, kth.FLATTEN_ROW, kth.GAP_ROW, "honest", 0.05)


def test_table_marks_collapsed_rows_the_missing_weights_and_the_reference_rows():
    records = []
    for seed in range(3):
        records += [
            {**_record(kth.GAP_ROW, "honest", seed, 0.5, 0.5, collapsed=True), "test_accuracy": 0.5},
            {**_record(kth.STAND_IN_ROWS[1], "honest", seed, 0.8, 0.7 + seed / 100), "test_accuracy": 0.75},
        ]
    shown = kth.table(records, OFFLINE, protocols=("honest",))
    assert kth.FLATTEN_ROW not in shown.index  # did not run, needs no weights: left out
    assert shown.loc[kth.ROWS[0], "note"] == kth.NEEDS_WEIGHTS and shown.loc[kth.ROWS[0], "AUC: honest"] == ""
    assert shown.loc[kth.ROWS[0], "AUC: thesis"] == "0.79"
    collapsed, learned = shown.loc[kth.GAP_ROW], shown.loc[kth.STAND_IN_ROWS[1]]
    assert collapsed["AUC: honest"] == "collapsed" and collapsed["collapsed: honest"] == "3 of 3"
    assert learned["AUC: honest"] == "0.71 ± 0.01" and learned["collapsed: honest"] == "0 of 3"
    assert shown.loc["reference: majority class", "accuracy: honest"] == "0.50"
    assert shown.loc["reference: chance", "AUC: honest"] == "0.50"


def test_plan_lists_the_rows_the_notebook_trains():
    for scale in ("smoke", "cpu"):
        run_settings = kth.settings(scale)
        planned = kth.plan_runs(run_settings)
        trained = [p.label.rsplit(" | ", 1)[0] for p in planned if " | " in p.label]
        configurations = kth.configurations_to_run(run_settings, OFFLINE)
        assert sorted(set(trained)) == sorted(c.row for c in configurations) and not set(trained) & set(kth.ROWS)
        protocols = sum(1 if c.protocol else 2 for c in configurations)  # the resolution row: honest only
        assert len(trained) == protocols * len(run_settings["seeds"])
    full = {p.label.rsplit(" | ", 1)[0] for p in kth.plan_runs(kth.settings("full")) if " | " in p.label}
    assert set(kth.ROWS) <= full  # on Colab the ImageNet weights download


# ----------------------------------------------------------------------------------------------------------------
# The notebook, end to end at smoke scale


def check_smoke_fills_table_5_1_for_both_protocols(kth_smoke):
    results = kth_smoke.results
    for protocol in kth.PROTOCOLS:
        table = results["tables"][kth.table_id(protocol)]
        assert list(table) == [*kth.TABLE_5_1.index, *kth.STAND_IN_ROWS, kth.FLATTEN_ROW, kth.GAP_ROW]
        for row in kth.TABLE_5_1.index:  # offline: no ImageNet weights, no random-weight numbers
            assert table[row]["note"] == kth.NEEDS_WEIGHTS and table[row]["runs"] == 0
            assert table[row]["AUC"]["paper"] == kth.TABLE_5_1.at[row, "AUC"] and table[row]["AUC"]["ours"] is None
        for row in (*kth.STAND_IN_ROWS, kth.FLATTEN_ROW, kth.GAP_ROW):
            assert table[row]["runs"] == 1 and math.isfinite(table[row]["AUC"]["ours"]), row
    run = results["run"]
    assert run["scale"] == "smoke" and run["trained_now"] == run["runs"] == 2 * 7
    leaks = {(row["protocol"], row["data"]): row for row in results["leakage"]}
    assert leaks[("honest", "augmented")]["copies of a training karyogram"] == 0
    assert leaks[("published", "augmented")]["copies of a training karyogram"] > 0
    assert kth_smoke.report().count(f"| {kth.ROWS[0]} | {kth.NEEDS_WEIGHTS} |") == 1


def check_smoke_runs_mc_dropout_only_on_models_that_learned(kth_smoke):
    results = kth_smoke.results
    learned = results["learned"]
    for entry in results["mc_dropout"]:
        assert learned[f"{entry['row']} | {entry['protocol']} (seed {entry['seed']})"]
        assert entry["passes"] == kth.settings("smoke")["mc_passes"] and 0 <= entry["referred"] <= entry["images"]
        assert 0 <= entry["ece"] <= 1 and isinstance(entry["wrong_cases"], list)
    assert any(entry["protocol"] == "honest" for entry in results["mc_dropout"])
    assert results["metaphase_intervals"] and all(r["low"] <= r["test AUC"] <= r["high"]
                                                  for r in results["metaphase_intervals"])  # fmt: skip


def check_smoke_learns_and_the_exported_model_reads_karyogram_files(kth_smoke):
    """The honest protocol's best run (by validation AUC), the exported model, learns on karyograms of cases it
    never saw: test AUC clearly above 0.5 (`significance.auc_above_chance` on its test side), and it classifies the
    raw PNG karyograms the notebook wrote exactly as the notebook did."""
    from medcnn.significance import auc_above_chance

    out, results = kth_smoke
    record = kth_smoke.record(results["best_run"])
    negatives, positives = np.asarray(record["test_confusion"]).sum(axis=1)
    assert auc_above_chance(record["test_roc_auc"], int(positives), int(negatives))[0], record["test_roc_auc"]
    assert results["best_run"]["test_balanced_accuracy"] >= CHANCE + 0.08
    files = sorted((out / "cache" / "test_karyograms").glob("*/*.png"))
    assert len(files) == len(record["test_indices"]) == results["exported"]["test_files"]
    predicted = kth_smoke.predict(files)
    assert predicted.names == kth.CLASS_NAMES
    from_files = dict(zip((Path(row["path"]).stem for row in predicted.rows), predicted.probabilities))
    expected = dict(zip((f"karyogram_{i:05d}" for i in record["test_indices"]), record["test_probabilities"]))
    np.testing.assert_allclose([from_files[key] for key in expected], list(expected.values()), atol=5e-3)


def test_readme_section_from_the_committed_smoke_run(committed_results):
    payload = committed_results("kth")
    section = kth.readme_section(payload, "smoke")
    ran = {run["configuration"].rsplit(" | ", 1)[0] for run in payload["runs"]}
    note = kth.row_notes(payload["weights"], ran)[kth.ROWS[0]]  # "random weights" in runs made before v3
    assert section.count(f"| {kth.TABLE_5_1.index[0]} *({note})* |") == 2  # both protocols
    assert "results/kth/smoke/report.md" in section and "stand-in" in section


def test_committed_cpu_run_has_every_row_and_its_honest_best_learns(committed_results):
    results = committed_results("kth", "cpu")
    assert results["run"]["scale"] == "cpu" and results["run"]["seeds"] == [0, 1, 2]
    for protocol in kth.PROTOCOLS:
        assert set(kth.TABLE_5_1.index) <= set(results["tables"][kth.table_id(protocol)])
    best = results["best_run"]
    assert best["configuration"].endswith("| honest") and best["test_balanced_accuracy"] >= CHANCE + 0.15
