"""Monte Carlo dropout (kth): T stochastic passes per image, majority vote, confidence, referral, calibration.

How the dropout stays on: the model is *cloned* with every `layers.Dropout` replaced by `MCDropout` (a Dropout
that is always active, seeded from `seed`), the weights are copied, and the clone is called with
`training=False`. So BatchNormalization keeps its moving statistics and augmentation layers stay off; only dropout
is random. (Calling the model with `training=True` instead would also switch every trainable BatchNormalization to
batch statistics, which is no longer MC dropout.)

`MCDropoutPredictor(model)` makes the copies once and keeps them, with their compiled predict functions (JAX
compiles a MobileNetV2 for seconds); each `.predict(images, passes, seed)` copies the model's current weights into
them and restarts the masks from `seed`. `mc_dropout_predict(model, ...)` is the one-call form: it makes a new
predictor every call, so use a predictor for repeated calls. Nothing is cached at module level.

Fast path: for a transfer model with nested 'backbone' and 'head' models and no dropout before the head, the
backbone runs once per image; the head's deterministic start (global pooling, BatchNormalization: every layer
before its first dropout) runs once too when the head is a chain of single-input layers; only the rest runs for
all T passes at once, on the features tiled T times. A head that is not a chain gets the unpooled feature maps
tiled instead. The transfer model may sit inside other models, each a chain of single-input layers, e.g. a
reloaded `medcnn.preprocessing.with_preprocessing(transfer_model(...), ...)`: the layers before it run once with
the backbone, the (dropout-free) layers after it on every pass. A model without 'backbone' and 'head' that is a
chain of single-input layers (a small CNN: convolutions, Flatten, Dropout, Dense) runs the layers before its first
dropout once and the rest for all passes. Any other model (dropout inside the backbone, or first in a chain) falls
back to T full passes, and the predictor's `description` says why.

`referral_summary` turns the passes into the referral numbers (how many images a threshold refers to a human, the
accuracy and recall on all of them and on the ones kept, ECE); `referral_table` puts several side by side.

Binary models with one sigmoid output are turned into two columns [1 - p, p] everywhere, so that class 1 is the
positive class and every function below sees (passes, N, classes).
"""

import numpy as np
import pandas as pd

import keras
from keras import layers

from medcnn.train import all_layers

NOISE_LAYERS = (layers.Dropout, layers.GaussianDropout, layers.AlphaDropout)


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


def _refresh(clone, source, seed):
    """Give an MC copy (made with seed 0) `source`'s current weights and restart its masks from `seed`."""
    clone.set_weights(source.get_weights())
    for layer in all_layers(clone):
        if isinstance(layer, MCDropout) and layer.rate > 0:
            layer.reseed(seed + layer.seed)
    return clone


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


# ---------------------------------------------------------------- finding the fast path


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
    if not chain or len(model.outputs) != 1 or chain[-1] is not model.outputs[0]._keras_history.operation:
        return None
    return chain


def _is_transfer(model):
    """Whether `model` itself holds 'backbone' and 'head' sub-models."""
    names = {layer.name: layer for layer in model.layers}
    return all(isinstance(names.get(name), keras.Model) for name in ("backbone", "head"))


def _holds_transfer(model):
    return _is_transfer(model) or any(
        isinstance(layer, keras.Model) and _is_transfer(layer) for layer in all_layers(model)
    )


def _locate_transfer(model):
    """Find the transfer model in `model`: (it, [(enclosing model, its layer on the way), ...] outermost first),
    or (None, why not)."""
    if _is_transfer(model):
        return model, []
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model) and _holds_transfer(layer)]
    if not nested:
        return None, "the model has no nested 'backbone' and 'head' models"
    chain = _chain_layers(model)
    if len(nested) > 1 or chain is None:
        return None, (
            f"'{model.name}' around the transfer model is not a chain of single-input layers, so the layers "
            "before and after it cannot be split off"
        )
    inner, path = _locate_transfer(nested[0])
    if inner is None:
        return None, path
    return inner, [(model, nested[0]), *path]


