import keras
import numpy as np
import pytest

from medcnn.models.heads import (
    DenseLayer,
    HeadSpec,
    an2dl_head,
    build_head,
    cnmc_head,
    kth_head,
)

FEATURES = (3, 3, 16)


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers[1:]]


def test_kth_head_layers_and_parameters():
    head = build_head(kth_head(units=32, dropout=0.4), FEATURES)
    assert head.name == "head"
    assert _layer_types(head) == [
        "GlobalAveragePooling2D", "BatchNormalization", "Dropout", "Dense", "Dropout", "Dense"
    ]  # fmt: skip
    assert [head.get_layer(name).rate for name in ("dropout", "dropout1")] == [0.4, 0.4]
    assert head.output_shape == (None, 2)
    assert head.get_layer("probabilities").activation.__name__ == "softmax"
    assert head.count_params() == 4 * 16 + (16 * 32 + 32) + (32 * 2 + 2)


def test_cnmc_head_is_one_sigmoid_unit():
    head = build_head(cnmc_head(), FEATURES)
    assert _layer_types(head) == ["GlobalAveragePooling2D", "Dropout", "Dense"]
    assert head.get_layer("dropout").rate == 0.25
    assert head.output_shape == (None, 1)
    assert head.get_layer("probabilities").activation.__name__ == "sigmoid"
    assert head.count_params() == 16 + 1


def test_an2dl_head_matches_table_1():
    head = build_head(an2dl_head(), FEATURES)
    assert _layer_types(head) == ["GlobalAveragePooling2D", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert [head.get_layer(name).units for name in ("dense1", "dense2", "probabilities")] == [512, 256, 8]
    assert [head.get_layer(name).rate for name in ("dropout1", "dropout2")] == [0.5, 0.5]
    for name in ("dense1", "dense2"):
        regularizer = head.get_layer(name).kernel_regularizer
        assert isinstance(regularizer, keras.regularizers.L2) and regularizer.l2 == pytest.approx(0.01)
    assert head.get_layer("probabilities").kernel_regularizer is None
    assert head.count_params() == (16 * 512 + 512) + (512 * 256 + 256) + (256 * 8 + 8)


def test_flatten_pooling_keeps_every_position():
    head = build_head(HeadSpec(3, pooling="flatten"), FEATURES)
    assert head.count_params() == 3 * 3 * 16 * 3 + 3
    with pytest.raises(ValueError, match="pooling='flatten' needs a static feature shape"):
        build_head(HeadSpec(3, pooling="flatten"), (None, None, 16))


def test_head_inference_matches_numpy_and_is_deterministic():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(5, *FEATURES)).astype("float32")
    head = build_head(kth_head(num_classes=3, units=8, seed=1), FEATURES)
    bn = head.get_layer("bn")
    gamma, beta, mean, variance = (rng.uniform(0.5, 2.0, 16).astype("float32") for _ in range(4))
    bn.set_weights([gamma, beta, mean, variance])  # statistics of its own, as after training
    first = keras.ops.convert_to_numpy(head(features, training=False))
    # GAP -> BN (moving statistics) -> [Dropout: off] -> Dense ReLU -> [Dropout: off] -> Dense softmax
    x = features.mean(axis=(1, 2))
    x = gamma * (x - mean) / np.sqrt(variance + bn.epsilon) + beta
    kernel, bias = head.get_layer("dense1").get_weights()
    x = np.maximum(x @ kernel + bias, 0.0)
    kernel, bias = head.get_layer("probabilities").get_weights()
    logits = x @ kernel + bias
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(first, expected / expected.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head(features, training=False)), first)
    assert not np.allclose(keras.ops.convert_to_numpy(head(features, training=True)), first)  # dropout acts


def test_seeded_dropout_layers_get_distinct_seeds():
    head = build_head(an2dl_head(seed=7), FEATURES)
    assert [head.get_layer(name).seed for name in ("dropout1", "dropout2")] == [7, 8]


def test_output_stays_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        head = build_head(kth_head(units=8), FEATURES)
    finally:
        keras.config.set_dtype_policy(previous)
    assert head.get_layer("dense1").compute_dtype == "bfloat16"
    assert head.get_layer("probabilities").compute_dtype == "float32"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 1}, "`num_classes` must be an int >= 2"),
        ({"num_classes": 3, "output": "sigmoid"}, "A sigmoid output is one unit, for two classes"),
        ({"num_classes": 2, "pooling": "max"}, "`pooling` must be one of"),
        ({"num_classes": 2, "dropout": 1.0}, "`dropout` must be a float in \\[0, 1\\)"),
        ({"num_classes": 2, "dense": (64,)}, "`dense` must be a tuple of DenseLayer"),
    ],
)
def test_invalid_head_spec(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HeadSpec(**kwargs)


def test_invalid_dense_layer():
    with pytest.raises(ValueError, match="`units` must be a positive int. Received: units=0"):
        DenseLayer(0)
    with pytest.raises(ValueError, match="`l2` must be a float >= 0"):
        DenseLayer(8, l2=-1.0)


def test_penalty_at_start_is_the_l2_of_the_initial_kernels():
    from medcnn.models.heads import penalty_at_start

    def build():
        dense = keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.5))
        return keras.Sequential([keras.Input((4,)), dense])

    penalty = penalty_at_start(build, (4,), seed=1)
    keras.utils.set_random_seed(1)
    kernel = keras.ops.convert_to_numpy(build().layers[0].kernel)
    assert penalty == pytest.approx(0.5 * float((kernel**2).sum()), rel=1e-5) and penalty > 0
    assert penalty_at_start(lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), (4,)) == 0.0
