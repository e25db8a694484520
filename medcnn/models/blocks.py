"""Blocks for the chromosome ablation: a small baseline CNN into which one block (or a combination) is switched in.

The chromosome study (2022) lists techniques without numbers: residual connections, inception modules, dense
blocks, attention, separable convolutions, batch normalisation, spatial pyramid pooling, dropout, recurrent layers
over image rows and deformable convolutions. `baseline_cnn(block=...)` adds one of them to the same baseline, so
an ablation table compares each alone, on the same data and budget; `block=(...)` combines several (one per slot,
except feature blocks, which stack).

Baseline (`filters=(32, 64, 128)`, 'same' padding):

    image -> [Conv 32 3x3 ReLU -> MaxPool 2] -> [Conv 64 3x3 ReLU -> MaxPool 2] -> (features slot)
          -> Conv 128 3x3 ReLU -> (pooling slot: GlobalAveragePooling) -> (head slot) -> Dense softmax

Each entry of `ABLATION_BLOCKS` says where its block goes:
- "features": a layer inserted after the second stage (residual, inception, dense, se, cbam, deformable);
- "conv": changes every conv unit (batch_norm: Conv -> BN -> ReLU; separable: SeparableConv2D after the first);
- "pooling": replaces the global average pooling (spp, recurrent);
- "head": a layer before the output (dropout).
"""

from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers, ops

from medcnn.models.deformable import DeformableConv2D

RNN_CELLS = ("gru", "lstm")
SLOTS = ("features", "conv", "pooling", "head")
# Momentum of every BatchNormalization's moving mean and variance here (Keras' default is 0.99). On crops with a
# black background a conv layer's batch variance is about 1e-3 while the moving variance starts at 1; with 0.99
# the start still weighs 0.99 ** 300 = 0.05 after 300 steps, so at inference (validation included) the model sees
# activations shrunk towards zero and sits at chance for the first epochs of a small data set. With 0.9 it weighs
# 0.05 after 29 steps. `medcnn.train.bn_warmup_epochs` turns a momentum into the epochs early stopping should wait.
BATCH_NORM_MOMENTUM = 0.9


def _momentum(value):
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < 1.0):
        raise ValueError(f"`batch_norm_momentum` must be a float in [0, 1). Received: batch_norm_momentum={value!r}")
    return float(value)


def _positive_int(value, name):
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
    return value


def _build_chain(chain, input_shape):
    """Build sequential sub-layers one after the other; return the last output shape."""
    shape = input_shape
    for layer in chain:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape


def _run_chain(chain, inputs, training=None):
    x = inputs
    for layer in chain:
        x = layer(x, training=training) if isinstance(layer, layers.BatchNormalization) else layer(x)
    return x


