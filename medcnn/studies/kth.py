"""kth: karyogram abnormality detection with VGG16 / InceptionV3 transfer learning and MC dropout (KTH, 2020).

The thesis' 146 karyograms are private, so the notebook runs on a synthetic stand-in composed from real CIR-Net
chromosomes, and says so (`medcnn.data.karyogram_pool`: the pool under both protocols, its leakage). This module holds
the citation, Table 5.1, settings, configurations (Table 5.1's rows; MobileNetV2, whose ImageNet weights are staged,
in place of each; a small CNN with Flatten, with GAP, at a higher resolution) and findings; VGG16 and InceptionV3 run
only with ImageNet weights (Colab). The machinery: `medcnn.experiment` (`protocols`, `referral`, `search`, ...).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medcnn.data import karyogram_pool
from medcnn.report.published import paper_table, tables_function
from medcnn.settings import settings_function

STUDY = "kth"
DATASET_ID = karyogram_pool.DATASET_ID  # stand-in: the staged CIR-Net G-band crops (the alpha-dataset is private)
CITATION = {
    # The seed text has no title page (the title is descriptive); `evidence` quotes it verbatim (tests check it).
    "title": "Abnormality detection on karyograms with transfer learning and Monte Carlo dropout "
    "(descriptive title; the seed text has no title page)",
    "authors": "not named in the seed text",
    "year": 2020,
    "venue": "KTH Royal Institute of Technology, School of EECS, degree project TRITA-EECS-EX-2020:832",
    "seed_file": "001_83ee75ddb235a881.txt",
    "evidence": ["TRITA-EECS-EX-2020:832", "www.kth.se", "Table 5.1: Comparison of Different Networks and Conditions"],
}
CLASS_NAMES = karyogram_pool.CLASS_NAMES  # abnormal is the positive class: a missed abnormal case is unacceptable

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
METRIC_KEYS = {"Table 5.1": {"accuracy": "test_accuracy", "precision": "test_precision", "recall": "test_recall",
                              "AUC": "test_roc_auc"}}  # fmt: skip

ROWS = list(TABLE_5_1.index)
SMALL_CNN = "small_cnn"
BACKBONE_NAMES = {"vgg16": "VGG16", "inception_v3": "InceptionV3", "mobilenet_v2": "MobileNetV2",
                  SMALL_CNN: "small CNN"}  # fmt: skip
STAND_IN = "mobilenet_v2"  # the one backbone whose ImageNet weights are staged offline (`../shared/weights`)
# MobileNetV2's rows: Table 5.1's protocol on a backbone with ImageNet weights (its last blocks: block_16, Conv_1).
STAND_IN_ROWS = ["original data, MobileNetV2", "augmented data, MobileNetV2", "MobileNetV2, last block trained",
                 "MobileNetV2, last two blocks trained", "MobileNetV2, whole network trained"]  # fmt: skip
# The small CNN: Flatten keeps where each chromosome sits; GAP in its place is the position control; Flatten at
# `resolution_size` asks whether a deleted band needs pixels.
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
SUMMARY_METRICS = ["val_roc_auc", "val_accuracy", "test_accuracy", "test_balanced_accuracy", "test_precision",
                   "test_recall", "test_roc_auc", "epochs", "train_images_per_s"]  # fmt: skip

_COMMON = {
    "dataset_id": DATASET_ID, "class_names": CLASS_NAMES, "positive_class": "abnormal",
    "source_size": (416, 416),  # the karyogram files: the thesis resized every karyogram to 416 x 416 first
    "original_counts": {"normal": 105, "abnormal": 41}, "split_ratios": (0.64, 0.16, 0.20),  # train / val / test
    "protocols": tuple(PROTOCOLS),
    # Offline, order-preserving (`augment.order_preserving`): no flips or rotations, a karyogram's layout matters.
    "augmentation": {"brightness": 0.25, "pixel_noise": 0.05, "blur_probability": 0.5},
    "weights": "imagenet", "head": "kth",  # GAP -> BN -> Dropout -> Dense -> Dropout -> softmax, on every backbone
    "head_units": 256, "dropout": 0.5,  # neither printed in the thesis
    # Keras' 0.99 left the head's BN statistics far from the data after 14 steps an epoch: one class predicted.
    "batch_norm_momentum": 0.9,
    "learning_rate": 1e-3,  # chosen by the thesis' Bayesian search (good range 7e-4 .. 3e-2)
    "batch_size": 16,  # chosen by the same search (batch >= 512 ran out of memory)
    "fine_tune_learning_rate": 1e-4,  # stage two, blocks unfrozen: not given by the thesis; a tenth of stage one
    "monitor": "val_auc",  # the weights of the epoch with the best validation AUC are kept
    "tuner": {"objective": "val_auc", "learning_rate": (1e-4, 1e-1), "batch_sizes": (8, 16, 32, 64)},
    "tuner_backbone": STAND_IN,  # offline only MobileNetV2 has ImageNet weights: search where features mean something
    "refer_below": 0.8,  # MC-dropout confidence under which the case goes to a human
    # A model learned: not collapsed, validation AUC above 0.5 at this level (about 0.65 on 44). Only those get MC.
    "learned_alpha": 0.05, "predict_batch_size": 32,
}  # fmt: skip

SETTINGS = {
    "smoke": {
        **_COMMON,
        "image_size": (75, 75),  # VGG16 / InceptionV3 (InceptionV3's smallest input), where their weights exist
        "transfer_size": (96, 96),  # MobileNetV2's rows
        "scratch_size": (75, 75),  # the small CNN's rows (at 64 px seed 0's honest run predicted one class)
        "resolution_size": None,  # the higher-resolution row runs from the cpu scale on (minutes per run)
        "augmented_counts": {"normal": 150, "abnormal": 126},  # 0.4 of the thesis' 376 / 316
        "epochs": 8, "fine_tune_epochs": 1,  # stage one (the head: seconds an epoch), stage two (blocks unfrozen)
        # 10 epochs of ~11 steps left the small CNN at chance; seed 0's honest run peaks at epoch 21 (val AUC 0.76)
        "scratch_epochs": 25,
        "early_stopping_patience": None,  # None: every run trains all its epochs (the best val-AUC epoch is kept)
        "tuner_trials": 2, "tuner_epochs": 2, "mc_passes": 20, "bootstrap_resamples": 200, "seeds": [0],
        "allow_random_weights": True,  # only for `feature_extractor`; rows never run on random backbone weights
    },
    "full": {
        **_COMMON,
        "image_size": (416, 416), "transfer_size": (224, 224), "scratch_size": (416, 416),
        "resolution_size": None,  # the small CNN already runs at the thesis' 416 px
        "augmented_counts": {"normal": 376, "abnormal": 316},
        "epochs": 30,  # not stated; the thesis' training curves span about 25-30 epochs
        "fine_tune_epochs": 30, "scratch_epochs": 30, "early_stopping_patience": 10,
        "tuner_backbone": "vgg16",  # the thesis searched for its VGG16 model (MobileNetV2 where VGG16 has no weights)
        "tuner_trials": 20, "tuner_epochs": 10, "mc_passes": 100, "bootstrap_resamples": 1000, "seeds": [0, 1, 2],
        "allow_random_weights": False,
    },
}  # fmt: skip
# About 2 hours on 2 CPU cores (`make plan-kth SCALE=cpu`): the thesis' counts, both protocols, 3 seeds; MobileNetV2
# at 224 px, the small CNN at 150 px and, for the resolution row (honest only), 300 px.
SETTINGS["cpu"] = {
    **SETTINGS["full"], "image_size": (150, 150), "scratch_size": (150, 150), "resolution_size": (300, 300),
    "fine_tune_epochs": 20, "tuner_backbone": STAND_IN, "tuner_trials": 10, "allow_random_weights": True,
}  # fmt: skip


settings = settings_function(SETTINGS)
paper_tables = tables_function({"Table 5.1": TABLE_5_1})


def table_id(protocol):
    """The results' name of Table 5.1 under one protocol, e.g. "Table 5.1 (honest)"."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {list(PROTOCOLS)}. Received: protocol={protocol!r}")
    return f"Table 5.1 ({protocol})"


