"""chromosome: which CNN building blocks help classify single chromosomes (IJIEMR, 2022).

The paper lists techniques but prints no numbers. Its "table" here is the ablation the `chromosome` notebook
fills in: one small baseline CNN, then each block added alone on the same data and budget, then tuning,
transfer learning, an ensemble, CNN features + SVM, and the best combination of blocks (padded, and stretched
for the resize comparison). Every cell of the published side is NaN; the published anchor beside it is CIR-Net's
accuracy on the same clinical data set (`ANCHOR`), measured on its own split.

This module holds the study's citation, settings per scale, table, configurations, the karyotype view (a
constrained assignment of each metaphase's chromosomes to classes) and the sentences only this study prints. Runs,
caching, summaries, export and outputs come from `medcnn.experiment`.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from medcnn.report import paper_table
from medcnn.studies import copy_tables, select_settings

STUDY = "chromosome"
DATASET_ID = "chromosomes"
CITATION = {
    "title": "Enhanced CNN Architectures for Superior Chromosome Image Classification",
    "authors": "Priyanka Bhatewara Jain, Dr. Anita (Sunrise University, Alwar, Rajasthan)",
    "year": 2022,
    "venue": "IJIEMR Transactions, Volume 11, Issue 12, December 2022, doi:10.48047/IJIEMR/V11/ISSUE12/367",
    "seed_file": "000_af3c9c240565e409.txt",
    "evidence": [
        "ENHANCED CNN ARCHITECTURES FOR SUPERIOR CHROMOSOME IMAGE CLASSIFICATION",
        "Priyanka Bhatewara Jain, Dr. Anita",
        "DOI:10.48047/IJIEMR/V11/ISSUE12/367",
    ],
    "data": "CIR-Net clinical G-band chromosome crops (Lin et al., IEEE/ACM TCBB 2022): 24 classes, 14 cases staged",
}
# The staged folders 1..22, X, Y in karyotype order (the loader maps folder names to this order).
CLASS_NAMES = [str(number) for number in range(1, 23)] + ["X", "Y"]
# The published number this data set is known for. CIR-Net's released code (CloudDataLab/CIR-Net, src/CIR-Net.py)
# splits the images with StratifiedKFold(n_splits=5, shuffle=True, random_state=42), i.e. by image, not by case.
ANCHOR = {
    "model": "CIR-Net: Inception-ResNet-v2 (ImageNet) with its chromosome data augmentation (24 rotations)",
    "accuracy": 0.9598,
    "source": "Lin et al., CIR-Net, IEEE/ACM TCBB 19(3):1285-1293 (2022), doi:10.1109/TCBB.2020.3003445, abstract",
    "protocol": (
        "stratified 5-fold cross-validation over images (homologues, cells and cases on both sides), 224x224 "
        "inputs, up to 100 epochs with early stopping on the same fold it reports, all 16 cases"
    ),
}

# (row label, block switched in): the block names are keys of `medcnn.models.blocks.ABLATION_BLOCKS`, which
# `baseline_cnn(..., block=name)` takes. METHOD_ROWS are whole-method comparisons, in table order.
BLOCK_ROWS = [
    ("baseline CNN", None),
    ("+ residual connections", "residual"),
    ("+ inception module", "inception"),
    ("+ dense block", "dense"),
    ("+ attention (squeeze-and-excitation)", "se"),
    ("+ attention (CBAM)", "cbam"),
    ("+ depthwise-separable convolutions", "separable"),
    ("+ batch normalisation", "batch_norm"),
    ("+ spatial pyramid pooling", "spp"),
    ("+ dropout", "dropout"),
    ("+ recurrent layer over image rows", "recurrent"),
    ("+ deformable convolution", "deformable"),
]
TUNED = "baseline CNN, tuned hyper-parameters (Bayesian search)"
TRANSFER = "transfer learning (MobileNetV2, frozen)"
ENSEMBLE = "ensemble (soft vote of the best few models)"
SVM = "CNN features + SVM"
STRETCHED = "best combination, plain resize (stretched)"
COMBINATION = "best combination of blocks"
METHOD_ROWS = [TUNED, TRANSFER, ENSEMBLE, SVM, STRETCHED, COMBINATION]
ABLATION_COLUMNS = [
    "accuracy",
    "balanced accuracy",
    "macro F1",
    "karyotype accuracy",
    "parameters",
    "train images/s",
    "inference images/s",
]
ABLATION = paper_table(
    STUDY,
    "Ablation",
    "The paper's techniques, one at a time on the same data and budget (the paper gives no numbers)",
    ABLATION_COLUMNS,
    [(label, *[np.nan] * len(ABLATION_COLUMNS)) for label in [row for row, _ in BLOCK_ROWS] + METHOD_ROWS],
    index_name="model",
    source="seed 000_af3c9c240565e409.txt (techniques listed, no results)",
)
METRIC_KEYS = {
    "Ablation": {
        "accuracy": "test_accuracy",
        "balanced accuracy": "test_balanced_accuracy",
        "macro F1": "test_macro_f1",
        "karyotype accuracy": "test_karyotype_accuracy",
        "parameters": "parameters",
        "train images/s": "train_images_per_s",
        "inference images/s": "test_images_per_s",
    }
}
SUMMARY_METRICS = ["val_accuracy", "epochs", *METRIC_KEYS["Ablation"].values()]  # epochs: trained (early stopping)
# What the saved model and the training data share: crops padded with white to the input's aspect ratio (or
# stretched), then inverted so that the background is 0 and the chromosome bright.
BACKGROUND = 255.0

_COMMON = {
    "dataset_id": DATASET_ID,
    "class_names": CLASS_NAMES,
    "color_mode": "grayscale",
    "resize": "pad",  # "pad": keep the aspect ratio, pad with the white background; "stretch": plain resize
    # Grouped by case (the first id in the file name), so the homologues and cells of one case stay on one side.
    "split_ratios": (0.7, 0.15, 0.15),
    "group_by": "case",
    "blocks": tuple(block for _, block in BLOCK_ROWS if block),
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "batch_size": 32,
    "predict_batch_size": 64,
    "tuner": {
        "objective": "val_accuracy",
        "learning_rate": (1e-4, 1e-2),
        "batch_sizes": (16, 32, 64),
        "dropout": (0.0, 0.5),
        "optimizers": ("adam", "sgd", "rmsprop"),
    },
    "transfer_backbone": "mobilenet_v2",
    "weights": "imagenet",
    "transfer_head_units": 128,
    "combination_size": 3,  # at most this many blocks in the best combination
    "svm": {"kernel": "rbf", "C": 10.0, "pca_components": 64},
}

SETTINGS = {
    "smoke": {
        **_COMMON,
        "image_size": (32, 16),  # height x width: the crops are about twice as tall as wide
        "transfer_size": (64, 32),  # MobileNetV2 needs 32 px a side; the model upsamples its input inside
        "epochs": 4,  # the best smoke row reached balanced test accuracy 0.81 after 6 (24 classes: chance 0.04)
        "early_stopping_patience": None,  # None: every run trains all its epochs
        "tuner_trials": 3,
        "tuner_epochs": 3,
        "ensemble_size": 3,
        "seeds": [0],
        "other_backbones": (),
        "allow_random_weights": True,
    },
    "full": {
        **_COMMON,
        "image_size": (128, 64),
        "transfer_size": (224, 112),
        "epochs": 100,
        "early_stopping_patience": 10,
        "tuner_trials": 30,
        "tuner_epochs": 30,
        "ensemble_size": 5,
        "seeds": [0, 1, 2, 3, 4],
        # CIR-Net's own backbone and a second family, with ImageNet weights where they load (Colab)
        "other_backbones": ("inception_resnet_v2", "resnet50"),
        "allow_random_weights": False,
    },
}
# The largest protocol that fits about 2 hours on 2 CPU cores (see the notebook): smaller inputs, fewer epochs and
# seeds than `full`, the same rows.
SETTINGS["cpu"] = {
    **SETTINGS["full"],
    "image_size": (64, 32),
    "transfer_size": (96, 48),
    "epochs": 30,
    "early_stopping_patience": 6,
    "tuner_trials": 10,
    "tuner_epochs": 10,
    "ensemble_size": 3,
    "seeds": [0, 1, 2],
    "other_backbones": (),
}


def settings(scale="smoke", **overrides):
    """The settings of `scale` ("smoke", "cpu" or "full") with the non-None `overrides` applied."""
    return select_settings(SETTINGS, scale, overrides)


def paper_tables():
    """{"Ablation": DataFrame}: the intended rows and columns, every published value NaN."""
    return copy_tables({"Ablation": ABLATION})


# ----------------------------------------------------------------------------------------------------------------
# Data


def load_data(data_dir=None):
    """Every staged crop at its own size as RGB (what `python -m medcnn predict` reads), with labels and cases.

    Returns:
        (ImageSet with `images` a list of (H, W, 3) uint8 arrays and `groups` the case ids, metaphase id per crop).
    """
    from medcnn.data.chromosomes import chromosome_metadata, load_chromosomes

    data = load_chromosomes(data_dir, image_size=None, color_mode="rgb", class_order=CLASS_NAMES)
    return data, chromosome_metadata(data)["metaphase"].to_numpy()


def preprocessing_options(resize="pad"):
    """The `ImagePreprocessing` arguments beyond size and colour: padding (or not) with white, then inversion."""
    if resize not in ("pad", "stretch"):
        raise ValueError(f"`resize` must be 'pad' or 'stretch'. Received: resize={resize!r}")
    return {"pad_to_aspect_ratio": resize == "pad", "fill_value": BACKGROUND, "invert": True}


def preprocess(images, image_size, resize="pad"):
    """Crops of any size as the saved model sees them: float32 (N, H, W, 1) in [0, 1], background 0.

    The same `ImagePreprocessing` layer as the exported model's, applied to each group of equally sized crops.
    """
    from medcnn.preprocessing import ImagePreprocessing, preprocess_images

    layer = ImagePreprocessing(tuple(image_size), "grayscale", 1.0 / 255.0, **preprocessing_options(resize))
    shapes = {}
    for index, image in enumerate(images):
        shapes.setdefault(np.shape(image), []).append(index)
    x = np.empty((len(images), *image_size, 1), dtype="float32")
    for members in shapes.values():
        x[members] = preprocess_images(np.stack([images[i] for i in members]).astype("float32"), layer)
    return x


def make_split(labels, groups, seed, ratios=(0.7, 0.15, 0.15)):
    """Case-grouped, class-stratified train/val/test indices: every case sits on one side only."""
    from medcnn.data.splits import train_val_test_split

    return dict(zip(("train", "val", "test"), train_val_test_split(labels, ratios, seed, groups=groups)))


# ----------------------------------------------------------------------------------------------------------------
# Configurations and runs


@dataclass(frozen=True)
class Configuration:
    """One row trained from scratch or by transfer; None fields take the scale's setting.

    `blocks` are `ABLATION_BLOCKS` keys (empty: the baseline); `dropout` the rate of the dropout block when the
    tuner chose it; `resize` how the crops were brought to the input size.
    """

    label: str
    group: str
    blocks: tuple = ()
    dropout: float = None
    optimizer: str = None
    learning_rate: float = None
    batch_size: int = None
    backbone: str = None
    resize: str = "pad"

    def settings(self):
        """What defines the run (recorded and fingerprinted): the fields that are set."""
        return {key: value for key, value in asdict(self).items() if value is not None and value != ()}


BLOCK_CONFIGURATIONS = [Configuration(label, "blocks", blocks=(block,) if block else ()) for label, block in BLOCK_ROWS]


def tuned_configuration(best):
    """The tuned baseline from the search's best hyper-parameters (learning rate, batch size, dropout, optimiser)."""
    dropout = float(best.get("dropout", 0.0))
    return Configuration(
        TUNED,
        "tuned",
        blocks=("dropout",) if dropout > 0 else (),
        dropout=dropout if dropout > 0 else None,
        optimizer=best.get("optimizer"),
        learning_rate=float(best["learning_rate"]),
        batch_size=int(best["batch_size"]),
    )


