"""Frozen-backbone features. medcnn.models.features: the seeded frozen backbone, feature statistics and the
standardising layer. medcnn.experiment.features: features of images and views computed once and cached, the head on
standardised features, the head put back on its backbone; and runs that carry their own inputs (`Run.inputs`)."""

import keras
import numpy as np
import pytest

from medcnn import experiment
from medcnn.experiment import features as workflow
from medcnn.experiment import runs
from medcnn.models.features import feature_stats, seeded_backbone, standardise
from medcnn.train import compile_model


def _weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def test_seeded_backbone_shapes_names_preprocessing_and_freezing():
    model, used = seeded_backbone("vgg16", (32, 32, 1), seed=0, weights=None, input_max=1.0)
    assert used == "random" and model.weights_info.used == "random"
    assert model.name == "backbone" and model.output_shape == (None, 1, 1, 512)
    assert "preprocess_caffe" in [layer.name for layer in model.layers]  # preprocessing inside the model
    assert not model.trainable and not model.trainable_weights
    unfrozen, _ = seeded_backbone("vgg16", (32, 32, 3), seed=0, weights=None, freeze=False)
    assert unfrozen.trainable and len(unfrozen.trainable_weights) == len(unfrozen.weights)


def test_seeded_backbone_seed_fixes_the_random_weights():
    first, _ = seeded_backbone("vgg16", (32, 32, 3), seed=3, weights=None)
    keras.utils.set_random_seed(99)  # whatever came before, the build reseeds
    np.random.default_rng().random(10)
    second, _ = seeded_backbone("vgg16", (32, 32, 3), seed=3, weights=None)
    other, _ = seeded_backbone("vgg16", (32, 32, 3), seed=4, weights=None)
    for a, b in zip(_weights(first), _weights(second)):
        np.testing.assert_array_equal(a, b)
    kernels = [(a, c) for a, c in zip(_weights(first), _weights(other)) if a.ndim == 4]
    assert kernels and not any(np.array_equal(a, c) for a, c in kernels)


def test_seeded_backbone_equals_seed_then_build_backbone():
    """The order the studies relied on: set_random_seed(seed), then build_backbone."""
    from medcnn.models.backbones import build_backbone

    keras.utils.set_random_seed(5)
    expected, _ = build_backbone("vgg16", (32, 32, 3), None, include_preprocessing=True, model_name="backbone")
    built, _ = seeded_backbone("vgg16", (32, 32, 3), seed=5, weights=None)
    for a, b in zip(_weights(expected), _weights(built)):
        np.testing.assert_array_equal(a, b)


def test_feature_stats_values_shapes_and_dtype():
    features = np.array([[[[1.0, 10.0]]], [[[3.0, 10.0]]], [[[5.0, 13.0]]]], dtype="float32")  # (3, 1, 1, 2)
    mean, variance = feature_stats(features)
    assert mean.shape == variance.shape == (2,) and mean.dtype == variance.dtype == np.float32
    np.testing.assert_allclose(mean, [3.0, 11.0])
    np.testing.assert_allclose(variance, [8 / 3, 2.0], rtol=1e-6)  # population variance (ddof 0)
    wide = np.random.default_rng(0).normal(0, 1, (5, 2, 2, 3))
    assert feature_stats(wide)[0].shape == (12,)  # every value of a row is a feature


def test_feature_stats_dtype_none_sums_in_the_features_dtype():
    features = np.random.default_rng(1).normal(1e4, 1.0, (4097, 3)).astype("float32")
    own = feature_stats(features, dtype=None)
    np.testing.assert_array_equal(own[0], features.mean(axis=0))  # float32 sums, as cnmc always computed them
    np.testing.assert_array_equal(own[1], features.var(axis=0))
    wide = feature_stats(features)
    np.testing.assert_array_equal(wide[0], features.astype("float64").mean(axis=0).astype("float32"))