# ----------------------------------------------------------------------------------------------------------------
# Configurations and models

SIZE_KEYS = {"vgg16": "image_size", "inception_v3": "image_size", STAND_IN: "transfer_size", SMALL_CNN: "scratch_size"}


@dataclass(frozen=True)
class Configuration:
    """One row of Table 5.1 (or ours). `trainable`: 0 (stage one: the head on frozen features), N (the last N blocks,
    on cached stem features) or "all" (on images). A `SMALL_CNN` row (stage 0) trains from scratch with `pooling`
    "flatten" or "gap". `size`: its input size's setting (default `SIZE_KEYS`); `protocol`: the one it runs under."""

    row: str
    backbone: str
    data: str = "augmented"
    trainable: object = 0
    pooling: str = "flatten"
    size: str = None
    protocol: str = None

    @property
    def stage(self):
        """0: from scratch; 1: the head on frozen features; 2: blocks unfrozen."""
        return 0 if self.backbone == SMALL_CNN else 1 if self.trainable == 0 else 2

    def input_size(self, run_settings):
        return tuple(run_settings[self.size or SIZE_KEYS[self.backbone]])

    def label(self, protocol):
        """E.g. "augmented data, VGG16 | honest"."""
        return f"{self.row} | {protocol}"

    def settings(self, protocol):
        return {"row": self.row, "backbone": self.backbone, "data": self.data, "trainable_blocks": self.trainable,
                "pooling": self.pooling, "size": self.size, "protocol": protocol}  # fmt: skip