def transfer_configurations(run_settings):
    """MobileNetV2 (the table's row), then the scale's other backbones (rows of their own, not in the table)."""
    first = Configuration(TRANSFER, "transfer", backbone=run_settings["transfer_backbone"])
    others = [
        Configuration(f"transfer learning ({name}, frozen)", "transfer_other", backbone=name)
        for name in run_settings["other_backbones"]
    ]
    return [first, *others]


def combination_configurations(blocks):
    """The best combination, padded (the last row) and stretched (the resize comparison)."""
    return [
        Configuration(STRETCHED, "resize", blocks=tuple(blocks), resize="stretch"),
        Configuration(COMBINATION, "combination", blocks=tuple(blocks)),
    ]


def build_model(config, input_shape, run_settings):
    """The configuration's model, compiled for one-hot labels (categorical cross-entropy) and accuracy."""
    import keras

    from medcnn.train import compile_model

    num_classes = len(CLASS_NAMES)
    if config.backbone:
        from medcnn.models.heads import DenseLayer, HeadSpec
        from medcnn.models.transfer import transfer_model

        head = HeadSpec(num_classes, dropout=0.2, dense=(DenseLayer(run_settings["transfer_head_units"]),), seed=0)
        size = tuple(run_settings["transfer_size"])
        allow_random = run_settings["allow_random_weights"]
        inner = transfer_model(
            config.backbone, head, (*size, input_shape[-1]), allow_random=allow_random, input_max=1.0
        )
        inputs = keras.Input(input_shape, name="image")
        upsampled = keras.layers.Resizing(*size, interpolation="bilinear", name="to_backbone_size")(inputs)
        model = keras.Model(inputs, inner(upsampled), name=f"{config.backbone}_from_{input_shape[0]}")
        model.transfer_info = inner.transfer_info
    else:
        from medcnn.models.blocks import baseline_cnn

        options = {"rate": config.dropout} if config.dropout else {}
        model = baseline_cnn(input_shape, num_classes, block=config.blocks or None, **options)
    return compile_model(
        model,
        config.optimizer or run_settings["optimizer"],
        config.learning_rate or run_settings["learning_rate"],
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )


