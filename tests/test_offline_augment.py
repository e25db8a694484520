"""medcnn.data.offline_augment: augmented copies in memory (with their source as group) and on disk."""

import numpy as np
import pytest

from medcnn import augment
from medcnn.errors import DataError
from medcnn.data.imageio import read_image
from medcnn.data.loaders import ImageSet
from medcnn.data.offline_augment import expand, write_augmented

RNG = np.random.default_rng(0)


def image_set(count=5, channels=1, paths=True):
    labels = np.array([0, 1, 0, 1, 1][:count])
    return ImageSet(
        labels=labels,
        class_names=["normal", "abnormal"],
        paths=[f"/data/{'ab' if label else ''}normal/k{index}.png" for index, label in enumerate(labels)]
        if paths
        else None,
        images=RNG.integers(30, 220, (count, 12, 12, channels), dtype=np.uint8),
        source="karyograms",
    )


def test_expand_keeps_originals_and_records_sources():
    data = image_set()
    expanded = expand(data, copies=3, augmentation=augment.order_preserving(), seed=0)
    assert len(expanded) == 5 * 4 and expanded.images.shape == (20, 12, 12, 1) and expanded.images.dtype == np.uint8
    np.testing.assert_array_equal(expanded.images[:5], data.images)
    np.testing.assert_array_equal(expanded.groups, np.tile(np.arange(5), 4))
    np.testing.assert_array_equal(expanded.labels, data.labels[expanded.groups])
    assert expanded.paths == [data.paths[g] for g in expanded.groups]
    for index in range(5, 20):  # every copy differs from its source
        assert not np.array_equal(expanded.images[index], data.images[expanded.groups[index]])
    assert "augmented: 3 copies" in expanded.source


def test_expand_groups_show_copies_of_one_source_on_two_sides_of_a_random_split():
    expanded = expand(image_set(), copies=3, augmentation=augment.order_preserving(), seed=0)
    order = np.random.default_rng(1).permutation(len(expanded))
    train, test = expanded.groups[order[:14]], expanded.groups[order[14:]]
    assert set(train) & set(test)  # what a leakage check must catch in the published kth protocol


def test_expand_float_images_keeps_them_float():
    data = image_set(channels=3)
    as_float = data.subset(np.arange(len(data)))
    as_float.images = data.images.astype(np.float32)  # as the loaders return resized images
    from_float = expand(as_float, 2, augment.order_preserving(), seed=0)
    from_uint8 = expand(data, 2, augment.order_preserving(), seed=0)
    assert from_float.images.dtype == np.float32
    assert not np.array_equal(from_float.images, np.rint(from_float.images))  # not rounded
    np.testing.assert_array_equal(np.rint(from_float.images).astype(np.uint8), from_uint8.images)


def test_expand_without_originals():
    expanded = expand(image_set(), copies=2, augmentation=augment.order_preserving(), seed=0, include_original=False)
    np.testing.assert_array_equal(expanded.groups, [0, 1, 2, 3, 4] * 2)


def test_expand_same_seed_same_images_other_seed_other_images():
    data = image_set(channels=3)
    first = expand(data, 2, augment.order_preserving(), seed=5)
    again = expand(data, 2, augment.order_preserving(), seed=5)
    other = expand(data, 2, augment.order_preserving(), seed=6)
    np.testing.assert_array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)


@pytest.mark.parametrize("copies", [0, -1, 1.5, True])
def test_expand_copies_must_be_a_positive_int(copies):
    with pytest.raises(ValueError, match=f"`copies` must be a positive int. Received: copies={copies!r}"):
        expand(image_set(), copies, augment.order_preserving())


def test_expand_needs_decoded_images():
    data = image_set()
    data.images = None
    with pytest.raises(DataError, match="karyograms: images are not decoded"):
        expand(data, 1, augment.order_preserving())


def test_write_augmented_writes_class_folders_that_read_back_exactly(tmp_path):
    data = image_set()
    written = write_augmented(data, tmp_path, copies=2, augmentation=augment.order_preserving(), seed=0)
    expected_names = [
        f"{cls}/k{i}_aug{k}.png"
        for k in (1, 2)
        for i, cls in enumerate(["normal", "abnormal", "normal", "abnormal", "abnormal"])
    ]
    assert [p.relative_to(tmp_path).as_posix() for p in written] == expected_names
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")) == sorted(expected_names)
    in_memory = expand(data, 2, augment.order_preserving(), seed=0, include_original=False)
    for path, image in zip(written, in_memory.images):
        np.testing.assert_array_equal(read_image(path, color_mode="grayscale"), image)


def test_write_augmented_without_paths_names_images_by_index(tmp_path):
    written = write_augmented(image_set(count=2, channels=3, paths=False), tmp_path, 1, augment.order_preserving())
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "normal/image00000_aug1.png",
        "abnormal/image00001_aug1.png",
    ]
    assert read_image(written[0]).shape == (12, 12, 3)


def test_write_augmented_refuses_two_sources_with_one_stem(tmp_path):
    data = image_set(count=3)
    data.paths = ["/a/normal/x.png", "/b/abnormal/y.png", "/c/normal/x.png"]
    with pytest.raises(DataError, match=r"/c/normal/x.png: same file stem 'x' as /a/normal/x.png in class 'normal'"):
        write_augmented(data, tmp_path, 1, augment.order_preserving())
    assert not any(tmp_path.iterdir())
