"""CNNs trained from scratch: the allgray study's small CNN."""

import keras
from keras import layers

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
    batch_norm_momentum=0.99,
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
        batch_norm_momentum: momentum of the moving statistics. Keras' 0.99 needs hundreds of steps to track the
            batch statistics; at ~34 steps per epoch 0.9 lets validation (inference mode) follow training.

    Padding is 'valid' (Keras' default; the paper does not say).
    """
    if not 1 <= conv_layers <= 4:
        raise ValueError(f"`conv_layers` must be between 1 and 4. Received: conv_layers={conv_layers}")
    blocks = list(ALLGRAY_CONV_BLOCKS[:conv_layers]) + [(128, 3)] * max(0, conv_layers - len(ALLGRAY_CONV_BLOCKS))
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
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
