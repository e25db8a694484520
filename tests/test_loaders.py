"""Tests for medcnn.data.loaders: every layout on synthetic trees and on the staged data, and each bad layout."""

import numpy as np
import pytest
from PIL import Image

from medcnn.errors import DataError
from medcnn.data.loaders import (
    ImageSet,
    decode_set,
    list_folders,
    load_cnmc,
    load_folders,
    load_npz,
    natural_key,
    parse_cnmc_name,
)

RNG = np.random.default_rng(1)


def write_image(path, size=(8, 6), mode="RGB", value=None):
    """A small image; `size` is (height, width); random pixels unless `value` is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "L": 1}[mode]
    array = (
        RNG.integers(0, 256, (*size, channels), dtype=np.uint8)
        if value is None
        else np.full((*size, channels), value, np.uint8)
    )
    Image.fromarray(array[..., 0] if channels == 1 else array, mode=mode).save(path)
    return path


def make_tree(root, counts, suffix=".png"):
    for name, count in counts.items():
        for i in range(count):
            write_image(root / name / f"{name}_{i}{suffix}")
    return root


# --------------------------------------------------------------------------------------------------------------
# Class-folder trees


def test_load_folders_labels_follow_sorted_class_names(tmp_path):
    make_tree(tmp_path, {"b_cls": 2, "a_cls": 3})
    data = load_folders(tmp_path)
    assert data.class_names == ["a_cls", "b_cls"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1]
    assert data.images.shape == (5, 8, 6, 3) and data.images.dtype == np.uint8
    assert data.class_counts() == {"a_cls": 3, "b_cls": 2}
    assert data.skipped == []


CHROMOSOME_CLASSES = [str(k) for k in range(1, 23)] + ["X", "Y"]


def test_class_folders_are_in_natural_order(tmp_path):
    for name in CHROMOSOME_CLASSES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(b"")  # listed, not decoded
    paths, labels, names = list_folders(tmp_path)
    assert names == CHROMOSOME_CLASSES  # string order would give 1, 10, 11, ..., 19, 2, 20, ...
    assert labels.tolist() == list(range(24))
    assert paths[9].endswith("/10/x.png")


@pytest.mark.parametrize(
    "names, expected",
    [
        (["H10", "H2", "51", "3", "h4"], ["3", "51", "H2", "H10", "h4"]),
        (["Pro", "Benign", "Pre", "Early"], ["Benign", "Early", "Pre", "Pro"]),
        (["img12b", "img2", "img12a", "img02"], ["img02", "img2", "img12a", "img12b"]),
    ],
)
def test_natural_key(names, expected):
    assert sorted(names, key=natural_key) == expected


def test_explicit_class_order(tmp_path):
    make_tree(tmp_path, {"normal": 2, "abnormal": 1, "unsure": 1})
    data = load_folders(tmp_path, class_order=["normal", "abnormal", "unsure"], decode=False)
    assert data.class_names == ["normal", "abnormal", "unsure"]
    assert data.labels.tolist() == [0, 0, 1, 2]
    assert data.class_counts() == {"normal": 2, "abnormal": 1, "unsure": 1}


def test_class_order_that_does_not_match_the_folders(tmp_path):
    make_tree(tmp_path, {"a": 1, "b": 1, "extra": 1})
    with pytest.raises(DataError) as info:
        load_folders(tmp_path, class_order=["a", "b", "c"])
    assert str(info.value) == (
        f"{tmp_path}: the class folders do not match class_order: no folder for class(es) ['c']; folder(s) "
        "['extra'] are not in class_order. Found folders ['a', 'b', 'extra']; pass a class_order that lists each "
        "class folder once."
    )
    assert info.value.problem == "class_order"


@pytest.mark.parametrize("class_order", ["ab", ["a", "a", "b"], ["a", 2]])
def test_class_order_incorrect(tmp_path, class_order):
    make_tree(tmp_path, {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="Received: class_order="):
        load_folders(tmp_path, class_order=class_order)


def test_load_folders_pixels_match_the_files(tmp_path):
    make_tree(tmp_path, {"a": 1, "b": 1})
    data = load_folders(tmp_path)
    for path, image in zip(data.paths, data.images):
        np.testing.assert_array_equal(image, np.asarray(Image.open(path)))


def test_hidden_files_and_folders_are_skipped(tmp_path):
    make_tree(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\x00\x01junk")
    (tmp_path / "a" / "Thumbs.db").write_bytes(b"junk")
    (tmp_path / "b" / "._b_0.png").write_bytes(b"AppleDouble resource fork")
    (tmp_path / "__MACOSX" / "a").mkdir(parents=True)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    data = load_folders(tmp_path)
    assert data.class_names == ["a", "b"]
    assert len(data) == 4 and data.skipped == []


def test_grayscale_among_rgb_and_resize(tmp_path):
    write_image(tmp_path / "a" / "rgb.png", size=(8, 6))
    write_image(tmp_path / "b" / "gray.png", size=(10, 10), mode="L", value=77)
    data = load_folders(tmp_path, image_size=(4, 4), color_mode="rgb")
    assert data.images.shape == (2, 4, 4, 3) and data.images.dtype == np.float32  # resized, not rounded
    np.testing.assert_allclose(data.images[1], np.full((4, 4, 3), 77.0), atol=1e-3)
    gray = load_folders(tmp_path, image_size=(4, 4), color_mode="grayscale")
    assert gray.images.shape == (2, 4, 4, 1)
    # The gray file is decoded as RGB (77, 77, 77) as the model sees it; Keras' luma weights sum to 0.9999.
    np.testing.assert_allclose(gray.images[1], np.full((4, 4, 1), 77 * 0.9999), atol=1e-3)


def test_images_at_the_requested_size_stay_uint8(tmp_path):
    make_tree(tmp_path, {"a": 2, "b": 1})  # 8 x 6 files
    data = load_folders(tmp_path, image_size=(8, 6))
    assert data.images.dtype == np.uint8
    for path, image in zip(data.paths, data.images):
        np.testing.assert_array_equal(image, np.asarray(Image.open(path)))


def test_mixed_sizes_need_image_size(tmp_path):
    write_image(tmp_path / "a" / "x.png", size=(8, 6))
    write_image(tmp_path / "b" / "y.png", size=(9, 6))
    with pytest.raises(DataError, match=r"different sizes.*pass image_size=\(H, W\)"):
        load_folders(tmp_path)


def test_decode_false_lists_without_decoding(tmp_path):
    make_tree(tmp_path, {"a": 2, "b": 3})
    (tmp_path / "b" / "b_0.png").write_bytes(b"")  # would fail if decoded
    data = load_folders(tmp_path, decode=False)
    assert data.images is None and len(data.paths) == 5


# name -> (builder(root), problem tag, words in the message)
BAD_LAYOUTS = {
    "empty_class_folder": (
        lambda r: (make_tree(r, {"a": 2}), (r / "b").mkdir()),
        "empty_class",
        "No images found for class 'b'",
    ),
    "class_with_only_text": (
        lambda r: (make_tree(r, {"a": 2}), (r / "b").mkdir(), (r / "b" / "notes.txt").write_text("x")),
        "empty_class",
        "notes.txt",
    ),
    "one_class": (lambda r: make_tree(r, {"a": 2}), "too_few_classes", "found 1 class folder"),
    "no_class": (lambda r: write_image(r / "flat.png"), "too_few_classes", "found 0 class folder"),
    "missing_root": (lambda r: None, "missing_folder", "no such folder"),
    "a_file": (lambda r: None, "not_a_folder", "a file, not a folder. Pass its folder"),
    "nested_one_level": (lambda r: make_tree(r / "Original", {"a": 1, "b": 1}), "too_few_classes", "try "),
}


@pytest.mark.parametrize("case", sorted(BAD_LAYOUTS))
def test_bad_folder_layouts(tmp_path, case):
    build, problem, words = BAD_LAYOUTS[case]
    root = tmp_path / "data"
    if case == "a_file":
        root = write_image(tmp_path / "a.png")
    elif case != "missing_root":
        root.mkdir()
    build(root)
    with pytest.raises(DataError, match=words) as info:
        load_folders(root)
    assert info.value.problem == problem


def test_bad_file_raises_naming_it(tmp_path):
    make_tree(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "b" / "broken.png").write_text("not a png")
    with pytest.raises(DataError, match=r"broken\.png: not an image file"):
        load_folders(tmp_path)


def test_skip_bad_counts_and_lists_skipped_files(tmp_path):
    make_tree(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "b" / "broken.png").write_text("not a png")
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    data = load_folders(tmp_path, skip_bad=True)
    assert len(data) == 4
    assert sorted(data.skipped) == [
        (
            str(tmp_path / "a" / "empty.jpg"),
            f"{tmp_path / 'a' / 'empty.jpg'}: the file is empty (0 bytes). Re-download or remove it.",
        ),
        (
            str(tmp_path / "b" / "broken.png"),
            f"{tmp_path / 'b' / 'broken.png'}: not an image file, although its extension is '.png'. Remove it or "
            "fix its contents.",
        ),
    ]
    assert not any("broken" in p or "empty" in p for p in data.paths)


def test_skip_bad_refuses_to_empty_a_class(tmp_path):
    make_tree(tmp_path, {"a": 2})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "only.png").write_text("not a png")
    with pytest.raises(DataError, match=r"every image of class\(es\) \['b'\] was unreadable"):
        load_folders(tmp_path, skip_bad=True)


def test_subset_then_decode_set(tmp_path):
    make_tree(tmp_path, {"a": 3, "b": 3})
    listed = load_folders(tmp_path, decode=False)
    data = decode_set(listed.subset([0, 4]), image_size=(2, 3))
    assert data.images.shape == (2, 2, 3, 3) and data.labels.tolist() == [0, 1]


# --------------------------------------------------------------------------------------------------------------
# C-NMC


@pytest.mark.parametrize(
    "name, patient, label",
    [
        ("UID_11_10_1_all.bmp", "11", "all"),
        ("UID_H10_100_2_hem.png", "H10", "hem"),
        ("UID_h3_1_1_hem.png", "H3", "hem"),
        ("UID_51_167_4_ALL.bmp", "51", "all"),
    ],
)
def test_parse_cnmc_name(name, patient, label):
    assert parse_cnmc_name(name) == (patient, label)


@pytest.mark.parametrize("name", ["cell_1.bmp", "UID_H10_hem.bmp", "UID_10_1_1_blast.bmp"])
def test_parse_cnmc_name_rejects(name):
    with pytest.raises(DataError, match="does not follow the C-NMC pattern"):
        parse_cnmc_name(name)


def test_load_cnmc_folds_patients_labels(cnmc_fold_tree):
    data = load_cnmc(cnmc_fold_tree)
    assert data.class_names == ["all", "hem"]
    assert data.folds.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert data.labels.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert data.groups.tolist() == ["1", "1", "H2", "H2", "3", "3", "H4", "H4"]
    assert data.images.shape == (8, 8, 6, 3)


def test_load_cnmc_label_mismatch(cnmc_fold_tree, tmp_path):
    write_image(tmp_path / "fold_1" / "hem" / "UID_5_1_1_all.bmp")
    with pytest.raises(
        DataError, match=r"UID_5_1_1_all\.bmp: the name says 'all' but the file sits in the 'hem' folder"
    ):
        load_cnmc(tmp_path)


def test_load_cnmc_bad_name_skipped_and_listed(cnmc_fold_tree, tmp_path):
    write_image(tmp_path / "fold_0" / "all" / "cell.bmp")
    with pytest.raises(DataError, match="cell.bmp: file name does not follow"):
        load_cnmc(tmp_path, decode=False)
    data = load_cnmc(tmp_path, skip_bad=True, decode=False)
    assert len(data) == 8 and [p.split("/")[-1] for p, _ in data.skipped] == ["cell.bmp"]


def test_load_cnmc_missing_hem(tmp_path):
    write_image(tmp_path / "all" / "UID_1_1_1_all.bmp")
    with pytest.raises(DataError, match="'hem' is missing"):
        load_cnmc(tmp_path)


# --------------------------------------------------------------------------------------------------------------
# npz


def save_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_load_npz(tmp_path):
    images = RNG.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2])
    data = load_npz(save_npz(tmp_path / "set.npz", images=images, labels=labels), class_names=["x", "y", "z"])
    np.testing.assert_array_equal(data.images, images)
    assert data.labels.tolist() == labels.tolist() and data.class_names == ["x", "y", "z"]
    assert data.paths is None and data.names()[0] == "index 0"


def test_load_npz_one_hot_and_gray(tmp_path):
    labels = np.eye(3)[[0, 2, 1, 2]]
    data = load_npz(save_npz(tmp_path / "set.npz", images=np.zeros((4, 5, 5), np.float32), labels=labels))
    assert data.labels.tolist() == [0, 2, 1, 2]
    assert data.images.shape == (4, 5, 5, 1) and data.class_names == ["0", "1", "2"]


IMAGES = np.zeros((4, 5, 5, 3), np.uint8)
LABELS = np.array([0, 1, 0, 1])
NAN_IMAGES = np.zeros((4, 5, 5, 3), np.float32)
NAN_IMAGES[2, 0, 0, 0] = np.nan
INF_IMAGES = np.zeros((4, 5, 5, 3), np.float32)
INF_IMAGES[1, 1, 1, 1] = np.inf

# name -> (writer(path), class_names, problem tag, words in the message)
BAD_NPZ = {
    "length_mismatch": (
        lambda p: save_npz(p, images=IMAGES, labels=LABELS[:3]),
        None,
        "length_mismatch",
        "4 images but 3 labels",
    ),
    "rank_2_images": (
        lambda p: save_npz(p, images=np.zeros((4, 25)), labels=LABELS),
        None,
        "bad_rank",
        "shape=(4, 25)",
    ),
    "five_channels": (
        lambda p: save_npz(p, images=np.zeros((4, 5, 5, 5)), labels=LABELS),
        None,
        "bad_rank",
        "C in 1/3/4",
    ),
    "rank_3_labels": (
        lambda p: save_npz(p, images=IMAGES, labels=np.zeros((4, 2, 2))),
        None,
        "bad_rank",
        "labels must have shape",
    ),
    "nan_images": (
        lambda p: save_npz(p, images=NAN_IMAGES, labels=LABELS),
        None,
        "non_finite",
        "1 image(s) hold NaN or inf",
    ),
    "inf_images": (lambda p: save_npz(p, images=INF_IMAGES, labels=LABELS), None, "non_finite", "NaN or inf"),
    "negative_labels": (
        lambda p: save_npz(p, images=IMAGES, labels=np.array([0, -1, 1, 0])),
        None,
        "bad_labels",
        ">= 0; found -1",
    ),
    "labels_outside_classes": (
        lambda p: save_npz(p, images=IMAGES, labels=np.array([0, 1, 2, 5])),
        ["a", "b", "c"],
        "bad_labels",
        "label 5 is outside the 3 classes",
    ),
    "fractional_labels": (
        lambda p: save_npz(p, images=IMAGES, labels=np.array([0, 0.5, 1, 1])),
        None,
        "bad_labels",
        "whole numbers",
    ),
    "one_class": (
        lambda p: save_npz(p, images=IMAGES, labels=np.zeros(4, int)),
        None,
        "too_few_classes",
        "two classes",
    ),
    "object_arrays": (
        lambda p: save_npz(p, images=np.array([np.zeros(3), np.zeros(2)], dtype=object), labels=LABELS[:2]),
        None,
        "pickled",
        "object (pickled) arrays",
    ),
    "missing_labels": (
        lambda p: save_npz(p, images=IMAGES, y=LABELS),
        None,
        "missing_array",
        "missing array(s) ['labels']",
    ),
    "not_a_zip": (lambda p: p.write_text("images,labels"), None, "not_npz", "not an npz archive"),
    "zero_bytes": (lambda p: p.write_bytes(b""), None, "empty_file", "empty (0 bytes)"),
    "truncated": (
        lambda p: p.write_bytes(save_npz(p, images=IMAGES, labels=LABELS).read_bytes()[:200]),
        None,
        "not_npz",
        "not an npz archive",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_bad_npz(tmp_path, case):
    write, class_names, problem, words = BAD_NPZ[case]
    path = tmp_path / f"{case}.npz"
    write(path)
    with pytest.raises(DataError, match=__import__("re").escape(words)) as info:
        load_npz(path, class_names=class_names)
    assert info.value.problem == problem
    assert f"{case}.npz" in str(info.value)


def test_corrupt_member_in_npz(tmp_path):
    path = tmp_path / "set.npz"
    images = np.random.default_rng(5).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.savez_compressed(path, images=images, labels=LABELS)
    data = bytearray(path.read_bytes())
    data[200:260] = b"\x00" * 60  # inside the compressed images member
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as info:
        load_npz(path)
    assert str(info.value) == f"{path}: not a readable npz file (Bad CRC-32 for file 'images.npy')."
    assert info.value.problem == "unreadable"


# --------------------------------------------------------------------------------------------------------------
# The staged data


def test_staged_all4(shared_data):
    data = load_folders(shared_data / "all4" / "Original", decode=False)
    assert data.class_counts() == {"Benign": 474, "Early": 926, "Pre": 905, "Pro": 756}
    sample = decode_set(data.subset([0, 500, 1500, 3000]))
    assert sample.images.shape == (4, 224, 224, 3)
    assert sample.labels.tolist() == [0, 1, 2, 3]


def test_staged_cnmc(shared_data):
    data = load_cnmc(shared_data / "cnmc", decode=False)
    assert data.class_counts() == {"all": 520, "hem": 320}
    assert data.folds is None
    patients = set(data.groups.tolist())
    assert len(patients) == 35 and "H3" in patients and "h3" not in patients
    assert {"H10", "H14", "2", "51"} <= patients
    hem_patients = set(data.groups[data.labels == 1].tolist())
    assert all(p.startswith("H") for p in hem_patients)
    sample = decode_set(data.subset([0, 839]), image_size=(32, 32), color_mode="grayscale")
    assert sample.images.shape == (2, 32, 32, 1)


def test_staged_cnmc_sample_bmp(shared_data):
    data = load_cnmc(shared_data / "cnmc-sample")
    assert data.images.shape == (6, 450, 450, 3)
    assert data.groups.tolist() == ["1", "1", "1", "H6", "H6", "H6"]
    assert (data.images[:, 0, 0] == 0).all()  # black corners, as PROVENANCE.md says


def test_image_set_subset_keeps_everything(tmp_path):
    data = ImageSet(
        labels=np.array([0, 1, 1]), class_names=["a", "b"], paths=["x", "y", "z"], groups=np.array(["p", "q", "q"])
    )
    part = data.subset([2, 0])
    assert part.paths == ["z", "x"] and part.groups.tolist() == ["q", "p"] and part.labels.tolist() == [1, 0]


def test_image_set_repr_summarises(tmp_path):
    listed = ImageSet(
        labels=np.array([0, 1, 1, 1]),
        class_names=["a", "b"],
        paths=[f"/data/long/path/{i}.png" for i in range(4)],
        groups=np.array(["p", "q", "q", "r"]),
        skipped=[("/data/x.png", "empty")],
        source="/data",
    )
    assert repr(listed) == (
        "ImageSet(4 items, classes={'a': 1, 'b': 3}, images=not decoded, groups=3 distinct, skipped=1, source='/data')"
    )
    decoded = ImageSet(
        labels=np.array([0, 1]),
        class_names=["a", "b"],
        images=np.zeros((2, 5, 6, 1), np.uint8),
        folds=np.array([1, 0]),
        source="set.npz",
    )
    assert repr(decoded) == (
        "ImageSet(2 items, classes={'a': 1, 'b': 1}, images=(2, 5, 6, 1) uint8, groups=None, folds=[0, 1], "
        "source='set.npz')"
    )


def test_repr_of_a_large_set_lists_no_paths(shared_data):
    data = load_folders(shared_data / "pbc", decode=False)
    classes = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]
    assert repr(data) == (
        f"ImageSet(2592 items, classes={dict.fromkeys(classes, 324)}, images=not decoded, groups=None, "
        f"source='{shared_data / 'pbc'}')"
    )


# --------------------------------------------------------------------------------------------------------------
# The top-level face


def test_import_medcnn_is_light_and_exports_the_first_names(fresh_python):
    code = (
        "import sys, medcnn; "
        "heavy = [m for m in ('keras', 'tensorflow', 'jax', 'torch', 'pandas', 'sklearn') if m in sys.modules]; "
        "print(heavy, sorted(medcnn.__all__))"
    )
    expected = [
        "DataError",
        "ImageSet",
        "__version__",
        "check_no_leakage",
        "grouped_kfold",
        "load_cnmc",
        "load_folders",
        "load_npz",
        "resolve_dataset",
        "stratified_kfold",
        "train_val_test_split",
        "validate_dataset",
    ]
    assert fresh_python(code) == f"[] {expected}"


def test_top_level_names_are_the_data_layer_functions():
    import medcnn
    from medcnn.data import loaders, paths, splits, validate
    from medcnn.errors import DataError

    assert medcnn.load_folders is loaders.load_folders and medcnn.ImageSet is ImageSet
    assert medcnn.validate_dataset is validate.validate_dataset and medcnn.resolve_dataset is paths.resolve_dataset
    assert medcnn.grouped_kfold is splits.grouped_kfold and medcnn.check_no_leakage is splits.check_no_leakage
    assert medcnn.DataError is DataError
