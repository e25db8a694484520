"""The an2dl study: settings, the homework's proportions, cleaning and the split, features, heads, runs, findings,
the library pieces it added, and the notebook end to end at smoke scale."""

import math

import keras
import numpy as np
import pytest

from medcnn import experiment
from medcnn.data import cleaning, pbc
from medcnn.studies import an2dl

K = len(an2dl.CLASS_NAMES)
CHANCE = 1 / K
CUSTOM_PLAIN = an2dl.CUSTOM_ROWS["plain"]


# ----------------------------------------------------------------------------------------------------------------
# Settings and published numbers


def test_scales_grow_from_smoke_to_cpu_to_full():
    smoke, cpu, full = (an2dl.settings(scale) for scale in ("smoke", "cpu", "full"))
    assert set(smoke) == set(cpu) == set(full) and set(an2dl.SETTINGS) == {"smoke", "cpu", "full"}
    for key in ("epochs", "fine_tune_epochs", "custom_epochs", "augment_copies"):
        assert smoke[key] <= cpu[key] <= full[key], key
    assert (cpu["epochs"], cpu["fine_tune_epochs"], cpu["batch_size"]) == (30, 70, 64)  # the study's protocol
    assert smoke["image_size"] == cpu["image_size"] == full["image_size"] == (96, 96)
    assert smoke["largest_class"] < 324 and cpu["largest_class"] is None and len(cpu["seeds"]) >= 3
    assert full["allow_random_weights"] is False and full["standardise_features"] is False
    assert smoke["standardise_features"] and cpu["standardise_features"]
    assert not cpu["group_seeds"]  # every row, the custom CNNs too, runs every seed before one is called best
    # offline, MobileNetV2 (ImageNet) stands in for the fine-tuned ResNet50; full scale fine-tunes both
    assert smoke["fine_tune"]["backbones"] == cpu["fine_tune"]["backbones"] == ("mobilenet_v2",)
    assert full["fine_tune"]["backbones"] == ("resnet50", "mobilenet_v2")
    assert cpu["l2"] == 0.01 and "l2" not in cpu["ours"]  # the study's rows keep its L2; our row's head has none
    assert all(c <= s for c, s in zip(cpu["ours"]["crop"], cpu["ours"]["image_size"]))
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['epoch'\]"):
        an2dl.settings("smoke", epoch=3)


def test_homework_counts_keep_the_printed_ones_and_pbc_proportions():
    counts = an2dl.homework_counts()
    assert counts["neutrophil"] == 2280 and counts["basophil"] == 817
    assert max(counts, key=counts.get) == "neutrophil" and min(counts, key=counts.get) == "basophil"
    assert counts["eosinophil"] == round(3117 * 2280 / 3330) == 2134
    assert round(pbc.PBC_COUNTS["basophil"] * 2280 / 3330) == 834  # the module's note on PBC's proportions


def test_draw_counts_follow_the_proportions_within_what_is_there():
    available, target = {name: 324 for name in an2dl.CLASS_NAMES}, an2dl.homework_counts()
    every = pbc.draw_counts(available, target=target)
    assert every["neutrophil"] == 324 and every["basophil"] == round(817 * 324 / 2280) == 116
    assert all(every[name] <= 324 for name in every)
    smaller = pbc.draw_counts(available, largest_class=120, target=target)
    assert smaller["neutrophil"] == 120 and smaller["basophil"] == round(817 * 120 / 2280)
    few = pbc.draw_counts({**available, "basophil": 50}, target=target)  # a scarce class limits every class
    assert few["basophil"] == 50 and few["neutrophil"] == round(2280 * 50 / 817)


def test_the_rows_in_training_order():
    configs = an2dl.configurations(an2dl.settings("full"))
    labels = [config.label for config in configs]
    assert labels[:4] == list(an2dl.TABLE_2.index) and labels[4] == an2dl.TRANSFER
    tuned = [config for config in configs if config.group == "fine_tune"]
    assert [c.label for c in tuned] == [an2dl.FINE_TUNED, an2dl.TRANSFER_FINE_TUNED]
    assert [c.stage_one for c in tuned] == ["ResNet50", an2dl.TRANSFER]
    assert all(labels.index(c.stage_one) < labels.index(c.label) for c in tuned)
    # the study's "last block" of ResNet50 is conv5, its last stage; MobileNetV2's stage at that stride: 5 blocks
    assert {c.learning_rate for c in tuned} == {1e-5} and [c.blocks for c in tuned] == [1, 5]
    ours = next(c for c in configs if c.group == "ours")
    assert ours.label == an2dl.OURS and ours.blocks == "all" and ours.backbone == "mobilenet_v2"
    assert [c.label for c in configs if c.group == "custom"] == list(an2dl.CUSTOM_ROWS.values())
    assert an2dl.FINE_TUNED == an2dl.FINE_TUNING.index[0]
    smoke = [c.label for c in an2dl.configurations(an2dl.settings("smoke")) if c.group == "fine_tune"]
    assert smoke == [an2dl.TRANSFER_FINE_TUNED]  # no random ResNet50 fine-tuning offline


