"""allgray: ALL subtypes from grayscale cell images with a small CNN (Zhang, 2024).

The paper's Table 1 as data, its configurations and the variations it names, our own rows past it, the settings
per scale, and the findings only this study has. Runs, caching, summaries, export and outputs come from
`medcnn.experiment`.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from medcnn.report.published import paper_table, tables_function
from medcnn.settings import SetFields, settings_function

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
    "val_balanced_accuracy",
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
class Configuration(SetFields):
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
    centre_inputs: bool = None  # None: [0, 1] inputs as published; True: the training mean subtracted in the model

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
# Table 1 labels: the 10-epoch row is not a run of its own (its runs and failed starts are the batch-32 row's)
TABLE1_NOTES = {short: f"epoch 10 of the '{long}' runs: the same runs" for short, long in SNAPSHOTS.items()}
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
# The paper's CNN and optimiser unchanged, on centred inputs: on seed 2 of the published row 84 % of conv2's ReLU
# channels were dead after epoch 1 at Adam 1e-3 (validation stuck at the majority rate); centred, 25 %, and it learns.
CURE = replace(
    _BEST_PUBLISHED,
    label="ours: the paper's CNN on centred inputs (training mean subtracted), 15 epochs, batch 64",
    centre_inputs=True,
    group="cure",
)
TRANSFER = replace(
    _BEST_PUBLISHED,
    label="reference: MobileNetV2 (ImageNet, frozen) + dense head, gray to RGB, 15 epochs",
    backbone="mobilenet_v2",
    group="transfer",
)
GROUPS = ("table1", "conv_layers", "honest", "cure", "ours", "transfer")

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
        # 64x64 instead of the paper's 100x100: 2.1x the training rate (482 vs 226 images/s measured for the
        # Table 1 CNN), and after 5 epochs the same test accuracy within seed noise (0.578 vs 0.604, seed 0)
        "image_size": (64, 64),
        "epoch_scale": 0.35,  # 15 -> 5 epochs (170 steps at batch 64: past the ~130 that leave the plateau)
        # at most this many epochs per group: our row trains at under half the CNN's speed (its BatchNormalization
        # on the full-size maps: 101 images/s with or without the flips, against 226 for the CNN, at 100 px)
        "max_epochs": {"table1": 5, "ours": 4},
        "allow_random_weights": True,
    },
    "full": {
        **_COMMON,
        # the paper's figures are single runs: ten seeds per row show how often each recipe fails to start
        "seeds": list(range(10)),
        "groups": {g: None for g in GROUPS},
        "epoch_scale": 1.0,
        "max_epochs": None,
        "allow_random_weights": False,
    },
    # The paper's own protocol fits this CPU: `cpu` is the `full` run (its settings, its name, results/allgray/full).
    "cpu": "full",
}


settings = settings_function(SETTINGS)
def configurations(groups=GROUPS):
    """Every configuration of `groups`, in table order."""
    every = [*TABLE1, *CONV_LAYER_VARIANTS, HONEST, CURE, OURS, TRANSFER]
    return [c for c in every if c.group in groups]


paper_tables = tables_function({"Table 1": PAPER_TABLE1})


def load_data(data_dir=None, load_size=(224, 224), max_images=None, seed=0):
    """The Kaggle ALL images (`Original/`) as RGB, optionally a stratified slice; bad files skipped and listed."""
    from medcnn.data.loaders import decode_set, load_folders
    from medcnn.data.paths import resolve_dataset
    from medcnn.data.splits import stratified_subset

    data = load_folders(resolve_dataset(DATASET_ID, data_dir, inner=("Original",)), decode=False)
    return decode_set(data.subset(stratified_subset(data.labels, max_images, seed)), load_size, "rgb", skip_bad=True)


def preprocess(images, image_size=(100, 100)):
    """The paper's preprocessing (resize, grayscale, /255) as the saved model applies it: float32 (N, H, W, 1)."""
    from medcnn.preprocessing import ImagePreprocessing, preprocess_images

    return preprocess_images(images, ImagePreprocessing(tuple(image_size), "grayscale", scale=1.0 / 255.0))


