"""medcnn.data.pipeline: tf.data and PyDataset paths honour one contract; the PyDataset path also runs under JAX."""

import textwrap

import keras
import numpy as np
import pytest
from PIL import Image

from medcnn import augment
from medcnn.data import pipeline
from medcnn.errors import DataError
from medcnn.data.imageio import read_image

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (10, 8, 8, 1), dtype=np.uint8)
LABELS = np.arange(10)  # label = index, so a batch says which images it holds
BACKENDS = ["tf.data", "pydataset"]


def collect(dataset):
    """All batches of one pass, concatenated: (images, labels) as NumPy arrays."""
    images, labels = [], []
    for batch_images, batch_labels in dataset:
        images.append(np.asarray(batch_images))
        labels.append(np.asarray(batch_labels))
    return np.concatenate(images), np.concatenate(labels)


def train_set(backend, seed=0, augmentation_seed=1, **kwargs):
    return pipeline.make_dataset(
        IMAGES,
        LABELS,
        4,
        training=True,
        augmentation=augment.order_preserving(seed=augmentation_seed),
        seed=seed,
        backend=backend,
        **kwargs,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_validation_is_neither_augmented_nor_shuffled(backend):
    dataset = pipeline.make_dataset(
        IMAGES, LABELS, 4, training=False, augmentation=augment.order_preserving(seed=0), backend=backend
    )
    images, labels = collect(dataset)
    np.testing.assert_array_equal(labels, LABELS)
    np.testing.assert_array_equal(images, IMAGES.astype(np.float32))
    assert images.dtype == np.float32 and labels.dtype == np.int64


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_is_shuffled_and_augmented(backend):
    images, labels = collect(train_set(backend))
    assert sorted(labels) == list(LABELS) and list(labels) != list(LABELS)
    assert images.shape == (10, 8, 8, 1) and images.dtype == np.float32
    changed = [not np.array_equal(images[i], IMAGES[label]) for i, label in enumerate(labels)]
    assert all(changed)
    assert 0 <= images.min() and images.max() <= 255


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_is_deterministic_per_seed(backend):
    first_images, first_labels = collect(train_set(backend, seed=3))
    again_images, again_labels = collect(train_set(backend, seed=3))
    np.testing.assert_array_equal(first_labels, again_labels)
    np.testing.assert_array_equal(first_images, again_images)
    _, other_labels = collect(train_set(backend, seed=4))
    assert list(other_labels) != list(first_labels)


def test_tf_data_reshuffles_every_epoch():
    pytest.importorskip("tensorflow")
    dataset = train_set("tf.data")
    assert list(collect(dataset)[1]) != list(collect(dataset)[1])


def test_pydataset_reshuffles_at_each_epoch_begin():
    dataset = train_set("pydataset")
    dataset.on_epoch_begin()  # first epoch
    epoch0 = collect(dataset)[1]
    dataset.on_epoch_begin()
    epoch1 = collect(dataset)[1]
    assert list(epoch0) != list(epoch1)
    dataset.set_epoch(0)
    np.testing.assert_array_equal(collect(dataset)[1], epoch0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_hot_labels_and_batch_shapes(backend):
    dataset = pipeline.make_dataset(IMAGES, LABELS % 3, 4, training=False, num_classes=3, backend=backend)
    images, labels = collect(dataset)
    assert [len(np.asarray(batch[0])) for batch in dataset] == [4, 4, 2]
    assert images.shape == (10, 8, 8, 1) and images.dtype == np.float32
    assert labels.shape == (10, 3) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels.argmax(axis=1), LABELS % 3)
    np.testing.assert_array_equal(labels.sum(axis=1), np.ones(10))


@pytest.mark.parametrize("backend", BACKENDS)
def test_images_only_when_labels_are_none(backend):
    batches = [np.asarray(batch) for batch in pipeline.make_dataset(IMAGES, None, 4, False, backend=backend)]
    np.testing.assert_array_equal(np.concatenate(batches), IMAGES.astype(np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_accepts_the_dataset(backend):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(train_set(backend), epochs=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2


def test_auto_backend_follows_keras():
    expected = "tf.data" if keras.backend.backend() == "tensorflow" else "pydataset"
    assert pipeline.resolve_backend("auto") == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, r"`batch_size` must be a positive int, e.g. 32. Received: batch_size=0"),
        ({"labels": LABELS[:5]}, r"10 images but labels.shape=\(5,\)"),
        ({"num_classes": 4}, r"Labels must lie in \[0, 3\] for num_classes=4. Received labels from 0 to 9"),
        ({"backend": "torch"}, r"`backend` must be one of .*Received: backend='torch'"),
        ({"images": IMAGES[0]}, r"`images` must be an array \(N, H, W, C\). Received: images.shape=\(8, 8, 1\)"),
    ],
    ids=["batch_size", "labels_length", "label_range", "backend", "images_rank"],
)
def test_invalid_arguments_raise(kwargs, message):
    arguments = {"images": IMAGES, "labels": LABELS, "batch_size": 4, "training": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        pipeline.make_dataset(**arguments)


# ---------------------------------------------------------------- from files


@pytest.fixture
def image_files(tmp_path):
    """Six small RGB PNGs of two different sizes, and their labels."""
    paths = []
    for index in range(6):
        size = (20, 14) if index % 2 else (9, 11)
        path = tmp_path / f"img{index}.png"
        Image.fromarray(RNG.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths, np.array([0, 1, 0, 1, 0, 1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_dataset_from_paths_decodes_like_read_image(backend, image_files):
    paths, labels = image_files
    dataset = pipeline.dataset_from_paths(
        paths, labels, (10, 12), "grayscale", batch_size=4, training=False, backend=backend
    )
    images, got_labels = collect(dataset)
    expected = np.stack([read_image(path, (10, 12), "grayscale") for path in paths]).astype(np.float32)
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(collect(dataset)[0], expected)  # second pass (from the cache) is the same


@pytest.mark.parametrize("backend", BACKENDS)
def test_dataset_from_paths_augments_training(backend, image_files):
    paths, labels = image_files
    dataset = pipeline.dataset_from_paths(
        paths,
        labels,
        (10, 12),
        "rgb",
        batch_size=3,
        training=True,
        augmentation=augment.geometric_and_zoom(seed=0),
        num_classes=2,
        backend=backend,
    )
    images, got_labels = collect(dataset)
    assert images.shape == (6, 10, 12, 3) and got_labels.shape == (6, 2)
    plain = np.stack([read_image(path, (10, 12), "rgb") for path in paths]).astype(np.float32)
    assert not any(np.array_equal(image, original) for image in images for original in plain)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dataset_from_paths_names_a_bad_file(backend, image_files, tmp_path):
    paths, labels = image_files
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    dataset = pipeline.dataset_from_paths(
        [*paths, bad], [*labels, 0], (10, 12), "rgb", batch_size=4, training=False, backend=backend
    )
    with pytest.raises((DataError, Exception), match="broken.png"):
        collect(dataset)


def test_dataset_from_paths_needs_image_size(image_files):
    paths, labels = image_files
    with pytest.raises(ValueError, match="`image_size` is required"):
        pipeline.dataset_from_paths(paths, labels, None)


# ---------------------------------------------------------------- the PyDataset path under JAX

JAX_SCRIPT = textwrap.dedent(
    """
    import numpy as np, keras
    from medcnn import augment
    from medcnn.data import pipeline
    assert keras.backend.backend() == "jax"
    images = np.random.default_rng(0).integers(0, 256, (12, 8, 8, 1), dtype=np.uint8)
    val = pipeline.make_dataset(images, np.arange(12) % 2, 4, training=False, augmentation=augment.order_preserving())
    assert type(val).__name__ == "BatchSequence"
    got = np.concatenate([val[i][0] for i in range(len(val))])
    assert np.array_equal(got, images.astype("float32")), "validation changed"
    def train(seed):
        return pipeline.make_dataset(images, np.arange(12), 4, training=True,
                                     augmentation=augment.order_preserving(seed=1), seed=seed)
    first, again = train(3), train(3)
    first, again = [first[i] for i in range(3)], [again[i] for i in range(3)]
    order = np.concatenate([y for _, y in first])
    assert sorted(order) == list(range(12)) and list(order) != list(range(12)), order
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert not any(np.array_equal(x[k], images[y[k]].astype("float32")) for x, y in first for k in range(len(y)))
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(12)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(train(0), validation_data=val, epochs=2, verbose=0)
    assert len(history.history["val_loss"]) == 2
    print("jax pipeline ok")
    """
)


@pytest.mark.slow  # ~15 s of CPU: JAX compiles each op on its first use
def test_pydataset_path_under_jax_backend(run_under_jax):
    run_under_jax(JAX_SCRIPT, "jax pipeline ok")
