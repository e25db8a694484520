"""Input pipelines: batches of (images, labels) for `model.fit`, augmented on the training split only.

Two implementations with one contract:
- `tf.data` (when Keras runs on TensorFlow): from_tensor_slices -> [decode in parallel] -> cache -> shuffle (train
  only) -> batch -> map(augmentation, train only) -> prefetch. The augmentation map runs one batch at a time by
  default (reproducible draws; on 2 CPU cores parallel calls measured no faster), `deterministic=False` gives
  `num_parallel_calls=AUTOTUNE`.
- `BatchSequence`, a `keras.utils.PyDataset` (any backend, no TensorFlow needed): the same steps in Python, with the
  same augmentation layers run eagerly on each batch and a seeded reshuffle at the start of each epoch.

`backend="auto"` picks tf.data under the TensorFlow backend and the PyDataset otherwise: medcnn's own layers use
`keras.ops`, which inside a tf.data graph only works under the TensorFlow backend (see `medcnn.augment`).

Outputs: images float32 (N, H, W, C) with the input's values (uint8 0..255 stay 0..255; scale inside the model),
labels int64 (N,) or, with `num_classes`, float32 one-hot (N, num_classes). Validation and test batches are never
augmented and never shuffled: they hold exactly the input images, in order.
"""

import math
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

from medcnn.data.imageio import check_color_mode, check_image_size, read_image

BACKENDS = ("auto", "tf.data", "pydataset")


# ---------------------------------------------------------------- argument checks


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, e.g. 32. Received: batch_size={batch_size!r}")
    return int(batch_size)


def _check_labels(labels, count, num_classes):
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.shape != (count,):
        raise ValueError(f"Expected one integer label per image: {count} images but labels.shape={labels.shape}.")
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an int >= 2 or None. Received: num_classes={num_classes!r}")
        if count and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"Labels must lie in [0, {num_classes - 1}] for num_classes={num_classes}. "
                f"Received labels from {labels.min()} to {labels.max()}."
            )
    return labels.astype(np.int64)


def resolve_backend(backend="auto"):
    """ "tf.data" or "pydataset": "auto" gives tf.data under Keras' TensorFlow backend, the PyDataset otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}. Received: backend={backend!r}")
    if backend == "auto":
        return "tf.data" if keras.backend.backend() == "tensorflow" else "pydataset"
    if backend == "tf.data":
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            raise ValueError(
                "backend='tf.data' needs TensorFlow, which is not installed; use backend='pydataset'."
            ) from None
    return backend


# ---------------------------------------------------------------- PyDataset path


class BatchSequence(keras.utils.PyDataset):
    """Batches of (images, labels) from any backend, augmented on the fly when `training`.

    Args:
        load: function `indices -> uint8 or float array (len(indices), H, W, C)`.
        count: number of images.
        labels: int array (count,) or None (batches then hold images only).
        batch_size: images per batch; the last batch may be smaller.
        training: shuffle each epoch and apply `augmentation`; False keeps order and images as they are.
        augmentation: a Keras layer called with `training=True` on each float32 batch, or None.
        num_classes: one-hot labels of this width; None keeps integer labels.
        seed: the order of epoch e is `np.random.default_rng([seed, e]).permutation(count)`.

    The epoch advances at each `on_epoch_begin` after the first (Keras calls it at the start of every epoch), or
    with `set_epoch`. Augmentation runs in the thread that asks for a batch, so keep `workers=1` (the default) for
    reproducible draws.
    """

    def __init__(
        self, load, count, labels, batch_size, training, augmentation=None, num_classes=None, seed=0, **kwargs
    ):
        super().__init__(**kwargs)
        self.load = load
        self.count = int(count)
        self.labels = labels
        self.batch_size = _check_batch_size(batch_size)
        self.training = bool(training)
        self.augmentation = augmentation
        self.num_classes = num_classes
        self.seed = int(seed)
        self._started = False
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Use the order of epoch `epoch` (shuffled when training, 0..count-1 otherwise)."""
        self.epoch = int(epoch)
        if self.training:
            self.order = np.random.default_rng([self.seed, self.epoch]).permutation(self.count)
        else:
            self.order = np.arange(self.count)

    def on_epoch_begin(self):
        if self._started:
            self.set_epoch(self.epoch + 1)
        self._started = True

    def __len__(self):
        return math.ceil(self.count / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} is out of range for {len(self)} batches.")
        indices = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = np.asarray(self.load(indices), dtype=np.float32)
        if self.training and self.augmentation is not None:
            images = keras.ops.convert_to_numpy(self.augmentation(images, training=True)).astype(np.float32)
        if self.labels is None:
            return images
        labels = self.labels[indices]
        if self.num_classes is not None:
            labels = np.eye(self.num_classes, dtype=np.float32)[labels]
        return images, labels


# ---------------------------------------------------------------- tf.data path


def _finish_tf_dataset(
    dataset, count, batch_size, training, augmentation, num_classes, seed, cache, shuffle_buffer, deterministic
):
    """cache -> shuffle (train) -> batch -> map(cast, one-hot, augmentation on train) -> prefetch."""
    import tensorflow as tf

    if cache:
        dataset = dataset.cache()
    if training:
        buffer = max(1, count if shuffle_buffer is None else int(shuffle_buffer))
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    apply_augmentation = training and augmentation is not None

    def prepare(images, labels=None):
        images = tf.cast(images, tf.float32)
        if apply_augmentation:
            images = tf.cast(augmentation(images, training=True), tf.float32)
        if labels is None:
            return images
        if num_classes is not None:
            labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        return images, labels

    # Parallel calls share the layers' random state, so which batch gets which draw would vary between runs.
    parallel = None if (apply_augmentation and deterministic) else tf.data.AUTOTUNE
    dataset = dataset.map(prepare, num_parallel_calls=parallel)
    return dataset.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- public entry points