def transfer_weights(run_settings, input_channels=1):
    """{backbone: "imagenet" or "random"}: what the transfer rows will load here (random only when allowed)."""
    from medcnn.models.backbones import resolve_backbone_weights

    size = (*run_settings["transfer_size"], 3 if input_channels == 1 else input_channels)
    names = (run_settings["transfer_backbone"], *run_settings["other_backbones"])
    return {name: resolve_backbone_weights(name, size, run_settings["allow_random_weights"]).used for name in names}


def _callbacks(patience, start_from_epoch=0):
    """`() -> [EarlyStopping on val loss, best weights restored]`, watching from epoch `start_from_epoch` (0-based)
    on; None without `patience`."""
    if not patience:
        return None

    def make():
        import keras

        return [
            keras.callbacks.EarlyStopping(
                "val_loss", patience=patience, restore_best_weights=True, start_from_epoch=start_from_epoch
            )
        ]

    return make


def _early_stopping_start(config, n_train, run_settings):
    """0, or for a row with BatchNormalization trained from scratch the epochs its moving statistics need
    (`medcnn.train.bn_warmup_epochs`): before then validation, in inference mode, can sit at chance, and early
    stopping would stop on those epochs and restore their weights."""
    from medcnn.models.blocks import BATCH_NORM_MOMENTUM, uses_batch_norm
    from medcnn.train import bn_warmup_epochs

    if config.backbone or not uses_batch_norm(config.blocks):
        return 0
    steps_per_epoch = math.ceil(n_train / (config.batch_size or run_settings["batch_size"]))
    return bn_warmup_epochs(steps_per_epoch, BATCH_NORM_MOMENTUM)


def make_runs(configurations, x, labels, groups, run_settings, data_fingerprint):
    """The `experiment.Run`s of `configurations`, seed by seed; each seed fixes the split and the initialisation.

    Args:
        configurations: `Configuration`s in table order.
        x: the inputs these configurations train on (padded or stretched, as their `resize` says).
        labels, groups: integer labels and case ids, one per crop.
        run_settings: the scale's settings, fingerprinted whole (a record is reused only under the same settings).
        data_fingerprint: a hash of the data files (fingerprinted, so a record is reused only on the same data);
            a transfer row adds the weights its backbone loads here (`transfer_weights`), so a record made with
            random weights is not reused once the ImageNet file is there, nor the other way round.
    """
    from medcnn.experiment import Run, seed_order

    loaded = transfer_weights(run_settings, x.shape[-1]) if any(c.backbone for c in configurations) else {}

    def data_of(config):
        if not config.backbone:
            return data_fingerprint
        return {"files": data_fingerprint, "backbone_weights": loaded.get(config.backbone)}

    seeds_of = {config.group: run_settings["seeds"] for config in configurations}
    splits = {seed: make_split(labels, groups, seed, run_settings["split_ratios"]) for seed in run_settings["seeds"]}
    runs = []
    for config, seed in seed_order(configurations, seeds_of):
        runs.append(
            Run(
                label=config.label,
                seed=seed,
                split=splits[seed],
                epochs=run_settings["epochs"],
                batch_size=config.batch_size or run_settings["batch_size"],
                group=config.group,
                settings=config.settings(),
                build_model=lambda c=config: build_model(c, x.shape[1:], run_settings),
                spec=run_settings,
                data=data_of(config),
                callbacks=_callbacks(
                    run_settings["early_stopping_patience"],
                    _early_stopping_start(config, len(splits[seed]["train"]), run_settings),
                ),
                predict_batch_size=run_settings["predict_batch_size"],
            )
        )
    return runs