# ----------------------------------------------------------------------------------------------------------------
# Data


def test_load_data_draws_the_staged_pbc_in_the_homework_proportions(shared_data):
    target = an2dl.homework_counts()
    data, info = pbc.load_data(image_size=(96, 96), largest_class=8, seed=1, target=target)
    expected = pbc.draw_counts(info["available"], largest_class=8, target=target)
    assert data.class_counts() == expected == info["drawn"] and info["target"] == target
    assert data.images.shape == (sum(expected.values()), 96, 96, 3) and data.class_names == an2dl.CLASS_NAMES


def _cell(background, color=(180, 60, 160), size=48, center=(24, 24)):
    yy, xx = np.mgrid[:size, :size]
    mask = np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * 6.0**2))[..., None]
    image = background * (1 - mask) + mask * np.array(color, dtype=float)
    return image.clip(0, 255).astype(np.uint8)


def test_remove_duplicates_finds_copies_and_cells_on_other_backgrounds():
    from medcnn.data.loaders import ImageSet

    flat = np.full((48, 48, 3), 230.0)
    striped = flat.copy()
    striped[:, ::6] = 120.0
    striped[10:38, 10:38] = 230.0  # another background around the same cell (outside the central half)
    cells = [
        _cell(flat),
        _cell(flat, color=(40, 200, 60), center=(14, 30)),
        _cell(flat).copy(),
        _cell(striped),
        _cell(flat, color=(90, 90, 220), center=(30, 16)),
    ]
    data = ImageSet(labels=np.array([0, 1, 0, 0, 2]), class_names=an2dl.CLASS_NAMES, images=np.stack(cells))
    cleaned, pairs = cleaning.remove_duplicates(data, an2dl.settings("smoke")["near_duplicates"])
    assert len(cleaned) == 3
    assert pairs[["kept_index", "removed_index", "kind"]].values.tolist() == [[0, 2, "exact"], [0, 3, "near"]]
    _, exact_only = cleaning.remove_duplicates(data, None)
    assert exact_only["kind"].tolist() == ["exact"]


def test_make_splits_hold_out_test_first_for_every_seed_the_scale_runs():
    from medcnn.data.loaders import ImageSet

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(K), 25)
    data = ImageSet(labels=labels, class_names=an2dl.CLASS_NAMES, images=rng.uniform(0, 255, (len(labels), 8, 8, 3)))
    splits, infos = an2dl.make_splits(data, an2dl.settings("smoke", seeds=[0], group_seeds={"custom": [2]}))
    assert sorted(splits) == sorted(infos) == [0, 2]
    assert len(splits[0]["test"]) == 40 and np.bincount(labels[splits[0]["test"]]).tolist() == [5] * K  # 20 %
    assert not np.array_equal(splits[0]["test"], splits[2]["test"])


def test_augmented_copies_sit_after_the_originals_and_join_training_only():
    from medcnn.data.image_sets import images_with_copies
    from medcnn.experiment.features import view_rows

    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    every = images_with_copies(images, 2, an2dl.augmentation(an2dl.settings("smoke")), seed=0)
    assert every.shape == (12, 16, 16, 3)
    np.testing.assert_array_equal(every[:4], images)
    assert not np.allclose(every[4:8], images) and every.min() >= 0 and every.max() <= 255
    assert view_rows(np.array([0, 2]), 4, 2).tolist() == [0, 2, 4, 6, 8, 10]  # a split's training side with copies
    assert images_with_copies(images, 0, an2dl.augmentation(an2dl.settings("smoke"))).shape == images.shape


# ----------------------------------------------------------------------------------------------------------------
# Heads, features, fine-tuning models


def test_head_standardises_and_runs_on_the_pooled_or_the_whole_map():
    from medcnn.models.features import feature_stats

    rng = np.random.default_rng(2)
    run_settings = an2dl.settings("smoke")
    pooled = rng.normal(5.0, 1e-2, (32, 1, 1, 6)).astype("float32")  # a small spread around a large mean
    head = an2dl.head_model(6, run_settings, feature_stats(pooled))
    out = keras.ops.convert_to_numpy(head.get_layer("standardise")(pooled))
    assert abs(out.mean()) < 1e-2 and abs(out.std() - 1.0) < 1e-2
    whole = np.repeat(np.repeat(pooled, 3, axis=1), 3, axis=2)  # a map whose average is the pooled vector
    np.testing.assert_allclose(head.predict(whole, verbose=0), head.predict(pooled, verbose=0), atol=1e-4)
    study = head.get_layer("study_head")
    assert [layer.units for layer in study.layers if hasattr(layer, "units")] == [512, 256, K]
    plain = an2dl.head_model(6, run_settings)  # no statistics (full scale): the standardisation is the identity
    np.testing.assert_allclose(keras.ops.convert_to_numpy(plain.get_layer("standardise")(pooled)), pooled, rtol=1e-6)


