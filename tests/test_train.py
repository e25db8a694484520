"""Training helpers: optimisers, schedules, compile (jit per backend), early stopping's BatchNorm warm-up, fit."""

import textwrap

import numpy as np
import pytest

import keras
from keras import layers

from medcnn import hardware, train


def easy_data(count=128, seed=0):
    """Two Gaussian blobs in 4-D: a tiny model separates them in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count).astype("int32")
    features = rng.normal(size=(count, 4)).astype("float32") + 2.5 * labels[:, None]
    return features, labels


def dense_model(units=1):
    return keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(8, activation="relu"),
            layers.Dense(units, activation="sigmoid" if units == 1 else "softmax"),
        ]
    )


@pytest.mark.parametrize(
    "name, expected", [("adam", "Adam"), ("lion", "Lion"), ("sgd", "SGD"), ("RMSprop", "RMSprop"), ("adamw", "AdamW")]
)
def test_make_optimizer_by_name(name, expected):
    optimizer = train.make_optimizer(name, 0.01)
    assert type(optimizer).__name__ == expected
    assert np.isclose(float(optimizer.learning_rate), 0.01)


def test_make_optimizer_keeps_an_instance_and_rejects_unknown_names():
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    assert train.make_optimizer(optimizer, 0.5) is optimizer
    with pytest.raises(ValueError, match="`optimizer` must be one of .* Received: optimizer='adagrad'"):
        train.make_optimizer("adagrad")
    with pytest.raises(ValueError, match="Received: learning_rate=0"):
        train.make_optimizer("adam", 0)


def test_compile_model_picks_the_loss_from_the_output():
    assert train.compile_model(dense_model(1)).loss == "binary_crossentropy"
    assert train.compile_model(dense_model(3)).loss == "sparse_categorical_crossentropy"
    model = train.compile_model(dense_model(3), loss="categorical_crossentropy", jit_compile=False)
    assert model.loss == "categorical_crossentropy"
    assert model.jit_compile is False


def test_jit_compile_default_is_off_on_a_tensorflow_cpu_and_on_under_jax():
    model = train.compile_model(dense_model())
    if keras.backend.backend() == "jax":  # JAX jits every step
        assert train.default_jit_compile() is True and model.jit_compile is True
    elif hardware.accelerators():  # an accelerator: Keras decides per model ("auto" resolves to a bool)
        assert train.default_jit_compile() == "auto" and model.jit_compile in (True, False)
    else:  # XLA slowed the TensorFlow train step down on a CPU
        assert train.default_jit_compile() is False and model.jit_compile is False


def easy_fit_with_allgray_compile_arguments(train, keras):
    """compile_model with what allgray passes (an optimizer instance, here on a schedule; metric objects), then
    fit: returns the history. Shared by this process's test and the one under JAX."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64).astype("int32")
    features = (rng.normal(size=(64, 4)) + 2.5 * labels[:, None]).astype("float32")
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]
    )
    optimizer = keras.optimizers.Adam(train.cosine_restarts(0.05, first_decay_steps=8))
    metrics = ["accuracy", keras.metrics.BinaryAccuracy(name="binary_accuracy")]
    compiled = train.compile_model(model, optimizer, loss="binary_crossentropy", metrics=metrics)
    assert compiled is model and model.optimizer is optimizer and model.loss == "binary_crossentropy"
    history = train.fit(model, (features, labels), epochs=4, batch_size=16, verbose=0)
    return model, history


def test_compile_model_takes_an_optimizer_instance_a_schedule_a_loss_name_and_metric_objects():
    model, history = easy_fit_with_allgray_compile_arguments(train, keras)
    assert set(history) == {"loss", "accuracy", "binary_accuracy"}
    np.testing.assert_allclose(history["accuracy"], history["binary_accuracy"])  # "accuracy" of a sigmoid = binary
    assert history["loss"][-1] < history["loss"][0]
    schedule = model.optimizer.learning_rate  # the schedule, evaluated at the current step
    assert np.isclose(float(schedule), float(train.cosine_restarts(0.05, 8)(16)), rtol=1e-5)  # 4 epochs x 4 steps


JAX_SCRIPT = textwrap.dedent(
    """
    import sys
    import keras, numpy as np
    from medcnn import train
    sys.path.insert(0, "tests")
    from test_train import easy_fit_with_allgray_compile_arguments
    assert keras.backend.backend() == "jax", keras.backend.backend()
    assert train.default_jit_compile() is True
    model, history = easy_fit_with_allgray_compile_arguments(train, keras)
    assert model.jit_compile is True, model.jit_compile
    assert set(history) == {"loss", "accuracy", "binary_accuracy"}, history
    np.testing.assert_allclose(history["accuracy"], history["binary_accuracy"])
    assert history["loss"][-1] < history["loss"][0], history["loss"]
    print("jax compile_model ok")
    """
)


