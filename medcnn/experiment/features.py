"""Frozen-backbone features, computed once and cached beside the runs; a head on them, put back on its backbone;
and the models and inputs of the studies that go on to fine-tune that backbone.

Studies that train a head on a frozen backbone (cnmc, an2dl, kth) describe the features with a `FeatureSpec`:

    spec = FeatureSpec("mobilenet_v2", (224, 224, 3), seed=seed, allow_random=True, input_max=1.0, views=4,
                       augmentation=lambda seed: with_seed(layer, 100 * seed), view_settings=settings["augmentation"])
    features = extract(spec, images, cache, data=file_hash)  # or reused from <out_dir>/cache/features/
    head = standardised_head(features.x.shape[1:], *features.stats(train_rows), top)  # top: the study's layers
    export_head(run, spec, class_names, cache, "model.keras")  # the run's head on its backbone, one image model

- The backbone is seeded (`medcnn.models.features.seeded_backbone`): ImageNet weights where
  `medcnn.models.backbones.resolve_backbone_weights` finds them, else random ones when `allow_random` (recorded as
  "random" in `Features.info`), drawn from `seed`, so every build with the same seed has the same weights.
- Rows 0..N-1 of the features are the images; view k (1..views) of image i is row k * N + i, drawn by the spec's
  augmentation inside the prediction function (no per-batch eager loop).
- Features are cached as `<out_dir>/cache/features/<backbone>_<key>.npz`, `key` a `cache.fingerprint` of
  everything that changes them: backbone, weights, the seed where it draws anything (random weights or views),
  input size and range, outputs, views and their settings, and the data digest. A file is reused when its key
  matches and the cache reuses runs, or when this process wrote it (features computed once within a run).
- `feature_inputs` gives the same features as a run's own `inputs` (`Run.inputs`): made only when the run trains,
  fingerprinted by their key, so `run_all` serves runs of several backbones and seeds without per-study loops.

Beyond the head (an2dl): `tail_model` fine-tunes the backbone's last blocks on its cached "stem" features (with
`single_output` and `image_model` it goes back on the blocks before them); `cropped_backbone_model` trains the whole
backbone end to end on larger images cut to its input size; `OfflineCopies` gives per-seed offline augmented copies
(or their features) as runs' own inputs; `lazy_builder` builds a run's model from those inputs only when it trains.
"""

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from medcnn.experiment.cache import callable_identity, fingerprint, jsonable
from medcnn.experiment.runs import LazyInputs, array_digest

# Hashed into every features key: bump it when a change to this module changes the features it computes.
FEATURES_VERSION = 1
OUTPUTS = ("pooled", "map", "stem")

_LAST = {}  # {key: Features}: the features computed or loaded last, so runs that share them load them once
_WRITTEN = set()  # the feature files this process wrote: reused within the run even when the cache does not reuse


