"""Monte Carlo dropout (kth): T stochastic passes per image, majority vote, confidence, referral, calibration.

How the dropout stays on: the model is *cloned* with every `layers.Dropout` replaced by `MCDropout` (a Dropout
that is always active, seeded from `seed`), the weights are copied, and the clone is called with
`training=False`. So BatchNormalization keeps its moving statistics and augmentation layers stay off; only dropout
is random. (Calling the model with `training=True` instead would also switch every trainable BatchNormalization to
batch statistics, which is no longer MC dropout.) The copy is made once per model and kept (with its compiled
predict function); every call copies the model's current weights into it and restarts its masks from `seed`.

Fast path: for a transfer model with a nested 'backbone' and 'head' and no dropout before the head, the backbone
runs once per image; the head's deterministic start (global pooling, BatchNormalization: every layer before its
first dropout) runs once too when the head is a chain of single-input layers; only the rest runs for all T passes
at once, on the features tiled T times. A head that is not a chain gets the unpooled feature maps tiled instead.
Any other model (dropout inside the backbone, no backbone/head) falls back to T full passes
(`mc_dropout_predict_naive`).

Binary models with one sigmoid output are turned into two columns [1 - p, p] everywhere, so that class 1 is the
positive class and every function below sees (passes, N, classes).
"""

import weakref

import numpy as np
import pandas as pd

import keras
from keras import layers

from medcnn.train import all_layers


@keras.saving.register_keras_serializable(package="medcnn")
class MCDropout(layers.Dropout):
    """Dropout that stays active at inference, for Monte Carlo dropout.

    Unlike `layers.Dropout`, it ignores `training`: every call zeroes a fraction `rate` of the inputs (scaling the
    rest by 1 / (1 - rate)), with masks drawn from the layer's own seeded generator, so successive calls give new
    masks and the same seed gives the same sequence.

    Args:
        rate: float between 0 and 1, the fraction of inputs dropped. 0 makes the layer the identity.
        noise_shape: optional tuple, the shape of the binary mask (as for `layers.Dropout`).
        seed: optional int, for a reproducible sequence of masks.

    Example:
        layer = MCDropout(0.5, seed=1)
        outputs = layer(np.ones((2, 4)))  # half the entries 0, the others 2.0, even with training=False
    """

    def call(self, inputs, training=False):
        return super().call(inputs, training=True)

    def reseed(self, seed):
        """Restart the mask sequence as if the layer had been created with `seed` (an int)."""
        state = self.seed_generator.state
        state.assign(keras.ops.convert_to_tensor([int(seed), 0], dtype=state.dtype))


def _two_columns(probabilities, dtype="float32"):
    probabilities = np.asarray(probabilities, dtype=dtype)
    if probabilities.shape[-1] == 1:
        probabilities = np.concatenate([1.0 - probabilities, probabilities], axis=-1)
    return probabilities


def _check_supported_noise(model):
    unsupported = (layers.GaussianDropout, layers.AlphaDropout)
    found = [layer.name for layer in all_layers(model) if isinstance(layer, unsupported)]
    spatial = [
        layer.name
        for layer in all_layers(model)
        if isinstance(layer, layers.Dropout) and type(layer) not in (layers.Dropout, MCDropout)
    ]
    if found or spatial:
        raise ValueError(
            "MC dropout here handles `layers.Dropout` only (with any noise_shape). "
            f"Received a model with {found + spatial}: replace them with `layers.Dropout`."
        )