@keras.saving.register_keras_serializable(package="medcnn")
class ResidualBlock(layers.Layer):
    """Residual block (He et al. 2016): `relu(BN(conv(relu(BN(conv(x))))) + shortcut(x))`.

    The shortcut is the identity when the input already has `filters` channels, else a 1x1 conv + BN.

    Args:
        filters: int > 0, output channels.
        kernel_size: int > 0, size of both convolutions. Defaults to 3.
        batch_norm_momentum: float in [0, 1), momentum of the BatchNormalization moving statistics; near 1 they
            follow the data slowly (Keras' 0.99), 0 keeps only the last batch. Defaults to 0.9
            (`BATCH_NORM_MOMENTUM`).

    Inputs: 4D (NHWC). Output: 4D (N, H, W, filters).
    """

    def __init__(self, filters, kernel_size=3, batch_norm_momentum=BATCH_NORM_MOMENTUM, **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = _positive_int(kernel_size, "kernel_size")
        self.batch_norm_momentum = _momentum(batch_norm_momentum)
        self.residual = [
            layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name="conv1"),
            layers.BatchNormalization(momentum=self.batch_norm_momentum, name="bn1"),
            layers.ReLU(name="relu1"),
            layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name="conv2"),
            layers.BatchNormalization(momentum=self.batch_norm_momentum, name="bn2"),
        ]
        self.shortcut = []

    def build(self, input_shape):
        _build_chain(self.residual, input_shape)
        if input_shape[-1] != self.filters:
            self.shortcut = [
                layers.Conv2D(self.filters, 1, use_bias=False, name="shortcut_conv"),
                layers.BatchNormalization(momentum=self.batch_norm_momentum, name="shortcut_bn"),
            ]
            _build_chain(self.shortcut, input_shape)

    def call(self, inputs, training=None):
        return ops.relu(_run_chain(self.residual, inputs, training) + _run_chain(self.shortcut, inputs, training))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = {
            "filters": self.filters, "kernel_size": self.kernel_size, "batch_norm_momentum": self.batch_norm_momentum,
        }  # fmt: skip
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="medcnn")
class InceptionModule(layers.Layer):
    """Inception module (Szegedy et al. 2015): four parallel branches, concatenated on channels.

    Branches: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max-pool -> 1x1. Each conv is followed by ReLU.

    Args:
        branch_filters: int > 0, channels of each branch. Defaults to 16.

    Inputs: 4D (NHWC). Output: 4D (N, H, W, 4 * branch_filters).
    """

    def __init__(self, branch_filters=16, **kwargs):
        super().__init__(**kwargs)
        self.branch_filters = _positive_int(branch_filters, "branch_filters")

        def conv(size, name):
            return layers.Conv2D(branch_filters, size, padding="same", activation="relu", name=name)

        self.branches = [
            [conv(1, "b1_1x1")],
            [conv(1, "b3_reduce"), conv(3, "b3_3x3")],
            [conv(1, "b5_reduce"), conv(5, "b5_5x5")],
            [layers.MaxPooling2D(3, strides=1, padding="same", name="pool"), conv(1, "pool_proj")],
        ]

    def build(self, input_shape):
        for branch in self.branches:
            _build_chain(branch, input_shape)

    def call(self, inputs):
        return ops.concatenate([_run_chain(branch, inputs) for branch in self.branches], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 4 * self.branch_filters)

    def get_config(self):
        return {**super().get_config(), "branch_filters": self.branch_filters}


