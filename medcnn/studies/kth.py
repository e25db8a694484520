"""kth: karyogram abnormality detection with VGG16 / InceptionV3 transfer learning and MC dropout (KTH, 2020).

The thesis' 146 karyograms (the private "alpha-dataset") are not public, so the notebook runs on a synthetic
stand-in composed from real chromosomes (`medcnn.data.karyogram`, CIR-Net G-band crops) and says so; a user with
karyograms of their own points `DATA_DIR` at a folder holding `normal/` and `abnormal/`
(`medcnn.data.karyogram_pool.load_source`).

This module holds the study's content: its citation, Table 5.1 as data, the settings per scale, the configurations
(Table 5.1's rows; MobileNetV2, whose ImageNet weights are staged, standing in for each of them; a small CNN with
Flatten, with GAP and at a higher resolution), which models learned, and the sentences only this study prints. VGG16
and InceptionV3 rows run only where their ImageNet weights can be had (Colab); elsewhere they say "needs ImageNet
weights". Runs, frozen features, caching, summaries, export and outputs come from `medcnn.experiment`; the karyogram
pool of both protocols (augment-then-split as published, split-by-case-then-augment as the honest one) and its
leakage counts from `medcnn.data.karyogram_pool`; tables and comparisons across protocols from
`medcnn.experiment.protocols`; MC dropout on the models that learned from `medcnn.experiment.referral` and
`medcnn.uncertainty`.
"""

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
SMALL_CNN = "small_cnn"
BACKBONE_NAMES = {"vgg16": "VGG16", "inception_v3": "InceptionV3", "mobilenet_v2": "MobileNetV2",
                  SMALL_CNN: "small CNN"}  # fmt: skip
STAND_IN = "mobilenet_v2"  # the one backbone whose ImageNet weights are staged offline (`../shared/weights`)
# MobileNetV2's rows: Table 5.1's protocol (data, then how much of the network trains) on a backbone that has its
# ImageNet weights. MobileNetV2's named blocks (`medcnn.models.backbones`) end with block_16 and Conv_1.
STAND_IN_ROWS = [
    "original data, MobileNetV2",
    "augmented data, MobileNetV2",
    "MobileNetV2, last block trained",
    "MobileNetV2, last two blocks trained",
    "MobileNetV2, whole network trained",
]
# The small CNN from scratch: Flatten keeps where each chromosome sits; the same CNN with GAP in place of Flatten
# is the position control; the same Flatten CNN at `resolution_size` asks whether a deleted band needs pixels.
FLATTEN_ROW = "augmented data, small CNN, Flatten (keeps position)"
GAP_ROW = "augmented data, small CNN, GAP (position control)"
RESOLUTION_ROW = "augmented data, small CNN, Flatten, higher resolution"
OUR_ROWS = [*STAND_IN_ROWS, FLATTEN_ROW, GAP_ROW, RESOLUTION_ROW]
NEEDS_WEIGHTS = "needs ImageNet weights"
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
    "tuner": {"objective": "val_auc", "learning_rate": (1e-4, 1e-1), "batch_sizes": (8, 16, 32, 64)},
    "tuner_backbone": STAND_IN,  # offline only MobileNetV2 has ImageNet weights: search where features mean something
    "refer_below": 0.8,  # MC-dropout confidence under which the case goes to a human
    # A model learned when it did not collapse and its validation AUC is above 0.5 by a one-sided rank test at this
    # level (`significance.auc_above_chance`): about 0.65 on 44 validation karyograms. Only those get MC dropout.
    "learned_alpha": 0.05,
    "predict_batch_size": 32,
}