def test_features_and_fine_tuning_model_agree_with_the_backbone():
    from medcnn.experiment.features import backbone_model, single_output
    from medcnn.models.features import feature_stats

    run_settings = an2dl.settings("smoke", image_size=(32, 32))
    images = np.random.default_rng(3).uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    spec = an2dl.feature_spec("mobilenet_v2", run_settings)
    features = experiment.extract(spec, images, log=lambda _: None)
    assert features.info["weights"] == "imagenet" and features.arrays["pooled"].shape == (6, 1, 1, 1280)
    assert features.arrays["stem"].shape == (6, 2, 2, 96)  # block_12's output: the last stage starts with block_13
    direct = backbone_model(spec).predict(images, verbose=0).mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(features.arrays["pooled"], direct, rtol=1e-4, atol=1e-4)
    config = next(c for c in an2dl.configurations(run_settings) if c.label == an2dl.TRANSFER_FINE_TUNED)
    stats = feature_stats(features.arrays["pooled"])
    model = an2dl.build_model(config, run_settings, (2, 2, 96), stats=stats)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert {"Conv_1", "block_13_expand", "block_16_project"} <= trainable
    assert not any(name.startswith("block_12") for name in trainable) and not any("BN" in n for n in trainable)
    full = experiment.image_model(single_output(spec, "stem"), model)  # the fine-tuned stage back on its backbone
    stem = features.arrays["stem"]
    np.testing.assert_allclose(full.predict(images, verbose=0), model.predict(stem, verbose=0), atol=1e-4)
    frozen = next(c for c in an2dl.configurations(run_settings) if c.label == an2dl.TRANSFER)
    head = an2dl.build_model(frozen, run_settings, (1, 1, 1280), stats=stats)
    whole = experiment.image_model(single_output(spec, "pooled"), head)  # the head back on its backbone
    np.testing.assert_allclose(whole.predict(images, verbose=0), head.predict(features.x, verbose=0), atol=1e-4)
    keras.backend.clear_session()


def test_our_row_trains_every_block_on_the_centre_of_larger_images():
    run_settings = an2dl.settings("smoke")
    run_settings["ours"] = {**run_settings["ours"], "image_size": (48, 48), "crop": (32, 32)}
    config = next(c for c in an2dl.configurations(run_settings) if c.group == "ours")
    model = an2dl.build_model(config, run_settings, (48, 48, 3))
    assert model.get_layer("centre").output.shape[1:] == (32, 32, 3)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert {"Conv1", "block_1_expand", "Conv_1"} <= trainable and not any("BN" in n for n in trainable)
    dense = [layer for layer in model.get_layer("head").layers if hasattr(layer, "units")]
    assert [layer.units for layer in dense] == [K] and dense[0].kernel_regularizer is None  # its own head, no L2
    image = np.random.default_rng(7).uniform(0, 255, (1, 48, 48, 3)).astype("float32")
    border, centre = image.copy(), image.copy()
    border[:, :8] = 0.0  # outside the central 32x32
    centre[:, 8:40, 8:40] = 255.0 - centre[:, 8:40, 8:40]
    out = model.predict(np.concatenate([image, border, centre]), verbose=0)
    np.testing.assert_allclose(out[1], out[0], atol=1e-6)  # the border is cut off
    assert np.abs(out[2] - out[0]).max() > 1e-4
    keras.backend.clear_session()


def test_l2_penalty_at_start_is_the_glorot_expectation():
    """Keras' Glorot uniform kernels have E[w^2] = 2 / (fan_in + fan_out): 0.01 * (1280 * 512 * 2 / 1792 + 512 *
    256 * 2 / 768) = 10.7 for the study's head on MobileNetV2's 1,280 features, five times ln 8."""
    expected = 0.01 * (1280 * 512 * 2 / 1792 + 512 * 256 * 2 / 768)
    assert an2dl.l2_penalty_at_start(an2dl.settings("smoke")) == pytest.approx(expected, rel=0.03)
    assert an2dl.l2_penalty_at_start(an2dl.settings("smoke", l2=0.001)) == pytest.approx(expected / 10, rel=0.03)


