"""The kth study: settings, the pool and its two protocols, leakage, models and stages, MC dropout, the notebook."""

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcnn import experiment
from medcnn.models.heads import HeadSpec, build_head
from medcnn.studies import kth

CHANCE = 1 / len(kth.CLASS_NAMES)


# ----------------------------------------------------------------------------------------------------------------
# Settings and rows


def test_scales_grow_from_smoke_to_cpu_to_full():
    smoke, cpu, full = (kth.settings(scale) for scale in ("smoke", "cpu", "full"))
    assert (smoke["scale"], cpu["scale"], full["scale"]) == ("smoke", "cpu", "full")
    assert set(smoke) == set(cpu) == set(full)
    for key in ("fine_tune_epochs", "tuner_trials", "tuner_epochs", "mc_passes"):
        assert smoke[key] <= cpu[key] <= full[key], key
    pixels = [math.prod(s["image_size"]) for s in (smoke, cpu, full)]
    assert pixels == sorted(pixels) and min(smoke["image_size"]) >= 75  # InceptionV3's smallest input
    assert full["image_size"] == (416, 416) and full["mc_passes"] == 100 and full["original_counts"] == cpu[
        "original_counts"
    ] == {"normal": 105, "abnormal": 41}
    assert full["augmented_counts"] == {"normal": 376, "abnormal": 316}
    assert len(smoke["seeds"]) < len(cpu["seeds"]) <= len(full["seeds"])
    assert set(kth.SETTINGS) == {"smoke", "cpu", "full"}  # medcnn.studies.SCALES


def test_settings_reject_unknown_overrides():
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['epoch'\]"):
        kth.settings("smoke", epoch=3)
    assert kth.settings("cpu", epochs=2, seeds=None)["epochs"] == 2


def test_configurations_are_table_5_1_and_our_rows():
    assert [c.row for c in kth.CONFIGURATIONS] == list(kth.TABLE_5_1.index) + kth.OUR_ROWS
    assert [c.stage for c in kth.CONFIGURATIONS] == [1, 1, 1, 1, 2, 2, 2, 1, 0]
    assert kth.FROM_SCRATCH == [kth.BY_ROW[kth.SCRATCH_ROW]]
    blocks = kth.settings()["fine_tune_blocks"]
    assert [c.trainable for c in kth.STAGE_TWO] == [*blocks["vgg16"], blocks["inception_v3"]]
    for config in kth.STAGE_TWO:
        first = kth.stage_one_of(config)
        assert first.stage == 1 and first.backbone == config.backbone and first.data == "augmented"
    assert kth.CONFIGURATIONS[0].label("honest") == "original data, VGG16 | honest"
    assert set(kth.METRIC_KEYS["Table 5.1"]) == set(kth.TABLE_5_1.columns)


def test_table_ids_and_the_extra_row():
    assert kth.table_id("published") == "Table 5.1 (published)"
    with pytest.raises(ValueError, match="Received: protocol='leaky'"):
        kth.table_id("leaky")
    table = kth.table_with_extra_row()
    assert list(table.index) == list(kth.TABLE_5_1.index) + kth.OUR_ROWS
    assert table.loc[kth.OUR_ROWS].isna().all().all() and table.loc[kth.TABLE_5_1.index[0], "AUC"] == 0.79
    assert table.index.name == "network and condition"


# ----------------------------------------------------------------------------------------------------------------
# Augmentation and the pool


def _karyogram_like(count, size=32, seed=0):
    """White images with a few dark bars in fixed places, like a karyogram's rows."""
    rng = np.random.default_rng(seed)
    images = np.full((count, size, size, 1), 255, np.uint8)
    for image in images:
        for row in (4, 14, 24):
            start = int(rng.integers(2, 8))
            image[row : row + 5, start : start + 20] = int(rng.integers(20, 90))
    return images


