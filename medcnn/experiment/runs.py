"""One run: a configuration trained with one seed on one split, then evaluated on validation and test.

A `Run` says everything that changes the result, and its fingerprint hashes all of it: the study's whole settings
(`spec`, less the few `cache.NON_RESULT_SETTINGS`), the data digest, the configuration, seed, epochs, batch size,
label encoding, class weights, the identities of its model builder, augmentation and callbacks, the run it starts
from and its split. `train_and_evaluate` trains it with the library's own steps (`pipeline.make_dataset`,
`train.fit`, `evaluate.classification_metrics`, `evaluate.timed_predict`) and returns a plain-JSON record, reusing
a recorded one when the cache allows.
"""

import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np

from medcnn.experiment.cache import callable_identity, fingerprint, jsonable, result_settings, split_digests

SIDES = ("val", "test")

# Hashed into every run's fingerprint. Bump it whenever a change to the library's code changes what a run trains
# (the fingerprint hashes a builder's identity and arguments, not its source): records made before then are then
# never reused. 3: BatchNormalization's momentum went from 0.99 to 0.9 (`models.blocks.BATCH_NORM_MOMENTUM`).
FINGERPRINT_VERSION = 3


def slugify(label):
    """'15 epochs, batch 64' -> '15-epochs-batch-64': a file-name-safe form of a label."""
    slug = "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug


def array_digest(*arrays):
    """A 16-hex-digit sha256 of arrays' shapes, dtypes and values: the identity of data held in memory."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}|{array.dtype}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


class LazyInputs:
    """A run's own inputs, made only when the run trains: `load()` returns an array or an `(x, labels)` pair.

    `digest` names what `load` returns (e.g. the cache key of precomputed features with a digest of their labels):
    the run's fingerprint hashes it in place of the arrays, so that a recorded run is reused without loading them.

    Args:
        load: `() -> x` or `() -> (x, labels)`.
        digest: a str (or JSON-able value) that changes whenever what `load` returns would.
    """

    def __init__(self, load, digest):
        if not callable(load):
            raise ValueError(f"`load` must be a zero-argument callable. Received: load={load!r}")
        if digest is None or digest == "":
            raise ValueError("`digest` must name what `load` returns (e.g. a features cache key). Received: None")
        self.load, self.digest = load, digest

    def __call__(self):
        return self.load()

    def __repr__(self):
        return f"LazyInputs(digest={self.digest!r})"


def inputs_digest(inputs):
    """The data digest of a run's own `inputs` (see `Run`): the arrays' `array_digest`, or a callable's `digest`."""
    if isinstance(inputs, tuple):
        return {"x": array_digest(inputs[0]), "labels": array_digest(inputs[1])}
    if callable(inputs):
        return jsonable(inputs.digest)
    return array_digest(inputs)


def _check_inputs(label, inputs):
    if inputs is None:
        return
    if isinstance(inputs, tuple):
        sizes = [len(item) for item in inputs]
        if len(sizes) != 2 or sizes[0] != sizes[1]:
            raise ValueError(
                f"Run '{label}': `inputs` as a tuple must be (x, labels) with one label per row. Received a tuple of "
                f"{len(sizes)} item(s) of lengths {sizes}."
            )
    elif callable(inputs):
        if getattr(inputs, "digest", None) is None:
            raise ValueError(
                f"Run '{label}': callable `inputs` must carry a `digest` naming what they return (wrap them in "
                f"`LazyInputs(load, digest)`), or a recorded run could be reused for other data. Received: {inputs!r}"
            )
    elif not hasattr(inputs, "shape"):
        raise ValueError(
            f"Run '{label}': `inputs` must be an array, an (x, labels) pair or a `LazyInputs`. Received: "
            f"{type(inputs).__name__}"
        )


