"""Compile and fit with validation data: optimisers, schedules, callbacks, and the two-stage transfer-learning fit.

Everything here is backend-agnostic Keras 3. `fit` returns the history as a plain dict ({metric: [value per
epoch]}), so notebooks can plot it and write it to results.json. Progress is Keras' own at every scale: a live bar
in a terminal or notebook, one line per epoch when the output is a log (papermill).
"""

import keras
from keras import layers

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


def standard_callbacks(
    monitor="val_loss", mode="auto", early_stopping_patience=10, reduce_lr=True, checkpoint_path=None
):
    """EarlyStopping (best weights restored), ReduceLROnPlateau and optionally a best-only ModelCheckpoint.

    Args:
        monitor: the logged metric to watch, e.g. 'val_loss', 'val_auc' (kth), 'val_accuracy'.
        mode: 'min', 'max' or 'auto' ('min' for losses, else 'max').
        early_stopping_patience: epochs without improvement before stopping; None leaves EarlyStopping out.
        reduce_lr: True for ReduceLROnPlateau(factor=0.2, patience=max(1, early_stopping_patience // 3),
            min_lr=1e-6), a dict of ReduceLROnPlateau arguments, or False. Leave it False when the learning rate
            is a schedule: `fit` refuses that combination.
        checkpoint_path: where to keep the best model ('.keras') or weights ('.weights.h5'); None for none.
    """
    if mode == "auto":
        mode = monitor_mode(monitor)
    if mode not in ("min", "max"):
        raise ValueError(f"`mode` must be 'min', 'max' or 'auto'. Received: mode={mode!r}")
    callbacks = []
    if early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=early_stopping_patience, restore_best_weights=True, verbose=1
            )
        )
    if reduce_lr:
        settings = {
            "factor": 0.2,
            "patience": max(1, (early_stopping_patience or 3) // 3),
            "min_lr": 1e-6,
            "verbose": 1,
        }
        settings.update(reduce_lr if isinstance(reduce_lr, dict) else {})
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, **settings))
    if checkpoint_path is not None:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                str(checkpoint_path),
                monitor=monitor,
                mode=mode,
                save_best_only=True,
                save_weights_only=str(checkpoint_path).endswith(".weights.h5"),
            )
        )
    return callbacks


def _check_callbacks(model, callbacks):
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # unwrap a LossScaleOptimizer
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) and any(
        isinstance(callback, keras.callbacks.ReduceLROnPlateau) for callback in callbacks
    ):
        raise ValueError(
            "ReduceLROnPlateau cannot change a learning rate that follows a schedule "
            f"({type(schedule).__name__}). Pass `reduce_lr=False` to `standard_callbacks`, or a float learning rate."
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
    initial_epoch=0,
):
    """Train a compiled model with validation data; return the history as {metric: [value per epoch]}.

    Args:
        model: a compiled Keras model (see `compile_model`).
        train: a `tf.data.Dataset`, a `keras.utils.PyDataset`, or an `(images, labels)` tuple of arrays.
        val: the same kinds, or None.
        epochs: last epoch index to train to (as in `keras.Model.fit`).
        class_weight: {class index: weight}, e.g. from scikit-learn's `compute_class_weight`; None for none.
        callbacks: Keras callbacks, e.g. `standard_callbacks(...)`.
        verbose: Keras' progress output; 'auto' shows a bar (one line per epoch in a log).
        batch_size: only for array input.
        initial_epoch: epoch to start from (stage 2 of `two_stage_fit` continues the epoch count).
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
        initial_epoch=initial_epoch,
        class_weight=class_weight,
        callbacks=callbacks,
        verbose=verbose,
    )
    return {name: [float(value) for value in values] for name, values in history.history.items()}


def freeze_batch_norm(model):
    """Set every BatchNormalization layer in `model` (nested models included) to trainable=False.

    A frozen BatchNormalization layer uses its moving statistics even when the model is called with
    `training=True`, which is what Keras' fine-tuning guide asks for when a backbone is partly unfrozen.
    Returns the number of layers frozen.
    """
    count = 0
    for layer in all_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
            count += 1
    return count


def all_layers(model):
    """Every layer of `model`, nested models' layers included (depth first)."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def _backbone(model):
    try:
        return model.get_layer("backbone")
    except ValueError:
        raise ValueError(
            "A two-stage fit needs a transfer model with a nested model layer named 'backbone'. "
            f"Received a model with layers {[layer.name for layer in model.layers]}."
        ) from None


def _unfreeze(model, unfreeze):
    backbone = _backbone(model)
    if unfreeze is None:
        backbone.trainable = True
    elif callable(unfreeze):
        unfreeze(model)
    elif isinstance(unfreeze, int) and unfreeze >= 0:
        from medcnn.models import transfer  # block names are the backbone registry's business

        transfer.unfreeze_blocks(model, unfreeze)
    else:
        raise ValueError(
            "`unfreeze` must be None (whole backbone), a number of blocks >= 0 or a callable(model). "
            f"Received: unfreeze={unfreeze!r}"
        )
    freeze_batch_norm(backbone)


def two_stage_fit(
    model, train, val, stage1_epochs, stage2_epochs, unfreeze=None, stage2_lr=1e-5, compile_kwargs=None, fit_kwargs=None
):
    """Transfer learning in two visible steps: train the head on a frozen backbone, then fine-tune.

    Stage 1 freezes the 'backbone' sub-model and trains the rest with `compile_kwargs`. Stage 2 unfreezes part of
    the backbone, keeps every BatchNormalization layer in it frozen (inference mode), recompiles with
    `stage2_lr` and continues the epoch count.

    Args:
        model: a keras.Model with a nested model layer named 'backbone'.
        train, val: as for `fit`.
        stage1_epochs, stage2_epochs: epochs of each stage; stage2_epochs=0 skips stage 2.
        unfreeze: None for the whole backbone; an int N for its last N named blocks (through
            `medcnn.models.transfer.unfreeze_blocks`); or a callable(model) that sets `trainable` flags itself.
        stage2_lr: stage 2's learning rate, typically 10-100x below stage 1's.
        compile_kwargs: arguments for `compile_model` in both stages (stage 2 overrides `learning_rate`).
        fit_kwargs: arguments for `fit` (class_weight, callbacks, verbose, batch_size) in both stages.

    Returns:
        the joined history {metric: [...]} with a 'stage' list (1 or 2 per epoch).
    """
    compile_kwargs = dict(compile_kwargs or {})
    fit_kwargs = dict(fit_kwargs or {})
    backbone = _backbone(model)
    backbone.trainable = False
    compile_model(model, **compile_kwargs)
    history = fit(model, train, val, epochs=stage1_epochs, **fit_kwargs)
    epochs_done = len(next(iter(history.values()), []))
    history["stage"] = [1] * epochs_done
    if stage2_epochs <= 0:
        return history
    _unfreeze(model, unfreeze)
    compile_model(model, **{**compile_kwargs, "learning_rate": stage2_lr})
    stage2 = fit(model, train, val, epochs=epochs_done + stage2_epochs, initial_epoch=epochs_done, **fit_kwargs)
    stage2_epochs_done = len(next(iter(stage2.values()), []))
    for name, values in stage2.items():
        history[name] = history.get(name, [float("nan")] * epochs_done) + values
    for name in history:
        if name != "stage" and len(history[name]) < epochs_done + stage2_epochs_done:
            history[name] += [float("nan")] * (epochs_done + stage2_epochs_done - len(history[name]))
    history["stage"] += [2] * stage2_epochs_done
    return history


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
