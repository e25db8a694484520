"""Compile and fit with validation data: optimisers, schedules, and when early stopping may start.

Everything here is backend-agnostic Keras 3. `fit` returns the history as a plain dict ({metric: [value per
epoch]}), so notebooks can plot it and write it to results.json. Progress is Keras' own at every scale: a live bar
in a terminal or notebook, one line per epoch when the output is a log (papermill).
"""

import math

import keras

from medcnn import hardware

# The optimisers the studies use, by the names notebooks pass.
OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "lion": keras.optimizers.Lion,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}


def default_jit_compile():
    """Whether to compile the train step with XLA here: yes on an accelerator or under JAX, no on a TF CPU.

    Measured with TensorFlow 2.21 on this project's 2-core CPU (shared, so numbers are noisy): a tiny CNN
    (Conv16-pool-Conv32-GAP-Dense4, 32x32x3, batch 32, 3 epochs of 512 images after a warm-up epoch, 3 rounds)
    ran at 1,640-1,850 img/s with `jit_compile=True` and 1,910-2,300 img/s with False (XLA about 1.2x slower);
    the allgray CNN on 100x100 images measured 49 vs 198 img/s (4x slower with XLA). Under JAX every step
    is jitted anyway (`jit_compile=False` would run eagerly, far slower), so JAX always gets True.
    """
    if keras.backend.backend() == "jax":
        return True
    return "auto" if hardware.accelerators() else False


def make_optimizer(optimizer="adam", learning_rate=1e-3):
    """A Keras optimizer from a name ('adam', 'adamw', 'lion', 'sgd', 'rmsprop') or an optimizer instance.

    Args:
        optimizer: a name above, or a `keras.optimizers.Optimizer` (returned unchanged; `learning_rate` ignored).
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule` (see `cosine_restarts`).
    """
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    name = str(optimizer).lower()
    if name not in OPTIMIZERS:
        raise ValueError(
            f"`optimizer` must be one of {sorted(OPTIMIZERS)} or a Keras optimizer. Received: optimizer={optimizer!r}"
        )
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule) and not learning_rate > 0:
        raise ValueError(
            f"`learning_rate` must be a positive float or a schedule. Received: learning_rate={learning_rate}"
        )
    return OPTIMIZERS[name](learning_rate=learning_rate)


def default_loss(model):
    """'binary_crossentropy' for a model with one output unit (sigmoid), else 'sparse_categorical_crossentropy'.

    Labels are integers in both cases, as the loaders return them.
    """
    return "binary_crossentropy" if model.outputs[0].shape[-1] == 1 else "sparse_categorical_crossentropy"


def compile_model(model, optimizer="adam", learning_rate=1e-3, loss=None, metrics=("accuracy",), jit_compile=None):
    """Compile `model` and return it: the one place medcnn compiles models (training, tuning, benchmarks), so
    every one gets the backend's jit setting.

    Args:
        model: a Keras model.
        optimizer: 'adam', 'adamw', 'lion', 'sgd', 'rmsprop' or a Keras optimizer instance (which may carry its own
            schedule, e.g. `keras.optimizers.Adam(cosine_restarts(...))`).
        learning_rate: float or schedule (e.g. `cosine_restarts(...)`); ignored for an optimizer instance.
        loss: a Keras loss name or object; None picks `default_loss(model)` (integer labels).
        metrics: metric names and objects, e.g. `["accuracy", keras.metrics.BinaryAccuracy(name="binary_accuracy")]`
            or `("accuracy", keras.metrics.AUC(name="auc"))` for kth's val AUC.
        jit_compile: XLA for the train step; None picks `default_jit_compile()` (False on a TensorFlow CPU,
            where XLA made the train step about 4x slower, see there).
    """
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss=loss or default_loss(model),
        metrics=list(metrics or []),
        jit_compile=default_jit_compile() if jit_compile is None else jit_compile,
    )
    return model


