"""The karyogram pool: offline augmentation to counts, both protocols' splits, leakage counts, user folders."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcnn.data import karyogram_pool

# The pool settings of a tiny kth run (`medcnn.studies.kth.settings` holds the study's).
SETTINGS = {
    "source_size": (32, 32),
    "original_counts": {"normal": 15, "abnormal": 10},
    "augmented_counts": {"normal": 25, "abnormal": 25},
    "split_ratios": (0.64, 0.16, 0.20),
    "augmentation": {"brightness": 0.25, "pixel_noise": 0.05, "blur_probability": 0.5},
}


def _karyogram_like(count, size=32, seed=0):
    """White images with a few dark bars in fixed places, like a karyogram's rows."""
    rng = np.random.default_rng(seed)
    images = np.full((count, size, size, 1), 255, np.uint8)
    for image in images:
        for row in (4, 14, 24):
            start = int(rng.integers(2, 8))
            image[row : row + 5, start : start + 20] = int(rng.integers(20, 90))
    return images


def test_augment_to_counts_grows_each_class_with_copies_of_its_own_images():
    images, labels = _karyogram_like(7), np.array([0, 0, 0, 0, 1, 1, 1])
    counts, augmentation = {"normal": 10, "abnormal": 8}, SETTINGS["augmentation"]
    copies, copy_labels, sources = karyogram_pool.augment_to_counts(images, labels, counts, augmentation)
    assert copies.shape == (11, 32, 32, 1) and copies.dtype == np.uint8
    assert np.bincount(copy_labels).tolist() == [6, 5]
    np.testing.assert_array_equal(labels[sources], copy_labels)
    assert np.bincount(sources, minlength=7).tolist() == [2, 2, 1, 1, 2, 2, 1]  # copy 1 of each, then copy 2
    # order-preserving: a copy stays close to its source (no flip or rotation), yet is not the same image
    for copy, source in zip(copies.astype(float), sources):
        original = images[source].astype(float)
        assert np.corrcoef(copy.ravel(), original.ravel())[0, 1] > 0.8
    again = karyogram_pool.augment_to_counts(images, labels, {"normal": 10, "abnormal": 8}, augmentation)[0]
    np.testing.assert_array_equal(copies, again)  # the same seed gives the same copies


def test_augment_to_counts_below_the_originals_incorrect():
    with pytest.raises(ValueError, match="at least the originals of each class"):
        karyogram_pool.augment_to_counts(_karyogram_like(3), np.array([0, 0, 1]), {"normal": 1, "abnormal": 1}, {})


def test_scaled_counts_round_each_class():
    assert karyogram_pool.scaled_counts({"normal": 376, "abnormal": 316}, 0.64) == {"normal": 241, "abnormal": 202}


def _tiny_settings(**overrides):
    return {**SETTINGS, **overrides}


@pytest.fixture(scope="module")
def folder_pool(tmp_path_factory):
    """A user's karyogram folders (normal/, abnormal/) of 25 tiny images, loaded and pooled."""
    root = tmp_path_factory.mktemp("karyograms")
    for index, image in enumerate(_karyogram_like(25, seed=3)):
        name = "abnormal" if index < 10 else "normal"
        (root / name).mkdir(exist_ok=True)
        Image.fromarray(image[..., 0]).save(root / name / f"k{index:02d}.png")
    source = karyogram_pool.load_source(root, (32, 32))
    return source, karyogram_pool.build_pool(source, _tiny_settings(), seed=0)


def test_user_folders_replace_the_stand_in(folder_pool):
    source, pool = folder_pool
    assert source.kind == "folders" and len(source.labels) == 25 and source.images.shape == (25, 32, 32, 1)
    assert np.bincount(source.labels).tolist() == [15, 10]  # class order: normal, abnormal


