"""Tests for medcnn.data.cleaning: exact and near duplicates, outliers, each listing what it removed."""

import numpy as np
import pytest
from PIL import Image

from medcnn.data.cleaning import (
    image_features,
    remove_exact_duplicates,
    remove_near_duplicates,
    remove_outliers,
)
from medcnn.errors import DataError
from medcnn.data.loaders import ImageSet, load_folders

RNG = np.random.default_rng(4)


def blob(center, size=32, radius=6.0, background=20, color=(200, 60, 160)):
    """A smooth round 'cell' of `color` at `center` on a flat background, uint8 (size, size, 3)."""
    yy, xx = np.mgrid[:size, :size]
    mask = np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * radius**2))[..., None]
    return (background + mask * (np.array(color) - background)).clip(0, 255).astype(np.uint8)


def image_set(images, labels=None, names=("a", "b")):
    labels = np.zeros(len(images), int) if labels is None else np.asarray(labels)
    return ImageSet(labels=labels, class_names=list(names), images=np.stack(images), source="test")


def test_remove_exact_duplicates_of_images():
    one, two = blob((10, 10)), blob((20, 20))
    data = image_set([one, two, one.copy(), two.copy(), one.copy()], labels=[0, 1, 1, 1, 0])
    cleaned, removed = remove_exact_duplicates(data)
    assert len(cleaned) == 2 and cleaned.labels.tolist() == [0, 1]
    assert removed["kept_index"].tolist() == [0, 1, 0] and removed["removed_index"].tolist() == [2, 3, 4]
    assert removed["kept"].tolist() == ["index 0", "index 1", "index 0"]
    assert removed["removed_class"].tolist() == ["b", "b", "a"]