@keras.saving.register_keras_serializable(package="medcnn")
class DenseBlock(layers.Layer):
    """Dense block (Huang et al. 2017): each unit BN -> ReLU -> 3x3 conv sees all earlier outputs, concatenated.

    Args:
        num_layers: int > 0, number of BN-ReLU-conv units. Defaults to 3.
        growth_rate: int > 0, channels each unit adds. Defaults to 16.
        batch_norm_momentum: float in [0, 1), momentum of the BatchNormalization moving statistics, as in
            `ResidualBlock`. Defaults to 0.9 (`BATCH_NORM_MOMENTUM`).

    Inputs: 4D (NHWC) with C channels. Output: 4D (N, H, W, C + num_layers * growth_rate).
    """

    def __init__(self, num_layers=3, growth_rate=16, batch_norm_momentum=BATCH_NORM_MOMENTUM, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = _positive_int(num_layers, "num_layers")
        self.growth_rate = _positive_int(growth_rate, "growth_rate")
        self.batch_norm_momentum = _momentum(batch_norm_momentum)
        self.units = [
            [
                layers.BatchNormalization(momentum=self.batch_norm_momentum, name=f"bn{index}"),
                layers.ReLU(name=f"relu{index}"),
                layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"conv{index}"),
            ]
            for index in range(1, num_layers + 1)
        ]

    def build(self, input_shape):
        channels = input_shape[-1]
        for unit in self.units:
            _build_chain(unit, (*input_shape[:-1], channels))
            channels += self.growth_rate

    def call(self, inputs, training=None):
        x = inputs
        for unit in self.units:
            x = ops.concatenate([x, _run_chain(unit, x, training)], axis=-1)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.num_layers * self.growth_rate)

    def get_config(self):
        config = {
            "num_layers": self.num_layers, "growth_rate": self.growth_rate,
            "batch_norm_momentum": self.batch_norm_momentum,
        }  # fmt: skip
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="medcnn")
class SqueezeExcitation(layers.Layer):
    """Squeeze-and-excitation attention (Hu et al. 2018): channels rescaled by `sigmoid(MLP(GAP(x)))`.

    Args:
        ratio: int > 0, reduction of the hidden layer: `max(1, channels // ratio)` units. Defaults to 8.

    Inputs: 4D (NHWC). Output: the same shape, each channel multiplied by a weight in (0, 1).
    """

    def __init__(self, ratio=8, **kwargs):
        super().__init__(**kwargs)
        self.ratio = _positive_int(ratio, "ratio")

    def build(self, input_shape):
        channels = input_shape[-1]
        self.squeeze = layers.Dense(max(1, channels // self.ratio), activation="relu", name="squeeze")
        self.excite = layers.Dense(channels, activation="sigmoid", name="excite")
        _build_chain([self.squeeze, self.excite], (input_shape[0], channels))

    def call(self, inputs):
        weights = self.excite(self.squeeze(ops.mean(inputs, axis=(1, 2))))
        return inputs * weights[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio}


@keras.saving.register_keras_serializable(package="medcnn")
class CBAM(layers.Layer):
    """Convolutional block attention module (Woo et al. 2018): channel attention, then spatial attention.

    Channel: `sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))`, one shared MLP. Spatial: `sigmoid(conv7x7([mean_c(x),
    max_c(x)]))`, one weight per pixel.

    Args:
        ratio: int > 0, reduction of the shared MLP's hidden layer. Defaults to 8.
        kernel_size: int > 0, size of the spatial attention conv. Defaults to 7.

    Inputs: 4D (NHWC). Output: the same shape.
    """

    def __init__(self, ratio=8, kernel_size=7, **kwargs):
        super().__init__(**kwargs)
        self.ratio = _positive_int(ratio, "ratio")
        self.kernel_size = _positive_int(kernel_size, "kernel_size")
        self.spatial = layers.Conv2D(1, kernel_size, padding="same", activation="sigmoid", name="spatial")

    def build(self, input_shape):
        channels = input_shape[-1]
        self.mlp = [
            layers.Dense(max(1, channels // self.ratio), activation="relu", name="mlp_hidden"),
            layers.Dense(channels, name="mlp_out"),
        ]
        _build_chain(self.mlp, (input_shape[0], channels))
        self.spatial.build((*input_shape[:-1], 2))

    def call(self, inputs):
        channel_logits = _run_chain(self.mlp, ops.mean(inputs, axis=(1, 2))) + _run_chain(
            self.mlp, ops.max(inputs, axis=(1, 2))
        )
        x = inputs * ops.sigmoid(channel_logits)[:, None, None, :]
        pooled = ops.concatenate([ops.mean(x, axis=-1, keepdims=True), ops.max(x, axis=-1, keepdims=True)], axis=-1)
        return x * self.spatial(pooled)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="medcnn")
class SpatialPyramidPooling(layers.Layer):
    """Spatial pyramid pooling (He et al. 2014): max-pool into n x n bins for each n in `bins`, flatten, concatenate.

    Bin `i` of `n` along an axis of length L covers `[floor(i L / n), ceil((i + 1) L / n))`, so bins overlap by at
    most one pixel and cover every pixel. Needs static height and width.

    Args:
        bins: tuple of ints > 0, bins per side at each level. Defaults to (1, 2, 4).

    Inputs: 4D (NHWC) with H, W >= max(bins). Output: 2D (N, C * sum(n * n for n in bins)).
    """

    def __init__(self, bins=(1, 2, 4), **kwargs):
        super().__init__(**kwargs)
        bins = tuple(bins) if isinstance(bins, (tuple, list)) else (bins,)
        if not bins or not all(isinstance(n, int) and n > 0 for n in bins):
            raise ValueError(f"`bins` must be a non-empty tuple of positive ints. Received: bins={bins!r}")
        self.bins = bins

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if height is None or width is None or min(height, width) < max(self.bins):
            raise ValueError(
                f"SpatialPyramidPooling needs static height and width of at least max(bins)={max(self.bins)}. "
                f"Received: input_shape={input_shape}"
            )

    @staticmethod
    def _edges(length, count):
        return [((i * length) // count, -(-((i + 1) * length) // count)) for i in range(count)]

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        pooled = []
        for count in self.bins:
            for top, bottom in self._edges(height, count):
                for left, right in self._edges(width, count):
                    pooled.append(ops.max(inputs[:, top:bottom, left:right, :], axis=(1, 2)))
        return ops.concatenate(pooled, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] * sum(n * n for n in self.bins))

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}


@keras.saving.register_keras_serializable(package="medcnn")
class RowRecurrent(layers.Layer):
    """A recurrent layer over image rows: the rows of a feature map, top to bottom, as a sequence into a GRU/LSTM.

    `(N, H, W, C)` is read as H time steps of `W * C` features; the last hidden state is the output.

    Args:
        units: int > 0, hidden size. Defaults to 64.
        cell: "gru" or "lstm". Defaults to "gru".
        bidirectional: also read bottom to top and concatenate both states. Defaults to False.

    Inputs: 4D (NHWC) with static W and C. Output: 2D (N, units), or (N, 2 * units) when bidirectional.
    """

    def __init__(self, units=64, cell="gru", bidirectional=False, **kwargs):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "units")
        if cell not in RNN_CELLS:
            raise ValueError(f"`cell` must be one of {RNN_CELLS}. Received: cell={cell!r}")
        self.cell = cell
        self.bidirectional = bool(bidirectional)
        recurrent = (layers.GRU if cell == "gru" else layers.LSTM)(units, name=cell)
        self.rnn = layers.Bidirectional(recurrent, name="bidirectional") if self.bidirectional else recurrent

    def build(self, input_shape):
        if input_shape[2] is None or input_shape[3] is None:
            raise ValueError(f"RowRecurrent needs static width and channels. Received: input_shape={input_shape}")
        self.rnn.build((input_shape[0], input_shape[1], input_shape[2] * input_shape[3]))

    def call(self, inputs, training=None):
        sequence = ops.reshape(inputs, (-1, inputs.shape[1], inputs.shape[2] * inputs.shape[3]))
        return self.rnn(sequence, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units * (2 if self.bidirectional else 1))

    def get_config(self):
        config = {"units": self.units, "cell": self.cell, "bidirectional": self.bidirectional}
        return {**super().get_config(), **config}


@dataclass(frozen=True)
class AblationBlock:
    """How one block enters `baseline_cnn`.

    `slot` is one of SLOTS. For "conv", `make(filters, name)` returns the layers of one conv unit (replacing
    Conv -> ReLU); for the other slots `make(channels, **options)` returns one layer, given the channels reaching it.
    """

    slot: str
    make: Callable
    description: str


def _conv_unit(filters, name):
    return [layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)]


def _bn_conv_unit(filters, name, batch_norm_momentum=BATCH_NORM_MOMENTUM):
    return [
        layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name),
        layers.BatchNormalization(momentum=_momentum(batch_norm_momentum), name=f"{name}_bn"),
        layers.ReLU(name=f"{name}_relu"),
    ]


