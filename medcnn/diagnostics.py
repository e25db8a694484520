"""Training diagnostics: ReLU channels that died (output 0 for every image), measured during training.

A ReLU channel whose pre-activation is negative for every input passes no gradient and never recovers. When most
channels of a layer die in the first epoch the network sits on the majority-class plateau: a failed start, not a
property of the architecture. `DeadChannels` logs the share of dead channels per ReLU layer at the end of every epoch,
so it lands in the run's history beside the loss (`history["dead_conv2"]`).
"""

import keras
import numpy as np
from keras import ops

DEAD_PREFIX = "dead_"


def relu_layers(model):
    """The layers of `model` whose output is a ReLU: a `ReLU` layer, or any layer built with `activation="relu"`."""
    found = []
    for layer in model.layers:
        activation = getattr(layer, "activation", None)
        if isinstance(layer, keras.layers.ReLU) or activation is keras.activations.relu:
            found.append(layer)
    return found


def dead_channel_shares(model, images, layers=None, batch_size=64):
    """{layer name: share of its channels (last axis) that output 0 for every image in `images`}.

    Args:
        model: a built functional or sequential Keras model.
        images: model inputs, (N, ...).
        layers: the layers to check; None: every ReLU layer (`relu_layers`).
        batch_size: images per forward pass.

    Example:
        >>> dead_channel_shares(model, x_train[:256])
        {'conv1': 0.0, 'conv2': 0.97, 'dense': 0.12}
    """
    layers = relu_layers(model) if layers is None else list(layers)
    if not layers:
        return {}
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    probe = keras.Model(inputs, [layer.output for layer in layers])
    peaks = [None] * len(layers)
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start : start + batch_size], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for index, output in enumerate(outputs):
            peak = ops.max(ops.reshape(output, (-1, ops.shape(output)[-1])), axis=0)
            peaks[index] = peak if peaks[index] is None else ops.maximum(peaks[index], peak)
    return {layer.name: float(np.mean(ops.convert_to_numpy(peak) <= 0.0)) for layer, peak in zip(layers, peaks)}


class DeadChannels(keras.callbacks.Callback):
    """Logs `dead_<layer>` (share of dead channels, 0..1) for every ReLU layer at the end of each epoch.

    The values go into the epoch's `logs`, so Keras' `History` records them with the loss: `history["dead_conv2"][0]`
    is conv2's share after epoch 1. Measured in inference mode on `images` (a few hundred training images suffice).

    Args:
        images: probe inputs, (N, ...).
        batch_size: images per forward pass.
    """

    def __init__(self, images, batch_size=64):
        super().__init__()
        self.images = images
        self.batch_size = batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        shares = dead_channel_shares(self.model, self.images, batch_size=self.batch_size)
        logs.update({f"{DEAD_PREFIX}{name}": share for name, share in shares.items()})


def dead_after_epoch(history, epoch=1):
    """{layer name: dead share} after (1-based) `epoch` from a run's history; {} where none was logged."""
    return {
        key[len(DEAD_PREFIX) :]: float(values[epoch - 1])
        for key, values in history.items()
        if key.startswith(DEAD_PREFIX) and len(values) >= epoch
    }


def worst_dead_share(record, epoch=1, prefix=""):
    """The largest dead-channel share over a run's logged ReLU layers whose names start with `prefix` (e.g. "conv")
    after `epoch` (NaN where none was logged)."""
    shares = [share for name, share in dead_after_epoch(record.get("history", {}), epoch).items()
              if name.startswith(prefix)]  # fmt: skip
    return max(shares) if shares else float("nan")


def _layers_name(prefix):
    return f"worst {prefix} layer's" if prefix else "worst layer's"


def _share_summary(shares):
    """'0.84 (0.71–0.97)': the mean and range of dead-channel shares; '0.84' where they print alike, '' for none.
    The range shows whether the share separates single runs, which the mean alone hides."""
    shares = np.asarray(shares, dtype="float64")
    shares = shares[np.isfinite(shares)]
    if not shares.size:
        return ""
    mean, low, high = (f"{value:.2f}" for value in (shares.mean(), shares.min(), shares.max()))
    return mean if low == high else f"{mean} ({low}–{high})"


def dead_share_note(records, epoch=1, prefix=""):
    """' (worst conv layer's dead ReLU share after epoch 1, mean (min–max): 0.84 (0.71–0.97) in the runs that
    learned, 0.97 in the collapsed)': `worst_dead_share` over each kind of run that logged it; '' where none did."""
    from medcnn.experiment import truth

    parts = []
    for kind, wanted in (("in the runs that learned", False), ("in the collapsed", True)):
        summary = _share_summary([worst_dead_share(record, epoch, prefix) for record in records
                                  if truth.is_collapsed(record) == wanted])  # fmt: skip
        if summary:
            parts.append(f"{summary} {kind}")
    if not parts:
        return ""
    return f" ({_layers_name(prefix)} dead ReLU share after epoch {epoch}, mean (min–max): {', '.join(parts)})"


def failed_start_table(records, rows=None, key="test_accuracy", epoch=1, prefix=""):
    """One row per configuration: how many seeds never left the majority-class plateau, and what the others reached.

    Columns: runs; "never left the plateau" ("k of n", `experiment.truth.is_collapsed`); `key` mean ± std of the
    runs that learned (no ± for one) and the mean of all runs; the dead-ReLU share after `epoch` of the worst layer
    whose name starts with `prefix` (mean and range over the runs that learned, and over the collapsed ones), where
    the runs logged it (`DeadChannels`).

    Args:
        records: run records with `configuration`, `seed`, `history` and test confusions.
        rows: configuration labels in table order; None: every configuration, in record order.
        key: the metric summarised.
        epoch: the (1-based) epoch whose dead-channel shares are shown.
        prefix: the layers whose shares count, by name (e.g. "conv"); "": every logged layer.
    """
    import pandas as pd

    from medcnn.experiment import truth
    from medcnn.experiment.summary import mean_std

    rows = list(dict.fromkeys(r["configuration"] for r in records)) if rows is None else rows
    table = {}
    for label in rows:
        chosen = [r for r in records if r["configuration"] == label]
        if not chosen:
            continue
        collapsed = [truth.is_collapsed(r) for r in chosen]
        learned = np.array([r[key] for r, dead in zip(chosen, collapsed) if not dead], dtype="float64")
        shares = np.array([worst_dead_share(r, epoch, prefix) for r in chosen])

        def share_of(mask, shares=shares):
            return _share_summary(shares[np.asarray(mask, dtype=bool)])

        layers = f"{_layers_name(prefix)} dead ReLU share after epoch {epoch}, mean (min–max)"
        table[label] = {
            "runs": len(chosen),
            "never left the plateau": f"{sum(collapsed)} of {len(chosen)}",
            f"{key}, runs that learned": mean_std(learned.mean(), learned.std(ddof=1) if len(learned) > 1 else None)
            if len(learned) else "",
            f"{key}, all runs": f"{np.mean([r[key] for r in chosen]):.3f}",
            f"{layers}, learned": share_of([not c for c in collapsed]),
            f"{layers}, collapsed": share_of(collapsed),
        }
    return pd.DataFrame.from_dict(table, orient="index").rename_axis("configuration")