def _has_noise(items):
    """Whether any of `items` (layers or models, nested models searched) is a dropout layer."""
    return any(
        isinstance(item, NOISE_LAYERS)
        or (isinstance(item, keras.Model) and any(isinstance(layer, NOISE_LAYERS) for layer in all_layers(item)))
        for item in items
    )


def _features_and_after(transfer, head_input, path):
    """The model from the outermost inputs to the head's input, and the layers after the transfer model
    (innermost first), for a transfer model nested along `path`."""
    features = keras.Model(transfer.inputs, head_input, name="mc_features")
    after = []
    for enclosing, inner in reversed(path):
        chain = _chain_layers(enclosing)
        position = chain.index(inner)
        if position > 0:  # layers before it: run them, then the features so far
            before = keras.Model(enclosing.inputs, _single_node(inner).input_tensors[0], name=f"{enclosing.name}_pre")
            source = enclosing.inputs[0]
            inputs = keras.Input(shape=source.shape[1:], dtype=source.dtype)
            features = keras.Model(inputs, features(before(inputs)), name="mc_features")
        after += chain[position + 1 :]
    return features, after


def _chain_plan(model, why_not_transfer):
    """(plan, None) for a chain of single-input layers whose dropout comes after a deterministic start (e.g. a
    small CNN: convolutions, Flatten, Dropout, Dense): the start runs once per image, the MC copy of the rest for
    all passes. (None, `why_not_transfer`) when the model is no such chain or nothing comes before its dropout."""
    chain = _chain_layers(model)
    if chain is None:
        return None, why_not_transfer
    first = next((index for index, layer in enumerate(chain) if _has_noise([layer])), 0)
    if first == 0:
        return None, why_not_transfer
    node = _single_node(chain[first - 1]) if not isinstance(model, keras.Sequential) else None
    start = keras.tree.flatten(node.output_tensors)[0] if node is not None else chain[first - 1].output
    features = keras.Model(model.inputs, start, name="mc_features")  # (a nested model's `.output` is its own graph's)
    mc_model = mc_clone(model, seed=0)
    mc_chain = _chain_layers(mc_model)
    shape = start.shape[1:]
    kinds = [type(layer).__name__ for layer in chain[:first]]
    names = ", ".join(kinds) if len(kinds) <= 5 else f"{kinds[0]} ... {kinds[-1]}, {len(kinds)} layers"
    plan = {
        "features": features,
        "head": model,
        "mc_head": mc_model,
        "prefix": [],
        "stochastic": keras.Sequential([keras.Input(shape)] + mc_chain[first:], name="mc_tail"),
        "after": [],
        "description": f"the layers before the first dropout ({names}) once; the other {len(chain) - first} "
        "layers for all passes",
    }
    return plan, None


def _make_plan(model):
    """(plan dict, None) for the fast path, or (None, why full passes are needed)."""
    transfer, path = _locate_transfer(model)
    if transfer is None:
        return _chain_plan(model, path)
    head = transfer.get_layer("head")
    head_input = _head_input(transfer, head)
    if head_input is None:
        return None, f"the head's output is not the output of '{transfer.name}'"
    try:
        features, after = _features_and_after(transfer, head_input, path)
    except ValueError as error:
        return None, f"the layers before the head cannot be split off ({error})"
    if _has_noise([features]):
        return None, "dropout sits before the head (in the backbone or the layers before it): every pass must run it"
    if _has_noise(after):
        return None, f"dropout sits after '{transfer.name}': every pass must run it"
    _check_supported_noise(head)
    mc_head = mc_clone(head, seed=0)
    after_note = f"; then {', '.join(type(layer).__name__ for layer in after)} per pass" if after else ""
    chain = _chain_layers(mc_head)
    if chain is None:
        plan = {
            "prefix": [],
            "stochastic": mc_head,
            "description": "backbone once; the head is not a chain, so its unpooled inputs are tiled for all passes",
        }
    else:
        first = next((index for index, layer in enumerate(chain) if isinstance(layer, MCDropout)), len(chain))
        prefix = chain[:first]
        prefix_shape = prefix[-1].output.shape[1:] if prefix else head_input.shape[1:]
        names = ", ".join(type(layer).__name__ for layer in prefix) or "nothing"
        plan = {
            "prefix": prefix,
            "stochastic": keras.Sequential([keras.Input(prefix_shape)] + chain[first:], name="mc_head_tail"),
            "description": f"backbone and the head's start ({names}) once; "
            f"the other {len(chain) - first} head layers for all passes",
        }
    plan.update(features=features, head=head, mc_head=mc_head, after=after)
    plan["description"] += after_note
    return plan, None


