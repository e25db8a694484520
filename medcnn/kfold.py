"""k-fold cross-validation: a fresh model per fold over any split, per-fold metrics and their mean ± std.

The splits come from the caller (stratified k-fold, patient-grouped k-fold, the C-NMC folds, ...); this module
only trains and scores. When patient groups are given, a fold whose validation patients also appear in its
training part is refused before any training.
"""

import numpy as np
import pandas as pd

import keras

from medcnn.data.splits import check_folds_no_leakage
from medcnn.train import fit


def _default_dataset(images, labels, training):
    return (images, labels)


def _evaluate(model, val_data):
    return model.evaluate(*val_data if isinstance(val_data, tuple) else (val_data,), verbose=0, return_dict=True)


def run_kfold(
    build_model, images, labels, splits, fit_kwargs=None, make_dataset=None, metrics_fn=None, groups=None, seed=0
):
    """Train and score a fresh model on each fold.

    Args:
        build_model: callable(fold) -> a compiled Keras model. It is called after `keras.backend.clear_session()`
            and `keras.utils.set_random_seed(seed + fold)`, so each fold starts from its own seeded initialisation.
        images, labels: arrays (N, ...) and (N,), indexed by the splits.
        splits: list of (train_idx, val_idx) integer arrays, e.g. from `StratifiedGroupKFold(...).split(...)`.
        fit_kwargs: arguments for `medcnn.train.fit` (epochs, callbacks, class_weight, batch_size, verbose).
        make_dataset: callable(images, labels, training) -> what `fit` takes (a tf.data.Dataset, a PyDataset or an
            (images, labels) tuple); training=True for the training part only (augmentation, shuffling); the
            validation part must keep its order.
            Default: the arrays themselves.
        metrics_fn: callable(true_labels, probabilities) -> {metric: value} on the validation part (e.g. scikit-learn
            metrics); default: the model's own compiled metrics from `model.evaluate`.
        groups: optional (N,) patient ids; a fold with a patient on both sides raises DataError.
        seed: base seed; fold k uses seed + k.

    Returns:
        (per_fold, summary): per_fold has one row per fold (index 'fold') with each metric, `n_train`, `n_val` and
        `epochs`; summary has one row per metric with `mean`, `std` (sample std, ddof=1) and `mean ± std` text.
    """
    if len(images) != len(labels):
        raise ValueError(f"`images` and `labels` differ in length: {len(images)} vs {len(labels)}.")
    if not splits:
        raise ValueError("`splits` is empty. Pass a list of (train_idx, val_idx) pairs.")
    splits = [(np.asarray(train_idx, dtype=int), np.asarray(val_idx, dtype=int)) for train_idx, val_idx in splits]
    check_folds_no_leakage(splits, groups=groups)
    fit_kwargs = dict(fit_kwargs or {})
    make_dataset = make_dataset or _default_dataset
    labels = np.asarray(labels)
    rows = []
    for fold, (train_idx, val_idx) in enumerate(splits):
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed + fold)
        model = build_model(fold)
        train_data = make_dataset(images[train_idx], labels[train_idx], True)
        val_data = make_dataset(images[val_idx], labels[val_idx], False)
        print(f"Fold {fold + 1}/{len(splits)}: {len(train_idx)} train, {len(val_idx)} validation images")
        history = fit(model, train_data, val_data, **fit_kwargs)
        if metrics_fn is None:
            scores = _evaluate(model, val_data)
        else:
            # Predict on the validation data as built (same preprocessing); make_dataset must not shuffle it.
            probabilities = model.predict(val_data[0] if isinstance(val_data, tuple) else val_data, verbose=0)
            scores = dict(metrics_fn(labels[val_idx], probabilities))
        epochs = len(next(iter(history.values()), []))
        rows.append(
            {
                "fold": fold,
                **{name: float(value) for name, value in scores.items()},
                "n_train": len(train_idx),
                "n_val": len(val_idx),
                "epochs": epochs,
            }
        )
    per_fold = pd.DataFrame(rows).set_index("fold")
    return per_fold, summarise_folds(per_fold)


def summarise_folds(per_fold):
    """Mean and sample standard deviation of each metric column over folds, with a 'mean ± std' text column."""
    from medcnn.experiment.summary import summarise

    metrics = [c for c in per_fold.columns if c not in ("n_train", "n_val", "epochs")]
    overall = summarise(per_fold, metrics, by=None).iloc[0]
    summary = pd.DataFrame(
        {"mean": [overall[f"{m}_mean"] for m in metrics], "std": [overall[f"{m}_std"] for m in metrics]},
        index=pd.Index(metrics, name="metric"),
    )
    summary["std"] = summary["std"].fillna(0.0)
    summary["mean ± std"] = [f"{mean:.4f} ± {std:.4f}" for mean, std in zip(summary["mean"], summary["std"])]
    return summary