CONFIGURATIONS = [
    Configuration(ROWS[0], "vgg16", "original"), Configuration(ROWS[1], "inception_v3", "original"),
    Configuration(ROWS[2], "vgg16"), Configuration(ROWS[3], "inception_v3"),
    Configuration(ROWS[4], "vgg16", trainable=1), Configuration(ROWS[5], "vgg16", trainable=2),
    Configuration(ROWS[6], "inception_v3", trainable="all"),
    Configuration(STAND_IN_ROWS[0], STAND_IN, "original"), Configuration(STAND_IN_ROWS[1], STAND_IN),
    Configuration(STAND_IN_ROWS[2], STAND_IN, trainable=1), Configuration(STAND_IN_ROWS[3], STAND_IN, trainable=2),
    Configuration(STAND_IN_ROWS[4], STAND_IN, trainable="all"),
    Configuration(FLATTEN_ROW, SMALL_CNN), Configuration(GAP_ROW, SMALL_CNN, pooling="gap"),
    # honest only: whether deletions and translocations of unseen cases need pixels (the cpu plan's largest item)
    Configuration(RESOLUTION_ROW, SMALL_CNN, size="resolution_size", protocol="honest"),
]  # fmt: skip
BY_ROW = {config.row: config for config in CONFIGURATIONS}
STAGE_ONE = [config for config in CONFIGURATIONS if config.stage == 1]
STAGE_TWO = [config for config in CONFIGURATIONS if config.stage == 2]
FROM_SCRATCH = [config for config in CONFIGURATIONS if config.stage == 0]


def stage_one_of(config):
    """The stage-one configuration whose trained head a stage-two row starts from (same backbone, augmented data)."""
    return next(c for c in STAGE_ONE if c.backbone == config.backbone and c.data == "augmented")


def backbone_weights(run_settings):
    """{backbone: "imagenet" or "random"}: what each pretrained backbone would load at its input size."""
    return {name: feature_spec(name, run_settings).weights_info().used for name in BACKBONE_NAMES if name != SMALL_CNN}


