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