def build_model(
    config, input_shape, steps_per_epoch, epochs, learning_rate=1e-3, allow_random_weights=False, input_mean=None
):
    """The configuration's model, compiled through `medcnn.train.compile_model` (the backend decides jit).

    `input_mean`: the training images' mean, subtracted inside the model when `config.centre_inputs` is set.
    """
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
            centre=input_mean if config.centre_inputs else None,
        )
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps_per_epoch * epochs)
    # "accuracy" is what the paper's code asks for. tf.keras 2.x turned it into *binary* accuracy whenever the
    # loss was binary cross-entropy; Keras 3 turns it into categorical accuracy. We record both explicitly.
    metrics = ["accuracy", keras.metrics.BinaryAccuracy(name="binary_accuracy")]
    return compile_model(model, "adam", learning_rate, loss=config.loss, metrics=metrics)


def transfer_weights(run_settings):
    """{backbone: "imagenet" or "random"} of the transfer rows the scale runs, resolved as `build_model` does."""
    from medcnn.models.backbones import weights_used

    backbones = dict.fromkeys(c.backbone for c in configurations(tuple(run_settings["groups"])) if c.backbone)
    return weights_used(backbones, (*run_settings["image_size"], 3), run_settings["allow_random_weights"])


def seeding(run_settings, weights=None):
    """What each seed varies and what is held fixed, for results.json (`experiment.seed_policy`).

    `weights`: {backbone: "imagenet" or "random"} of the transfer rows (None: `transfer_weights`).
    """
    from medcnn.experiment import seed_policy

    weights = transfer_weights(run_settings) if weights is None else weights
    varies = ["split", "initialisation", "data order", "augmentation draws", "dropout masks (CNNs from scratch)"]
    held = {"composition": "the images loaded (`load_data`, seed 0 where `max_images` draws a subset): one data set"}
    return seed_policy(varies, held, weights, seeded_heads=True)


def flips(seed):
    """Random horizontal and vertical flips: a cell image has no up, down, left or right."""
    import keras

    return keras.Sequential([keras.layers.RandomFlip("horizontal_and_vertical", seed=seed)], name="augmentation")


def dead_channel_probe(images):
    """The runs' callbacks factory: `() -> [DeadChannels(images)]`, logging each epoch's dead ReLU channels."""
    from medcnn.diagnostics import DeadChannels

    return lambda: [DeadChannels(images)]


def scaled_epochs(config, epoch_scale, max_epochs=None):
    """The configuration's epochs times `epoch_scale`, at least 1 and at most `max_epochs[group]` (None: no cap)."""
    cap = (max_epochs or {}).get(config.group) or config.epochs
    return min(max(1, int(round(config.epochs * epoch_scale))), cap)


def make_runs(x, labels, fingerprints, run_settings, data_fingerprint):
    """The scale's `experiment.Run`s, seed by seed (each seed fixes split and initialisation), with their splits.

    Every run carries the whole `run_settings` and `data_fingerprint` (a hash of the data files), and a transfer
    row the weights its backbone resolves to here ("imagenet" or "random"): its fingerprint hashes all of them, so a
    record is reused only under the same settings, data and backbone weights.
    """
    from medcnn.data.splits import deduplicated_split
    from medcnn.evaluate import keras2_accuracy
    from medcnn.experiment import Run, group_seeds, seed_order
    from medcnn.experiment.plan import snapshot_pairs

    seeds_of = group_seeds(run_settings["groups"], run_settings["seeds"])
    resolved = transfer_weights(run_settings)  # as `build_model` resolves them (and `row_notes` reports them)

    def data_of(config):
        if not config.backbone:
            return data_fingerprint
        return {"files": data_fingerprint, "backbone_weights": resolved[config.backbone]}

    runs, splits = {}, {}
    for config, seed in seed_order(configurations(tuple(seeds_of)), seeds_of):
        split, info = deduplicated_split(labels, fingerprints, seed, run_settings["ratios"], config.deduplicate)
        splits[(config.label, seed)] = info
        epochs = scaled_epochs(config, run_settings["epoch_scale"], run_settings["max_epochs"])
        steps = math.ceil(len(split["train"]) / config.batch_size)
        mean = float(np.mean(x[split["train"]])) if config.centre_inputs else None
        runs[(config.label, seed)] = Run(
            label=config.label,
            seed=seed,
            split=split,
            epochs=epochs,
            batch_size=config.batch_size,
            group=config.group,
            settings=config.settings(),
            build_model=lambda c=config, e=epochs, s=steps, m=mean: build_model(
                c, x.shape[1:], s, e, run_settings["learning_rate"], run_settings["allow_random_weights"], m
            ),
            spec=run_settings,
            data=data_of(config),
            augmentation=flips if config.augment else None,
            # 256 training images probe the ReLUs after each epoch (~0.5 s): the dead-channel share of a failed start
            callbacks=None if config.backbone else dead_channel_probe(x[split["train"][:256]]),
            extra_metrics=keras2_accuracy,
            predict_batch_size=run_settings["predict_batch_size"],
        )
    for short, long in snapshot_pairs(runs, SNAPSHOTS, run_settings["seeds"]):
        runs[long] = replace(runs[long], snapshots=(runs.pop(short),))
    return list(runs.values()), splits