def seeding(run_settings, weights=None):
    """What each seed varies and what is held fixed, for results.json (`experiment.seed_policy`).

    `weights`: {backbone: "imagenet" or "random"} of the transfer rows (`transfer_weights`; None or {}: none ran).
    """
    from medcnn.experiment import backbone_parts, seed_policy

    weights = weights or {}
    drawn, pretrained = backbone_parts(weights)
    varies = ["split", "initialisation", "data order", "dropout masks (CNNs from scratch)"]
    held = {"search": "one hyperparameter search (`tune_baseline`, seed 0) on the first seed's split, before the runs"}
    if weights:
        held["dropout masks (transfer rows' head)"] = "the head is built with `HeadSpec(seed=0)`: its masks repeat"
    return seed_policy([*varies, *drawn], {**held, **pretrained})


def tune_baseline(x, labels, split, run_settings, directory, overwrite=True, seed=0):
    """KerasTuner's Bayesian search over the baseline's learning rate, batch size, dropout and optimiser.

    Trains on `split["train"]` and scores `val_accuracy` on `split["val"]` (never the test side). Returns
    (trials table, best hyper-parameters).
    """
    import keras

    from medcnn import tune
    from medcnn.models.blocks import baseline_cnn

    space = run_settings["tuner"]

    def build(dropout):
        options = {"block": "dropout", "rate": dropout} if dropout > 0 else {}
        return baseline_cnn(x.shape[1:], len(CLASS_NAMES), **options)

    hypermodel = tune.ClassifierHyperModel(
        build,
        learning_rate=space["learning_rate"],
        batch_sizes=space["batch_sizes"],
        dropout=space["dropout"],
        head_units=(),
        optimizer=space["optimizers"],
    )
    keras.utils.set_random_seed(seed)
    tuner = tune.make_tuner(
        hypermodel, directory, space["objective"], run_settings["tuner_trials"], seed=seed, overwrite=overwrite
    )
    train, val = split["train"], split["val"]
    return tune.search(
        tuner, (x[train], labels[train]), (x[val], labels[val]), epochs=run_settings["tuner_epochs"], verbose=2
    )


# ----------------------------------------------------------------------------------------------------------------
# The best combination, the ensemble, CNN features + SVM


def block_gains(summary, metric="val_accuracy"):
    """{block: mean validation gain over the baseline} of the single-block rows, largest first."""
    base = summary.loc[BLOCK_ROWS[0][0], f"{metric}_mean"]
    gains = {
        block: float(summary.loc[label, f"{metric}_mean"] - base)
        for label, block in BLOCK_ROWS[1:]
        if label in summary.index
    }
    return dict(sorted(gains.items(), key=lambda item: -item[1]))


def best_combination(gains, size=3):
    """The blocks to combine: greedily by validation gain, only gains > 0, one block per slot except feature blocks.

    Returns a tuple of block names in `baseline_cnn` order (feature blocks in the order chosen); at least the best
    single block, even when no block beat the baseline.
    """
    from medcnn.models.blocks import ABLATION_BLOCKS

    chosen, taken = [], set()
    for block, gain in gains.items():
        slot = ABLATION_BLOCKS[block].slot
        if len(chosen) == size or (chosen and gain <= 0):
            break
        if slot != "features" and slot in taken:
            continue
        chosen.append(block)
        taken.add(slot)
    return tuple(chosen)


def _probability_records(records, labels, class_names, label, group, members, extra=None):
    """Records of a model made from others' test probabilities (one per seed): test metrics only."""
    from medcnn.evaluate import classification_metrics

    made = []
    for seed in sorted({r["seed"] for r in records}):
        chosen = [r for r in records if r["seed"] == seed and r["configuration"] in members]
        if len(chosen) != len(members):
            continue
        index = np.asarray(chosen[0]["test_indices"])
        if any(not np.array_equal(index, r["test_indices"]) for r in chosen):
            raise ValueError(f"The members of '{label}' (seed {seed}) were tested on different images.")
        probabilities = np.mean([np.asarray(r["test_probabilities"]) for r in chosen], axis=0)
        metrics = classification_metrics(labels[index], probabilities, class_names)
        made.append(
            {
                "configuration": label,
                "group": group,
                "seed": seed,
                "members": list(members),
                "test_accuracy": metrics["accuracy"],
                "test_balanced_accuracy": metrics["recall_macro"],
                "test_macro_f1": metrics["f1_macro"],
                "test_weighted_f1": metrics["f1_weighted"],
                "test_roc_auc": metrics["roc_auc"],
                "test_confusion": metrics["confusion_matrix"],
                "test_indices": index.tolist(),
                "test_probabilities": np.round(probabilities, 4).tolist(),
                # every member predicts every image, and every member was trained
                "test_predict_s": float(sum(r["test_predict_s"] for r in chosen)),
                "train_images_per_s": 1.0 / sum(1.0 / r["train_images_per_s"] for r in chosen),
                "parameters": int(sum(r["parameters"] for r in chosen)),
                "sizes": chosen[0]["sizes"],
                **(extra or {}),
            }
        )
    return made