def test_standardise_gives_zero_mean_unit_variance_and_floors_the_variance():
    rng = np.random.default_rng(2)
    features = rng.normal(5.0, 1e-3, (64, 1, 1, 4)).astype("float32")  # a tiny spread around a large mean
    layer = standardise(*feature_stats(features))
    out = keras.ops.convert_to_numpy(layer(features))
    assert layer.name == "standardise" and out.shape == features.shape
    assert abs(out.mean()) < 1e-2 and abs(out.std() - 1.0) < 1e-2
    assert layer.trainable_weights == []
    floored = standardise([0.0, 0.0], [0.0, 4.0], min_variance=1e-6, name="norm")
    np.testing.assert_allclose(floored.input_variance, [1e-6, 4.0], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(floored(np.array([[1e-3, 2.0]]))), [[1.0, 1.0]], rtol=1e-4)
    assert floored.name == "norm"
    with pytest.raises(ValueError):
        standardise([0.0, 1.0], [1.0])(np.zeros((1, 2)))  # mean and variance per feature, of the same size


# ----------------------------------------------------------------------------------------------------------------
# medcnn.experiment.features: extraction, its cache, views, seeds


@pytest.fixture(autouse=True)
def _fresh_feature_memory():
    """Each test starts without features held in memory or written by an earlier test of this process."""
    workflow._LAST.clear()
    workflow._WRITTEN.clear()
    yield
    workflow._LAST.clear()
    workflow._WRITTEN.clear()


@pytest.fixture(scope="module")
def cells():
    """12 RGB 32x32 images in [0, 1]: label 1 has a bright square in the middle, label 0 does not."""
    rng = np.random.default_rng(0)
    labels = np.arange(12) % 2
    images = (rng.random((12, 32, 32, 3)) * 0.3).astype("float32")
    images[labels == 1, 8:24, 8:24, :] += 0.6
    return images, labels


def _views(seed):
    from medcnn.augment import geometric_and_zoom, with_seed

    return with_seed(geometric_and_zoom(rotation=0.5, zoom=0.1, seed=0), 100 * seed)


def mobilenet(seed=0, **kwargs):
    """MobileNetV2 at 32 px on [0, 1] images, ImageNet weights (the staged file) or random ones where allowed."""
    return workflow.FeatureSpec("mobilenet_v2", (32, 32, 3), seed=seed, allow_random=True, input_max=1.0, **kwargs)


def test_features_of_images_and_views_are_laid_out_by_row(cells):
    images, labels = cells
    spec = mobilenet(views=2, augmentation=_views, view_settings={"rotation": 0.5})
    made = workflow.extract(spec, images)
    assert made.x.shape == (36, 1, 1, 1280) and made.x.dtype == np.float32
    assert made.source.tolist() == list(range(12)) * 3 and made.view.tolist() == [0] * 12 + [1] * 12 + [2] * 12
    assert made.info["weights"] in ("imagenet", "random") and made.info["rows"] == 36 and not made.info["cached"]
    assert made.info["inference_images_per_s"] > 0 and made.info["parameters"] > 2_000_000
    np.testing.assert_array_equal(made.labels(labels), np.tile(labels, 3))
    split = made.split({"train": np.array([0, 5]), "test": np.array([3])})
    assert split["train"].tolist() == [0, 5, 12, 17, 24, 29] and split["test"].tolist() == [3]
    originals = workflow.extract(mobilenet(), images)  # no views: the images' rows are the same features
    np.testing.assert_allclose(made.x[:12], originals.x, atol=1e-5)
    assert not np.allclose(made.x[12:24], made.x[:12], atol=1e-4)  # a view is not its image
    assert not np.allclose(made.x[12:24], made.x[24:], atol=1e-4)  # nor the view before it


