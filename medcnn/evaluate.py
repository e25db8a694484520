"""Classification metrics and timed prediction, computed with scikit-learn.

Calibration (reliability bins, expected calibration error) lives in `medcnn.uncertainty`.

Conventions used by every function here:

- `y_true` holds integer class labels, shape (N,). A one-hot (N, K) array is accepted and turned into labels.
- `y_prob` holds predicted probabilities. Binary problems may give the positive-class probability as (N,) or
  (N, 1) (a sigmoid output) or both columns as (N, 2) (a softmax output); class 1 is the positive class.
  Multi-class problems give (N, K), one column per class.
- A binary prediction is positive when the positive-class probability is >= `threshold` (0.5 by default);
  a multi-class prediction is the arg-max.
"""

import time

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from medcnn.data.labels import as_labels


def probability_matrix(y_prob, num_classes):
    """Probabilities as an (N, num_classes) matrix; a binary (N,) or (N, 1) input becomes [1 - p, p].

    Args:
        y_prob: array (N,), (N, 1) or (N, K) of probabilities in [0, 1].
        num_classes: K, the number of classes (2 for binary).

    Returns:
        float64 array (N, num_classes).
    """
    y_prob = np.asarray(y_prob, dtype="float64")
    if y_prob.ndim == 2 and y_prob.shape[1] == 1:
        y_prob = y_prob[:, 0]
    if y_prob.ndim == 1:
        if num_classes != 2:
            raise ValueError(
                f"A single column of probabilities only fits a binary problem; {num_classes} classes were given. "
                f"Pass one column per class. Received: y_prob.shape={y_prob.shape}"
            )
        y_prob = np.stack([1.0 - y_prob, y_prob], axis=1)
    if y_prob.ndim != 2 or y_prob.shape[1] != num_classes:
        raise ValueError(
            f"`y_prob` must have shape (N,), (N, 1) or (N, 2) for a binary problem, or (N, {num_classes}) for "
            f"{num_classes} classes. Received: y_prob.shape={y_prob.shape}"
        )
    if not np.all(np.isfinite(y_prob)):
        raise ValueError("`y_prob` contains NaN or infinite values; check the model's output.")
    return y_prob


def predicted_labels(probabilities, threshold=0.5):
    """Arg-max of an (N, K) probability matrix; for K = 2, positive when p(class 1) >= threshold."""
    if probabilities.shape[1] == 2:
        return (probabilities[:, 1] >= threshold).astype(int)
    return probabilities.argmax(axis=1)


def _check_inputs(y_true, y_prob, class_names):
    labels = as_labels(y_true)
    num_classes = len(class_names)
    if num_classes < 2:
        raise ValueError(f"At least two class names are needed. Received: class_names={list(class_names)}")
    probabilities = probability_matrix(y_prob, num_classes)
    if len(labels) != len(probabilities):
        raise ValueError(
            f"`y_true` has {len(labels)} items but `y_prob` has {len(probabilities)}; pass one prediction per label."
        )
    if len(labels) == 0:
        raise ValueError("`y_true` is empty: there is nothing to evaluate.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"Labels must lie in [0, {num_classes - 1}] for {num_classes} classes. "
            f"Received: labels from {labels.min()} to {labels.max()}"
        )
    return labels, probabilities


def roc_auc(labels, probabilities):
    """ROC-AUC: binary from the positive-class column; multi-class the one-vs-rest macro average.

    Classes that are absent from `labels` (or the only class present) have no ROC curve: they are left out of
    the macro average, and the result is NaN when no class has one. Returns (auc, {class index: auc}).
    """
    num_classes = probabilities.shape[1]
    if num_classes == 2:
        if len(np.unique(labels)) < 2:
            return float("nan"), {}
        value = float(roc_auc_score(labels, probabilities[:, 1]))
        return value, {1: value}
    per_class = {}
    for k in range(num_classes):
        positives = labels == k
        if positives.any() and not positives.all():
            per_class[k] = float(roc_auc_score(positives, probabilities[:, k]))
    # The mean of one-vs-rest AUCs is sklearn's multi_class="ovr", average="macro"; looping keeps classes that
    # are missing from a small split from turning the whole number into an error.
    value = float(np.mean(list(per_class.values()))) if per_class else float("nan")
    return value, per_class


