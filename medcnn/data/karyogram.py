"""Karyogram stand-ins for the `kth` study, composed from real G-banded chromosome crops.

The KTH thesis (2020) classifies whole karyogram images as normal or abnormal; its 146 karyograms are private. This
module lays out the chromosomes of one real metaphase (the CIR-Net crops, see `medcnn.data.chromosomes`) the way a
karyogram does and makes abnormal ones the way real aberrations look:

- numerical: trisomy 13, 18 or 21 (a homologue from another metaphase added), monosomy of an autosome, 45,X, 47,XXY;
- structural: a deleted arm segment (terminal or interstitial), a reciprocal translocation swapping the end segments
  of two chromosomes.

Layout: pairs 1-5, 6-12, 13-18 and 19-22 + X/Y in four rows on a white background, each row's chromosomes standing on
a baseline, at one scale for the whole karyogram. Only 6 of the 59 staged metaphases hold all 46 chromosomes, so a
metaphase is completed with chromosomes of the same class borrowed from other metaphases (same case first), rescaled
to the host's scale. Donors come ONLY from the pool the caller passes (one side of a split), so no chromosome image
crosses from training to test. numpy / scikit-image only.

Typical use:

    data = load_chromosomes()                       # crops at their own size
    bank = chromosome_bank(data)
    cells = metaphase_table(bank)                   # one row per metaphase: case, sex, count, scale
    train, val, test = train_val_test_split(cells["sex"].eq("XY"), (0.64, 0.16, 0.2), groups=cells["case"])
    images, labels, info = compose_karyograms(bank, cells["metaphase"].iloc[train], 67, 26)
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from skimage.measure import label as label_components

from medcnn.data.chromosomes import AUTOSOMES, KARYOTYPE_ORDER, chromosome_metadata, fit_image
from medcnn.data.imageio import check_image_size, read_image
from medcnn.errors import DataError

NORMAL = "normal"
# Every aberration the composer makes, in the order a notebook lists them.
ABERRATIONS = (
    "trisomy_13",
    "trisomy_18",
    "trisomy_21",
    "monosomy",
    "monosomy_x",
    "xxy",
    "deletion",
    "translocation",
)
ABERRATION_DESCRIPTIONS = {
    NORMAL: "46,XX or 46,XY",
    "trisomy_13": "47,+13 (Patau syndrome): a third chromosome 13",
    "trisomy_18": "47,+18 (Edwards syndrome): a third chromosome 18",
    "trisomy_21": "47,+21 (Down syndrome): a third chromosome 21",
    "monosomy": "45,-N: one autosome missing its homologue",
    "monosomy_x": "45,X (Turner syndrome): one X, no second sex chromosome",
    "xxy": "47,XXY (Klinefelter syndrome): two X and a Y",
    "deletion": "46,del(N): a terminal or interstitial segment of one arm lost",
    "translocation": "46,t(A;B): the end segments of two chromosomes swapped",
}
KARYOGRAM_CLASSES = ("normal", "abnormal")
# The karyogram's rows; each slot holds the copies of its classes side by side.
ROWS = (
    tuple((name,) for name in AUTOSOMES[0:5]),
    tuple((name,) for name in AUTOSOMES[5:12]),
    tuple((name,) for name in AUTOSOMES[12:18]),
    (*((name,) for name in AUTOSOMES[18:22]), ("X", "Y")),
)
# Chromosomes whose p arm is a satellite stalk (acrocentric): only q-arm deletions are visible.
ACROCENTRIC = ("13", "14", "15", "21", "22")
FOREGROUND_BELOW = 245  # crop pixels darker than this are chromosome (the white background is 251-255)
DELETED_SHARE = (0.2, 0.35)  # share of a chromosome's length a deletion removes
TRANSLOCATED_SHARE = (0.3, 0.5)  # share of each chromosome's length a translocation moves
BASELINE_VALUE = 120  # grey of the line each pair stands on


class Chromosome(NamedTuple):
    """One chromosome placed in a karyogram: its class, its image (2-D uint8, white background, at the host
    metaphase's scale) and the names of the files it was cut from (two for a translocation's derivative)."""

    class_name: str
    image: np.ndarray
    files: tuple


@dataclass(repr=False)
class ChromosomeBank:
    """Chromosome crops trimmed to the chromosome, with what the composer needs to know about each.

    `table` has one row per crop (row i describes `crops[i]`): the `chromosome_metadata` columns plus `length` and
    `width` (pixels of the trimmed crop), `sex` of the case ('XY' when any crop of the case in the bank is a Y, else
    'XX') and `scale` of the metaphase (the median of length / reference length over its chromosomes).
    `reference` maps each class to its median (length, width).
    """

    table: pd.DataFrame
    crops: list
    reference: dict

    def __len__(self):
        return len(self.crops)

    def __repr__(self):
        return (
            f"ChromosomeBank({len(self)} crops, {self.table['metaphase'].nunique()} metaphases, "
            f"{self.table['case'].nunique()} cases)"
        )


# ----------------------------------------------------------------------------------------------------------------
# The bank


def trim_chromosome(crop, threshold=FOREGROUND_BELOW):
    """`crop` cut to the bounding box of its largest dark object; other objects (bits of neighbours) turn white.

    Args:
        crop: 2-D uint8 array, dark chromosome on a light background.
        threshold: pixels below it are foreground.

    Returns:
        A 2-D uint8 array.
    """
    crop = np.asarray(crop)
    components = label_components(crop < threshold, connectivity=2)
    if components.max() == 0:
        raise ValueError(f"The crop holds no pixel darker than {threshold}: no chromosome to trim.")
    largest = np.bincount(components.ravel())[1:].argmax() + 1
    rows, cols = np.nonzero(components == largest)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    trimmed = crop[box].copy()
    others = components[box]
    trimmed[(others != 0) & (others != largest)] = 255
    return trimmed


def chromosome_bank(data):
    """Trim every crop of a `load_chromosomes` set and measure it; the material for the composer.

    Args:
        data: an `ImageSet` from `load_chromosomes(image_size=None)` (decoded at the crops' own size, or listed
            with `decode=False`, then read here) with CIR-Net file names.

    Returns:
        A `ChromosomeBank`.
    """
    table = chromosome_metadata(data)
    if data.images is not None and hasattr(data.images, "shape"):
        raise ValueError(
            "`data` holds resized crops; build the bank from `load_chromosomes(image_size=None)` so each "
            f"chromosome keeps its own size. Received: images.shape={data.images.shape}"
        )
    crops = []
    for index, path in enumerate(table["path"]):
        image = data.images[index] if data.images is not None else read_image(path, color_mode="grayscale")
        try:
            crops.append(trim_chromosome(np.asarray(image)[..., 0] if np.ndim(image) == 3 else image))
        except ValueError as error:
            raise DataError(f"{path}: {error} Remove the file or replace it.", path=path, problem="blank") from None
    table["length"] = [crop.shape[0] for crop in crops]
    table["width"] = [crop.shape[1] for crop in crops]
    grouped = table.groupby("class_name")
    reference = {
        name: (float(grouped["length"].median()[name]), float(grouped["width"].median()[name]))
        for name in grouped.groups
    }
    missing = [name for name in KARYOTYPE_ORDER if name not in reference]
    if missing:
        raise DataError(
            f"{data.source}: no crop of class(es) {missing}; a karyogram needs every class 1..22, X, Y.",
            path=data.source,
            problem="empty_class",
        )
    relative = table["length"] / table["class_name"].map(lambda name: reference[name][0])
    table["scale"] = relative.groupby(table["metaphase"]).transform("median")
    male_cases = set(table.loc[table["class_name"] == "Y", "case"])
    table["sex"] = np.where(table["case"].isin(male_cases), "XY", "XX")
    return ChromosomeBank(table=table, crops=crops, reference=reference)


def metaphase_table(bank):
    """One row per metaphase: metaphase, case, sex, n_chromosomes, complete (all 46 present), scale."""
    table = bank.table
    cells = table.groupby("metaphase", sort=True).agg(
        case=("case", "first"), sex=("sex", "first"), n_chromosomes=("path", "size"), scale=("scale", "first")
    )
    cells.insert(3, "complete", cells["n_chromosomes"] == 46)
    return cells.reset_index()


# ----------------------------------------------------------------------------------------------------------------
# Structural changes to one chromosome (fixed operations; the composer draws their arguments)


def _stack(top, bottom):
    """`top` above `bottom`, both centred on the wider one's width, white elsewhere."""
    width = max(top.shape[1], bottom.shape[1])
    out = np.full((top.shape[0] + bottom.shape[0], width), 255, np.uint8)
    for rows, part in ((slice(0, top.shape[0]), top), (slice(top.shape[0], None), bottom)):
        left = (width - part.shape[1]) // 2
        out[rows, left : left + part.shape[1]] = part
    return out