def configurations_to_run(run_settings, weights):
    """The rows a scale trains, in table order (a pretrained backbone's only with ImageNet weights, `weights`)."""
    return [config for config in CONFIGURATIONS
            if (config.backbone == SMALL_CNN or weights.get(config.backbone) == "imagenet")
            and (config.size != "resolution_size" or run_settings["resolution_size"])]  # fmt: skip


def kth_metrics():
    """Fresh metrics: accuracy, AUC (over both softmax columns: the abnormal column's), precision and recall of the
    abnormal class."""
    import keras

    return ["accuracy", keras.metrics.AUC(name="auc", multi_label=True, num_labels=2),
            keras.metrics.Precision(class_id=1, name="precision"), keras.metrics.Recall(class_id=1, name="recall")]


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
    """The `FeatureSpec` of a backbone's frozen features of [0, 1] karyograms: the unpooled map (the head pools it),
    or the input of its last `stem_blocks` blocks."""
    from medcnn.experiment import FeatureSpec

    size = tuple(run_settings[SIZE_KEYS[backbone]])
    return FeatureSpec(
        backbone, (*size, 1), seed=seed, weights=run_settings["weights"],
        allow_random=run_settings["allow_random_weights"], input_max=1.0,
        outputs=("stem",) if stem_blocks else ("map",), stem_blocks=stem_blocks,
        batch_size=run_settings["predict_batch_size"],
    )  # fmt: skip


def seeding(run_settings, weights=None):
    """What each seed varies and holds fixed (`experiment.seed_policy`); `weights`: {backbone: weights} that ran."""
    from medcnn.experiment import seed_policy

    varies = ["composition", "augmented views", "split", "initialisation", "data order", "dropout masks",
              "mc dropout passes"]  # fmt: skip
    held = {"search": "one hyperparameter search (`tune_head`) on the first seed's pool, before the runs"}
    return seed_policy(varies, held, weights)


def transfer(backbone, input_shape, run_settings, seed=0):
    """Backbone + kth head as one model on [0, 1] images (the backbone frozen, its ImageNet weights)."""
    import keras

    from medcnn.models.transfer import transfer_model

    keras.utils.set_random_seed(seed)
    return transfer_model(backbone, head_spec(run_settings), tuple(input_shape),
                          allow_random=run_settings["allow_random_weights"], input_max=1.0)  # fmt: skip


def stem_blocks(backbone):
    """How many last blocks a backbone's cached stem leaves out: the most any of its stage-two rows trains."""
    return max(c.trainable for c in STAGE_TWO if c.backbone == backbone and c.trainable != "all")


def fine_tune_model(config, run_settings, seed=0, head_weights=None):
    """Stage two at the fine-tuning learning rate, the head from stage one's `head_weights` file (None: new): the
    last N blocks on cached stem features, or "all" on images; BatchNormalization stays in inference mode."""
    from medcnn.experiment.features import tail_model
    from medcnn.models.backbones import unfreeze_last_blocks
    from medcnn.models.heads import build_head

    if head_weights is not None and not Path(head_weights).is_file():
        raise FileNotFoundError(
            f"Stage one's head weights {head_weights} are missing (weights are not committed); run the notebook "
            "with REUSE_RUNS=False so that stage one trains again."
        )
    if config.trainable != "all":
        spec = feature_spec(config.backbone, run_settings, seed, stem_blocks(config.backbone))
        model = tail_model(spec, lambda shape: build_head(head_spec(run_settings), shape, name="head"), head_weights,
                           f"{config.backbone}_last_{config.trainable}", config.trainable)  # fmt: skip
        return compiled(model, run_settings["fine_tune_learning_rate"])
    model = transfer(config.backbone, (*config.input_size(run_settings), 1), run_settings, seed)
    unfreeze_last_blocks(model.get_layer("backbone"), "all", config.backbone)
    if head_weights is not None:
        model.get_layer("head").load_weights(head_weights)
    return compiled(model, run_settings["fine_tune_learning_rate"])