SETTINGS = {
    "smoke": {
        **_COMMON,
        "image_size": (75, 75),  # VGG16 / InceptionV3 (InceptionV3's smallest input), where their weights exist
        "transfer_size": (96, 96),  # MobileNetV2's rows
        "scratch_size": (75, 75),  # the small CNN's rows (at 64 px seed 0's honest run predicted one class)
        "resolution_size": None,  # the higher-resolution row runs from the cpu scale on (minutes per run)
        "augmented_counts": {"normal": 150, "abnormal": 126},  # 0.4 of the thesis' 376 / 316
        "epochs": 8,  # stage one: the head on frozen features (seconds per epoch)
        "fine_tune_epochs": 1,  # stage two: blocks unfrozen (the last blocks on cached stem features)
        # the small CNN learns from random weights: 10 epochs of ~11 steps leave it at chance; seed 0's honest run
        # peaks on validation at epoch 21 (AUC 0.76), the published one climbs to the end
        "scratch_epochs": 25,
        "early_stopping_patience": None,  # None: every run trains all its epochs (the best val-AUC epoch is kept)
        "tuner_trials": 2,
        "tuner_epochs": 2,
        "mc_passes": 20,
        "bootstrap_resamples": 200,
        "seeds": [0],
        "allow_random_weights": True,  # only for `feature_extractor`; rows never run on random backbone weights
    },
    "full": {
        **_COMMON,
        "image_size": (416, 416),
        "transfer_size": (224, 224),
        "scratch_size": (416, 416),
        "resolution_size": None,  # the small CNN already runs at the thesis' 416 px
        "augmented_counts": {"normal": 376, "abnormal": 316},
        "epochs": 30,  # not stated; the thesis' training curves span about 25-30 epochs
        "fine_tune_epochs": 30,
        "scratch_epochs": 30,
        "early_stopping_patience": 10,
        "tuner_backbone": "vgg16",  # the thesis searched for its VGG16 model (MobileNetV2 where VGG16 has no weights)
        "tuner_trials": 20,
        "tuner_epochs": 10,
        "mc_passes": 100,
        "bootstrap_resamples": 1000,
        "seeds": [0, 1, 2],
        "allow_random_weights": False,
    },
}
# The largest protocol that fits about 2 hours on 2 CPU cores (`make plan-kth SCALE=cpu` prints the estimate): the
# thesis' counts (105 / 41 karyograms, augmented to 376 / 316), both protocols, 3 seeds; MobileNetV2 at its own
# 224 px (stage two's last blocks on cached stem features, the whole network on images, 20 epochs), the small CNN at
# 150 px and, for the resolution row (honest protocol only), at 300 px. The plan: about 87 minutes of training and
# feature passes, plus composing, MC dropout, the bootstrap and export (about 10 more).
SETTINGS["cpu"] = {
    **SETTINGS["full"],
    "image_size": (150, 150),
    "transfer_size": (224, 224),  # MobileNetV2's own input size
    "scratch_size": (150, 150),
    "resolution_size": (300, 300),
    "epochs": 30,
    "fine_tune_epochs": 20,
    "scratch_epochs": 30,
    "early_stopping_patience": 10,
    "tuner_backbone": STAND_IN,
    "tuner_trials": 10,
    "tuner_epochs": 10,
    "allow_random_weights": True,
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


def table_with_our_rows():
    """Table 5.1 with our rows appended (MobileNetV2's, the small CNN's; the thesis has no value for them: NaN)."""
    table = paper_tables()["Table 5.1"]
    extra = pd.DataFrame([[np.nan] * len(table.columns)] * len(OUR_ROWS), index=OUR_ROWS, columns=table.columns)
    combined = pd.concat([table, extra])
    combined.index.name, combined.attrs = table.index.name, dict(table.attrs)
    return combined

# ----------------------------------------------------------------------------------------------------------------
# Configurations and models

SIZE_KEYS = {"vgg16": "image_size", "inception_v3": "image_size", STAND_IN: "transfer_size", SMALL_CNN: "scratch_size"}


@dataclass(frozen=True)
class Configuration:
    """One row of Table 5.1 (or ours). `trainable` is what stage two unfreezes: 0 for a stage-one row (the kth head
    on frozen features), N (the last N named blocks, trained on the cached features of the rest) or "all" (the whole
    network, on images); a stage-two row starts from the head its backbone's augmented stage-one row trained. A
    `SMALL_CNN` row (stage 0) trains a whole small CNN from random weights, with `pooling` "flatten" or "gap";
    `size` names the setting of its input size (default: its backbone's, `SIZE_KEYS`); `protocol` limits a row to
    one protocol."""

    row: str
    backbone: str
    data: str = "augmented"  # "original" or "augmented"
    trainable: object = 0
    pooling: str = "flatten"
    size: str = None
    protocol: str = None  # the one protocol it runs under; None: both

    @property
    def stage(self):
        """0: a CNN trained from scratch on images; 1: the head on frozen features; 2: blocks unfrozen."""
        return 0 if self.backbone == SMALL_CNN else 1 if self.trainable == 0 else 2

    def input_size(self, run_settings):
        return tuple(run_settings[self.size or SIZE_KEYS[self.backbone]])

    def label(self, protocol):
        """The run's label: the row and the protocol, e.g. "augmented data, VGG16 | honest"."""
        return f"{self.row} | {protocol}"

    def settings(self, protocol):
        return {"row": self.row, "backbone": self.backbone, "data": self.data, "trainable_blocks": self.trainable,
                "pooling": self.pooling, "size": self.size, "protocol": protocol}  # fmt: skip


CONFIGURATIONS = [
    Configuration(ROWS[0], "vgg16", "original"),
    Configuration(ROWS[1], "inception_v3", "original"),
    Configuration(ROWS[2], "vgg16"),
    Configuration(ROWS[3], "inception_v3"),
    Configuration(ROWS[4], "vgg16", trainable=1),
    Configuration(ROWS[5], "vgg16", trainable=2),
    Configuration(ROWS[6], "inception_v3", trainable="all"),
    Configuration(STAND_IN_ROWS[0], STAND_IN, "original"),
    Configuration(STAND_IN_ROWS[1], STAND_IN),
    Configuration(STAND_IN_ROWS[2], STAND_IN, trainable=1),
    Configuration(STAND_IN_ROWS[3], STAND_IN, trainable=2),
    Configuration(STAND_IN_ROWS[4], STAND_IN, trainable="all"),
    Configuration(FLATTEN_ROW, SMALL_CNN),
    Configuration(GAP_ROW, SMALL_CNN, pooling="gap"),
    # honest only: whether deletions and translocations of unseen cases need pixels (the cpu plan's largest item)
    Configuration(RESOLUTION_ROW, SMALL_CNN, size="resolution_size", protocol="honest"),
]
BY_ROW = {config.row: config for config in CONFIGURATIONS}
STAGE_ONE = [config for config in CONFIGURATIONS if config.stage == 1]
STAGE_TWO = [config for config in CONFIGURATIONS if config.stage == 2]
FROM_SCRATCH = [config for config in CONFIGURATIONS if config.stage == 0]


def stage_one_of(config):
    """The stage-one configuration whose trained head a stage-two row starts from (same backbone, augmented data)."""
    return next(c for c in STAGE_ONE if c.backbone == config.backbone and c.data == "augmented")


def backbone_weights(run_settings):
    """{backbone: "imagenet" or "random"}: what VGG16, InceptionV3 and MobileNetV2 would load at their input sizes
    (a local file or a download; nothing is built)."""
    return {name: feature_spec(name, run_settings).weights_info().used for name in BACKBONE_NAMES if name != SMALL_CNN}


def configurations_to_run(run_settings, weights):
    """The rows a scale trains, in table order: a pretrained backbone's rows only where it has ImageNet weights
    (`weights`, from `backbone_weights`), the small CNN's always, the resolution row where `resolution_size` is set."""
    return [
        config
        for config in CONFIGURATIONS
        if (config.backbone == SMALL_CNN or weights.get(config.backbone) == "imagenet")
        and (config.size != "resolution_size" or run_settings["resolution_size"])
    ]


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


def feature_spec(backbone, run_settings, seed=0, stem_blocks=0):
    """The `experiment.FeatureSpec` of a backbone's frozen features of [0, 1] karyograms at its input size: the
    unpooled map (the thesis' head pools it itself), or the input of its last `stem_blocks` blocks."""
    from medcnn.experiment import FeatureSpec

    size = tuple(run_settings[SIZE_KEYS[backbone]])
    return FeatureSpec(
        backbone, (*size, 1), seed=seed, weights=run_settings["weights"],
        allow_random=run_settings["allow_random_weights"], input_max=1.0,
        outputs=("stem",) if stem_blocks else ("map",), stem_blocks=stem_blocks,
        batch_size=run_settings["predict_batch_size"],
    )  # fmt: skip


def seeding(run_settings, weights=None):
    """What each seed varies and what is held fixed, for results.json (`experiment.seed_policy`): every seed
    composes and augments its own pool (`karyogram_pool.build_pool`), splits it, initialises the heads and the small
    CNNs and draws the dropout and MC-dropout masks; the search runs once. `weights`: {backbone: weights} of the
    backbones that ran (ImageNet weights are loaded, not drawn)."""
    from medcnn.experiment import backbone_parts, seed_policy

    drawn, pretrained = backbone_parts(weights) if weights else ([], {})
    varies = ["composition", "augmented views", "split", "initialisation", "data order", "dropout masks",
              "mc dropout passes"]  # fmt: skip
    held = {"search": "one hyperparameter search (`tune_head`) on the first seed's pool, before the runs"}
    return seed_policy([*varies, *drawn], {**held, **pretrained})


def transfer(backbone, input_shape, run_settings, seed=0):
    """Backbone + kth head as one model on [0, 1] images (the backbone frozen, its ImageNet weights)."""
    import keras

    from medcnn.models.transfer import transfer_model

    keras.utils.set_random_seed(seed)
    return transfer_model(backbone, head_spec(run_settings), tuple(input_shape),
                          allow_random=run_settings["allow_random_weights"], input_max=1.0)  # fmt: skip


def stem_blocks(backbone):
    """How many last blocks a backbone's cached stem leaves out: the most any of its stage-two rows trains (VGG16's
    and MobileNetV2's last two), so one extraction serves the last block and the last two blocks."""
    return max(c.trainable for c in STAGE_TWO if c.backbone == backbone and c.trainable != "all")


def fine_tune_model(config, run_settings, seed=0, head_weights=None):
    """Stage two, compiled at the fine-tuning learning rate, the head's weights from stage one (`head_weights`: its
    weights file; None leaves the head new). The last N blocks train on the cached stem features (`stem_blocks`):
    the blocks the stem leaves out, cut from the backbone, the last N of them trainable, then the head; "all" trains
    the whole backbone + head on images. BatchNormalization layers stay in inference mode either way
    (`medcnn.models.backbones.unfreeze_last_blocks`)."""
    import keras

    from medcnn.experiment.features import backbone_model
    from medcnn.models.backbones import unfreeze_last_blocks
    from medcnn.models.heads import build_head
    from medcnn.models.transfer import split_backbone

    if head_weights is not None and not Path(head_weights).is_file():
        raise FileNotFoundError(
            f"Stage one's head weights {head_weights} are missing (weights are not committed); run the notebook "
            "with REUSE_RUNS=False so that stage one trains again."
        )
    if config.trainable == "all":
        model = transfer(config.backbone, (*config.input_size(run_settings), 1), run_settings, seed)
        head = model.get_layer("head")
        unfreeze_last_blocks(model.get_layer("backbone"), "all", config.backbone)
    else:
        backbone = backbone_model(feature_spec(config.backbone, run_settings, seed))
        _, tail = split_backbone(backbone, stem_blocks(config.backbone), config.backbone)
        unfreeze_last_blocks(backbone, config.trainable, config.backbone)
        head = build_head(head_spec(run_settings), tail.output.shape[1:], name="head")
        inputs = keras.Input(tail.input.shape[1:], name="stem_features")
        model = keras.Model(inputs, head(tail(inputs)), name=f"{config.backbone}_last_{config.trainable}")
    if head_weights is not None:
        head.load_weights(head_weights)
    return compiled(model, run_settings["fine_tune_learning_rate"])


def small_cnn(input_shape, run_settings, pooling="flatten", seed=0):
    """Our small CNN (`medcnn.models.scratch.position_cnn`: three 3x3 conv blocks with batch normalisation, then
    Flatten, dropout and a softmax) on [0, 1] karyograms, compiled like the thesis' rows. `pooling="gap"` puts
    global average pooling in place of Flatten, the rest the same: the position control."""
    import keras

    from medcnn.models.scratch import position_cnn

    keras.utils.set_random_seed(seed)
    momentum = run_settings["batch_norm_momentum"]
    model = position_cnn(tuple(input_shape), len(CLASS_NAMES), dropout=run_settings["dropout"],
                         batch_norm_momentum=momentum, name=SMALL_CNN)  # fmt: skip
    if pooling == "gap":
        trunk = model.get_layer("flatten").input
        x = keras.layers.GlobalAveragePooling2D(name="gap")(trunk)
        x = keras.layers.Dropout(run_settings["dropout"], name="dropout_gap")(x)
        outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax", dtype="float32", name="probabilities_gap")(
            x
        )
        model = keras.Model(model.inputs, outputs, name=f"{SMALL_CNN}_gap")
    return compiled(model, run_settings["learning_rate"])