def test_pool_protocols_split_and_augment_as_described(folder_pool):
    _, pool = folder_pool
    counts = karyogram_pool.pool_counts(pool)
    assert counts.loc["published original"].to_dict() == {"normal": 15, "abnormal": 10}
    assert counts.loc["published copy"].to_dict() == {"normal": 10, "abnormal": 15}
    published, honest = pool.splits["published"], pool.splits["honest"]
    for split in (*published.values(), *honest.values()):
        sides = [set(split[side].tolist()) for side in ("train", "val", "test")]
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sum(len(published["augmented"][side]) for side in ("train", "val", "test")) == 50
    # honest: the copies are made from training karyograms only, and only training holds copies
    copies = pool.table["part"].eq("honest copy").to_numpy()
    honest_train = set(honest["original"]["train"].tolist())
    assert set(pool.table.loc[copies, "source"]) <= honest_train
    assert set(np.flatnonzero(copies)) == set(honest["augmented"]["train"].tolist()) - honest_train
    for side in ("val", "test"):
        np.testing.assert_array_equal(honest["augmented"][side], honest["original"][side])
    leaks = karyogram_pool.leakage_table(pool)
    assert leaks.loc[("honest", "augmented"), "copies of a training karyogram"] == 0
    assert leaks.loc[("published", "augmented"), "copies of a training karyogram"] > 0


@pytest.fixture(scope="module")
def composed_pool(shared_data):
    source = karyogram_pool.load_source(shared_data, (64, 64))
    return source, karyogram_pool.build_pool(source, _tiny_settings(source_size=(64, 64)), seed=0)


def test_composed_pool_keeps_metaphases_apart_under_the_honest_protocol(composed_pool):
    source, pool = composed_pool
    assert source.kind == "composed" and pool.images.shape[1:] == (64, 64, 1)
    leaks = karyogram_pool.leakage_table(pool)
    kinds = [
        "copies of a training karyogram", "share a metaphase with training", "share a chromosome image with training"
    ]  # fmt: skip
    for data in ("original", "augmented"):
        assert leaks.loc[("honest", data), kinds].sum() == 0
    published = leaks.loc[("published", "original")]
    assert published["share a metaphase with training"] > 0  # one metaphase hosts several karyograms
    honest = pool.splits["honest"]["augmented"]
    cases = [set(pool.table["host_case"].to_numpy()[honest[side]]) for side in ("train", "test")]
    assert not cases[0] & cases[1]
    assert set(pool.table["aberration"]) - {"normal"} and (pool.table["aberration"] == "normal").any()


def test_leakage_counts_copies_metaphases_and_files():
    table = pd.DataFrame(
        {
            "source": [0, 1, 2, 0, 4],
            "metaphases": [("a",), ("b",), ("c",), ("a",), ("c", "d")],
            "files": [("f1",), ("f2",), ("f3",), ("f1",), ("f5",)],
        }
    )
    pool = karyogram_pool.Pool(np.zeros((5, 2, 2, 1), np.uint8), np.zeros(5, int), table, {}, 0)
    counts = karyogram_pool.leakage(pool, {"train": [0, 2], "test": [1, 3, 4]})
    assert counts == {
        "test images": 3,
        "copies of a training karyogram": 1,
        "share a metaphase with training": 2,
        "share a chromosome image with training": 1,
    }


def test_copy_shares_of_each_side():
    # train: normal 0 (original), 1, 2 (copies); abnormal 3 (original), 4 (copy). test: normal 5, abnormal 6, 7 (copy)
    parts = ["published original", "published copy", "published copy", "published original", "published copy",
             "published original", "published original", "published copy"]  # fmt: skip
    labels = np.array([0, 0, 0, 1, 1, 0, 1, 1])
    splits = {"published": {"augmented": {"train": [0, 1, 2, 3, 4], "val": [], "test": [5, 6, 7]}}}
    pool = karyogram_pool.Pool(np.zeros((8, 2, 2, 1), np.uint8), labels, pd.DataFrame({"part": parts}), splits, 0)
    assert karyogram_pool.copy_shares(pool) == {"train": {"normal": 2 / 3, "abnormal": 1 / 2},
                                                "test": {"normal": 0.0, "abnormal": 1 / 2}}  # fmt: skip


def test_copy_shares_of_a_built_pool_count_its_published_copies(folder_pool):
    _, pool = folder_pool
    shares, split = karyogram_pool.copy_shares(pool), pool.splits["published"]["augmented"]
    for side in ("train", "test"):
        index = np.asarray(split[side])
        for label, name in enumerate(karyogram_pool.CLASS_NAMES):
            mine = pool.table["part"].to_numpy()[index[pool.labels[index] == label]]
            assert shares[side][name] == np.mean(mine == "published copy") and 0 < len(mine)

