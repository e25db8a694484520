import keras
import numpy as np
import pytest

from medcnn.models.blocks import (
    ABLATION_BLOCKS,
    BATCH_NORM_BLOCKS,
    BATCH_NORM_MOMENTUM,
    CBAM,
    DenseBlock,
    InceptionModule,
    ResidualBlock,
    RowRecurrent,
    SpatialPyramidPooling,
    SqueezeExcitation,
    baseline_cnn,
    uses_batch_norm,
)
from medcnn.models.deformable import DeformableConv2D

INPUT_SHAPE = (32, 32, 1)
NUM_CLASSES = 4


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((8, *INPUT_SHAPE)).astype("float32"), rng.integers(0, NUM_CLASSES, 8)


def test_registry_lists_every_technique_of_the_study():
    assert set(ABLATION_BLOCKS) == {
        "residual", "inception", "dense", "se", "cbam", "separable", "batch_norm", "spp", "dropout", "recurrent",
        "deformable",
    }  # fmt: skip
    assert {entry.slot for entry in ABLATION_BLOCKS.values()} == {"features", "conv", "pooling", "head"}


@pytest.mark.parametrize("block", [None, *ABLATION_BLOCKS])
def test_block_builds_trains_a_step_and_reloads(block, tmp_path):
    keras.utils.set_random_seed(0)
    images, labels = _data()
    model = baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block=block)
    assert model.output_shape == (None, NUM_CLASSES)
    # one eager step: tracing a graph would cost more than the step itself on these tiny inputs
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", run_eagerly=True)
    before = [weight.copy() for weight in model.get_weights()]
    loss = model.train_on_batch(images, labels)
    assert np.isfinite(loss)
    assert any(not np.allclose(old, new) for old, new in zip(before, model.get_weights()))

    probabilities = keras.ops.convert_to_numpy(model(images))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(images)), probabilities, atol=1e-5)


def test_exactly_one_block_is_switched_in():
    baseline = baseline_cnn(INPUT_SHAPE, NUM_CLASSES)
    with_se = baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block="se")
    extra = [layer.name for layer in with_se.layers if layer.name not in {other.name for other in baseline.layers}]
    assert extra == ["se"]
    bn = baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block="batch_norm")
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in bn.layers) == 3
    separable = baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block="separable")
    assert [type(layer).__name__ for layer in separable.layers if "conv" in layer.name] == [
        "Conv2D", "SeparableConv2D", "SeparableConv2D"
    ]  # fmt: skip
    assert isinstance(
        baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block="deformable").get_layer("deformable"), DeformableConv2D
    )


def test_baseline_parameter_count():
    model = baseline_cnn(INPUT_SHAPE, NUM_CLASSES)
    # conv 3*3*1*32+32, 3*3*32*64+64, 3*3*64*128+128, dense 128*4+4
    assert model.count_params() == 320 + 18496 + 73856 + 516


def test_unknown_block_and_stray_options():
    with pytest.raises(ValueError, match="Unknown ablation block.*Received: block='attention'"):
        baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block="attention")
    with pytest.raises(ValueError, match="Block options apply only"):
        baseline_cnn(INPUT_SHAPE, NUM_CLASSES, rate=0.3)
    with pytest.raises(TypeError, match="unit"):
        baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block="recurrent", unit=16)


def test_block_options_reach_the_block():
    model = baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block="dropout", rate=0.3, seed=1)
    assert model.get_layer("dropout").rate == 0.3
    assert baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block="recurrent", units=16).get_layer("row_recurrent").units == 16


@pytest.mark.parametrize(
    "layer, output_channels",
    [
        (ResidualBlock(24), 24),
        (InceptionModule(5), 20),
        (DenseBlock(num_layers=2, growth_rate=6), 8 + 12),
        (SqueezeExcitation(4), 8),
        (CBAM(4, 3), 8),
    ],
)
def test_feature_blocks_output_shape_and_config(layer, output_channels):
    images = np.random.default_rng(0).random((2, 6, 6, 8)).astype("float32")
    output = keras.ops.convert_to_numpy(layer(images))
    assert output.shape == (2, 6, 6, output_channels)
    assert layer.compute_output_shape((2, 6, 6, 8)) == (2, 6, 6, output_channels)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_residual_shortcut_is_identity_when_channels_match():
    same, wider = ResidualBlock(8), ResidualBlock(16)
    same.build((None, 6, 6, 8))
    wider.build((None, 6, 6, 8))
    convs_and_bns = 2 * 3 * 3 * 8 * 8 + 2 * 4 * 8  # two 3x3 convs (no bias), two BNs
    assert same.count_params() == convs_and_bns
    assert wider.count_params() == 3 * 3 * 8 * 16 + 3 * 3 * 16 * 16 + 2 * 4 * 16 + 8 * 16 + 4 * 16


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _dense(x, layer, activation=None):
    kernel, bias = layer.get_weights()
    y = x @ kernel + bias
    return {"relu": np.maximum(y, 0.0), "sigmoid": _sigmoid(y), None: y}[activation]


