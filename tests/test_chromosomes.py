"""Tests for medcnn.data.chromosomes: karyotype order, case groups, file-name metadata, pad vs stretch, bad names."""

import struct

import numpy as np
import pytest
from PIL import Image

from medcnn.data.chromosomes import (
    KARYOTYPE_ORDER,
    canonical_class,
    chromosome_metadata,
    convert_cirnet,
    fit_image,
    fit_images,
    load_chromosomes,
    parse_chromosome_name,
    read_cirnet_tiff,
)
from medcnn.data.splits import check_no_leakage, train_val_test_split
from medcnn.errors import DataError

FOLDERS = [str(n) for n in range(1, 23)] + ["X", "Y"]
NUMBERS = {"X": 23, "Y": 24}


def write_crop(path, height, width, value=60):
    """A white crop of (height, width) with a dark bar 2 px in from each side."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((height, width), 255, np.uint8)
    array[2:-2, 2:-2] = value
    Image.fromarray(array).save(path)
    return path


def cirnet_name(folder, copy, case, cell):
    return f"{NUMBERS.get(folder, folder)}_{copy}_{case}_{int(case) + 1000}_{cell}.png"


@pytest.fixture
def tree(tmp_path):
    """24 class folders; case 100 (cell 11) and case 200 (cell 21) each give one crop per class, of its own size."""
    for index, folder in enumerate(FOLDERS):
        write_crop(tmp_path / folder / cirnet_name(folder, 1, "100", "11"), 40 - index, 12)
        write_crop(tmp_path / folder / cirnet_name(folder, 2, "200", "21"), 30, 10 + index % 3)
    return tmp_path


# ----------------------------------------------------------------------------------------------------------------
# File names


@pytest.mark.parametrize(
    "name, expected",
    [
        ("21_2_56131_115966_1341591.png", ("21", 2, "56131", "56131_115966_1341591")),
        ("1_1_56131_115966_1341591.png", ("1", 1, "56131", "56131_115966_1341591")),
        ("23_1_56374_116580_1353582.png", ("X", 1, "56374", "56374_116580_1353582")),
        ("24_1_56374_116580_1353582.tiff", ("Y", 1, "56374", "56374_116580_1353582")),
    ],
)
def test_parse_chromosome_name(name, expected):
    meta = parse_chromosome_name(f"some/folder/{name}")
    assert (meta["class_name"], meta["copy"], meta["case"], meta["metaphase"]) == expected


@pytest.mark.parametrize(
    "name", ["25_1_56131_115966_1341591.png", "0_1_56131_115966_1341591.png", "21_1_56131_115966.png", "chr21.png"]
)
def test_parse_chromosome_name_rejects_bad_names(name):
    with pytest.raises(DataError, match=rf"{name}: file name does not follow the CIR-Net pattern") as info:
        parse_chromosome_name(name)
    assert info.value.problem == "bad_name"


@pytest.mark.parametrize(
    "folder, expected", [("1", "1"), ("22", "22"), ("23", "X"), ("24", "Y"), ("x", "X"), ("chr7", "7"), ("25", None)]
)
def test_canonical_class(folder, expected):
    assert canonical_class(folder) == expected


# ----------------------------------------------------------------------------------------------------------------
# Loading


def test_labels_follow_karyotype_order_and_groups_are_cases(tree):
    data = load_chromosomes(tree)
    assert data.class_names == list(KARYOTYPE_ORDER)
    names = data.names()
    expected = {cirnet_name(folder, copy, case, cell): index for index, folder in enumerate(FOLDERS)
                for copy, case, cell in ((1, "100", "11"), (2, "200", "21"))}  # fmt: skip
    assert {name: int(label) for name, label in zip(names, data.labels)} == expected
    assert data.class_counts() == {name: 2 for name in FOLDERS}
    assert [group for name, group in zip(names, data.groups) if name.startswith("10_")] == ["100", "200"]


def test_native_size_keeps_each_crop_shape(tree):
    data = load_chromosomes(tree)
    assert isinstance(data.images, list)
    by_name = dict(zip(data.names(), data.images))
    assert by_name["10_1_100_1100_11.png"].shape == (31, 12, 1)  # folder index 9: height 40 - 9
    assert by_name["24_2_200_1200_21.png"].shape == (30, 12, 1)  # folder index 23: width 10 + 23 % 3


def test_image_size_fits_every_crop_with_the_chosen_resize(tree):
    padded = load_chromosomes(tree, image_size=(20, 20))
    stretched = load_chromosomes(tree, image_size=(20, 20), resize="stretch")
    assert padded.images.shape == stretched.images.shape == (48, 20, 20, 1)
    assert padded.images.dtype == np.uint8
    # A 40x12 crop: padded keeps its 10:3 shape, so white columns remain at both sides; stretched fills the width.
    first = padded.names().index("1_1_100_1100_11.png")
    assert padded.images[first, :, 0, 0].tolist() == [255] * 20
    assert stretched.images[first, 10, :, 0].min() < 255 and stretched.images[first, 10, 0, 0] == 255


def test_rgb_mode_gives_three_equal_channels(tree):
    data = load_chromosomes(tree, image_size=(16, 16), color_mode="rgb")
    assert data.images.shape == (48, 16, 16, 3)
    np.testing.assert_array_equal(data.images[..., 0], data.images[..., 2])


def test_decode_false_lists_without_reading(tree):
    data = load_chromosomes(tree, decode=False)
    assert data.images is None and len(data) == 48 and len(set(data.groups)) == 2


def test_class_order_reorders_labels(tree):
    order = tuple(reversed(KARYOTYPE_ORDER))
    data = load_chromosomes(tree, class_order=order, decode=False)
    assert data.class_names == list(order)
    y_label = [label for name, label in zip(data.names(), data.labels) if name.startswith("24_")]
    assert y_label == [0, 0]


def test_folder_not_in_class_order_is_named(tree):
    with pytest.raises(DataError, match=r"folder\(s\) \['1'\] are not in class_order"):
        load_chromosomes(tree, class_order=KARYOTYPE_ORDER[1:], decode=False)


def test_class_without_folder_is_named(tree):
    for path in (tree / "Y").iterdir():
        path.unlink()
    (tree / "Y").rmdir()
    with pytest.raises(DataError, match=r"no folder for class\(es\) \['Y'\]"):
        load_chromosomes(tree, decode=False)


@pytest.mark.parametrize("order", [("1", "Z"), ("1", "1"), "12"])
def test_class_order_incorrect(tree, order):
    with pytest.raises(ValueError, match=r"`class_order` must list chromosome classes .* Received: class_order="):
        load_chromosomes(tree, class_order=order)


def test_folders_23_and_24_and_other_names_load_without_groups(tmp_path):
    """A BioImLab-like tree: folders 1..24, file names without case or metaphase."""
    for number in range(1, 25):
        write_crop(tmp_path / str(number) / f"cell_{number}_a.png", 30, 10)
    data = load_chromosomes(tmp_path, image_size=(12, 12))
    assert data.class_names == list(KARYOTYPE_ORDER) and data.groups is None
    assert [label for name, label in zip(data.names(), data.labels) if name == "cell_23_a.png"] == [22]


def test_bad_name_raises_naming_the_file(tree):
    bad = write_crop(tree / "5" / "5_1_100_oops.png", 20, 8)
    with pytest.raises(DataError, match=rf"{bad}: file name does not follow"):
        load_chromosomes(tree, decode=False)


def test_bad_name_with_skip_bad_is_listed(tree):
    bad = write_crop(tree / "5" / "5_1_100_oops.png", 20, 8)
    data = load_chromosomes(tree, skip_bad=True)
    assert len(data) == 48 and [path for path, _ in data.skipped] == [str(bad)]


def test_name_disagreeing_with_its_folder_raises(tree):
    wrong = write_crop(tree / "5" / "6_1_300_1300_31.png", 20, 8)
    with pytest.raises(DataError, match=rf"{wrong}: the name says class 6 but the file sits in the folder of class 5"):
        load_chromosomes(tree, decode=False)


def test_unreadable_file_with_skip_bad_is_listed(tree):
    broken = tree / "7" / "7_1_300_1300_31.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError, match=str(broken)):
        load_chromosomes(tree)
    data = load_chromosomes(tree, skip_bad=True)
    assert len(data) == 48 and [path for path, _ in data.skipped] == [str(broken)]


def test_metadata_follows_the_set_after_subset(tree):
    data = load_chromosomes(tree, decode=False)
    picked = data.subset([0, len(data) - 1])
    table = chromosome_metadata(picked)
    assert table["file"].tolist() == picked.names()
    assert table[["class_name", "case", "metaphase"]].values.tolist() == [
        ["1", "100", "100_1100_11"],
        ["Y", "200", "200_1200_21"],
    ]


# ----------------------------------------------------------------------------------------------------------------
# Pad vs stretch


def bar(height, width):
    image = np.full((height, width), 255, np.uint8)
    image[:, width // 4 : width - width // 4] = 0
    return image


def test_pad_keeps_the_aspect_ratio_and_centres():
    crop = np.zeros((40, 10), np.uint8)  # all dark, on no background: the padding value is given
    out = fit_image(crop, (20, 20), mode="pad", background=255)
    dark_rows, dark_cols = np.nonzero(out < 128)
    assert out.shape == (20, 20)
    assert (dark_rows.min(), dark_rows.max()) == (0, 19)
    assert (dark_cols.min(), dark_cols.max()) == (7, 11)  # 10 * 20 / 40 = 5 columns, left at (20 - 5) // 2


def test_stretch_fills_the_size():
    crop = np.zeros((40, 10), np.uint8)
    out = fit_image(crop, (20, 20), mode="stretch")
    assert out.shape == (20, 20) and out.max() == 0


def test_pad_takes_the_background_from_the_border():
    crop = bar(30, 8)  # white border columns
    out = fit_image(crop, (16, 32))
    assert out[:, 0].tolist() == [255] * 16 and out[:, -1].tolist() == [255] * 16
    crop_on_black = 255 - bar(30, 8)
    assert fit_image(crop_on_black, (16, 32))[:, 0].tolist() == [0] * 16


def test_fit_keeps_the_channel_axis_and_stacks():
    crops = [bar(30, 8)[..., None], bar(12, 20)[..., None]]
    out = fit_images(crops, (10, 10), mode="pad")
    assert out.shape == (2, 10, 10, 1) and out.dtype == np.uint8


def test_fit_mode_incorrect():
    with pytest.raises(ValueError, match=r"`mode` must be one of \('pad', 'stretch'\). Received: mode='crop'"):
        fit_image(bar(10, 4), (8, 8), mode="crop")


def test_fit_image_size_incorrect():
    with pytest.raises(ValueError, match=r"Received: image_size=\(8, -1\)"):
        fit_image(bar(10, 4), (8, -1))


# ----------------------------------------------------------------------------------------------------------------
# The staged CIR-Net crops


def test_staged_set_in_karyotype_order_with_cases_and_metaphases(shared_data):
    data = load_chromosomes(shared_data / "chromosomes", decode=False)
    counts = data.class_counts()
    assert list(counts) == list(KARYOTYPE_ORDER)
    assert len(data) == 2546 and counts["1"] == 111 and counts["21"] == 108 and counts["X"] == 85 and counts["Y"] == 25
    table = chromosome_metadata(data)
    assert table["case"].nunique() == 14 and table["metaphase"].nunique() == 59
    np.testing.assert_array_equal(table["case"].to_numpy(), data.groups)
    index = data.names().index("21_1_56131_115966_1341591.png")
    assert data.labels[index] == 20 and data.groups[index] == "56131"


@pytest.mark.filterwarnings("ignore::medcnn.data.splits.LopsidedSplitWarning")  # Y sits in few cases
def test_staged_set_case_grouped_split_is_one_call(shared_data):
    data = load_chromosomes(shared_data / "chromosomes", decode=False)
    train, val, test = train_val_test_split(data.labels, (0.7, 0.15, 0.15), seed=0, groups=data.groups)
    sides = [set(data.groups[part]) for part in (train, val, test)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert len(train) + len(val) + len(test) == len(data)
    check_no_leakage({"train": train, "val": val, "test": test}, groups=data.groups)


# ----------------------------------------------------------------------------------------------------------------
# Converting the original TIFF files


def write_cirnet_tiff(path, pixels):
    """A TIFF laid out as the CIR-Net archive's: two strips listed, the first holds the image, the second lies past
    the end of the file."""
    height, width = pixels.shape
    data = pixels.tobytes() + b"\0" * (len(pixels.tobytes()) % 2)
    ifd = 8 + len(data)
    arrays = ifd + 2 + 9 * 12 + 4

    def entry(tag, kind, count, value):
        return struct.pack("<HHI", tag, kind, count) + value

    def short(value):
        return struct.pack("<HH", value, 0)

    entries = [
        entry(256, 3, 1, short(width)),
        entry(257, 3, 1, short(height)),
        entry(258, 3, 1, short(8)),
        entry(259, 3, 1, short(1)),
        entry(262, 3, 1, short(1)),
        entry(273, 4, 2, struct.pack("<I", arrays)),
        entry(277, 3, 1, short(1)),
        entry(278, 3, 1, short(height)),
        entry(279, 4, 2, struct.pack("<I", arrays + 8)),
    ]
    strips = struct.pack("<2I", 8, 8 + 4096) + struct.pack("<2I", height * width, height * width)
    header = b"II*\0" + struct.pack("<I", ifd)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + data + struct.pack("<H", len(entries)) + b"".join(entries) + b"\0" * 4 + strips)
    return path


def test_read_cirnet_tiff_reads_the_first_strip(tmp_path):
    pixels = np.arange(7 * 8, dtype=np.uint8).reshape(7, 8)
    path = write_cirnet_tiff(tmp_path / "21_1_100_1100_11.tiff", pixels)
    with pytest.raises(OSError, match="truncated"):  # what Pillow makes of these files
        Image.open(path).load()
    np.testing.assert_array_equal(read_cirnet_tiff(path), pixels)


def test_read_cirnet_tiff_compressed_incorrect(tmp_path):
    path = tmp_path / "1_1_100_1100_11.tiff"
    Image.fromarray(np.zeros((6, 4), np.uint8)).save(path, compression="tiff_lzw")
    with pytest.raises(DataError, match=rf"{path}: expected one uncompressed 8-bit grayscale image"):
        read_cirnet_tiff(path)


def test_convert_cirnet_writes_class_folders(tmp_path):
    pixels = np.full((5, 4), 200, np.uint8)
    write_cirnet_tiff(tmp_path / "raw" / "sub" / "23_2_100_1100_11.tiff", pixels)
    write_cirnet_tiff(tmp_path / "raw" / "7_1_100_1100_11.tiff", pixels - 100)
    assert convert_cirnet(tmp_path / "raw", tmp_path / "out") == 2
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "X" / "23_2_100_1100_11.png")), pixels)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "7" / "7_1_100_1100_11.png")), pixels - 100)
    with pytest.raises(DataError, match="already exists"):
        convert_cirnet(tmp_path / "raw", tmp_path / "out")