def prepare_inputs(pool, run_settings, configurations, cache, log=print):
    """What the runs of one pool read (`experiment.sized_inputs`): its [0, 1] grayscale images at each input size;
    for stage one and the last blocks, the keys (backbone, "map" or "stem") of the features they train on (the
    unpooled map; the input of the last `stem_blocks`), cached and extracted when a run first needs them."""
    from medcnn.experiment.sized_inputs import images_at, sized_inputs

    def wanted(config):
        if not config.stage or config.trainable == "all":
            return config.input_size(run_settings), None, None
        blocks = stem_blocks(config.backbone) if config.stage == 2 else 0
        spec = feature_spec(config.backbone, run_settings, pool.seed, stem_blocks=blocks)
        return config.input_size(run_settings), (config.backbone, "stem" if blocks else "map"), spec

    return sized_inputs(lambda size: images_at(pool.images, size), pool.labels, map(wanted, configurations), cache,
                        log)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Runs, tables, the search


def _callbacks(run_settings, epochs):
    """Keep the weights of the epoch with the best validation AUC (the thesis' monitor); stop early when the
    scale sets a patience."""
    patience = run_settings["early_stopping_patience"] or epochs

    def make():
        import keras

        return [keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience,
                                              restore_best_weights=True, verbose=0)]  # fmt: skip

    return make