def small_cnn(input_shape, run_settings, pooling="flatten", seed=0):
    """Our small CNN (`models.scratch.position_cnn`) on [0, 1] karyograms, compiled like the thesis' rows;
    `pooling="gap"` puts global average pooling in place of Flatten (the position control)."""
    import keras

    from medcnn.models.scratch import gap_in_place_of_flatten, position_cnn

    keras.utils.set_random_seed(seed)
    momentum = run_settings["batch_norm_momentum"]
    model = position_cnn(tuple(input_shape), len(CLASS_NAMES), dropout=run_settings["dropout"],
                         batch_norm_momentum=momentum, name=SMALL_CNN)  # fmt: skip
    if pooling == "gap":
        model = gap_in_place_of_flatten(model, len(CLASS_NAMES), run_settings["dropout"])
    return compiled(model, run_settings["learning_rate"])


def prepare_inputs(pool, run_settings, configurations, cache, log=print):
    """What the runs of one pool read (`experiment.sized_inputs`): [0, 1] grayscale images per input size, and
    features under (backbone, "map") for stage one and (backbone, "stem") for the last blocks."""
    from medcnn.experiment.sized_inputs import preprocessed_at, sized_inputs

    def wanted(config):
        if not config.stage or config.trainable == "all":
            return config.input_size(run_settings), None, None
        blocks = stem_blocks(config.backbone) if config.stage == 2 else 0
        spec = feature_spec(config.backbone, run_settings, pool.seed, stem_blocks=blocks)
        return config.input_size(run_settings), (config.backbone, "stem" if blocks else "map"), spec

    return sized_inputs(lambda size: preprocessed_at(pool.images, size, "grayscale", 1 / 255), pool.labels,
                        map(wanted, configurations), cache, log)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Runs, tables, the search


def _callbacks(run_settings, epochs):
    """Keep the best validation-AUC epoch's weights; stop early where the scale sets a patience."""
    patience = run_settings["early_stopping_patience"] or epochs

    def make():
        import keras

        return [keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience,
                                              restore_best_weights=True, verbose=0)]  # fmt: skip

    return make


def stage_one_weights(first, cache):
    """Stage-one run `first`'s weights file (`export.required_weights`), trained again first where it is missing."""
    from medcnn.experiment.export import required_weights

    return required_weights(first, cache, "Stage one's head weights", "stage one", CLASS_NAMES)


def settings_for(config, run_settings, search=None):
    """The search's learning rate and batch size for the rows it tuned where it beat the thesis', else the thesis'."""
    if search and search["used"] == "search" and config.row in search["rows"]:
        return {**run_settings, **search["search"]}
    return run_settings


def make_run(config, protocol, pool, inputs, run_settings, data_fingerprint, cache, search=None):
    """(the `experiment.Run` of one configuration under one protocol, its own inputs); a stage-two run starts from
    its stage-one run, whose head it loads (`stage_one_weights`)."""
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
    """Train (or reuse) `configurations` (stage two after stage one) under every protocol, seed by seed: (runs,
    records). `pools`: {seed: Pool}; `inputs`: {seed: `prepare_inputs`}; `search`: `search_choice` or None."""
    from medcnn.experiment import run_all

    runs = [make_run(config, protocol, pool, inputs[seed], run_settings, data_fingerprint, cache, search)[0]
            for seed, pool in pools.items() for config in configurations
            for protocol in run_settings["protocols"] if config.protocol in (None, protocol)]  # fmt: skip
    return runs, run_all(runs, None, None, CLASS_NAMES, cache, verbose, log)


def row_notes(weights, ran=()):
    """{row: "needs ImageNet weights"} for a backbone without them (`weights`: {backbone or display name: weights
    used}), "random weights" where such a row ran anyway (in `ran`, e.g. before v3)."""
    names = {shown: name for name, shown in BACKBONE_NAMES.items()}
    used = {names.get(name, name): value for name, value in (weights or {}).items()}
    return {config.row: "random weights" if config.row in set(ran) else NEEDS_WEIGHTS for config in CONFIGURATIONS
            if config.backbone in used and used[config.backbone] != "imagenet"}  # fmt: skip