@dataclass(frozen=True)
class FeatureSpec:
    """What a set of frozen-backbone features is made of.

    Args:
        backbone: registry name (`medcnn.models.backbones.BACKBONES`), e.g. "mobilenet_v2".
        image_shape: (height, width, 1 or 3) of the images.
        seed: draws a random backbone's weights and the augmented views (the run's seed); ignored in the cache key
            when it draws neither (ImageNet weights, no views), so such features serve every seed.
        weights: "imagenet" (a local file or a download), None (random on purpose) or the path of a weights file.
        allow_random: with "imagenet", fall back to random weights (recorded "random") when no file can be had.
        input_max: the value of a white pixel in the images (1.0 for [0, 1], 255.0 for raw pixels); the backbone's
            own preprocessing sits inside it.
        outputs: which arrays to compute, in order (the first is `Features.x`): "pooled" (global average pooled,
            (1, 1, C)), "map" (the backbone's output map) or "stem" (the input of the last `stem_blocks` blocks).
        stem_blocks: how many of the last named blocks the "stem" output leaves out (>= 1 with "stem").
        views: augmented views per image (0: the images only).
        augmentation: `seed -> Keras layer` that draws the views (called with `training=True`); needed with views.
        view_settings: a JSON-able description of the augmentation (e.g. the study's augmentation settings), part
            of the cache key beside the augmentation's `callable_identity`.
        batch_size: the prediction batch size.
    """

    backbone: str
    image_shape: tuple
    seed: int = 0
    weights: object = "imagenet"
    allow_random: bool = False
    input_max: float = 255.0
    outputs: tuple = ("pooled",)
    stem_blocks: int = 0
    views: int = 0
    augmentation: Callable = None
    view_settings: object = None
    batch_size: int = 64

    def __post_init__(self):
        object.__setattr__(self, "image_shape", tuple(int(side) for side in self.image_shape))
        object.__setattr__(self, "outputs", (self.outputs,) if isinstance(self.outputs, str) else tuple(self.outputs))
        unknown = [kind for kind in self.outputs if kind not in OUTPUTS]
        if not self.outputs or unknown or len(set(self.outputs)) != len(self.outputs):
            raise ValueError(f"`outputs` must name some of {OUTPUTS}, each once. Received: outputs={self.outputs}")
        if ("stem" in self.outputs) != (self.stem_blocks > 0):
            raise ValueError(
                "A 'stem' output needs `stem_blocks` >= 1 (how many last blocks it leaves out), and `stem_blocks` "
                f"needs a 'stem' output. Received: outputs={self.outputs}, stem_blocks={self.stem_blocks}"
            )
        if not (isinstance(self.views, (int, np.integer)) and self.views >= 0):
            raise ValueError(f"`views` must be an int >= 0. Received: views={self.views!r}")
        if self.views and self.augmentation is None:
            raise ValueError(f"{self.views} views need an `augmentation` (`seed -> layer`). Received: None")

    def weights_info(self):
        """The `WeightsInfo` the backbone loads: ImageNet (found or downloaded), a named file, or random."""
        from medcnn.models.backbones import get_backbone_spec, resolve_backbone_weights
        from medcnn.models.weights import WeightsInfo, weights_file_info

        if self.weights is None:
            return WeightsInfo("random")
        if isinstance(self.weights, str) and self.weights == "imagenet":
            with warnings.catch_warnings():  # the build that follows warns about random weights, once
                warnings.simplefilter("ignore")
                return resolve_backbone_weights(self.backbone, self.image_shape, self.allow_random)
        return weights_file_info(self.weights, get_backbone_spec(self.backbone).imagenet_file_names())

    def draws(self, weights=None):
        """Whether `seed` draws anything: random backbone weights or augmented views."""
        weights = weights or self.weights_info()
        return weights.used == "random" or self.views > 0

    def key(self, data):
        """The cache key of these features of the data whose digest is `data` (`cache.fingerprint`)."""
        from medcnn.models.backbones import get_backbone_spec

        weights = self.weights_info()
        return fingerprint(
            {
                "version": FEATURES_VERSION,
                "backbone": get_backbone_spec(self.backbone).name,
                "image_shape": list(self.image_shape),
                "weights": weights.used,
                "weights_file": Path(weights.path).name if weights.path else None,
                "seed": int(self.seed) if self.draws(weights) else None,
                "input_max": float(self.input_max),
                "outputs": list(self.outputs),
                "stem_blocks": int(self.stem_blocks),
                "views": int(self.views),
                "augmentation": callable_identity(self.augmentation) if self.views else None,
                "view_settings": jsonable(self.view_settings) if self.views else None,
                "data": jsonable(data),
            }
        )


def view_rows(images, count, views):
    """The feature rows of `images` (indices among `count` images) and of their `views` views: image i's rows are
    i, count + i, ..., views * count + i. Known before the features are computed, e.g. for a run's split."""
    images = np.unique(np.asarray(images, dtype="int64"))
    return np.concatenate([images + k * int(count) for k in range(int(views) + 1)])


@dataclass
class Features:
    """Features of N images and of their views: `arrays` ({output: (rows, ...) float32}, rows 0..N-1 the images,
    then view k of image i at k * N + i), `source` (the image of each row), `view` (0 for the image itself, k for
    its k-th view) and `info` (backbone, weights, seed, shapes, parameters, images/s, seconds, key, cached)."""

    arrays: dict
    source: np.ndarray
    view: np.ndarray
    info: dict

    @property
    def x(self):
        """The first output's array."""
        return next(iter(self.arrays.values()))

    @property
    def key(self):
        return self.info["key"]

    def rows(self, images):
        """The rows of `images` (indices into the images) and of all their views, in row order (`view_rows`)."""
        return view_rows(images, self.info["images"], self.info["views"])

    def split(self, split):
        """A run's split over these rows: the training side with every view of its images, the other sides (val,
        test) their images only (row i is image i)."""
        return {side: self.rows(index) if side == "train" else np.asarray(index) for side, index in split.items()}

    def labels(self, labels):
        """The label of every row (a view has its image's label)."""
        return np.asarray(labels)[self.source]

    def stats(self, rows, output=None):
        """(mean, variance) per feature of `rows` (e.g. a run's training side), what `standardised_head` takes."""
        from medcnn.models.features import feature_stats

        return feature_stats(self.arrays[output or self.info["outputs"][0]][np.asarray(rows)])