def stage_one_weights(first, cache):
    """The weights file of stage-one run `first` in `cache`, saved under `first.fingerprint` and the current
    precision; FileNotFoundError when they are missing or were trained under other settings."""
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


def settings_for(config, run_settings, search=None):
    """The settings a row trains with: the search's learning rate and batch size for the rows it tuned when it beat
    the thesis' setting on validation (`search_choice`), else the thesis' (`run_settings`)."""
    if search and search["used"] == "search" and config.row in search["rows"]:
        return {**run_settings, **search["search"]}
    return run_settings


def make_run(config, protocol, pool, inputs, run_settings, data_fingerprint, cache, search=None):
    """The `experiment.Run` of one configuration under one protocol, carrying its own inputs.

    Stage one trains the head on the backbone's cached features; stage two loads the head stage one trained (its
    run must come first; the weights count only under its fingerprint, `stage_one_weights`) and trains the last
    blocks on cached stem features, or the whole network on images; the small CNN trains on images for
    `scratch_epochs`. The run carries the whole settings (`settings_for`), `data_fingerprint` and its stage-one run.
    """
    from medcnn.experiment import Run

    run_settings = settings_for(config, run_settings, search)
    first, epochs = None, run_settings["epochs"]
    if config.stage == 1:
        x = inputs["features"][(config.backbone, "map")]
        build = lambda: head_model(x()[0].shape[1:], run_settings)  # noqa: E731
    elif config.stage == 0:
        x, epochs = (inputs["images"][config.input_size(run_settings)], pool.labels), run_settings["scratch_epochs"]
        build = lambda: small_cnn(x[0].shape[1:], run_settings, config.pooling, pool.seed)  # noqa: E731
    else:
        first, _ = make_run(stage_one_of(config), protocol, pool, inputs, run_settings, data_fingerprint, cache, search)
        whole = config.trainable == "all"
        x = (inputs["images"][config.input_size(run_settings)], pool.labels) if whole else inputs["features"][
            (config.backbone, "stem")]  # fmt: skip
        epochs = run_settings["fine_tune_epochs"]

        def build():  # stage one's head, checked against its fingerprint when the model is built
            return fine_tune_model(config, run_settings, pool.seed, stage_one_weights(first, cache))

    run = Run(
        label=config.label(protocol), seed=pool.seed, build_model=build, split=pool.splits[protocol][config.data],
        epochs=epochs, batch_size=run_settings["batch_size"], group=protocol, settings=config.settings(protocol),
        spec=run_settings, data={"files": data_fingerprint}, starts_from=first,
        callbacks=_callbacks(run_settings, epochs), predict_batch_size=run_settings["predict_batch_size"], inputs=x,
    )  # fmt: skip
    return run, x