def test_write_karyograms_as_class_folders(folder_pool, tmp_path):
    _, pool = folder_pool
    paths = karyogram_pool.write_karyograms(pool, [0, 12], tmp_path)
    names = karyogram_pool.CLASS_NAMES
    assert [p.parent.name for p in paths] == [names[pool.labels[0]], names[pool.labels[12]]]
    np.testing.assert_array_equal(np.asarray(Image.open(paths[1])), pool.images[12][..., 0])
    again = karyogram_pool.write_karyograms(pool, [12], tmp_path)  # a second run replaces the first run's files
    assert sorted(tmp_path.glob("*/*.png")) == again


def test_metaphase_sides_silence_only_the_lopsided_split_warning(monkeypatch):
    import warnings

    from medcnn.data import karyogram, splits

    cells = pd.DataFrame({"metaphase": ["m0", "m1", "m2"], "sex": ["XX", "XY", "XX"], "case": ["a", "b", "c"]})

    def split(labels, ratios, seed, groups=None):
        lopsided = "The grouped split (0.6, 0.2, 0.2) leaves a class nearly absent"
        warnings.warn(lopsided, splits.LopsidedSplitWarning, stacklevel=2)
        warnings.warn("something else went wrong", UserWarning, stacklevel=2)
        return [np.array([0]), np.array([1]), np.array([2])]

    monkeypatch.setattr(karyogram, "metaphase_table", lambda bank: cells)
    monkeypatch.setattr(splits, "train_val_test_split", split)
    with pytest.warns(UserWarning, match="something else went wrong") as caught:
        sides = karyogram_pool.metaphase_sides(None, (0.6, 0.2, 0.2), 0)
    assert sides == {"train": ["m0"], "val": ["m1"], "test": ["m2"]}
    assert [str(w.message) for w in caught] == ["something else went wrong"]


def test_leakage_sentence_counts_the_test_karyograms_that_touch_training():
    index = pd.MultiIndex.from_tuples([("published", "augmented"), ("honest", "augmented")], names=["protocol", "data"])
    leaks = pd.DataFrame({"test": [55, 30], "copies of a training karyogram": [40, 0],
                          "share a metaphase with training": [50, 0]}, index=index)  # fmt: skip
    assert karyogram_pool.leakage_sentence(leaks) == (
        "Leakage, augmented data: as published, 40 of 55 test karyograms are copies of a training karyogram and 50 "
        "share a metaphase with training; honestly 0 and 0."
    )


def test_copies_sentence_reads_the_grey_level_baseline_against_the_copies():
    shares = {"abnormal": 0.6, "normal": 0.3}
    said = karyogram_pool.copies_sentence(shares, {"published": {"balanced_accuracy": 0.8},
                                                   "honest": {"balanced_accuracy": 0.5}})  # fmt: skip
    assert said.startswith("Augmenting to the thesis' counts makes copies 60% of the abnormal and 30% of the normal")
    assert "0.800 as published and 0.500 honestly: copies look different" in said
    same = karyogram_pool.copies_sentence(shares, {"published": {"balanced_accuracy": 0.52},
                                                   "honest": {"balanced_accuracy": 0.5}})  # fmt: skip
    assert same.endswith("at this scale the copies' grey level does not give the classes away.")


def test_test_column_and_test_metaphases_read_a_records_test_side_in_its_seeds_pool():
    table = pd.DataFrame({"aberration": ["normal", "deletion", "normal", "trisomy_21"],
                          "host_metaphase": ["a1", "a1", "b1", "b2"], "host_case": ["a", "a", "b", "b"]})  # fmt: skip
    pool = karyogram_pool.Pool(np.zeros((4, 2, 2, 1), np.uint8), np.array([0, 1, 0, 1]), table, {}, 3)
    record = {"seed": 3, "test_indices": [1, 3]}
    assert karyogram_pool.test_column({3: pool}, "aberration")(record).tolist() == ["deletion", "trisomy_21"]
    labels, hosts, extra = karyogram_pool.test_metaphases({3: pool})(record)
    assert labels.tolist() == [1, 1] and hosts.tolist() == ["a1", "b2"] and extra == {"cases": 2}
