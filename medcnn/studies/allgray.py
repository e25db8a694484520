"""allgray: ALL subtypes from grayscale cell images with a small CNN (Zhang, 2024).

The paper's Table 1 as data, its configurations and the variations it names, our own rows past it, the settings
per scale, and the findings only this study has. Runs, caching, summaries, export and outputs come from
`medcnn.experiment`.
"""

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from medcnn.report import paper_table
from medcnn.studies import copy_tables

STUDY = "allgray"
DATASET_ID = "all4"
CITATION = {
    "title": "Optimized Convolutional Neural Networks for Enhanced Detection of Acute Lymphoblastic Leukemia "
    "from Grayscale Cell Images",
    "authors": "Yuan Zhang (University of Melbourne)",
    "year": 2024,
    "venue": "ISSN 2959-6157",
    "seed_file": "003_6c3989d349fbf500.txt",
    "data": "Kaggle 'Leukemia' (mehradaria/leukemia), Ghaderzadeh et al. 2022: 3,256 images, 4 classes",
}
CLASS_NAMES = ["Benign", "Early", "Pre", "Pro"]
PAPER_TABLE1 = paper_table(
    STUDY,
    "Table 1",
    "The Performance of The Model Under Different Configurations",
    ["val acc", "val predict s", "test acc", "test predict s"],
    [
        ("15 epochs, batch 64, categorical CE", 0.80, 2.13, 0.82, 1.98),
        ("15 epochs, batch 64, binary CE", 0.76, 2.09, 0.78, 2.62),
        ("15 epochs, batch 32, categorical CE", 0.74, 2.09, 0.75, 2.62),
        ("10 epochs, batch 32, categorical CE", 0.78, 2.09, 0.81, 2.62),
    ],
    index_name="configuration",
    source="seed 003_6c3989d349fbf500.txt, Table 1",
)
PAPER_TABLE1.attrs["decimals"] = 2
METRIC_KEYS = {
    "Table 1": {
        "val acc": "val_accuracy",
        "val predict s": "val_predict_s",
        "test acc": "test_accuracy",
        "test predict s": "test_predict_s",
    }
}
SUMMARY_METRICS = [
    "val_accuracy",
    "test_accuracy",
    "test_balanced_accuracy",
    "test_macro_f1",
    "val_predict_s",
    "test_predict_s",
    "val_keras2_accuracy",
    "test_keras2_accuracy",
    "train_images_per_s",
    "epochs",
]


@dataclass(frozen=True)
class Configuration:
    """One trained setting; `group` says which table or variation it belongs to. None fields are left unset."""

    label: str
    epochs: int
    batch_size: int
    loss: str = "categorical_crossentropy"
    conv_layers: int = 3
    batch_norm: bool = False
    augment: bool = False
    deduplicate: bool = False
    group: str = "table1"
    batch_norm_momentum: float = None
    schedule: str = None  # None: Adam at a constant 1e-3 as published; "cosine": cosine decay to 0 over the run
    backbone: str = None  # a transfer model's backbone instead of the paper's CNN

    def settings(self):
        """What defines the run (recorded and fingerprinted): the fields that are set."""
        return {key: value for key, value in asdict(self).items() if value is not None}


CATEGORICAL, BINARY = "categorical_crossentropy", "binary_crossentropy"
TABLE1 = [
    Configuration("15 epochs, batch 64, categorical CE", 15, 64, CATEGORICAL),
    Configuration("15 epochs, batch 64, binary CE", 15, 64, BINARY),
    Configuration("15 epochs, batch 32, categorical CE", 15, 32, CATEGORICAL),
    Configuration("10 epochs, batch 32, categorical CE", 10, 32, CATEGORICAL),
]
# Table 1's 10-epoch row is the first 10 epochs of the 15-epoch run with the same batch and seed (constant
# learning rate, no early stopping): it is recorded from that run instead of trained again.
SNAPSHOTS = {TABLE1[3].label: TABLE1[2].label}
_BEST_PUBLISHED = TABLE1[0]
CONV_LAYER_VARIANTS = [
    replace(
        _BEST_PUBLISHED,
        label=f"{n} conv layers (15 epochs, batch 64, categorical CE)",
        conv_layers=n,
        group="conv_layers",
    )
    for n in (2, 4)
]
HONEST = replace(
    _BEST_PUBLISHED,
    label="exact duplicates removed before the split (15 epochs, batch 64)",
    deduplicate=True,
    group="honest",
)
BEYOND = replace(_BEST_PUBLISHED, label="ours: 40 epochs, batch 64, categorical CE", epochs=40, group="beyond")
OURS = replace(
    _BEST_PUBLISHED,
    label="ours: batch norm (momentum 0.9), flips, cosine decay, 40 epochs, batch 64",
    epochs=40,
    batch_norm=True,
    batch_norm_momentum=0.9,
    augment=True,
    schedule="cosine",
    group="ours",
)
TRANSFER = replace(
    _BEST_PUBLISHED,
    label="reference: MobileNetV2 (ImageNet, frozen) + dense head, gray to RGB, 15 epochs",
    backbone="mobilenet_v2",
    group="transfer",
)
GROUPS = ("table1", "conv_layers", "honest", "beyond", "ours", "transfer")