def delete_segment(image, start, stop):
    """`image` without rows `start:stop` (the p arm is on top): a terminal deletion when the segment touches an
    end, an interstitial one otherwise."""
    length = image.shape[0]
    if not 0 <= start < stop <= length or stop - start == length:
        raise ValueError(
            f"`start:stop` must name rows inside the chromosome and leave some. Received: start={start}, "
            f"stop={stop} for length {length}"
        )
    return _stack(image[:start], image[stop:]) if start else image[stop:].copy()


def exchange_ends(first, second, first_rows, second_rows):
    """A reciprocal translocation: the last `first_rows` rows of `first` and the last `second_rows` rows of `second`
    (the q-arm ends) change places. Returns the two derivative chromosomes."""
    for name, image, rows in (("first_rows", first, first_rows), ("second_rows", second, second_rows)):
        if not 0 < rows < image.shape[0]:
            raise ValueError(f"`{name}` must be in 1..{image.shape[0] - 1}. Received: {name}={rows}")
    cut_first, cut_second = first.shape[0] - first_rows, second.shape[0] - second_rows
    return _stack(first[:cut_first], second[cut_second:]), _stack(second[:cut_second], first[cut_first:])


# ----------------------------------------------------------------------------------------------------------------
# Choosing the chromosomes of one karyogram