def test_a_cache_hit_skips_extraction(cells, tmp_path, monkeypatch):
    images, _ = cells
    spec = mobilenet(views=1, augmentation=_views)
    first = workflow.extract(spec, images, experiment.RunCache(tmp_path), data="cells")
    path = workflow.feature_path(spec, first.key, experiment.RunCache(tmp_path))
    assert path.is_file() and path.parent == tmp_path / "cache" / "features"

    def fail(*args, **kwargs):
        raise AssertionError("features were computed again")

    monkeypatch.setattr(workflow, "_compute", fail)
    workflow._LAST.clear()
    again = workflow.extract(spec, images, experiment.RunCache(tmp_path), data="cells")  # written by this process
    workflow._LAST.clear()
    workflow._WRITTEN.clear()
    reused = workflow.extract(spec, images, experiment.RunCache(tmp_path, reuse=True), data="cells")
    for made in (again, reused):
        assert made.info["cached"] and made.key == first.key
        np.testing.assert_array_equal(made.x, first.x)
        np.testing.assert_array_equal(made.source, first.source)
    workflow._LAST.clear()
    with pytest.raises(AssertionError, match="computed again"):  # a fresh reproduction computes them again
        workflow.extract(spec, images, experiment.RunCache(tmp_path, reuse=False), data="cells")
    with pytest.raises(AssertionError, match="computed again"):  # other data: another key
        workflow.extract(spec, images, experiment.RunCache(tmp_path, reuse=True), data="other cells")
    with pytest.raises(ValueError, match="give each data set its own digest"):  # same digest, other images
        workflow.extract(spec, images[:5], experiment.RunCache(tmp_path, reuse=True), data="cells")


def test_extracted_info_is_the_first_specs_info_with_the_seconds_of_all(cells, tmp_path):
    images, _ = cells
    specs = [mobilenet(seed) for seed in (0, 1)]
    made = [workflow.extract(spec, images, experiment.RunCache(tmp_path), data="cells") for spec in specs]
    info = workflow.extracted_info(specs, images, experiment.RunCache(tmp_path), data="cells")  # read back
    assert info["rows"] == 12 and info["parameters"] == made[0].info["parameters"]
    assert info["feature_s"] == sum(features.info["seconds"] for features in made)


def test_the_key_moves_with_what_changes_the_features():
    spec = mobilenet(views=1, augmentation=_views, view_settings={"zoom": 0.1})
    key = spec.key("cells")
    changed = [
        spec.key("other cells"),
        mobilenet(seed=1, views=1, augmentation=_views, view_settings={"zoom": 0.1}).key("cells"),
        mobilenet(views=2, augmentation=_views, view_settings={"zoom": 0.1}).key("cells"),
        mobilenet(views=1, augmentation=_views, view_settings={"zoom": 0.2}).key("cells"),
        workflow.FeatureSpec("mobilenet_v2", (32, 32, 3), views=1, augmentation=_views, allow_random=True,
                             view_settings={"zoom": 0.1}).key("cells"),  # input_max 255
    ]  # fmt: skip
    assert len({key, *changed}) == 1 + len(changed)
    if mobilenet().weights_info().used == "imagenet":  # ImageNet weights and no views: the seed draws nothing
        assert mobilenet(seed=0).key("cells") == mobilenet(seed=7).key("cells")
    assert workflow.FeatureSpec("vgg16", (32, 32, 3), seed=0, weights=None).key("cells") != workflow.FeatureSpec(
        "vgg16", (32, 32, 3), seed=1, weights=None
    ).key("cells")


def test_a_random_backbone_draws_its_weights_from_the_seed(cells):
    images, _ = cells
    specs = {seed: workflow.FeatureSpec("vgg16", (32, 32, 3), seed, weights=None, input_max=1.0) for seed in (0, 1)}
    first = workflow.extract(specs[0], images)
    workflow._LAST.clear()
    again = workflow.extract(specs[0], images)
    other = workflow.extract(specs[1], images)
    assert first.info["weights"] == "random" and first.info["seed"] == 0
    np.testing.assert_array_equal(first.x, again.x)
    assert np.abs(first.x - other.x).mean() > 0.1 * np.abs(first.x).mean()


