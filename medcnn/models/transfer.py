"""Transfer-learning models: image -> "backbone" (preprocessing + keras.applications, no top) -> "head".

Convention other modules rely on: the model has exactly two nested sub-models, `model.get_layer("backbone")`,
which maps images (as the model receives them) to the unpooled feature map, and `model.get_layer("head")`, which
maps that feature map to probabilities. Monte Carlo dropout runs the backbone once and the head many times.
"""

import keras

from medcnn.models.backbones import (
    block_layers,
    build_backbone,
    count_blocks,
    get_backbone_spec,
    unfreeze_last_blocks,
)
from medcnn.models.heads import build_head


def transfer_model(
    backbone_name, head_spec, input_shape, weights="imagenet", allow_random=False, include_preprocessing=True,
    input_max=255.0,
):  # fmt: skip
    """A backbone with a new head; the backbone starts frozen (first stage of fine-tuning).

    Args:
        backbone_name: registry name, e.g. "vgg16" (see `medcnn.models.backbones.BACKBONES`).
        head_spec: a `medcnn.models.heads.HeadSpec`, e.g. `kth_head()`.
        input_shape: (height, width, 1 or 3); 1 channel is repeated to RGB inside the model.
        weights: "imagenet", None (random initialisation, recorded as such) or the path of a weights file (see
            `medcnn.models.backbones.build_backbone`).
        allow_random: with "imagenet", fall back to random weights (loud warning) when no file can be had.
        include_preprocessing: put the backbone family's `preprocess_input` inside the model as layers, so it
            takes images in [0, input_max]. Without it, the caller preprocesses.
        input_max: the value of a white pixel in the inputs: 255 for raw images, 1 for images scaled to [0, 1].

    Returns:
        keras.Model named "<backbone>_transfer". `model.weights_used` is "imagenet", "random" or "file", and
        `model.transfer_info` a dict with backbone, weights, weights_file, weights_source, input_shape,
        preprocessing, input_max and blocks; put it in the run's results. Neither attribute is saved with the model.
    """
    spec = get_backbone_spec(backbone_name)
    input_shape = tuple(input_shape)
    backbone, weights_used = build_backbone(
        spec.name, input_shape, weights, allow_random, include_preprocessing, input_max, model_name="backbone"
    )
    head = build_head(head_spec, backbone.output.shape[1:], name="head")
    inputs = keras.Input(shape=input_shape, name="image")
    model = keras.Model(inputs, head(backbone(inputs)), name=f"{spec.name}_transfer")
    unfreeze_last_blocks(backbone, 0, spec.name)
    model.weights_used = weights_used
    model.transfer_info = {
        "backbone": spec.name,
        **backbone.weights_info.as_dict(),
        "input_shape": list(input_shape),
        "preprocessing": spec.preprocess_mode if include_preprocessing else None,
        "input_max": float(input_max),
        "blocks": count_blocks(spec.name),
    }
    return model


def resized_input(model, input_shape, name=None):
    """`model` behind a bilinear `Resizing` (named "to_backbone_size") from `input_shape` to its own input size, e.g.
    a backbone that needs more pixels than the images have; `transfer_info` is carried over where `model` has it."""
    inputs = keras.Input(tuple(input_shape), name="image")
    resized = keras.layers.Resizing(*model.input_shape[1:3], interpolation="bilinear", name="to_backbone_size")(inputs)
    outer = keras.Model(inputs, model(resized), name=name or f"{model.name}_from_{input_shape[0]}")
    if hasattr(model, "transfer_info"):
        outer.transfer_info = model.transfer_info
    return outer


def set_trainable_blocks(model, n, train_batch_norm=False):
    """Train the last `n` named blocks of the model's "backbone" (0: frozen, "all": every block); recompile after.

    BatchNormalization layers of the backbone stay frozen, in inference mode, unless `train_batch_norm=True`.
    The head is left as it is. Returns the names of the trainable blocks.
    """
    backbone = model.get_layer("backbone")
    return unfreeze_last_blocks(backbone, n, train_batch_norm=train_batch_norm)


def split_backbone(backbone, n, name=None):
    """(stem, tail): a built backbone cut before its last `n` named blocks, both sharing the backbone's layers.

    `stem` maps the backbone's input to the tensor the first layer of the last `n` blocks reads; `tail` maps that
    tensor to the backbone's output. Training `tail` trains the backbone's own layers, so features computed once
    with `stem` and a tail trained on them give the same model as fine-tuning the last `n` blocks end to end
    (with BatchNormalization frozen, as `unfreeze_last_blocks` leaves it, the stem is deterministic).

    Args:
        backbone: a backbone from `medcnn.models.backbones.build_backbone` (or keras.applications).
        n: int, 1 .. number of named blocks.
        name: its registry name; recognised from the layer names when None.

    Raises:
        ValueError: `n` is out of range, or the last `n` blocks read more than one tensor from before them.
    """
    blocks = block_layers(backbone, name)
    if not (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= len(blocks)):
        raise ValueError(f"`n` must be an int between 1 and {len(blocks)} (the backbone's blocks). Received: n={n!r}")
    first = blocks[len(blocks) - n][1][0]
    boundary = first.input
    if isinstance(boundary, (list, tuple)):
        raise ValueError(f"Block '{blocks[len(blocks) - n][0]}' starts with a layer of several inputs ({first.name}).")
    stem = keras.Model(backbone.inputs, boundary, name=f"{backbone.name}_stem")
    try:
        tail = keras.Model(boundary, backbone.output, name=f"{backbone.name}_tail")
    except ValueError as error:
        raise ValueError(
            f"The last {n} block(s) of '{backbone.name}' read more than the output of the layer before them "
            f"({type(error).__name__}: {error})."
        ) from None
    return stem, tail
