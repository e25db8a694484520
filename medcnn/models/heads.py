"""Transfer-learning heads built from a small spec, and the kth, cnmc and an2dl heads as presets.

A head is a `keras.Model` named "head" that maps a backbone's feature map (H, W, C) to probabilities:

    pooling (GAP or flatten) -> [BatchNorm] -> [Dropout] -> (Dense -> [Dropout]) * k -> Dense output

The output is `Dense(1, sigmoid)` for `output="sigmoid"` (binary, P(class 1)) and `Dense(num_classes, softmax)`
for `output="softmax"`; it computes in float32 under a mixed-precision policy. Dropout layers are named
"dropout", "dropout1", ... so Monte Carlo dropout code can find them.
"""

from dataclasses import dataclass

import keras
from keras import layers

POOLINGS = ("gap", "flatten")
OUTPUTS = ("softmax", "sigmoid")


def _check_rate(value, name):
    if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")


@dataclass(frozen=True)
class DenseLayer:
    """One hidden layer of a head: Dense(units, activation, L2 on the kernel), then Dropout(dropout) if > 0.

    Args:
        units: int > 0.
        dropout: rate of the Dropout after it, in [0, 1); 0 adds none. Defaults to 0.
        l2: L2 factor on the kernel, >= 0; 0 adds no regulariser. Defaults to 0.
        activation: Keras activation name. Defaults to "relu".
    """

    units: int
    dropout: float = 0.0
    l2: float = 0.0
    activation: str = "relu"

    def __post_init__(self):
        if not (isinstance(self.units, int) and self.units > 0):
            raise ValueError(f"`units` must be a positive int. Received: units={self.units!r}")
        _check_rate(self.dropout, "dropout")
        if not (isinstance(self.l2, (int, float)) and self.l2 >= 0):
            raise ValueError(f"`l2` must be a float >= 0. Received: l2={self.l2!r}")


@dataclass(frozen=True)
class HeadSpec:
    """What a head is made of, in order: pooling -> [BatchNorm] -> [Dropout] -> dense layers -> output.

    Args:
        num_classes: int >= 2.
        pooling: "gap" (GlobalAveragePooling2D) or "flatten". Defaults to "gap".
        batch_norm: add BatchNormalization after pooling. Defaults to False.
        batch_norm_momentum: that layer's momentum for its moving mean and variance, in (0, 1). Defaults to 0.99
            (Keras'); with few steps per epoch, 0.9 lets the moving statistics catch up within an epoch or two.
        dropout: rate of a Dropout after pooling (and BatchNorm), in [0, 1); 0 adds none. Defaults to 0.
        dense: tuple of `DenseLayer`, the hidden layers. Defaults to none.
        output: "softmax" (num_classes units) or "sigmoid" (1 unit, needs num_classes == 2). Defaults to "softmax".
        seed: optional int; Dropout layer i gets seed `seed + i`, for repeatable masks.
    """

    num_classes: int
    pooling: str = "gap"
    batch_norm: bool = False
    dropout: float = 0.0
    dense: tuple = ()
    output: str = "softmax"
    seed: int | None = None
    batch_norm_momentum: float = 0.99

    def __post_init__(self):
        if not (isinstance(self.num_classes, int) and self.num_classes >= 2):
            raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={self.num_classes!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}. Received: pooling={self.pooling!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"`output` must be one of {OUTPUTS}. Received: output={self.output!r}")
        if self.output == "sigmoid" and self.num_classes != 2:
            raise ValueError(
                "A sigmoid output is one unit, for two classes; use output='softmax' for more. "
                f"Received: output='sigmoid', num_classes={self.num_classes}"
            )
        _check_rate(self.dropout, "dropout")
        momentum = self.batch_norm_momentum
        if not (isinstance(momentum, (int, float)) and 0.0 < momentum < 1.0):
            raise ValueError(f"`batch_norm_momentum` must be in (0, 1). Received: batch_norm_momentum={momentum!r}")
        object.__setattr__(self, "dense", tuple(self.dense))
        if not all(isinstance(layer, DenseLayer) for layer in self.dense):
            raise ValueError(f"`dense` must be a tuple of DenseLayer. Received: dense={self.dense!r}")

    @property
    def output_units(self):
        """1 for a sigmoid output, num_classes for softmax."""
        return 1 if self.output == "sigmoid" else self.num_classes