_COMMON = {
    "class_names": CLASS_NAMES,
    "image_size": (100, 100),
    "load_size": (224, 224),
    "max_images": None,  # every image found (3,061 staged, 3,256 in the Kaggle download): smoke cuts epochs
    "ratios": (0.7, 0.15, 0.15),
    "learning_rate": 1e-3,
    "predict_batch_size": 32,
    "hog_pca_components": 100,
}
SETTINGS = {
    "smoke": {
        **_COMMON,
        "seeds": [0],  # each seed fixes the split and the initialisation
        # the groups that run, each with None (the scale's seeds) or its own list of seeds
        "groups": {"table1": None, "ours": None},
        "epoch_scale": 0.35,  # 15 -> 5 epochs (170 steps at batch 64: past the ~130 that leave the plateau)
        # at most this many epochs per group: our row (batch norm, flips) trains at a third of the CNN's speed
        "max_epochs": {"table1": 5, "ours": 2},
        "allow_random_weights": True,
    },
    "full": {
        **_COMMON,
        "seeds": [0, 1, 2],
        "groups": {g: None for g in ("table1", "conv_layers", "honest", "ours", "transfer")} | {"beyond": [0]},
        "epoch_scale": 1.0,
        "max_epochs": None,
        "allow_random_weights": False,
    },
}
SCALE_ALIASES = {"cpu": "full"}  # the paper's own protocol fits this CPU: `cpu` and `full` are one run


def settings(scale="smoke", **overrides):
    """The settings of `scale` ("smoke", "full"; "cpu" is "full") with the non-None `overrides` applied."""
    from medcnn.studies import select_settings

    return select_settings(SETTINGS, SCALE_ALIASES.get(scale, scale), overrides)


def configurations(groups=GROUPS):
    """Every configuration of `groups`, in table order."""
    every = [*TABLE1, *CONV_LAYER_VARIANTS, HONEST, BEYOND, OURS, TRANSFER]
    return [c for c in every if c.group in groups]


def paper_tables():
    """{"Table 1": DataFrame}, a fresh copy each call."""
    return copy_tables({"Table 1": PAPER_TABLE1})


def load_data(data_dir=None, load_size=(224, 224), max_images=None, seed=0):
    """The Kaggle ALL images (`Original/`) as RGB, optionally a stratified slice; bad files skipped and listed."""
    from medcnn.data.loaders import decode_set, load_folders
    from medcnn.data.paths import resolve_dataset
    from medcnn.data.splits import stratified_subset

    root = resolve_dataset(DATASET_ID, data_dir)
    data = load_folders(root / "Original" if (root / "Original").is_dir() else root, decode=False)
    return decode_set(data.subset(stratified_subset(data.labels, max_images, seed)), load_size, "rgb", skip_bad=True)


def preprocess(images, image_size=(100, 100)):
    """The paper's preprocessing (resize, grayscale, /255) as the saved model applies it: float32 (N, H, W, 1)."""
    from medcnn.preprocessing import ImagePreprocessing, preprocess_images

    return preprocess_images(images, ImagePreprocessing(tuple(image_size), "grayscale", scale=1.0 / 255.0))


def make_split(labels, fingerprints, seed, ratios=(0.7, 0.15, 0.15), deduplicate=False):
    """Stratified train/val/test indices; with `deduplicate`, byte-identical copies are removed first.

    Returns (split, info): info counts the duplicates removed and the val/test images with a copy in train.
    """
    from medcnn.data.splits import train_val_test_split

    fingerprints = np.asarray(fingerprints)
    keep = np.sort(np.unique(fingerprints, return_index=True)[1]) if deduplicate else np.arange(len(labels))
    train, val, test = train_val_test_split(labels[keep], ratios=ratios, seed=seed)
    split = {"train": keep[train], "val": keep[val], "test": keep[test]}
    in_train = set(fingerprints[split["train"]])
    across = {side: int(sum(f in in_train for f in fingerprints[split[side]])) for side in ("val", "test")}
    return split, {"duplicates_removed": len(labels) - len(keep), "duplicates_across_sides": across}