def row_notes(run_settings):
    """{TRANSFER.label: "random weights"} when the MobileNetV2 reference row loads random weights here (the file it
    resolves to, as `build_model` does); {} when it loads ImageNet weights or does not run at this scale."""
    from medcnn.experiment.truth import weights_notes

    if TRANSFER.group not in run_settings["groups"]:
        return {}
    return weights_notes({TRANSFER.label: transfer_weights(run_settings)[TRANSFER.backbone]})


def _row_records(records, label):
    return [record for record in records if record.get("configuration") == label]


def _collapse_counts(records, labels):
    """'k of n' collapsed runs of each row, joined: "1 of 10 and 0 of 10"."""
    from medcnn.experiment import truth

    rows = [_row_records(records, label) for label in labels]
    return " and ".join(truth.collapsed_note(sum(map(truth.is_collapsed, chosen)), len(chosen)) for chosen in rows)


def findings(summary, records):
    """The sentences only this study prints, each computed from the summary and the run records. Every comparison
    goes through `medcnn.experiment.truth` (two standard errors of seed noise, paired by seed; the 10-epoch row is a
    snapshot of the 15-epoch run: paired) over the runs that learned, with the failed starts counted apart."""
    from medcnn.diagnostics import dead_share_note
    from medcnn.experiment import stuck_statement, truth
    from medcnn.experiment.summary import row_cell

    def row(label):
        return row_cell(summary, records, label)

    def reaches(label, name):
        return truth.row_reaches_paper(_row_records(records, label), "test_accuracy", paper[first], name,
                                       "test accuracy")  # fmt: skip

    def compare(a, b, a_label, b_label):
        """A over B on the runs that learned, the collapsed runs of each counted after it."""
        a_records, b_records = _row_records(records, a), _row_records(records, b)
        verdict = truth.compare_records(a_records, b_records, "test_accuracy", a_label, b_label, "test accuracy",
                                        learned_only=True)  # fmt: skip
        if not any(truth.is_collapsed(record) for record in a_records + b_records):
            return verdict.sentence
        return (f"{verdict.sentence[:-1]} (runs that learned only; {_collapse_counts(records, (a, b))} runs "
                "collapsed, counted in the failed-start sentences).")  # fmt: skip

    paper = PAPER_TABLE1["test acc"]
    first = TABLE1[0].label
    sentences = [reaches(first, f"The paper's best configuration ('{first}') on this data")]
    for other in TABLE1[2:]:
        if other.label in summary.index:
            verdict = compare(first, other.label, f"'{first}'", f"'{other.label}'")
            sentences.append(
                f"The paper prints {paper[first]:.2f} for '{first}' and {paper[other.label]:.2f} for "
                f"'{other.label}' ({paper[first] - paper[other.label]:+.2f}); ours: {verdict}"
            )
    short, long = TABLE1[3].label, TABLE1[2].label
    if short in summary.index and long in summary.index:
        verdict = compare(short, long, "the 10-epoch snapshot", "the same run after 15 epochs (batch 32)")
        sentences.append(
            f"The paper prints {paper[short]:.2f} after 10 epochs and {paper[long]:.2f} after 15; ours: {verdict}"
        )
    if TABLE1[1].label in summary.index:
        sentences.append(binary_accuracy_statement(summary, records=records))
    if HONEST.label in summary.index:
        verdict = compare(HONEST.label, first, "Removing exact duplicates before the split", f"'{first}' as published")
        sentences.append(f"{verdict} ({row(first)} as published, {row(HONEST.label)} without duplicates.)")
    conv = [c for c in [CONV_LAYER_VARIANTS[0], TABLE1[0], CONV_LAYER_VARIANTS[1]] if c.label in summary.index]
    if len(conv) > 1:
        dead = {c.label: dead_share_note(_row_records(records, c.label), prefix="conv") for c in conv}
        parts = ", ".join(f"{c.conv_layers} conv layers {row(c.label)}{dead[c.label]}" for c in conv)
        sentences.append(
            f"Test accuracy by number of conv layers (15 epochs, batch 64, categorical CE): {parts}. A row whose runs "
            "never left the plateau measures failed starts, not what depth adds."
        )
    # a snapshot row is the same runs as its longer row: its failed starts are counted there, once
    trained = [r for r in records if r.get("group") in GROUPS and not r.get("snapshot_of")]
    sentences.extend(truth.failure_rates(trained, noted=[c.label for c in TABLE1]))
    stuck = stuck_statement(trained)
    if not stuck.startswith("0 of"):
        stuck = (f"{stuck[:-1]} (the 10-epoch row is a snapshot of the 15-epoch batch-32 runs, counted there once). "
                 "Adam at 1e-3 on this CNN sometimes fails to start, which single runs cannot show.")  # fmt: skip
    sentences.append(stuck)
    if CURE.label in summary.index:
        verdict = compare(CURE.label, first, "The paper's CNN on centred inputs", f"'{first}' as published")
        cured, published = _row_records(records, CURE.label), _row_records(records, first)
        failed = [sum(map(truth.is_collapsed, chosen)) for chosen in (cured, published)]
        dead = [dead_share_note(chosen, prefix="conv") for chosen in (cured, published)]
        sentences.append(
            f"{verdict} (same 3-conv CNN, optimiser, epochs and seeds; only the inputs are centred.) Failed starts: "
            f"centred {truth.failure_rate(failed[0], len(cured))}{dead[0]}, as published "
            f"{truth.failure_rate(failed[1], len(published))}{dead[1]}. {len(cured)} seeds cannot show that a rare "
            "failure is gone; the dead channels after epoch 1 show why the published inputs fail to start."
        )
    for config in (OURS, TRANSFER):
        if config.label in summary.index:
            sentences.append(reaches(config.label, f"'{config.label}'"))
    if OURS.label in summary.index and TRANSFER.label in summary.index:
        ours = compare(OURS.label, TRANSFER.label, "Our CNN (batch norm, flips, cosine decay)",
                       "MobileNetV2 (frozen ImageNet features)")  # fmt: skip
        sentences.append(ours)
    return sentences