def _paper_and_notes(records, weights):
    """Table 5.1 and our rows that ran or need weights absent here (`protocols.shown_rows`), and `row_notes`."""
    from medcnn.experiment.protocols import ran_rows, shown_rows
    from medcnn.report.published import with_extra_row

    notes = row_notes(weights, ran_rows(records))
    return shown_rows(with_extra_row(TABLE_5_1, *OUR_ROWS), records, notes), notes


def comparisons(records, info, weights, protocols=tuple(PROTOCOLS)):
    """{table_id(protocol): `experiment.compare` of Table 5.1 and our rows with that protocol's runs}."""
    from medcnn.experiment import compare
    from medcnn.experiment.protocols import protocol_summary

    paper, notes = _paper_and_notes(records, weights)
    return {table_id(protocol): compare(paper, protocol_summary(records, protocol, SUMMARY_METRICS), info,
                                        METRIC_KEYS["Table 5.1"], notes) for protocol in protocols}  # fmt: skip


def table(records, weights, protocols=tuple(PROTOCOLS), digits=2):
    """Table 5.1 as we read it (`experiment.protocols.protocols_table`): the thesis' value, then ours under each
    protocol, a note per row, the collapsed counts and the reference rows."""
    from medcnn.experiment.protocols import protocol_summary, protocols_table

    paper, notes = _paper_and_notes(records, weights)
    summaries = {protocol: protocol_summary(records, protocol, SUMMARY_METRICS) for protocol in protocols}
    return protocols_table(paper, summaries, METRIC_KEYS["Table 5.1"], notes, digits, paper_label="thesis")


def best_run(records, protocol="honest"):
    """The run with the best validation AUC under `protocol` (the honest validation side is free of leaks)."""
    from medcnn.experiment import best_run as best

    return best(records, "val_roc_auc", group=protocol)


def rebuild(run, cache, log=print):
    """`run`'s model with its recorded weights, or trained again (`experiment.trained_model`)."""
    from medcnn.experiment import trained_model

    config = BY_ROW[run.settings["row"]]
    build = (lambda: fine_tune_model(config, run.spec, run.seed)) if config.stage == 2 else None
    return trained_model(run, None, None, CLASS_NAMES, cache, log=log, build=build)


def export(run, model, inputs, path):
    """Save `run`'s model as one model on karyogram files, a head or the last blocks on their backbone."""
    from medcnn.experiment import export_model, image_model

    config = BY_ROW[run.settings["row"]]
    if config.stage and config.trainable != "all":
        model = image_model(inputs["specs"][(config.backbone, "map" if config.stage == 1 else "stem")], model)
    return export_model(model, CLASS_NAMES, path, input_max=1.0)


def tune_head(features, labels, split, run_settings, directory, overwrite=True, seed=0, verbose=2):
    """The Bayesian search of the head's learning rate and batch size on frozen features against the thesis'
    setting (`experiment.search.search_head_against_default`): (trials, best values, the thesis' validation AUC)."""
    from medcnn.experiment.search import search_head_against_default
    from medcnn.models.heads import build_head

    shape, rate = features.shape[1:], float(run_settings["dropout"])
    return search_head_against_default(
        lambda dropout: build_head(head_spec(run_settings, dropout), shape, name="head"), features,
        np.eye(len(CLASS_NAMES), dtype="float32")[labels], split, run_settings["tuner"],
        lambda: head_model(shape, run_settings), run_settings["batch_size"], directory, run_settings["tuner_trials"],
        run_settings["tuner_epochs"], seed, overwrite, verbose, dropout=(rate, rate), head_units=(),
        loss="categorical_crossentropy", metrics=kth_metrics,
    )  # fmt: skip


