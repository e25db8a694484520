"""kth: karyogram abnormality detection with VGG16 / InceptionV3 transfer learning and MC dropout (KTH, 2020).

The thesis' 146 karyograms (the private "alpha-dataset") are not public, so the notebook runs on a synthetic
stand-in composed from real chromosomes (`medcnn.data.karyogram`, CIR-Net G-band crops) and says so; a user with
karyograms of their own points `DATA_DIR` at a folder holding `normal/` and `abnormal/` (see `load_source`).

This module holds the study's citation, Table 5.1 as data, the settings per scale, the configurations (Table 5.1's
seven rows, a MobileNetV2 row and a small CNN trained from scratch), the two protocols (augment-then-split as
published, split-by-case-then-augment as the honest one) with their leakage counts, the two-stage transfer learning
(a head on frozen features, then the last blocks unfrozen), the Bayesian search, the Monte Carlo dropout summaries
and the sentences only this study prints.
Runs, caching, summaries, export and outputs come from `medcnn.experiment`.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medcnn.report import paper_table
from medcnn.studies import copy_tables, select_settings

STUDY = "kth"
DATASET_ID = "chromosomes"  # stand-in: the staged CIR-Net G-band chromosome crops (the alpha-dataset is private)
CITATION = {
    # The seed text starts at the abstract: it has no title page, so the title below is descriptive and the
    # author is not named. `evidence` quotes the seed text verbatim (the tests check that it does).
    "title": "Abnormality detection on karyograms with transfer learning and Monte Carlo dropout "
    "(descriptive title; the seed text has no title page)",
    "authors": "not named in the seed text",
    "year": 2020,
    "venue": "KTH Royal Institute of Technology, School of EECS, degree project TRITA-EECS-EX-2020:832",
    "seed_file": "001_83ee75ddb235a881.txt",
    "evidence": ["TRITA-EECS-EX-2020:832", "www.kth.se", "Table 5.1: Comparison of Different Networks and Conditions"],
}
CLASS_NAMES = ["normal", "abnormal"]  # abnormal is the positive class: a missed abnormal case is unacceptable

# Table 5.1 exactly as printed (the thesis prints the last precision as "1").
TABLE_5_1 = paper_table(
    STUDY,
    "Table 5.1",
    "Comparison of Different Networks and Conditions",
    ["accuracy", "precision", "recall", "AUC"],
    [
        ("original data, VGG16", 0.83, 0.83, 0.56, 0.79),
        ("original data, InceptionV3", 0.77, 0.58, 0.78, 0.86),
        ("augmented data, VGG16", 0.97, 0.98, 0.95, 0.99),
        ("augmented data, InceptionV3", 0.94, 0.98, 0.86, 0.99),
        ("VGG16, last block trained", 0.97, 0.98, 0.96, 0.99),
        ("VGG16, last two blocks trained", 0.98, 0.93, 0.96, 0.99),
        ("InceptionV3, whole network trained", 0.95, 1.00, 0.89, 0.99),
    ],
    index_name="network and condition",
    source="seed 001_83ee75ddb235a881.txt, chapter 5 (Conclusions)",
)
TABLE_5_1.attrs["notes"] = (
    "Test split of a random 64/16/20 split made after augmenting, so augmented copies of one karyogram can sit "
    "in train and test. Precision and recall are those of the abnormal (positive) class."
)
# Which run-record key fills each column (test side; precision and recall of the abnormal class).
METRIC_KEYS = {
    "Table 5.1": {
        "accuracy": "test_accuracy",
        "precision": "test_precision",
        "recall": "test_recall",
        "AUC": "test_roc_auc",
    }
}

ROWS = list(TABLE_5_1.index)
# Our rows past the thesis: the one backbone whose ImageNet weights are staged offline, and a small CNN trained from
# scratch whose Flatten head keeps where each chromosome sits (the thesis' GAP head averages position away, and a
# karyogram's layout is what says which chromosome is extra or missing).
EXTRA_ROW = "augmented data, MobileNetV2 (staged ImageNet weights)"
SCRATCH_BACKBONE = "scratch_cnn"
SCRATCH_ROW = "augmented data, small CNN from scratch (Flatten head keeps position)"
OUR_ROWS = [EXTRA_ROW, SCRATCH_ROW]
BACKBONE_NAMES = {"vgg16": "VGG16", "inception_v3": "InceptionV3", "mobilenet_v2": "MobileNetV2",
                  SCRATCH_BACKBONE: "small CNN"}  # fmt: skip
PROTOCOLS = {
    "published": "augment the karyograms, then a random 64/16/20 split (copies of one karyogram on both sides)",
    "honest": "split the metaphases by case first, compose each side from its own metaphases (donors included), "
    "augment the training side only",
}
SUMMARY_METRICS = [
    "val_roc_auc",
    "val_accuracy",
    "test_accuracy",
    "test_balanced_accuracy",
    "test_precision",
    "test_recall",
    "test_roc_auc",
    "epochs",
    "train_images_per_s",
]

_COMMON = {
    "dataset_id": DATASET_ID,
    "class_names": CLASS_NAMES,
    "positive_class": "abnormal",
    "source_size": (416, 416),  # the karyogram files: the thesis resized every karyogram to 416 x 416 first
    "original_counts": {"normal": 105, "abnormal": 41},  # the alpha-dataset
    "split_ratios": (0.64, 0.16, 0.20),  # train / val / test
    "protocols": tuple(PROTOCOLS),
    # Offline and order-preserving only (`medcnn.augment.order_preserving`): brightness +-25 %, noise on up to 5 %
    # of the pixels, Gaussian blur; no flips or rotations, a karyogram's layout means something.
    "augmentation": {"brightness": 0.25, "pixel_noise": 0.05, "blur_probability": 0.5},
    "backbones": ("vgg16", "inception_v3"),
    "extra_backbone": "mobilenet_v2",
    "weights": "imagenet",
    "head": "kth",  # GAP -> BN -> Dropout -> Dense -> Dropout -> Dense softmax, the same on every backbone
    "head_units": 256,  # not printed in the thesis
    "dropout": 0.5,  # not printed in the thesis
    # The head's BatchNormalization: Keras' 0.99 leaves its moving statistics far from the data after the few steps
    # an epoch has here (14 at smoke scale), so the epoch kept for its validation AUC predicted one class.
    "batch_norm_momentum": 0.9,
    "learning_rate": 1e-3,  # chosen by the thesis' Bayesian search (good range 7e-4 .. 3e-2)
    "batch_size": 16,  # chosen by the same search (batch >= 512 ran out of memory)
    "fine_tune_learning_rate": 1e-4,  # stage two, blocks unfrozen: not given by the thesis; a tenth of stage one
    "monitor": "val_auc",  # the weights of the epoch with the best validation AUC are kept
    "fine_tune_blocks": {"vgg16": (1, 2), "inception_v3": "all"},  # last N blocks trainable, or the whole network
    "tuner": {"objective": "val_auc", "learning_rate": (1e-4, 1e-1), "batch_sizes": (8, 16, 32, 64)},
    "tuner_backbone": "vgg16",  # the thesis searched for its VGG16 model
    "refer_below": 0.8,  # MC-dropout confidence under which the case goes to a human
    "predict_batch_size": 32,
}

SETTINGS = {
    "smoke": {
        **_COMMON,
        "image_size": (75, 75),  # InceptionV3's smallest input; 416 x 416 is far beyond 2 CPU cores
        "transfer_size": (96, 96),  # MobileNetV2's row
        "augmented_counts": {"normal": 150, "abnormal": 126},  # 0.4 of the thesis' 376 / 316
        "epochs": 10,  # stage one: the head on frozen features (seconds per epoch)
        "fine_tune_epochs": 1,  # stage two: blocks unfrozen, the whole model runs
        "scratch_epochs": 30,  # our small CNN learns from random weights: 10 epochs of ~11 steps leave it at chance
        "early_stopping_patience": None,  # None: every run trains all its epochs (the best val-AUC epoch is kept)
        "tuner_trials": 3,
        "tuner_epochs": 3,
        "tuner_backbone": "mobilenet_v2",  # offline VGG16 has random weights: search where the features mean something
        "mc_passes": 20,
        "seeds": [0],
        "allow_random_weights": True,  # VGG16 / InceptionV3 have no offline ImageNet file; recorded as random
    },
    "full": {
        **_COMMON,
        "image_size": (416, 416),
        "transfer_size": (224, 224),
        "augmented_counts": {"normal": 376, "abnormal": 316},
        "epochs": 30,  # not stated; the thesis' training curves span about 25-30 epochs
        "fine_tune_epochs": 30,
        "scratch_epochs": 30,
        "early_stopping_patience": 10,
        "tuner_trials": 20,
        "tuner_epochs": 10,
        "mc_passes": 100,
        "seeds": [0, 1, 2],
        "allow_random_weights": False,
    },
}
# The largest protocol that fits about 2 hours on 2 CPU cores: the thesis' counts (105 / 41 karyograms, augmented to
# 376 / 316), both protocols, 150 px inputs (MobileNetV2 160 px), stage one in full, 5 fine-tuning epochs, 3 seeds.
# Rates measured at 150 px with batch 16 (under a load of about 6 on the 2 cores, so about 3x slower than free
# cores): VGG16 last block trained 4.6 img/s, last two blocks 2.7, InceptionV3 whole 4.6, VGG16 inference 4.6-5.8,
# MobileNetV2-160 inference 39. On free cores that is about 27 minutes per seed (stage two about 22 of them), so
# about 85 minutes for 3 seeds with the search and MC dropout. Measured on 2026-11-30: 90 minutes wall, 68 of them
# training 54 runs, with another training job on the cores for the first 45 (stage two 14.5 minutes per seed and
# protocol then, 7.5 after; the small CNN about 2 minutes a run).
SETTINGS["cpu"] = {
    **SETTINGS["full"],
    "image_size": (150, 150),
    "transfer_size": (160, 160),
    "epochs": 30,
    "fine_tune_epochs": 5,
    "early_stopping_patience": 10,
    "tuner_trials": 10,
    "tuner_epochs": 10,
    "tuner_backbone": "mobilenet_v2",  # offline VGG16 has random weights: search where the features mean something
    "mc_passes": 100,
    "seeds": [0, 1, 2],
    "allow_random_weights": True,  # offline: VGG16 / InceptionV3 start from random weights, recorded as such
}


def settings(scale="smoke", **overrides):
    """The settings of `scale` ("smoke", "cpu" or "full") with the non-None `overrides` applied."""
    return select_settings(SETTINGS, scale, overrides)


def paper_tables():
    """{"Table 5.1": DataFrame}, a fresh copy each call."""
    return copy_tables({"Table 5.1": TABLE_5_1})


def table_id(protocol):
    """The results' name of Table 5.1 under one protocol, e.g. "Table 5.1 (honest)"."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {list(PROTOCOLS)}. Received: protocol={protocol!r}")
    return f"Table 5.1 ({protocol})"