def run_rows(configurations, pools, inputs, run_settings, cache, data_fingerprint, search=None, verbose=2, log=print):
    """Train (or reuse) `configurations` under every protocol, seed by seed: one `experiment.run_all` over runs that
    carry their own inputs. Returns (runs, records).

    Args:
        configurations: in order (stage-two rows after the stage-one rows they start from).
        pools: {seed: Pool}. inputs: {seed: `prepare_inputs(...)`}. cache: an `experiment.RunCache`.
        search: `search_choice` (the rows it tuned use its setting when it beat the thesis'), or None.
    """
    from medcnn.experiment import run_all

    runs = [
        make_run(config, protocol, pool, inputs[seed], run_settings, data_fingerprint, cache, search)[0]
        for seed, pool in pools.items()
        for config in configurations
        for protocol in run_settings["protocols"]
        if config.protocol in (None, protocol)
    ]
    return runs, run_all(runs, None, None, CLASS_NAMES, cache, verbose, log)


def row_notes(weights, ran=()):
    """{row: note}: "needs ImageNet weights" for the rows of a backbone without them (`weights`: {backbone: weights
    used}, display names such as "VGG16" understood too), or "random weights" where such a row ran anyway (its row
    in `ran`, e.g. in a run made before v3)."""
    names = {shown: name for name, shown in BACKBONE_NAMES.items()}
    used = {names.get(name, name): value for name, value in (weights or {}).items()}
    return {
        config.row: "random weights" if config.row in set(ran) else NEEDS_WEIGHTS
        for config in CONFIGURATIONS
        if config.backbone in used and used[config.backbone] != "imagenet"
    }


def _paper_and_notes(records, weights):
    """Table 5.1 and our rows that ran or need weights absent here (`protocols.shown_rows`), and `row_notes`."""
    from medcnn.experiment.protocols import ran_rows, shown_rows

    notes = row_notes(weights, ran_rows(records))
    return shown_rows(table_with_our_rows(), records, notes), notes


def comparisons(records, info, weights, protocols=tuple(PROTOCOLS)):
    """{table_id(protocol): `experiment.compare` of Table 5.1 and our rows with that protocol's runs}."""
    from medcnn.experiment import compare
    from medcnn.experiment.protocols import protocol_summary

    paper, notes = _paper_and_notes(records, weights)
    return {
        table_id(protocol): compare(paper, protocol_summary(records, protocol, SUMMARY_METRICS), info,
                                    METRIC_KEYS["Table 5.1"], notes)  # fmt: skip
        for protocol in protocols
    }


def table(records, weights, protocols=tuple(PROTOCOLS), digits=2):
    """Table 5.1 as we read it (`experiment.protocols.protocols_table`): the thesis' value, then ours under each
    protocol, a note per row, the collapsed counts and the reference rows."""
    from medcnn.experiment.protocols import protocol_summary, protocols_table

    paper, notes = _paper_and_notes(records, weights)
    summaries = {protocol: protocol_summary(records, protocol, SUMMARY_METRICS) for protocol in protocols}
    return protocols_table(paper, summaries, METRIC_KEYS["Table 5.1"], notes, digits)