def run_data(run, x, labels):
    """(x, labels) that `run` reads: its own `inputs` when set (their labels, or the shared `labels` when they bring
    none), else the shared `x` and `labels`."""
    inputs = run.inputs
    if inputs is None:
        if x is None:
            raise ValueError(f"Run '{run.label}' has no `inputs` of its own and no shared `x` was given.")
        return x, np.asarray(labels)
    if callable(inputs) and not hasattr(inputs, "shape"):
        inputs = inputs()
    own_x, own_labels = inputs if isinstance(inputs, tuple) else (inputs, labels)
    if own_labels is None:
        raise ValueError(f"Run '{run.label}': its `inputs` bring no labels and no shared `labels` was given.")
    own_labels = np.asarray(own_labels)
    if len(own_labels) != len(own_x):
        raise ValueError(
            f"Run '{run.label}': its inputs have {len(own_x)} rows but {len(own_labels)} labels. Pass `inputs` as "
            "(x, labels) when their rows are not the shared data's (e.g. features of augmented views)."
        )
    return own_x, own_labels


@dataclass
class Run:
    """Everything that defines one run.

    Args:
        label: the configuration's row label, e.g. "15 epochs, batch 64, categorical CE".
        seed: fixes the initialisation (and, by the caller's choice, the split).
        build_model: `() -> compiled keras.Model`, called after `keras.utils.set_random_seed(seed)`.
        split: {"train"[, "val"][, "test"]}: index arrays into the data; without "val" the run trains without
            validation data (e.g. a final refit on every non-test item) and records no validation metrics.
        epochs, batch_size: the training budget.
        group: which table or variation the run belongs to (e.g. "table1").
        settings: the configuration's values, recorded and fingerprinted (JSON-able).
        spec: the study's whole settings for the scale (`<study>.settings(scale, **overrides)`); fingerprinted
            without `cache.NON_RESULT_SETTINGS`, so that any setting, including one added later, changes it.
        data: a digest of the data the run reads (e.g. `report.file_list_hash(paths)`), a str or JSON-able, e.g.
            with the weights its precomputed features came from.
        starts_from: the `Run` whose trained weights this one starts from (e.g. stage one of a fine-tuning run), or
            None; its fingerprint is part of this one's.
        one_hot: one-hot labels (categorical / binary CE over K outputs); False keeps integer labels.
        augmentation: `seed -> Keras layer` applied to training batches only, or None.
        class_weight: {class: weight} or None.
        callbacks: `() -> [keras callbacks]` or None.
        snapshots: shorter runs that are this run's first epochs (same everything but `epochs`), e.g. Table 1's
            10-epoch row inside the 15-epoch run: evaluated at their epoch and recorded as runs of their own.
        extra_metrics: `(labels, probabilities) -> {name: float}`, study-specific numbers recorded per side.
        predict_batch_size: batch size of the timed predictions.
        evaluate_train: also score the training side in inference mode (`train_accuracy`, `train_weighted_f1`,
            ..., and `extra_metrics` as `train_<name>`), e.g. for a table of training and validation metrics.
        inputs: the run's own data, read instead of the `x` shared by `run_all`: an array (N, ...) with the shared
            labels, an `(x, labels)` pair (e.g. features of images and their augmented views, one label per row),
            or a `LazyInputs` made only when the run trains (e.g. features loaded from the features cache). `split`
            indexes its rows. None (the default) reads the shared `x` and leaves the fingerprint as it was; when set,
            the fingerprint's `data` holds their digest (`inputs_digest`) beside `data`.
    """

    label: str
    seed: int
    build_model: Callable
    split: dict
    epochs: int
    batch_size: int
    group: str = "main"
    settings: dict = field(default_factory=dict)
    spec: dict = field(default_factory=dict)
    data: object = None
    starts_from: object = None
    one_hot: bool = True
    augmentation: Callable = None
    class_weight: dict = None
    callbacks: Callable = None
    snapshots: tuple = ()
    extra_metrics: Callable = None
    predict_batch_size: int = 32
    evaluate_train: bool = False
    inputs: object = field(default=None, compare=False, repr=False)  # arrays: never compared or printed whole

    @property
    def key(self):
        """The record's file stem: `<label slug>__seed<k>`."""
        return f"{slugify(self.label)}__seed{self.seed}"

    @property
    def fingerprint_inputs(self):
        """What the fingerprint hashes, as plain JSON: compare two runs' to see which part differs.

        `version` is `FINGERPRINT_VERSION`. Left out: the label and group (the record's name and table),
        `snapshots` (fingerprinted as runs of their own), `extra_metrics`, `evaluate_train` and
        `predict_batch_size` (what is measured after training, not what is trained).
        """
        return jsonable(
            {
                "version": FINGERPRINT_VERSION,
                "config": self.settings,
                "spec": result_settings(self.spec),
                "data": self.data if self.inputs is None else {"run": self.data, "inputs": self._inputs_digest},
                "seed": self.seed,
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "one_hot": self.one_hot,
                "class_weight": self.class_weight,
                "model": callable_identity(self.build_model),
                "augmentation": callable_identity(self.augmentation),
                "callbacks": callable_identity(self.callbacks),
                "starts_from": self.starts_from.fingerprint if self.starts_from is not None else None,
                "split": split_digests(self.split),
            }
        )

    @property
    def fingerprint(self):
        """A 16-hex-digit hash of `fingerprint_inputs`: a record is reused only under the same fingerprint."""
        return fingerprint(self.fingerprint_inputs)

    @property
    def _inputs_digest(self):
        """`inputs_digest(self.inputs)`, computed once (hashing arrays costs time; the fingerprint is read often)."""
        cached = self.__dict__.get("_digest_of")
        if cached is None or cached[0] is not self.inputs:
            cached = (self.inputs, inputs_digest(self.inputs))
            self.__dict__["_digest_of"] = cached
        return cached[1]

    def __post_init__(self):
        _check_inputs(self.label, self.inputs)
        for snapshot in self.snapshots:
            if not 1 <= snapshot.epochs < self.epochs or snapshot.seed != self.seed:
                raise ValueError(
                    f"A snapshot must have the same seed and fewer epochs than its run '{self.label}' "
                    f"({self.epochs}). Received: '{snapshot.label}' seed {snapshot.seed}, {snapshot.epochs} epochs."
                )


