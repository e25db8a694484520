import keras
import numpy as np
import pytest

from medcnn.diagnostics import (
    DeadChannels, dead_after_epoch, dead_channel_shares, dead_share_note, failed_start_table, relu_layers,
    worst_dead_share,
)  # fmt: skip


def tiny_cnn():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Conv2D(2, 3, name="conv_linear")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs)


def test_relu_layers_finds_activations_and_relu_layers_only():
    assert [layer.name for layer in relu_layers(tiny_cnn())] == ["conv", "relu"]


def test_a_channel_with_a_large_negative_bias_is_dead():
    keras.utils.set_random_seed(0)
    model = tiny_cnn()
    images = np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype("float32")
    kernel, bias = model.get_layer("conv").get_weights()
    bias[:] = [-100.0, -100.0, -100.0, 100.0]
    model.get_layer("conv").set_weights([kernel, bias])
    shares = dead_channel_shares(model, images, batch_size=5)
    assert shares["conv"] == pytest.approx(0.75)
    assert set(shares) == {"conv", "relu"}


def test_the_callback_logs_each_epoch_into_the_history():
    keras.utils.set_random_seed(0)
    model = tiny_cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    images = np.random.default_rng(0).uniform(0, 1, (12, 8, 8, 1)).astype("float32")
    history = model.fit(images, np.arange(12) % 2, epochs=2, callbacks=[DeadChannels(images)], verbose=0).history
    assert len(history["dead_conv"]) == len(history["dead_relu"]) == 2
    assert all(0.0 <= value <= 1.0 for value in history["dead_conv"])
    assert dead_after_epoch(history, 2) == {"conv": history["dead_conv"][1], "relu": history["dead_relu"][1]}
    assert dead_after_epoch(history, 3) == {}


def record(label, seed, confusion, dead, accuracy):
    return {
        "configuration": label,
        "seed": seed,
        "test_confusion": confusion,
        "test_accuracy": accuracy,
        "history": {"loss": [1.0], "dead_conv1": [0.0], "dead_conv2": [dead]},
    }


def test_failed_start_table_counts_collapsed_seeds_and_their_dead_channels():
    learned, flat = [[8, 2], [3, 7]], [[10, 0], [10, 0]]
    records = [
        record("a", 0, learned, 0.1, 0.75),
        record("a", 1, flat, 0.9, 0.5),
        record("a", 2, learned, 0.3, 0.85),
        record("b", 0, learned, 0.2, 0.7),
    ]
    table = failed_start_table(records)
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "never left the plateau"] == "1 of 3"
    assert table.loc["a", "test_accuracy, runs that learned"] == "0.800 ± 0.071"
    assert table.loc["b", "test_accuracy, runs that learned"] == "0.700"  # one run: no "± 0.000"
    assert table.loc["a", "test_accuracy, all runs"] == "0.700"
    shares = "worst layer's dead ReLU share after epoch 1, mean (min–max)"
    assert table.loc["a", f"{shares}, learned"] == "0.20 (0.10–0.30)"  # the range: does it separate single runs?
    assert table.loc["a", f"{shares}, collapsed"] == "0.90"
    assert table.loc["b", "never left the plateau"] == "0 of 1"
    assert table.loc["b", f"{shares}, collapsed"] == ""


def test_dead_shares_can_be_limited_to_layers_by_name():
    run = record("a", 0, [[8, 2], [3, 7]], 0.3, 0.75)
    run["history"]["dead_dense"] = [0.95]
    assert worst_dead_share(run) == 0.95 and worst_dead_share(run, prefix="conv") == 0.3
    table = failed_start_table([run], prefix="conv")
    assert table.loc["a", "worst conv layer's dead ReLU share after epoch 1, mean (min–max), learned"] == "0.30"


def test_dead_share_note_averages_learned_and_collapsed_runs_apart():
    learned, flat = [[8, 2], [3, 7]], [[10, 0], [10, 0]]
    records = [record("a", 0, learned, 0.1, 0.75), record("a", 1, learned, 0.5, 0.75), {"history": {}}]
    assert dead_share_note(records) == (
        " (worst layer's dead ReLU share after epoch 1, mean (min–max): 0.30 (0.10–0.50) in the runs that learned)"
    )
    records.append(record("a", 2, flat, 0.9, 0.5))
    assert dead_share_note(records, prefix="conv") == (
        " (worst conv layer's dead ReLU share after epoch 1, mean (min–max): 0.30 (0.10–0.50) in the runs that "
        "learned, 0.90 in the collapsed)"
    )
    assert dead_share_note([{"history": {}}]) == ""