def mc_clone(model, seed=0):
    """A copy of `model` (nested models included) whose Dropout layers are always-on `MCDropout`s.

    The i-th dropout layer (in cloning order) gets seed `seed + i`; weights are copied from `model`. Call the copy
    with `training=False`.
    """
    _check_supported_noise(model)
    counter = iter(range(10**6))

    def clone_layer(layer):
        if type(layer) is layers.Dropout or type(layer) is MCDropout:
            return MCDropout(layer.rate, noise_shape=layer.noise_shape, seed=seed + next(counter), name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
    clone.set_weights(model.get_weights())
    return clone


# model -> its MC copy, kept so that repeated calls reuse the copy's compiled predict function (JAX compiles a
# MobileNetV2 for seconds); each call refreshes the copy's weights and restarts its masks from the call's seed.
_MC_COPIES = weakref.WeakKeyDictionary()


def _refresh(clone, source, seed):
    """Give an MC copy `source`'s current weights and restart its masks from `seed` (layer i: seed + i)."""
    clone.set_weights(source.get_weights())
    for layer in all_layers(clone):
        if isinstance(layer, MCDropout) and layer.rate > 0:
            layer.reseed(seed + layer.seed)
    return clone


def _mc_copy(model, seed):
    if model not in _MC_COPIES:
        _MC_COPIES[model] = mc_clone(model, seed=0)
    return _refresh(_MC_COPIES[model], model, seed)


def _batches(images, batch_size):
    """Yield (batch padded to `batch_size` rows, real row count): one input shape, so no retracing (TF) or
    recompiling (JAX) for a last, smaller batch."""
    batch_size = min(batch_size, len(images))
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start : start + batch_size])
        count = len(batch)
        if count < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[:1], batch_size - count, axis=0)], axis=0)
        yield batch, count


def _predict(model, images, batch_size):
    """`model.predict` without its per-call set-up cost (which dominates many passes over few images)."""
    return np.concatenate(
        [model.predict_on_batch(batch)[:count] for batch, count in _batches(images, batch_size)], axis=0
    )


def _check_passes(passes, images):
    if not isinstance(passes, int) or passes < 1:
        raise ValueError(f"`passes` must be a positive int (the study uses 100). Received: passes={passes!r}")
    if len(images) == 0:
        raise ValueError(f"`images` is empty. Received: images.shape={np.shape(images)}")


def mc_dropout_predict_naive(model, images, passes=100, seed=0, batch_size=32):
    """The reference method: `passes` full forward passes of the MC clone over all images.

    Returns:
        float32 array (passes, N, classes) of probabilities (two columns for a one-unit sigmoid output).
    """
    _check_passes(passes, images)
    clone = _mc_copy(model, seed)
    runs = [_predict(clone, images, batch_size) for _ in range(passes)]
    return _two_columns(np.stack(runs))


def _single_node(layer):
    nodes = getattr(layer, "_inbound_nodes", [])
    return nodes[0] if len(nodes) == 1 else None


def _head_input(model, head):
    """The tensor the head is called on inside `model`, or None when the head is not simply the last step."""
    if len(model.outputs) != 1:
        return None
    for node in getattr(head, "_inbound_nodes", []):
        if len(node.input_tensors) == 1 and node.output_tensors[0] is model.outputs[0]:
            return node.input_tensors[0]
    return None


def _chain_layers(model):
    """The layers of `model` in call order if each takes the previous one's output only, else None."""
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    chain = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    previous = None
    for layer in chain:
        node = _single_node(layer)
        if node is None or len(node.input_tensors) != 1:
            return None
        parent = node.input_tensors[0]._keras_history.operation
        if previous is None:
            if not isinstance(parent, layers.InputLayer):
                return None
        elif parent is not previous:
            return None
        previous = layer
    if not chain or chain[-1] is not model.outputs[0]._keras_history.operation:
        return None
    return chain


# model -> its plan, so that repeated calls reuse the features model and its compiled predict function.
_PLANS = weakref.WeakKeyDictionary()


def fast_path_plan(model):
    """How `mc_dropout_predict` will run `model`: a dict, or None for full passes.

    Keys: 'features' (a model from the inputs to the head's input: preprocessing and backbone, run once per
    image), 'head' (the model's head), 'mc_head' (its MC copy), 'prefix' (the MC head's layers before its first
    dropout, run once per image when the head is a chain), 'stochastic' (the model run on the tiled features for
    all passes at once) and 'description'. None when the model has no 'backbone' and 'head' sub-models, when the
    head's output is not the model's output, or when dropout sits before the head. Plans are cached per model.
    """
    if model in _PLANS:
        return _PLANS[model]
    plan = _make_plan(model)
    _PLANS[model] = plan
    return plan