def ensemble_records(records, labels, summary, size=3):
    """Soft voting (mean probabilities) of the `size` configurations with the best mean validation accuracy."""
    trained = [label for label in summary.index if label in {r["configuration"] for r in records}]
    ranked = summary.loc[trained, "val_accuracy_mean"].sort_values(ascending=False, kind="stable")
    members = list(ranked.index[:size])
    return _probability_records(records, labels, CLASS_NAMES, ENSEMBLE, "ensemble", members)


def trained_model(run, x, labels, cache, log=print):
    """`run`'s model with its recorded weights, or trained again when they are missing (`experiment.trained_model`)."""
    from medcnn.experiment import trained_model as recorded_model

    return recorded_model(run, x, labels, CLASS_NAMES, cache, log=log)


def penultimate(model):
    """The model up to the input of its output layer ("probabilities"): the features an SVM is trained on."""
    import keras

    return keras.Model(model.inputs, model.get_layer("probabilities").input, name=f"{model.name}_features")


def svm_records(runs, records, x, labels, cache, run_settings, summary, log=print):
    """CNN features + SVM: the penultimate layer of the best scratch CNN (by mean validation accuracy) of each
    seed, then PCA and an RBF SVM fitted on the training side. One record per seed, shaped like the runs'."""
    from medcnn.classical import pca_svm_record
    from medcnn.evaluate import timed_predict
    from medcnn.experiment import find_run

    scratch = [r for r in records if r["group"] in ("blocks", "tuned", "combination")]
    labels_scratch = [label for label in summary.index if label in {r["configuration"] for r in scratch}]
    source = summary.loc[labels_scratch, "val_accuracy_mean"].idxmax()
    made = []
    for record in (r for r in scratch if r["configuration"] == source):
        run = find_run(runs, record)
        extractor = penultimate(trained_model(run, x, labels, cache, log))
        features = extractor.predict(x, batch_size=run.predict_batch_size, verbose=0)
        _, feature_seconds = timed_predict(extractor, x[run.split["test"]], run.predict_batch_size)
        svm = run_settings["svm"]
        made_record = pca_svm_record(
            features, labels, run.split, CLASS_NAMES, svm["pca_components"], svm["C"], seed=run.seed, label=SVM
        )
        made_record.update(
            {
                "group": "svm",
                "features_of": source,
                "test_predict_s": made_record["test_predict_s"] + feature_seconds,
                "train_images_per_s": record["train_images_per_s"],  # the CNN's training; the SVM fit adds seconds
                "parameters": record["parameters"],
                "sizes": record["sizes"],
            }
        )
        made.append(made_record)
    return made


# ----------------------------------------------------------------------------------------------------------------
# Per-record numbers: parameters, inference rate, the karyotype view


def parameter_counts(runs):
    """{configuration: parameters of its model}, each configuration built once."""
    import keras

    counts = {}
    for run in runs:
        if run.label not in counts:
            counts[run.label] = int(run.build_model().count_params())
            keras.backend.clear_session()
    return counts


def karyotype_capacities(sex, num_classes=24):
    """How many chromosomes of each class a normal metaphase holds: two per autosome, XX or XY."""
    if sex not in ("female", "male"):
        raise ValueError(f"`sex` must be 'female' or 'male'. Received: sex={sex!r}")
    capacities = np.full(num_classes, 2)
    capacities[-2:] = (2, 0) if sex == "female" else (1, 1)
    return capacities


def constrained_assignment(probabilities, capacities):
    """Assign each chromosome of one metaphase to a class, at most `capacities[k]` to class k, maximising the sum
    of log-probabilities (SciPy's Hungarian algorithm over one column per free place).

    Args:
        probabilities: (n, K) class probabilities of the n chromosomes of one metaphase.
        capacities: (K,) ints, places per class; a metaphase with more chromosomes than places (a trisomy, or a
            crop of debris) gets one more place in every class until all fit.

    Returns:
        (labels (n,), total cost = - sum of the chosen log-probabilities).
    """
    from scipy.optimize import linear_sum_assignment

    probabilities = np.asarray(probabilities, dtype="float64")
    capacities = np.asarray(capacities, dtype=int)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(capacities):
        raise ValueError(
            f"`probabilities` must be (n, {len(capacities)}), one column per class of `capacities`. "
            f"Received: probabilities.shape={probabilities.shape}"
        )
    while capacities.sum() < len(probabilities):
        capacities = capacities + 1
    places = np.repeat(np.arange(len(capacities)), capacities)
    cost = -np.log(np.clip(probabilities, 1e-12, 1.0))[:, places]
    rows, columns = linear_sum_assignment(cost)
    assigned = np.empty(len(probabilities), dtype=int)
    assigned[rows] = places[columns]
    return assigned, float(cost[rows, columns].sum())


def karyotype_predictions(probabilities, metaphases):
    """Each metaphase's chromosomes assigned jointly: two per autosome and XX or XY, whichever fits better.

    Args:
        probabilities: (N, 24) probabilities in karyotype order (1..22, X, Y).
        metaphases: (N,) metaphase id of each row.

    Returns:
        (labels (N,), {metaphase: "female" or "male"}).
    """
    probabilities, metaphases = np.asarray(probabilities), np.asarray(metaphases)
    labels, sexes = np.empty(len(probabilities), dtype=int), {}
    for metaphase in dict.fromkeys(metaphases.tolist()):
        rows = np.flatnonzero(metaphases == metaphase)
        options = {
            sex: constrained_assignment(probabilities[rows], karyotype_capacities(sex)) for sex in ("female", "male")
        }
        sex = min(options, key=lambda name: options[name][1])
        labels[rows], sexes[metaphase] = options[sex][0], sex
    return labels, sexes