def best_run(records, protocol="honest"):
    """The run with the best validation AUC under `protocol` (the honest validation side is free of leaks)."""
    from medcnn.experiment import best_run as best

    return best(records, "val_roc_auc", group=protocol)


def configuration_of(run):
    """The `Configuration` a run (or record) was made from."""
    settings = run.settings if hasattr(run, "settings") else run["settings"]
    return BY_ROW[settings["row"]]


def rebuild(run, cache, log=print):
    """`run`'s model with its recorded weights, or trained again on its own inputs when they are missing
    (`experiment.trained_model`); stage two is rebuilt without stage one's head (the run's own weights replace it)."""
    from medcnn.experiment import trained_model

    config = configuration_of(run)
    build = (lambda: fine_tune_model(config, run.spec, run.seed)) if config.stage == 2 else None
    return trained_model(run, None, None, CLASS_NAMES, cache, log=log, build=build)


def export(run, model, inputs, path):
    """Save `run`'s model as one model on karyogram files (resize, grayscale, [0, 1] inside; class names stored):
    a head or the last blocks put back on their backbone (`experiment.image_model`), the others as they are."""
    from medcnn.experiment import export_model, image_model

    config = configuration_of(run)
    if config.stage and config.trainable != "all":
        model = image_model(inputs["specs"][(config.backbone, "map" if config.stage == 1 else "stem")], model)
    return export_model(model, CLASS_NAMES, path, input_max=1.0)


def tune_head(features, labels, split, run_settings, directory, overwrite=True, seed=0, verbose=2):
    """KerasTuner's Bayesian search of the kth head's learning rate and batch size on frozen features (dropout
    fixed), against the thesis' setting on the same split (`experiment.search.search_against_default`): (trials
    table, best hyper-parameters, the thesis' validation AUC)."""
    from medcnn import tune
    from medcnn.experiment.search import search_against_default
    from medcnn.models.heads import build_head

    space, rate = run_settings["tuner"], float(run_settings["dropout"])
    hypermodel = tune.ClassifierHyperModel(
        lambda dropout: build_head(head_spec(run_settings, dropout), features.shape[1:], name="head"),
        learning_rate=space["learning_rate"], batch_sizes=space["batch_sizes"], dropout=(rate, rate), head_units=(),
        loss="categorical_crossentropy", metrics=kth_metrics,
    )  # fmt: skip
    onehot = np.eye(len(CLASS_NAMES), dtype="float32")[labels]
    train, val = ((features[split[side]], onehot[split[side]]) for side in ("train", "val"))
    return search_against_default(hypermodel, train, val, lambda: head_model(features.shape[1:], run_settings),
                                  run_settings["batch_size"], directory, space["objective"],
                                  run_settings["tuner_trials"], run_settings["tuner_epochs"], seed, overwrite,
                                  verbose)  # fmt: skip


def search_choice(trials, best, thesis_score, val_labels, run_settings, backbone):
    """`experiment.search.search_verdict` against the thesis' learning rate and batch size ("thesis"), with
    "rows": the rows the search tuned (the searched backbone's augmented-data head)."""
    from medcnn.experiment.search import search_verdict

    thesis = {key: run_settings[key] for key in ("learning_rate", "batch_size")}
    rows = [c.row for c in STAGE_ONE if c.backbone == backbone and c.data == "augmented"]
    return {**search_verdict(trials, best, thesis_score, val_labels, thesis, "thesis"), "rows": rows}


# ----------------------------------------------------------------------------------------------------------------
# Monte Carlo dropout on the models that learned (`experiment.referral`)


def mc_dropout(records, runs, pools, run_settings, cache, log=print):
    """Monte Carlo dropout on the test side of each protocol's chosen runs (`experiment.referral.mc_dropout_entries`:
    per backbone, the row whose runs that learned have the best validation AUC, every such run); "groups" is the
    voted recall per aberration."""
    from medcnn.experiment.referral import mc_dropout_entries, mc_dropout_entry

    def entry(run):
        pool = pools[run.seed]
        return mc_dropout_entry(run, rebuild(run, cache, log), pool.labels, run_settings["mc_passes"],
                                run_settings["refer_below"], CLASS_NAMES, pool.table, "aberration", ["normal"],
                                ("aberration", "karyotype"), "pool image")  # fmt: skip

    return mc_dropout_entries(records, runs, BACKBONE_NAMES, run_settings["protocols"], entry,
                              run_settings["learned_alpha"])  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# What the run shows