def _make_plan(model):
    try:
        backbone, head = model.get_layer("backbone"), model.get_layer("head")
    except ValueError:
        return None
    if not isinstance(backbone, keras.Model) or not isinstance(head, keras.Model):
        return None
    head_input = _head_input(model, head)
    if head_input is None:
        return None
    try:
        features = keras.Model(model.inputs, head_input, name="mc_features")
    except ValueError:
        return None
    if any(
        isinstance(layer, (layers.Dropout, layers.GaussianDropout, layers.AlphaDropout))
        for layer in all_layers(features)
    ):
        return None
    _check_supported_noise(head)
    mc_head = mc_clone(head, seed=0)
    chain = _chain_layers(mc_head)
    if chain is None:
        return {
            "features": features,
            "head": head,
            "mc_head": mc_head,
            "prefix": [],
            "stochastic": mc_head,
            "description": "backbone once; the head is not a chain, so its unpooled inputs are tiled for all passes",
        }
    first = next((index for index, layer in enumerate(chain) if isinstance(layer, MCDropout)), len(chain))
    prefix = chain[:first]
    prefix_shape = prefix[-1].output.shape[1:] if prefix else head_input.shape[1:]
    stochastic = keras.Sequential([keras.Input(prefix_shape)] + chain[first:], name="mc_head_tail")
    names = ", ".join(type(layer).__name__ for layer in prefix) or "nothing"
    return {
        "features": features,
        "head": head,
        "mc_head": mc_head,
        "prefix": prefix,
        "stochastic": stochastic,
        "description": f"backbone and the head's start ({names}) once; "
        f"the other {len(chain) - first} head layers for all passes",
    }


def _call_layers(chain, inputs):
    for layer in chain:
        inputs = layer(inputs, training=False)
    return inputs


def mc_dropout_predict(model, images, passes=100, seed=0, batch_size=32, return_plan=False):
    """Monte Carlo dropout probabilities, fast where the model allows it (see the module docstring).

    Args:
        model: a Keras classifier; a transfer model with nested 'backbone' and 'head' models gets the fast path.
        images: array (N, H, W, C) as the model expects them.
        passes: T, stochastic passes per image (the kth study uses 100).
        seed: int; the i-th dropout layer draws its masks from seed + i, so the same seed gives the same output.
        batch_size: images per backbone batch; the head then runs on batch_size * passes rows at once.
        return_plan: also return a one-line description of the path taken.

    Returns:
        float32 array (passes, N, classes); with `return_plan`, (array, description).
    """
    _check_passes(passes, images)
    plan = fast_path_plan(model)
    if plan is None:
        probabilities = mc_dropout_predict_naive(model, images, passes=passes, seed=seed, batch_size=batch_size)
        description = "full passes: the model has no dropout-free 'backbone' followed by a 'head'"
        return (probabilities, description) if return_plan else probabilities
    _refresh(plan["mc_head"], plan["head"], seed)
    outputs = []
    for batch, count in _batches(images, batch_size):
        features = _call_layers(plan["prefix"], plan["features"].predict_on_batch(batch))
        tiled = keras.ops.tile(features, (passes,) + (1,) * (len(features.shape) - 1))
        result = np.asarray(plan["stochastic"].predict_on_batch(tiled), dtype="float32")
        outputs.append(result.reshape((passes, len(batch)) + result.shape[1:])[:, :count])
    probabilities = _two_columns(np.concatenate(outputs, axis=1))
    return (probabilities, plan["description"]) if return_plan else probabilities