def backbone_model(spec):
    """The spec's frozen backbone, its preprocessing inside (images in [0, input_max]), named "backbone": the same
    weights on every call with the same spec (random ones drawn from `spec.seed`). `model.weights_info` says which."""
    from medcnn.models.features import seeded_backbone

    model, _ = seeded_backbone(
        spec.backbone, spec.image_shape, spec.seed, spec.weights, allow_random=spec.allow_random,
        input_max=spec.input_max,
    )  # fmt: skip
    return model


def _output_tensors(spec, backbone):
    """{output: tensor} of the spec's outputs on a built backbone."""
    tensors = {}
    for kind in spec.outputs:
        if kind == "pooled":
            tensors[kind] = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pooled")(backbone.output)
        elif kind == "map":
            tensors[kind] = backbone.output
        else:
            from medcnn.models.transfer import split_backbone

            tensors[kind] = split_backbone(backbone, spec.stem_blocks, spec.backbone)[0].output
    return tensors


class _Drawn(keras.layers.Layer):
    """Calls `augmentation` in training mode inside any model, so `predict` draws views in its compiled function."""

    def __init__(self, augmentation, **kwargs):
        super().__init__(**kwargs)
        self.augmentation = augmentation

    def call(self, inputs):
        return self.augmentation(inputs, training=True)

    def compute_output_shape(self, input_shape):
        return input_shape


def feature_path(spec, key, cache):
    """`<out_dir>/cache/features/<backbone>_<key>.npz` of a `RunCache` (or a folder), or None without one."""
    if cache is None:
        return None
    folder = cache.out_dir / "cache" / "features" if hasattr(cache, "out_dir") else Path(cache)
    return folder / f"{spec.backbone}_{key}.npz"


def _load(path, key):
    with np.load(path) as stored:
        info = json.loads(str(stored["info"]))
        arrays = {kind: stored[f"output_{kind}"] for kind in info["outputs"]}
        features = Features(arrays, stored["source"], stored["view"], {**info, "cached": True})
    if features.key != key:
        raise ValueError(f"{path} holds features of key {features.key}, not {key}: delete the file and run again.")
    return features


def _save(path, features):
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.stem + ".tmp.npz")
    arrays = {f"output_{kind}": array for kind, array in features.arrays.items()}
    info = {key: value for key, value in features.info.items() if key != "cached"}
    np.savez(temporary, source=features.source, view=features.view, info=json.dumps(info), **arrays)
    temporary.replace(path)
    _WRITTEN.add(path.resolve())


def _timed_predict(model, images, batch_size):
    """`model.predict` of every image (a list of arrays for several outputs) and its seconds, after an untimed
    warm-up on the first batch and the last partial batch (as `evaluate.timed_predict`, for any outputs)."""
    warmup = batch_size + len(images) % batch_size if len(images) > batch_size else len(images)
    model.predict(images[:warmup], batch_size=batch_size, verbose=0)
    started = time.perf_counter()
    outputs = model.predict(images, batch_size=batch_size, verbose=0)
    return outputs, time.perf_counter() - started