def karyotype_accuracy(record, labels, metaphases):
    """(independent accuracy, karyotype accuracy) of a record's test probabilities; None without probabilities."""
    if "test_probabilities" not in record:
        return None
    index = np.asarray(record["test_indices"])
    probabilities = np.asarray(record["test_probabilities"])
    assigned, _ = karyotype_predictions(probabilities, np.asarray(metaphases)[index])
    truth = np.asarray(labels)[index]
    return float(np.mean(probabilities.argmax(axis=1) == truth)), float(np.mean(assigned == truth))


def karyotype_view(record, labels, metaphases, class_names=CLASS_NAMES):
    """One row per test metaphase of a record: crops, correct per image and after the joint assignment, sex.

    The true sex is read from the crops (a metaphase with a Y crop is male); the called one is the better-fitting
    XX or XY assignment.
    """
    import pandas as pd

    index = np.asarray(record["test_indices"])
    probabilities = np.asarray(record["test_probabilities"])
    truth, cells = np.asarray(labels)[index], np.asarray(metaphases)[index]
    assigned, sexes = karyotype_predictions(probabilities, cells)
    independent = probabilities.argmax(axis=1)
    y = class_names.index("Y")
    rows = []
    for cell in dict.fromkeys(cells.tolist()):
        mine = cells == cell
        rows.append(
            {
                "metaphase": cell,
                "crops": int(mine.sum()),
                "correct per image": int((independent[mine] == truth[mine]).sum()),
                "correct, karyotype": int((assigned[mine] == truth[mine]).sum()),
                "sex (from its crops)": "male" if (truth[mine] == y).any() else "female",
                "sex called": sexes[cell],
            }
        )
    return pd.DataFrame(rows).set_index("metaphase")


def complete(records, labels, metaphases, parameters=None):
    """Add what the table needs to every record: parameters, inference images/s, karyotype accuracy (in place)."""
    for record in records:
        if parameters and record["configuration"] in parameters:
            record["parameters"] = parameters[record["configuration"]]
        if "test_predict_s" in record and record["test_predict_s"] > 0:
            record["test_images_per_s"] = record["sizes"]["test"] / record["test_predict_s"]
        scores = karyotype_accuracy(record, labels, metaphases)
        if scores is not None:
            record["test_karyotype_accuracy"] = scores[1]
    return records


# ----------------------------------------------------------------------------------------------------------------
# What the run shows


def per_class_f1(confusion, class_names=CLASS_NAMES):
    """Per-class precision, recall, F1 and support from a confusion matrix (rows = true class), as a DataFrame."""
    import pandas as pd

    matrix = np.asarray(confusion, dtype="float64")
    correct, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, support, out=np.zeros_like(correct), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(correct), where=precision + recall > 0)
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "F1": f1, "support": support.astype(int)},
        index=pd.Index(list(class_names), name="class"),
    )


def confused_pairs(confusion, class_names=CLASS_NAMES, top=5):
    """The `top` most frequent confusions, both directions counted together: [(a, b, count)], largest first."""
    matrix = np.asarray(confusion)
    pairs = [
        (class_names[i], class_names[j], int(matrix[i, j] + matrix[j, i]))
        for i in range(len(matrix))
        for j in range(i + 1, len(matrix))
        if matrix[i, j] + matrix[j, i] > 0
    ]
    return sorted(pairs, key=lambda pair: -pair[2])[:top]