def test_attention_matches_the_papers_formulas_in_numpy():
    images = np.random.default_rng(1).random((2, 5, 5, 8)).astype("float32") + 0.1
    se, cbam = SqueezeExcitation(2), CBAM(2, 3)
    se_output, cbam_output = (keras.ops.convert_to_numpy(layer(images)) for layer in (se, cbam))

    # SE: channels times sigmoid(MLP(GAP(x))), the same weight at every pixel.
    gates = _dense(_dense(images.mean(axis=(1, 2)), se.squeeze, "relu"), se.excite, "sigmoid")
    np.testing.assert_allclose(se_output, images * gates[:, None, None, :], rtol=1e-5)

    # CBAM: channel attention from average and max pooling through one MLP, then a 3x3 spatial attention map.
    hidden, out = cbam.mlp

    def mlp(vectors):
        return _dense(_dense(vectors, hidden, "relu"), out)

    x = images * _sigmoid(mlp(images.mean(axis=(1, 2))) + mlp(images.max(axis=(1, 2))))[:, None, None, :]
    pooled = np.pad(np.stack([x.mean(axis=-1), x.max(axis=-1)], axis=-1), ((0, 0), (1, 1), (1, 1), (0, 0)))
    kernel, bias = cbam.spatial.get_weights()  # (3, 3, 2, 1)
    logits = sum(pooled[:, i : i + 5, j : j + 5, :] @ kernel[i, j] for i in range(3) for j in range(3)) + bias
    np.testing.assert_allclose(cbam_output, x * _sigmoid(logits), rtol=1e-4, atol=1e-6)


def test_spatial_pyramid_pooling_matches_numpy():
    images = np.random.default_rng(2).normal(size=(2, 5, 7, 3)).astype("float32")
    output = keras.ops.convert_to_numpy(SpatialPyramidPooling((1, 2))(images))
    assert output.shape == (2, 3 * (1 + 4))
    np.testing.assert_allclose(output[:, :3], images.max(axis=(1, 2)))
    # 2 bins over 5 rows: rows [0, 3) and [2, 5); over 7 columns: [0, 4) and [3, 7)
    expected_bottom_right = images[:, 2:5, 3:7].max(axis=(1, 2))
    np.testing.assert_allclose(output[:, -3:], expected_bottom_right)


def test_spatial_pyramid_pooling_needs_enough_pixels():
    with pytest.raises(ValueError, match="static height and width of at least max\\(bins\\)=4"):
        SpatialPyramidPooling((1, 4))(np.zeros((1, 3, 3, 2), "float32"))


def test_row_recurrent_reads_rows_as_a_sequence():
    images = np.random.default_rng(3).random((2, 4, 5, 3)).astype("float32")
    layer = RowRecurrent(6, cell="lstm", bidirectional=True)
    assert keras.ops.convert_to_numpy(layer(images)).shape == (2, 12)
    forward = RowRecurrent(6)
    output = keras.ops.convert_to_numpy(forward(images))
    flipped = keras.ops.convert_to_numpy(forward(images[:, ::-1]))
    assert output.shape == (2, 6) and not np.allclose(output, flipped)  # row order matters
    with pytest.raises(ValueError, match="`cell` must be one of"):
        RowRecurrent(6, cell="rnn")


def test_a_combination_switches_in_each_block_once_in_its_slot():
    model = baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block=("batch_norm", "cbam", "se", "spp", "dropout"))
    assert model.name == "baseline_batch_norm_cbam_se_spp_dropout"
    names = [layer.name for layer in model.layers]
    # feature blocks stack after the second stage in the order given; spp replaces the pooling; dropout is the head
    assert names.index("pool2") < names.index("cbam") < names.index("se") < names.index("conv3")
    assert "gap" not in names and names[-2:] == ["dropout", "probabilities"]
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 3
    single = baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block=("se",))
    assert [layer.name for layer in single.layers] == [
        layer.name for layer in baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block="se").layers
    ]