def test_random_backbone_weights_are_the_same_on_every_build():
    from medcnn.experiment.features import backbone_model

    spec = an2dl.feature_spec("inception_v3", an2dl.settings("smoke", image_size=(75, 75)))
    first, second = backbone_model(spec), backbone_model(spec)
    assert spec.weights_info().used == "random"  # no InceptionV3 file offline: recorded, never silent
    assert an2dl.backbone_weights(an2dl.settings("smoke"))["inception_v3"] == "random"
    for a, b in zip(first.weights[:20], second.weights[:20]):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_custom_cnns_have_the_reported_blocks():
    from medcnn.models import blocks, scratch

    plain = scratch.an2dl_plain_cnn()
    convs = [layer.name for layer in plain.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs == [f"conv{i}" for i in range(1, 6)]
    assert [layer.units for layer in plain.layers if isinstance(layer, keras.layers.Dense)] == [
        512,
        256,
        128,
        64,
        32,
        K,
    ]
    residual = scratch.an2dl_residual_cnn()
    assert [layer.filters for layer in residual.layers if isinstance(layer, blocks.ResidualBlock)] == [32, 64, 128]
    inception = scratch.an2dl_inception_cnn()
    assert len([layer for layer in inception.layers if isinstance(layer, blocks.InceptionModule)]) == 4
    for model in (plain, residual, inception):
        assert model.output_shape == (None, K) and model.input_shape == (None, 96, 96, 3)
        out = model.predict(np.full((2, 96, 96, 3), 255.0, "float32"), verbose=0)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Runs and what the records add


def _tiny(n=48, size=16, **overrides):
    """Tiny originals (n, size, size, 3), their labels, splits for seeds 0 and 1, and smoke settings that fit them."""
    rng = np.random.default_rng(4)
    labels = np.tile(np.arange(K), n // K)
    images = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    order = np.arange(n)
    splits = {
        seed: {"train": np.sort(order[seed::2][:16]), "val": order[(1 - seed) :: 2][:8], "test": order[40:]}
        for seed in (0, 1)
    }
    overrides = {"seeds": [0, 1], **overrides}
    run_settings = an2dl.settings("smoke", image_size=(size, size), predict_batch_size=16, **overrides)
    run_settings["ours"] = {**run_settings["ours"], "image_size": (24, 24), "crop": (16, 16)}
    return images, labels, splits, run_settings


def test_make_runs_seed_by_seed_with_copies_class_weights_and_stage_one(tmp_path):
    images, labels, splits, run_settings = _tiny()
    configs = an2dl.configurations(run_settings)
    large = np.zeros((len(images), 24, 24, 3), "float32")
    runs = an2dl.make_runs(configs, images, labels, splits, run_settings, "hash", experiment.RunCache(tmp_path),
                           large=large)  # fmt: skip
    assert [(r.label, r.seed) for r in runs] == [(c.label, s) for s in (0, 1) for c in configs]
    first = runs[0]
    n = len(images)
    assert first.split["train"].tolist() == [*splits[0]["train"], *(splits[0]["train"] + n)]
    from medcnn.data.labels import class_weights

    assert first.class_weight == class_weights(labels[splits[0]["train"]])
    assert first.one_hot is False and first.epochs == 10 and first.batch_size == 64 and first.augmentation is None
    tuned = next(r for r in runs if r.label == an2dl.TRANSFER_FINE_TUNED and r.seed == 0)
    stage_one = next(r for r in runs if r.label == an2dl.TRANSFER and r.seed == 0)
    assert tuned.starts_from is stage_one and tuned.epochs == run_settings["fine_tune_epochs"]
    assert tuned.evaluate_train and not stage_one.evaluate_train  # Table 3's train row
    assert len({r.fingerprint for r in runs}) == len(runs)  # nothing computed: the inputs are named by digests
    ours = next(r for r in runs if r.label == an2dl.OURS and r.seed == 1)
    own = run_settings["ours"]
    assert ours.split["train"].tolist() == splits[1]["train"].tolist()  # originals: augmented on every batch instead
    assert (ours.epochs, ours.batch_size) == (own["epochs"], own["batch_size"]) and ours.class_weight == class_weights(
        labels[splits[1]["train"]]
    )
    assert ours.inputs()[0] is large and len(ours.inputs()[1]) == n
    draws = [keras.ops.convert_to_numpy(ours.augmentation(seed)(np.full((1, 12, 12, 3), 99.0, "float32"),
                                                                training=True)) for seed in (1, 1, 2)]  # fmt: skip
    np.testing.assert_array_equal(draws[0], draws[1])  # seeded by the run's seed
    assert not np.allclose(draws[0], draws[2])
    reduce, stop = ours.callbacks()
    assert stop.patience == own["early_stopping"]["patience"] and reduce.monitor == own["reduce_lr"]["monitor"]


def test_seeds_draw_their_own_copies_and_random_backbones_but_share_imagenet_weights(tmp_path):
    """Each seed's features come from its own augmented copies; ImageNet weights are the same for every seed,
    random ones are drawn from it. The custom CNNs read the same seed's images and copies."""
    images, labels, splits, run_settings = _tiny(size=32)
    configs = [c for c in an2dl.configurations(run_settings) if c.label in (an2dl.TRANSFER, CUSTOM_PLAIN)]
    cache = experiment.RunCache(tmp_path)
    of = {(r.label, r.seed): r for r in an2dl.make_runs(configs, images, labels, splits, run_settings, "h", cache)}
    n = len(images)
    first, second = (of[(an2dl.TRANSFER, seed)].inputs()[0] for seed in (0, 1))
    np.testing.assert_allclose(first[:n], second[:n], rtol=1e-5, atol=1e-5)  # ImageNet: the same weights
    assert not np.allclose(first[n:], second[n:])  # each seed's own copies
    copies = of[(CUSTOM_PLAIN, 1)].inputs()
    np.testing.assert_array_equal(copies[0][:n], images)
    np.testing.assert_array_equal(copies[1], np.tile(labels, 2))
    assert not np.allclose(copies[0][n:], of[(CUSTOM_PLAIN, 0)].inputs()[0][n:])
    random = {**run_settings, "weights": None}  # no pretrained weights: drawn from the seed
    drawn = {(r.label, r.seed): r for r in an2dl.make_runs(configs, images, labels, splits, random, "h", cache)}
    first, second = (drawn[(an2dl.TRANSFER, seed)].inputs()[0][:n] for seed in (0, 1))
    assert np.abs(first - second).max() > 0.1 * np.abs(first).max() > 0  # random features are tiny: compare scaled
    keras.backend.clear_session()


def test_frozen_head_then_its_last_stage_train_on_cached_features_and_export(tmp_path):
    """One seed of MobileNetV2's two rows, end to end through `experiment.run_all` with no shared inputs: the
    features are computed once and cached, fine-tuning starts from the stage-one head, Table 3's train accuracy is
    recorded, and the exported model classifies images as the run did."""
    images, labels, splits, run_settings = _tiny(size=32, seeds=[0], epochs=2, fine_tune_epochs=1)
    configs = [c for c in an2dl.configurations(run_settings) if c.label in (an2dl.TRANSFER, an2dl.TRANSFER_FINE_TUNED)]
    cache = experiment.RunCache(tmp_path)
    runs = an2dl.make_runs(configs, images, labels, {0: splits[0]}, run_settings, "h", cache, log=lambda _: None)
    records = an2dl.complete(experiment.run_all(runs, None, None, an2dl.CLASS_NAMES, cache, verbose=0,
                                                log=lambda _: None), an2dl.backbone_weights(run_settings))  # fmt: skip
    assert [r["configuration"] for r in records] == [an2dl.TRANSFER, an2dl.TRANSFER_FINE_TUNED]
    assert "train_accuracy" in records[1] and "train_accuracy" not in records[0]
    assert records[1]["weights"] == "imagenet" and len(list((tmp_path / "cache" / "features").glob("*.npz"))) == 1
    assert len(list((tmp_path / "cache" / "heads").glob("*.weights.h5"))) == 1  # the stage-one head
    path = an2dl.export_best(runs[1], cache, tmp_path / "model.keras", run_settings, log=lambda _: None)
    model = keras.saving.load_model(path)
    test = np.asarray(records[1]["test_indices"])
    np.testing.assert_allclose(model.predict(images[test], verbose=0), records[1]["test_probabilities"], atol=2e-3)
    keras.backend.clear_session()


def _record(label, group, seed, history, **extra):
    return {"configuration": label, "group": group, "seed": seed, "history": history, "settings": {}, **extra}


def test_complete_reads_the_study_numbers_from_the_history():
    history = {"val_accuracy": [0.5, 0.8, 0.7], "val_f1_weighted": [0.4, 0.6, 0.75], "val_loss": [1.0, 0.7, 0.9]}
    record = _record("ResNet50", "table2", 0, history, settings={"backbone": "resnet50"})
    custom = _record(an2dl.CUSTOM_ROWS["plain"], "custom", 0, history)
    an2dl.complete([record, custom], {"resnet50": "random"})
    assert record["val_accuracy_max"] == 0.8 == record["val_recall_max"] and record["val_f1_max"] == 0.75
    assert record["best_epoch"] == 2 and record["weights"] == "random" and custom["weights"].startswith("none")


def _fake(label, group, seed, val_max, test, train=None):
    right = int(round(test * 20))  # 20 test images a class, `test` of them right
    confusion = np.diag([right] * K) + np.roll(np.diag([20 - right] * K), 1, axis=1)
    return {
        "configuration": label, "group": group, "seed": seed, "epochs": 5, "val_accuracy_max": val_max,
        "val_recall_max": val_max, "val_f1_max": val_max - 0.01, "val_accuracy": val_max - 0.02,
        "test_accuracy": test, "test_balanced_accuracy": test, "test_weighted_f1": test, "test_roc_auc": 0.9,
        "test_confusion": confusion.tolist(), "train_accuracy": train, "weights": "random",
        "test_indices": list(range(4)), "test_probabilities": np.eye(K)[[0, 1, 2, 2]].tolist(),
        "sizes": {"train": 80, "val": 20, "test": 4}, "history": {"loss": [12.5, 4.0]},
    }  # fmt: skip


def _fake_records(seeds=(0, 1), custom_seeds=(0, 1)):
    records = []
    for seed in seeds:
        for index, label in enumerate(an2dl.TABLE_2.index):
            records.append(_fake(label, "table2", seed, 0.6 + 0.05 * index, 0.5 + 0.05 * index))
        records.append(_fake(an2dl.TRANSFER, "transfer", seed, 0.9, 0.8))
        records.append(_fake(an2dl.TRANSFER_FINE_TUNED, "fine_tune", seed, 0.92 + 0.02 * seed, 0.85, train=0.97))
        records.append(_fake(an2dl.OURS, "ours", seed, 0.95, 0.95 + 0.01 * seed, train=0.99))
    for seed in custom_seeds:
        records.append(_fake(an2dl.CUSTOM_ROWS["plain"], "custom", seed, 0.3 + 0.01 * seed, 0.2))
        records.append(_fake(an2dl.CUSTOM_ROWS["inception"], "custom", seed, 0.5 + 0.03 * seed, 0.4))
    return records


OFFLINE = {name: "random" for name in an2dl.BACKBONES} | {"mobilenet_v2": "imagenet"}


def test_table3_and_the_results_table_from_records():
    records = _fake_records()
    assert an2dl.table3_row(records, OFFLINE) == an2dl.TRANSFER_FINE_TUNED  # the stand-in
    assert an2dl.table3_row([*records, _fake(an2dl.FINE_TUNED, "fine_tune", 0, 0.9, 0.8)],
                            {**OFFLINE, "resnet50": "imagenet"}) == an2dl.FINE_TUNED  # fmt: skip
    table3 = experiment.summary.sides_summary(records, an2dl.TRANSFER_FINE_TUNED, an2dl.TABLE_3_SIDES)
    assert list(table3.index) == ["train", "validation", "external test"]
    assert table3.loc["train", "accuracy_mean"] == pytest.approx(97.0)
    assert table3.loc["validation", "accuracy_mean"] == pytest.approx(91.0)  # 0.90, 0.92 chosen-epoch val
    summary = experiment.summarise(records, an2dl.SUMMARY_METRICS)
    shown = an2dl.results_table(summary, records)
    assert list(shown.index[:5]) == [*an2dl.TABLE_2.index, an2dl.TRANSFER] and "BloodMNIST" in shown.index[-1]
    assert an2dl.OURS in shown.index and shown.iloc[-1]["test acc"] == "0.958"
    assert list(an2dl.appendix(summary, records, OFFLINE).index) == list(an2dl.TABLE_2.index)
    assert an2dl.appendix(summary, records, {"mobilenet_v2": "imagenet"}).empty
    tables = an2dl.comparisons(summary, records, {}, OFFLINE)
    table2 = tables["Table 2"]
    resnet = table2[(table2.row == "ResNet50") & (table2.metric == "accuracy %")].iloc[0]
    assert resnet["paper"] == 87.32 and np.isnan(resnet["ours"]) and resnet["note"].startswith("random weights")
    stand_in = table2[(table2.row == an2dl.TRANSFER) & (table2.metric == "accuracy %")].iloc[0]
    assert np.isnan(stand_in["paper"]) and stand_in["ours"] == pytest.approx(90.0) and "stand-in" in stand_in["note"]
    assert "| ResNet50 *(random weights" in experiment.comparison_markdown(table2)
    table3 = tables["Table 3"]
    test_row = table3[table3.row == "external test"].iloc[0]
    assert test_row["paper"] == 51.0 and test_row["ours"] == pytest.approx(85.0) and "external" in test_row["note"]
    fine = tables["Fine-tuning F1"].iloc[0]
    assert fine["row"] == an2dl.FINE_TUNED and fine["ours"] == pytest.approx(92.0) and "stand-in" in fine["note"]
    assert "external test set" in an2dl.table3_title(records, OFFLINE)


def _findings(records, weights=OFFLINE, cleaning=None, **overrides):
    summary = experiment.summarise(records, an2dl.SUMMARY_METRICS)
    best = next(r for r in records if r["configuration"] == an2dl.OURS)
    cleaning = cleaning or {
        "duplicates": 2, "outliers": 7, "pool": 100, "flagged_accuracy": (0.25, 0.75, 4),
        "outlier_classes": {"ig": 5, "monocyte": 2}, "pool_classes": {"ig": 20, "monocyte": 10},
    }  # fmt: skip
    return "\n".join(an2dl.findings(summary, records, weights, best, cleaning, an2dl.settings("smoke", **overrides)))


def test_findings_are_computed_from_the_numbers_given():
    text = _findings(_fake_records())
    assert "4 of the 4 study backbones ran with random weights" in text and "standardises" in text
    assert "ResNet50 60.0 ± 0.0 %" in text and "vs 87.32" not in text  # random rows: not beside the paper
    assert "The highest mean validation F1" not in text  # no ranking of random backbones against the study's claim
    # the study's L2 at initialisation (10.7 on 1,280 features) against the first-epoch loss of the fake heads (12.5)
    assert "the penalty alone is 10.7 at initialisation" in text and "first-epoch training loss averages 12.5" in text
    assert "our row's own head (pooling, dropout 0.3, softmax) has no L2" in text
    # frozen runs: val max (0.6, 0.65, 0.7, 0.75, 0.9) minus test (0.5, 0.55, 0.6, 0.65, 0.8): 10 points each
    assert "the chosen epoch's accuracy on the untouched test split on accuracy: +0.100, standard error 0.000" in text
    assert "paired over 10 runs" in text
    assert "MobileNetV2 with its last stage unfrozen is above MobileNetV2 frozen on validation F1" in text
    assert "the study: +10.86 points" in text and "97.0 % / 91.0 % / 85.0 %" in text
    assert "Our row (MobileNetV2" in text and "0.955 over 2 runs" in text and "against the paper's 0.958" in text
    assert "Our row is above MobileNetV2, last stage fine-tuned (not in the study) on test accuracy" in text
    assert "The custom CNNs ran 2 seed(s) each: none is called best before 3 have run." in text
    assert (
        "2 duplicate(s), then 7 of 100 training and validation images as isolation-forest outliers (5 of them ig, "
        "a class that makes up 20 % of those 100)"
        in text
        and "25.0 % right against 75.0 %" in text
    )


def test_findings_name_a_best_custom_cnn_only_after_three_seeds_and_keep_imagenet_rows_beside_the_paper():
    records = _fake_records(custom_seeds=(0, 1, 2))
    text = _findings(records, weights={name: "imagenet" for name in (*an2dl.BACKBONES, "mobilenet_v2")})
    assert "The custom CNN with the highest mean validation accuracy is 'custom CNN: 4 inception blocks'" in text
    assert "custom CNN: 4 inception blocks is above custom CNN: 5 conv blocks on validation accuracy" in text
    assert "random weights" not in text and "ResNet50 60.0 ± 0.0 % vs 87.32 %" in text
    assert "The highest mean validation F1 is InceptionResNetV2's" in text


def test_findings_call_a_collapsed_row_collapsed_and_noise_noise():
    records = _fake_records()
    for record in records:
        if record["configuration"] == an2dl.CUSTOM_ROWS["plain"]:  # predicts one class for every image
            record["test_confusion"] = [[0, 5] + [0] * 6] + [[0, 5] + [0] * 6 for _ in range(7)]
        if record["configuration"] == an2dl.OURS:  # seed noise around the stand-in
            record["test_accuracy"] = 0.85 + (0.1 if record["seed"] == 0 else -0.1)
    text = _findings(records)
    assert "Every run of 'custom CNN: 5 conv blocks' collapsed to one class." in text
    assert "do not differ on test accuracy beyond seed noise" in text  # our row vs the stand-in
    assert an2dl.row_notes(OFFLINE)[an2dl.BACKBONE_ROWS["resnet50"]] == "random weights"
    assert an2dl.TRANSFER not in an2dl.row_notes(OFFLINE)


def test_early_stopping_waits_for_the_residual_cnns_batch_norm_statistics(tmp_path):
    """Only the residual CNN trains BatchNormalization from scratch; its early stopping starts once the moving
    statistics have settled (`medcnn.train.bn_warmup_epochs`, momentum 0.9: 29 steps; 1 step an epoch here)."""
    images, labels, splits, run_settings = _tiny(seeds=[0])
    runs = an2dl.make_runs(an2dl.configurations(run_settings), images, labels, splits, run_settings, "h",
                           experiment.RunCache(tmp_path))  # fmt: skip
    starts = {run.label: run.callbacks()[1].start_from_epoch for run in runs}
    assert starts[an2dl.CUSTOM_ROWS["residual"]] == 29
    assert starts[CUSTOM_PLAIN] == starts[an2dl.TRANSFER] == 0
    reduce, stopping = next(run for run in runs if run.label == an2dl.TRANSFER).callbacks()
    assert stopping.restore_best_weights and stopping.monitor == "val_loss" and reduce.monitor == "val_accuracy"


# ----------------------------------------------------------------------------------------------------------------
# Library pieces added for this study


def test_sparse_f1_score_matches_scikit_learn():
    from sklearn.metrics import f1_score

    from medcnn.train import SparseF1Score

    y = np.array([0, 1, 2, 2, 1, 0, 2, 1])
    p = np.eye(3)[[0, 1, 1, 2, 1, 2, 2, 0]] * 0.8 + 0.05
    for average in ("weighted", "macro"):
        metric = SparseF1Score(3, average)
        metric.update_state(y[:5], p[:5])
        metric.update_state(y[5:], p[5:])
        assert float(metric.result()) == pytest.approx(f1_score(y, p.argmax(1), average=average), abs=1e-6)
    assert SparseF1Score(3).name == "f1_weighted"
    with pytest.raises(ValueError, match="Received: num_classes=1"):
        SparseF1Score(1)


def test_split_backbone_stem_then_tail_is_the_backbone():
    from medcnn.models.backbones import build_backbone
    from medcnn.models.transfer import split_backbone

    backbone, _ = build_backbone("resnet50", (32, 32, 3), weights=None)
    stem, tail = split_backbone(backbone, 1)
    assert stem.output.shape[1:] == (2, 2, 1024) and tail.output.shape[1:] == backbone.output.shape[1:]
    x = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(tail(stem(x)), backbone(x), rtol=1e-4, atol=1e-4)
    assert {layer.name for layer in tail.layers} & {layer.name for layer in backbone.layers} >= {"conv5_block1_1_conv"}
    with pytest.raises(ValueError, match="Received: n=0"):
        split_backbone(backbone, 0)


def test_outlier_forest_auto_and_contamination_checks():
    from medcnn.data.cleaning import fit_outlier_forest, image_features, remove_outliers
    from medcnn.data.loaders import ImageSet

    rng = np.random.default_rng(6)
    images = [_cell(np.full((48, 48, 3), 230.0), center=(24 + d, 24 - d)) for d in rng.integers(-3, 4, 40)]
    odd = rng.integers(0, 255, (48, 48, 3)).astype(np.uint8)
    data = ImageSet(labels=np.zeros(41, int), class_names=["a"], images=np.stack([*images, odd]))
    forest = fit_outlier_forest(data.images, "auto", seed=0)
    assert forest.predict(image_features(data.images[-1:]))[0] == -1
    cleaned, removed = remove_outliers(data, "auto", seed=0)
    assert 40 in removed["index"].tolist() and len(cleaned) == 41 - len(removed)
    with pytest.raises(ValueError, match="Received: contamination=0.7"):
        fit_outlier_forest(data.images, 0.7)


def test_per_class_from_confusion_matches_scikit_learn():
    from sklearn.metrics import precision_recall_fscore_support

    from medcnn.evaluate import per_class_from_confusion

    truth = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2, 2, 1, 1])
    confusion = np.zeros((4, 4), int)
    np.add.at(confusion, (truth, predicted), 1)
    frame = per_class_from_confusion(confusion, ["a", "b", "c", "d"])
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=[0, 1, 2, 3], zero_division=0
    )
    np.testing.assert_allclose(frame["F1"], f1)
    np.testing.assert_allclose(frame["precision"], precision)
    assert frame["support"].tolist() == support.tolist() and frame.loc["d", "recall"] == 0.0
    with pytest.raises(ValueError, match=r"Received: shape=\(2, 2\)"):
        per_class_from_confusion(np.eye(2), ["a", "b", "c"])