def classification_metrics(y_true, y_prob, class_names, threshold=0.5):
    """Accuracy, precision / recall / F1 (weighted and macro), ROC-AUC, confusion matrix, per-class report.

    Args:
        y_true: integer labels (N,) or one-hot (N, K).
        y_prob: probabilities, (N,) / (N, 1) / (N, 2) for binary, (N, K) otherwise (see the module docstring).
        class_names: the K class names, in label order; class 1 is the positive class of a binary problem.
        threshold: decision threshold on the positive-class probability (binary only).

    Returns:
        A dict of plain Python values: `n`, `accuracy`, `precision_weighted`, `recall_weighted`, `f1_weighted`,
        `precision_macro`, `recall_macro`, `f1_macro`, `roc_auc`, `roc_auc_per_class` ({class name: auc}),
        `confusion_matrix` (nested list, rows = true class, columns = predicted class), `per_class`
        (sklearn's classification report as a dict), `class_names`; for binary problems also `precision`,
        `recall` and `f1` of the positive class (what Keras' Precision / Recall metrics report) and `threshold`.
        Precision of a class that is never predicted counts as 0.
    """
    class_names = [str(name) for name in class_names]
    labels, probabilities = _check_inputs(y_true, y_prob, class_names)
    predicted = predicted_labels(probabilities, threshold)
    label_range = list(range(len(class_names)))
    metrics = {"n": len(labels), "accuracy": float(accuracy_score(labels, predicted))}
    for average in ("weighted", "macro"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            labels, predicted, labels=label_range, average=average, zero_division=0
        )
        metrics.update(
            {f"precision_{average}": float(precision), f"recall_{average}": float(recall), f"f1_{average}": float(f1)}
        )
    if len(class_names) == 2:
        precision, recall, f1, _ = precision_recall_fscore_support(
            labels, predicted, labels=label_range, pos_label=1, average="binary", zero_division=0
        )
        metrics.update(
            {"precision": float(precision), "recall": float(recall), "f1": float(f1), "threshold": float(threshold)}
        )
    auc, per_class_auc = roc_auc(labels, probabilities)
    metrics["roc_auc"] = auc
    metrics["roc_auc_per_class"] = {class_names[k]: value for k, value in per_class_auc.items()}
    metrics["confusion_matrix"] = confusion_matrix(labels, predicted, labels=label_range).tolist()
    metrics["per_class"] = classification_report(
        labels, predicted, labels=label_range, target_names=class_names, output_dict=True, zero_division=0
    )
    metrics["class_names"] = class_names
    return metrics


def metrics_row(metrics, keys=("accuracy", "precision", "recall", "f1_weighted", "f1_macro", "roc_auc")):
    """The scalar entries `keys` of a `classification_metrics` result (missing keys are left out)."""
    return {key: metrics[key] for key in keys if key in metrics}


def record_entries(metrics, prefix):
    """The scalar metrics and confusion matrix a run record keeps of one split, keys prefixed (e.g. "test_")."""
    return {
        f"{prefix}accuracy": metrics["accuracy"],
        f"{prefix}balanced_accuracy": metrics["recall_macro"],
        f"{prefix}macro_f1": metrics["f1_macro"],
        f"{prefix}weighted_f1": metrics["f1_weighted"],
        f"{prefix}confusion": metrics["confusion_matrix"],
    }