@pytest.mark.parametrize(
    "block, stem",
    [
        (("spp", "recurrent"), r"at most one block per slot.*Received: block=\('spp', 'recurrent'\)"),
        (("batch_norm", "separable"), r"at most one block per slot"),
        (("se", "se"), r"each block once"),
        (("se", "attention"), r"Unknown ablation block.*Received: block=\('se', 'attention'\)"),
    ],
)
def test_bad_combinations(block, stem):
    with pytest.raises(ValueError, match=stem):
        baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block=block)


def test_block_options_need_a_single_block():
    with pytest.raises(ValueError, match="Block options apply only to a single block"):
        baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block=("se", "dropout"), rate=0.3)


def _batch_norm_layers(model):
    """Every BatchNormalization in `model`, those inside block layers included."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("block", [None, *ABLATION_BLOCKS])
def test_batch_norm_blocks_are_the_blocks_with_batch_norm_at_momentum_0_9(block):
    model = baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block=block)
    found = _batch_norm_layers(model)
    assert bool(found) == (block in BATCH_NORM_BLOCKS) == uses_batch_norm(block)
    assert all(layer.momentum == BATCH_NORM_MOMENTUM == 0.9 for layer in found)
    slower = baseline_cnn(INPUT_SHAPE, NUM_CLASSES, block=block, batch_norm_momentum=0.99)
    assert all(layer.momentum == 0.99 for layer in _batch_norm_layers(slower))
    assert uses_batch_norm(("se", "batch_norm")) and not uses_batch_norm(None)


@pytest.mark.parametrize("layer_class", [ResidualBlock, DenseBlock])
def test_batch_norm_momentum_round_trips_and_is_checked(layer_class):
    arguments = (8,) if layer_class is ResidualBlock else ()
    layer = layer_class(*arguments, batch_norm_momentum=0.95)
    clone = layer_class.from_config(layer.get_config())
    assert clone.get_config()["batch_norm_momentum"] == 0.95
    assert layer_class(*arguments).batch_norm_momentum == 0.9
    with pytest.raises(ValueError, match="Received: batch_norm_momentum=1.5"):
        layer_class(*arguments, batch_norm_momentum=1.5)


def bright_spots(count, size=16, seed=0):
    """Black images, each with one faint 2x2 spot (brightness 0.3-0.4) in the quadrant that is its class (4 classes).

    Like chromosome crops on their zero background: the pixel variance is ~2e-3, the first conv layer's ~5e-4.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, count)
    images = np.zeros((count, size, size, 1), "float32")
    half = size // 2
    for image, label in zip(images, labels):
        top = rng.integers(0, half - 2) + (label // 2) * half
        left = rng.integers(0, half - 2) + (label % 2) * half
        image[top : top + 2, left : left + 2] = 0.3 + 0.1 * rng.random()
    return images, labels


def test_batch_norm_on_black_backgrounds_validates_as_it_trains():
    """Validation (inference mode, moving statistics) must follow training (batch statistics) within 5 epochs.

    With Keras' default momentum 0.99 the moving variance is still near its initial 1 after these 80 steps, 2000x
    the batch variance: validation accuracy stayed at 0.21-0.58 while training reached 0.98-1.0 (seeds 0-3).
    """
    images, labels = bright_spots(128 + 64)
    keras.utils.set_random_seed(0)
    model = baseline_cnn((16, 16, 1), 4, block="batch_norm", filters=(8, 16, 16))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(
        images[:128], labels[:128], validation_data=(images[128:], labels[128:]), epochs=5, batch_size=8, verbose=0
    )
    train_accuracy, val_accuracy = history.history["accuracy"][-1], history.history["val_accuracy"][-1]
    assert train_accuracy >= 0.9  # the task is learnt (batch statistics, training mode)
    assert val_accuracy >= train_accuracy - 0.05  # ... and validation, in inference mode, sees it too
    assert model.evaluate(images[:128], labels[:128], verbose=0)[1] >= train_accuracy - 0.05  # training side too