def binary_accuracy_statement(summary, label=TABLE1[1].label, records=None):
    """What the binary cross-entropy row's 'accuracy' measured, as far as our own numbers can tell.

    The paper's number is set beside our true 4-class accuracy and the element-wise binary accuracy tf.keras 2
    would have printed; it points to one of them only when it lies within two standard errors (of our runs) of that
    one and beyond two of the other. Without `records` (or with one run) the standard errors are those of `summary`.
    """
    from medcnn.experiment import truth

    keys = ("test_accuracy", "test_keras2_accuracy")
    paper = PAPER_TABLE1.loc[label, "test acc"]
    floor = (len(CLASS_NAMES) - 1) / len(CLASS_NAMES)  # all outputs below 0.5: every zero of the one-hot is "right"
    runs = _row_records(records or [], label)
    learned = [record for record in runs if not truth.is_collapsed(record)]  # a collapsed run says nothing here
    if runs and not learned:
        return (f"'{label}': every one of its {len(runs)} runs collapsed to one class, so our numbers cannot say what "
                f"the paper's {paper:.2f} measured.")
    if len(learned) < len(runs):
        true_acc, keras2_acc = (np.mean([record[key] for record in learned]) for key in keys)
        errors = truth.standard_errors(summary, learned, label, keys) if len(learned) > 1 else [np.nan, np.nan]
        failed = truth.collapsed_note(len(runs) - len(learned), len(runs))
        whose = f"the runs of that row that learned ({failed} collapsed)"
    else:
        true_acc, keras2_acc = summary.loc[label, [f"{key}_mean" for key in keys]]
        errors, whose = truth.standard_errors(summary, records, label, keys), "our runs of that row"
    # How far our runs sit from the paper where the metric is not in doubt (its best, categorical CE row): the
    # paper's number points to one metric only if it is nearer to it by more than that.
    unambiguous = TABLE1[0].label
    ours = "test_accuracy_learned_mean" if "test_accuracy_learned_mean" in summary else "test_accuracy_mean"
    offset = (abs(PAPER_TABLE1.loc[unambiguous, "test acc"] - summary.loc[unambiguous, ours])
              if unambiguous in summary.index else np.nan)  # fmt: skip
    spread, verdict = truth.nearer_reading(
        paper, (true_acc, keras2_acc), errors, ("true 4-class accuracy", "element-wise binary accuracy"), offset,
        f"our runs of the categorical CE row ('{unambiguous}', whose metric is not in doubt)",
    )  # fmt: skip
    return (
        f"Had the paper compiled binary cross-entropy with metrics=['accuracy'] (it names accuracy, not the Keras "
        f"metric it compiled), tf.keras 2 (TensorFlow 2.15 and earlier) would have silently reported element-wise "
        f"binary accuracy over the {len(CLASS_NAMES)} one-hot outputs, which is {floor:.2f} for a model "
        f"that predicts nothing (Keras 3, from TensorFlow 2.16, reports categorical accuracy here); {whose} reach a "
        f"true 4-class test accuracy of {true_acc:.3f} but would have printed {keras2_acc:.3f}. The paper's "
        f"{paper:.2f} sits {spread}: {verdict}."
    )