# ----------------------------------------------------------------------------------------------------------------
# The notebook, end to end at smoke scale


def check_smoke_fills_every_row_of_tables_2_and_3(an2dl_smoke):
    """Every published row is there with the paper's numbers. Offline, a random-weight study backbone has no number
    of ours beside them (its row says so; the appendix has its run) and MobileNetV2 (ImageNet) stands in; Table 3
    and the fine-tuning F1 are the stand-in's, and every other number is filled."""
    results = an2dl_smoke.results
    weights = results["backbone_weights"]
    assert weights["mobilenet_v2"] == "imagenet" and all(weights[name] == "random" for name in an2dl.BACKBONES)
    for name, paper in (("Table 2", an2dl.TABLE_2), ("Table 3", an2dl.TABLE_3), ("Fine-tuning F1", an2dl.FINE_TUNING)):
        table = results["tables"][name]
        assert list(table) == [*paper.index, *([an2dl.TRANSFER] if name == "Table 2" else [])], name
        for label, row in table.items():
            for column in paper.columns:
                assert row[column]["paper"] == (paper.loc[label, column] if label in paper.index else None)
                ours = row[column]["ours"]
                if name == "Table 2" and label in an2dl.TABLE_2.index:
                    assert ours is None and row["note"].startswith("random weights"), (name, label)
                else:
                    assert isinstance(ours, float) and math.isfinite(ours), (name, label)
    assert "stand-in" in results["tables"]["Table 3"]["external test"]["note"]
    run = results["run"]
    assert run["scale"] == "smoke" and run["trained_now"] == run["runs"] == len(an2dl.configurations(an2dl.settings()))
    for label in an2dl.TABLE_2.index:
        assert an2dl_smoke.row_count("Table 2", label) == 1 and an2dl_smoke.row_count("Appendix", label) == 1
    assert an2dl_smoke.row_count("Our row beside BloodMNIST", an2dl.OURS) == 1
    assert results["anchor"]["accuracy"] == an2dl.ANCHOR["accuracy"]


