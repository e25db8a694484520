"""Tests for medcnn.data.karyogram: completing a metaphase, each aberration, the layout, leak-free data sets.

Most tests use a synthetic bank: every chromosome a dark bar whose length says its class (and its metaphase's
scale), so counts, lengths and positions have exact expected values. The last tests run on the staged crops.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.measure import label as label_components
from skimage.measure import regionprops

from medcnn.data.chromosomes import AUTOSOMES, KARYOTYPE_ORDER, load_chromosomes
from medcnn.data.karyogram import (
    ABERRATIONS,
    ROWS,
    assemble_karyotype,
    chromosome_bank,
    compose_karyogram,
    compose_karyograms,
    delete_segment,
    exchange_ends,
    metaphase_table,
    render_karyogram,
    trim_chromosome,
)
from medcnn.data.splits import train_val_test_split
from medcnn.errors import DataError

# Bar length per class at scale 1: autosomes 60, 58, ..., 18; X 46; Y 20. Bars are 8 px wide.
LENGTH = {**{name: 60 - 2 * index for index, name in enumerate(AUTOSOMES)}, "X": 46, "Y": 20}
WIDTH = 8
NUMBER = {"X": 23, "Y": 24}
# (case, cell, sex, scale, classes left out); cases 1 and 2 are one side of the split, 3 and 4 the other.
METAPHASES = [
    ("1", "11", "XX", 1.0, ()),
    ("1", "12", "XX", 1.0, ("7", "21")),
    ("1", "13", "XX", 1.5, ("X",)),
    ("2", "21", "XY", 1.0, ()),
    ("2", "22", "XY", 1.0, ("Y", "3")),
    ("3", "31", "XX", 1.0, ()),
    ("3", "32", "XX", 1.5, ("13",)),
    ("4", "41", "XY", 1.0, ("1",)),
    ("4", "42", "XY", 1.0, ()),
]
SIDES = {"train": ("1", "2"), "test": ("3", "4")}


def metaphase_id(case, cell):
    return f"{case}_{int(case) + 100}_{cell}"


def write_bar(path, length, width, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((length + 6, width + 6), 255, np.uint8)
    array[3:-3, 3:-3] = value
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    root = tmp_path_factory.mktemp("chromosomes")
    for case, cell, sex, scale, left_out in METAPHASES:
        counts = {**{name: 2 for name in AUTOSOMES}, "X": 2 if sex == "XX" else 1, "Y": 0 if sex == "XX" else 1}
        for name, count in counts.items():
            for copy in range(1, count + 1 - (name in left_out)):
                file = f"{NUMBER.get(name, name)}_{copy}_{case}_{int(case) + 100}_{cell}.png"
                value = 30 + KARYOTYPE_ORDER.index(name)  # darker than the baseline grey, one value per class
                write_bar(root / name / file, round(LENGTH[name] * scale), round(WIDTH * scale), value)
    return chromosome_bank(load_chromosomes(root))


def pool_of(side):
    return [metaphase_id(case, cell) for case, cell, *_ in METAPHASES if case in SIDES[side]]


def class_counts(chromosomes):
    return pd.Series([c.class_name for c in chromosomes]).value_counts().to_dict()


def normal_counts(sex):
    return {**{name: 2 for name in AUTOSOMES}, **({"X": 2} if sex == "XX" else {"X": 1, "Y": 1})}


# ----------------------------------------------------------------------------------------------------------------
# The bank


def test_trim_keeps_the_largest_object_and_whitens_the_rest():
    crop = np.full((30, 20), 255, np.uint8)
    crop[5:25, 6:12] = 50  # the chromosome, 20 x 6
    crop[22:24, 13:15] = 90  # a bit of a neighbour inside the box it would widen
    crop[0:2, 18:20] = 90  # another, outside
    trimmed = trim_chromosome(crop)
    assert trimmed.shape == (20, 6) and trimmed.max() == 50


def test_trim_blank_crop_incorrect():
    with pytest.raises(ValueError, match="no pixel darker than 245"):
        trim_chromosome(np.full((5, 5), 255, np.uint8))


def test_bank_measures_reference_sizes_and_metaphase_scales(bank):
    assert bank.reference["1"] == (60.0, 8.0) and bank.reference["Y"] == (20.0, 8.0)
    cells = metaphase_table(bank).set_index("metaphase")
    assert cells.loc[metaphase_id("1", "13"), "scale"] == pytest.approx(1.5, abs=0.03)
    assert cells.loc[metaphase_id("1", "11"), "scale"] == 1.0
    assert cells["sex"].to_dict() == {metaphase_id(case, cell): sex for case, cell, sex, *_ in METAPHASES}
    assert cells.loc[metaphase_id("1", "12"), "n_chromosomes"] == 44
    assert cells["complete"].sum() == 4


def test_bank_from_resized_crops_incorrect(bank):
    resized = load_chromosomes(Path(bank.table["path"].iloc[0]).parents[1], image_size=(16, 16))
    with pytest.raises(ValueError, match=r"build the bank from `load_chromosomes\(image_size=None\)`"):
        chromosome_bank(resized)


# ----------------------------------------------------------------------------------------------------------------
# Completing a metaphase


@pytest.mark.parametrize("case, cell", [("1", "12"), ("1", "13"), ("2", "22"), ("4", "41")])
def test_normal_karyotype_has_46_in_pairs(bank, case, cell):
    host = metaphase_id(case, cell)
    side = "train" if case in SIDES["train"] else "test"
    chromosomes, record = assemble_karyotype(bank, host, pool_of(side), seed=3)
    sex = dict((metaphase_id(c, m), s) for c, m, s, *_ in METAPHASES)[host]
    assert class_counts(chromosomes) == normal_counts(sex)
    assert record["n_chromosomes"] == 46 and record["karyotype"] == f"46,{sex}" and record["label"] == 0
    left_out = dict((metaphase_id(c, m), lo) for c, m, _, _, lo in METAPHASES)[host]
    assert record["borrowed"] == len(left_out)


def test_borrowed_chromosome_is_brought_to_the_host_scale(bank):
    """Host 1_12 (scale 1) lacks a 7 and a 21; the only donor is 1_13 at scale 1.5."""
    host, donor = metaphase_id("1", "12"), metaphase_id("1", "13")
    chromosomes, record = assemble_karyotype(bank, host, [host, donor], seed=0)
    borrowed = [c for c in chromosomes if donor in c.files[0]]
    assert sorted(c.class_name for c in borrowed) == ["21", "7"]
    for chromosome in borrowed:
        assert chromosome.image.shape[0] == pytest.approx(LENGTH[chromosome.class_name], abs=1)
        assert chromosome.image.shape[1] == pytest.approx(WIDTH, abs=1)
    assert record["metaphases"] == (host, donor)


@pytest.mark.parametrize("seed", range(8))
def test_donors_prefer_the_same_case(bank, seed):
    """Host 1_12 lacks a 7 and a 21; cases 1 and 2 could both donate, case 1 must."""
    host = metaphase_id("1", "12")
    chromosomes, _ = assemble_karyotype(bank, host, pool_of("train"), seed=seed)
    donors = [c.files[0] for c in chromosomes if host not in c.files[0]]
    assert len(donors) == 2 and all("_1_101_" in name for name in donors)


# ----------------------------------------------------------------------------------------------------------------
# Aberrations


@pytest.mark.parametrize(
    "aberration, changes, karyotype",
    [
        ("trisomy_13", {"13": 3}, "47,XX,+13"),
        ("trisomy_18", {"18": 3}, "47,XX,+18"),
        ("trisomy_21", {"21": 3}, "47,XX,+21"),
        ("monosomy_x", {"X": 1}, "45,X"),
        ("xxy", {"X": 2, "Y": 1}, "47,XXY"),
    ],
)
def test_numerical_aberration_on_a_female_host(bank, aberration, changes, karyotype):
    host = metaphase_id("1", "11")
    chromosomes, record = assemble_karyotype(bank, host, pool_of("train"), aberration, seed=1)
    assert class_counts(chromosomes) == {**normal_counts("XX"), **changes}
    assert record["karyotype"] == karyotype and record["label"] == 1
    assert record["n_chromosomes"] == sum({**normal_counts("XX"), **changes}.values())


@pytest.mark.parametrize(
    "aberration, changes, karyotype",
    [("trisomy_21", {"21": 3}, "47,XY,+21"), ("monosomy_x", {"X": 1, "Y": 0}, "45,X"), ("xxy", {"X": 2}, "47,XXY")],
)
def test_numerical_aberration_on_a_male_host(bank, aberration, changes, karyotype):
    host = metaphase_id("2", "21")
    chromosomes, record = assemble_karyotype(bank, host, pool_of("train"), aberration, seed=1)
    expected = {name: count for name, count in {**normal_counts("XY"), **changes}.items() if count}
    assert class_counts(chromosomes) == expected and record["karyotype"] == karyotype


def test_trisomy_homologue_comes_from_another_metaphase(bank):
    host = metaphase_id("1", "11")
    chromosomes, _ = assemble_karyotype(bank, host, pool_of("train"), "trisomy_21", seed=2)
    sources = [c.files[0] for c in chromosomes if c.class_name == "21"]
    assert sum(host in name for name in sources) == 2 and len(set(sources)) == 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_monosomy_leaves_one_autosome_single(bank, seed):
    chromosomes, record = assemble_karyotype(bank, metaphase_id("1", "11"), pool_of("train"), "monosomy", seed=seed)
    counts = class_counts(chromosomes)
    singles = [name for name in AUTOSOMES if counts.get(name) == 1]
    assert len(chromosomes) == 45 and len(singles) == 1 and record["karyotype"] == f"45,XX,-{singles[0]}"


def changed_pieces(bank, host, aberration, seed):
    """(normal, aberrant) chromosomes of the same host and seed, and the indices where they differ."""
    normal, _ = assemble_karyotype(bank, host, pool_of("train"), "normal", seed=seed)
    aberrant, record = assemble_karyotype(bank, host, pool_of("train"), aberration, seed=seed)
    assert len(normal) == len(aberrant) == 46
    changed = [i for i, (a, b) in enumerate(zip(normal, aberrant)) if a.image.shape != b.image.shape]
    return normal, aberrant, changed, record


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_deletion_shortens_one_chromosome(bank, seed):
    normal, aberrant, changed, record = changed_pieces(bank, metaphase_id("1", "11"), "deletion", seed)
    assert len(changed) == 1
    before, after = normal[changed[0]], aberrant[changed[0]]
    lost = before.image.shape[0] - after.image.shape[0]
    assert 0.19 * before.image.shape[0] <= lost <= 0.36 * before.image.shape[0]
    assert f"del({before.class_name})" in record["karyotype"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_translocation_changes_two_chromosomes_and_keeps_their_material(bank, seed):
    normal, aberrant, changed, record = changed_pieces(bank, metaphase_id("1", "11"), "translocation", seed)
    assert len(changed) == 2
    first, second = (normal[i] for i in changed)
    assert first.class_name != second.class_name
    assert f"t({first.class_name};{second.class_name})" in record["karyotype"]
    lengths_before = sum(normal[i].image.shape[0] for i in changed)
    assert sum(aberrant[i].image.shape[0] for i in changed) == lengths_before
    # each derivative now holds pixels of the other's class value (30 + class index)
    for index, other in zip(changed, (second, first)):
        assert (aberrant[index].image == 30 + KARYOTYPE_ORDER.index(other.class_name)).any()


def test_delete_segment_terminal_and_interstitial():
    image = np.arange(10, dtype=np.uint8)[:, None].repeat(3, axis=1)
    assert delete_segment(image, 0, 3)[:, 0].tolist() == [3, 4, 5, 6, 7, 8, 9]
    assert delete_segment(image, 7, 10)[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert delete_segment(image, 4, 6)[:, 0].tolist() == [0, 1, 2, 3, 6, 7, 8, 9]


def test_delete_segment_incorrect():
    with pytest.raises(ValueError, match=r"Received: start=0, stop=10 for length 10"):
        delete_segment(np.zeros((10, 3), np.uint8), 0, 10)


def test_exchange_ends_swaps_the_q_arm_ends():
    first = np.full((10, 4), 1, np.uint8)
    first[6:] = 2
    second = np.full((6, 2), 7, np.uint8)
    second[4:] = 8
    der_first, der_second = exchange_ends(first, second, 4, 2)
    assert der_first.shape == (8, 4) and der_second.shape == (8, 4)
    assert der_first[:, 1].tolist() == [1] * 6 + [8] * 2
    assert der_first[6, 0] == 255  # the narrower segment is centred on white
    assert der_second[:, 1].tolist() == [7] * 4 + [2] * 4


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(aberration="trisomy_22"), r"`aberration` must be 'normal' or one of"),
        (dict(pool=["1_101_12"]), r"The host metaphase must be in the donor pool"),
        (dict(pool=["1_101_11", "9_109_99"]), r"`pool` names metaphases that are not in the bank: \['9_109_99'\]"),
    ],
)
def test_assemble_arguments_incorrect(bank, arguments, message):
    kwargs = dict(metaphase="1_101_11", pool=pool_of("train"), aberration="normal")
    with pytest.raises(ValueError, match=message):
        assemble_karyotype(bank, **{**kwargs, **arguments})


def test_pool_without_a_donor_names_the_class(bank):
    host = metaphase_id("1", "12")  # lacks a 7 and a 21
    with pytest.raises(DataError, match=r"No chromosome 7 in the donor pool \(1 metaphases\) outside metaphase"):
        assemble_karyotype(bank, host, [host])


# ----------------------------------------------------------------------------------------------------------------
# Layout


def dark_objects(image):
    """Bounding boxes (min_row, min_col, max_row, max_col) of the bars, not of the grey baselines."""
    return [region.bbox for region in regionprops(label_components(image < 100, connectivity=2))]


def test_render_places_each_chromosome_in_its_row(bank):
    host = metaphase_id("1", "11")
    chromosomes, _ = assemble_karyotype(bank, host, pool_of("train"))
    canvas = render_karyogram(chromosomes, bank.reference, scale=1.0, size=None)
    boxes = dark_objects(canvas)
    assert len(boxes) == 46
    bottoms = sorted({box[2] for box in boxes})
    assert len(bottoms) == 4  # every chromosome stands on one of four baselines
    per_row = [sum(box[2] == bottom for box in boxes) for bottom in bottoms]
    assert per_row == [10, 14, 12, 10]  # pairs 1-5, 6-12, 13-18, 19-22 + XX
    row_of_first = [box for box in boxes if box[2] == bottoms[0]]
    assert sorted(box[2] - box[0] for box in row_of_first) == sorted(2 * [LENGTH[n] for n in AUTOSOMES[:5]])
    assert [len(row) for row in ROWS] == [5, 7, 6, 5]


def test_render_trisomy_shows_a_third_chromosome(bank):
    host = metaphase_id("1", "11")
    chromosomes, _ = assemble_karyotype(bank, host, pool_of("train"), "trisomy_21")
    boxes = dark_objects(render_karyogram(chromosomes, bank.reference, size=None))
    bottom = max(box[2] for box in boxes)
    assert len(boxes) == 47 and sum(box[2] == bottom for box in boxes) == 11


def test_scale_is_one_for_the_whole_karyogram(bank):
    """A scale-1.5 host at size=None is 1.5 times larger; at a fixed size it equals the scale-1 layout."""
    small, _ = compose_karyogram(bank, metaphase_id("3", "31"), pool_of("test"), size=None)
    large, _ = compose_karyogram(bank, metaphase_id("3", "32"), pool_of("test"), size=None)
    assert large.shape[0] == pytest.approx(1.5 * small.shape[0], abs=2)
    fixed_small, _ = compose_karyogram(bank, metaphase_id("3", "31"), pool_of("test"), size=(200, 200))
    fixed_large, _ = compose_karyogram(bank, metaphase_id("3", "32"), pool_of("test"), size=(200, 200))
    heights = [sorted(box[2] - box[0] for box in dark_objects(image))[-1] for image in (fixed_small, fixed_large)]
    assert heights[0] == pytest.approx(heights[1], abs=2)


def test_compose_gives_the_size_on_white(bank):
    image, _ = compose_karyogram(bank, metaphase_id("1", "11"), pool_of("train"), size=(96, 128))
    assert image.shape == (96, 128) and image.dtype == np.uint8
    assert image[0, 0] == image[-1, -1] == 255 and image.min() < 100


# ----------------------------------------------------------------------------------------------------------------
# A data set per side of the split


def test_data_set_balance_labels_and_records(bank):
    images, labels, info = compose_karyograms(bank, pool_of("train"), n_normal=5, n_abnormal=8, size=(64, 64))
    assert images.shape == (13, 64, 64, 1) and images.dtype == np.uint8
    assert labels.tolist() == info["label"].tolist() and labels.sum() == 8
    assert sorted(info.loc[info["label"] == 1, "aberration"]) == sorted(ABERRATIONS)
    assert (info.loc[info["label"] == 0, "aberration"] == "normal").all()
    expected_counts = info["karyotype"].str.split(",").str[0].astype(int)
    assert info["n_chromosomes"].tolist() == expected_counts.tolist()
    hosts = info["host_metaphase"].value_counts()
    assert set(hosts.index) == set(pool_of("train")) and hosts.max() - hosts.min() <= 2


def test_train_and_test_share_no_file(bank):
    files, metaphases = {}, {}
    for side in SIDES:
        _, _, info = compose_karyograms(bank, pool_of(side), n_normal=6, n_abnormal=8, size=(32, 32), seed=4)
        files[side] = set().union(*info["files"])
        metaphases[side] = set().union(*info["metaphases"])
    assert not files["train"] & files["test"]
    assert metaphases["train"] <= set(pool_of("train")) and metaphases["test"] <= set(pool_of("test"))


def test_same_seed_same_data_set_other_seed_other(bank):
    first = compose_karyograms(bank, pool_of("train"), 3, 3, size=(48, 48), seed=7)
    again = compose_karyograms(bank, pool_of("train"), 3, 3, size=(48, 48), seed=7)
    other = compose_karyograms(bank, pool_of("train"), 3, 3, size=(48, 48), seed=8)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    pd.testing.assert_frame_equal(first[2], again[2])
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(n_normal=-1), r"`n_normal` must be an int >= 0. Received: n_normal=-1"),
        (dict(n_abnormal=2.5), r"`n_abnormal` must be an int >= 0. Received: n_abnormal=2.5"),
        (dict(aberrations=("trisomy_9",)), r"`aberrations` must be a non-empty subset of"),
        (dict(metaphases=[]), r"`metaphases` is empty"),
    ],
)
def test_data_set_arguments_incorrect(bank, arguments, message):
    kwargs = dict(metaphases=pool_of("train"), n_normal=1, n_abnormal=1, size=(32, 32))
    with pytest.raises(ValueError, match=message):
        compose_karyograms(bank, **{**kwargs, **arguments})


# ----------------------------------------------------------------------------------------------------------------
# The staged crops


@pytest.fixture(scope="module")
def staged_bank(shared_data):
    return chromosome_bank(load_chromosomes(shared_data / "chromosomes"))


def test_staged_metaphases(staged_bank):
    cells = metaphase_table(staged_bank)
    assert len(cells) == 59 and cells["case"].nunique() == 14 and cells["complete"].sum() == 6
    assert cells.groupby("case")["sex"].first().value_counts().to_dict() == {"XX": 8, "XY": 6}


@pytest.mark.filterwarnings("ignore::medcnn.data.splits.LopsidedSplitWarning")
def test_staged_case_split_composes_without_shared_files(staged_bank):
    cells = metaphase_table(staged_bank)
    parts = train_val_test_split(cells["sex"].eq("XY").to_numpy(int), (0.6, 0.4), groups=cells["case"].to_numpy())
    files = []
    for part in parts:
        side = cells["metaphase"].iloc[part].tolist()
        images, labels, info = compose_karyograms(staged_bank, side, n_normal=2, n_abnormal=3, size=(64, 64))
        assert images.shape == (5, 64, 64, 1) and labels.sum() == 3
        assert set().union(*info["metaphases"]) <= set(side)
        files.append(set().union(*info["files"]))
    assert not files[0] & files[1]


def test_staged_normal_karyogram_is_complete(staged_bank):
    cells = metaphase_table(staged_bank)
    host = cells.loc[~cells["complete"] & cells["sex"].eq("XY"), "metaphase"].iloc[0]
    case_cells = cells.loc[cells["case"] == cells.set_index("metaphase").at[host, "case"], "metaphase"]
    chromosomes, record = assemble_karyotype(staged_bank, host, case_cells.tolist(), seed=0)
    assert class_counts(chromosomes) == normal_counts("XY") and record["borrowed"] >= 1
