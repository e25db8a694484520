"""Two seeds give two draws of every random part a study varies; ImageNet weights are the same for every seed."""

import keras
import numpy as np
import pytest
from PIL import Image

from medcnn import experiment
from medcnn.data import karyogram_pool
from medcnn.experiment.features import backbone_model
from medcnn.studies import an2dl, cnmc, kth


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def _same(first, second):
    return all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


# ----------------------------------------------------------------------------------------------------------------
# The record


def test_seed_policy_records_what_varies_and_what_is_held_fixed():
    policy = experiment.seed_policy(["split", "augmented views (MobileNetV2)"], {"augmented views (VGG19)": "cost"})
    assert policy == {"seed_varies": ["split", "augmented views (MobileNetV2)"],
                      "held_fixed": {"augmented views (VGG19)": "cost"}}  # fmt: skip
    assert experiment.for_models("augmented views", ["a"], ["a", "b"]) == "augmented views (a)"
    assert experiment.for_models("augmented views", ["b", "a"], ["a", "b"]) == "augmented views"
    weights = {"vgg16": "random", "mobilenet_v2": "imagenet"}  # random weights vary, ImageNet ones are held
    assert experiment.seed_policy(["split"], {"search": "once"}, weights) == {
        "seed_varies": ["split", "random backbone weights (vgg16)"],
        "held_fixed": {"search": "once",
                       "pretrained backbone weights (mobilenet_v2)": "ImageNet weights: loaded, not drawn"},
    }  # fmt: skip
    seeded = experiment.seed_policy(["split"], {"search": "once"}, weights, seeded_heads=True)["held_fixed"]
    assert list(seeded) == ["search", *experiment.seeding.SEEDED_HEAD, "pretrained backbone weights (mobilenet_v2)"]
    assert experiment.seed_policy(["split"], None, None, seeded_heads=True)["held_fixed"] == {}  # no backbone, no head


@pytest.mark.parametrize(
    ("varies", "held", "message"),
    [
        (["splits"], {}, "Unknown seed parts"),
        (["split"], {"split": "why"}, "both vary and be held fixed"),
        (["split", "split"], {}, "lists a part twice"),
        (["split"], {"composition": ""}, "needs its reason"),
    ],
)
def test_seed_policy_incorrect(varies, held, message):
    with pytest.raises(ValueError, match=message):
        experiment.seed_policy(varies, held)


def test_every_study_declares_its_seeding():
    from medcnn.studies import allgray, chromosome

    random = {"InceptionV3": "random", "VGG19": "random", "ResNet101V2": "random", "MobileNetV2": "imagenet"}
    for scale in ("smoke", "cpu"):  # every seed draws its views and random backbone weights (cnmc v3)
        policy = cnmc.seeding(cnmc.settings(scale), random)
        drawn = "random backbone weights (InceptionV3, VGG19, ResNet101V2)"
        assert {"split", "initialisation", "augmented views", drawn} <= set(policy["seed_varies"])
        assert list(policy["held_fixed"]) == ["pretrained backbone weights (MobileNetV2)"]
    policy = an2dl.seeding(an2dl.settings("smoke"), {"resnet50": "random", "mobilenet_v2": "imagenet"})
    assert {"split", "augmented views", "random backbone weights (resnet50)"} <= set(policy["seed_varies"])
    assert "pretrained backbone weights (mobilenet_v2)" in policy["held_fixed"]
    assert "composition" in kth.seeding(kth.settings("smoke"), {"vgg16": "random"})["seed_varies"]
    assert "search" in chromosome.seeding(chromosome.settings("smoke"), {})["held_fixed"]
    assert "augmentation draws" in allgray.seeding(allgray.settings("smoke"), {})["seed_varies"]


# ----------------------------------------------------------------------------------------------------------------
# cnmc


def _cnmc_settings(**overrides):
    return cnmc.settings("smoke", image_size=(32, 32), predict_batch_size=8, **overrides)


def test_cnmc_splits_views_and_random_backbones_vary_with_the_seed():
    from medcnn.experiment.features import backbone_model

    labels = np.repeat([0, 1], 30)
    groups = np.array([f"p{k}" for k in range(12)]).repeat(5)
    first, second = (cnmc.make_splits(labels, groups, seed, folds=3) for seed in (0, 1))
    assert not np.array_equal(first["test"], second["test"])
    images = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    run_settings = _cnmc_settings()
    views = {
        seed: np.asarray(cnmc.views_of(run_settings["augmentation"], seed)(images, training=True)) for seed in (0, 1)
    }
    assert not np.allclose(views[0], views[1])
    again = np.asarray(cnmc.views_of(run_settings["augmentation"], 0)(images, training=True))
    np.testing.assert_array_equal(views[0], again)
    random_settings = {**run_settings, "weights": None}  # no pretrained weights: drawn from the seed
    drawn = {
        seed: _weights(backbone_model(cnmc.feature_spec("mobilenet_v2", random_settings, seed))) for seed in (0, 1)
    }
    assert not _same(drawn[0], drawn[1])
    assert _same(drawn[0], _weights(backbone_model(cnmc.feature_spec("mobilenet_v2", random_settings, 0))))
    keras.backend.clear_session()


