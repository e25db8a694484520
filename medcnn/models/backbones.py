"""Backbone registry: name -> keras.applications model, its preprocessing, sizes, weight file and named blocks.

Named blocks make "train the last N blocks" mean the same thing to every caller. A block is a run of
`model.layers` (a Functional model lists its layers in topological order) from its first layer to the layer before
the next block. Where Keras names the first layer, the block starts at the first layer whose name starts with
`Block.prefix` ("block5_" in VGG, "conv5_" in ResNet); where that layer is auto-named (InceptionV3's branches,
conv2d_N), it starts right after a named layer, `Block.after` (the "mixed8" concatenation ends block mixed8, so
block mixed9 starts after it). The first block takes everything before the second, stem included.

Preprocessing per family, for inputs in [0, input_max] (Keras' `preprocess_input` expects [0, 255]):
- "caffe" (VGG16, VGG19, ResNet50): RGB -> BGR, minus the ImageNet mean per channel, no scaling;
- "tf" (InceptionV3, Xception, InceptionResNetV2, ResNet101V2, MobileNetV2): scale to [-1, 1];
- "torch" (DenseNet121): scale to [0, 1], minus mean, divided by std per channel (ImageNet statistics);
- "none" (EfficientNetB0): the model rescales and normalises inside itself; it expects [0, 255].
`preprocessing_layers(mode)` builds each as serialisable layers: one `Rescaling` with per-channel scale and offset
(plus `ReverseChannels` for caffe). They hold no weights, so Keras' h5 weight files still load by position.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import applications, layers, ops

from medcnn.models.weights import (
    WeightsInfo,
    WeightsUnavailableError,
    resolve_weights_file,
    weights_file_info,
)

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)  # sizes Keras has MobileNetV2 ImageNet files for
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)  # torch mode, on [0, 1]
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # caffe mode, on [0, 255]
PREPROCESS_MODES = ("caffe", "tf", "torch", "none")


@dataclass(frozen=True)
class Block:
    """A named block: it starts at the first layer named `prefix*`, or right after the layer named `after`.

    With neither, the block starts at the model's first layer (only valid for the first block).
    """

    name: str
    prefix: str | None = None
    after: str | None = None


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry.

    name: registry key. constructor: the keras.applications function. preprocess_input: the family's Keras
    function, for arrays (the model itself uses `preprocess_mode`). min_size / default_size: smallest and native
    input side in pixels. weights_file / weights_url / weights_hash: Keras' include_top=False ImageNet file (for
    MobileNetV2 `weights_file` has a `{size}` field, see `weights_file_for`). blocks: named blocks, input to
    output. output_layer: the name of the model's last layer, used to recognise a built backbone.
    """

    name: str
    constructor: Callable
    preprocess_input: Callable
    preprocess_mode: str
    min_size: int
    default_size: int
    weights_file: str
    weights_url: str
    weights_hash: str | None
    blocks: tuple
    output_layer: str

    def weights_size(self, input_shape):
        """The input size of the ImageNet file Keras picks: MobileNetV2 has files for square 96..224 inputs and
        takes the 224 one otherwise; the others have one file for every size (returned as None)."""
        if self.name != "mobilenet_v2":
            return None
        rows, cols = input_shape[0], input_shape[1]
        return rows if rows == cols and rows in MOBILENET_V2_SIZES else 224

    def weights_file_for(self, input_shape):
        """The file Keras downloads for this input shape."""
        return self.weights_file.format(size=self.weights_size(input_shape))

    def weights_url_for(self, input_shape):
        """Where Keras downloads that file from."""
        return self.weights_url.format(size=self.weights_size(input_shape))

    def imagenet_file_names(self):
        """Every name Keras gives this backbone's ImageNet files (MobileNetV2 has one per size)."""
        return tuple(dict.fromkeys(self.weights_file.format(size=size) for size in MOBILENET_V2_SIZES))


def _numbered(names, prefix_format):
    return tuple(Block(name, prefix=prefix_format.format(name=name)) for name in names)


def _vgg_blocks():
    return (Block("block1"), *_numbered([f"block{i}" for i in range(2, 6)], "{name}_"))