def search_choice(trials, best, thesis_score, val_labels, run_settings, backbone):
    """`search.search_verdict` against the thesis' learning rate and batch size; "rows": the rows it tuned."""
    from medcnn.experiment.search import search_verdict

    thesis = {key: run_settings[key] for key in ("learning_rate", "batch_size")}
    rows = [c.row for c in STAGE_ONE if c.backbone == backbone and c.data == "augmented"]
    return {**search_verdict(trials, best, thesis_score, val_labels, thesis, "thesis"), "rows": rows}


def mc_dropout(records, runs, pools, run_settings, cache, log=print):
    """MC dropout on each protocol's chosen runs (`referral.mc_dropout_entries`), voted recall per aberration."""
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
    """`experiment.protocols.protocol_effect` (published minus honest), with the thesis' AUC range beside it."""
    from medcnn.experiment.protocols import protocol_effect

    low, high = TABLE_5_1["AUC"].min(), TABLE_5_1["AUC"].max()
    text = protocol_effect(records, ROWS + OUR_ROWS, "published", "honest", alpha)
    return text + f" The thesis' AUCs, on its published protocol: {low:.2f}-{high:.2f}."


def aberration_table(records, pools, rows, protocol="honest", alpha=0.05):
    """Test karyograms of each aberration called abnormal, per row, over its runs that learned: "k/n", normal first."""
    from medcnn.experiment.protocols import called_positive_table

    kinds = karyogram_pool.test_column(pools, "aberration")
    return called_positive_table(records, rows, kinds, protocol, alpha, ["normal"]).rename_axis("aberration")


def metaphase_intervals(records, pools, run_settings, protocol="honest"):
    """Test AUC of each run that learned, 95 % interval over its test metaphases (`protocols.grouped_intervals`)."""
    from medcnn.experiment.protocols import grouped_intervals

    test_side = karyogram_pool.test_metaphases(pools)
    return grouped_intervals(records, protocol, test_side, run_settings["bootstrap_resamples"],
                             run_settings["learned_alpha"], ("metaphases", "karyograms"))  # fmt: skip


def findings(records, context, run_settings):
    """The sentences only this study prints. `context`: {"leaks": `leakage_table`, "weights": `backbone_weights`,
    "search": `search_choice`, "mc": `mc_dropout`, "baselines": {protocol: `mean_grey_baseline`}, "shares":
    `copy_shares`, "intervals": `metaphase_intervals`, "aberrations": `aberration_table`}."""
    from medcnn.experiment import stuck_statement
    from medcnn.experiment.protocols import best_run_sentence, compare_pairs
    from medcnn.experiment.protocols import compare_rows_learned as compare
    from medcnn.experiment.referral import mc_dropout_sentences
    from medcnn.experiment.search import search_sentence

    alpha, sentences = run_settings["learned_alpha"], [karyogram_pool.leakage_sentence(context["leaks"])]
    missing = [BACKBONE_NAMES[name] for name, used in context["weights"].items() if used != "imagenet"]
    if missing:
        sentences.append(f"{' and '.join(missing)} have no ImageNet weights here (offline; on Colab they download): "
                         f"their rows show '{NEEDS_WEIGHTS}' beside the thesis and did not run. MobileNetV2, whose "
                         "ImageNet weights are staged, runs Table 5.1's protocol in their place: original vs "
                         "augmented data, the last block, the last two blocks and the whole network trained "
                         "(BatchNorm in inference mode).")  # fmt: skip
    sentences.append(leakage_statement(records, alpha))
    pairs = [(STAND_IN_ROWS[1], STAND_IN_ROWS[0])] + [(row, STAND_IN_ROWS[1]) for row in STAND_IN_ROWS[2:]]
    pairs += [(ROWS[2], ROWS[0]), (ROWS[4], ROWS[2]), (ROWS[5], ROWS[2]), (ROWS[3], ROWS[1]), (ROWS[6], ROWS[3])]
    for protocol in run_settings["protocols"]:
        sentences += compare_pairs(records, pairs, protocol, alpha)
    sentences.append(karyogram_pool.copies_sentence(context["shares"]["train"], context["baselines"]))
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
        scratch = run_settings["scratch_size"][0]
        sentences.append(f"Resolution, honest protocol ({size} px against {scratch} px): {said}")
    found = context["aberrations"]
    sentences += [f"Honest test {kind}s called abnormal (every seed): "
                  + ", ".join(f"'{row}' {cell}" for row, cell in found.loc[kind].items() if cell) + "."
                  for kind in ("deletion", "translocation") if kind in found.index]  # fmt: skip
    sentences += mc_dropout_sentences(context["mc"], run_settings["protocols"], run_settings["refer_below"],
                                      "karyograms")  # fmt: skip
    sentences.append(best_run_sentence(best_run(records, "honest"), context["intervals"], "honest",
                                       ("metaphases", "cases"), "karyograms of cases it never saw"))  # fmt: skip
    sentences.append(stuck_statement(records))
    return sentences