def test_cnmc_imagenet_backbone_is_the_same_for_every_seed_and_features_are_cached_per_seed(tmp_path):
    from medcnn.experiment.features import backbone_model

    run_settings = _cnmc_settings(augmented_copies=1)
    specs = {seed: cnmc.feature_spec("mobilenet_v2", run_settings, seed) for seed in (0, 1)}
    first, second = backbone_model(specs[0]), backbone_model(specs[1])
    assert first.weights_info.used == "imagenet" and _same(_weights(first), _weights(second))
    images = np.random.default_rng(1).random((4, 32, 32, 3)).astype("float32")
    quiet = lambda _: None  # noqa: E731
    features = {seed: experiment.extract(specs[seed], images, tmp_path, "seed images", log=quiet) for seed in (0, 1)}
    originals = features[0].view == 0
    np.testing.assert_allclose(features[0].x[originals], features[1].x[originals], rtol=1e-5, atol=1e-6)
    assert not np.allclose(features[0].x[~originals], features[1].x[~originals])  # each seed's own views
    assert len(list(tmp_path.glob("mobilenet_v2_*.npz"))) == 2 and features[1].info["seed"] == 1
    again = experiment.extract(specs[1], images, experiment.RunCache(tmp_path, reuse=True), "seed images", log=quiet)
    np.testing.assert_array_equal(again.x, features[1].x)
    keras.backend.clear_session()


def test_cnmc_head_initialisation_varies_with_the_seed():
    heads = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        heads.append(_weights(cnmc.build_head(4, np.zeros(4), np.ones(4))))
    assert not _same(heads[0], heads[1])


# ----------------------------------------------------------------------------------------------------------------
# an2dl


def _an2dl_settings(**overrides):
    tiny = {"image_size": (32, 32), "backbones": (), "augment_copies": 1, "predict_batch_size": 8}
    return an2dl.settings("smoke", **{**tiny, **overrides})


def test_an2dl_head_initialisation_and_dropout_vary_with_the_seed():
    config = an2dl.Configuration(an2dl.TRANSFER, "transfer", backbone="mobilenet_v2")
    heads = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        heads.append(_weights(an2dl.build_model(config, _an2dl_settings(), (1, 1, 4))))
    assert not _same(heads[0], heads[1])
    dropout = [layer for layer in an2dl.head_model(4, _an2dl_settings()).get_layer("study_head").layers
               if "dropout" in layer.name]  # fmt: skip
    assert dropout and all(layer.seed is None for layer in dropout)  # dropout masks follow the run's seed


# ----------------------------------------------------------------------------------------------------------------
# kth


def test_kth_pool_splits_and_random_backbones_vary_with_the_seed(tmp_path):
    rng = np.random.default_rng(5)
    for index in range(25):
        name = "abnormal" if index < 10 else "normal"
        (tmp_path / name).mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(tmp_path / name / f"k{index:02d}.png")
    source = karyogram_pool.load_source(tmp_path, (32, 32))
    tiny = {"source_size": (32, 32), "original_counts": {"normal": 15, "abnormal": 10},
            "augmented_counts": {"normal": 25, "abnormal": 25}}  # fmt: skip
    run_settings = kth.settings("smoke", **tiny)
    pools = {seed: karyogram_pool.build_pool(source, run_settings, seed) for seed in (0, 1)}
    assert not np.array_equal(pools[0].splits["published"]["original"]["train"],
                              pools[1].splits["published"]["original"]["train"])  # fmt: skip
    assert not np.allclose(pools[0].images[25:], pools[1].images[25:])  # each seed's augmented copies
    sized = {**run_settings, "image_size": (32, 32), "transfer_size": (96, 96)}
    random = {seed: _weights(backbone_model(kth.feature_spec("vgg16", sized, seed))) for seed in (0, 1)}
    assert not _same(random[0], random[1])
    imagenet = [backbone_model(kth.feature_spec("mobilenet_v2", sized, seed)) for seed in (0, 1)]
    assert imagenet[0].weights_info.used == "imagenet" and _same(_weights(imagenet[0]), _weights(imagenet[1]))
    keras.backend.clear_session()