def test_spec_rejects_views_without_augmentation_and_unknown_outputs():
    with pytest.raises(ValueError, match="2 views need an `augmentation`"):
        mobilenet(views=2)
    with pytest.raises(ValueError, match="`outputs` must name some of"):
        mobilenet(outputs=("pooled", "logits"))
    with pytest.raises(ValueError, match="needs `stem_blocks` >= 1"):
        mobilenet(outputs=("pooled", "stem"))


def test_stem_output_feeds_the_last_blocks():
    spec = mobilenet(outputs=("pooled", "stem"), stem_blocks=1)
    images = np.random.default_rng(1).random((4, 32, 32, 3)).astype("float32")
    made = workflow.extract(spec, images)
    assert set(made.arrays) == {"pooled", "stem"} and made.x.shape == (4, 1, 1, 1280)
    assert made.arrays["stem"].shape[0] == 4 and made.arrays["stem"].shape[-1] != 1280


# ----------------------------------------------------------------------------------------------------------------
# The head on standardised features, the image model, runs with their own inputs


def test_standardised_head_standardises_pools_any_map_and_checks_its_shape():
    mean, variance = np.array([10.0, -5.0]), np.array([4.0, 1.0])
    head = workflow.standardised_head((1, 1, 2), mean, variance, keras.layers.Dense(1, use_bias=False, name="out"))
    head.get_layer("out").set_weights([np.array([[1.0], [0.0]])])
    one = np.array([[[[12.0, 0.0]]]], "float32")  # (12 - 10) / sqrt(4) = 1
    assert float(head.predict(one, verbose=0)[0, 0]) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(head.predict(np.tile(one, (1, 3, 3, 1)), verbose=0), [[1.0]], atol=1e-5)
    assert head.name == "head" and head.get_layer("standardise").trainable_weights == []
    with pytest.raises(ValueError, match="a mean and variance per channel"):
        workflow.standardised_head((1, 1, 3), mean, variance, keras.layers.Dense(1))


def _head_builder(inputs, train_rows):
    """A run's model: the head standardised with its training rows' statistics, a softmax on top."""

    def build():
        x, _ = inputs()
        mean, variance = feature_stats(x[train_rows])
        head = workflow.standardised_head(x.shape[1:], mean, variance, keras.layers.Dense(2, activation="softmax"))
        return compile_model(head, "adam", 0.05, loss="categorical_crossentropy")

    return build


def test_runs_read_their_own_inputs_and_the_image_model_predicts_as_the_head(cells, tmp_path):
    """Two backbones' features in one `run_all` without a shared x; the trained head exported on its backbone
    predicts on images what it predicted on their features."""
    images, labels = cells
    cache = experiment.RunCache(tmp_path)
    specs = {
        "mobilenet": mobilenet(views=1, augmentation=_views),
        "vgg16": workflow.FeatureSpec("vgg16", (32, 32, 3), seed=0, weights=None, input_max=1.0),
    }
    made, split = [], {"train": np.arange(12, 24), "val": np.arange(4), "test": np.arange(4, 12)}
    for name, spec in specs.items():
        inputs = workflow.feature_inputs(spec, images, labels, cache, data="cells")
        own_split = split if spec.views else {**split, "train": np.arange(12)}
        build = _head_builder(inputs, own_split["train"])
        made.append(experiment.Run(label=name, seed=0, build_model=build, split=own_split, epochs=2, batch_size=4,
                                   data="cells", inputs=inputs))  # fmt: skip
    records = experiment.run_all(made, None, None, ["plain", "square"], cache, verbose=0, log=lambda line: None)
    assert [r["sizes"]["train"] for r in records] == [12, 12] and all(r["test_indices"] for r in records)
    run, spec = made[0], specs["mobilenet"]
    head = experiment.trained_model(run, None, None, ["plain", "square"], cache)
    features = workflow.extract(spec, images, cache, data="cells")
    on_features = head.predict(features.x[:12], verbose=0)
    on_images = workflow.image_model(spec, head).predict(images, verbose=0)
    np.testing.assert_allclose(on_images, on_features, atol=1e-4)
    np.testing.assert_allclose(np.asarray(records[0]["test_probabilities"]), on_features[4:12], atol=1e-3)
    path = workflow.export_head(run, spec, ["plain", "square"], cache, tmp_path / "model.keras")
    keras.backend.clear_session()
    saved = keras.saving.load_model(path)
    np.testing.assert_allclose(saved.predict(images * 255.0, verbose=0), on_features, atol=1e-3)