def table_with_extra_row():
    """Table 5.1 with our rows appended (MobileNetV2, the small CNN; the thesis has no value for them: NaN)."""
    table = paper_tables()["Table 5.1"]
    extra = pd.DataFrame([[np.nan] * len(table.columns)] * len(OUR_ROWS), index=OUR_ROWS, columns=table.columns)
    combined = pd.concat([table, extra])
    combined.index.name, combined.attrs = table.index.name, dict(table.attrs)
    return combined


# ----------------------------------------------------------------------------------------------------------------
# Data: the source (composed stand-in or a user's karyograms), and the pool of one seed


@dataclass(repr=False)
class Source:
    """Where karyograms come from: a chromosome bank to compose them from, or a user's own karyogram files.

    `kind` is "composed" (`bank` set) or "folders" (`images` (N, H, W, 1) uint8 at the source size, `labels`,
    `paths`); `name` names the data by its id and relative path.
    """

    kind: str
    name: str
    bank: object = None
    images: np.ndarray = None
    labels: np.ndarray = None
    paths: list = None


def load_source(data_dir=None, source_size=(416, 416)):
    """The karyograms' source: `<data root>/kth/normal|abnormal/` when it exists, else the composed stand-in.

    A user with karyograms of their own points `data_dir` at a folder holding `normal/` and `abnormal/` (or at a
    data root holding `kth/` with them); every file is read as grayscale at `source_size`. Otherwise the staged
    `chromosomes` crops are trimmed into a bank (`medcnn.data.karyogram.chromosome_bank`) to compose from.
    """
    from medcnn.data.chromosomes import load_chromosomes
    from medcnn.data.karyogram import chromosome_bank
    from medcnn.data.loaders import load_folders
    from medcnn.data.paths import data_root

    root = data_root(data_dir)
    for folder in ([Path(data_dir)] if data_dir is not None else []) + ([root / "kth"] if root is not None else []):
        if all((folder / name).is_dir() for name in CLASS_NAMES):
            data = load_folders(folder, tuple(source_size), "grayscale", class_order=CLASS_NAMES)
            images = np.clip(np.rint(data.images), 0, 255).astype(np.uint8)
            return Source("folders", f"{folder.name} (your karyograms)", images=images, labels=data.labels,
                          paths=list(data.paths))  # fmt: skip
    data = load_chromosomes(data_dir, image_size=None, color_mode="grayscale")
    return Source("composed", f"karyograms composed from {DATASET_ID}", bank=chromosome_bank(data))


@dataclass(repr=False)
class Pool:
    """Every karyogram of one seed, both protocols, and the splits into it.

    images: uint8 (N, H, W, 1) at the source size. labels: int (N,), 0 normal, 1 abnormal.
    table: one row per image: part ("published original", "published copy", "honest train", "honest copy",
        "honest val", "honest test"), label, aberration, karyotype, source (the index of the original karyogram an
        image was made from; an original is its own source), host_metaphase, host_case, metaphases, files.
    splits: {protocol: {"original" | "augmented": {"train", "val", "test": index arrays into the pool}}}.
    seed: the seed that composed, augmented and split it.
    """

    images: np.ndarray
    labels: np.ndarray
    table: pd.DataFrame
    splits: dict
    seed: int

    def __len__(self):
        return len(self.labels)


def scaled_counts(counts, share):
    """{class: round(count * share)}, e.g. the training side's share of the thesis' counts."""
    return {name: int(round(count * share)) for name, count in counts.items()}


def augment_to_counts(images, labels, counts, augmentation, seed=0):
    """Offline augmentation up to `counts` images per class: the originals, then copy 1 of each, copy 2, ...

    Args:
        images: uint8 (N, H, W, 1). labels: int (N,).
        counts: {class name: images wanted}, at least the originals of that class.
        augmentation: {"brightness", "pixel_noise", "blur_probability"} for `medcnn.augment.order_preserving`.
        seed: int; the same seed gives the same copies.

    Returns:
        (copies uint8 (M, H, W, 1), their labels (M,), their sources (M,) = indices into `images`); the originals
        are not repeated in the result.
    """
    from medcnn.augment import order_preserving
    from medcnn.data.loaders import ImageSet
    from medcnn.data.offline_augment import expand

    images, labels = np.asarray(images), np.asarray(labels)
    made, made_labels, sources = [], [], []
    for label, name in enumerate(CLASS_NAMES):
        members = np.flatnonzero(labels == label)
        wanted = counts[name] - len(members)
        if wanted < 0 or (wanted and not len(members)):
            raise ValueError(
                f"`counts` must be at least the originals of each class ({name}: {len(members)}). "
                f"Received: counts={counts}"
            )
        if wanted == 0:
            continue
        copies = math.ceil(wanted / len(members))
        part = ImageSet(labels=labels[members], class_names=CLASS_NAMES, images=images[members])
        grown = expand(part, copies, order_preserving(**augmentation, seed=seed + label), seed + label, False)
        made.append(grown.images[:wanted])
        made_labels.append(np.full(wanted, label))
        sources.append(members[grown.groups[:wanted]])
    if not made:
        return images[:0], labels[:0], np.zeros(0, int)
    return np.concatenate(made), np.concatenate(made_labels), np.concatenate(sources)


def _records(info, part):
    """The pool table's rows for composed karyograms (`compose_karyograms`' info)."""
    frame = info[["label", "aberration", "karyotype", "host_metaphase", "host_case", "metaphases", "files"]].copy()
    frame.insert(0, "part", part)
    return frame


def _user_records(count, part, paths):
    """Pool rows for a user's karyograms: every file its own source; no metaphases or aberration types known."""
    names = [Path(path).name for path in paths]
    return pd.DataFrame(
        {"part": part, "aberration": "unknown", "karyotype": "", "host_metaphase": names, "host_case": names,
         "metaphases": [(name,) for name in names], "files": [(name,) for name in names]},
        index=range(count),
    )  # fmt: skip


