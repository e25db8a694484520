"""The karyogram pool of the `kth` study: whole karyograms of one seed under two protocols, and their leakage.

The KTH thesis (2020) augments its karyograms offline *before* it splits them, so copies of one karyogram sit in
training and test ("published"). The honest protocol splits the metaphases by case first, composes each side from
its own metaphases only (`medcnn.data.karyogram.compose_karyograms`, donors included) and augments the training side
only. A `Pool` holds every karyogram of both protocols with one table row per image (its part, aberration, host
metaphase and case, the chromosome files it was made from) and the index splits into it, so that the leakage of
each split can be counted (`leakage_table`). A user's own karyograms (`normal/`, `abnormal/`) replace the composed
stand-in (`load_source`).

    source = load_source(data_dir, (416, 416))
    pool = build_pool(source, kth.settings("smoke"), seed=0)
    leakage_table(pool)
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medcnn.data.karyogram import KARYOGRAM_CLASSES

CLASS_NAMES = list(KARYOGRAM_CLASSES)  # normal, abnormal: label 1 (abnormal) is the positive class
DATASET_ID = "chromosomes"  # the staged CIR-Net G-band crops the karyograms are composed from


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
    from medcnn.data.splits import LopsidedSplitWarning, train_val_test_split

    cells = metaphase_table(bank)
    with warnings.catch_warnings():  # a lopsided sex ratio on a side does not matter here; other warnings do
        warnings.filterwarnings("ignore", "The grouped split", LopsidedSplitWarning)
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


def leakage_sentence(leaks, data="augmented"):
    """`leakage_table`'s `data` rows as a sentence: how many test karyograms are copies of a training karyogram or
    share a metaphase with training, as published and honestly."""
    published, honest = leaks.loc[("published", data)], leaks.loc[("honest", data)]
    copies, shared = "copies of a training karyogram", "share a metaphase with training"
    return (
        f"Leakage, {data} data: as published, {published[copies]} of {published['test']} test karyograms are "
        f"copies of a training karyogram and {published[shared]} share a metaphase with training; honestly "
        f"{honest[copies]} and {honest[shared]}."
    )


def copies_sentence(shares, baselines):
    """How much of the published training side is augmented copies (`copy_shares(pool)["train"]`), and what a
    classifier of the mean grey level alone reaches on each protocol's test side (`baselines`: {protocol:
    {"balanced_accuracy"}}, e.g. `classical.mean_grey_baseline` of its augmented split)."""
    grey = {protocol: baselines[protocol]["balanced_accuracy"] for protocol in ("published", "honest")}
    meaning = (
        "copies look different, and the published test side is full of them"
        if grey["published"] - grey["honest"] >= 0.05
        else "at this scale the copies' grey level does not give the classes away"
    )
    return (
        f"Augmenting to the thesis' counts makes copies {shares['abnormal']:.0%} of the abnormal and "
        f"{shares['normal']:.0%} of the normal training karyograms (published split); a logistic regression on the "
        f"mean grey level alone reaches balanced test accuracy {grey['published']:.3f} as published and "
        f"{grey['honest']:.3f} honestly: {meaning}."
    )


def test_column(pools, column):
    """record -> the `column` of its seed's pool table at its `test_indices` (`pools`: {seed: Pool})."""
    return lambda record: pools[record["seed"]].table[column].to_numpy()[np.asarray(record["test_indices"])]


def test_metaphases(pools):
    """record -> (labels, host metaphases, {"cases": host cases}) of its test side in its seed's pool: the groups
    `experiment.protocols.grouped_intervals` resamples."""

    def test_side(record):
        pool, index = pools[record["seed"]], np.asarray(record["test_indices"])
        hosts = pool.table["host_metaphase"].to_numpy()[index]
        return pool.labels[index], hosts, {"cases": pool.table["host_case"].iloc[index].nunique()}

    return test_side


def pool_counts(pool):
    """Images per part of the pool and class."""
    frame = pool.table.assign(**{"class": np.array(CLASS_NAMES)[pool.labels]})
    return frame.groupby(["part", "class"], sort=False).size().unstack(fill_value=0)


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