@pytest.mark.slow  # ~15-20 s on 2 shared cores: a fresh Python importing JAX, which compiles each step
def test_compile_model_under_jax_jits_and_trains(run_under_jax):
    run_under_jax(JAX_SCRIPT, "jax compile_model ok")


def test_cosine_restarts_follows_the_cosine_and_restarts():
    schedule = train.cosine_restarts(0.01, first_decay_steps=10, t_mul=1.0)
    values = [float(schedule(step)) for step in (0, 5, 9, 10, 15)]
    expected = [0.01 * 0.5 * (1 + np.cos(np.pi * (step % 10) / 10)) for step in (0, 5, 9, 10, 15)]
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="Received: initial_lr=0"):
        train.cosine_restarts(0, 10)


@pytest.mark.parametrize(
    "steps_per_epoch, momentum, expected",
    [
        pytest.param(29, 0.9, 1, id="one epoch holds the 29 steps 0.9 needs"),
        pytest.param(28, 0.9, 2, id="28 steps leave 0.9 ** 28 = 0.052"),
        pytest.param(30, 0.99, 10, id="Keras' default 0.99 needs 299 steps"),
        pytest.param(1, 0.0, 1, id="momentum 0 keeps only the last batch"),
    ],
)
def test_bn_warmup_epochs(steps_per_epoch, momentum, expected):
    epochs = train.bn_warmup_epochs(steps_per_epoch, momentum)
    assert epochs == expected
    # the first whole epoch after which the initial statistics weigh < 0.05
    assert momentum ** (epochs * steps_per_epoch) < 0.05
    assert epochs == 1 or momentum ** ((epochs - 1) * steps_per_epoch) >= 0.05


def test_bn_warmup_epochs_tolerance_and_errors():
    assert train.bn_warmup_epochs(10, 0.9, tolerance=0.5) == 1  # 0.9 ** 7 = 0.48
    with pytest.raises(ValueError, match="Received: steps_per_epoch=0"):
        train.bn_warmup_epochs(0, 0.9)
    with pytest.raises(ValueError, match="Received: momentum=1.0"):
        train.bn_warmup_epochs(10, 1.0)
    with pytest.raises(ValueError, match="Received: tolerance=0"):
        train.bn_warmup_epochs(10, 0.9, tolerance=0)


def test_bn_warmup_start_counts_steps_of_the_training_side_and_is_0_without_batch_norm():
    assert train.bn_warmup_start(320, 32) == 3  # 10 steps an epoch at momentum 0.9: 29 steps in 3 epochs
    assert train.bn_warmup_start(321, 32) == 3 and train.bn_warmup_start(30 * 32, 32) == 1
    assert train.bn_warmup_start(320, 32, momentum=0.99) == train.bn_warmup_epochs(10, 0.99)
    assert train.bn_warmup_start(320, 32, batch_norm=False) == 0


def test_fit_learns_an_easy_task_and_returns_a_plain_history():
    keras.utils.set_random_seed(0)
    features, labels = easy_data()
    model = train.compile_model(dense_model(), learning_rate=0.05)
    history = train.fit(
        model,
        (features[:96], labels[:96]),
        (features[96:], labels[96:]),
        epochs=8,
        batch_size=16,
        verbose=0,
        class_weight={0: 1.0, 1: 2.0},
    )
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 8 and all(isinstance(value, float) for value in values) for values in history.values())
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] >= 0.9


def test_fit_refuses_reduce_lr_on_a_schedule_and_uncompiled_models():
    features, labels = easy_data(16)
    with pytest.raises(ValueError, match="The model is not compiled"):
        train.fit(dense_model(), (features, labels))
    model = train.compile_model(dense_model(), learning_rate=train.cosine_restarts(0.01, 10))
    with pytest.raises(ValueError, match="ReduceLROnPlateau cannot change a learning rate that follows a schedule"):
        train.fit(model, (features, labels), epochs=1, callbacks=[keras.callbacks.ReduceLROnPlateau()])


def test_plateau_callbacks_pick_each_monitors_mode():
    reduce_lr = {"monitor": "val_accuracy", "factor": 0.5, "patience": 5}
    make = train.plateau_callbacks(reduce_lr, {"monitor": "val_loss", "patience": 15, "restore_best_weights": True}, 3)
    reduce, stop = make()
    assert isinstance(reduce, keras.callbacks.ReduceLROnPlateau) and reduce.mode == "max" and reduce.patience == 5
    assert isinstance(stop, keras.callbacks.EarlyStopping) and stop.monitor == "val_loss"
    assert stop.start_from_epoch == 3
    assert stop.restore_best_weights and stop.patience == 15 and make()[1] is not stop  # fresh callbacks every call