class _PoolBuilder:
    """Collects the parts of a pool; `add` returns the new images' indices."""

    def __init__(self):
        self.images, self.labels, self.frames, self.sources, self.size = [], [], [], [], 0

    def add(self, images, labels, frame, sources=None):
        index = np.arange(self.size, self.size + len(labels))
        frame = frame.reset_index(drop=True).assign(label=np.asarray(labels, int))
        frame["source"] = index if sources is None else np.asarray(sources)
        self.images.append(np.asarray(images, np.uint8))
        self.labels.append(np.asarray(labels, int))
        self.frames.append(frame)
        self.size += len(labels)
        return index

    def add_copies(self, originals, settings, counts, part, seed):
        """Augmented copies of the pool images `originals` up to `counts`; returns their indices."""
        images = np.concatenate(self.images)[originals]
        labels = np.concatenate(self.labels)[originals]
        copies, copy_labels, sources = augment_to_counts(images, labels, counts, settings["augmentation"], seed)
        table = pd.concat(self.frames, ignore_index=True).iloc[originals[sources]].drop(columns="source")
        return self.add(copies, copy_labels, table.assign(part=part), originals[sources])

    def build(self, splits, seed):
        table = pd.concat(self.frames, ignore_index=True)
        return Pool(np.concatenate(self.images), np.concatenate(self.labels), table, splits, seed)


def _random_split(indices, labels, ratios, seed):
    """A stratified random split of pool `indices`: {"train", "val", "test"}."""
    from medcnn.data.splits import train_val_test_split

    parts = train_val_test_split(labels[indices], ratios, seed)
    return {side: indices[part] for side, part in zip(("train", "val", "test"), parts)}


def metaphase_sides(bank, ratios, seed):
    """{"train", "val", "test": metaphase ids}: whole cases on one side, stratified by sex (XX / XY)."""
    import warnings

    from medcnn.data.karyogram import metaphase_table
    from medcnn.data.splits import train_val_test_split

    cells = metaphase_table(bank)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a lopsided sex ratio on a side does not matter here
        parts = train_val_test_split(cells["sex"].eq("XY").to_numpy(int), ratios, seed, groups=cells["case"].to_numpy())
    return {side: cells["metaphase"].iloc[part].tolist() for side, part in zip(("train", "val", "test"), parts)}


def build_pool(source, settings, seed=0):
    """Both protocols' karyograms for one seed, and their splits (see `Pool`).

    Published: the thesis' original counts composed from every metaphase, augmented to the augmented counts
    (originals included), then random 64/16/20 splits of the originals ("original" rows) and of everything
    ("augmented" rows). Honest: the metaphases split by case first; the training side composed with the training
    share of the original counts and augmented to the training share of the augmented counts; validation and test
    composed (never augmented) with the published augmented split's val / test sizes, so both protocols are scored
    on as many images. With a user's karyograms (no metaphases), the honest split is by file.
    """
    from medcnn.data.karyogram import compose_karyograms

    ratios, size = settings["split_ratios"], tuple(settings["source_size"])
    original, augmented = settings["original_counts"], settings["augmented_counts"]
    builder, seeds = _PoolBuilder(), np.random.SeedSequence(seed).generate_state(6)
    if source.kind == "composed":
        everything = sorted(source.bank.table["metaphase"].unique())
        images, labels, info = compose_karyograms(
            source.bank, everything, original["normal"], original["abnormal"], size, int(seeds[0])
        )
        published = builder.add(images, labels, _records(info, "published original"))
    else:
        published = builder.add(source.images, source.labels, _user_records(len(source.labels), "published original",
                                                                            source.paths))  # fmt: skip
    labels_so_far = np.concatenate(builder.labels)
    copies = builder.add_copies(published, settings, augmented, "published copy", int(seeds[1]))
    all_labels = np.concatenate(builder.labels)
    splits = {
        "published": {
            "original": _random_split(published, labels_so_far, ratios, seed),
            "augmented": _random_split(np.concatenate([published, copies]), all_labels, ratios, seed),
        }
    }
    val_test = {side: len(splits["published"]["augmented"][side]) for side in ("val", "test")}
    if source.kind == "composed":
        sides = metaphase_sides(source.bank, ratios, seed)
        honest = {}
        plan = {
            "train": scaled_counts(original, ratios[0]),
            "val": scaled_counts(augmented, val_test["val"] / sum(augmented.values())),
            "test": scaled_counts(augmented, val_test["test"] / sum(augmented.values())),
        }
        for position, (side, counts) in enumerate(plan.items(), start=2):
            images, labels, info = compose_karyograms(
                source.bank, sides[side], counts["normal"], counts["abnormal"], size, int(seeds[position])
            )
            honest[side] = builder.add(images, labels, _records(info, f"honest {side}"))
    else:  # a user's files: no metaphases to split by, so the originals' own random split
        honest = dict(splits["published"]["original"])
    honest_copies = builder.add_copies(
        honest["train"], settings, scaled_counts(augmented, ratios[0]), "honest copy", int(seeds[5])
    )
    splits["honest"] = {
        "original": dict(honest),
        "augmented": {**honest, "train": np.concatenate([honest["train"], honest_copies])},
    }
    return builder.build(splits, seed)


def leakage(pool, split):
    """How the test side of `split` touches its training side, counted in test images.

    Returns:
        {"test images", "copies of a training karyogram" (same source karyogram), "share a metaphase with training"
        (host or donor), "share a chromosome image with training" (the same crop file)}.
    """
    table = pool.table
    train, test = table.iloc[np.asarray(split["train"])], table.iloc[np.asarray(split["test"])]
    metaphases = set().union(*map(set, train["metaphases"]))
    files = set().union(*map(set, train["files"]))
    return {
        "test images": len(test),
        "copies of a training karyogram": int(test["source"].isin(set(train["source"])).sum()),
        "share a metaphase with training": int(sum(bool(set(m) & metaphases) for m in test["metaphases"])),
        "share a chromosome image with training": int(sum(bool(set(f) & files) for f in test["files"])),
    }


def leakage_table(pool):
    """`leakage` of every protocol and data set of one pool, one row each."""
    rows = {
        (protocol, data): {**{side: len(index) for side, index in split.items()}, **leakage(pool, split)}
        for protocol, by_data in pool.splits.items()
        for data, split in by_data.items()
    }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.names = ["protocol", "data"]
    return frame.drop(columns="test images")


def pool_counts(pool):
    """Images per part of the pool and class."""
    frame = pool.table.assign(**{"class": np.array(CLASS_NAMES)[pool.labels]})
    return frame.groupby(["part", "class"], sort=False).size().unstack(fill_value=0)


def model_inputs(pool, image_size):
    """The pool as a saved model sees it: `ImagePreprocessing(image_size, "grayscale", 1 / 255)`, float32 [0, 1]."""
    from medcnn.preprocessing import ImagePreprocessing, preprocess_images

    layer = ImagePreprocessing(tuple(image_size), "grayscale", 1.0 / 255.0)
    return preprocess_images(pool.images, layer, batch_size=64)


def write_karyograms(pool, index, folder):
    """Write pool images `index` as PNG files `<folder>/<class>/karyogram_<index>.png`; returns their paths.

    Karyograms an earlier run left in `<folder>/<class>/` are removed first, so the folder holds this run's only.
    """
    from PIL import Image

    for name in CLASS_NAMES:
        for stale in (Path(folder) / name).glob("karyogram_*.png"):
            stale.unlink()
    paths = []
    for position in np.asarray(index):
        path = Path(folder) / CLASS_NAMES[pool.labels[position]] / f"karyogram_{position:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pool.images[position][..., 0]).save(path)
        paths.append(path)
    return paths