def test_inputs_leave_fingerprints_alone_when_unset(monkeypatch):
    """The fingerprint of a run without `inputs` is the one it had before the field existed."""
    monkeypatch.setattr(runs, "FINGERPRINT_VERSION", 3)
    split = {"train": np.arange(6), "val": np.arange(6, 8), "test": np.arange(8, 10)}
    plain = experiment.Run(label="head", seed=3, build_model=dict, split=split, epochs=4, batch_size=2,
                           settings={"lr": 0.1}, spec={"image_size": (8, 8)}, data={"files": "abc"})  # fmt: skip
    assert plain.fingerprint == "d757c3c1d71de4dc" and plain.fingerprint_inputs["data"] == {"files": "abc"}
    x = np.arange(10.0).reshape(10, 1)
    own = experiment.Run(**{**vars(plain), "inputs": (x, np.arange(10) % 2)})
    other = experiment.Run(**{**vars(plain), "inputs": (x + 1, np.arange(10) % 2)})
    assert own.fingerprint_inputs["data"]["run"] == {"files": "abc"} and "inputs" in own.fingerprint_inputs["data"]
    assert len({plain.fingerprint, own.fingerprint, other.fingerprint}) == 3
    lazy = runs.LazyInputs(lambda: x, digest="features-key")
    assert experiment.Run(**{**vars(plain), "inputs": lazy}).fingerprint_inputs["data"]["inputs"] == "features-key"


def test_run_inputs_are_checked():
    split = {"train": np.arange(2)}
    base = dict(label="head", seed=0, build_model=dict, split=split, epochs=1, batch_size=2)
    with pytest.raises(ValueError, match="must carry a `digest`"):
        experiment.Run(**base, inputs=lambda: np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"must be \(x, labels\) with one label per row"):
        experiment.Run(**base, inputs=(np.zeros((3, 1)), np.zeros(2)))
    run = experiment.Run(**base, inputs=np.zeros((3, 1)))
    with pytest.raises(ValueError, match="inputs have 3 rows but 2 labels"):
        runs.run_data(run, None, np.zeros(2))
    with pytest.raises(ValueError, match="no shared `x` was given"):
        runs.run_data(experiment.Run(**base), None, None)


def test_tail_model_and_single_output_rebuild_the_backbone_from_its_stem():
    images = np.random.default_rng(3).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    spec = workflow.FeatureSpec("mobilenet_v2", (32, 32, 3), weights=None, outputs=("pooled", "stem"), stem_blocks=2)
    stem = workflow.extract(spec, images, log=lambda _: None).arrays["stem"]

    def head(shape):
        return keras.Sequential([keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])

    tail = workflow.tail_model(spec, head)
    assert tail.input_shape[1:] == stem.shape[1:] and tail.name == "mobilenet_v2_fine_tune"
    trainable = {w.path.split("/")[0] for w in tail.trainable_weights}
    assert "Conv_1" in trainable and not any("BN" in name for name in trainable)
    whole = workflow.image_model(workflow.single_output(spec, "stem"), tail)
    np.testing.assert_allclose(whole.predict(images, verbose=0), tail.predict(stem, verbose=0), atol=1e-5)
    assert workflow.single_output(spec, "pooled").stem_blocks == 0
    last = {w.path.split("/")[0] for w in workflow.tail_model(spec, head, trainable=1).trainable_weights}
    assert "Conv_1" in last and not any(name.startswith("block_16") for name in last)
    keras.backend.clear_session()