def fast_path_plan(model):
    """How `MCDropoutPredictor` runs `model`: a dict, or None for full passes (see `MCDropoutPredictor.reason`).

    Keys: 'features' (a model from the inputs to the head's input: preprocessing and backbone, run once per
    image), 'head' (the model's head), 'mc_head' (its MC copy), 'prefix' (the MC head's layers before its first
    dropout, run once per image when the head is a chain), 'stochastic' (the model run on the tiled features for
    all passes at once), 'after' (layers after the transfer model, e.g. `ClassNames`, run on every pass) and
    'description'. Each call builds a new plan; a predictor keeps its own.
    """
    return _make_plan(model)[0]


def _call_layers(chain, inputs):
    for layer in chain:
        inputs = layer(inputs, training=False)
    return inputs


class MCDropoutPredictor:
    """Monte Carlo dropout for one model, made once and used for many calls (see the module docstring).

    Args:
        model: a Keras classifier; a transfer model with nested 'backbone' and 'head' models (possibly inside
            chains of other layers, as `with_preprocessing` makes) gets the fast path.
        fast: False always runs full passes of the whole MC copy (the reference method). Defaults to True.

    Attributes:
        model: the model; each `predict` uses its current weights.
        plan: the fast path's plan (see `fast_path_plan`), or None for full passes.
        reason: why full passes are needed (None on the fast path).
        description: one line naming the path taken, for logs and results.

    Example:
        predictor = MCDropoutPredictor(model)
        probabilities = predictor.predict(images, passes=100, seed=0)  # (100, N, classes)
    """

    def __init__(self, model, fast=True):
        _check_supported_noise(model)
        self.model = model
        self.plan, self.reason = _make_plan(model) if fast else (None, "asked for (fast=False)")
        self.description = self.plan["description"] if self.plan else f"full passes: {self.reason}"
        self._mc_copy = None

    def predict(self, images, passes=100, seed=0, batch_size=32):
        """Probabilities of `passes` stochastic passes over `images`.

        Args:
            images: array (N, H, W, C) as the model expects them.
            passes: T, stochastic passes per image (the kth study uses 100).
            seed: int; the i-th dropout layer draws its masks from seed + i, so the same seed gives the same output.
            batch_size: images per backbone batch; the head then runs on batch_size * passes rows at once.

        Returns:
            float32 array (passes, N, classes) (two columns for a one-unit sigmoid output).
        """
        _check_passes(passes, images)
        if self.plan is None:
            return self._full_passes(images, passes, seed, batch_size)
        plan = self.plan
        _refresh(plan["mc_head"], plan["head"], seed)
        outputs = []
        for batch, count in _batches(images, batch_size):
            features = _call_layers(plan["prefix"], plan["features"].predict_on_batch(batch))
            tiled = keras.ops.tile(features, (passes,) + (1,) * (len(features.shape) - 1))
            result = _call_layers(plan["after"], plan["stochastic"].predict_on_batch(tiled))
            result = np.asarray(keras.ops.convert_to_numpy(result), dtype="float32")
            outputs.append(result.reshape((passes, len(batch)) + result.shape[1:])[:, :count])
        return _two_columns(np.concatenate(outputs, axis=1))

    def _full_passes(self, images, passes, seed, batch_size):
        if self._mc_copy is None:
            self._mc_copy = mc_clone(self.model, seed=0)
        clone = _refresh(self._mc_copy, self.model, seed)
        return _two_columns(np.stack([_predict(clone, images, batch_size) for _ in range(passes)]))