def check_smoke_model_learns_and_predicts_raw_pbc_jpegs(an2dl_smoke):
    """The best smoke model's balanced test accuracy is at least chance (1/8) + 0.15, and so is that of the exported
    model.keras on the raw 360x363 JPEGs of its seed's untouched test split, with the notebook's probabilities."""
    from sklearn.metrics import balanced_accuracy_score

    best = an2dl_smoke.results["best_run"]
    assert best["test_balanced_accuracy"] >= CHANCE + 0.15
    record = an2dl_smoke.record(best)
    smoke = an2dl.settings("smoke")
    target = an2dl.homework_counts()
    data, _ = pbc.load_data(None, None, smoke["image_size"], smoke["largest_class"], seed=0, target=target)
    clean, _ = cleaning.remove_duplicates(data, smoke["near_duplicates"])
    test = np.asarray(record["test_indices"])
    predicted = an2dl_smoke.predict([clean.paths[i] for i in test])
    assert predicted.names == an2dl.CLASS_NAMES
    assert balanced_accuracy_score(clean.labels[test], predicted.guesses) >= CHANCE + 0.15
    np.testing.assert_allclose(predicted.probabilities, record["test_probabilities"], atol=2e-3)


def test_readme_section_from_the_committed_smoke_run(committed_results):
    section = an2dl.readme_section(committed_results("an2dl"), "smoke")
    assert all(f"| {label} *(random weights" in section for label in an2dl.TABLE_2.index)  # results.json
    assert "results/an2dl/smoke/report.md" in section