def _compute(spec, images, key, weights_info):
    started = time.perf_counter()
    backbone = backbone_model(spec)
    tensors = _output_tensors(spec, backbone)
    extractor = keras.Model(backbone.input, list(tensors.values()), name=f"{spec.backbone}_features")
    outputs, seconds = _timed_predict(extractor, images, spec.batch_size)
    parts = [[np.asarray(array, dtype="float32")] for array in (outputs if len(tensors) > 1 else [outputs])]
    if spec.views:
        inputs = keras.Input(spec.image_shape, name="image")
        drawn = _Drawn(spec.augmentation(spec.seed), name="views")(inputs)
        viewer = keras.Model(inputs, extractor(drawn), name=f"{spec.backbone}_views")
        for _ in range(spec.views):
            more = viewer.predict(images, batch_size=spec.batch_size, verbose=0)
            for part, array in zip(parts, more if len(tensors) > 1 else [more]):
                part.append(np.asarray(array, dtype="float32"))
    arrays = {kind: np.concatenate(part) for kind, part in zip(tensors, parts)}
    n = len(images)
    info = {
        "key": key,
        "backbone": spec.backbone,
        "weights": weights_info.used,
        "weights_source": weights_info.source,
        "weights_file": Path(weights_info.path).name if weights_info.path else None,
        "seed": int(spec.seed) if spec.draws(weights_info) else None,
        "image_shape": list(spec.image_shape),
        "outputs": list(tensors),
        "shapes": {kind: list(array.shape[1:]) for kind, array in arrays.items()},
        "feature_size": int(arrays[spec.outputs[0]].shape[-1]),
        "views": int(spec.views),
        "images": n,
        "rows": n * (spec.views + 1),
        "parameters": int(backbone.count_params()),
        "inference_images_per_s": n / seconds if seconds > 0 else None,
        "seconds": time.perf_counter() - started,
    }
    keras.backend.clear_session()
    views = np.repeat(np.arange(spec.views + 1), n)
    return Features(arrays, np.tile(np.arange(n), spec.views + 1), views, {**info, "cached": False})


def extract(spec, images, cache=None, data=None, log=print):
    """The spec's features of `images` (N, H, W, C) in [0, spec.input_max] and of their views, computed once.

    Args:
        spec: a `FeatureSpec`.
        images: the images, float32 (any array Keras predicts on).
        cache: a `RunCache` (features go to `<out_dir>/cache/features/`), a folder, or None (not kept on disk).
        data: a digest of what the images are (e.g. `report.file_list_hash(paths)` with the image size), part of
            the key; None hashes the images themselves (`runs.array_digest`).
        log: one line when features are computed or reused.

    Returns:
        `Features`; `info["cached"]` says whether they were read back (from this process or the cache folder).
        A file is reused when its key matches and the cache reuses runs, or when this process wrote it.
    """
    key = spec.key(array_digest(images) if data is None else data)
    path = feature_path(spec, key, cache)
    reuse = path is not None and path.is_file() and (getattr(cache, "reuse", False) or path.resolve() in _WRITTEN)
    if key in _LAST or reuse:
        features = _LAST[key] if key in _LAST else _load(path, key)
        if features.info["images"] != len(images):
            raise ValueError(
                f"Features of key {key} were made from {features.info['images']} images, but {len(images)} were passed "
                f"with the same data digest {data!r}: give each data set its own digest (`data=`)."
            )
        if key in _LAST:
            return features
        log(f"{spec.backbone} (seed {spec.seed}): features reused from {path.name}")
    else:
        features = _compute(spec, np.asarray(images), key, spec.weights_info())
        if path is not None:
            _save(path, features)
        info = features.info
        log(
            f"{spec.backbone} ({info['weights']} weights, seed {spec.seed}): {info['rows']} feature rows "
            f"{tuple(info['shapes'][spec.outputs[0]])} in {info['seconds']:.0f} s; inference "
            f"{info['inference_images_per_s']:.0f} images/s"
        )
    _LAST.clear()
    _LAST[key] = features
    return features


def extracted_info(specs, images, cache=None, data=None):
    """The first of `specs`' `Features.info` (`extract`, quietly: read back where the cache holds them) with
    "feature_s", the seconds the features of every spec took (e.g. one backbone's, over several seeds)."""
    made = [extract(spec, images, cache, data, lambda line: None) for spec in specs]
    return {**made[0].info, "feature_s": sum(features.info["seconds"] for features in made)}


def feature_inputs(spec, images, labels, cache=None, data=None, output=None, log=print):
    """A run's own `inputs` (`Run.inputs`): `(features, label of every row)` of `spec`, made by `extract` only when
    the run trains (and then shared by the runs that follow with the same key), fingerprinted by their key and a
    digest of `labels`.

    `output`: which of the spec's outputs the run reads (None: the first). See `extract` for the other arguments.
    """
    data = array_digest(images) if data is None else data
    key = spec.key(data)
    kind = output or spec.outputs[0]
    if kind not in spec.outputs:
        raise ValueError(f"`output` must be one of the spec's outputs {spec.outputs}. Received: output={output!r}")

    def load():
        made = extract(spec, images, cache, data, log)
        return made.arrays[kind], made.labels(labels)

    return LazyInputs(load, {"features": key, "output": kind, "labels": array_digest(np.asarray(labels))})