def test_augment_to_counts_grows_each_class_with_copies_of_its_own_images():
    images, labels = _karyogram_like(7), np.array([0, 0, 0, 0, 1, 1, 1])
    augmentation = kth.settings()["augmentation"]
    copies, copy_labels, sources = kth.augment_to_counts(images, labels, {"normal": 10, "abnormal": 8}, augmentation)
    assert copies.shape == (11, 32, 32, 1) and copies.dtype == np.uint8
    assert np.bincount(copy_labels).tolist() == [6, 5]
    np.testing.assert_array_equal(labels[sources], copy_labels)
    assert np.bincount(sources, minlength=7).tolist() == [2, 2, 1, 1, 2, 2, 1]  # copy 1 of each, then copy 2
    # order-preserving: a copy stays close to its source (no flip or rotation), yet is not the same image
    for copy, source in zip(copies.astype(float), sources):
        original = images[source].astype(float)
        assert np.corrcoef(copy.ravel(), original.ravel())[0, 1] > 0.8
    again = kth.augment_to_counts(images, labels, {"normal": 10, "abnormal": 8}, augmentation)[0]
    np.testing.assert_array_equal(copies, again)  # the same seed gives the same copies


def test_augment_to_counts_below_the_originals_incorrect():
    with pytest.raises(ValueError, match="at least the originals of each class"):
        kth.augment_to_counts(_karyogram_like(3), np.array([0, 0, 1]), {"normal": 1, "abnormal": 1}, {})


def test_scaled_counts_round_each_class():
    assert kth.scaled_counts({"normal": 376, "abnormal": 316}, 0.64) == {"normal": 241, "abnormal": 202}


def _tiny_settings(**overrides):
    tiny = {
        "source_size": (32, 32),
        "original_counts": {"normal": 15, "abnormal": 10},
        "augmented_counts": {"normal": 25, "abnormal": 25},
    }
    return kth.settings("smoke", **{**tiny, **overrides})


@pytest.fixture(scope="module")
def folder_pool(tmp_path_factory):
    """A user's karyogram folders (normal/, abnormal/) of 25 tiny images, loaded and pooled."""
    root = tmp_path_factory.mktemp("karyograms")
    for index, image in enumerate(_karyogram_like(25, seed=3)):
        name = "abnormal" if index < 10 else "normal"
        (root / name).mkdir(exist_ok=True)
        Image.fromarray(image[..., 0]).save(root / name / f"k{index:02d}.png")
    source = kth.load_source(root, (32, 32))
    return source, kth.build_pool(source, _tiny_settings(), seed=0)


def test_user_folders_replace_the_stand_in(folder_pool):
    source, pool = folder_pool
    assert source.kind == "folders" and len(source.labels) == 25 and source.images.shape == (25, 32, 32, 1)
    assert np.bincount(source.labels).tolist() == [15, 10]  # class order: normal, abnormal


def test_pool_protocols_split_and_augment_as_described(folder_pool):
    _, pool = folder_pool
    counts = kth.pool_counts(pool)
    assert counts.loc["published original"].to_dict() == {"normal": 15, "abnormal": 10}
    assert counts.loc["published copy"].to_dict() == {"normal": 10, "abnormal": 15}
    published, honest = pool.splits["published"], pool.splits["honest"]
    for split in (*published.values(), *honest.values()):
        sides = [set(split[side].tolist()) for side in ("train", "val", "test")]
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sum(len(published["augmented"][side]) for side in ("train", "val", "test")) == 50
    # honest: the copies are made from training karyograms only, and only training holds copies
    copies = pool.table["part"].eq("honest copy").to_numpy()
    honest_train = set(honest["original"]["train"].tolist())
    assert set(pool.table.loc[copies, "source"]) <= honest_train
    assert set(np.flatnonzero(copies)) == set(honest["augmented"]["train"].tolist()) - honest_train
    for side in ("val", "test"):
        np.testing.assert_array_equal(honest["augmented"][side], honest["original"][side])
    leaks = kth.leakage_table(pool)
    assert leaks.loc[("honest", "augmented"), "copies of a training karyogram"] == 0
    assert leaks.loc[("published", "augmented"), "copies of a training karyogram"] > 0


@pytest.fixture(scope="module")
def composed_pool(shared_data):
    source = kth.load_source(shared_data, (64, 64))
    return source, kth.build_pool(source, _tiny_settings(source_size=(64, 64)), seed=0)