def plot_resize_comparison(
    images, padded, stretched, labels, classes=("1", "4", "9", "13", "17", "21", "X", "Y"), path=None
):
    """One crop of each of `classes` as stored, padded and stretched (what the CNN sees), one row each."""
    from matplotlib.figure import Figure

    from medcnn.plots import save_figure

    labels = np.asarray(labels)
    chosen = [int(np.flatnonzero(labels == CLASS_NAMES.index(name))[0]) for name in classes]
    figure = Figure(figsize=(1.4 * len(chosen), 7.5), layout="constrained")
    axes = figure.subplots(3, len(chosen), squeeze=False)
    rows = (("as stored", images), ("padded, inverted", padded), ("stretched, inverted", stretched))
    for row, (title, pictures) in enumerate(rows):
        for column, index in enumerate(chosen):
            ax = axes[row, column]
            ax.imshow(np.asarray(pictures[index])[..., 0], cmap="gray", vmin=0, vmax=255 if row == 0 else 1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{CLASS_NAMES[labels[index]]}" if row == 0 else "", fontsize="small")
        axes[row, 0].set_ylabel(title)
    save_figure(figure, path)
    return figure


def row_notes(weights):
    """{row: "random weights"} for the transfer rows whose backbone loaded random weights, from `transfer_weights`'
    {backbone: weights used} (the table's backbone first, then the scale's other backbones)."""
    from medcnn.experiment.truth import weights_notes

    names = list(weights or {})
    rows = {name: TRANSFER if i == 0 else f"transfer learning ({name}, frozen)" for i, name in enumerate(names)}
    return weights_notes({rows[name]: used for name, used in (weights or {}).items()})


def table(summary, digits=3, row_notes=None):
    """The ablation as we read it: every row of the table in order, mean ± std over seeds, and the anchor row;
    `row_notes` ({row: note}, e.g. `row_notes(weights)`) adds a `note` column."""
    import pandas as pd

    from medcnn.experiment import collapsed_cells, reference_cells, summary_cells

    rows = [label for label in ABLATION.index if label in summary.index]
    frame = pd.DataFrame(index=pd.Index(rows, name="model"))
    if row_notes:
        frame["note"] = [row_notes.get(row, "") for row in rows]
    frame["seeds"] = summary.loc[rows, "runs"].astype(int)
    frame["epochs trained"] = [f"{e:.0f}" if np.isfinite(e) else "" for e in summary.loc[rows, "epochs_mean"]]
    references = {}
    for title, key in METRIC_KEYS["Ablation"].items():
        if title == "parameters" or title.endswith("images/s"):
            frame[title] = [f"{m:,.0f}" if np.isfinite(m) else "" for m in summary.loc[rows, f"{key}_mean"]]
        else:
            frame[title] = summary_cells(summary, key, rows, digits)
            for label, cell in reference_cells(summary, key, rows, digits).items():
                references.setdefault(label, {})[title] = cell
    frame["collapsed"] = collapsed_cells(summary, rows)
    reference = pd.DataFrame.from_dict(references, orient="index").rename_axis("model")
    anchor = pd.DataFrame(
        {"seeds": [""], "epochs trained": [""], "accuracy": [f"{ANCHOR['accuracy']:.4f}"]},
        index=pd.Index(["published anchor: CIR-Net, Inception-ResNet-v2 (its own image-level split)"], name="model"),
    )
    return pd.concat([frame, reference, anchor]).fillna("")


def _row(summary, label, key="test_accuracy"):
    from medcnn.experiment import mean_std

    r = summary.loc[label]
    return mean_std(r[f"{key}_mean"], r[f"{key}_std"])


def findings(summary, records, combination, gains, tuned, weights, best, pairs):
    """The sentences only this study prints, each computed from this run's summary and records.

    Args:
        summary: `experiment.summarise` over every record.
        records: every record (runs, ensemble, SVM).
        combination: the blocks of the best combination.
        gains: `block_gains(summary)`.
        tuned: the search's best hyper-parameters.
        weights: {backbone: weights used}.
        best: the best run's record (by validation accuracy).
        pairs: `confused_pairs` of the best run.
    """
    from medcnn.experiment import stuck_statement

    from medcnn.experiment import truth

    def runs_of(label):
        return [r for r in records if r.get("configuration") == label]

    def compare(a, b, key, a_label=None, b_label=None, metric="test accuracy"):
        return truth.compare_records(runs_of(a), runs_of(b), key, a_label or f"'{a}'", b_label or f"'{b}'", metric)

    base = BLOCK_ROWS[0][0]
    seeds = int(summary["runs"].max())
    label_of = {block: label for label, block in BLOCK_ROWS if block}
    sentences = []
    top = next(iter(gains))
    on_validation = {
        label: compare(label, base, "val_accuracy") for label, _ in BLOCK_ROWS[1:] if label in summary.index
    }
    above = [label for label, verdict in on_validation.items() if verdict.verdict == "above"]
    sentences.append(
        f"{len(above)} of {len(on_validation)} single blocks are above the baseline on validation accuracy beyond two "
        f"standard errors of seed noise (paired by seed, {seeds} seed(s))"
        + (f": {', '.join(repr(label) for label in above)}" if above else "")
        + f"; the combination below takes blocks by mean validation gain, the largest '{label_of[top]}' "
        f"({gains[top]:+.3f})."
    )
    on_test = {label: compare(label, base, "test_accuracy") for label, _ in BLOCK_ROWS[1:] if label in summary.index}
    collapsed = [label for label in on_test if truth.all_collapsed(runs_of(label))]
    beyond = [
        f"'{label}' {verdict.verdict} ({verdict.difference:+.3f}, standard error {verdict.standard_error:.3f})"
        for label, verdict in on_test.items()
        if verdict.verdict in ("above", "below") and label not in collapsed
    ]
    judged = any(verdict.verdict != "not judged" for verdict in on_test.values())
    sentences.append(
        (
            "Test accuracy against the baseline beyond two standard errors of seed noise (paired by seed): "
            + (", ".join(beyond) if beyond else "none")
            if judged
            else "With one seed, no block's test accuracy can be told from the baseline's beyond seed noise"
        )
        + (f"; every run collapsed to one class: {', '.join(repr(label) for label in collapsed)}" if collapsed else "")
        + "."
    )
    names = " + ".join(label_of[block].removeprefix("+ ") for block in combination)
    sentences.append(
        f"The best combination found (greedy by validation gain, at most one block per slot): {names}; test accuracy "
        f"{_row(summary, COMBINATION)}, balanced {_row(summary, COMBINATION, 'test_balanced_accuracy')}."
    )
    single = label_of[top]
    # the blocks were chosen on validation accuracy: judge the choice on the held-out test cases, which chose nothing
    adds = compare(COMBINATION, single, "test_accuracy", "The combination", f"its best single block ('{single}')",
                   "test accuracy")  # fmt: skip
    sentences.append(
        adds.sentence.rstrip(".")
        + (": at this budget the blocks' gains do not simply add up" if adds.verdict != "above" else "")
        + " (held-out cases; the blocks were chosen on validation)."
    )
    padding = compare(COMBINATION, STRETCHED, "test_accuracy", "padding the crops to the input's aspect ratio",
                      "stretching them", "that model's test accuracy")  # fmt: skip
    meaning = {
        "above": ": padded, the share of the canvas a chromosome fills keeps its length, which stretching removes.",
        "below": ": on this run stretching does better.",
    }.get(padding.verdict, ": on this run the aspect ratio makes no difference beyond seed noise.")
    sentences.append(padding.sentence[0].upper() + padding.sentence[1:].rstrip(".") + meaning)
    chosen = ", ".join(
        f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}" for key, value in tuned.items()
    )
    sentences.append(
        f"The Bayesian search chose {chosen}; "
        + compare(TUNED, base, "test_accuracy", "the tuned baseline", "the untuned one").sentence
    )
    transfer_runs = runs_of(TRANSFER)
    sentences.append(
        f"MobileNetV2 ({weights[next(iter(weights))]} weights, frozen, inputs upsampled to its size): "
        + (
            f"every one of its {len(transfer_runs)} runs collapsed to one class."
            if truth.all_collapsed(transfer_runs)
            else f"test accuracy {_row(summary, TRANSFER)}."
        )
    )
    members = next(r["members"] for r in records if r["configuration"] == ENSEMBLE)
    sentences.append(
        f"Soft voting of {len(members)} models ({'; '.join(members)}) gives {_row(summary, ENSEMBLE)}; an RBF SVM on "
        f"the penultimate features of '{next(r['features_of'] for r in records if r['configuration'] == SVM)}' "
        f"gives {_row(summary, SVM)}."
    )
    with_probabilities = [r for r in records if "test_karyotype_accuracy" in r]
    constraint = truth.compare_rows(
        [r["test_karyotype_accuracy"] for r in with_probabilities], [r["test_accuracy"] for r in with_probabilities],
        "the constrained assignment", "the unconstrained one", "test accuracy", paired=True, pairs="runs",
    )  # fmt: skip
    sentences.append(
        f"The karyotype constraint (each metaphase: two of each autosome, XX or XY, assigned jointly by the Hungarian "
        f"algorithm) takes the best run's test accuracy from {best['test_accuracy']:.3f} to "
        f"{best['test_karyotype_accuracy']:.3f}; over the {len(with_probabilities)} runs with probabilities, "
        f"{constraint.sentence}"
    )
    if pairs:
        listed = ", ".join(f"{a} and {b} ({count})" for a, b, count in pairs)
        sentences.append(f"The pairs the best run confuses most on the test side: {listed}.")
    sentences.append(
        f"CIR-Net reports {ANCHOR['accuracy']:.2%} on this data set with {ANCHOR['protocol']}; our best run "
        f"('{best['configuration']}', seed {best['seed']}) reaches {best['test_accuracy']:.2%} on whole held-out "
        "cases, with small CNNs, small inputs, no augmentation and validation kept apart from test: the numbers are "
        "not comparable one to one."
    )
    runs = [r for r in records if "val_accuracy" in r and "test_confusion" in r]
    sentences.append(stuck_statement(runs))
    return sentences