def _separable_conv_unit(filters, name):
    return [layers.SeparableConv2D(filters, 3, padding="same", activation="relu", name=name)]


def _residual(channels, filters=None, batch_norm_momentum=BATCH_NORM_MOMENTUM):
    return ResidualBlock(filters or channels, batch_norm_momentum=batch_norm_momentum, name="residual")


def _inception(channels, branch_filters=None):
    return InceptionModule(branch_filters or max(1, channels // 4), name="inception")


def _dense(channels, num_layers=3, growth_rate=16, batch_norm_momentum=BATCH_NORM_MOMENTUM):
    return DenseBlock(num_layers, growth_rate, batch_norm_momentum, name="dense")


def _se(channels, ratio=8):
    return SqueezeExcitation(ratio, name="se")


def _cbam(channels, ratio=8, kernel_size=7):
    return CBAM(ratio, kernel_size, name="cbam")


def _deformable(channels, filters=None, modulated=False):
    return DeformableConv2D(filters or channels, 3, activation="relu", modulated=modulated, name="deformable")


def _spp(channels, bins=(1, 2, 4)):
    return SpatialPyramidPooling(bins, name="spp")


def _recurrent(channels, units=64, cell="gru", bidirectional=False):
    return RowRecurrent(units, cell, bidirectional, name="row_recurrent")


def _dropout(channels, rate=0.5, seed=None):
    return layers.Dropout(rate, seed=seed, name="dropout")


ABLATION_BLOCKS = {
    "residual": AblationBlock("features", _residual, "residual block (two 3x3 convs + shortcut)"),
    "inception": AblationBlock("features", _inception, "inception module (1x1, 3x3, 5x5, pool branches)"),
    "dense": AblationBlock("features", _dense, "dense block (3 BN-ReLU-conv units, growth 16)"),
    "se": AblationBlock("features", _se, "squeeze-and-excitation channel attention"),
    "cbam": AblationBlock("features", _cbam, "CBAM channel + spatial attention"),
    "deformable": AblationBlock("features", _deformable, "deformable 3x3 convolution (learned offsets)"),
    "batch_norm": AblationBlock("conv", _bn_conv_unit, "batch normalisation after every convolution"),
    "separable": AblationBlock("conv", _separable_conv_unit, "depthwise-separable convolutions (after the first)"),
    "spp": AblationBlock("pooling", _spp, "spatial pyramid pooling (1, 2, 4 bins) instead of global average pooling"),
    "recurrent": AblationBlock("pooling", _recurrent, "GRU over feature-map rows instead of global average pooling"),
    "dropout": AblationBlock("head", _dropout, "dropout 0.5 before the output layer"),
}


def _as_blocks(block):
    """`block` (None, a name, or a sequence of names) as a tuple of names, checked against `ABLATION_BLOCKS`."""
    blocks = () if block is None else (block,) if isinstance(block, str) else tuple(block)
    unknown = [name for name in blocks if name not in ABLATION_BLOCKS]
    if unknown:
        raise ValueError(
            f"Unknown ablation block. Expected None, one of {sorted(ABLATION_BLOCKS)} or a tuple of them. "
            f"Received: block={block!r}"
        )
    slots = [ABLATION_BLOCKS[name].slot for name in blocks]
    crowded = sorted({slot for slot in slots if slot != "features" and slots.count(slot) > 1})
    if len(set(blocks)) != len(blocks) or crowded:
        raise ValueError(
            "A combination holds each block once and at most one block per slot, except 'features' blocks, which "
            f"stack in the order given (slots: {dict(zip(blocks, slots))}). Received: block={block!r}"
        )
    return blocks


# The blocks that put BatchNormalization (trained from scratch, momentum `BATCH_NORM_MOMENTUM`) into the baseline.
BATCH_NORM_BLOCKS = ("residual", "dense", "batch_norm")


def uses_batch_norm(block):
    """True when `baseline_cnn(block=block)` holds BatchNormalization: `block` (None, a name or a tuple of names)
    switches in one of `BATCH_NORM_BLOCKS`. Early stopping then waits for the moving statistics
    (`medcnn.train.bn_warmup_epochs`)."""
    return any(name in BATCH_NORM_BLOCKS for name in _as_blocks(block))


def greedy_combination(gains, size=3, beyond=None):
    """The blocks to combine, from {block: gain over the baseline} largest first: greedily by gain, only gains > 0
    (and, with `beyond`, only blocks in it: those whose gain is beyond noise), one block per `AblationBlock.slot`
    except feature blocks (in the order chosen), at most `size`; at least the best single block, even when no block
    beat the baseline."""
    chosen, taken = [], set()
    for block, gain in gains.items():
        slot = ABLATION_BLOCKS[block].slot
        if len(chosen) == size or (chosen and gain <= 0):
            break
        if chosen and beyond is not None and block not in beyond:
            continue
        if slot != "features" and slot in taken:
            continue
        chosen.append(block)
        taken.add(slot)
    return tuple(chosen)


def baseline_cnn(
    input_shape,
    num_classes,
    block=None,
    filters=(32, 64, 128),
    name=None,
    batch_norm_momentum=BATCH_NORM_MOMENTUM,
    **block_options,
):
    """The ablation's baseline CNN, with one block of `ABLATION_BLOCKS` switched in, or a combination of them.

    Args:
        input_shape: (H, W, C) with H, W >= 16 (two 2x2 poolings, then room for the block), values in [0, 1].
        num_classes: int >= 2, size of the softmax output.
        block: None for the baseline, a key of `ABLATION_BLOCKS`, or a tuple of keys for a combination: at most
            one block per slot, except "features" blocks, which are stacked in the order given (e.g.
            `("batch_norm", "se", "spp")`).
        filters: channels of the three conv stages. Defaults to (32, 64, 128).
        name: the model's name; defaults to "baseline" or "baseline_<block>[_<block>...]".
        batch_norm_momentum: float in [0, 1), momentum of the moving statistics of every BatchNormalization the
            blocks bring (`BATCH_NORM_BLOCKS`). Defaults to 0.9 (`BATCH_NORM_MOMENTUM`, where the reason is).
        **block_options: the settings of a single block (the keyword arguments of its builder in this module),
            e.g. `rate=0.3` for "dropout", `units=32` for "recurrent"; an unknown one raises TypeError.

    Returns:
        keras.Model mapping images to class probabilities.
    """
    blocks = _as_blocks(block)
    if not (isinstance(num_classes, int) and num_classes >= 2):
        raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}")
    if len(filters) != 3:
        raise ValueError(f"`filters` must hold three ints, one per conv stage. Received: filters={filters!r}")
    by_slot = {}
    for block_name in blocks:
        by_slot.setdefault(ABLATION_BLOCKS[block_name].slot, []).append(block_name)
    if block_options and (len(blocks) != 1 or "conv" in by_slot):
        raise ValueError(
            "Block options apply only to a single block with settings. "
            f"Received: block={block!r}, options={block_options}"
        )

    def make(block_name, channels):
        momentum = {"batch_norm_momentum": batch_norm_momentum} if block_name in BATCH_NORM_BLOCKS else {}
        return ABLATION_BLOCKS[block_name].make(channels, **momentum, **block_options)

    conv_block = by_slot.get("conv", [None])[0]
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for index, stage_filters in enumerate(filters, start=1):
        if conv_block is not None and (conv_block != "separable" or index > 1):
            momentum = {"batch_norm_momentum": batch_norm_momentum} if conv_block in BATCH_NORM_BLOCKS else {}
            unit = ABLATION_BLOCKS[conv_block].make(stage_filters, f"conv{index}", **momentum)
        else:
            unit = _conv_unit(stage_filters, f"conv{index}")
        for layer in unit:
            x = layer(x)
        if index < len(filters):
            x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
        if index == 2:
            for block_name in by_slot.get("features", []):
                x = make(block_name, x.shape[-1])(x)
    if "pooling" in by_slot:
        x = make(by_slot["pooling"][0], x.shape[-1])(x)
    else:
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    if "head" in by_slot:
        x = make(by_slot["head"][0], x.shape[-1])(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name or "_".join(("baseline", *blocks)))