def standardised_head(feature_shape, mean, variance, top, keepdims=False, name="head", min_variance=1e-6):
    """A head on frozen features, named `name`: global average pooling, each feature standardised with fixed
    (not trained) `mean` and `variance` (a `keras.layers.Normalization`, e.g. of the training side: `Features.stats`),
    then `top`.

    Standardised features of any scale (random-weight backbones give very different ones) suit one learning rate.

    Args:
        feature_shape: (height, width, channels) of the features; the head takes any height and width, so a head
            trained on pooled (1, 1, C) features runs on the backbone's map too.
        mean, variance: per feature (C,).
        top: `tensor -> outputs`: the study's layers (a Keras layer or model, or a function that applies some).
        keepdims: pool to (1, 1, C) (True, for a `top` built on that shape) or to (C,) (False).
        min_variance: a floor for the variance (features that never vary).
    """
    from medcnn.models.features import standardise

    channels = int(feature_shape[-1])
    if len(feature_shape) != 3 or np.size(mean) != channels or np.size(variance) != channels:
        raise ValueError(
            f"`feature_shape` must be (height, width, channels) with a mean and variance per channel. Received: "
            f"feature_shape={tuple(feature_shape)}, {np.size(mean)} means, {np.size(variance)} variances"
        )
    inputs = keras.Input((None, None, channels), name="features")
    x = keras.layers.GlobalAveragePooling2D(keepdims=keepdims, name="pool")(inputs)
    x = standardise(mean, variance, min_variance=min_variance)(x)
    return keras.Model(inputs, top(x), name=name)


def image_model(spec, head, name=None):
    """The head put back on the spec's backbone: images in [0, spec.input_max] -> frozen backbone (the same weights
    its features came from, preprocessing inside) -> the spec's first output (pooled, map or stem) -> `head`, whose
    input is that output's shape. Its predictions equal the head's on the images' features."""
    backbone = backbone_model(spec)
    head.trainable = False
    features = _output_tensors(spec, backbone)[spec.outputs[0]]
    return keras.Model(backbone.input, head(features), name=name or f"{spec.backbone}_{head.name}")


def export_head(run, spec, class_names, cache, path, log=print, preprocessing=None, name=None):
    """Save the trained head of `run` on its backbone as one `model.keras` that classifies raw image files.

    The head comes from `experiment.trained_model` (the one policy: the run's recorded weights under its
    fingerprint, or the run trained again on its own `inputs` when they are missing); `spec` is the features' spec
    the run was trained on. `preprocessing`: as `experiment.export_model` takes it.
    """
    from medcnn.experiment.export import export_model, trained_model

    head = trained_model(run, None, None, class_names, cache, log=log)
    model = image_model(spec, head, name)
    return export_model(model, class_names, path, input_max=spec.input_max, preprocessing=preprocessing)


def single_output(spec, output):
    """The spec with `output` ("pooled", "map" or "stem") as its only output, e.g. for `image_model` of a head (or
    a fine-tuned tail) trained on that output; the same backbone and weights."""
    from dataclasses import replace

    return replace(spec, outputs=(output,), stem_blocks=spec.stem_blocks if output == "stem" else 0)


def tail_model(spec, make_head, head_weights=None, name=None, trainable=None):
    """Fine-tuning on features computed once: the last `spec.stem_blocks` blocks of the spec's backbone on its "stem"
    features, the last `trainable` of them (default all of them) trainable (BatchNormalization frozen,
    `unfreeze_last_blocks`), then `make_head(shape)` (the blocks' output shape, e.g. (3, 3, 1280)) with the weights
    file `head_weights` loaded into it when given (e.g. the head trained on the frozen backbone).

    `image_model(single_output(spec, "stem"), model)` puts the trained model back on the blocks before it.
    """
    from medcnn.models.backbones import unfreeze_last_blocks
    from medcnn.models.transfer import split_backbone

    backbone = backbone_model(spec)
    _, tail = split_backbone(backbone, spec.stem_blocks, spec.backbone)
    unfreeze_last_blocks(backbone, spec.stem_blocks if trainable is None else trainable, spec.backbone)
    head = make_head(tuple(tail.output.shape[1:]))
    if head_weights is not None:
        head.load_weights(head_weights)
    inputs = keras.Input(tuple(tail.input.shape[1:]), name="stem_features")
    return keras.Model(inputs, head(tail(inputs)), name=name or f"{spec.backbone}_fine_tune")