def make_dataset(
    images,
    labels,
    batch_size,
    training,
    augmentation=None,
    num_classes=None,
    seed=0,
    cache=True,
    shuffle_buffer=None,
    backend="auto",
    deterministic=True,
):
    """Batches of in-memory images for `model.fit` / `evaluate` / `predict`.

    Args:
        images: array (N, H, W, C), uint8 (e.g. `ImageSet.images`) or float.
        labels: int array (N,), or None for images-only batches (prediction).
        batch_size: positive int.
        training: True for the training split: shuffled every epoch and augmented. False for validation and
            test: never shuffled, never augmented.
        augmentation: a Keras layer or `keras.Sequential` (see `medcnn.augment`), called with `training=True`
            on float32 batches; ignored when `training` is False.
        num_classes: one-hot labels of this width; None keeps integer labels.
        seed: seeds the shuffle. The augmentation draws from its own layers' seeds.
        cache: tf.data only: cache the examples after the first epoch (cheap for in-memory arrays).
        shuffle_buffer: tf.data only: shuffle buffer size; None shuffles the whole split. The PyDataset always
            shuffles the whole split.
        backend: "auto", "tf.data" or "pydataset" (see `resolve_backend`).
        deterministic: tf.data only. True maps the augmentation one batch at a time, so that a seed gives the same
            augmented batches in every run. False maps with `num_parallel_calls=AUTOTUNE`: faster with many
            cores, but the layers' shared random state then hands draws to batches in a run-dependent order.
            Batches without augmentation are always mapped in parallel; the PyDataset is always reproducible.

    Returns:
        A `tf.data.Dataset` or a `BatchSequence` yielding `(images float32, labels)`.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"`images` must be an array (N, H, W, C). Received: images.shape={images.shape}")
    batch_size = _check_batch_size(batch_size)
    labels = _check_labels(labels, len(images), num_classes)
    if resolve_backend(backend) == "pydataset":
        return BatchSequence(
            lambda indices: images[indices], len(images), labels, batch_size, training, augmentation, num_classes, seed
        )
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(images if labels is None else (images, labels))
    return _finish_tf_dataset(
        dataset,
        len(images),
        batch_size,
        training,
        augmentation,
        num_classes,
        seed,
        cache,
        shuffle_buffer,
        deterministic,
    )


def dataset_from_paths(
    paths,
    labels,
    image_size,
    color_mode="rgb",
    batch_size=32,
    training=False,
    augmentation=None,
    num_classes=None,
    seed=0,
    cache=True,
    shuffle_buffer=None,
    backend="auto",
    deterministic=True,
    workers=4,
):
    """Like `make_dataset`, but decodes image files in parallel with `medcnn.data.imageio.read_image`.

    Files are resized as a saved model's `ImagePreprocessing` resizes them (see `read_image`) and kept as float32.
    tf.data decodes with `tf.numpy_function` in a parallel map, then caches the decoded images (in memory). The
    PyDataset decodes each batch with `workers` threads and, with `cache`, keeps decoded images in memory.
    A bad file raises when its batch is read: `DataError` from the PyDataset, a TensorFlow error carrying the
    DataError's message (which names the file) from tf.data.

    Args:
        paths: image files (e.g. `ImageSet.paths`).
        labels: int array (len(paths),) or None.
        image_size: `(height, width)` every image is resized to (required: batches need one size).
        color_mode: "grayscale" or "rgb".
        workers: PyDataset only: threads decoding the files of a batch.
        batch_size, training, augmentation, num_classes, seed, cache, shuffle_buffer, backend, deterministic:
            as `make_dataset`.
    """
    paths = [str(path) for path in paths]
    image_size = check_image_size(image_size)
    if image_size is None:
        raise ValueError(
            "`image_size` is required to batch files of different sizes, e.g. (224, 224). Received: image_size=None"
        )
    color_mode = check_color_mode(color_mode)
    batch_size = _check_batch_size(batch_size)
    labels = _check_labels(labels, len(paths), num_classes)
    channels = 1 if color_mode == "grayscale" else 3

    def decode(path):  # float32: resized files are not rounded (see read_image), files at image_size are exact
        return np.asarray(read_image(path, image_size=image_size, color_mode=color_mode), dtype=np.float32)

    if resolve_backend(backend) == "pydataset":
        decoded = {}
        pool = ThreadPoolExecutor(max_workers=max(1, int(workers)))

        def load(indices):
            missing = [int(i) for i in indices if int(i) not in decoded]
            fresh = dict(zip(missing, pool.map(lambda i: decode(paths[i]), missing)))
            if cache:
                decoded.update(fresh)
            return np.stack([decoded[int(i)] if int(i) in decoded else fresh[int(i)] for i in indices])

        return BatchSequence(load, len(paths), labels, batch_size, training, augmentation, num_classes, seed)

    import tensorflow as tf

    def decode_tensor(path):
        image = tf.numpy_function(lambda p: decode(p.decode()), [path], tf.float32, stateful=False)
        image.set_shape((*image_size, channels))
        return image

    dataset = tf.data.Dataset.from_tensor_slices(paths)
    dataset = dataset.map(decode_tensor, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if labels is not None:
        dataset = tf.data.Dataset.zip((dataset, tf.data.Dataset.from_tensor_slices(labels)))
    return _finish_tf_dataset(
        dataset, len(paths), batch_size, training, augmentation, num_classes, seed, cache, shuffle_buffer, deterministic
    )