def build_model(config, input_shape, steps_per_epoch, epochs, learning_rate=1e-3, allow_random_weights=False):
    """The configuration's model, compiled through `medcnn.train.compile_model` (the backend decides jit)."""
    import keras

    from medcnn.train import compile_model

    if config.backbone:
        from medcnn.models.heads import DenseLayer, HeadSpec
        from medcnn.models.transfer import transfer_model

        head = HeadSpec(len(CLASS_NAMES), dropout=0.5, dense=(DenseLayer(128),), seed=0)
        model = transfer_model(config.backbone, head, input_shape, allow_random=allow_random_weights, input_max=1.0)
    else:
        from medcnn.models.blocks import BATCH_NORM_MOMENTUM
        from medcnn.models.scratch import allgray_cnn

        model = allgray_cnn(
            input_shape,
            len(CLASS_NAMES),
            conv_layers=config.conv_layers,
            batch_norm=config.batch_norm,
            batch_norm_momentum=config.batch_norm_momentum or BATCH_NORM_MOMENTUM,
        )
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps_per_epoch * epochs)
    # "accuracy" is what the paper's code asks for. tf.keras 2.x turned it into *binary* accuracy whenever the
    # loss was binary cross-entropy; Keras 3 turns it into categorical accuracy. We record both explicitly.
    metrics = ["accuracy", keras.metrics.BinaryAccuracy(name="binary_accuracy")]
    return compile_model(model, "adam", learning_rate, loss=config.loss, metrics=metrics)


def keras2_accuracy(labels, probabilities):
    """What tf.keras 2 printed as 'accuracy' under binary CE: element-wise binary accuracy of the one-hot outputs."""
    from medcnn.evaluate import keras_binary_accuracy

    return {"keras2_accuracy": keras_binary_accuracy(np.eye(len(CLASS_NAMES))[labels], probabilities)}


def flips(seed):
    """Random horizontal and vertical flips: a cell image has no up, down, left or right."""
    import keras

    return keras.Sequential([keras.layers.RandomFlip("horizontal_and_vertical", seed=seed)], name="augmentation")


def scaled_epochs(config, epoch_scale, max_epochs=None):
    """The configuration's epochs times `epoch_scale`, at least 1 and at most `max_epochs[group]` (None: no cap)."""
    cap = (max_epochs or {}).get(config.group) or config.epochs
    return min(max(1, int(round(config.epochs * epoch_scale))), cap)


def make_runs(x, labels, fingerprints, run_settings, data_fingerprint):
    """The scale's `experiment.Run`s, seed by seed (each seed fixes split and initialisation), with their splits.

    Every run carries the whole `run_settings` and `data_fingerprint` (a hash of the data files): its fingerprint
    hashes all of them, so a record is reused only under the same settings and data.
    """
    from medcnn.experiment import Run, seed_order

    seeds_of = {
        group: (chosen if chosen is not None else run_settings["seeds"])
        for group, chosen in run_settings["groups"].items()
    }
    runs, splits = {}, {}
    for config, seed in seed_order(configurations(tuple(seeds_of)), seeds_of):
        split, info = make_split(labels, fingerprints, seed, run_settings["ratios"], config.deduplicate)
        splits[(config.label, seed)] = info
        epochs = scaled_epochs(config, run_settings["epoch_scale"], run_settings["max_epochs"])
        steps = math.ceil(len(split["train"]) / config.batch_size)
        runs[(config.label, seed)] = Run(
            label=config.label,
            seed=seed,
            split=split,
            epochs=epochs,
            batch_size=config.batch_size,
            group=config.group,
            settings=config.settings(),
            build_model=lambda c=config, e=epochs, s=steps: build_model(
                c, x.shape[1:], s, e, run_settings["learning_rate"], run_settings["allow_random_weights"]
            ),
            spec=run_settings,
            data=data_fingerprint,
            augmentation=flips if config.augment else None,
            extra_metrics=keras2_accuracy,
            predict_batch_size=run_settings["predict_batch_size"],
        )
    for short, long in SNAPSHOTS.items():
        for seed in run_settings["seeds"]:
            pair = runs.get((short, seed)), runs.get((long, seed))
            if None not in pair and pair[0].epochs < pair[1].epochs:
                runs[(long, seed)] = replace(runs[(long, seed)], snapshots=(runs.pop((short, seed)),))
    return list(runs.values()), splits