def readme_section(payload, scale="cpu"):
    """The README's section on a committed run, generated from its `results.json` payload: both protocols."""
    from medcnn.experiment.protocols import protocols_readme_section, ran_rows

    notes = row_notes(payload.get("weights") or payload["run"].get("weights"), ran_rows(payload.get("runs", [])))
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
# (kind, model) of each stage as `experiment.estimate.RATES` knows them; stage two's by the blocks it trains
PLAN_MODELS = {1: ("frozen-feature head", "kth_head:{}"), 0: ("from scratch", "kth_scratch_cnn"),
               2: ("fine-tuning", "{} {}")}  # fmt: skip
FINE_TUNED_MODELS = {1: "last block", 2: "last two blocks", "all": "whole"}


def plan_runs(run_settings, data_dir=None):
    """Per seed the pool's features, the search (first seed) and the rows under each protocol, as `PlannedRun`s;
    counts come from the settings (`data_dir` is not read), VGG16 and InceptionV3 only where weights are required."""
    from medcnn.experiment.estimate import PlannedRun

    s, patience = run_settings, run_settings["early_stopping_patience"]
    train = {data: round(s["split_ratios"][0] * sum(s[f"{data}_counts"].values()))
             for data in ("original", "augmented")}  # fmt: skip
    thesis = "random" if s["allow_random_weights"] else "imagenet"
    configurations = configurations_to_run(s, {"vgg16": thesis, "inception_v3": thesis, STAND_IN: "imagenet"})
    epochs_of = {1: s["epochs"], 0: s["scratch_epochs"], 2: s["fine_tune_epochs"]}
    searched, trials, planned = s["tuner_backbone"], s["tuner_trials"], []
    for seed in s["seeds"]:
        passes = dict.fromkeys((c.backbone, c.stage) for c in configurations if c.stage and c.trainable != "all")
        planned += [PlannedRun(f"{BACKBONE_NAMES[name]} {'stem' if stage == 2 else 'features'} of the pool", seed,
                               "feature extraction", name, 1, 2 * sum(s["augmented_counts"].values()),
                               tuple(s[SIZE_KEYS[name]])) for name, stage in passes]  # fmt: skip
        if seed == s["seeds"][0]:
            planned.append(PlannedRun(f"search: {trials} trials and the thesis' setting x {s['tuner_epochs']} epochs, "
                                      f"{BACKBONE_NAMES[searched]} head", seed, "frozen-feature head",
                                      f"kth_head:{searched}", (trials + 1) * s["tuner_epochs"], train["augmented"]))
        for config in sorted(configurations, key=lambda c: (1, 0, 2).index(c.stage)):
            kind, model, epochs = *PLAN_MODELS[config.stage], epochs_of[config.stage]
            model = model.format(config.backbone, FINE_TUNED_MODELS.get(config.trainable))
            size = None if config.stage == 1 else config.input_size(s)
            planned += [PlannedRun(config.label(protocol), seed, kind, model, epochs, train[config.data], size,
                                   bool(patience) and patience < epochs)
                        for protocol in s["protocols"] if config.protocol in (None, protocol)]  # fmt: skip
    return planned