def test_composed_pool_keeps_metaphases_apart_under_the_honest_protocol(composed_pool):
    source, pool = composed_pool
    assert source.kind == "composed" and pool.images.shape[1:] == (64, 64, 1)
    leaks = kth.leakage_table(pool)
    kinds = [
        "copies of a training karyogram", "share a metaphase with training", "share a chromosome image with training"
    ]  # fmt: skip
    for data in ("original", "augmented"):
        assert leaks.loc[("honest", data), kinds].sum() == 0
    published = leaks.loc[("published", "original")]
    assert published["share a metaphase with training"] > 0  # one metaphase hosts several karyograms
    honest = pool.splits["honest"]["augmented"]
    cases = [set(pool.table["host_case"].to_numpy()[honest[side]]) for side in ("train", "test")]
    assert not cases[0] & cases[1]
    assert set(pool.table["aberration"]) - {"normal"} and (pool.table["aberration"] == "normal").any()


def test_leakage_counts_copies_metaphases_and_files():
    table = pd.DataFrame(
        {
            "source": [0, 1, 2, 0, 4],
            "metaphases": [("a",), ("b",), ("c",), ("a",), ("c", "d")],
            "files": [("f1",), ("f2",), ("f3",), ("f1",), ("f5",)],
        }
    )
    pool = kth.Pool(np.zeros((5, 2, 2, 1), np.uint8), np.zeros(5, int), table, {}, 0)
    counts = kth.leakage(pool, {"train": [0, 2], "test": [1, 3, 4]})
    assert counts == {
        "test images": 3,
        "copies of a training karyogram": 1,
        "share a metaphase with training": 2,
        "share a chromosome image with training": 1,
    }


def test_brightness_baseline_finds_a_grey_background_and_copy_shares(folder_pool):
    _, pool = folder_pool
    darker = pool.images.copy()
    darker[pool.labels == 1] = (darker[pool.labels == 1] * 0.75).astype(np.uint8)
    shaded = kth.Pool(darker, pool.labels, pool.table, pool.splits, pool.seed)
    assert kth.brightness_baseline(shaded, "published")["balanced_accuracy"] == 1.0
    shares = kth.copy_shares(pool)
    assert set(shares) == {"train", "test"} and all(0 <= v <= 1 for v in shares["train"].values())


def test_write_karyograms_as_class_folders(folder_pool, tmp_path):
    _, pool = folder_pool
    paths = kth.write_karyograms(pool, [0, 12], tmp_path)
    assert [p.parent.name for p in paths] == [kth.CLASS_NAMES[pool.labels[0]], kth.CLASS_NAMES[pool.labels[12]]]
    np.testing.assert_array_equal(np.asarray(Image.open(paths[1])), pool.images[12][..., 0])
    again = kth.write_karyograms(pool, [12], tmp_path)  # a second run replaces the first run's files
    assert sorted(tmp_path.glob("*/*.png")) == again


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


@pytest.fixture(scope="module")
def small_settings():
    """Smoke settings on 32 px inputs and a narrow head; VGG16 falls back to random weights offline."""
    return kth.settings("smoke", image_size=(32, 32), transfer_size=(32, 32), head_units=8)


@pytest.mark.filterwarnings("ignore::medcnn.models.weights.RandomWeightsWarning")
def test_stage_one_head_on_its_backbone_equals_head_on_features(small_settings):
    """The exported image model of a stage-one run computes what the head computed on the precomputed features,
    also for random backbone weights (rebuilt from the same seed)."""
    images = np.random.default_rng(0).random((4, 32, 32, 1)).astype("float32")
    for row, used in ((kth.EXTRA_ROW, "imagenet"), (kth.ROWS[2], "random")):
        backbone = kth.BY_ROW[row].backbone
        extractor, weights = kth.feature_extractor(backbone, (32, 32, 1), small_settings, seed=3)
        assert weights == used or row != kth.EXTRA_ROW  # VGG16 is random offline, ImageNet where it downloads
        features = extractor.predict(images, verbose=0)
        head = kth.head_model(features.shape[1:], small_settings)
        full = kth.image_model(SimpleNamespace(settings={"row": row}, seed=3), head, small_settings)
        np.testing.assert_allclose(full.predict(images, verbose=0), head.predict(features, verbose=0), atol=1e-5)