def plot_karyograms(pool, path=None):
    """A normal karyogram and one of each aberration in the pool (originals first), titled by karyotype."""
    from matplotlib.figure import Figure

    from medcnn.data.karyogram import ABERRATIONS
    from medcnn.plots import save_figure

    table = pool.table[~pool.table["part"].str.endswith("copy")]
    kinds = [kind for kind in ("normal", *ABERRATIONS) if (table["aberration"] == kind).any()]
    columns = 3
    figure = Figure(figsize=(4.2 * columns, 4.4 * math.ceil(len(kinds) / columns)), layout="constrained")
    axes = figure.subplots(math.ceil(len(kinds) / columns), columns, squeeze=False).ravel()
    for ax, kind in zip(axes, kinds):
        row = table.index[table["aberration"] == kind][0]
        ax.imshow(pool.images[row][..., 0], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{kind}: {table.at[row, 'karyotype']}", fontsize="small")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(kinds) :]:
        ax.set_axis_off()
    save_figure(figure, path)
    return figure


def plot_augmented(pool, path=None, copies=3):
    """One original karyogram beside `copies` of its augmented copies (a corner enlarged below to show the noise)."""
    from matplotlib.figure import Figure

    from medcnn.plots import save_figure

    table = pool.table
    copied = table.loc[table["part"].str.endswith("copy"), "source"]
    source = int(copied.value_counts().index[0])
    shown = [source, *copied.index[copied == source][:copies]]
    figure = Figure(figsize=(3.2 * len(shown), 6.4), layout="constrained")
    axes = figure.subplots(2, len(shown), squeeze=False)
    height, width = pool.images.shape[1:3]
    for column, index in enumerate(shown):
        image = pool.images[index][..., 0]
        axes[0, column].imshow(image, cmap="gray", vmin=0, vmax=255)
        axes[0, column].set_title("original" if column == 0 else f"copy {column}", fontsize="small")
        axes[1, column].imshow(image[: height // 4, : width // 4], cmap="gray", vmin=0, vmax=255)
        for ax in axes[:, column]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[1, 0].set_ylabel("top-left corner")
    save_figure(figure, path)
    return figure


# ----------------------------------------------------------------------------------------------------------------
# Configurations and models


@dataclass(frozen=True)
class Configuration:
    """One row of Table 5.1 (or ours). `trainable` is what stage two unfreezes: 0 for a stage-one row (the kth
    head on frozen backbone features), N (the last N named blocks) or "all"; a stage-two row starts from the head
    its backbone's augmented stage-one row trained. The `SCRATCH_BACKBONE` row is stage 0: a whole CNN trained on
    images from random initialisation."""

    row: str
    backbone: str
    data: str  # "original" or "augmented"
    trainable: object = 0

    @property
    def stage(self):
        """0: a CNN trained from scratch on images; 1: the head on frozen features; 2: blocks unfrozen."""
        if self.backbone == SCRATCH_BACKBONE:
            return 0
        return 1 if self.trainable == 0 else 2

    def label(self, protocol):
        """The run's label: the row and the protocol, e.g. "augmented data, VGG16 | honest"."""
        return f"{self.row} | {protocol}"

    def settings(self, protocol):
        return {
            "row": self.row,
            "backbone": self.backbone,
            "data": self.data,
            "trainable_blocks": self.trainable,
            "protocol": protocol,
        }


CONFIGURATIONS = [
    Configuration(ROWS[0], "vgg16", "original"),
    Configuration(ROWS[1], "inception_v3", "original"),
    Configuration(ROWS[2], "vgg16", "augmented"),
    Configuration(ROWS[3], "inception_v3", "augmented"),
    Configuration(ROWS[4], "vgg16", "augmented", 1),
    Configuration(ROWS[5], "vgg16", "augmented", 2),
    Configuration(ROWS[6], "inception_v3", "augmented", "all"),
    Configuration(EXTRA_ROW, "mobilenet_v2", "augmented"),
    Configuration(SCRATCH_ROW, SCRATCH_BACKBONE, "augmented"),
]
STAGE_ONE = [config for config in CONFIGURATIONS if config.stage == 1]
STAGE_TWO = [config for config in CONFIGURATIONS if config.stage == 2]
FROM_SCRATCH = [config for config in CONFIGURATIONS if config.stage == 0]
BY_ROW = {config.row: config for config in CONFIGURATIONS}


def stage_one_of(config):
    """The stage-one configuration whose trained head a stage-two row starts from (same backbone, augmented data)."""
    return next(c for c in STAGE_ONE if c.backbone == config.backbone and c.data == "augmented")


def kth_metrics():
    """Fresh metric objects: accuracy, AUC, precision and recall of the abnormal class (column 1 of one-hot labels).

    AUC with `multi_label=True` over both softmax columns is the abnormal column's AUC: column 0 is one minus
    column 1 and its labels the complement, which ranks every pair the same way.
    """
    import keras

    return [
        "accuracy",
        keras.metrics.AUC(name="auc", multi_label=True, num_labels=2),
        keras.metrics.Precision(class_id=1, name="precision"),
        keras.metrics.Recall(class_id=1, name="recall"),
    ]


def head_spec(run_settings, dropout=None):
    """The thesis' head: GAP -> BN -> Dropout -> Dense(head_units) -> Dropout -> Dense(2, softmax)."""
    from medcnn.models.heads import kth_head

    rate = run_settings["dropout"] if dropout is None else dropout
    momentum = run_settings["batch_norm_momentum"]
    return kth_head(len(CLASS_NAMES), run_settings["head_units"], rate, "softmax", batch_norm_momentum=momentum)


def compiled(model, learning_rate):
    """`model` compiled with Adam at `learning_rate`, categorical cross-entropy and `kth_metrics`."""
    from medcnn.train import compile_model

    return compile_model(model, "adam", learning_rate, loss="categorical_crossentropy", metrics=kth_metrics())


def head_model(feature_shape, run_settings, learning_rate=None, dropout=None):
    """Stage one: the kth head alone, on precomputed backbone features of shape `feature_shape`, compiled."""
    from medcnn.models.heads import build_head

    head = build_head(head_spec(run_settings, dropout), tuple(feature_shape), name="head")
    return compiled(head, learning_rate or run_settings["learning_rate"])


def seeding(run_settings, weights=None):
    """What each seed varies and what is held fixed, for results.json (`experiment.seed_policy`): every seed
    composes and augments its own pool (`build_pool`), splits it, and draws a random backbone's weights
    (`feature_extractor`), the head's initialisation and the MC-dropout masks; the search runs once.

    `weights`: {backbone: "imagenet" or "random"} (`prepare_inputs`; None: not known).
    """
    from medcnn.experiment import backbone_parts, seed_policy

    weights = weights or {}
    drawn, pretrained = backbone_parts(weights) if weights else (["random backbone weights"], {})
    varies = ["composition", "augmented views", "split", "initialisation", "data order", "dropout masks",
              "mc dropout passes"]  # fmt: skip
    held = {"search": "one hyperparameter search (`tune_head`) on the first seed's pool, before the runs"}
    return seed_policy([*varies, *drawn], {**held, **pretrained})


def feature_extractor(backbone, input_shape, run_settings, seed=0):
    """The backbone with its preprocessing, on [0, 1] inputs, built after `keras.utils.set_random_seed(seed)` so
    that random weights (no ImageNet file offline) are the same ones `transfer` builds. Returns (model, weights)."""
    from medcnn.models.features import seeded_backbone

    return seeded_backbone(
        backbone, input_shape, seed, "imagenet", run_settings["allow_random_weights"], input_max=1.0, freeze=False
    )


def transfer(backbone, input_shape, run_settings, seed=0):
    """Backbone + kth head as one model (the backbone frozen), its backbone identical to `feature_extractor`'s."""
    import keras

    from medcnn.models.transfer import transfer_model

    keras.utils.set_random_seed(seed)
    return transfer_model(
        backbone, head_spec(run_settings), tuple(input_shape), allow_random=run_settings["allow_random_weights"],
        input_max=1.0,
    )  # fmt: skip


def fine_tune_model(config, input_shape, run_settings, seed=0, head_weights=None):
    """Stage two: backbone + head, the head's weights from stage one, the last blocks unfrozen, compiled at the
    fine-tuning learning rate. `head_weights`: the stage-one run's weights file (None leaves the head new)."""
    from medcnn.models.transfer import set_trainable_blocks

    model = transfer(config.backbone, input_shape, run_settings, seed)
    if head_weights is not None:
        if not Path(head_weights).is_file():
            raise FileNotFoundError(
                f"Stage one's head weights {head_weights} are missing (weights are not committed); run the notebook "
                "with REUSE_RUNS=False so that stage one trains again."
            )
        model.get_layer("head").load_weights(head_weights)
    set_trainable_blocks(model, config.trainable)
    return compiled(model, run_settings["fine_tune_learning_rate"])


def scratch_model(input_shape, run_settings, seed=0):
    """Our small CNN, compiled like the thesis' rows: `medcnn.models.scratch.position_cnn` (three 3x3 conv blocks
    with batch normalisation, Flatten, dropout, softmax; no global pooling) on [0, 1] karyograms. Its Flatten head
    keeps where each chromosome sits; MC dropout uses its dropout layer."""
    import keras

    from medcnn.models.scratch import position_cnn

    keras.utils.set_random_seed(seed)
    model = position_cnn(
        tuple(input_shape), len(CLASS_NAMES), dropout=run_settings["dropout"],
        batch_norm_momentum=run_settings["batch_norm_momentum"], name=SCRATCH_BACKBONE,
    )  # fmt: skip
    return compiled(model, run_settings["learning_rate"])


def input_sizes(run_settings):
    """{backbone: input size}: the thesis' two and our small CNN at `image_size`, MobileNetV2 at `transfer_size`."""
    sizes = {name: tuple(run_settings["image_size"]) for name in (*run_settings["backbones"], SCRATCH_BACKBONE)}
    return {**sizes, run_settings["extra_backbone"]: tuple(run_settings["transfer_size"])}


def prepare_inputs(pool, run_settings, log=print):
    """What the runs of one pool train on: images at each input size, and each backbone's features computed once.

    Returns:
        ({"images": {size: array}, "features": {backbone: array}, "feature_std": {backbone: float},
        "weights": {backbone: "imagenet" or "random"}}, {backbone: "imagenet" or "random"}). `feature_std` shows
        how much signal reaches the head: a randomly initialised VGG16 (no BatchNormalization) shrinks its
        activations layer after layer.
    """
    import time

    import keras

    inputs, weights = {"images": {}, "features": {}, "feature_std": {}}, {}
    for backbone, size in input_sizes(run_settings).items():
        if size not in inputs["images"]:
            inputs["images"][size] = model_inputs(pool, size)
        if backbone == SCRATCH_BACKBONE:  # trains on the images themselves: no features, no pretrained weights
            continue
        started = time.perf_counter()
        extractor, weights[backbone] = feature_extractor(backbone, (*size, 1), run_settings, pool.seed)
        inputs["features"][backbone] = extractor.predict(
            inputs["images"][size], batch_size=run_settings["predict_batch_size"], verbose=0
        )
        seconds = time.perf_counter() - started
        shape, spread = inputs["features"][backbone].shape[1:], float(inputs["features"][backbone].std())
        inputs["feature_std"][backbone] = spread
        log(f"{BACKBONE_NAMES[backbone]} features {shape} of {len(pool)} karyograms at {size[0]}x{size[1]} "
            f"({weights[backbone]} weights, std {spread:.2g}): {seconds:.0f} s, "
            f"{len(pool) / seconds:.0f} images/s")  # fmt: skip
        keras.backend.clear_session()
    inputs["weights"] = dict(weights)  # fingerprinted with each run (`make_run`)
    return inputs, weights


# ----------------------------------------------------------------------------------------------------------------
# Runs


def _callbacks(run_settings, epochs):
    """Keep the weights of the epoch with the best validation AUC (the thesis' monitor); stop early when the
    scale sets a patience."""
    patience = run_settings["early_stopping_patience"] or epochs

    def make():
        import keras

        return [
            keras.callbacks.EarlyStopping(
                monitor="val_auc", mode="max", patience=patience, restore_best_weights=True, verbose=0
            )
        ]

    return make


def stage_one_weights(first, cache):
    """The weights file of stage-one run `first` in `cache`, checked: saved under `first.fingerprint` and the
    current precision (`RunCache.weights_for`). Raises FileNotFoundError when they are missing or were trained
    under other settings (weights are not committed; a committed record says nothing of local weights)."""
    import keras

    precision = keras.config.dtype_policy().name
    weights = cache.weights_for(first.key, first.fingerprint, precision)
    if weights is None:
        raise FileNotFoundError(
            f"Stage one's head weights {cache.weights_path(first.key)} are missing or were not trained as "
            f"'{first.label}' seed {first.seed} is now (fingerprint {first.fingerprint}, {precision}); weights are "
            "not committed. Run the notebook with REUSE_RUNS=False so that stage one trains again."
        )
    return weights


def make_run(config, protocol, pool, inputs, run_settings, data_fingerprint, cache):
    """The `experiment.Run` of one configuration under one protocol, and the array it trains on.

    Stage one trains the head on the backbone's precomputed features; stage two builds backbone + head, loads the
    head stage one trained (its record must come first), unfreezes the configured blocks and trains on images; the
    small CNN (stage 0) trains on images from scratch for `scratch_epochs` at stage one's learning rate. The run
    carries the whole `run_settings`, `data_fingerprint` with the weights its backbone loaded (`inputs["weights"]`,
    as `prepare_inputs` records them) and a stage-two run its stage-one run, for its fingerprint. Stage two loads
    stage one's head only when those weights were saved under stage one's fingerprint (`stage_one_weights`).
    """
    from medcnn.experiment import Run

    size = input_sizes(run_settings)[config.backbone]
    first = None
    if config.stage == 1:
        x = inputs["features"][config.backbone]
        build = lambda: head_model(x.shape[1:], run_settings)  # noqa: E731
        epochs = run_settings["epochs"]
    elif config.stage == 0:
        x = inputs["images"][size]
        build = lambda: scratch_model(x.shape[1:], run_settings, pool.seed)  # noqa: E731
        epochs = run_settings["scratch_epochs"]
    else:
        first, _ = make_run(stage_one_of(config), protocol, pool, inputs, run_settings, data_fingerprint, cache)
        x = inputs["images"][size]

        def build():  # stage one's head, checked against its fingerprint when the model is built
            return fine_tune_model(config, x.shape[1:], run_settings, pool.seed, stage_one_weights(first, cache))

        epochs = run_settings["fine_tune_epochs"]
    run = Run(
        label=config.label(protocol),
        seed=pool.seed,
        build_model=build,
        split=pool.splits[protocol][config.data],
        epochs=epochs,
        batch_size=run_settings["batch_size"],
        group=protocol,
        settings=config.settings(protocol),
        spec=run_settings,
        data={"files": data_fingerprint, "backbone_weights": inputs.get("weights", {}).get(config.backbone)},
        starts_from=first,
        callbacks=_callbacks(run_settings, epochs),
        predict_batch_size=run_settings["predict_batch_size"],
    )
    return run, x


def run_rows(configurations, pools, inputs, run_settings, cache, data_fingerprint, verbose=2, log=print):
    """Train (or reuse) `configurations` under every protocol, seed by seed; returns (runs, records).

    Args:
        configurations: `Configuration`s in order (stage-two rows after the stage-one rows they start from).
        pools: {seed: Pool}. inputs: {seed: `prepare_inputs(...)[0]`}.
        cache: an `experiment.RunCache`.
    """
    from medcnn.experiment import run_all

    runs, records = [], []
    for seed, pool in pools.items():
        for protocol in run_settings["protocols"]:
            for config in configurations:
                run, x = make_run(config, protocol, pool, inputs[seed], run_settings, data_fingerprint, cache)
                records += run_all([run], x, pool.labels, CLASS_NAMES, cache, verbose, log)
                runs.append(run)
    return runs, records


def protocol_summary(records, protocol):
    """`experiment.summarise` of one protocol's records, indexed by the Table 5.1 row (protocol dropped)."""
    from medcnn.experiment import summarise

    chosen = [record for record in records if record["group"] == protocol]
    return summarise(chosen, SUMMARY_METRICS).rename(index=lambda label: label.rsplit(" | ", 1)[0])


def row_notes(weights):
    """{row: "random weights"} for the rows whose backbone loaded random weights ({backbone: weights used}, as
    `prepare_inputs` returns and results.json records; display names such as "VGG16" are understood too)."""
    from medcnn.experiment.truth import weights_notes

    names = {shown: name for name, shown in BACKBONE_NAMES.items()}
    used = {names.get(name, name): value for name, value in (weights or {}).items()}
    return weights_notes({config.row: used[config.backbone] for config in CONFIGURATIONS if config.backbone in used})


def comparisons(records, info, protocols=tuple(PROTOCOLS), weights=None):
    """{table_id(protocol): `experiment.compare` of Table 5.1 (and our rows) with that protocol's runs}; rows whose
    backbone had random weights (`weights`, else `info["weights"]`) say so."""
    from medcnn.experiment import compare

    notes = row_notes(weights if weights is not None else info.get("weights"))
    return {
        table_id(protocol): compare(
            table_with_extra_row(), protocol_summary(records, protocol), info, METRIC_KEYS["Table 5.1"], notes
        )
        for protocol in protocols
    }


def table(records, protocols=tuple(PROTOCOLS), digits=2, weights=None):
    """Table 5.1 as we read it: per metric the thesis' value, then ours under each protocol (mean ± std); with
    `weights` ({backbone: weights used}) a `note` column says which rows had random weights."""
    from medcnn.experiment import collapsed_cells, reference_cells, summary_cells

    paper = table_with_extra_row()
    summaries = {protocol: protocol_summary(records, protocol) for protocol in protocols}
    frame = pd.DataFrame(index=paper.index)
    if weights is not None:
        notes = row_notes(weights)
        frame["note"] = [notes.get(row, "") for row in paper.index]
    references = {}
    for title, key in METRIC_KEYS["Table 5.1"].items():
        frame[f"{title}: thesis"] = ["" if np.isnan(v) else f"{v:.2f}" for v in paper[title]]
        for protocol, summary in summaries.items():
            frame[f"{title}: {protocol}"] = summary_cells(summary, key, paper.index, digits)
            for label, cell in reference_cells(summary, key, paper.index, digits).items():
                references.setdefault(label, {})[f"{title}: {protocol}"] = cell
    for protocol, summary in summaries.items():
        frame[f"collapsed: {protocol}"] = collapsed_cells(summary, paper.index)
    frame = pd.concat([frame, pd.DataFrame.from_dict(references, orient="index")]).fillna("")
    frame.index.name = paper.index.name
    seeds = {p: s["runs"].max() for p, s in summaries.items()}
    frame.attrs["seeds"] = {p: int(n) for p, n in seeds.items()}
    return frame


def best_run(records, protocol="honest"):
    """The run with the best validation AUC under `protocol` (the honest validation side is free of leaks)."""
    from medcnn.experiment import best_run as best

    return best(records, "val_roc_auc", group=protocol)


# ----------------------------------------------------------------------------------------------------------------
# Trained models: rebuilt from their weights, as image models for export, the Bayesian search


def configuration_of(run):
    """The `Configuration` a run (or record) was made from."""
    settings = run.settings if hasattr(run, "settings") else run["settings"]
    return BY_ROW[settings["row"]]


def rebuild(run, x, labels, run_settings, cache, log=print):
    """`run`'s model (the head alone for stage one, backbone + head for stage two, the small CNN for stage 0) with
    its recorded weights, or trained again when they are missing (`experiment.trained_model`). Stage two is rebuilt
    without stage one's head weights: the run's own replace them."""
    from medcnn.experiment import trained_model

    config = configuration_of(run)

    def build():
        if config.stage == 1:
            return head_model(x.shape[1:], run_settings)
        if config.stage == 0:
            return scratch_model(x.shape[1:], run_settings, run.seed)
        return fine_tune_model(config, x.shape[1:], run_settings, run.seed)

    return trained_model(run, x, labels, CLASS_NAMES, cache, log=log, build=build)


def image_model(run, model, run_settings):
    """A model on images: stage two's and the small CNN as they are; stage one's head put back on its backbone (the
    same weights the features came from)."""
    config = configuration_of(run)
    if config.stage != 1:
        return model
    size = input_sizes(run_settings)[config.backbone]
    full = transfer(config.backbone, (*size, 1), run_settings, run.seed)
    full.get_layer("head").set_weights(model.get_weights())
    return full


def export(run, model, run_settings, path):
    """Save `run`'s image model with its preprocessing (resize, grayscale, [0, 1]) and class names to `path`."""
    from medcnn.experiment import export_model

    return export_model(image_model(run, model, run_settings), CLASS_NAMES, path, input_max=1.0)


def tune_head(features, labels, split, run_settings, directory, overwrite=True, seed=0, verbose=2):
    """KerasTuner's Bayesian search over the learning rate and batch size of the kth head on frozen features.

    Trains on `split["train"]`, scores validation AUC on `split["val"]` (never the test side); the dropout stays at
    the scale's setting. Returns (trials table, best hyper-parameters).
    """
    import keras

    from medcnn import tune
    from medcnn.models.heads import build_head

    space = run_settings["tuner"]
    rate = float(run_settings["dropout"])
    hypermodel = tune.ClassifierHyperModel(
        lambda dropout: build_head(head_spec(run_settings, dropout), features.shape[1:], name="head"),
        learning_rate=space["learning_rate"],
        batch_sizes=space["batch_sizes"],
        dropout=(rate, rate),
        head_units=(),
        loss="categorical_crossentropy",
        metrics=kth_metrics,
    )
    keras.utils.set_random_seed(seed)
    tuner = tune.make_tuner(
        hypermodel, directory, space["objective"], run_settings["tuner_trials"], seed=seed, overwrite=overwrite
    )
    onehot = np.eye(len(CLASS_NAMES), dtype="float32")[labels]
    train, val = np.asarray(split["train"]), np.asarray(split["val"])
    trials, best = tune.search(
        tuner, (features[train], onehot[train]), (features[val], onehot[val]), run_settings["tuner_epochs"],
        verbose=verbose,
    )  # fmt: skip
    return trials, best


def tuning_comparison(best, run_settings):
    """The search's best learning rate and batch size beside the thesis' (lr 1e-3, batch 16)."""
    return pd.DataFrame(
        {
            "thesis": [run_settings["learning_rate"], run_settings["batch_size"]],
            "our search": [best.get("learning_rate", np.nan), best.get("batch_size", np.nan)],
        },
        index=pd.Index(["learning rate", "batch size"], name="hyper-parameter"),
    )


# ----------------------------------------------------------------------------------------------------------------
# Monte Carlo dropout and what the thesis shows of it


def mc_summary(passes, labels, threshold=0.8):
    """The referral numbers of T stochastic passes (T, N, 2) over N images with true `labels`.

    Returns:
        {passes, images, referred, accuracy_all, accuracy_not_referred (NaN when every image is referred),
        recall_all, recall_not_referred (abnormal class), mean_confidence, ece (of the mean probabilities)}.
    """
    from medcnn.uncertainty import expected_calibration_error, summarise_passes

    labels = np.asarray(labels)
    table = summarise_passes(passes, threshold, CLASS_NAMES)
    vote, kept = table["vote"].to_numpy(), ~table["refer_to_human"].to_numpy()
    correct = vote == labels

    def share(mask):
        return float(correct[mask].mean()) if mask.any() else float("nan")

    abnormal = labels == 1
    return {
        "passes": int(np.shape(passes)[0]),
        "images": len(labels),
        "referred": int((~kept).sum()),
        "accuracy_all": share(np.ones_like(kept)),
        "accuracy_not_referred": share(kept),
        "recall_all": share(abnormal),
        "recall_not_referred": share(abnormal & kept),
        "mean_confidence": float(table["confidence"].mean()),
        "ece": expected_calibration_error(passes, labels),
    }


def mc_wrong_cases(passes, labels, index, pool, threshold=0.8):
    """Tables 4.1 / 4.2: the test images the majority vote gets wrong, with mean softmax (of the abnormal class,
    as the thesis prints it), confidence (share of votes), referral, and what each karyogram is."""
    from medcnn.uncertainty import summarise_passes, wrong_cases

    summary = summarise_passes(passes, threshold, CLASS_NAMES)
    wrong = wrong_cases(summary, labels, CLASS_NAMES)
    positions = summary.index[summary["vote"].to_numpy() != np.asarray(labels)]
    wrong["image"] = np.asarray(index)[positions]
    wrong["mean_softmax"] = summary.loc[positions, "mean_abnormal"].to_numpy()
    wrong["aberration"] = pool.table["aberration"].to_numpy()[np.asarray(index)[positions]]
    wrong["karyotype"] = pool.table["karyotype"].to_numpy()[np.asarray(index)[positions]]
    return wrong.rename(columns={"image": "pool image"})


def aberration_recall(predicted, index, pool):
    """Per aberration type of the test images: images, how many were called abnormal, and that share (the recall
    for an aberration, one minus the specificity for "normal")."""
    frame = pd.DataFrame(
        {"aberration": pool.table["aberration"].to_numpy()[np.asarray(index)], "called": np.asarray(predicted) == 1}
    )
    grouped = frame.groupby("aberration", sort=False)["called"]
    result = pd.DataFrame({"images": grouped.size(), "called abnormal": grouped.sum().astype(int)})
    result["share called abnormal"] = result["called abnormal"] / result["images"]
    order = ["normal"] + sorted(name for name in result.index if name != "normal")
    return result.loc[[name for name in order if name in result.index]]


def mc_choices(records, protocol, seed=None):
    """{model name: record} for MC dropout under `protocol`: the VGG16 and InceptionV3 rows with the best validation
    AUC (Tables 4.1 and 4.2 are one model of each) and our two rows, all of one seed (default the first)."""
    chosen = [r for r in records if r["group"] == protocol]
    seed = min(r["seed"] for r in chosen) if seed is None else seed
    chosen = [r for r in chosen if r["seed"] == seed]
    picks = {}
    for backbone, name in BACKBONE_NAMES.items():
        candidates = [r for r in chosen if r["settings"]["backbone"] == backbone]
        if candidates:
            picks[name] = max(candidates, key=lambda r: r["val_roc_auc"])
    return picks


def mc_dropout(records, runs, pools, inputs, run_settings, cache, log=print):
    """Monte Carlo dropout on the test side of each `mc_choices` model of each protocol.

    Returns:
        {protocol: {model name: {"configuration", "seed", "path" (fast or full passes), "summary" (`mc_summary`),
        "wrong" (`mc_wrong_cases`), "aberrations" (`aberration_recall` of the vote), "passes" (T, N, 2),
        "labels", "index"}}}.
    """
    from medcnn.experiment import find_run
    from medcnn.uncertainty import MCDropoutPredictor, summarise_passes

    results = {}
    for protocol in run_settings["protocols"]:
        results[protocol] = {}
        for name, record in mc_choices(records, protocol).items():
            run, pool = find_run(runs, record), pools[record["seed"]]
            config = configuration_of(run)
            size = input_sizes(run_settings)[config.backbone]
            x = inputs[record["seed"]]["features" if config.stage == 1 else "images"]
            x = x[config.backbone] if config.stage == 1 else x[size]
            model = rebuild(run, x, pool.labels, run_settings, cache, log)
            index = np.asarray(run.split["test"])
            predictor = MCDropoutPredictor(model)
            passes = predictor.predict(x[index], run_settings["mc_passes"], seed=record["seed"])
            path = "the head on the precomputed features, every pass" if config.stage == 1 else predictor.description
            labels = pool.labels[index]
            vote = summarise_passes(passes, run_settings["refer_below"])["vote"].to_numpy()
            results[protocol][name] = {
                "configuration": record["configuration"],
                "seed": record["seed"],
                "path": path,
                "summary": mc_summary(passes, labels, run_settings["refer_below"]),
                "wrong": mc_wrong_cases(passes, labels, index, pool, run_settings["refer_below"]),
                "aberrations": aberration_recall(vote, index, pool),
                "passes": passes,
                "labels": labels,
                "index": index,
            }
    return results


def best_mc_entry(results, records, protocol="honest"):
    """The `mc_dropout` entry of `protocol` whose run has the best validation AUC."""
    auc = {(r["configuration"], r["seed"]): r["val_roc_auc"] for r in records}
    return max(results[protocol].values(), key=lambda entry: auc[(entry["configuration"], entry["seed"])])


def mc_table(results):
    """One row per protocol and model: the `mc_summary` numbers."""
    rows = {
        (protocol, name): {"row": entry["configuration"].rsplit(" | ", 1)[0], **entry["summary"]}
        for protocol, models in results.items()
        for name, entry in models.items()
    }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.names = ["protocol", "model"]
    return frame


def mc_payload(results):
    """`mc_dropout` results for results.json: summaries, wrong cases and recall per aberration (no passes)."""
    return {
        protocol: {
            name: {
                "configuration": entry["configuration"],
                "seed": entry["seed"],
                "path": entry["path"],
                **entry["summary"],
                "wrong_cases": entry["wrong"].to_dict("records"),
                "aberration_recall": entry["aberrations"].reset_index().to_dict("records"),
            }
            for name, entry in models.items()
        }
        for protocol, models in results.items()
    }


# ----------------------------------------------------------------------------------------------------------------
# What the run shows


def brightness_baseline(pool, protocol, data="augmented"):
    """A logistic regression on each image's mean grey level alone, trained and tested on one protocol's split.

    Augmenting the classes to the thesis' counts copies abnormal karyograms about twice as often as normal ones
    (7.7 vs 3.6 times at full scale), and a copy's brightness shift greys the white background: a model can learn
    "looks augmented" as "abnormal". This baseline measures how far that cue alone goes. Returns {balanced_accuracy,
    roc_auc} on the test side.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    split = pool.splits[protocol][data]
    grey = pool.images.reshape(len(pool), -1).mean(axis=1, keepdims=True)
    train, test = np.asarray(split["train"]), np.asarray(split["test"])
    model = LogisticRegression().fit(grey[train], pool.labels[train])
    truth = pool.labels[test]
    return {
        "balanced_accuracy": float(balanced_accuracy_score(truth, model.predict(grey[test]))),
        "roc_auc": float(roc_auc_score(truth, model.predict_proba(grey[test])[:, 1])),
    }


def copy_shares(pool, protocol="published"):
    """{class: share of the augmented training side that are copies}, and the same for the test side."""
    split = pool.splits[protocol]["augmented"]
    copies = pool.table["part"].str.endswith("copy").to_numpy()
    shares = {}
    for side in ("train", "test"):
        index = np.asarray(split[side])
        shares[side] = {
            name: float(copies[index][pool.labels[index] == label].mean()) for label, name in enumerate(CLASS_NAMES)
        }
    return shares


def _cell(summary, row, key):
    from medcnn.experiment import mean_std

    if row not in summary.index:
        return "n/a"
    return mean_std(summary.at[row, f"{key}_mean"], summary.at[row, f"{key}_std"], 3)


def _row_records(records, row, protocol):
    """The run records of Table 5.1 row `row` under `protocol`."""
    return [r for r in records if r.get("group") == protocol and r["configuration"] == f"{row} | {protocol}"]


def leakage_statement(records, seeds=None):
    """Test AUC as published against honestly, row by row (paired by seed), on the runs that learned: a row whose
    runs all collapsed under either protocol is named, not compared."""
    from medcnn.experiment import truth

    parts, collapsed, above = [], [], []
    for row in ROWS + OUR_ROWS:
        published, honest = _row_records(records, row, "published"), _row_records(records, row, "honest")
        if not published or not honest:
            continue
        if truth.all_collapsed(published) or truth.all_collapsed(honest):
            collapsed.append(f"'{row}'")
            continue
        verdict = truth.compare_records(published, honest, "test_roc_auc", "published", "honest", "test AUC", True)
        if verdict.verdict == "above":
            above.append(f"'{row}'")
        spread = "" if not np.isfinite(verdict.standard_error) else f", standard error {verdict.standard_error:.3f}"
        parts.append(f"'{row}' {verdict.difference:+.3f}{spread} ({verdict.verdict})")
    text = (
        "Test AUC, published minus honest protocol, per row on the runs that did not collapse (paired by seed"
        + (f", {seeds} seed(s)" if seeds else "")
        + "): "
        + ("; ".join(parts) if parts else "no row learned under both protocols")
        + "."
    )
    if parts:
        text += (
            f" The published protocol is above the honest one beyond two standard errors for {len(above)} of "
            f"{len(parts)} row(s)" + (f" ({', '.join(above)})." if above else ".")
        )
    if collapsed:
        text += f" Every run collapsed under a protocol, so not compared: {', '.join(collapsed)}."
    paper = TABLE_5_1
    return text + (
        f" The thesis' own AUCs, on its published protocol, range from {paper['AUC'].min():.2f} to "
        f"{paper['AUC'].max():.2f}."
    )


def position_statement(records, protocol="honest"):
    """Our small CNN (Flatten head) against the best learned row with the thesis' GAP head, on test AUC (paired
    by seed), under `protocol`."""
    from medcnn.experiment import truth

    scratch = _row_records(records, SCRATCH_ROW, protocol)
    rows = {row: _row_records(records, row, protocol) for row in ROWS + [EXTRA_ROW]}
    learned = {row: runs for row, runs in rows.items() if runs and not truth.all_collapsed(runs)}
    if not scratch:
        return f"Position, {protocol} protocol: the small CNN did not run."
    if truth.all_collapsed(scratch):
        return f"Position, {protocol} protocol: every run of our small CNN collapsed to one class."
    if not learned:
        return (
            f"Position, {protocol} protocol: every run of every row with the thesis' GAP head collapsed to one class; "
            "our small CNN is compared with none of them."
        )
    top = max(learned, key=lambda row: np.nanmean(truth.row_values(learned[row], "test_roc_auc")[0]))
    verdict = truth.compare_records(
        scratch, learned[top], "test_roc_auc", "our small CNN, whose Flatten head keeps where each chromosome sits,",
        f"the best row with the thesis' GAP head that learned ('{top}')", "test AUC",
    )  # fmt: skip
    return (
        f"Position, {protocol} protocol: {verdict.sentence} A karyogram's layout says which chromosome is extra or "
        "missing; global average pooling keeps what the features hold, not where."
    )


def findings(records, leaks, weights, feature_std, tuned, run_settings, best, mc, baselines, shares):
    """The sentences only this study prints, each computed from this run's numbers.

    Args:
        records: every run record.
        leaks: `leakage_table` of the first seed's pool.
        weights: {backbone: weights used}. feature_std: {backbone: std of its features}.
        tuned: the Bayesian search's best hyper-parameters.
        run_settings: the scale's settings.
        best: `best_run(records)` (honest).
        mc: `mc_dropout` results.
        baselines: {protocol: `brightness_baseline`}. shares: `copy_shares` of the first seed's pool.
    """
    from medcnn.experiment import stuck_statement
    from medcnn.experiment import truth

    sentences = []
    published, honest = leaks.loc[("published", "augmented")], leaks.loc[("honest", "augmented")]
    sentences.append(
        f"Leakage, augmented data: as published, {published['copies of a training karyogram']} of "
        f"{published['test']} test karyograms are augmented copies of a training karyogram and "
        f"{published['share a metaphase with training']} share a metaphase with training (even without augmentation "
        f"{leaks.loc[('published', 'original'), 'share a metaphase with training']} of "
        f"{leaks.loc[('published', 'original'), 'test']}, since one metaphase hosts several karyograms); under the "
        f"honest protocol {honest['copies of a training karyogram']} and {honest['share a metaphase with training']}."
    )
    summaries = {protocol: protocol_summary(records, protocol) for protocol in run_settings["protocols"]}
    seeds = int(max(summary["runs"].max() for summary in summaries.values()))
    sentences.append(leakage_statement(records, seeds))
    paper = TABLE_5_1
    for protocol in summaries:
        original, augmented = _row_records(records, ROWS[0], protocol), _row_records(records, ROWS[2], protocol)
        if not original or not augmented:
            continue
        collapsed = [
            f"'{row}'" for row, runs in ((ROWS[0], original), (ROWS[2], augmented)) if truth.all_collapsed(runs)
        ]
        if collapsed:
            said = f"every run of {' and '.join(collapsed)} collapsed to one class, so the two are not compared"
        else:
            said = truth.compare_records(
                augmented, original, "test_roc_auc", "augmented data", "original data", "test AUC"
            ).sentence.rstrip(".")
        sentences.append(
            f"{protocol.capitalize()} protocol, original vs augmented data (VGG16): {said} (thesis: "
            f"{paper.at[ROWS[0], 'AUC']:.2f} vs {paper.at[ROWS[2], 'AUC']:.2f})."
        )
    train_shares = shares["train"]
    grey = {protocol: baselines[protocol]["balanced_accuracy"] for protocol in ("published", "honest")}
    meaning = (
        "copies look different, and the published test side is full of them"
        if grey["published"] - grey["honest"] >= 0.05
        else "at this scale the copies' grey level does not give the classes away"
    )
    sentences.append(
        f"Augmenting to the thesis' counts makes copies {train_shares['abnormal']:.0%} of the abnormal and "
        f"{train_shares['normal']:.0%} of the normal training karyograms (published split); a logistic regression on "
        f"the mean grey level alone reaches balanced test accuracy {grey['published']:.3f} as published and "
        f"{grey['honest']:.3f} honestly: {meaning}."
    )
    random = [BACKBONE_NAMES[name] for name, used in weights.items() if used != "imagenet"]
    if random:
        spread = ", ".join(f"{BACKBONE_NAMES[name]} {value:.2g}" for name, value in feature_std.items())
        sentences.append(
            f"{' and '.join(random)} ran with random weights (no ImageNet file offline; on Colab they download): "
            f"their rows say nothing about transfer learning. Standard deviation of the frozen features: {spread}."
        )
    chosen = ", ".join(
        f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}" for key, value in tuned.items()
    )
    searched = BACKBONE_NAMES[run_settings["tuner_backbone"]]
    sentences.append(
        f"The Bayesian search ({run_settings['tuner_trials']} trials on the {searched} "
        f"head, honest validation AUC) chose {chosen or 'nothing (no trial finished)'}; the thesis chose learning "
        f"rate {run_settings['learning_rate']:g} and batch size {run_settings['batch_size']}, which every row uses."
    )
    for protocol, models in mc.items():
        for name, entry in models.items():
            numbers = entry["summary"]
            sentences.append(
                f"MC dropout, {protocol}, {name} ('{entry['configuration'].rsplit(' | ', 1)[0]}'): "
                f"{numbers['passes']} passes, {numbers['referred']} of {numbers['images']} test karyograms referred "
                f"(confidence < {run_settings['refer_below']:.0%}); majority-vote accuracy "
                f"{numbers['accuracy_all']:.3f} on all, {numbers['accuracy_not_referred']:.3f} on the rest; "
                f"ECE {numbers['ece']:.3f}."
            )
    sentences.append(position_statement(records))
    sentences.append(
        f"Best run on the honest validation AUC: '{best['configuration']}' (seed {best['seed']}): test accuracy "
        f"{best['test_accuracy']:.3f}, balanced {best['test_balanced_accuracy']:.3f}, AUC {best['test_roc_auc']:.3f} "
        "on karyograms of cases it never saw; this is the exported model."
    )
    sentences.append(stuck_statement(records))
    return sentences


def readme_section(payload, scale="cpu"):
    """The README's section on a committed run, generated from its `results.json` payload: both protocols."""
    from medcnn.experiment import readme_section as section
    from medcnn.experiment import readme_table

    headers = {"accuracy": "accuracy", "recall": "recall", "AUC": "AUC"}
    counts = payload["run"]["data"]["counts"]
    if any(isinstance(value, dict) for value in counts.values()):  # counts per part of the pool: per class
        totals = {name: sum(part.get(name, 0) for part in counts.values()) for name in CLASS_NAMES}
        payload = {**payload, "run": {**payload["run"], "data": {**payload["run"]["data"], "counts": totals}}}
    notes = row_notes(payload.get("weights") or payload["run"].get("weights"))
    text = section(
        payload,
        table_id("published"),
        headers,
        f"as published, {PROTOCOLS['published']}; below it the honest protocol ({PROTOCOLS['honest']}). Data: a "
        "synthetic stand-in, karyograms composed from real CIR-Net chromosomes (the thesis' are private). MC dropout, "
        f"leakage counts and recall per aberration: [results/kth/{scale}/report.md](results/kth/{scale}/report.md).",
        row_notes=notes,
    )
    table, findings_start = readme_table(payload, table_id("honest"), headers, row_notes=notes), "What the run shows"
    before, after = text.split(findings_start, 1)
    return f"{before}Honest protocol:\n\n{table}\n\n{findings_start}{after}"


# ----------------------------------------------------------------------------------------------------------------
# The plan: what a scale would train, without training it (`python -m medcnn plan kth --scale cpu`)

PLAN_LEAVES_OUT = (
    "composing and augmenting the karyograms, Monte Carlo dropout (`mc_passes` inference passes over the test "
    "side of the chosen models), evaluation and export"
)
FINE_TUNED_MODELS = {("vgg16", 1): "vgg16 last block", ("vgg16", 2): "vgg16 last two blocks",
                     ("inception_v3", "all"): "inception_v3 whole"}  # fmt: skip


def plan_runs(run_settings, data_dir=None):
    """Per seed, each backbone's features of the whole pool, then the search (once) and the rows the notebook
    trains (stage one, the small CNN, stage two) under both protocols, as `experiment.estimate.PlannedRun`s.

    The karyograms are composed from the staged chromosomes in the settings' counts, so the counts come from the
    settings, not from files (`data_dir` is not read): a pool holds about twice the augmented count (the published
    karyograms and their copies, the honest training side and its copies, honest validation and test), a training
    side `split_ratios[0]` of the original or augmented count.
    """
    from medcnn.experiment.estimate import PlannedRun

    original, augmented = sum(run_settings["original_counts"].values()), sum(run_settings["augmented_counts"].values())
    train = {data: round(run_settings["split_ratios"][0] * n) for data, n in (("original", original),
                                                                               ("augmented", augmented))}  # fmt: skip
    sizes = input_sizes(run_settings)
    patience = run_settings["early_stopping_patience"]
    epochs_of = {1: run_settings["epochs"], 0: run_settings["scratch_epochs"], 2: run_settings["fine_tune_epochs"]}
    planned = []
    for seed in run_settings["seeds"]:
        planned += [
            PlannedRun(f"{BACKBONE_NAMES[name]} features of the pool", seed, "feature extraction", name, 1,
                       2 * augmented, sizes[name])
            for name in sizes if name != SCRATCH_BACKBONE
        ]  # fmt: skip
        if seed == run_settings["seeds"][0]:
            searched = run_settings["tuner_backbone"]
            planned.append(
                PlannedRun(f"search: {run_settings['tuner_trials']} trials x {run_settings['tuner_epochs']} epochs, "
                           f"{BACKBONE_NAMES[searched]} head", seed, "frozen-feature head", f"kth_head:{searched}",
                           run_settings["tuner_trials"] * run_settings["tuner_epochs"], train["augmented"])
            )  # fmt: skip
        for configurations in (STAGE_ONE, FROM_SCRATCH, STAGE_TWO):
            for protocol in run_settings["protocols"]:
                for config in configurations:
                    epochs = epochs_of[config.stage]
                    stops = bool(patience) and patience < epochs
                    if config.stage == 1:
                        kind, model, size = "frozen-feature head", f"kth_head:{config.backbone}", None
                    elif config.stage == 0:
                        kind, model, size = "from scratch", "kth_scratch_cnn", sizes[config.backbone]
                    else:
                        kind, size = "fine-tuning", sizes[config.backbone]
                        model = FINE_TUNED_MODELS.get((config.backbone, config.trainable), config.backbone)
                    planned.append(PlannedRun(config.label(protocol), seed, kind, model, epochs, train[config.data],
                                              size, stops))  # fmt: skip
    return planned
