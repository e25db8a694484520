"""Training helpers: optimisers, schedules, compile (jit per backend), callbacks, fit, two-stage fit."""

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


def transfer_model():
    """A tiny transfer model: nested 'backbone' (conv, BN, conv) and 'head' (GAP, Dense) sub-models."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.Conv2D(4, 3, name="conv2")(x)
    backbone = keras.Model(inputs, x, name="backbone")
    head_inputs = keras.Input(backbone.output.shape[1:])
    head = keras.Model(
        head_inputs,
        layers.Dense(2, activation="softmax", name="out")(layers.GlobalAveragePooling2D()(head_inputs)),
        name="head",
    )
    image = keras.Input((8, 8, 3))
    return keras.Model(image, head(backbone(image)))


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


def test_standard_callbacks():
    early, reduce, checkpoint = train.standard_callbacks(
        "val_auc", early_stopping_patience=6, checkpoint_path="best.keras"
    )
    assert isinstance(early, keras.callbacks.EarlyStopping) and early.restore_best_weights and early.patience == 6
    assert isinstance(reduce, keras.callbacks.ReduceLROnPlateau) and reduce.patience == 2 and reduce.mode == "max"
    assert isinstance(checkpoint, keras.callbacks.ModelCheckpoint) and checkpoint.save_best_only
    (only_early,) = train.standard_callbacks("val_loss", reduce_lr=False)
    assert only_early.mode == "min"
    assert train.standard_callbacks(early_stopping_patience=None, reduce_lr={"factor": 0.5})[0].factor == 0.5
    with pytest.raises(ValueError, match="Received: mode='up'"):
        train.standard_callbacks(mode="up")


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
        train.fit(model, (features, labels), epochs=1, callbacks=train.standard_callbacks())


def test_two_stage_fit_freezes_then_unfreezes_with_batch_norm_kept_frozen():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.random((16, 8, 8, 3)).astype("float32")
    labels = rng.integers(0, 2, 16).astype("int32")
    model = transfer_model()
    backbone = model.get_layer("backbone")
    bn = backbone.get_layer("bn1")
    bn.moving_mean.assign(np.full(4, 0.3, "float32"))  # non-default statistics, which batch statistics would move
    weights = lambda name: [w.copy() for w in backbone.get_layer(name).get_weights()]  # noqa: E731
    conv1, conv2, bn_before = weights("conv1"), weights("conv2"), weights("bn1")
    head_before = model.get_layer("head").get_weights()[0].copy()

    def unfreeze_last_conv(model):
        model.get_layer("backbone").get_layer("conv2").trainable = True
        model.get_layer("backbone").get_layer("bn1").trainable = True  # two_stage_fit must set it back

    history = train.two_stage_fit(
        model,
        (images, labels),
        (images, labels),
        stage1_epochs=2,
        stage2_epochs=2,
        unfreeze=unfreeze_last_conv,
        stage2_lr=1e-2,
        compile_kwargs={"learning_rate": 1e-2},
        fit_kwargs={"batch_size": 8, "verbose": 0},
    )
    assert history["stage"] == [1, 1, 2, 2] and len(history["loss"]) == 4
    assert not np.allclose(model.get_layer("head").get_weights()[0], head_before)
    assert all(np.array_equal(a, b) for a, b in zip(weights("conv1"), conv1))  # never unfrozen
    assert not np.allclose(weights("conv2")[0], conv2[0])  # trained in stage 2
    assert not bn.trainable and all(np.array_equal(a, b) for a, b in zip(weights("bn1"), bn_before))
    assert np.isclose(model.optimizer.learning_rate.numpy(), 1e-2)


def test_two_stage_fit_whole_backbone_and_errors():
    images = np.zeros((4, 8, 8, 3), "float32")
    labels = np.array([0, 1, 0, 1])
    model = transfer_model()
    train.two_stage_fit(
        model, (images, labels), None, 1, 1, compile_kwargs={"jit_compile": False}, fit_kwargs={"verbose": 0}
    )
    backbone = model.get_layer("backbone")
    assert backbone.get_layer("conv1").trainable and backbone.get_layer("conv2").trainable
    assert not backbone.get_layer("bn1").trainable
    with pytest.raises(ValueError, match="named 'backbone'"):
        train.two_stage_fit(dense_model(), (images, labels), None, 1, 1)
    with pytest.raises(ValueError, match="Received: unfreeze='all'"):
        train.two_stage_fit(transfer_model(), (images, labels), None, 1, 1, unfreeze="all", fit_kwargs={"verbose": 0})