def findings(summary, records):
    """The sentences only this study prints, each computed from the summary and the run records."""
    from medcnn.experiment import gap_statement, mean_std, stuck_statement

    def row(label):
        r = summary.loc[label]
        return f"{mean_std(r['test_accuracy_mean'], r['test_accuracy_std'])} over {int(r['runs'])} seed(s)"

    paper = PAPER_TABLE1["test acc"]
    first = TABLE1[0].label
    reached = "reaches" if summary.loc[first, "test_accuracy_mean"] >= paper[first] else "does not reach"
    sentences = [
        f"The paper's best configuration ('{first}') {reached} the published test accuracy on this data: "
        f"{row(first)} vs {paper[first]:.2f}."
    ]
    sentences += [
        gap_statement(summary, paper, first, other.label, "test_accuracy", "test accuracy")
        for other in TABLE1[2:]
        if other.label in summary.index
    ]
    if TABLE1[1].label in summary.index:
        sentences.append(binary_accuracy_statement(summary))
    if HONEST.label in summary.index:
        sentences.append(
            f"Removing exact duplicates before the split changes the test accuracy of '{first}' from "
            f"{row(first)} to {row(HONEST.label)}."
        )
    conv = [c for c in [CONV_LAYER_VARIANTS[0], TABLE1[0], CONV_LAYER_VARIANTS[1]] if c.label in summary.index]
    if len(conv) > 1:
        parts = ", ".join(f"{c.conv_layers} conv layers {row(c.label)}" for c in conv)
        sentences.append(f"Test accuracy by number of conv layers (15 epochs, batch 64, categorical CE): {parts}.")
    stuck = stuck_statement(records)
    if not stuck.startswith("0 of"):
        stuck += " Adam at 1e-3 on this CNN sometimes fails to start, which single runs cannot show."
    sentences.append(stuck)
    for config in (BEYOND, OURS, TRANSFER):
        if config.label in summary.index:
            passes = summary.loc[config.label, "test_accuracy_mean"] >= paper[first]
            sentences.append(
                f"'{config.label}' {'reaches' if passes else 'does not reach'} the paper's "
                f"{paper[first]:.2f}: test accuracy {row(config.label)}."
            )
    return sentences


def binary_accuracy_statement(summary, label=TABLE1[1].label):
    """What the binary cross-entropy row's 'accuracy' most likely measured, from our own numbers."""
    r = summary.loc[label]
    true_acc, keras2_acc, paper = (
        r["test_accuracy_mean"],
        r["test_keras2_accuracy_mean"],
        PAPER_TABLE1.loc[label, "test acc"],
    )
    floor = (len(CLASS_NAMES) - 1) / len(CLASS_NAMES)  # all outputs below 0.5: every zero of the one-hot is "right"
    closer = (
        "element-wise binary accuracy" if abs(paper - keras2_acc) < abs(paper - true_acc) else "true 4-class accuracy"
    )
    return (
        f"With binary cross-entropy and metrics=['accuracy'], tf.keras 2.x (the TensorFlow of 2024) silently reported "
        f"element-wise binary accuracy over the {len(CLASS_NAMES)} one-hot outputs, which is {floor:.2f} for a model "
        f"that predicts nothing (Keras 3 now reports categorical accuracy here); our runs of that row reach a true "
        f"4-class test accuracy of {true_acc:.3f} but would have printed {keras2_acc:.3f}, so the paper's {paper:.2f} "
        f"is closer to the {closer}."
    )


def readme_section(payload, scale="full"):
    """The README's section on a committed run, generated from its `results.json` payload."""
    from medcnn.experiment import readme_section as section

    return section(
        payload,
        "Table 1",
        {"val acc": "val acc", "test acc": "test acc"},
        f"the paper's epochs and batch sizes, stratified 70/15/15 splits, trained from scratch; the paper's numbers "
        f"come from `medcnn.studies.allgray`. The full report adds the conv-layer rows, the duplicate-free protocol, "
        f"our rows, MobileNetV2 and HOG + PCA, with curves, confusion matrix and sample predictions: "
        f"[results/allgray/{scale}/report.md](results/allgray/{scale}/report.md).",
    )