def readme_section(payload, scale="cpu"):
    """The README's section on a committed run, generated from its `results.json` payload."""
    from medcnn.experiment import readme_section as section

    return section(
        payload,
        "Ablation",
        {"accuracy": "accuracy", "macro F1": "macro F1", "karyotype accuracy": "karyotype accuracy"},
        "one baseline CNN with each of the survey's blocks alone, tuning, MobileNetV2, an ensemble, CNN + SVM and the "
        "best combination, on case-grouped 70/15/15 splits of the CIR-Net crops (the paper gives no numbers; "
        f"CIR-Net's {ANCHOR['accuracy']:.2%} comes from an image-level 5-fold split). Parameters, images/s, per-class "
        f"F1 and the confusion matrix: [results/chromosome/{scale}/report.md](results/chromosome/{scale}/report.md).",
        row_notes=row_notes(payload.get("transfer_weights")),
    )


# ----------------------------------------------------------------------------------------------------------------
# The plan: what a scale would train, without training it (`python -m medcnn plan chromosome --scale cpu`)

PLAN_LEAVES_OUT = (
    "decoding and fitting the crops, the ensemble (no training), the SVM's features and fit (one inference pass "
    "and seconds), parameter counts, evaluation and export"
)


def plan_runs(run_settings, data_dir=None):
    """The search, then the runs the notebook trains (single blocks, the tuned baseline, transfer rows, then the
    best combination padded and stretched), as `experiment.estimate.PlannedRun`s, from the staged files' names
    (labels and cases; nothing decoded). Training sizes are `make_split`'s, case-grouped, for each seed.

    The tuned row is costed as the baseline and the combination as the one the cpu run chose: both are decided
    while the notebook runs.
    """
    import warnings

    from medcnn.data.chromosomes import load_chromosomes
    from medcnn.experiment import seed_order
    from medcnn.experiment.estimate import PlannedRun

    listed = load_chromosomes(data_dir, decode=False, class_order=CLASS_NAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lopsided-split warnings: the notebook shows them
        train = {
            seed: len(make_split(listed.labels, listed.groups, seed, run_settings["split_ratios"])["train"])
            for seed in run_settings["seeds"]
        }
    size, transfer_size = tuple(run_settings["image_size"]), tuple(run_settings["transfer_size"])
    stops = bool(run_settings["early_stopping_patience"])
    first = run_settings["seeds"][0]
    search = run_settings["tuner_trials"] * run_settings["tuner_epochs"]
    planned = [
        PlannedRun(f"{TUNED}: search, {run_settings['tuner_trials']} trials x {run_settings['tuner_epochs']} epochs",
                   first, "from scratch", "chromosome_cnn:baseline", search, train[first], size)
    ]  # fmt: skip

    def planned_run(config, seed):
        if config.backbone:
            return PlannedRun(config.label, seed, "frozen backbone + head", config.backbone, run_settings["epochs"],
                              train[seed], transfer_size, stops)  # fmt: skip
        if config.group in ("resize", "combination"):
            model = "chromosome_cnn:combination"
        else:
            model = f"chromosome_cnn:{config.blocks[0] if config.blocks else 'baseline'}"
        return PlannedRun(config.label, seed, "from scratch", model, run_settings["epochs"], train[seed], size, stops)

    tuned = Configuration(TUNED, "tuned")
    first_runs = [*BLOCK_CONFIGURATIONS, tuned, *transfer_configurations(run_settings)]
    later = combination_configurations(())
    for configurations in (first_runs, *[[config] for config in later]):
        seeds_of = {config.group: run_settings["seeds"] for config in configurations}
        planned += [planned_run(config, seed) for config, seed in seed_order(configurations, seeds_of)]
    return planned