def leakage_statement(records, alpha=0.05):
    """Test AUC as published minus honestly, row by row (paired by seed), on the runs that learned
    (`experiment.protocols.protocol_effect`), with the thesis' AUC range beside it."""
    from medcnn.experiment.protocols import protocol_effect

    low, high = TABLE_5_1["AUC"].min(), TABLE_5_1["AUC"].max()
    text = protocol_effect(records, ROWS + OUR_ROWS, "published", "honest", alpha)
    return text + f" The thesis' AUCs, on its published protocol: {low:.2f}-{high:.2f}."


def aberration_table(records, pools, rows, protocol="honest", alpha=0.05):
    """Share of the test karyograms of each aberration called abnormal, per row, over its runs that learned (every
    seed's, pooled): "k/n" cells, normal first (for it the share is false alarms)."""
    from medcnn.data.karyogram_pool import test_column
    from medcnn.experiment.protocols import called_positive_table

    kinds = test_column(pools, "aberration")
    return called_positive_table(records, rows, kinds, protocol, alpha, ["normal"]).rename_axis("aberration")


def metaphase_intervals(records, pools, run_settings, protocol="honest"):
    """Test AUC of each run that learned under `protocol`, with a 95 % interval from a bootstrap over the test
    side's metaphases (`experiment.protocols.grouped_intervals`)."""
    from medcnn.data.karyogram_pool import test_metaphases
    from medcnn.experiment.protocols import grouped_intervals

    return grouped_intervals(records, protocol, test_metaphases(pools), run_settings["bootstrap_resamples"],
                             run_settings["learned_alpha"], ("metaphases", "karyograms"))  # fmt: skip


def findings(records, context, run_settings):
    """The sentences only this study prints, each computed from this run's numbers.

    Args:
        records: every run record.
        context: {"leaks": `karyogram_pool.leakage_table` of the first seed's pool, "weights": `backbone_weights`,
            "search": `search_choice`, "mc": `mc_dropout` entries, "baselines": {protocol:
            `classical.mean_grey_baseline` of its augmented split}, "shares": `karyogram_pool.copy_shares`,
            "intervals": `metaphase_intervals`, "aberrations": `aberration_table` (honest)}.
        run_settings: the scale's settings.
    """
    from medcnn.experiment import stuck_statement
    from medcnn.experiment.protocols import best_run_sentence, compare_pairs
    from medcnn.experiment.protocols import compare_rows_learned as compare
    from medcnn.experiment.referral import mc_dropout_sentences
    from medcnn.experiment.search import search_sentence

    from medcnn.data.karyogram_pool import copies_sentence, leakage_sentence

    alpha, sentences = run_settings["learned_alpha"], [leakage_sentence(context["leaks"])]
    missing = [BACKBONE_NAMES[name] for name, used in context["weights"].items() if used != "imagenet"]
    if missing:
        sentences.append(
            f"{' and '.join(missing)} have no ImageNet weights here (offline; on Colab they download): their rows show "
            f"'{NEEDS_WEIGHTS}' beside the thesis and did not run. MobileNetV2, whose ImageNet weights are staged, "
            "runs Table 5.1's protocol in their place: original vs augmented data, the last block, the last two "
            "blocks and the whole network trained (BatchNorm in inference mode)."
        )
    sentences.append(leakage_statement(records, alpha))
    pairs = [(STAND_IN_ROWS[1], STAND_IN_ROWS[0])] + [(row, STAND_IN_ROWS[1]) for row in STAND_IN_ROWS[2:]]
    pairs += [(ROWS[2], ROWS[0]), (ROWS[4], ROWS[2]), (ROWS[5], ROWS[2]), (ROWS[3], ROWS[1]), (ROWS[6], ROWS[3])]
    for protocol in run_settings["protocols"]:
        sentences += compare_pairs(records, pairs, protocol, alpha)
    sentences.append(copies_sentence(context["shares"]["train"], context["baselines"]))
    sentences.append(search_sentence(context["search"], run_settings["tuner_trials"], "thesis", "the thesis'",
                                     "on the honest training side"))
    for protocol in run_settings["protocols"]:
        said = compare(records, FLATTEN_ROW, GAP_ROW, protocol, alpha, "the small CNN with Flatten",
                        "the same CNN with GAP in place of Flatten")  # fmt: skip
        if said:
            sentences.append(f"Position control, {protocol} protocol: {said}")
    said = compare(records, RESOLUTION_ROW, FLATTEN_ROW, "honest", alpha)
    if said:
        size = "x".join(map(str, run_settings["resolution_size"]))
        sentences.append(
            f"Resolution, honest protocol ({size} px against {run_settings['scratch_size'][0]} px): {said}"
        )
    found = context["aberrations"]
    for kind in ("deletion", "translocation"):
        if kind in found.index:
            cells = ", ".join(f"'{row}' {cell}" for row, cell in found.loc[kind].items() if cell)
            sentences.append(f"Honest test {kind}s called abnormal (every seed): {cells}.")
    sentences += mc_dropout_sentences(context["mc"], run_settings["protocols"], run_settings["refer_below"],
                                      "karyograms")  # fmt: skip
    sentences.append(best_run_sentence(best_run(records, "honest"), context["intervals"], "honest",
                                       ("metaphases", "cases"), "karyograms of cases it never saw"))  # fmt: skip
    sentences.append(stuck_statement(records))
    return sentences


