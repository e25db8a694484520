"""medcnn.models.features: the seeded frozen backbone, feature statistics and the standardising layer."""

import keras
import numpy as np
import pytest

from medcnn.models.features import feature_stats, seeded_backbone, standardise


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