def test_remove_exact_duplicates_of_files(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    Image.fromarray(blob((10, 10))).save(tmp_path / "a" / "x.png")
    (tmp_path / "a" / "y.png").write_bytes((tmp_path / "a" / "x.png").read_bytes())
    Image.fromarray(blob((20, 12))).save(tmp_path / "b" / "z.png")
    data = load_folders(tmp_path, decode=False)
    cleaned, removed = remove_exact_duplicates(data)
    assert [p.split("/")[-1] for p in cleaned.paths] == ["x.png", "z.png"]
    assert removed[["kept", "removed"]].values.tolist() == [["x.png", "y.png"]]


def test_remove_near_duplicates_keeps_the_first():
    base = blob((12, 14))
    noisy = (base.astype(int) + RNG.integers(-3, 4, base.shape)).clip(0, 255).astype(np.uint8)
    others = [blob((8, 24)), blob((24, 8)), blob((16, 16), radius=3)]
    data = image_set([base, *others, noisy])
    cleaned, removed = remove_near_duplicates(data, threshold=0.97)
    assert len(cleaned) == 4
    assert removed[["kept_index", "removed_index"]].values.tolist() == [[0, 4]]
    assert removed["correlation"].iloc[0] > 0.99
    np.testing.assert_array_equal(cleaned.images[0], base)


def test_near_duplicates_on_two_backgrounds_need_the_centre():
    """an2dl: one cell pasted on two backgrounds; comparing the centre finds it, the whole image does not."""
    cell = blob((16, 16), radius=4, background=0)
    first, second = np.full((32, 32, 3), 30, np.uint8), np.zeros((32, 32, 3), np.uint8)
    second[:, :16] = 230  # a bright half the first background lacks
    second[:, 16:] = 40
    for background in (first, second):
        background[8:24, 8:24] = cell[8:24, 8:24]
    data = image_set([first, blob((6, 6)), second])
    whole, _ = remove_near_duplicates(data, threshold=0.95)
    centre, removed = remove_near_duplicates(data, threshold=0.95, center_fraction=0.5)
    assert len(whole) == 3
    assert len(centre) == 2 and removed["removed_index"].tolist() == [2]


def test_remove_outliers_finds_the_odd_images():
    images = [blob((RNG.integers(12, 20), RNG.integers(12, 20)), radius=RNG.uniform(5, 7)) for _ in range(60)]
    odd = [RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
    data = image_set(images[:30] + [odd[0]] + images[30:] + [odd[1]], labels=[0] * 31 + [1] * 31)
    cleaned, removed = remove_outliers(data, contamination=2 / 62, seed=0)
    assert sorted(removed["index"].tolist()) == [30, 61]
    assert (
        len(cleaned) == 60 and removed["class"].tolist() and set(removed.columns) == {"index", "name", "class", "score"}
    )
    _, removed_again = remove_outliers(data, contamination=2 / 62, seed=0)
    assert removed_again["index"].tolist() == removed["index"].tolist()


def test_image_features_are_thumbnail_then_histograms():
    images = np.stack([np.full((12, 10, 3), (200, 10, 100), np.uint8), np.full((12, 10, 3), (0, 255, 70), np.uint8)])
    features = image_features(images, size=8, bins=4)
    # skimage's rgb2gray weights (0.2125, 0.7154, 0.0721); 4 bins over [0, 255] have edges 63.75, 127.5, 191.25.
    gray = [(0.2125 * 200 + 0.7154 * 10 + 0.0721 * 100) / 255, (0.7154 * 255 + 0.0721 * 70) / 255]
    histograms = [[0, 0, 0, 1] + [1, 0, 0, 0] + [0, 1, 0, 0], [1, 0, 0, 0] + [0, 0, 0, 1] + [0, 1, 0, 0]]
    expected = np.array([[value] * 64 + histogram for value, histogram in zip(gray, histograms)])
    np.testing.assert_allclose(features, expected, atol=1e-4)


def test_image_features_read_float_images_in_either_range():
    images = np.stack([blob((10, 10)), blob((20, 20))])
    expected = image_features(images, size=8, bins=4)
    # float32 in [0, 255], as the loaders return resized images, and float in [0, 1]
    for same in (images.astype(np.float32), images / 255.0):
        np.testing.assert_allclose(image_features(same, size=8, bins=4), expected, atol=1e-6)


def test_cleaning_needs_decoded_images(tmp_path):
    data = ImageSet(labels=np.array([0, 1]), class_names=["a", "b"], paths=["x.png", "y.png"], source="folder")
    with pytest.raises(DataError, match="needs decoded images"):
        remove_near_duplicates(data)
    with pytest.raises(DataError, match="needs decoded images"):
        remove_outliers(data)


@pytest.mark.parametrize("threshold", [0, 1.5, -0.2])
def test_threshold_incorrect(threshold):
    with pytest.raises(ValueError, match=f"Received: threshold={threshold}"):
        remove_near_duplicates(image_set([blob((5, 5))]), threshold=threshold)


def test_contamination_incorrect():
    with pytest.raises(ValueError, match="Received: contamination=0.7"):
        remove_outliers(image_set([blob((5, 5))]), contamination=0.7)


def test_remove_duplicates_indexes_exact_then_near_copies_into_the_original_set():
    from medcnn.data.cleaning import remove_duplicates

    base = blob((12, 14))
    noisy = (base.astype(int) + RNG.integers(-3, 4, base.shape)).clip(0, 255).astype(np.uint8)
    data = image_set([blob((8, 24)), base, blob((8, 24)), noisy, blob((24, 8))])
    cleaned, pairs = remove_duplicates(data, {"threshold": 0.97})
    assert len(cleaned) == 3
    assert pairs[["kept_index", "removed_index", "kind"]].values.tolist() == [[0, 2, "exact"], [1, 3, "near"]]
    assert remove_duplicates(data)[1]["kind"].tolist() == ["exact"]


def test_split_test_first_keeps_the_test_split_out_of_the_forest():
    from medcnn.data.cleaning import split_test_first, split_test_first_by_seed

    labels = np.repeat(np.arange(4), 25)
    features = RNG.normal(size=(len(labels), 6))
    planted = np.array([3, 30, 60, 90])
    features[planted] += 40.0  # far from everything
    split, info = split_test_first(labels, features, seed=0)
    test, train, val = (set(split[side].tolist()) for side in ("test", "train", "val"))
    assert not (test & train or test & val or train & val)
    assert len(test) == 20 and np.bincount(labels[split["test"]]).tolist() == [5] * 4  # stratified, 20 %
    outliers = set(info["outliers"].tolist())
    assert outliers.isdisjoint(train | val | test) and len(outliers | train | val | test) == len(labels)
    assert {int(i) for i in planted} - test <= outliers  # the planted outliers the forest can see
    assert set(info["test_flagged"].tolist()) <= test and {int(i) for i in planted} & test <= set(info["test_flagged"])
    assert abs(len(val) / (len(val) + len(train)) - 0.2) < 0.03
    images = RNG.uniform(0, 255, (len(labels), 8, 8, 3))
    splits, infos = split_test_first_by_seed(images, labels, [0, 1], val_fraction=0.25)
    assert sorted(splits) == sorted(infos) == [0, 1] and not np.array_equal(splits[0]["test"], splits[1]["test"])
    again, _ = split_test_first_by_seed(images, labels, [0], val_fraction=0.25)
    assert np.array_equal(again[0]["val"], splits[0]["val"])
