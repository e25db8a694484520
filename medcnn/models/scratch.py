"""CNNs trained from scratch: the allgray study's small CNN, the three CNNs the an2dl homework tried first, and a
small CNN whose Flatten head keeps position (our row of the kth study)."""

import functools

import keras
from keras import layers

from medcnn.models.blocks import BATCH_NORM_MOMENTUM, InceptionModule, ResidualBlock

# (filters, kernel) of the allgray CNN's conv blocks, as published: Conv64 5x5, Conv32 5x5, Conv128 3x3.
ALLGRAY_CONV_BLOCKS = ((64, 5), (32, 5), (128, 3))


def allgray_cnn(
    input_shape=(100, 100, 1),
    num_classes=4,
    conv_layers=3,
    dense_units=128,
    dropout=0.5,
    batch_norm=False,
    name=None,
    batch_norm_momentum=BATCH_NORM_MOMENTUM,
    centre=None,
):
    """The allgray study's CNN: [Conv ReLU -> MaxPool 2] x conv_layers -> Flatten -> Dense 128 -> Dropout .5 -> softmax.

    Args:
        input_shape: (H, W, C) of the preprocessed input, values in [0, 1].
        num_classes: size of the softmax output.
        conv_layers: how many conv blocks, 1..4. 3 is the published model; fewer keep its first blocks, 4 appends
            a Conv128 3x3 block (the paper names this variation but gives no table). With 'valid' padding a 100x100
            input leaves 4x4 maps after 4 blocks, so 5 would not fit.
        dense_units, dropout: the head, 128 and 0.5 as published.
        batch_norm: add BatchNormalization between each convolution and its ReLU (not in the paper; one of
            the changes tried in "what it takes to reach the paper").
        batch_norm_momentum: momentum of the moving statistics, in [0, 1). Keras' 0.99 needs hundreds of steps to
            track the batch statistics; at ~34 steps per epoch 0.9 lets validation (inference mode) follow
            training. Defaults to 0.9 (`medcnn.models.blocks.BATCH_NORM_MOMENTUM`, where the reason is).
        centre: None (as published), or a value (e.g. the training images' mean) subtracted from every input
            pixel by a first `Rescaling` layer, so the saved model still takes [0, 1] inputs. With the white
            background (mean ~0.86) the uncentred first layers' ReLUs can all die in epoch 1 at Adam 1e-3.

    Padding is 'valid' (Keras' default; the paper does not say).
    """
    if not 1 <= conv_layers <= 4:
        raise ValueError(f"`conv_layers` must be between 1 and 4. Received: conv_layers={conv_layers}")
    blocks = list(ALLGRAY_CONV_BLOCKS[:conv_layers]) + [(128, 3)] * max(0, conv_layers - len(ALLGRAY_CONV_BLOCKS))
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs if centre is None else layers.Rescaling(1.0, offset=-float(centre), name="centre")(inputs)
    for index, (filters, kernel) in enumerate(blocks, start=1):
        if batch_norm:
            x = layers.Conv2D(filters, kernel, use_bias=False, name=f"conv{index}")(x)
            x = layers.BatchNormalization(momentum=batch_norm_momentum, name=f"bn{index}")(x)
            x = layers.ReLU(name=f"relu{index}")(x)
        else:
            x = layers.Conv2D(filters, kernel, activation="relu", name=f"conv{index}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    # float32 probabilities even under a mixed-precision policy (Keras' mixed-precision guide)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name or f"allgray_cnn_{conv_layers}conv")


def position_cnn(input_shape, num_classes=2, filters=(16, 32, 64), dropout=0.5,
                 batch_norm_momentum=BATCH_NORM_MOMENTUM, invert=True, name="position_cnn"):  # fmt: skip
    """[Conv 3x3 'same' -> BN -> ReLU -> MaxPool 2] per entry of `filters` -> Flatten -> Dropout -> softmax.

    No global pooling and no hidden dense layer: the output weighs every place of the last feature map, so the
    model can tell where something is, not only that it is there (a karyogram's third chromosome 21 sits in one
    slot). Inputs in [0, 1]; `invert` maps x to 1 - x first, so a white background is zero and the dark objects
    carry the signal.
    """
    if not filters:
        raise ValueError(f"`filters` must name at least one conv block. Received: filters={filters!r}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(-1.0, offset=1.0, name="invert")(inputs) if invert else inputs
    for index, width in enumerate(filters, start=1):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{index}")(x)
        x = layers.BatchNormalization(momentum=batch_norm_momentum, name=f"bn{index}")(x)
        x = layers.ReLU(name=f"relu{index}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def gap_in_place_of_flatten(model, num_classes, dropout=0.5, name=None):
    """`position_cnn`'s `model` with global average pooling in place of its Flatten (then its own Dropout and
    softmax, named "gap", "dropout_gap", "probabilities_gap"): the same trunk, blind to where things sit (a position
    control). `name`: the model's, default `model.name + "_gap"`."""
    x = layers.GlobalAveragePooling2D(name="gap")(model.get_layer("flatten").input)
    x = layers.Dropout(dropout, name="dropout_gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities_gap")(x)
    return keras.Model(model.inputs, outputs, name=name or f"{model.name}_gap")


# ----------------------------------------------------------------------------------------------------------------
# an2dl: the three CNNs the homework tried before transfer learning (its section 6.2 names the blocks, not the sizes)


def _an2dl_input(input_shape, input_max):
    inputs = keras.Input(shape=input_shape, name="image")
    return inputs, layers.Rescaling(1.0 / input_max, name="scale")(inputs)


def _an2dl_output(x, num_classes, inputs, name):
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def _an2dl_block_cnn(block, prefix, widths, input_shape, num_classes, stem_filters, dense_units, dropout, input_max,
                     name):  # fmt: skip
    """Stride-2 3x3 stem -> `block(width)` + 2x2 max-pooling per width -> GAP -> Dense ReLU layers (each followed by
    Dropout when `dropout`) -> softmax; the shape both block CNNs of the homework share."""
    inputs, x = _an2dl_input(input_shape, input_max)
    x = layers.Conv2D(stem_filters, 3, strides=2, padding="same", activation="relu", name="stem")(x)
    for index, width in enumerate(widths, start=1):
        x = block(width, name=f"{prefix}{index}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    for index, units in enumerate(dense_units, start=1):
        x = layers.Dense(units, activation="relu", name=f"dense{index}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout{index}")(x)
    return _an2dl_output(x, num_classes, inputs, name)


def an2dl_plain_cnn(
    input_shape=(96, 96, 3),
    num_classes=8,
    filters=(32, 64, 128, 128, 256),
    dense_units=(512, 256, 128, 64, 32),
    l2=1e-4,
    input_max=255.0,
    name="an2dl_plain_cnn",
):
    """an2dl's first CNN: 5 x [Conv 3x3 ReLU -> MaxPool 2] -> Flatten -> 5 Dense ReLU (512 down to 32) -> softmax.

    The convolutions use GlorotNormal initialisation and L2, the dense layers L2, as the report says; it gives
    neither the filters nor the L2 factor (ours: `filters`, 1e-4). Inputs in [0, input_max] are rescaled inside.
    """
    regularizer = keras.regularizers.L2(l2) if l2 else None
    inputs, x = _an2dl_input(input_shape, input_max)
    for index, width in enumerate(filters, start=1):
        x = layers.Conv2D(
            width, 3, padding="same", activation="relu", kernel_initializer="glorot_normal",
            kernel_regularizer=regularizer, name=f"conv{index}",
        )(x)  # fmt: skip
        x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    for index, units in enumerate(dense_units, start=1):
        x = layers.Dense(units, activation="relu", kernel_regularizer=regularizer, name=f"dense{index}")(x)
    return _an2dl_output(x, num_classes, inputs, name)


def an2dl_residual_cnn(
    input_shape=(96, 96, 3),
    num_classes=8,
    filters=(32, 64, 128),
    stem_filters=16,
    dense_units=(256, 128),
    dropout=0.5,
    input_max=255.0,
    name="an2dl_residual_cnn",
    batch_norm_momentum=BATCH_NORM_MOMENTUM,
):
    """an2dl's second CNN: three residual blocks, 32 -> 64 -> 128 filters, then dense layers with dropout.

    Ours around the report's blocks: a stride-2 3x3 stem, a 2x2 max-pooling after each block, global average
    pooling, Dense 256 and 128 (ReLU, each followed by Dropout 0.5), softmax. `batch_norm_momentum`: of the
    blocks' BatchNormalization, 0.9 by default (`medcnn.models.blocks.BATCH_NORM_MOMENTUM`).
    """
    block = functools.partial(ResidualBlock, batch_norm_momentum=batch_norm_momentum)
    return _an2dl_block_cnn(
        block, "residual", filters, input_shape, num_classes, stem_filters, dense_units, dropout, input_max,
        name,
    )  # fmt: skip


def an2dl_inception_cnn(
    input_shape=(96, 96, 3),
    num_classes=8,
    branch_filters=(16, 32, 32, 64),
    stem_filters=32,
    dense_units=(256, 128, 64),
    input_max=255.0,
    name="an2dl_inception_cnn",
):
    """an2dl's third CNN: four inception blocks (1x1, 3x3, 5x5 and pooling branches, concatenated), then dense
    layers of decreasing width.

    Ours around the report's blocks: a stride-2 3x3 stem, a 2x2 max-pooling after each block, global average
    pooling, Dense 256, 128, 64 (ReLU), softmax.
    """
    return _an2dl_block_cnn(
        InceptionModule, "inception", branch_filters, input_shape, num_classes, stem_filters, dense_units, None,
        input_max, name,
    )  # fmt: skip


AN2DL_CNNS = {"plain": an2dl_plain_cnn, "residual": an2dl_residual_cnn, "inception": an2dl_inception_cnn}