def summarise_passes(probabilities, threshold=0.8, class_names=None):
    """Per image: majority-vote label, confidence, mean probabilities, and whether to refer it to a human.

    Args:
        probabilities: (passes, N, classes) from `mc_dropout_predict` (or (passes, N, 1) sigmoid outputs).
        threshold: referral threshold on the confidence, 0..1 (kth: 0.8); 0 never refers, 1 refers every image
            whose passes disagree at all.
        class_names: optional names for the `mean_<name>` columns (default: class indices).

    Returns:
        DataFrame, one row per image: `vote` (the class most passes predict; ties go to the higher mean
        probability), `confidence` (share of passes voting for it), `mean_probability` (mean over passes of the
        vote's probability, the study's "mean softmax"), `mean_label` (argmax of the mean probabilities),
        `refer_to_human` (confidence < threshold), and `mean_<class>` per class.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must be between 0 and 1. Received: threshold={threshold}")
    probabilities = _two_columns(probabilities, dtype="float64")
    if probabilities.ndim != 3:
        raise ValueError(f"`probabilities` must have shape (passes, N, classes). Received: shape={probabilities.shape}")
    passes, _, classes = probabilities.shape
    per_pass = probabilities.argmax(axis=-1)  # (passes, N)
    counts = np.stack([(per_pass == label).sum(axis=0) for label in range(classes)], axis=-1)  # (N, classes)
    means = probabilities.mean(axis=0)  # (N, classes)
    vote = (counts * 2.0 + means).argmax(axis=-1)  # counts differ by >= 1, means by < 1: means only break ties
    rows = np.arange(len(vote))
    confidence = counts[rows, vote] / passes
    table = pd.DataFrame(
        {
            "vote": vote,
            "confidence": confidence,
            "mean_probability": means[rows, vote],
            "mean_label": means.argmax(axis=-1),
            "refer_to_human": confidence < threshold,
        }
    )
    names = class_names if class_names is not None else [str(label) for label in range(classes)]
    if len(names) != classes:
        raise ValueError(f"`class_names` has {len(names)} names but the probabilities have {classes} classes.")
    for label, name in enumerate(names):
        table[f"mean_{name}"] = means[:, label]
    table.index.name = "image"
    return table


def _mean_probabilities(probabilities, labels):
    probabilities = _two_columns(probabilities, dtype="float64")
    if probabilities.ndim == 3:
        probabilities = probabilities.mean(axis=0)
    labels = np.asarray(labels)
    if probabilities.ndim != 2 or len(labels) != len(probabilities):
        raise ValueError(
            f"`probabilities` must be (N, classes) or (passes, N, classes) and `labels` (N,). "
            f"Received: probabilities.shape={probabilities.shape}, labels.shape={labels.shape}"
        )
    return probabilities, labels


def reliability_curve(probabilities, labels, bins=10):
    """Data for a reliability diagram: per confidence bin, its count, mean confidence and accuracy.

    Confidence is the largest mean probability (over passes, if `probabilities` has a passes axis); bins split
    [0, 1] into `bins` equal parts. Empty bins are kept with NaN confidence and accuracy.
    """
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"`bins` must be a positive int. Received: bins={bins!r}")
    probabilities, labels = _mean_probabilities(probabilities, labels)
    confidence = probabilities.max(axis=-1)
    correct = probabilities.argmax(axis=-1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for index in range(bins):
        inside = which == index
        rows.append(
            {
                "bin_lower": edges[index],
                "bin_upper": edges[index + 1],
                "count": int(inside.sum()),
                "mean_confidence": float(confidence[inside].mean()) if inside.any() else np.nan,
                "accuracy": float(correct[inside].mean()) if inside.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def expected_calibration_error(probabilities, labels, bins=10):
    """ECE = sum over bins of (share of images in the bin) * |accuracy - mean confidence|, 0 (calibrated) .. 1."""
    curve = reliability_curve(probabilities, labels, bins=bins)
    filled = curve[curve["count"] > 0]
    weights = filled["count"] / filled["count"].sum()
    return float((weights * (filled["accuracy"] - filled["mean_confidence"]).abs()).sum())


def wrong_cases(summary, labels, class_names, paths=None):
    """The study's wrong-cases table: image, true, predicted, mean softmax, confidence, referred.

    Args:
        summary: the DataFrame from `summarise_passes`.
        labels: true integer labels (N,).
        class_names: names indexed by label.
        paths: optional image paths (N,); the image's index is used when None.
    """
    labels = np.asarray(labels)
    if len(labels) != len(summary):
        raise ValueError(f"`labels` has {len(labels)} entries but `summary` has {len(summary)} rows.")
    wrong = np.flatnonzero(summary["vote"].to_numpy() != labels)
    images = [str(paths[index]) for index in wrong] if paths is not None else [int(index) for index in wrong]
    return pd.DataFrame(
        {
            "image": images,
            "true": [class_names[labels[index]] for index in wrong],
            "predicted": [class_names[summary["vote"].iloc[index]] for index in wrong],
            "mean_softmax": summary["mean_probability"].to_numpy()[wrong],
            "confidence": summary["confidence"].to_numpy()[wrong],
            "refer_to_human": summary["refer_to_human"].to_numpy()[wrong],
        }
    )