def build_head(spec, feature_shape, name="head"):
    """The head described by `spec`, as a keras.Model from a feature map of shape `feature_shape` (H, W, C).

    Args:
        spec: a HeadSpec.
        feature_shape: the backbone's output shape without the batch axis, e.g. `backbone.output.shape[1:]`.
        name: the model's name. Defaults to "head" (MC dropout code looks it up by that name).
    """
    if len(feature_shape) != 3:
        raise ValueError(f"`feature_shape` must be (H, W, C). Received: feature_shape={tuple(feature_shape)}")
    if spec.pooling == "flatten" and None in tuple(feature_shape):
        raise ValueError(f"pooling='flatten' needs a static feature shape. Received: feature_shape={feature_shape}")
    seeds = iter(range(spec.seed, spec.seed + len(spec.dense) + 1)) if spec.seed is not None else None

    features = keras.Input(shape=tuple(feature_shape), name="features")
    if spec.pooling == "gap":
        x = layers.GlobalAveragePooling2D(name="pool")(features)
    else:
        x = layers.Flatten(name="pool")(features)
    if spec.batch_norm:
        x = layers.BatchNormalization(momentum=spec.batch_norm_momentum, name="bn")(x)
    if spec.dropout > 0:
        x = layers.Dropout(spec.dropout, seed=next(seeds) if seeds else None, name="dropout")(x)
    for index, hidden in enumerate(spec.dense, start=1):
        regularizer = keras.regularizers.L2(hidden.l2) if hidden.l2 > 0 else None
        x = layers.Dense(hidden.units, hidden.activation, kernel_regularizer=regularizer, name=f"dense{index}")(x)
        if hidden.dropout > 0:
            x = layers.Dropout(hidden.dropout, seed=next(seeds) if seeds else None, name=f"dropout{index}")(x)
    outputs = layers.Dense(spec.output_units, activation=spec.output, dtype="float32", name="probabilities")(x)
    return keras.Model(features, outputs, name=name)


def kth_head(num_classes=2, units=256, dropout=0.5, output="softmax", seed=None, batch_norm_momentum=0.99):
    """kth (VGG16 / InceptionV3): GAP -> BN -> Dropout -> Dense ReLU -> Dropout -> Dense output.

    The thesis names the layers (its figures 3.5-3.7) but prints neither the width nor the rates: 256 units and
    0.5 are our defaults, and the tuner may vary them. "mean softmax" in its tables suggests a 2-unit softmax.
    `batch_norm_momentum`: see `HeadSpec`.
    """
    return HeadSpec(
        num_classes, "gap", batch_norm=True, dropout=dropout, dense=(DenseLayer(units, dropout),), output=output,
        seed=seed, batch_norm_momentum=batch_norm_momentum,
    )  # fmt: skip


def cnmc_head(dropout=0.25, seed=None):
    """cnmc (MobileNetV2 and others): GAP -> Dropout 0.25 -> Dense(1, sigmoid), binary cross-entropy."""
    return HeadSpec(2, "gap", dropout=dropout, output="sigmoid", seed=seed)


def an2dl_head(num_classes=8, l2=0.01, dropout=0.5, units=(512, 256), seed=None):
    """an2dl (table 1): GAP -> Dense 512 ReLU (L2) -> Dropout .5 -> Dense 256 ReLU (L2) -> Dropout .5 -> softmax.

    The report gives no L2 factor; 0.01 is what Keras' `kernel_regularizer="l2"` means.
    """
    return HeadSpec(num_classes, "gap", dense=tuple(DenseLayer(width, dropout, l2) for width in units), seed=seed)


def penalty_at_start(build, input_shape, seed=0):
    """The regularisation penalty (the sum of `model.losses`, e.g. L2 on its kernels) a freshly built model adds to
    the loss before its first step: `build()` under `keras.utils.set_random_seed(seed)`, called once on zeros of
    `input_shape` (without the batch axis)."""
    keras.utils.set_random_seed(seed)
    model = build()
    model(keras.ops.zeros((1, *input_shape)))
    penalty = float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))
    keras.backend.clear_session()
    return penalty