def _resnet_blocks():
    return (Block("conv1"), *_numbered([f"conv{i}" for i in range(2, 6)], "{name}_"))


def _inception_v3_blocks():
    return (Block("mixed0"), *(Block(f"mixed{i}", after=f"mixed{i - 1}") for i in range(1, 11)))


def _inception_resnet_v2_blocks():
    blocks, previous = [Block("mixed_5b")], "mixed_5b"
    for group, count, reduction in (("block35", 10, "mixed_6a"), ("block17", 20, "mixed_7a"), ("block8", 10, None)):
        for index in range(1, count + 1):
            blocks.append(Block(f"{group}_{index}", after=previous))
            previous = f"{group}_{index}_ac"
        if reduction:
            blocks.append(Block(reduction, after=previous))
            previous = reduction
    blocks.append(Block("conv_7b", prefix="conv_7b"))  # block8_10 has no activation: start at conv_7b itself
    return tuple(blocks)


def _mobilenet_v2_blocks():
    blocks = [Block("Conv1"), Block("expanded_conv", prefix="expanded_conv_")]
    blocks += [Block(f"block_{i}", prefix=f"block_{i}_") for i in range(1, 17)]
    return (*blocks, Block("Conv_1", prefix="Conv_1"))


def _efficientnet_b0_blocks():
    repeats = (1, 2, 2, 3, 3, 4, 1)  # EfficientNetB0 blocks per stage
    names = [f"block{stage}{chr(ord('a') + i)}" for stage, count in enumerate(repeats, start=1) for i in range(count)]
    return (Block("stem"), *_numbered(names, "{name}_"), Block("top", prefix="top_"))


def _keras_file(folder, file_name, base=KERAS_WEIGHTS_URL):
    """(file name, URL) of a Keras weights file in `folder` of Keras' storage."""
    return file_name, f"{base}{folder}/{file_name}"