def readme_section(payload, scale="full"):
    """The README's section on a committed run, generated from its `results.json` payload."""
    from medcnn.experiment import readme_section as section

    return section(
        payload,
        "Table 1",
        {"val acc": "val acc", "test acc": "test acc"},
        f"the paper's epochs and batch sizes, stratified 70/15/15 splits by image (the files carry no patient ids, "
        f"so this is likely optimistic, for the paper and for us), trained from scratch; the paper's numbers "
        f"come from `medcnn.studies.allgray`. The full report adds the conv-layer rows, the duplicate-free protocol, "
        f"the centred-input row, our rows, MobileNetV2 and HOG + PCA, the failed starts per row (seeds that never left "
        f"the plateau, dead ReLU channels), with curves, confusion matrix and sample predictions: "
        f"[results/allgray/{scale}/report.md](results/allgray/{scale}/report.md).",
    )


# ----------------------------------------------------------------------------------------------------------------
# The plan: what a scale would train, without training it (`python -m medcnn plan allgray --scale full`)

PLAN_LEAVES_OUT = "decoding and resizing the images, HOG + PCA + SVM (seconds), evaluation, figures and export"


def plan_model(config):
    """A configuration's kind of run and the name `medcnn.experiment.estimate.RATES` knows its model by."""
    if config.backbone:
        return "frozen backbone + head", config.backbone
    if config.batch_norm:
        return "from scratch", "allgray_cnn_bn"
    return "from scratch", "allgray_cnn" if config.conv_layers == 3 else f"allgray_cnn_{config.conv_layers}conv"


def plan_runs(run_settings, data_dir=None):
    """The runs `make_runs` builds at these settings, as `experiment.estimate.PlannedRun`s, from the staged files'
    counts (nothing decoded: `make_runs` gets labels made from the counts and blank images): seed by seed, a snapshot
    row inside its longer run (recorded from it, not trained).

    The duplicate-free row is counted before its duplicates are removed (a few images more than it trains on).
    """
    from medcnn.experiment.estimate import PlannedRun, count_files

    counts = list(count_files(DATASET_ID, data_dir, "Original", CLASS_NAMES).values())
    if run_settings["max_images"]:
        share = min(1.0, run_settings["max_images"] / sum(counts))
        counts = [max(1, round(count * share)) for count in counts]
    labels = np.repeat(np.arange(len(counts)), counts)
    runs, _ = make_runs(np.zeros((len(labels), 1, 1, 1), "float32"), labels, np.arange(len(labels)), run_settings, "")
    configs = {config.label: config for config in configurations()}
    return [PlannedRun(run.label, run.seed, *plan_model(configs[run.label]), run.epochs, len(run.split["train"]),
                       tuple(run_settings["image_size"])) for run in runs]  # fmt: skip
