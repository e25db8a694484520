"""Frozen-backbone features: the seeded backbone they come from, their statistics, the layer that standardises them.

Studies that train a head on features computed once (an2dl, cnmc, kth) build the backbone again for the exported
model, so its random weights (where no ImageNet file can be had) must be the same on every build: `seeded_backbone`
seeds Keras right before building. Random backbones give features of very different scales; a head standardises
them with the training side's `feature_stats` through a fixed `standardise` layer.
"""

import keras
import numpy as np

from medcnn.models.backbones import build_backbone


def seeded_backbone(name, input_shape, seed, weights="imagenet", allow_random=False, input_max=255.0, freeze=True):
    """The backbone `name`, its preprocessing inside, named "backbone", built right after
    `keras.utils.set_random_seed(seed)`: random weights are the same on every call with the same seed.

    Args:
        name: registry name (`medcnn.models.backbones.BACKBONES`).
        input_shape: (height, width, 1 or 3).
        seed: int, seeds Keras (and Python and NumPy) before the build.
        weights, allow_random: as `build_backbone` takes them.
        input_max: the value of a white pixel in the inputs (255 for raw images, 1 for images scaled to [0, 1]).
        freeze: set `trainable = False`. False leaves Keras' default flags: for a caller that unfreezes blocks
            itself, or whose saved models keep those flags.

    Returns:
        (model, weights used: "imagenet", "random" or "file"); `model.weights_info` holds the WeightsInfo.
    """
    keras.utils.set_random_seed(seed)
    model, used = build_backbone(
        name, tuple(input_shape), weights, allow_random=allow_random, include_preprocessing=True, input_max=input_max,
        model_name="backbone",
    )  # fmt: skip
    if freeze:
        model.trainable = False
    return model, used


def feature_stats(features, dtype="float64"):
    """(mean, variance) per feature, float32, of `features` (M, ...) flattened per row: what `standardise` takes.

    `dtype`: what they are computed in; None computes in the features' own dtype (float32 features: float32 sums).
    """
    flat = np.asarray(features, dtype=dtype).reshape(len(features), -1)
    return flat.mean(axis=0).astype("float32"), flat.var(axis=0).astype("float32")


def standardise(mean, variance, min_variance=None, name="standardise"):
    """A `keras.layers.Normalization` with a fixed `mean` and `variance` per feature (last axis; not adapted, not
    trained). `min_variance`: a floor for the variance (None: none; Keras divides by max(sqrt(variance), epsilon))."""
    mean = np.asarray(mean, dtype="float32").reshape(-1)
    variance = np.asarray(variance, dtype="float32").reshape(-1)
    if min_variance is not None:
        variance = np.maximum(variance, min_variance)
    return keras.layers.Normalization(mean=mean, variance=variance, name=name)