def timed_predict(model, x, batch_size=32):
    """Predict `x` with `model` and time it; returns (probabilities as a numpy array, seconds).

    One warm-up call runs first and is not timed: it builds (traces or compiles) the prediction function, which
    otherwise adds a one-off cost of up to seconds to whichever split is predicted first. The warm-up predicts
    one full batch plus the last partial batch's size, so both batch shapes of the timed call are already built.
    The timed call is `model.predict(x, batch_size=batch_size, verbose=0)`, so the seconds cover the whole split.

    Args:
        model: anything with a Keras-style `predict(x, batch_size=..., verbose=...)`.
        x: array of inputs, (N, ...).
        batch_size: positive int, the prediction batch size.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}")
    if len(x) == 0:
        raise ValueError("`x` is empty: there is nothing to predict.")
    warmup = batch_size + len(x) % batch_size if len(x) > batch_size else len(x)
    model.predict(x[:warmup], batch_size=batch_size, verbose=0)
    started = time.perf_counter()
    probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    seconds = time.perf_counter() - started
    return np.asarray(probabilities), seconds


def keras_binary_accuracy(y_true_onehot, y_prob, threshold=0.5):
    """What Keras' `binary_accuracy` reports for one-hot targets: the element-wise share of matches.

    Keras thresholds every probability (`y_prob > threshold`, strictly greater) and compares it with the target
    element by element, so for K classes each sample contributes K comparisons. With one-hot targets this is
    much higher than the real accuracy (a wrong 4-class prediction still scores 2/4). tf.keras 2.x silently
    used it for `metrics=["accuracy"]` with a binary cross-entropy loss, which matters for allgray's Table 1.

    Args:
        y_true_onehot: (N, K) array of 0/1 targets.
        y_prob: (N, K) array of probabilities.
        threshold: float, the probability above which a prediction counts as 1.

    Returns:
        float, the mean of `(y_prob > threshold) == y_true_onehot` over all N * K elements.
    """
    y_true_onehot = np.asarray(y_true_onehot, dtype="float64")
    y_prob = np.asarray(y_prob, dtype="float64")
    if y_true_onehot.shape != y_prob.shape:
        raise ValueError(
            f"`y_true_onehot` and `y_prob` must have the same shape. "
            f"Received: y_true_onehot.shape={y_true_onehot.shape}, y_prob.shape={y_prob.shape}"
        )
    return float(np.mean((y_prob > threshold).astype("float64") == y_true_onehot))


def keras2_accuracy(labels, probabilities):
    """{"keras2_accuracy": what tf.keras 2 printed as "accuracy" under binary cross-entropy} of integer `labels` and
    (N, K) `probabilities` (`keras_binary_accuracy` of their one-hot form), as a run's `extra_metrics`."""
    probabilities = np.asarray(probabilities)
    return {"keras2_accuracy": keras_binary_accuracy(np.eye(probabilities.shape[1])[labels], probabilities)}


def per_class_from_confusion(confusion, class_names):
    """Per-class precision, recall, F1 and support from a confusion matrix (rows = true class), as a DataFrame.

    For records that keep a split's confusion matrix but not its predictions (e.g. the validation side). A class
    never predicted has precision 0; a class absent from the split has recall 0 and support 0.
    """
    import pandas as pd

    matrix = np.asarray(confusion, dtype="float64")
    if matrix.shape != (len(class_names), len(class_names)):
        raise ValueError(
            f"`confusion` must be square with one row per class ({len(class_names)}). Received: shape={matrix.shape}"
        )
    correct, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, support, out=np.zeros_like(correct), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(correct), where=total > 0)
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "F1": f1, "support": support.astype(int)},
        index=pd.Index([str(name) for name in class_names], name="class"),
    )


def confused_pairs(confusion, class_names, top=5):
    """The `top` most frequent confusions of a confusion matrix (rows = true class), both directions counted
    together: [(class a, class b, count)], largest first, ties in class order."""
    matrix = np.asarray(confusion)
    if matrix.shape != (len(class_names), len(class_names)):
        raise ValueError(
            f"`confusion` must be square with one row per class ({len(class_names)}). Received: shape={matrix.shape}"
        )
    pairs = [
        (str(class_names[i]), str(class_names[j]), int(matrix[i, j] + matrix[j, i]))
        for i in range(len(matrix))
        for j in range(i + 1, len(matrix))
        if matrix[i, j] + matrix[j, i] > 0
    ]
    return sorted(pairs, key=lambda pair: -pair[2])[:top]


def binary_side_metrics(labels, probabilities, positive=1, positive_name=None):
    """Binary cross-entropy of P(class 1) (`probabilities`, any shape with one value per item) and precision and
    recall with class `positive` positive, as {"loss", "precision_<positive_name>", "recall_<positive_name>"}
    (default name: the class number), e.g. per side of a run (`Run.extra_metrics`)."""
    from sklearn.metrics import log_loss, precision_score, recall_score

    p = np.clip(np.asarray(probabilities, dtype="float64").reshape(-1), 1e-7, 1 - 1e-7)
    predicted, name = (p >= 0.5).astype(int), positive if positive_name is None else positive_name
    return {"loss": float(log_loss(labels, p, labels=[0, 1])),
            f"precision_{name}": float(precision_score(labels, predicted, pos_label=positive, zero_division=0)),
            f"recall_{name}": float(recall_score(labels, predicted, pos_label=positive, zero_division=0))}  # fmt: skip