def _check_pool(bank, metaphase, pool):
    if isinstance(pool, str):
        pool = [pool]
    pool = sorted(set(pool))
    known = set(bank.table["metaphase"])
    unknown = [name for name in pool if name not in known]
    if unknown:
        raise ValueError(f"`pool` names metaphases that are not in the bank: {unknown[:5]}. Received: pool={pool!r}")
    if metaphase not in pool:
        raise ValueError(
            f"The host metaphase must be in the donor pool (its side of the split). Received: metaphase={metaphase!r}"
        )
    return pool


def _target_counts(sex):
    counts = {name: 2 for name in AUTOSOMES}
    counts.update({"X": 2, "Y": 0} if sex == "XX" else {"X": 1, "Y": 1})
    return counts


class _Assembly:
    """The chromosomes of one karyogram while it is put together; every random draw comes from `rng`."""

    def __init__(self, bank, metaphase, pool, rng):
        self.bank, self.rng = bank, rng
        table = bank.table
        self.pool_rows = table[table["metaphase"].isin(pool)]
        host = table[table["metaphase"] == metaphase].sort_values(["class_name", "copy"])
        self.host = metaphase
        self.case, self.sex, self.scale = host["case"].iloc[0], host["sex"].iloc[0], host["scale"].iloc[0]
        self.used = set(host["file"])
        self.chromosomes = {name: [] for name in KARYOTYPE_ORDER}
        for index in host.index:
            self.chromosomes[table.at[index, "class_name"]].append(self._take(index))

    def _take(self, index):
        table = self.bank.table
        image = self.bank.crops[index]
        factor = self.scale / table.at[index, "scale"]
        if abs(factor - 1.0) > 0.01:  # a donor: brought to the host's scale
            shape = (max(1, round(image.shape[0] * factor)), max(1, round(image.shape[1] * factor)))
            image = fit_image(image, shape, mode="stretch")
        self.used.add(table.at[index, "file"])
        return Chromosome(table.at[index, "class_name"], image, (table.at[index, "file"],))

    def borrow(self, class_name):
        """A chromosome of `class_name` from another metaphase of the pool, same case first, at the host's scale."""
        rows = self.pool_rows
        candidates = rows[
            (rows["class_name"] == class_name) & (rows["metaphase"] != self.host) & ~rows["file"].isin(self.used)
        ]
        if candidates.empty:
            raise DataError(
                f"No chromosome {class_name} in the donor pool ({rows['metaphase'].nunique()} metaphases) outside "
                f"metaphase {self.host} to borrow. Pass a larger pool (more metaphases of this side of the split).",
                problem="no_donor",
            )
        same_case = candidates[candidates["case"] == self.case]
        candidates = (same_case if not same_case.empty else candidates).sort_values("file")
        return self._take(candidates.index[self.rng.integers(len(candidates))])

    def complete(self):
        """Borrow what the host lacks so every class has its normal count (2 autosomes, XX or XY)."""
        for name, count in _target_counts(self.sex).items():
            del self.chromosomes[name][count:]
            while len(self.chromosomes[name]) < count:
                self.chromosomes[name].append(self.borrow(name))

    def pick(self, choices):
        return choices[self.rng.integers(len(choices))]

    def share(self, bounds, length):
        return max(1, min(length - 1, round(self.rng.uniform(*bounds) * length)))

    def apply(self, aberration):
        """Change the completed karyotype; return (karyotype in ISCN-like notation, short detail)."""
        sexes, count = "".join(sorted(self.sex)), 46
        if aberration == NORMAL:
            return f"46,{sexes}", ""
        if aberration.startswith("trisomy_"):
            name = aberration.split("_")[1]
            self.chromosomes[name].append(self.borrow(name))
            return f"47,{sexes},+{name}", f"+{name}"
        if aberration == "monosomy":
            name = self.pick(AUTOSOMES)
            del self.chromosomes[name][self.rng.integers(2)]
            return f"45,{sexes},-{name}", f"-{name}"
        if aberration == "monosomy_x":
            del self.chromosomes["X"][1:]
            self.chromosomes["Y"].clear()
            return "45,X", "-X" if self.sex == "XX" else "-Y"
        if aberration == "xxy":
            added = "X" if self.sex == "XY" else "Y"
            self.chromosomes[added].append(self.borrow(added))
            return "47,XXY", f"+{added}"
        if aberration == "deletion":
            return self._delete(sexes, count)
        if aberration == "translocation":
            return self._translocate(sexes, count)
        raise ValueError(
            f"`aberration` must be '{NORMAL}' or one of {ABERRATIONS}. Received: aberration={aberration!r}"
        )

    def _delete(self, sexes, count):
        name = self.pick(AUTOSOMES[:18])
        copy = int(self.rng.integers(2))
        chromosome = self.chromosomes[name][copy]
        length = chromosome.image.shape[0]
        removed = self.share(DELETED_SHARE, length)
        kind = self.pick(("q", "q_interstitial") if name in ACROCENTRIC else ("p", "q", "q_interstitial"))
        if kind == "p":
            start = 0
        elif kind == "q":
            start = length - removed
        else:  # inside the lower half, away from the end
            start = int(self.rng.integers(length // 2, max(length // 2 + 1, length - removed - 1)))
        image = delete_segment(chromosome.image, start, start + removed)
        self.chromosomes[name][copy] = chromosome._replace(image=image)
        arm = kind.split("_")[0]
        return f"{count},{sexes},del({name})({arm})", f"del({name})({arm}) {removed} of {length} rows"

    def _translocate(self, sexes, count):
        first = self.pick(AUTOSOMES[:12])
        shorter = [n for n in AUTOSOMES if self.bank.reference[n][0] <= 0.75 * self.bank.reference[first][0]]
        second = self.pick(shorter)
        a_copy, b_copy = int(self.rng.integers(2)), int(self.rng.integers(2))
        a, b = self.chromosomes[first][a_copy], self.chromosomes[second][b_copy]
        a_rows = self.share(TRANSLOCATED_SHARE, a.image.shape[0])
        b_rows = self.share(TRANSLOCATED_SHARE, b.image.shape[0])
        der_a, der_b = exchange_ends(a.image, b.image, a_rows, b_rows)
        files = tuple(sorted(set(a.files + b.files)))
        self.chromosomes[first][a_copy] = Chromosome(first, der_a, files)
        self.chromosomes[second][b_copy] = Chromosome(second, der_b, files)
        return f"{count},{sexes},t({first};{second})", f"t({first};{second}) {a_rows} and {b_rows} rows"

    def placed(self):
        return [chromosome for name in KARYOTYPE_ORDER for chromosome in self.chromosomes[name]]


def assemble_karyotype(bank, metaphase, pool, aberration=NORMAL, seed=0):
    """The chromosomes of one karyogram: metaphase `metaphase` completed from `pool`, then changed by `aberration`.

    Args:
        bank: a `ChromosomeBank`.
        metaphase: the host metaphase id (see `metaphase_table`).
        pool: metaphase ids that may donate chromosomes (the host's side of the split; it must hold the host).
        aberration: "normal" or one of `ABERRATIONS`.
        seed: an int, `np.random.SeedSequence` or Generator; the same seed gives the same karyotype.

    Returns:
        (chromosomes, record): a list of `Chromosome` in karyotype order, and a dict with aberration, label
        (0 normal, 1 abnormal), karyotype, detail, host metaphase and case, sex, n_chromosomes, borrowed, and the
        sorted `metaphases` and `files` (file names, unique in the data set) every chromosome came from.
    """
    if aberration != NORMAL and aberration not in ABERRATIONS:
        raise ValueError(
            f"`aberration` must be '{NORMAL}' or one of {ABERRATIONS}. Received: aberration={aberration!r}"
        )
    pool = _check_pool(bank, metaphase, pool)
    assembly = _Assembly(bank, metaphase, pool, np.random.default_rng(seed))
    assembly.complete()
    karyotype, detail = assembly.apply(aberration)
    chromosomes = assembly.placed()
    files = sorted({name for chromosome in chromosomes for name in chromosome.files})
    metaphase_of = bank.table.set_index("file")["metaphase"]
    host_files = set(bank.table.loc[bank.table["metaphase"] == metaphase, "file"])
    record = {
        "aberration": aberration,
        "label": int(aberration != NORMAL),
        "karyotype": karyotype,
        "detail": detail,
        "host_metaphase": metaphase,
        "host_case": assembly.case,
        "sex": assembly.sex,
        "n_chromosomes": len(chromosomes),
        "borrowed": sum(not set(c.files) <= host_files for c in chromosomes),
        "metaphases": tuple(sorted({metaphase_of[name] for name in files})),
        "files": tuple(files),
    }
    return chromosomes, record


# ----------------------------------------------------------------------------------------------------------------
# Layout and rendering


class _Slot(NamedTuple):
    classes: tuple
    center: float  # x of the slot's centre, reference pixels
    baseline: float  # y the chromosomes stand on, reference pixels
    span: float  # width of the slot's baseline


def _layout(reference, aspect):
    """(height, width, slots) of a karyogram in reference pixels (metaphase scale 1), `height / width == aspect`."""
    widest = {r: max(reference[name][1] for slot in row for name in slot) for r, row in enumerate(ROWS)}
    tallest = [1.15 * max(reference[name][0] for slot in row for name in slot) for row in ROWS]
    slot_width = {r: 3.0 * widest[r] for r in widest}  # room for a third homologue (trisomy, XXY)
    margin = 0.5 * reference["1"][1]
    width = max(len(row) * slot_width[r] for r, row in enumerate(ROWS)) + 2 * margin
    min_gap = 0.12 * reference["1"][0]
    height = sum(tallest) + (len(ROWS) + 1) * min_gap
    if height < aspect * width:
        height = aspect * width
    else:
        width = height / aspect
    gap = (height - sum(tallest)) / (len(ROWS) + 1)
    slots, baseline = [], 0.0
    for r, row in enumerate(ROWS):
        baseline += gap + tallest[r]
        step = (width - 2 * margin) / len(row)
        for i, classes in enumerate(row):
            slots.append(_Slot(classes, margin + (i + 0.5) * step, baseline, 0.8 * min(step, slot_width[r])))
    return height, width, slots


def _paste(canvas, image, top, left):
    """Darken `canvas` with `image` at (top, left), clipped to the canvas (white margins never cover a neighbour)."""
    height, width = canvas.shape
    rows = slice(max(top, 0), min(top + image.shape[0], height))
    cols = slice(max(left, 0), min(left + image.shape[1], width))
    if rows.start < rows.stop and cols.start < cols.stop:
        part = image[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
        canvas[rows, cols] = np.minimum(canvas[rows, cols], part)


def render_karyogram(chromosomes, reference, scale=1.0, size=(416, 416)):
    """Lay `chromosomes` out as a karyogram: rows 1-5, 6-12, 13-18, 19-22 + X/Y, white background.

    Args:
        chromosomes: `Chromosome`s at one scale (as `assemble_karyotype` returns them).
        reference: {class: (length, width)} at scale 1 (`ChromosomeBank.reference`); fixes the layout, so every
            karyogram of a bank has the same geometry.
        scale: the chromosomes' scale relative to `reference` (the host metaphase's `scale`).
        size: (height, width) of the result; None returns the canvas at the chromosomes' own scale.

    Returns:
        A 2-D uint8 array.
    """
    size = check_image_size(size)
    aspect = 1.0 if size is None else size[0] / size[1]
    height, width, slots = _layout(reference, aspect)
    canvas = np.full((round(height * scale), round(width * scale)), 255, np.uint8)
    gap = max(2, round(0.25 * reference["1"][1] * scale))
    for slot in slots:
        members = [c for c in chromosomes if c.class_name in slot.classes]
        members.sort(key=lambda c: slot.classes.index(c.class_name))  # X before Y
        total = sum(c.image.shape[1] for c in members) + gap * max(0, len(members) - 1)
        left, baseline = round(slot.center * scale - total / 2), round(slot.baseline * scale)
        for chromosome in members:
            _paste(canvas, chromosome.image, baseline - chromosome.image.shape[0], left)
            left += chromosome.image.shape[1] + gap
        line = slice(round((slot.center - slot.span / 2) * scale), round((slot.center + slot.span / 2) * scale))
        canvas[min(baseline + max(2, round(2 * scale)), canvas.shape[0] - 1), line] = BASELINE_VALUE
    return canvas if size is None else fit_image(canvas, size, mode="pad", background=255)


def compose_karyogram(bank, metaphase, pool, aberration=NORMAL, size=(416, 416), seed=0):
    """One karyogram image of `metaphase`, completed from `pool` and changed by `aberration`.

    Returns (image, record): a 2-D uint8 array of `size` and the record of `assemble_karyotype`.
    """
    chromosomes, record = assemble_karyotype(bank, metaphase, pool, aberration, seed)
    scale = bank.table.loc[bank.table["metaphase"] == metaphase, "scale"].iloc[0]
    return render_karyogram(chromosomes, bank.reference, scale, size), record


# ----------------------------------------------------------------------------------------------------------------
# A data set for one side of a split


def _feasible(bank, metaphase, pool, aberration):
    """Whether `pool` holds the donors `aberration` needs on host `metaphase` (beyond completing it)."""
    rows = bank.table[bank.table["metaphase"].isin(pool) & (bank.table["metaphase"] != metaphase)]
    sex = bank.table.loc[bank.table["metaphase"] == metaphase, "sex"].iloc[0]
    if aberration.startswith("trisomy_"):
        needed = aberration.split("_")[1]
    elif aberration == "xxy":
        needed = "X" if sex == "XY" else "Y"
    else:
        return True
    return bool((rows["class_name"] == needed).any())


def compose_karyograms(bank, metaphases, n_normal=105, n_abnormal=41, size=(416, 416), seed=0, aberrations=ABERRATIONS):
    """A karyogram data set for one side of a split: hosts and donors both from `metaphases` only.

    Hosts cycle through the metaphases (each used about equally often), abnormal karyograms cycle through
    `aberrations` (about equally many of each). The default 105 : 41 is the thesis' alpha-dataset balance.

    Args:
        bank: a `ChromosomeBank`.
        metaphases: metaphase ids of this side of the split (split by case, see the module docstring).
        n_normal, n_abnormal: how many karyograms of each label.
        size: (height, width) of each image.
        seed: the same seed gives the same images, labels and records.
        aberrations: the aberration types to make, a subset of `ABERRATIONS`.

    Returns:
        (images, labels, info): uint8 (N, H, W, 1), int64 (N,) with 0 normal / 1 abnormal, and a DataFrame with
        one `assemble_karyotype` record per image (aberration, karyotype, host, metaphases, files, ...), in a
        shuffled order.
    """
    size = check_image_size(size)
    pool = sorted(set([metaphases] if isinstance(metaphases, str) else metaphases))
    for name, value in (("n_normal", n_normal), ("n_abnormal", n_abnormal)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"`{name}` must be an int >= 0. Received: {name}={value!r}")
    unknown = [a for a in aberrations if a not in ABERRATIONS]
    if unknown or (n_abnormal and not aberrations):
        raise ValueError(f"`aberrations` must be a non-empty subset of {ABERRATIONS}. Received: {aberrations!r}")
    if not pool:
        raise ValueError("`metaphases` is empty; pass the metaphase ids of one side of the split.")
    seeds = np.random.SeedSequence(seed)
    plan_rng = np.random.default_rng(seeds.spawn(1)[0])
    plan = _plan(bank, pool, n_normal, n_abnormal, aberrations, plan_rng)
    order = plan_rng.permutation(len(plan))
    images, records = [], []
    for index, child in zip(order, seeds.spawn(len(plan))):
        host, aberration = plan[index]
        image, record = compose_karyogram(bank, host, pool, aberration, size, child)
        images.append(image)
        records.append(record)
    images = np.stack(images)[..., None] if images else np.zeros((0, *size, 1), np.uint8)
    labels = np.asarray([r["label"] for r in records], dtype=np.int64)
    return images, labels, pd.DataFrame(records, columns=_RECORD_COLUMNS)


_RECORD_COLUMNS = [
    "aberration",
    "label",
    "karyotype",
    "detail",
    "host_metaphase",
    "host_case",
    "sex",
    "n_chromosomes",
    "borrowed",
    "metaphases",
    "files",
]


def _plan(bank, pool, n_normal, n_abnormal, aberrations, rng):
    """[(host, aberration)]: hosts in turn from the pool (each about equally often), aberrations in turn.

    An aberration goes to the next host in the queue whose pool can donate what it needs (e.g. a chromosome 21 from
    another metaphase for trisomy 21); aberrations no host can take are left out of the turn.
    """
    hosts_for = {a: {m for m in pool if _feasible(bank, m, pool, a)} for a in aberrations}
    possible = [a for a in aberrations if hosts_for[a]]
    if n_abnormal and not possible:
        raise DataError(
            f"The pool of {len(pool)} metaphases cannot donate the chromosomes any of {list(aberrations)} needs. "
            "Pass more metaphases.",
            problem="no_donor",
        )
    queue = _cycle(pool, n_normal + n_abnormal, rng)
    plan = []
    for aberration in _cycle(possible, n_abnormal, rng):
        position = next((i for i, host in enumerate(queue) if host in hosts_for[aberration]), None)
        if position is None:  # the queue's remaining hosts cannot take it: any host that can
            host = sorted(hosts_for[aberration])[rng.integers(len(hosts_for[aberration]))]
        else:
            host = queue.pop(position)
        plan.append((host, aberration))
    return plan + [(host, NORMAL) for host in queue[:n_normal]]


def _cycle(items, count, rng):
    """`count` items drawn in turn from shuffled copies of `items`, so each appears equally often (+-1)."""
    out = []
    while len(out) < count:
        out += [items[i] for i in rng.permutation(len(items))]
    return out[:count]