class EpochSnapshots(keras.callbacks.Callback):
    """Keeps the model's weights after each of the given (1-based) epochs, in `self.weights[epoch]`."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = set(epochs)
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            self.weights[epoch + 1] = self.model.get_weights()


def evaluate_sides(model, run, x, labels, class_names):
    """Validation and test metrics of a trained model: accuracy, balanced accuracy, F1, ROC-AUC, confusion, time.

    With `run.evaluate_train` the training side is scored too (inference mode: no dropout, no augmentation).
    Only the test side keeps its indices and per-item probabilities; the validation side keeps its predicted
    labels (`val_predicted`, in the order of `run.split["val"]`), so that rows tested on one validation side can be
    compared item by item.
    """
    from medcnn.evaluate import (
        classification_metrics, predicted_labels, probability_matrix, record_entries, timed_predict,
    )  # fmt: skip

    result = {}
    for side in (("train",) if run.evaluate_train else ()) + SIDES:
        if side not in run.split:
            continue
        index = np.asarray(run.split[side])
        probabilities, seconds = timed_predict(model, x[index], batch_size=run.predict_batch_size)
        metrics = classification_metrics(labels[index], probabilities, class_names)
        result.update(record_entries(metrics, f"{side}_"))
        result.update({f"{side}_roc_auc": metrics["roc_auc"], f"{side}_predict_s": float(seconds)})
        if "precision" in metrics:  # binary: the positive class
            result.update({f"{side}_precision": metrics["precision"], f"{side}_recall": metrics["recall"]})
        if run.extra_metrics is not None:
            result.update(
                {
                    f"{side}_{name}": float(value)
                    for name, value in run.extra_metrics(labels[index], probabilities).items()
                }
            )
        if side == "val":  # the labels `classification_metrics` scored (a sigmoid output: p >= 0.5 is class 1)
            predicted = predicted_labels(probability_matrix(probabilities, len(class_names)))
            result["val_predicted"] = [int(k) for k in predicted]
        if side == "test":
            result["test_indices"] = [int(i) for i in index]
            result["test_probabilities"] = np.round(np.asarray(probabilities, dtype="float64"), 4).tolist()
    return result


def _record(run, history, epochs, train_s, n_train, precision):
    return {
        "configuration": run.label,
        "group": run.group,
        "settings": run.settings,
        "seed": run.seed,
        "epochs": epochs,
        "fingerprint": run.fingerprint,
        "precision": precision,
        "history": {name: values[:epochs] for name, values in history.items()},
        "train_s": train_s,
        "train_images_per_s": n_train * epochs / train_s if train_s > 0 else None,
        "sizes": {side: int(len(index)) for side, index in run.split.items()},
    }


def train_and_evaluate(run, x, labels, class_names, cache, verbose=2, log=print):
    """Train `run` (and its snapshots) unless the cache holds them; returns their records, run first.

    Args:
        run: a `Run`.
        x: the model's inputs for the whole data set, (N, ...); `run.split` indexes into it. A run with its own
            `inputs` reads those instead (`run_data`); x may then be None.
        labels: integer labels (N,), or None where the run's `inputs` bring their own.
        class_names: names in label order.
        cache: a `RunCache`; records and weights are written there.
        verbose: Keras' progress output for `fit`.
        log: where one line per run goes.

    Returns:
        [record of run, records of its snapshots...]; each record has `cached` True when it was reused.
    """
    from medcnn.data.pipeline import make_dataset
    from medcnn.train import fit

    precision = keras.config.dtype_policy().name
    every = [run, *run.snapshots]
    records = {item.key: cache.load(item.key, item.fingerprint, precision) for item in every}
    if records[run.key] is not None:
        missing = [snapshot for snapshot in run.snapshots if records[snapshot.key] is None]
        if missing:
            x, labels = run_data(run, x, labels)
        for snapshot in missing:  # the long run is recorded: train only the short one
            records[snapshot.key] = train_and_evaluate(snapshot, x, labels, class_names, cache, verbose, log)[0]
        return [records[item.key] for item in every]

    snapshots = [snapshot for snapshot in run.snapshots if records[snapshot.key] is None]
    x, labels = run_data(run, x, labels)
    keras.utils.set_random_seed(run.seed)
    model = run.build_model()

    def batches(side, training):
        index = run.split[side]
        augmentation = run.augmentation(run.seed) if training and run.augmentation else None
        num_classes = len(class_names) if run.one_hot else None
        return make_dataset(x[index], labels[index], run.batch_size, training, augmentation, num_classes, run.seed)

    train_ds = batches("train", True)
    val_ds = batches("val", False) if "val" in run.split else None
    keeper = EpochSnapshots({snapshot.epochs for snapshot in snapshots})
    callbacks = [*(run.callbacks() if run.callbacks else []), keeper]
    started = time.perf_counter()
    history = fit(
        model, train_ds, val_ds, epochs=run.epochs, class_weight=run.class_weight, callbacks=callbacks, verbose=verbose
    )
    train_s = time.perf_counter() - started
    epochs_run = len(next(iter(history.values())))
    n_train = len(run.split["train"])

    final = _record(run, history, epochs_run, train_s, n_train, precision)
    final.update(evaluate_sides(model, run, x, labels, class_names))
    cache.save(run.key, final, model)
    records[run.key] = {**final, "cached": False}
    final_weights = model.get_weights()
    for snapshot in snapshots:
        model.set_weights(keeper.weights[snapshot.epochs])
        seconds = train_s * snapshot.epochs / epochs_run
        record = _record(snapshot, history, snapshot.epochs, seconds, n_train, precision)
        record["snapshot_of"] = run.label
        record.update(evaluate_sides(model, snapshot, x, labels, class_names))
        cache.save(snapshot.key, record, model)
        records[snapshot.key] = {**record, "cached": False}
    model.set_weights(final_weights)
    keras.backend.clear_session()
    return [records[item.key] for item in every]