def cosine_restarts(initial_lr, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
    """Cosine annealing with warm restarts (SGDR, cnmc's schedule) as Keras' `CosineDecayRestarts`.

    Args:
        initial_lr: learning rate at the start of each cycle (cnmc: 0.01).
        first_decay_steps: optimizer steps in the first cycle, e.g. `epochs_per_cycle * steps_per_epoch`.
        t_mul: each cycle is `t_mul` times longer than the one before; 1.0 keeps them equal.
        m_mul: each restart starts at `m_mul` times the previous peak; 1.0 restarts at `initial_lr`.
        alpha: floor of the cycle as a fraction of its peak, 0..1.
    """
    if not initial_lr > 0 or not first_decay_steps >= 1:
        raise ValueError(
            "`initial_lr` must be > 0 and `first_decay_steps` >= 1. "
            f"Received: initial_lr={initial_lr}, first_decay_steps={first_decay_steps}"
        )
    return keras.optimizers.schedules.CosineDecayRestarts(
        initial_lr, int(first_decay_steps), t_mul=t_mul, m_mul=m_mul, alpha=alpha
    )


def monitor_mode(monitor):
    """'min' for losses and errors, 'max' for every other metric (accuracy, auc, f1, ...)."""
    return "min" if any(word in monitor for word in ("loss", "error")) else "max"


# The weight BatchNormalization's initial moving statistics (mean 0, variance 1) may keep when early stopping starts
# to watch: 0.05 leaves them a twentieth of the estimate (see `bn_warmup_epochs`).
BN_WARMUP_TOLERANCE = 0.05


def bn_warmup_epochs(steps_per_epoch, momentum, tolerance=BN_WARMUP_TOLERANCE):
    """Epochs until BatchNormalization's moving statistics have forgotten their start: `momentum ** steps <
    tolerance`, rounded up to whole epochs. Pass it as `keras.callbacks.EarlyStopping(start_from_epoch=...)`.

    Each training step moves the moving mean and variance to `momentum * moving + (1 - momentum) * batch`, so
    after `steps` steps the initial values (mean 0, variance 1) still weigh `momentum ** steps`. Validation runs in
    inference mode, on these moving statistics; until they settle it can sit at chance while training accuracy
    climbs. On black-background crops a conv layer's batch variance is ~7e-4, so a moving variance still near 1
    shrinks the normalised activations ~40-fold. Early stopping that watches those epochs stops on them and
    restores their weights (the chromosome ablation's BatchNorm rows stopped at epoch 7 and restored epoch 1).
    Starting it at epoch `bn_warmup_epochs(...)` (0-based) skips every epoch that ends before the statistics
    settle, and the epoch in which they do.

    Args:
        steps_per_epoch: int > 0, training batches per epoch, `ceil(n_train / batch_size)`.
        momentum: float in [0, 1), the layers' momentum. 0.9 needs 29 steps and Keras' default 0.99 needs 299.
        tolerance: float in (0, 1), the weight the initial statistics may keep. Defaults to 0.05. With a batch
            variance v far below 1, the moving variance is still about `tolerance / v` times too large when the
            count is reached; the rounding up to whole epochs usually leaves many more steps than that.

    Returns:
        int >= 1: the epochs, e.g. 1 for momentum 0.9 with 29 or more steps per epoch, 10 for 0.99 with 30.
    """
    if not (isinstance(steps_per_epoch, int) and not isinstance(steps_per_epoch, bool) and steps_per_epoch > 0):
        raise ValueError(f"`steps_per_epoch` must be a positive int. Received: steps_per_epoch={steps_per_epoch!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={momentum!r}")
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"`tolerance` must be in (0, 1). Received: tolerance={tolerance!r}")
    steps = 1 if momentum == 0.0 else math.floor(math.log(tolerance) / math.log(momentum)) + 1
    return math.ceil(steps / steps_per_epoch)


def bn_warmup_start(n_train, batch_size, batch_norm=True, momentum=None):
    """Where early stopping of a run of `n_train` training items at `batch_size` should start (its
    `start_from_epoch`): 0 for a model that trains no BatchNormalization (`batch_norm` false), else
    `bn_warmup_epochs` of its steps per epoch at `momentum` (None: `models.blocks.BATCH_NORM_MOMENTUM`). Until then
    validation, in inference mode, can sit at chance, and early stopping would restore those epochs."""
    from medcnn.models.blocks import BATCH_NORM_MOMENTUM

    if not batch_norm:
        return 0
    return bn_warmup_epochs(math.ceil(n_train / batch_size), BATCH_NORM_MOMENTUM if momentum is None else momentum)


