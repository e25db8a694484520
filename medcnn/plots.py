"""The studies' figures with matplotlib: training curves, ROC, confusion matrix, reliability, image grids.

Every function builds a `matplotlib.figure.Figure` directly (not through `pyplot`), so it works with the Agg
backend on a headless machine and leaves no open pyplot figures behind. It returns the Figure; in Jupyter the
returned Figure is displayed as the cell's output. Pass `path=` to also write a PNG (folders are created).

Labels and probabilities follow `medcnn.evaluate`'s conventions: integer labels (N,), probabilities (N,),
(N, 1) or (N, 2) for binary problems (class 1 positive) and (N, K) otherwise.
"""

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, auc, roc_curve

from medcnn.evaluate import as_labels, probability_matrix

DPI = 120
CORRECT_COLOR, WRONG_COLOR = "tab:green", "tab:red"


def save_figure(figure, path=None):
    """Write `figure` as a PNG to `path` (parent folders created); returns `path` as a Path, or None."""
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _grid(count, columns, cell=(3.2, 3.0)):
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(cell[0] * columns, cell[1] * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_axis_off()
    return figure, axes


def plot_history(history, path=None, title=None, columns=3):
    """Training curves: one panel per metric (loss first), training and validation as two lines.

    Args:
        history: a Keras `History` (its `.history` is used) or a dict {metric: per-epoch values};
            keys starting with `val_` are drawn in the panel of the metric they validate.
        path: optional PNG path.
        title: optional figure title.
        columns: panels per row.

    Returns:
        The Figure; each panel's title is the metric's name.
    """
    history = getattr(history, "history", history)
    if not history:
        raise ValueError("`history` is empty: train the model first, or pass the dict `model.fit(...).history`.")
    names = [key for key in history if not key.startswith("val_")]
    names += [key[4:] for key in history if key.startswith("val_") and key[4:] not in history]
    names.sort(key=lambda name: name != "loss")  # loss first, then the metrics in fit's order
    figure, axes = _grid(len(names), columns, cell=(4.0, 3.0))
    for ax, name in zip(axes, names):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key in history:
                values = np.asarray(history[key], dtype="float64")
                ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        figure.suptitle(title)
    save_figure(figure, path)
    return figure


def plot_roc(y_true, y_prob, class_names, path=None, title="ROC curve"):
    """ROC curve(s) with their AUC in the legend.

    Args:
        y_true: integer labels (N,).
        y_prob: probabilities (see module docstring), or a dict {model name: probabilities} to compare several
            models on the same labels. Binary problems draw the positive class's curve; with a single
            multi-class array, one one-vs-rest curve per class; with a dict of multi-class arrays, each model's
            micro-average curve.
        class_names: the K class names.
        path: optional PNG path.
        title: the axes title.

    Returns:
        The Figure.
    """
    labels = as_labels(y_true)
    num_classes = len(class_names)
    onehot = np.eye(num_classes)[labels]
    figure = Figure(figsize=(5.5, 5.0), layout="constrained")
    ax = figure.subplots()
    if isinstance(y_prob, dict):
        curves = []
        for name, probabilities in y_prob.items():
            probabilities = probability_matrix(probabilities, num_classes)
            if num_classes == 2:
                curves.append((name, labels, probabilities[:, 1]))
            else:
                curves.append((f"{name} (micro-average)", onehot.ravel(), probabilities.ravel()))
    else:
        probabilities = probability_matrix(y_prob, num_classes)
        if num_classes == 2:
            curves = [(str(class_names[1]), labels, probabilities[:, 1])]
        else:
            curves = [(str(class_names[k]), onehot[:, k], probabilities[:, k]) for k in range(num_classes)]
    for name, truth, score in curves:
        if len(np.unique(truth)) < 2:
            continue  # no curve without both positives and negatives
        false_positive_rate, true_positive_rate, _ = roc_curve(truth, score)
        ax.plot(
            false_positive_rate,
            true_positive_rate,
            label=f"{name} (AUC = {auc(false_positive_rate, true_positive_rate):.3f})",
        )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (recall)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    save_figure(figure, path)
    return figure


def plot_confusion_matrix(matrix, class_names, path=None, title=None):
    """Confusion matrix twice: raw counts, and each row divided by its total (per-class recall on the diagonal).

    Args:
        matrix: (K, K) counts, rows = true class, columns = predicted class (e.g. `classification_metrics`'s
            `confusion_matrix`).
        class_names: the K class names.
        path: optional PNG path.
        title: optional figure title.

    Returns:
        The Figure; its axes are titled "Counts" and "Row-normalised".
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape != (len(class_names), len(class_names)):
        raise ValueError(
            f"`matrix` must be square with one row per class ({len(class_names)} classes). "
            f"Received: matrix.shape={matrix.shape}"
        )
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype="float64"), where=totals > 0)
    side = 2.5 + 0.45 * len(class_names)
    figure = Figure(figsize=(2 * side + 1, side), layout="constrained")
    axes = figure.subplots(1, 2)
    show_values = len(class_names) <= 12
    rotation = 45 if len(class_names) > 4 else 0
    for ax, values, fmt, name in ((axes[0], matrix, "d", "Counts"), (axes[1], normalised, ".2f", "Row-normalised")):
        ConfusionMatrixDisplay(values, display_labels=list(class_names)).plot(
            ax=ax,
            colorbar=False,
            values_format=fmt,
            include_values=show_values,
            cmap="Blues",
            xticks_rotation=rotation,
        )
        ax.set_title(name)
    if title:
        figure.suptitle(title)
    save_figure(figure, path)
    return figure


def plot_reliability(y_true, y_prob, num_classes=None, bins=10, path=None, title="Reliability diagram"):
    """Reliability diagram: accuracy against mean confidence per confidence bin, over a histogram of counts.

    Bins and the expected calibration error (ECE, in the title) come from `medcnn.uncertainty`; a perfectly
    calibrated model lies on the diagonal.

    Args:
        y_true: integer labels (N,).
        y_prob: probabilities (N,) / (N, 1) / (N, K), or MC-dropout passes (T, N, K) (averaged over passes).
        num_classes: K; inferred from `y_prob` when it has K >= 2 columns, else 2.
        bins: number of equal-width confidence bins.

    Returns:
        The Figure (top axes: reliability, bottom axes: number of images per bin).
    """
    from medcnn.uncertainty import expected_calibration_error, reliability_curve

    labels = as_labels(y_true)
    y_prob = np.asarray(y_prob)
    if y_prob.ndim < 3:
        if num_classes is None:
            num_classes = y_prob.shape[1] if y_prob.ndim == 2 and y_prob.shape[1] > 1 else 2
        y_prob = probability_matrix(y_prob, num_classes)
    table = reliability_curve(y_prob, labels, bins=bins)
    ece = expected_calibration_error(y_prob, labels, bins=bins)
    figure = Figure(figsize=(5.0, 6.0), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    width = table["bin_upper"] - table["bin_lower"]
    top.bar(
        table["bin_lower"],
        table["accuracy"].fillna(0),
        width=width,
        align="edge",
        edgecolor="black",
        alpha=0.7,
        label="accuracy",
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    filled = table["count"] > 0
    top.plot(
        table.loc[filled, "mean_confidence"],
        table.loc[filled, "accuracy"],
        "o",
        color="black",
        markersize=4,
        label="mean confidence",
    )
    top.set_ylim(0, 1.05)
    top.set_ylabel("accuracy")
    top.set_title(f"{title} (ECE = {ece:.3f})")
    top.legend(loc="upper left", fontsize="small")
    bottom.bar(table["bin_lower"], table["count"], width=width, align="edge", edgecolor="black", color="tab:grey")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("images")
    save_figure(figure, path)
    return figure


def _show_image(ax, image):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype != np.uint8:
        image = image.astype("float64")
        image = np.clip(image / 255.0 if image.max() > 1.0 else image, 0.0, 1.0)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_image_grid(images, labels, class_names, per_class=3, path=None, seed=0, title=None):
    """A grid of sample images: one row per class, `per_class` images drawn at random (seeded) from it.

    Args:
        images: (N, H, W), (N, H, W, 1) or (N, H, W, 3); uint8, or floats in [0, 1] or [0, 255].
        labels: integer labels (N,).
        class_names: the K class names; classes with fewer images leave their extra cells empty.
        per_class: positive int, images per class.
        path: optional PNG path.
        seed: int, which images are drawn.

    Returns:
        The Figure; each image's axes title is its class name.
    """
    if not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"`per_class` must be a positive int. Received: per_class={per_class!r}")
    labels = as_labels(labels)
    if len(labels) != len(images):
        raise ValueError(f"`images` has {len(images)} items but `labels` has {len(labels)}; pass one label per image.")
    rng = np.random.default_rng(seed)
    figure = Figure(figsize=(2.2 * per_class, 2.3 * len(class_names)), layout="constrained")
    axes = figure.subplots(len(class_names), per_class, squeeze=False)
    for k, name in enumerate(class_names):
        members = np.flatnonzero(labels == k)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False) if len(members) else []
        for column in range(per_class):
            ax = axes[k, column]
            if column < len(chosen):
                _show_image(ax, images[chosen[column]])
                ax.set_title(str(name), fontsize="small")
            else:
                ax.set_axis_off()
    if title:
        figure.suptitle(title)
    save_figure(figure, path)
    return figure


def plot_predictions(
    images, y_true, y_pred, class_names, confidence=None, max_images=9, columns=3, path=None, title=None
):
    """Sample predictions titled "True: X / Predicted: Y" (green when right, red when wrong).

    The images are shown in the order given, so pass the ones to show (e.g. held-out, or the wrong cases).

    Args:
        images: images as in `plot_image_grid`.
        y_true, y_pred: integer labels (N,).
        class_names: the K class names.
        confidence: optional (N,) confidences in [0, 1], appended to the title as a percentage.
        max_images: at most this many images are shown.
        columns: images per row.
        path: optional PNG path.

    Returns:
        The Figure.
    """
    y_true, y_pred = as_labels(y_true), as_labels(y_pred)
    if not (len(images) == len(y_true) == len(y_pred)):
        raise ValueError(
            f"`images`, `y_true` and `y_pred` must have the same length. "
            f"Received: {len(images)}, {len(y_true)} and {len(y_pred)}"
        )
    count = min(max_images, len(images))
    if count == 0:
        raise ValueError("There are no images to show. Received: 0 images")
    figure, axes = _grid(count, columns)
    for i in range(count):
        _show_image(axes[i], images[i])
        text = f"True: {class_names[y_true[i]]} / Predicted: {class_names[y_pred[i]]}"
        if confidence is not None:
            text += f" ({100 * float(confidence[i]):.0f} %)"
        axes[i].set_title(text, fontsize="small", color=CORRECT_COLOR if y_true[i] == y_pred[i] else WRONG_COLOR)
    if title:
        figure.suptitle(title)
    save_figure(figure, path)
    return figure


def plot_image_pairs(images, pairs, titles=None, max_pairs=6, path=None, empty="no pairs", title=None):
    """Pairs of images one above the other, one pair per column: e.g. a kept image above the duplicate removed.

    Args:
        images: images as in `plot_image_grid`.
        pairs: (top index, bottom index) pairs into `images`, shown in the order given.
        titles: optional (top title, bottom title) per pair.
        max_pairs: at most this many pairs (columns) are shown.
        path: optional PNG path.
        empty: the text shown when there is no pair.

    Returns:
        The Figure (2 rows of axes; with no pair, one empty panel that says `empty`).
    """
    pairs = [(int(top), int(bottom)) for top, bottom in list(pairs)[:max_pairs]]
    titles = list(titles or [])[: len(pairs)]
    if titles and len(titles) != len(pairs):
        raise ValueError(f"`titles` must hold one (top, bottom) pair per pair shown ({len(pairs)}). "
                         f"Received: {len(titles)} titles")  # fmt: skip
    figure = Figure(figsize=(2.0 * max(1, len(pairs)), 4.4), layout="constrained")
    axes = figure.subplots(2, max(1, len(pairs)), squeeze=False)
    if not pairs:
        for ax in axes.ravel():
            ax.set_axis_off()
        axes[0, 0].text(0.5, 0.5, empty, ha="center", va="center")
    for column, indices in enumerate(pairs):
        for row, index in enumerate(indices):
            _show_image(axes[row, column], images[index])
            if titles:
                axes[row, column].set_title(str(titles[column][row]), fontsize="small")
    if title:
        figure.suptitle(title)
    save_figure(figure, path)
    return figure


def plot_selected_images(images, indices, titles=None, max_images=12, columns=6, path=None, empty="none", title=None):
    """Chosen images (e.g. the outliers a forest removed, most anomalous first), in the order given, with titles.

    Args:
        images: images as in `plot_image_grid`.
        indices: indices into `images`.
        titles: optional title per index (e.g. its class and score).
        max_images: at most this many images are shown.
        columns: images per row.
        path: optional PNG path.
        empty: the text shown when `indices` is empty.

    Returns:
        The Figure.
    """
    indices = np.asarray(indices, dtype=int)[:max_images]
    titles = list(titles or [])[: len(indices)]
    if titles and len(titles) != len(indices):
        raise ValueError(f"`titles` must hold one title per image shown ({len(indices)}). "
                         f"Received: {len(titles)} titles")  # fmt: skip
    figure, axes = _grid(max(1, len(indices)), columns, cell=(2.0, 2.2))
    if not len(indices):
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, empty, ha="center", va="center")
    for position, index in enumerate(indices):
        _show_image(axes[position], images[index])
        if titles:
            axes[position].set_title(str(titles[position]), fontsize="small")
    if title:
        figure.suptitle(title)
    save_figure(figure, path)
    return figure