def cropped_backbone_model(spec, input_shape, head_spec, blocks="all", name=None):
    """A whole model trained end to end on larger images: images of `input_shape` cut to their centre at the spec's
    image size (a `CenterCrop` named "centre"), the spec's backbone with its last `blocks` trainable
    (BatchNormalization frozen), then `build_head(head_spec)` named "head"."""
    from medcnn.models.backbones import unfreeze_last_blocks
    from medcnn.models.heads import build_head

    backbone = backbone_model(spec)
    unfreeze_last_blocks(backbone, blocks, spec.backbone)
    head = build_head(head_spec, backbone.output.shape[1:], name="head")
    inputs = keras.Input(tuple(input_shape), name="image")
    centre = keras.layers.CenterCrop(*spec.image_shape[:2], name="centre")(inputs)
    return keras.Model(inputs, head(backbone(centre)), name=name or f"{spec.backbone}_cropped")


class OfflineCopies:
    """Images and `copies` offline augmented copies of each, drawn per seed, as runs' own inputs (`Run.inputs`):
    the images and copies themselves (`image_inputs`) or a backbone's features of them (`feature_inputs`, through
    `extract` and its cache). Runs go seed by seed, so only the last seed's draw is kept in memory.

    Args:
        labels: (N,) labels of the originals; every copy has its image's label.
        copies: augmented copies per image (0: the originals only).
        draw: `seed -> (N * (1 + copies), H, W, C)` images, then copy k of image i at row k * N + i (`view_rows`).
        digest: a JSON-able dict of what the images and the draw are (e.g. the files' hash and the augmentation
            settings); with the seed, it names the inputs in every run's fingerprint.
        cache, log: as `extract` takes them.
    """

    def __init__(self, labels, copies, draw, digest, cache=None, log=print):
        self.labels = np.tile(np.asarray(labels), int(copies) + 1)
        self.draw, self.digest, self.cache, self.log = draw, dict(digest), cache, log
        self._drawn = {}

    def images(self, seed):
        """The originals and copies of `seed`, drawn on the first call for that seed."""
        if seed not in self._drawn:
            self._drawn.clear()
            self._drawn[seed] = self.draw(seed)
        return self._drawn[seed]

    def seed_digest(self, seed):
        """`digest` with the seed: what the images of `seed` are."""
        return {**self.digest, "seed": seed}

    def image_inputs(self, seed):
        """`LazyInputs` of the images and copies of `seed` with their labels."""
        return LazyInputs(lambda: (self.images(seed), self.labels), self.seed_digest(seed))

    def feature_inputs(self, spec, output):
        """`LazyInputs` of the spec's `output` features of the images and copies of `spec.seed`, with their labels."""
        data = self.seed_digest(spec.seed)

        def load():
            return extract(spec, self.images(spec.seed), self.cache, data, self.log).arrays[output], self.labels

        return LazyInputs(load, {"features": spec.key(data), "output": output, "labels": array_digest(self.labels)})


def lazy_builder(build, inputs, train_rows=None, stats_inputs=None, head_weights=None):
    """A run's `build_model` on its own `inputs` (`Run.inputs`), which are loaded only when it is called:
    `build(input_shape, stats, weights_path)` with the shape of one row of `inputs`, the (mean, variance) of the
    `train_rows` of `stats_inputs` (default `inputs`; e.g. the pooled features of a fine-tuning run's stage one),
    or None without `train_rows`, and the path `head_weights()` returns (None without `head_weights`).

    `inputs` and `stats_inputs` are read as `runs.run_data` reads a run's `inputs`: an array, an (x, labels) pair,
    or a callable (e.g. a `LazyInputs`) returning either."""

    def rows(given):  # the x of `given`, loaded
        loaded = given() if callable(given) and not hasattr(given, "shape") else given
        return loaded[0] if isinstance(loaded, tuple) else loaded

    def built():
        from medcnn.models.features import feature_stats

        x = rows(inputs)
        chosen = inputs if stats_inputs is None else stats_inputs
        stats = None if train_rows is None else feature_stats(rows(chosen)[np.asarray(train_rows)])
        return build(x.shape[1:], stats, head_weights() if head_weights else None)

    return built
