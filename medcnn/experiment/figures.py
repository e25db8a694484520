"""Figures a study notebook shows beside its tables: the same images as stored and after each preprocessing."""

import numpy as np


def plot_variants(variants, labels, class_names, classes, path=None):
    """One image of each of `classes` (the first of its class), one row per variant of the data set.

    Args:
        variants: {row title: images}, each indexable by item, e.g. {"as stored": list of uint8 crops,
            "padded": (N, H, W, 1) floats in [0, 1]}; uint8 images are shown on 0..255, the others on 0..1.
        labels: integer label per item; class_names: in label order; classes: the names to show, in order.
        path: optional PNG path.

    Returns:
        The Figure: one column per class (titled with its name), one row per variant (labelled with its title).
    """
    from matplotlib.figure import Figure

    from medcnn.plots import save_figure

    labels, names = np.asarray(labels), [str(name) for name in class_names]
    missing = [name for name in classes if str(name) not in names or not (labels == names.index(str(name))).any()]
    if missing:
        raise ValueError(f"No image of class(es) {missing}. Received: classes={list(classes)}")
    chosen = [int(np.flatnonzero(labels == names.index(str(name)))[0]) for name in classes]
    figure = Figure(figsize=(1.4 * len(chosen), 2.5 * len(variants)), layout="constrained")
    axes = figure.subplots(len(variants), len(chosen), squeeze=False)
    for row, (title, images) in enumerate(variants.items()):
        for ax, index, name in zip(axes[row], chosen, classes):
            image = np.asarray(images[index])
            top = 255 if image.dtype == np.uint8 else 1
            ax.imshow(image[..., 0] if image.ndim == 3 else image, cmap="gray", vmin=0, vmax=top)
            ax.set(xticks=[], yticks=[], title=str(name) if row == 0 else "")
        axes[row, 0].set_ylabel(title)
    save_figure(figure, path)
    return figure
