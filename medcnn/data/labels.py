"""Class labels in one form: integer labels (N,) from plain, column or one-hot / probability arrays."""

import numpy as np


def flat_labels(labels):
    """Labels (N,) from (N,), a column (N, 1) or a one-hot / probability matrix (N, K) (its arg-max).

    Other shapes and the dtype are returned as they are, for the caller to check (see `as_labels`).
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        return labels[:, 0]
    if labels.ndim == 2:
        return labels.argmax(axis=1)
    return labels


def as_labels(labels, name="y_true"):
    """Integer class labels (N,) from labels (N,) or (N, 1), or a one-hot / probability matrix (N, K).

    Args:
        labels: array-like of whole numbers (int, bool or float), or an (N, K) matrix.
        name: the argument name used in error messages.

    Returns:
        int array (N,).

    Raises:
        ValueError: another shape, or values that are not whole numbers.
    """
    flat = flat_labels(labels)
    if flat.ndim == 0:
        flat = flat.reshape(1)
    if flat.ndim != 1:
        raise ValueError(
            f"`{name}` must have shape (N,), (N, 1) or one-hot (N, K). Received: {name}.shape={np.shape(labels)}"
        )
    numeric = flat.dtype == bool or np.issubdtype(flat.dtype, np.number)
    if flat.size and (not numeric or not np.all(np.isfinite(flat)) or not np.all(np.mod(flat, 1) == 0)):
        raise ValueError(f"`{name}` must hold integer class labels. Received: {name}[:5]={flat[:5].tolist()}")
    return flat.astype(int)


CLASS_WEIGHTINGS = ("balanced", None)


def class_weights(labels, how="balanced", num_classes=None):
    """{class index: weight} for `fit(class_weight=...)`: scikit-learn's "balanced" weights, so that every class
    weighs the same in total, `n_items / (n_classes * n_items_of_class)`.

    Args:
        labels: the training side's class labels, (N,) integers (or (N, 1), or one-hot (N, K)).
        how: "balanced", or None for no weights (then None is returned, as `fit` takes it). Defaults to "balanced".
        num_classes: None weighs the classes present in `labels`; an int K weighs classes 0..K-1 and each must
            occur at least once. Defaults to None.

    Returns:
        {int class: float weight}, or None when `how` is None.
    """
    if how not in CLASS_WEIGHTINGS:
        raise ValueError(f"`class_weight` must be one of {CLASS_WEIGHTINGS}. Received: class_weight={how!r}")
    if how is None:
        return None
    from sklearn.utils.class_weight import compute_class_weight

    labels = as_labels(labels, "labels")
    classes = np.unique(labels) if num_classes is None else np.arange(num_classes)
    missing = sorted(set(classes.tolist()) - set(labels.tolist()))
    if missing:
        raise ValueError(
            f"Balanced class weights need at least one item of every class. Classes {missing} have none among "
            f"{len(labels)} labels (num_classes={num_classes}). Check the split, or pass num_classes=None to weigh "
            "only the classes present."
        )
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(label): float(weight) for label, weight in zip(classes, weights)}