def mc_dropout_predict_naive(model, images, passes=100, seed=0, batch_size=32):
    """The reference method: `passes` full forward passes of the MC copy over all images.

    Returns:
        float32 array (passes, N, classes) of probabilities (two columns for a one-unit sigmoid output).
    """
    _check_passes(passes, images)
    return MCDropoutPredictor(model, fast=False).predict(images, passes, seed, batch_size)


def mc_dropout_predict(model, images, passes=100, seed=0, batch_size=32, return_plan=False):
    """Monte Carlo dropout probabilities, fast where the model allows it: `MCDropoutPredictor(model).predict(...)`.

    For repeated calls on one model keep an `MCDropoutPredictor`: this function builds (and compiles) a new one
    every call.

    Args:
        model: a Keras classifier; a transfer model with nested 'backbone' and 'head' models gets the fast path.
        images, passes, seed, batch_size: as for `MCDropoutPredictor.predict`.
        return_plan: also return a one-line description of the path taken (and, for full passes, why).

    Returns:
        float32 array (passes, N, classes); with `return_plan`, (array, description).
    """
    _check_passes(passes, images)
    predictor = MCDropoutPredictor(model)
    probabilities = predictor.predict(images, passes=passes, seed=seed, batch_size=batch_size)
    return (probabilities, predictor.description) if return_plan else probabilities


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


def referral_summary(probabilities, labels, threshold=0.8, positive=1):
    """What referring the unsure images to a human does: the numbers of T passes over N images.

    Args:
        probabilities: (passes, N, classes) (or (passes, N, 1) sigmoid outputs).
        labels: true labels (N,).
        threshold: an image whose confidence (share of passes voting for the majority label) is below it is
            referred (the kth thesis: 0.8).
        positive: the positive class, whose recall is reported.

    Returns:
        {"passes", "images", "referred", "accuracy_all", "accuracy_retained" (NaN when every image is referred),
        "recall_all", "recall_retained" (of `positive`; NaN without such images), "mean_confidence", "ece" (of
        the mean probabilities)}. Referral helps when `accuracy_retained` is above `accuracy_all`.
    """
    labels = np.asarray(labels)
    table = summarise_passes(probabilities, threshold)
    if len(labels) != len(table):
        raise ValueError(f"`labels` has {len(labels)} entries but the passes cover {len(table)} images.")
    correct, kept = table["vote"].to_numpy() == labels, ~table["refer_to_human"].to_numpy()

    def share(mask):
        return float(correct[mask].mean()) if mask.any() else float("nan")

    of_class = labels == positive
    return {
        "passes": int(np.shape(probabilities)[0]),
        "images": int(len(labels)),
        "referred": int((~kept).sum()),
        "accuracy_all": share(np.ones_like(kept)),
        "accuracy_retained": share(kept),
        "recall_all": share(of_class),
        "recall_retained": share(of_class & kept),
        "mean_confidence": float(table["confidence"].mean()),
        "ece": expected_calibration_error(probabilities, labels),
    }


def referral_table(summaries, names=None):
    """`referral_summary` results side by side: one row per key of `summaries` ({key: summary}); tuple keys become
    a MultiIndex named `names`."""
    if not summaries:
        raise ValueError("`summaries` is empty: there is nothing to tabulate.")
    frame = pd.DataFrame.from_dict(dict(summaries), orient="index")
    if names is not None:
        frame.index.names = list(names) if isinstance(frame.index, pd.MultiIndex) else [names]
    return frame