_SPECS = (
    BackboneSpec(
        "vgg16", applications.VGG16, applications.vgg16.preprocess_input, "caffe", 32, 224,
        *_keras_file("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        "6d6bbae143d832006294945121d1f1fc", _vgg_blocks(), "block5_pool"),
    BackboneSpec(
        "vgg19", applications.VGG19, applications.vgg19.preprocess_input, "caffe", 32, 224,
        *_keras_file("vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        "253f8cb515780f3b799900260a226db6", _vgg_blocks(), "block5_pool"),
    BackboneSpec(
        "inception_v3", applications.InceptionV3, applications.inception_v3.preprocess_input, "tf", 75, 299,
        *_keras_file("inception_v3", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        "bcbd6486424b2319ff4ef7d526e38f63", _inception_v3_blocks(), "mixed10"),
    BackboneSpec(
        "resnet50", applications.ResNet50, applications.resnet50.preprocess_input, "caffe", 32, 224,
        *_keras_file("resnet", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        "4d473c1dd8becc155b73f8504c6f6626", _resnet_blocks(), "conv5_block3_out"),
    BackboneSpec(
        "resnet101v2", applications.ResNet101V2, applications.resnet_v2.preprocess_input, "tf", 32, 224,
        *_keras_file("resnet", "resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        "c0ed64b8031c3730f411d2eb4eea35b5", _resnet_blocks(), "post_relu"),
    BackboneSpec(
        "xception", applications.Xception, applications.xception.preprocess_input, "tf", 71, 299,
        *_keras_file("xception", "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        "b0042744bf5b25fce3cb969f33bebb97",
        (Block("block1"), *_numbered([f"block{i}" for i in range(2, 15)], "{name}_")), "block14_sepconv2_act"),
    BackboneSpec(
        "inception_resnet_v2", applications.InceptionResNetV2, applications.inception_resnet_v2.preprocess_input,
        "tf", 75, 299,
        *_keras_file("inception_resnet_v2", "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        "d19885ff4a710c122648d3b5c3b684e4", _inception_resnet_v2_blocks(), "conv_7b_ac"),
    BackboneSpec(
        "mobilenet_v2", applications.MobileNetV2, applications.mobilenet_v2.preprocess_input, "tf", 32, 224,
        *_keras_file("mobilenet_v2", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5"),
        None, _mobilenet_v2_blocks(), "out_relu"),
    BackboneSpec(
        "efficientnet_b0", applications.EfficientNetB0, applications.efficientnet.preprocess_input, "none", 32, 224,
        "efficientnetb0_notop.h5", "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
        "50bc09e76180e00e4465e1a485ddc09d", _efficientnet_b0_blocks(), "top_activation"),
    BackboneSpec(
        "densenet121", applications.DenseNet121, applications.densenet.preprocess_input, "torch", 32, 224,
        *_keras_file("densenet", "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        "30ee3e1110167f948a6b9946edeeb738", _resnet_blocks(), "relu"),
)  # fmt: skip
BACKBONES = {spec.name: spec for spec in _SPECS}


def _key(name):
    return str(name).lower().replace("_", "").replace("-", "")


def get_backbone_spec(name):
    """The registry entry for `name`; case, '_' and '-' are ignored ("InceptionV3" == "inception_v3")."""
    for spec in _SPECS:
        if _key(spec.name) == _key(name):
            return spec
    raise ValueError(f"Unknown backbone. Expected one of {sorted(BACKBONES)}. Received: name={name!r}")


@keras.saving.register_keras_serializable(package="medcnn")
class ReverseChannels(layers.Layer):
    """Reverse the channel axis (RGB <-> BGR), as caffe-mode preprocessing needs.

    Inputs: 4D (NHWC). Output: the same shape, channels in reverse order.
    """

    def call(self, inputs):
        return ops.flip(inputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape


def preprocessing_layers(mode, input_max=255.0):
    """Layers equal to Keras' `preprocess_input` of family `mode`, for inputs in [0, input_max].

    They compute in float32 whatever the dtype policy. See the module docstring for the modes.
    """
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"`mode` must be one of {PREPROCESS_MODES}. Received: mode={mode!r}")
    if not (isinstance(input_max, (int, float)) and input_max > 0):
        raise ValueError(f"`input_max` must be a positive number, e.g. 255 or 1. Received: input_max={input_max!r}")
    to_255 = 255.0 / input_max
    if mode == "tf":
        return [layers.Rescaling(2.0 / input_max, offset=-1.0, dtype="float32", name="preprocess_tf")]
    if mode == "torch":
        scale = [1.0 / (input_max * std) for std in IMAGENET_STD_RGB]
        offset = [-mean / std for mean, std in zip(IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)]
        return [layers.Rescaling(scale, offset=offset, dtype="float32", name="preprocess_torch")]
    if mode == "caffe":
        offset = [-mean for mean in CAFFE_MEAN_BGR]
        return [
            ReverseChannels(dtype="float32", name="rgb_to_bgr"),
            layers.Rescaling([to_255] * 3, offset=offset, dtype="float32", name="preprocess_caffe"),
        ]
    return [] if to_255 == 1.0 else [layers.Rescaling(to_255, dtype="float32", name="preprocess_to_255")]


def _check_input_shape(spec, input_shape):
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(
            f"`input_shape` must be (height, width, 1 or 3); 1 channel is repeated to RGB. "
            f"Received: input_shape={tuple(input_shape)}"
        )
    if min(input_shape[:2]) < spec.min_size:
        raise ValueError(
            f"{spec.name} needs inputs of at least {spec.min_size}x{spec.min_size} pixels "
            f"(native size {spec.default_size}). Received: input_shape={tuple(input_shape)}"
        )


def resolve_backbone_weights(name, input_shape, allow_random=False):
    """WeightsInfo for `name`'s ImageNet weights at `input_shape`: a local file, a download, or random."""
    spec = get_backbone_spec(name)
    file_name = spec.weights_file_for(input_shape)
    # MobileNetV2's 224 px file fits every size: the weights of a fully convolutional backbone are size-free.
    stand_in = spec.weights_file_for((224, 224, 3))
    stand_ins = (stand_in,) if spec.name == "mobilenet_v2" and stand_in != file_name else ()
    url = spec.weights_url_for(input_shape)
    return resolve_weights_file(spec.name, file_name, url, spec.weights_hash, stand_ins, allow_random)


def weights_used(names, input_shape, allow_random=False):
    """{backbone: "imagenet" or "random"}: what each of `names` loads at `input_shape` here
    (`resolve_backbone_weights`; random only where `allow_random`)."""
    return {name: resolve_backbone_weights(name, input_shape, allow_random).used for name in names}


def _load_weights_file(spec, model, info):
    """Load `info.path` into `model`; a Keras ImageNet file ends up as what `weights="imagenet"` builds."""
    try:
        model.load_weights(info.path)
    except Exception as error:  # a wrong or damaged file, whatever the cause
        expected = (
            f"Keras' file {spec.weights_file_for(model.input_shape[1:])} (include_top=False); replace it"
            if info.used == "imagenet"
            else f"weights saved from a '{spec.name}' backbone of this input shape (`model.save_weights`)"
        )
        raise WeightsUnavailableError(
            f"Could not load {'ImageNet ' if info.used == 'imagenet' else ''}weights for '{spec.name}' from "
            f"{info.path} ({type(error).__name__}: {error}). Expected {expected}.",
            path=info.path,
            problem="weights_unreadable",
        ) from error
    if spec.name == "efficientnet_b0" and info.used == "imagenet":
        # weights="imagenet" adds Rescaling(1 / sqrt(std)) after the Normalization layer (keras issue 49930); a
        # file path does not. Folding that factor into the variance gives the same function.
        normalization = next(layer for layer in model.layers if isinstance(layer, layers.Normalization))
        variance = normalization.adapt_variance
        variance.assign(variance * ops.convert_to_tensor(IMAGENET_STD_RGB, dtype=variance.dtype))
        normalization.finalize_state()  # the layer reads a snapshot of its variables


def _load_imagenet_file(spec, model, path):
    """Load a Keras ImageNet h5 file into `model`, matching what `weights="imagenet"` builds."""
    _load_weights_file(spec, model, WeightsInfo("imagenet", str(path), "local"))


def _weights_info(spec, weights, input_shape, allow_random):
    """WeightsInfo for the `weights` argument of `build_backbone`, or None for random initialisation."""
    if weights is None:
        return None
    if isinstance(weights, str) and weights == "imagenet":
        return resolve_backbone_weights(spec.name, input_shape, allow_random)
    if isinstance(weights, (str, os.PathLike)):
        return weights_file_info(weights, spec.imagenet_file_names())
    raise ValueError(f"`weights` must be 'imagenet', None or the path of a weights file. Received: weights={weights!r}")


def build_backbone(
    name, input_shape, weights="imagenet", allow_random=False, include_preprocessing=False, input_max=255.0,
    model_name=None,
):  # fmt: skip
    """A keras.applications backbone without its top, with ImageNet or random weights.

    Args:
        name: registry name, e.g. "vgg16", "InceptionV3" (see BACKBONES).
        input_shape: (height, width, channels), channels 1 or 3; sides >= the backbone's `min_size`. A 1-channel
            input is repeated to RGB by the model's first layer.
        weights: "imagenet" (offline copy, else download; see `medcnn.models.weights`), None (random), or the
            path of a weights file, as `keras.applications` takes it: Keras' ImageNet file of that name (recorded
            as "imagenet") or weights saved from the same backbone (recorded as "file").
        allow_random: with weights="imagenet", fall back to random initialisation, with a RandomWeightsWarning,
            when no file can be had, instead of raising WeightsUnavailableError.
        include_preprocessing: put the family's preprocessing inside the model, so it takes [0, input_max] images.
            Without it the caller applies `spec.preprocess_input` (EfficientNet normalises itself either way).
        input_max: the value of a white pixel in the inputs (255 for raw images, 1 for images scaled to [0, 1]).
        model_name: the model's name. Defaults to the registry name.

    Returns:
        (model, weights_used) with weights_used "imagenet", "random" or "file". `model.weights_info` holds the
        WeightsInfo (file and source); it is not saved with the model.
    """
    spec = get_backbone_spec(name)
    input_shape = tuple(input_shape)
    _check_input_shape(spec, input_shape)
    info = _weights_info(spec, weights, input_shape, allow_random)

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if input_shape[-1] == 1:
        x = layers.Concatenate(axis=-1, name="gray_to_rgb")([x, x, x])
    if include_preprocessing:
        for layer in preprocessing_layers(spec.preprocess_mode, input_max):
            x = layer(x)
    application = spec.constructor(include_top=False, weights=None, input_tensor=x, input_shape=(*input_shape[:2], 3))
    # Re-wrapped so the model takes one tensor (built on `input_tensor`, Keras' model expects a list of one).
    model = keras.Model(inputs, application.output, name=model_name or spec.name)
    if info is not None and info.path is not None:
        _load_weights_file(spec, model, info)
    model.weights_info = info if info is not None else WeightsInfo("random")
    return model, model.weights_info.used


def identify_backbone(model):
    """The registry entry whose named blocks fit `model` (a backbone built here or by keras.applications)."""
    names = {layer.name for layer in model.layers}
    last = model.layers[-1].name

    def present(block):
        if block.after is not None:
            return block.after in names
        return block.prefix is None or any(layer_name.startswith(block.prefix) for layer_name in names)

    for spec in _SPECS:
        if last == spec.output_layer and all(present(block) for block in spec.blocks):
            return spec
    raise ValueError(
        f"Model '{model.name}' (last layer '{last}') is none of the registered backbones {sorted(BACKBONES)}."
    )


def block_layers(model, name=None):
    """The named blocks of a built backbone: a list of (block name, [layers]) from input to output.

    Args:
        model: the backbone (a Functional model from `build_backbone` or keras.applications).
        name: its registry name; recognised from the layer names when None.
    """
    spec = get_backbone_spec(name) if name is not None else identify_backbone(model)
    names = [layer.name for layer in model.layers]
    starts = []
    for index, block in enumerate(spec.blocks):
        previous = starts[-1] if starts else 0
        if block.after is not None:
            if block.after not in names:
                raise ValueError(f"{spec.name}: block '{block.name}' starts after '{block.after}', not in the model.")
            start = names.index(block.after) + 1
        elif block.prefix is not None:
            start = next((i for i in range(previous, len(names)) if names[i].startswith(block.prefix)), None)
            if start is None:
                raise ValueError(f"{spec.name}: no layer named '{block.prefix}*' for block '{block.name}'.")
        elif index == 0:
            start = 1 if isinstance(model.layers[0], layers.InputLayer) else 0
        else:
            raise ValueError(f"{spec.name}: block '{block.name}' has neither `prefix` nor `after`.")
        if starts and start <= previous:
            raise ValueError(f"{spec.name}: block '{block.name}' does not start after the block before it.")
        starts.append(start)
    ends = [*starts[1:], len(names)]
    return [(block.name, model.layers[start:end]) for block, start, end in zip(spec.blocks, starts, ends)]


def unfreeze_last_blocks(model, n, name=None, train_batch_norm=False):
    """Make the last `n` named blocks of a backbone trainable and freeze the rest.

    BatchNormalization layers stay frozen, so they run in inference mode with their ImageNet statistics (Keras'
    fine-tuning guide), unless `train_batch_norm=True`.

    Args:
        model: the backbone.
        n: int, 0 (all frozen) .. number of blocks, or "all" (every block trainable).
        name: its registry name; recognised from the layer names when None.
        train_batch_norm: let BatchNormalization layers of the unfrozen blocks train too. Defaults to False.

    Returns:
        The names of the trainable blocks, input to output.
    """
    blocks = block_layers(model, name)
    if n == "all":
        n = len(blocks)
    if not (isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= len(blocks)):
        raise ValueError(
            f"`n` must be 'all' or an int between 0 and {len(blocks)} (the backbone's named blocks). Received: n={n!r}"
        )
    if n == 0:
        model.trainable = False
        return []
    model.trainable = True
    for index, (_, block) in enumerate(blocks):
        for layer in block:
            unfrozen = index >= len(blocks) - n
            layer.trainable = unfrozen and (train_batch_norm or not isinstance(layer, layers.BatchNormalization))
    return [block_name for block_name, _ in blocks[len(blocks) - n :]]


def count_blocks(name):
    """How many named blocks the backbone `name` has."""
    return len(get_backbone_spec(name).blocks)