@pytest.mark.filterwarnings("ignore::medcnn.models.weights.RandomWeightsWarning")
def test_stage_two_starts_from_the_stage_one_head_and_unfreezes_the_last_blocks(small_settings, tmp_path):
    config = kth.STAGE_TWO[0]  # VGG16, last block trained
    extractor, _ = kth.feature_extractor("vgg16", (32, 32, 1), small_settings, seed=0)
    head = kth.head_model(extractor.output_shape[1:], small_settings)
    head.get_layer("dense1").set_weights([w + 1.0 for w in head.get_layer("dense1").get_weights()])
    path = tmp_path / "head.weights.h5"
    head.save_weights(path)
    model = kth.fine_tune_model(config, (32, 32, 1), small_settings, seed=0, head_weights=path)
    for mine, theirs in zip(model.get_layer("head").get_weights(), head.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    trainable = {layer.name for layer in model.get_layer("backbone").layers if layer.trainable and layer.weights}
    assert trainable == {"block5_conv1", "block5_conv2", "block5_conv3"}
    assert model.optimizer.learning_rate.numpy() == pytest.approx(small_settings["fine_tune_learning_rate"])
    with pytest.raises(FileNotFoundError, match="REUSE_RUNS=False"):
        kth.fine_tune_model(config, (32, 32, 1), small_settings, head_weights=tmp_path / "missing.weights.h5")


def _blank_inputs(pool):
    """`prepare_inputs`' shape for a pool without computing anything: zero VGG16 features and 32x32 images."""
    return {"features": {"vgg16": np.zeros((len(pool), 1, 1, 512), "float32")},
            "images": {(32, 32): np.zeros((len(pool), 32, 32, 1), "float32")}}  # fmt: skip


def test_make_run_stage_one_on_features_stage_two_and_scratch_on_images(folder_pool, small_settings, tmp_path):
    _, pool = folder_pool
    inputs = _blank_inputs(pool)
    cache = experiment.RunCache(tmp_path)
    first, x_first = kth.make_run(kth.CONFIGURATIONS[2], "honest", pool, inputs, small_settings, "data", cache)
    second, x_second = kth.make_run(kth.STAGE_TWO[0], "honest", pool, inputs, small_settings, "data", cache)
    scratch, x_scratch = kth.make_run(kth.FROM_SCRATCH[0], "honest", pool, inputs, small_settings, "data", cache)
    assert x_first.shape[1:] == (1, 1, 512) and x_second.shape[1:] == x_scratch.shape[1:] == (32, 32, 1)
    assert scratch.epochs == small_settings["scratch_epochs"] and scratch.starts_from is None
    model = scratch.build_model()
    assert model.name == kth.SCRATCH_BACKBONE and model.output_shape == (None, 2)
    assert any(layer.name == "flatten" for layer in model.layers)  # position kept: no global pooling
    assert kth.image_model(scratch, model, small_settings) is model
    assert first.label == "augmented data, VGG16 | honest" and first.group == "honest"
    assert first.epochs == small_settings["epochs"] and second.epochs == small_settings["fine_tune_epochs"]
    assert second.starts_from.key == first.key and second.starts_from.fingerprint == first.fingerprint
    np.testing.assert_array_equal(first.split["train"], pool.splits["honest"]["augmented"]["train"])
    published, _ = kth.make_run(kth.CONFIGURATIONS[2], "published", pool, inputs, small_settings, "data", cache)
    assert published.key != first.key and published.fingerprint != first.fingerprint


def test_stage_two_loads_only_head_weights_saved_under_stage_ones_fingerprint(folder_pool, small_settings, tmp_path):
    import keras

    _, pool = folder_pool
    inputs = _blank_inputs(pool)
    cache = experiment.RunCache(tmp_path)
    first, _ = kth.make_run(kth.CONFIGURATIONS[2], "honest", pool, inputs, small_settings, "data", cache)
    second, _ = kth.make_run(kth.STAGE_TWO[0], "honest", pool, inputs, small_settings, "data", cache)
    with pytest.raises(FileNotFoundError, match="missing or were not trained as .*REUSE_RUNS=False"):
        second.build_model()  # nothing saved: refused before the backbone is built
    head = kth.head_model((1, 1, 512), small_settings)
    precision = keras.config.dtype_policy().name
    # a record of stage one (committed, pulled) beside local weights trained under other settings
    cache.save(first.key, {"fingerprint": "other settings", "precision": precision}, head)
    cache.save(first.key, {"fingerprint": first.fingerprint, "precision": precision})
    with pytest.raises(FileNotFoundError, match=first.fingerprint):
        kth.stage_one_weights(first, cache)
    cache.save(first.key, {"fingerprint": first.fingerprint, "precision": precision}, head)
    assert kth.stage_one_weights(first, cache) == cache.weights_path(first.key)


def test_runs_fingerprint_the_weights_their_backbone_loaded(folder_pool, small_settings, tmp_path):
    _, pool = folder_pool
    cache = experiment.RunCache(tmp_path)

    def runs(weights):
        inputs = {"features": {"vgg16": np.zeros((len(pool), 1, 1, 512), "float32")},
                  "images": {(32, 32): np.zeros((len(pool), 32, 32, 1), "float32")}, "weights": weights}  # fmt: skip
        first, _ = kth.make_run(kth.CONFIGURATIONS[2], "honest", pool, inputs, small_settings, "data", cache)
        second, _ = kth.make_run(kth.STAGE_TWO[0], "honest", pool, inputs, small_settings, "data", cache)
        return first, second

    random, imagenet = runs({"vgg16": "random"}), runs({"vgg16": "imagenet"})
    assert random[0].data == {"files": "data", "backbone_weights": "random"}
    assert random[0].fingerprint != imagenet[0].fingerprint and random[1].fingerprint != imagenet[1].fingerprint


# ----------------------------------------------------------------------------------------------------------------
# Monte Carlo dropout summaries


def _passes(votes_for_abnormal, passes=10):
    """(passes, N, 2): image i gets `votes_for_abnormal[i]` passes with P(abnormal) 0.9, the rest 0.1."""
    out = np.zeros((passes, len(votes_for_abnormal), 2))
    for i, votes in enumerate(votes_for_abnormal):
        p = np.r_[np.full(votes, 0.9), np.full(passes - votes, 0.1)]
        out[:, i] = np.stack([1 - p, p], axis=1)
    return out


def test_mc_choices_take_the_best_row_of_each_backbone_and_our_two_rows():
    def record(row, protocol, seed, auc):
        config = kth.BY_ROW[row]
        return {"group": protocol, "seed": seed, "val_roc_auc": auc, "configuration": config.label(protocol),
                "settings": config.settings(protocol)}  # fmt: skip

    records = [record(row, "honest", 0, 0.5 + 0.01 * i) for i, row in enumerate(kth.ROWS + kth.OUR_ROWS)]
    records += [record(kth.ROWS[0], "honest", 1, 0.99), record(kth.ROWS[0], "published", 0, 0.99)]
    picks = kth.mc_choices(records, "honest")
    assert set(picks) == {"VGG16", "InceptionV3", "MobileNetV2", "small CNN"}
    assert picks["VGG16"]["configuration"] == "VGG16, last two blocks trained | honest"  # best VGG16 of seed 0
    assert picks["InceptionV3"]["configuration"] == "InceptionV3, whole network trained | honest"
    assert picks["small CNN"]["configuration"] == kth.SCRATCH_ROW + " | honest"
    assert kth.mc_choices(records, "honest", seed=1) == {"VGG16": records[-2]}


def test_mc_summary_refers_the_unsure_and_scores_the_rest():
    passes = _passes([10, 9, 6, 0, 3, 10])  # votes for abnormal out of 10
    labels = np.array([1, 1, 1, 0, 0, 0])
    summary = kth.mc_summary(passes, labels, threshold=0.8)
    # votes: abnormal (conf 1.0), abnormal (0.9), abnormal (0.6, referred), normal (1.0), normal (0.7, referred),
    # abnormal (1.0, wrong)
    assert summary["referred"] == 2 and summary["images"] == 6 and summary["passes"] == 10
    assert summary["accuracy_all"] == pytest.approx(5 / 6)
    assert summary["accuracy_not_referred"] == pytest.approx(3 / 4)
    assert summary["recall_all"] == 1.0 and summary["recall_not_referred"] == 1.0
    assert summary["mean_confidence"] == pytest.approx((1 + 0.9 + 0.6 + 1 + 0.7 + 1) / 6)
    assert 0 <= summary["ece"] <= 1


def test_mc_wrong_cases_and_aberration_recall(folder_pool):
    _, pool = folder_pool
    index = np.array([0, 1, 20, 21])
    labels = pool.labels[index]
    votes = [10 if label == 0 else 0 for label in labels]  # every vote wrong
    wrong = kth.mc_wrong_cases(_passes(votes), labels, index, pool)
    assert len(wrong) == 4 and wrong["pool image"].tolist() == index.tolist()
    assert wrong["mean_softmax"].tolist() == pytest.approx([0.9 if label == 0 else 0.1 for label in labels])
    table = pd.DataFrame({"aberration": ["normal", "trisomy_21", "trisomy_21", "deletion"]})
    fake = kth.Pool(pool.images[:4], np.array([0, 1, 1, 1]), table, {}, 0)
    recall = kth.aberration_recall(np.array([1, 1, 0, 0]), np.arange(4), fake)
    assert recall.index.tolist() == ["normal", "deletion", "trisomy_21"]
    assert recall["share called abnormal"].tolist() == [1.0, 0.0, 0.5]


# ----------------------------------------------------------------------------------------------------------------
# The notebook, end to end at smoke scale


def check_smoke_fills_table_5_1_for_both_protocols_and_mc_dropout(kth_smoke):
    results = kth_smoke.results
    for protocol in kth.PROTOCOLS:
        table = results["tables"][kth.table_id(protocol)]
        assert list(table) == [*kth.TABLE_5_1.index, *kth.OUR_ROWS]
        for row, values in table.items():
            for column in kth.TABLE_5_1.columns:
                assert isinstance(values[column]["ours"], float) and math.isfinite(values[column]["ours"]), row
        mc = results["mc_dropout"][protocol]
        assert set(mc) == {"VGG16", "InceptionV3", "MobileNetV2", "small CNN"}
        for entry in mc.values():
            assert entry["passes"] == kth.settings("smoke")["mc_passes"] and 0 <= entry["referred"] <= entry["images"]
            assert 0 <= entry["ece"] <= 1 and isinstance(entry["wrong_cases"], list)
    run = results["run"]
    assert run["scale"] == "smoke" and run["trained_now"] == run["runs"] == 2 * len(kth.CONFIGURATIONS)
    leaks = {(row["protocol"], row["data"]): row for row in results["leakage"]}
    assert leaks[("honest", "augmented")]["copies of a training karyogram"] == 0
    assert leaks[("published", "augmented")]["copies of a training karyogram"] > 0
    assert kth_smoke.report().count("| augmented data, VGG16 |") >= 1


def check_smoke_learns_and_the_exported_model_reads_karyogram_files(kth_smoke):
    """The published protocol's best run (by its validation AUC) clears chance + 0.15 on its test side (copies of
    training karyograms and the look of augmented copies help it); the honest protocol's best, the exported model,
    learns too on karyograms of cases it never saw (smoke, seed 0: the small CNN, balanced 0.636, AUC 0.733), and
    classifies the raw PNG karyograms the notebook wrote exactly as the notebook did."""
    out, results = kth_smoke
    assert results["published_best_run"]["test_balanced_accuracy"] >= CHANCE + 0.15
    assert results["published_best_run"]["test_roc_auc"] > 0.6
    assert results["best_run"]["test_balanced_accuracy"] >= CHANCE + 0.08 and results["best_run"]["test_roc_auc"] > 0.65
    record = kth_smoke.record(results["best_run"])
    files = sorted((out / "cache" / "test_karyograms").glob("*/*.png"))
    assert len(files) == len(record["test_indices"]) == results["exported"]["test_files"]
    predicted = kth_smoke.predict(files)
    assert predicted.names == kth.CLASS_NAMES
    from_files = dict(zip((Path(row["path"]).stem for row in predicted.rows), predicted.probabilities))
    expected = dict(zip((f"karyogram_{i:05d}" for i in record["test_indices"]), record["test_probabilities"]))
    np.testing.assert_allclose([from_files[key] for key in expected], list(expected.values()), atol=5e-3)


def test_readme_section_from_the_committed_smoke_run(committed_results):
    section = kth.readme_section(committed_results("kth"), "smoke")
    # both protocols; VGG16 loaded random weights in that run (results.json's `weights`), and the row says so
    assert section.count(f"| {kth.TABLE_5_1.index[0]} *(random weights)* |") == 2
    assert f"| {kth.SCRATCH_ROW} |" in section
    assert "results/kth/smoke/report.md" in section and "stand-in" in section


def test_committed_cpu_run_has_every_row_and_its_honest_best_learns(committed_results):
    results = committed_results("kth", "cpu")
    assert results["run"]["scale"] == "cpu" and results["run"]["seeds"] == [0, 1, 2]
    for protocol in kth.PROTOCOLS:
        assert list(results["tables"][kth.table_id(protocol)]) == [*kth.TABLE_5_1.index, *kth.OUR_ROWS]
    best = results["best_run"]
    assert best["configuration"].endswith("| honest") and best["test_balanced_accuracy"] >= CHANCE + 0.15


def _auc_run(row, protocol, seed, auc, collapsed=False):
    confusion = [[10, 0], [10, 0]] if collapsed else [[8, 2], [3, 7]]
    return {"configuration": f"{row} | {protocol}", "group": protocol, "seed": seed, "test_roc_auc": auc,
            "test_confusion": confusion}  # fmt: skip


def test_leakage_and_position_are_judged_per_row_beyond_noise():
    records = []
    for seed, noise in enumerate((0.0, 0.04, -0.04)):
        records += [_auc_run(kth.SCRATCH_ROW, "published", seed, 0.95 + noise / 10),
                    _auc_run(kth.SCRATCH_ROW, "honest", seed, 0.75 - noise / 10),  # +0.2 +- 0.008: beyond noise
                    _auc_run(kth.EXTRA_ROW, "published", seed, 0.6 + noise),
                    _auc_run(kth.EXTRA_ROW, "honest", seed, 0.6 - noise),  # around zero: within noise
                    _auc_run(kth.ROWS[0], "published", seed, 0.5, collapsed=True),
                    _auc_run(kth.ROWS[0], "honest", seed, 0.5, collapsed=True)]  # fmt: skip
    text = kth.leakage_statement(records, 3)
    assert f"'{kth.SCRATCH_ROW}' +0.200" in text and "(above)" in text and "(within noise)" in text
    assert "above the honest one beyond two standard errors for 1 of 2 row(s)" in text
    assert f"so not compared: '{kth.ROWS[0]}'" in text and "averaged" not in text
    position = kth.position_statement(records)
    assert "our small CNN" in position and f"('{kth.EXTRA_ROW}')" in position and "is above" in position
    notes = kth.row_notes({"vgg16": "random", "inception_v3": "imagenet", "mobilenet_v2": "imagenet"})
    assert notes == {row: "random weights" for row in (kth.ROWS[0], kth.ROWS[2], kth.ROWS[4], kth.ROWS[5])}


def test_table_marks_collapsed_rows_and_adds_the_reference_rows():
    records = []
    for seed in range(3):
        records += [{**_auc_run(kth.ROWS[0], "honest", seed, 0.5, collapsed=True), "test_accuracy": 0.5},
                    {**_auc_run(kth.EXTRA_ROW, "honest", seed, 0.7 + seed / 100), "test_accuracy": 0.75}]  # fmt: skip
    shown = kth.table(records, protocols=("honest",))
    collapsed, learned = shown.loc[kth.ROWS[0]], shown.loc[kth.EXTRA_ROW]
    assert collapsed["AUC: honest"] == "collapsed" and collapsed["collapsed: honest"] == "3 of 3"
    assert learned["AUC: honest"] == "0.71 ± 0.01" and learned["collapsed: honest"] == "0"
    assert shown.loc["reference: majority class", "accuracy: honest"] == "0.50"
    assert shown.loc["reference: chance", "AUC: honest"] == "0.50" and shown.loc[kth.ROWS[1], "AUC: honest"] == ""