def _check_callbacks(model, callbacks):
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # unwrap a LossScaleOptimizer
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) and any(
        isinstance(callback, keras.callbacks.ReduceLROnPlateau) for callback in callbacks
    ):
        raise ValueError(
            "ReduceLROnPlateau cannot change a learning rate that follows a schedule "
            f"({type(schedule).__name__}). Leave ReduceLROnPlateau out, or pass a float learning rate."
        )


def fit(
    model,
    train,
    val=None,
    epochs=10,
    class_weight=None,
    callbacks=None,
    verbose="auto",
    batch_size=None,
):
    """Train a compiled model with validation data; return the history as {metric: [value per epoch]}.

    Args:
        model: a compiled Keras model (see `compile_model`).
        train: a `tf.data.Dataset`, a `keras.utils.PyDataset`, or an `(images, labels)` tuple of arrays.
        val: the same kinds, or None.
        epochs: last epoch index to train to (as in `keras.Model.fit`).
        class_weight: {class index: weight}, e.g. `medcnn.data.labels.class_weights(train_labels)`; None for none.
        callbacks: Keras callbacks, e.g. `keras.callbacks.EarlyStopping(...)`.
        verbose: Keras' progress output; 'auto' shows a bar (one line per epoch in a log).
        batch_size: only for array input.
    """
    if not getattr(model, "compiled", False):
        raise ValueError("The model is not compiled. Call `compile_model(model, ...)` first.")
    callbacks = list(callbacks or [])
    _check_callbacks(model, callbacks)
    x, y = train if isinstance(train, tuple) else (train, None)
    if class_weight is not None:
        class_weight = {int(label): float(weight) for label, weight in dict(class_weight).items()}
    history = model.fit(
        x,
        y,
        batch_size=batch_size if y is not None else None,
        validation_data=val,
        epochs=epochs,
        class_weight=class_weight,
        callbacks=callbacks,
        verbose=verbose,
    )
    return {name: [float(value) for value in values] for name, values in history.history.items()}


def all_layers(model):
    """Every layer of `model`, nested models' layers included (depth first)."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


@keras.saving.register_keras_serializable(package="medcnn")
class SparseF1Score(keras.metrics.F1Score):
    """Keras' `F1Score` for integer labels (as sparse categorical cross-entropy takes them), on the argmax class.

    Keras' F1Score wants one-hot targets; this one turns integer labels into one-hot first, so that a model
    trained with sparse labels logs an F1 every epoch (e.g. `val_f1_weighted` with `average="weighted"`, the
    number a study picks its best epoch by). The predicted class is the argmax (`threshold=None`).

    Args:
        num_classes: int >= 2, the width of the model's softmax output.
        average: None, "micro", "macro" or "weighted", as in `keras.metrics.F1Score`. Defaults to "weighted".
        name: the metric's name. Defaults to "f1_<average>".
    """

    def __init__(self, num_classes, average="weighted", name=None, **kwargs):
        kwargs.pop("threshold", None)
        super().__init__(average=average, threshold=None, name=name or f"f1_{average}", **kwargs)
        if not (isinstance(num_classes, int) and num_classes >= 2):
            raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}")
        self.num_classes = num_classes

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        return super().update_state(keras.ops.one_hot(labels, self.num_classes), y_pred, sample_weight)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def plateau_callbacks(reduce_lr, early_stopping, start_from_epoch=0):
    """`() -> [ReduceLROnPlateau(**reduce_lr), EarlyStopping(**early_stopping)]`, each in the mode its monitor needs
    (`monitor_mode`), for `experiment.Run.callbacks`.

    Args:
        reduce_lr, early_stopping: the callbacks' keyword arguments, with "monitor", e.g.
            `{"monitor": "val_loss", "patience": 15, "restore_best_weights": True}`.
        start_from_epoch: the epoch (0-based) early stopping starts to watch, e.g. `bn_warmup_epochs(...)`.
    """

    def make():
        reduce, stop = dict(reduce_lr), dict(early_stopping)
        return [
            keras.callbacks.ReduceLROnPlateau(mode=monitor_mode(reduce["monitor"]), verbose=1, **reduce),
            keras.callbacks.EarlyStopping(
                mode=monitor_mode(stop["monitor"]), start_from_epoch=start_from_epoch, verbose=1, **stop
            ),
        ]

    return make