def readme_section(payload, scale="cpu"):
    """The README's section on a committed run, generated from its `results.json` payload: both protocols."""
    from medcnn.experiment.protocols import protocols_readme_section

    ran = {run["configuration"].rsplit(" | ", 1)[0] for run in payload.get("runs", [])}
    notes = row_notes(payload.get("weights") or payload["run"].get("weights"), ran)
    intro = (
        f"as published, {PROTOCOLS['published']}; below it the honest protocol ({PROTOCOLS['honest']}). Data: a "
        "synthetic stand-in, karyograms composed from real CIR-Net chromosomes (the thesis' are private). MC dropout, "
        f"leakage counts and recall per aberration: [results/kth/{scale}/report.md](results/kth/{scale}/report.md)."
    )
    tables = {protocol: table_id(protocol) for protocol in ("published", "honest")}
    headers = {"accuracy": "accuracy", "recall": "recall", "AUC": "AUC"}
    return protocols_readme_section(payload, tables, headers, intro, CLASS_NAMES, notes)


# ----------------------------------------------------------------------------------------------------------------
# The plan: what a scale would train, without training it (`python -m medcnn plan kth --scale cpu`)

PLAN_LEAVES_OUT = (
    "composing and augmenting the karyograms, Monte Carlo dropout (`mc_passes` passes over the test side of the "
    "models that learned), the bootstrap, evaluation and export"
)
FINE_TUNED_MODELS = {1: "last block", 2: "last two blocks", "all": "whole"}


def plan_runs(run_settings, data_dir=None):
    """Per seed, the backbone features of the pool, then the search (once) and the rows the notebook trains
    (stage one, the small CNN, stage two) under both protocols, as `experiment.estimate.PlannedRun`s.

    The karyograms are composed in the settings' counts, so the counts come from the settings (`data_dir` is not
    read): a pool holds about twice the augmented count, a training side `split_ratios[0]` of the original or
    augmented count. VGG16's and InceptionV3's rows are planned where weights are required (`allow_random_weights`
    False: the full scale, on Colab, where they download); offline they do not run.
    """
    from medcnn.experiment.estimate import PlannedRun

    augmented = sum(run_settings["augmented_counts"].values())
    train = {data: round(run_settings["split_ratios"][0] * sum(run_settings[f"{data}_counts"].values()))
             for data in ("original", "augmented")}  # fmt: skip
    thesis = "random" if run_settings["allow_random_weights"] else "imagenet"
    configurations = configurations_to_run(
        run_settings, {"vgg16": thesis, "inception_v3": thesis, STAND_IN: "imagenet"}
    )
    patience = run_settings["early_stopping_patience"]
    epochs_of = {1: run_settings["epochs"], 0: run_settings["scratch_epochs"], 2: run_settings["fine_tune_epochs"]}
    planned = []
    for seed in run_settings["seeds"]:
        passes = dict.fromkeys((c.backbone, c.stage) for c in configurations if c.stage and c.trainable != "all")
        planned += [
            PlannedRun(f"{BACKBONE_NAMES[name]} {'stem' if stage == 2 else 'features'} of the pool", seed,
                       "feature extraction", name, 1, 2 * augmented, tuple(run_settings[SIZE_KEYS[name]]))
            for name, stage in passes
        ]  # fmt: skip
        if seed == run_settings["seeds"][0]:
            searched, trials = run_settings["tuner_backbone"], run_settings["tuner_trials"] + 1
            planned.append(PlannedRun(f"search: {trials - 1} trials and the thesis' setting x "
                                      f"{run_settings['tuner_epochs']} epochs, {BACKBONE_NAMES[searched]} head", seed,
                                      "frozen-feature head", f"kth_head:{searched}",
                                      trials * run_settings["tuner_epochs"], train["augmented"]))  # fmt: skip
        for stage in (1, 0, 2):
            for config in (c for c in configurations if c.stage == stage):
                for protocol in [p for p in run_settings["protocols"] if config.protocol in (None, p)]:
                    epochs = epochs_of[stage]
                    stops = bool(patience) and patience < epochs
                    size = None if stage == 1 else config.input_size(run_settings)
                    kind, model = ("frozen-feature head", f"kth_head:{config.backbone}") if stage == 1 else (
                        ("from scratch", "kth_scratch_cnn") if stage == 0 else
                        ("fine-tuning", f"{config.backbone} {FINE_TUNED_MODELS.get(config.trainable)}"))  # fmt: skip
                    planned.append(PlannedRun(config.label(protocol), seed, kind, model, epochs, train[config.data],
                                              size, stops))  # fmt: skip
    return planned