def test_cropped_backbone_model_sees_only_the_centre():
    from medcnn.models.heads import HeadSpec

    spec = workflow.FeatureSpec("mobilenet_v2", (32, 32, 3), weights=None)
    model = workflow.cropped_backbone_model(spec, (48, 48, 3), HeadSpec(3, "gap"), blocks="all")
    assert model.get_layer("centre").output.shape[1:] == (32, 32, 3) and model.get_layer("head").output.shape[-1] == 3
    image = np.random.default_rng(4).uniform(0, 255, (1, 48, 48, 3)).astype("float32")
    border = image.copy()
    border[:, :8] = 0.0  # outside the central 32x32
    np.testing.assert_allclose(model.predict(border, verbose=0), model.predict(image, verbose=0), atol=1e-6)
    keras.backend.clear_session()


def test_offline_copies_draw_once_per_seed_and_name_their_inputs(tmp_path):
    calls = []

    def draw(seed):
        calls.append(seed)
        return np.full((4, 32, 32, 3), float(seed), "float32")  # 2 images, 1 copy each

    copies = workflow.OfflineCopies(np.array([0, 1]), 1, draw, {"files": "abc"}, cache=experiment.RunCache(tmp_path))
    x, labels = copies.image_inputs(3)()
    assert x.shape == (4, 32, 32, 3) and labels.tolist() == [0, 1, 0, 1]
    assert copies.images(3) is x and calls == [3] and copies.image_inputs(3).digest == {"files": "abc", "seed": 3}
    copies.images(4)
    assert calls == [3, 4]  # only the last seed's draw is kept
    spec = workflow.FeatureSpec("mobilenet_v2", (32, 32, 3), seed=4, weights=None, batch_size=4)
    inputs = copies.feature_inputs(spec, "pooled")
    assert inputs.digest["features"] == spec.key({"files": "abc", "seed": 4}) and inputs.digest["output"] == "pooled"
    features, feature_labels = inputs()
    assert features.shape == (4, 1, 1, 1280) and feature_labels.tolist() == [0, 1, 0, 1] and calls == [3, 4]
    keras.backend.clear_session()


def test_lazy_builder_reads_shape_statistics_and_weights_when_called():
    x = np.arange(12.0).reshape(6, 1, 1, 2)
    seen = {}

    def build(shape, stats, weights):
        seen.update(shape=shape, stats=stats, weights=weights)
        return "model"

    inputs = runs.LazyInputs(lambda: (x, np.zeros(6)), "x")
    assert workflow.lazy_builder(build, inputs)() == "model" and seen["stats"] is None and seen["weights"] is None
    assert seen["shape"] == (1, 1, 2)
    other = runs.LazyInputs(lambda: (x * 10, np.zeros(6)), "y")
    workflow.lazy_builder(build, inputs, [0, 1], stats_inputs=other, head_weights=lambda: "head.h5")()
    np.testing.assert_allclose(seen["stats"][0], [10.0, 20.0])  # the mean of rows 0 and 1 of `other`
    assert seen["weights"] == "head.h5"


def test_lazy_builder_reads_inputs_that_are_arrays_or_return_one():
    x = np.arange(12.0).reshape(6, 1, 1, 2)
    seen = {}

    def build(shape, stats, weights):
        seen.update(shape=shape, stats=stats)

    for inputs in (runs.LazyInputs(lambda: x, "x"), x, (x, np.zeros(6))):
        seen.clear()
        workflow.lazy_builder(build, inputs, [0, 1])()
        assert seen["shape"] == (1, 1, 2)  # one row's shape, not one row's first item's
        np.testing.assert_allclose(seen["stats"][0], [1.0, 2.0])  # the mean of rows 0 and 1
    workflow.lazy_builder(build, runs.LazyInputs(lambda: x, "x"), [0, 1], stats_inputs=x * 10)()
    np.testing.assert_allclose(seen["stats"][0], [10.0, 20.0])
