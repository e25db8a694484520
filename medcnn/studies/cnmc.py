"""cnmc: ALL vs healthy lymphocytes (C-NMC 2019) with MobileNetV2 and three other backbones (RUET, 2023).

The published Tables 5.1 and 5.2 as data, the citation, the settings per scale, the splits, the frozen-backbone
features, the head and its runs, and the sentences only this study prints. The thesis' validation (~95 %) and test
(~80 %) numbers differ the way cell-level folds with one patient's cells on both sides do; the `cnmc` notebook runs
those folds as published and patient-grouped folds beside them, and tests both on whole held-out patients. Runs,
caching, summaries, export and outputs come from `medcnn.experiment`.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medcnn.report import paper_table
from medcnn.studies import copy_tables, select_settings

STUDY = "cnmc"
DATASET_ID = "cnmc"
CITATION = {
    "title": "Leukaemia Detection Using MobileNet V2 Model",
    "authors": "Md. Mehedi Hasan Jibon (supervisor: Rizoan Toufiq)",
    "year": 2023,
    "venue": "B.Sc. thesis, Department of Computer Science & Engineering, Rajshahi University of Engineering & "
    "Technology (RUET), Bangladesh",
    "seed_file": "002_e9a35e93fa7fb751.txt",
    "evidence": ["Leukaemia Detection Using MobileNet V2 Model", "Md. Mehedi Hasan Jibon", "September 2, 2023"],
}
# The loader's order (`medcnn.data.loaders.CNMC_CLASSES`): label 0 = ALL (malignant), 1 = HEM (healthy). The tables'
# accuracy, weighted F1 and ROC-AUC do not depend on which class is called positive.
CLASS_NAMES = ["all", "hem"]
BACKBONES = ("inception_v3", "vgg19", "resnet101_v2", "mobilenet_v2")  # in the tables' row order

TABLE_5_1 = paper_table(
    STUDY,
    "Table 5.1",
    "Comparison of model accuracy, loss and F1-Score on train dataset (after 105 epochs)",
    ["acc", "loss", "val acc", "val loss", "F1", "val F1"],
    [
        ("InceptionV3", 0.9872, 0.0249, 0.9685, 0.1034, 0.9872, 0.9684),
        ("VGG19", 0.9521, 0.1017, 0.9449, 0.1445, 0.9623, 0.9449),
        ("ResNet101V2", 0.9873, 0.0349, 0.9575, 0.1579, 0.9881, 0.9569),
        ("MobileNetV2", 0.9557, 0.1136, 0.9519, 0.1316, 0.9558, 0.9516),
    ],
    index_name="model",
    source="seed 002_e9a35e93fa7fb751.txt, section 5.3",
)
TABLE_5_1.attrs["notes"] = "3-fold cross-validation, 35 epochs per fold; F1 is the weighted F1."
TABLE_5_2 = paper_table(
    STUDY,
    "Table 5.2",
    "The comparison of the Accuracy and F1-score on test dataset",
    ["accuracy %", "F1 %"],
    [
        ("InceptionV3", 80.24, 79.96),
        ("VGG19", 77.40, 76.37),
        ("ResNet101V2", 77.18, 76.19),
        ("MobileNetV2", 82.75, 82.48),
    ],
    index_name="model",
    percent=True,
    source="seed 002_e9a35e93fa7fb751.txt, section 5.4",
)
TABLE_5_2.attrs["notes"] = "Independent test part: 1,867 cells of 28 patients."
METRIC_KEYS = {
    "Table 5.1": {
        "acc": "train_accuracy",
        "loss": "train_loss",
        "val acc": "val_accuracy",
        "val loss": "val_loss",
        "F1": "train_weighted_f1",
        "val F1": "val_weighted_f1",
    },
    "Table 5.2": {"accuracy %": "test_accuracy_percent", "F1 %": "test_weighted_f1_percent"},
}
# The model names of the tables, per backbone (registry name).
MODEL_NAMES = dict(zip(BACKBONES, TABLE_5_1.index))
# "published": cell-level stratified folds, as the thesis' 3-fold cross-validation reads (one patient's cells on both
# sides); "grouped": stratified group folds on the patient id (every patient on one side of each fold).
PROTOCOLS = {
    "published": "cell-level stratified folds (as published)",
    "grouped": "patient-grouped stratified folds",
}
FINAL = "final"  # the run group of the exported model: one backbone refit on every non-test cell
EXTRA_COLUMNS = {
    "test_balanced_accuracy": "balanced accuracy",
    "test_precision_all": "precision (ALL)",
    "test_recall_all": "recall (ALL)",
    "test_roc_auc": "ROC-AUC",
    "test_patient_majority": "patients right (majority vote)",
    "val_test_gap": "val - test balanced accuracy",
}
SUMMARY_METRICS = [
    *METRIC_KEYS["Table 5.1"].values(),
    *METRIC_KEYS["Table 5.2"].values(),
    "test_accuracy",
    "test_weighted_f1",
    *EXTRA_COLUMNS,
    "val_balanced_accuracy",
    "test_patient_accuracy",
    "parameters",
    "inference_images_per_s",
    "epochs",
]

_COMMON = {
    "dataset_id": DATASET_ID,
    "class_names": CLASS_NAMES,
    "backbones": BACKBONES,
    "weights": "imagenet",
    # Images scaled to [0, 1] as the thesis says, then each backbone's own ImageNet preprocessing inside the model
    # ([-1, 1] for MobileNetV2, InceptionV3 and ResNet101V2; BGR minus the ImageNet mean for VGG19), which is what
    # its weights expect; the thesis does not say whether it applied it.
    "rescale": 1.0 / 255.0,
    # Rotation, flip, crop, zoom; the thesis: "with a probability greater than 70 %, the image is centrally
    # cropped by various fractions of its original size" (read here as: 70 % of the time; fractions not given).
    "augmentation": {
        "rotation": 0.5,
        "flip": "horizontal_and_vertical",
        "zoom": 0.1,
        "central_crop_probability": 0.7,
        "central_crop_fraction": (0.6, 1.0),
    },
    # The backbone stays frozen: its features are computed once per cell and per augmented copy, and the head
    # (dropout 0.25, sigmoid) is trained on them. The thesis does not say which layers it trained; Adam at 0.01
    # is a rate for a new head, one that would wreck pretrained weights if they were trained with it.
    "backbone_trainable": False,
    "optimizer": "adam",
    "learning_rate": 0.01,
    "schedule": "cosine_decay_restarts",
    "first_decay_epochs": 5,  # not stated; the thesis' schedule plot shows several restarts
    "t_mul": 2.0,  # Keras' default: each cycle twice as long as the one before
    "dropout": 0.25,
    # The thesis trained on "a smaller, balanced dataset" without saying how; here each class gets the same total
    # weight in the loss (scikit-learn's "balanced" weights of the training side). None: no weights.
    "class_weight": "balanced",
    "output": "sigmoid",
    "loss": "binary_crossentropy",
    "batch_size": 32,
    "predict_batch_size": 64,
    "metrics": ("accuracy", "f1_weighted", "precision", "recall", "roc_auc"),
    "protocols": tuple(PROTOCOLS),
    # The thesis' test part (1,867 cells of 28 other patients) is not in the staged copy: a patient-grouped
    # hold-out of about this share of the cells stands in for it, outside every fold.
    "test_fraction": 0.2,
    # None: each run's seed draws its cells' augmented views and the random weights of a backbone without ImageNet
    # weights (features computed per backbone and seed; an ImageNet backbone is the same for every seed, only its
    # views and head vary). An int holds both fixed for every seed, {backbone: int} for the backbones listed;
    # `seeding` declares what is held fixed in results.json.
    "feature_seed": None,
}

SETTINGS = {
    "smoke": {
        **_COMMON,
        "image_size": (75, 75),  # InceptionV3's smallest input; 0.6x the pixels of 96 px for the four backbones
        "augmented_copies": 1,
        "folds": 3,
        "epochs_per_fold": 9,
        "first_decay_epochs": 3,
        "seeds": [0],
        "allow_random_weights": True,
    },
    "full": {
        **_COMMON,
        "image_size": (224, 224),
        "augmented_copies": 14,  # 15 views of every cell; features of the whole set take ~1.3 GB per backbone
        "folds": 3,
        "epochs_per_fold": 35,
        # The heads are cheap: each seed adds a test part (other patients), folds and initialisation.
        "seeds": [0, 1, 2, 3, 4],
        "allow_random_weights": False,
    },
}
# The largest protocol that fits about 2 hours on 2 free CPU cores: the thesis' 224x224 inputs, folds, epochs and
# batch for all four backbones and both protocols, 15 views of every cell, five seeds. Estimated from rates measured
# on this CPU, scaled to free cores (inference at 224, images/s: MobileNetV2 ~183, InceptionV3 ~65, ResNet101V2 ~22,
# VGG19 ~10; the augmentation ~200): features of 840 cells x 15 views ~40 min; 121 heads of ~7,800 steps ~45 min.
# Offline only MobileNetV2's ImageNet weights exist, so the others start from random weights (recorded as such).
# Measured on 2026-11-30: 158 min wall, the kth cpu run sharing the cores for 110 of them (feature extraction ran at
# 4-10 images/s then, MobileNetV2 74 alone); heads 12-28 s each.
# Features per seed cost a backbone's whole feature time again for every seed (at 224 px on free cores, per seed:
# VGG19 ~21 min, ResNet101V2 ~10, InceptionV3 ~3, MobileNetV2 ~1, augmentation ~4: five seeds would add about
# 2.5 hours). So here the three backbones with random weights offline keep one draw of views and weights for every
# seed (declared in results.json); MobileNetV2's views vary per seed (about 9 min more for five seeds).
SETTINGS["cpu"] = {
    **SETTINGS["full"],
    "allow_random_weights": True,
    "feature_seed": {"inception_v3": 0, "vgg19": 0, "resnet101_v2": 0},
}


def settings(scale="smoke", **overrides):
    """The settings of `scale` ("smoke", "cpu" or "full") with the non-None `overrides` applied."""
    return select_settings(SETTINGS, scale, overrides)


def paper_tables():
    """{"Table 5.1": DataFrame, "Table 5.2": DataFrame}, fresh copies each call."""
    return copy_tables({"Table 5.1": TABLE_5_1, "Table 5.2": TABLE_5_2})


def table_id(table, protocol):
    """The results' name of a published table under one protocol, e.g. "Table 5.1 (grouped)"."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {list(PROTOCOLS)}. Received: protocol={protocol!r}")
    return f"{table} ({protocol})"


# ----------------------------------------------------------------------------------------------------------------
# Data and splits


def load_data(data_dir=None, image_size=(224, 224)):
    """The C-NMC cells resized as the saved model resizes a raw file: an ImageSet with patients in `groups`.

    Images are float32 in [0, 255] (see `medcnn.data.loaders.decode_files`); bad files are skipped and listed.
    A Kaggle download may be pointed at as it unpacks (`C-NMC_Leukemia/training_data/` is found inside).
    """
    from medcnn.data.loaders import load_cnmc
    from medcnn.data.paths import resolve_dataset

    root = resolve_dataset(DATASET_ID, data_dir)
    for inner in ("C-NMC_Leukemia/training_data", "training_data"):
        if (root / inner).is_dir():
            root = root / inner
            break
    return load_cnmc(root, image_size=tuple(image_size), color_mode="rgb", skip_bad=True)


def make_splits(labels, groups, seed=0, folds=3, test_fraction=0.2):
    """The test part and both protocols' folds, as indices into the cells.

    Returns:
        {"test": test indices, "rest": the others, "folds": {protocol: [(train, val), ...]}, "warnings": [text]}:
        the test part holds whole patients (class-stratified, about `test_fraction` of the cells); both protocols
        split the rest into `folds` stratified folds, "published" cell by cell, "grouped" patient by patient.
        `warnings` holds the lopsided-split warnings of the grouped splits.
    """
    import warnings

    from medcnn.data.splits import (
        check_folds_no_leakage,
        check_no_leakage,
        grouped_kfold,
        stratified_kfold,
        train_val_test_split,
    )

    labels, groups = np.asarray(labels), np.asarray(groups)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rest, test = train_val_test_split(labels, (1 - test_fraction, test_fraction), seed, groups=groups)
        grouped = grouped_kfold(labels[rest], groups[rest], folds, seed)
    published = stratified_kfold(labels[rest], folds, seed)
    by_protocol = {
        "published": [(rest[train], rest[val]) for train, val in published],
        "grouped": [(rest[train], rest[val]) for train, val in grouped],
    }
    check_no_leakage({"rest": rest, "test": test}, groups=groups)
    check_folds_no_leakage(by_protocol["grouped"], groups=groups)
    return {"test": test, "rest": rest, "folds": by_protocol, "warnings": [str(w.message) for w in caught]}


def fold_table(labels, groups, splits, class_names=CLASS_NAMES):
    """One row per protocol and fold: cells per class and side, patients per side and on both sides."""
    import pandas as pd

    labels, groups = np.asarray(labels), np.asarray(groups)
    rows = []
    for protocol, folds in splits["folds"].items():
        for fold, (train, val) in enumerate(folds, start=1):
            row = {"protocol": protocol, "fold": fold}
            for side, index in (("train", train), ("val", val)):
                for k, name in enumerate(class_names):
                    row[f"{side} {name.upper()} cells"] = int((labels[index] == k).sum())
                row[f"{side} patients"] = len(set(groups[index]))
            row["patients on both sides"] = len(set(groups[train]) & set(groups[val]))
            rows.append(row)
    test = splits["test"]
    test_row = {"protocol": "test part (both)", "fold": ""}
    for k, name in enumerate(class_names):
        test_row[f"val {name.upper()} cells"] = int((labels[test] == k).sum())
    test_row["val patients"] = len(set(groups[test]))
    test_row["patients on both sides"] = len(set(groups[test]) & set(groups[splits["rest"]]))
    return pd.DataFrame([*rows, test_row]).set_index(["protocol", "fold"]).fillna("")


def patients_per_class(labels, groups, class_names=CLASS_NAMES):
    """Cells per patient with the patient's class, largest first within each class."""
    import pandas as pd

    frame = pd.DataFrame({"patient": np.asarray(groups), "class": np.asarray(class_names)[np.asarray(labels)]})
    counts = frame.groupby(["class", "patient"]).size().rename("cells").reset_index()
    return counts.sort_values(["class", "cells"], ascending=[True, False]).reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# Frozen-backbone features


def feature_seed(run_settings, seed, name=None):
    """The seed that draws the augmented views and a random backbone's weights for backbone `name`'s runs of
    `seed`: `seed` itself, or the scale's `feature_seed` where it holds them fixed for every seed (an int: every
    backbone; {backbone: int}: the backbones listed)."""
    fixed = fixed_feature_seed(run_settings, name)
    return int(seed) if fixed is None else fixed


def fixed_feature_seed(run_settings, name=None):
    """The seed the scale holds backbone `name`'s views and random weights at for every seed, or None (drawn per
    seed)."""
    fixed = run_settings["feature_seed"]
    if isinstance(fixed, dict):
        fixed = fixed.get(name)
    return None if fixed is None else int(fixed)


def augmentation_layer(run_settings, seed=0):
    """The thesis' augmentation as Keras layers: rotation, flips, zoom, then a central crop of a random fraction
    with probability p (`medcnn.augment.geometric_and_zoom`); uncovered corners are black like the background."""
    from medcnn.augment import geometric_and_zoom

    options = run_settings["augmentation"]
    return geometric_and_zoom(
        rotation=options["rotation"],
        zoom=options["zoom"],
        central_zoom_probability=options["central_crop_probability"],
        central_zoom_fraction=tuple(options["central_crop_fraction"]),
        seed=seed,
    )


def view_augmentation(run_settings, seed, name=None):
    """The augmentation that draws the augmented views of backbone `name`'s runs of `seed`: a fresh copy of
    `augmentation_layer` whose random layers are seeded `100 * feature_seed(run_settings, seed, name)` and up, so
    no two seeds share a layer's seed and the same seed gives the same views on every call."""
    from medcnn.augment import with_seed

    return with_seed(augmentation_layer(run_settings), 100 * feature_seed(run_settings, seed, name))


def backbone_model(name, run_settings, seed=0):
    """The frozen backbone taking [0, 1] images at the scale's size, its preprocessing inside: ImageNet weights
    (the same for every seed), or random ones drawn after `keras.utils.set_random_seed(feature_seed(run_settings,
    seed))`, the same on every call with the same `seed` (the run's seed).

    Returns:
        (model named "backbone", WeightsInfo).
    """
    from medcnn.models.features import seeded_backbone

    model, _ = seeded_backbone(
        name,
        (*run_settings["image_size"], 3),
        feature_seed(run_settings, seed, name),
        run_settings["weights"],
        allow_random=run_settings["allow_random_weights"],
        input_max=1.0,
    )
    return model, model.weights_info


def backbone_weights(run_settings):
    """{model: "imagenet" or "random"}: what each backbone loads here (random only where allowed, with a warning)."""
    from medcnn.models.backbones import resolve_backbone_weights

    shape = (*run_settings["image_size"], 3)
    return {
        MODEL_NAMES.get(name, name): resolve_backbone_weights(name, shape, run_settings["allow_random_weights"]).used
        for name in run_settings["backbones"]
    }


def seeding(run_settings, weights=None):
    """What each seed varies and what is held fixed on purpose, for results.json (`experiment.seed_policy`).

    Every seed draws its own test part and folds, the head's initialisation, batch order and dropout masks; the
    augmented views and a random backbone's weights are drawn per seed unless `feature_seed` holds them fixed.

    Args:
        run_settings: the scale's settings.
        weights: {model: "imagenet" or "random"} as `backbone_weights` gives it (None: resolved here).
    """
    from medcnn.experiment import for_models, seed_policy

    weights = weights if weights is not None else backbone_weights(run_settings)
    models = {MODEL_NAMES.get(name, name): name for name in run_settings["backbones"]}
    fixed = [model for model, name in models.items() if fixed_feature_seed(run_settings, name) is not None]
    per_seed = [model for model in models if model not in fixed]
    drawn = [model for model in models if weights.get(model) == "random"]
    varies, held = ["split", "initialisation", "data order", "dropout masks"], {}
    if per_seed:
        varies.append(for_models("augmented views", per_seed, models))
    if set(per_seed) & set(drawn):
        varies.append(for_models("random backbone weights", [m for m in per_seed if m in drawn], drawn))
    if fixed:
        seeds = sorted({fixed_feature_seed(run_settings, models[model]) for model in fixed})
        why = (f"feature_seed {', '.join(map(str, seeds))}: computed once for every seed, because features per seed "
               "cost the backbone's whole feature time again for each seed")  # fmt: skip
        held[for_models("augmented views", fixed, models)] = why
        if set(fixed) & set(drawn):
            held[for_models("random backbone weights", [m for m in fixed if m in drawn], drawn)] = why
    pretrained = [model for model in models if model not in drawn]
    if pretrained:
        held[for_models("pretrained backbone weights", pretrained, models)] = "ImageNet weights: loaded, not drawn"
    return seed_policy(varies, held)


@dataclass
class Features:
    """A backbone's pooled features of every cell (rows 0..N-1) and of its augmented copies (the rows after).

    x: (rows, 1, 1, D) float32, a 1x1 feature map, so that the head that pools a backbone's map takes it as it is.
    source: (rows,) the cell each row comes from. copy: (rows,) 0 for the cell itself, k for its k-th copy.
    info: backbone, weights, parameters, feature size, inference images/s, seconds.
    """

    x: np.ndarray
    source: np.ndarray
    copy: np.ndarray
    info: dict

    def rows(self, cells):
        """The rows of `cells` and of their augmented copies (training sides)."""
        return np.flatnonzero(np.isin(self.source, np.asarray(cells)))


def _features_key(name, run_settings, data_fingerprint, seed):
    from medcnn.experiment import fingerprint

    keys = ("image_size", "augmented_copies", "augmentation", "weights", "allow_random_weights")
    drawn = {"feature_seed": feature_seed(run_settings, seed, name)}  # the seed of the views and random weights
    return fingerprint(
        {"backbone": name, "data": data_fingerprint, **drawn, **{key: run_settings[key] for key in keys}}
    )


def extract_features(name, images, run_settings, data_fingerprint, cache_dir=None, reuse=False, log=print, seed=0):
    """Pooled features of every image and of `augmented_copies` augmented copies of each, through the frozen
    backbone; the originals' pass is timed (inference images/s of the whole model: the head adds one dot product).

    Args:
        name: backbone registry name.
        images: (N, H, W, 3) float32 in [0, 1] at the scale's image size.
        run_settings: the scale's settings.
        data_fingerprint: a hash of the data files (part of the cache key).
        cache_dir: where features are kept as `<name>_<key>.npz` (None: not kept).
        reuse: load kept features of the same backbone, settings, data and feature seed instead of computing them.
        seed: the run seed whose views (and random backbone weights) these are (`feature_seed`).
    """
    import json
    import time

    import keras

    from medcnn.evaluate import timed_predict

    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{name}_{_features_key(name, run_settings, data_fingerprint, seed)}.npz"
        if reuse and path.is_file():
            stored = np.load(path)
            log(f"{MODEL_NAMES.get(name, name)}: features reused from {path.name}")
            return Features(stored["x"], stored["source"], stored["copy"], json.loads(str(stored["info"])))
    started = time.perf_counter()
    backbone, weights = backbone_model(name, run_settings, seed)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(backbone.output)
    extractor = keras.Model(backbone.inputs, pooled, name=f"{name}_features")
    batch = run_settings["predict_batch_size"]
    first, seconds = timed_predict(extractor, images, batch)
    parts, sources, copies = [first], [np.arange(len(images))], [np.zeros(len(images), int)]
    layer = view_augmentation(run_settings, seed, name)
    for copy in range(1, run_settings["augmented_copies"] + 1):
        augmented = np.concatenate(
            [
                keras.ops.convert_to_numpy(layer(images[start : start + batch], training=True))
                for start in range(0, len(images), batch)
            ]
        )
        parts.append(extractor.predict(augmented, batch_size=batch, verbose=0))
        sources.append(np.arange(len(images)))
        copies.append(np.full(len(images), copy))
    x = np.concatenate(parts).astype("float32")
    info = {
        "backbone": name,
        "model": MODEL_NAMES.get(name, name),
        "weights": weights.used,
        "weights_source": weights.source,
        "weights_file": Path(weights.path).name if weights.path else None,
        "parameters": int(backbone.count_params() + x.shape[1] + 1),  # backbone + the head's dense layer
        "feature_size": int(x.shape[1]),
        "image_size": list(run_settings["image_size"]),
        "feature_seed": feature_seed(run_settings, seed, name),
        "inference_images_per_s": len(images) / seconds,
        "rows": int(len(x)),
        "feature_s": time.perf_counter() - started,
    }
    features = Features(x.reshape(len(x), 1, 1, -1), np.concatenate(sources), np.concatenate(copies), info)
    keras.backend.clear_session()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=features.x, source=features.source, copy=features.copy, info=json.dumps(info))
    log(
        f"{info['model']} ({info['weights']} weights): {len(x)} feature rows of size {info['feature_size']} in "
        f"{info['feature_s']:.0f} s; inference {info['inference_images_per_s']:.0f} images/s"
    )
    return features


# ----------------------------------------------------------------------------------------------------------------
# The head, its runs, the exported model


def build_head(feature_size, mean, variance, dropout=0.25, seed=None):
    """The thesis' head on a frozen backbone: pool -> standardise -> Dropout -> Dense(1, sigmoid), named "head".

    It takes a feature map of any height and width (None, None, feature_size): a backbone's map in the exported
    model, a 1x1 map of pooled features in training. `mean` and `variance` (the training side's, per feature) make
    features of any scale (random-weight backbones) fit one learning rate; they are fixed, not trained.
    """
    import keras
    from keras import layers

    from medcnn.models.features import standardise

    features = keras.Input((None, None, int(feature_size)), name="features")
    x = layers.GlobalAveragePooling2D(name="pool")(features)
    x = standardise(mean, variance, min_variance=1e-6)(x)
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="probabilities")(x)
    return keras.Model(features, outputs, name="head")


def build_model(x_train, run_settings, steps_per_epoch):
    """The head for these training features, compiled: Adam with cosine decay and restarts, binary cross-entropy."""
    from medcnn.models.features import feature_stats
    from medcnn.train import compile_model, cosine_restarts

    mean, variance = feature_stats(x_train, dtype=None)  # in the features' own float32, as trained so far
    head = build_head(len(mean), mean, variance, run_settings["dropout"])
    schedule = cosine_restarts(
        run_settings["learning_rate"],
        run_settings["first_decay_epochs"] * steps_per_epoch,
        t_mul=run_settings["t_mul"],
    )
    return compile_model(head, run_settings["optimizer"], schedule, loss="binary_crossentropy", metrics=["accuracy"])


def binary_metrics(labels, probabilities):
    """Per side: binary cross-entropy, and precision and recall with ALL (label 0, the malignant class) positive."""
    from sklearn.metrics import log_loss, precision_score, recall_score

    p = np.clip(np.asarray(probabilities, dtype="float64").reshape(-1), 1e-7, 1 - 1e-7)
    predicted = (p >= 0.5).astype(int)
    return {
        "loss": float(log_loss(labels, p, labels=[0, 1])),
        "precision_all": float(precision_score(labels, predicted, pos_label=0, zero_division=0)),
        "recall_all": float(recall_score(labels, predicted, pos_label=0, zero_division=0)),
    }


def run_label(name, protocol, fold=None):
    """A run's label: "MobileNetV2 | grouped | fold 2", or "MobileNetV2 | final" for the refit."""
    model = MODEL_NAMES.get(name, name)
    return f"{model} | {protocol}" + (f" | fold {fold}" if fold is not None else "")


def _run(name, protocol, fold, split, features, labels, run_settings, seed, data_fingerprint):
    import math

    from medcnn.data.labels import class_weights
    from medcnn.experiment import Run

    train = split["train"]
    steps = math.ceil(len(train) / run_settings["batch_size"])
    return Run(
        label=run_label(name, protocol, fold),
        seed=seed,
        split=split,
        epochs=run_settings["epochs_per_fold"],
        batch_size=run_settings["batch_size"],
        group=protocol,
        settings={"backbone": name, "model": MODEL_NAMES.get(name, name), "protocol": protocol, "fold": fold},
        build_model=lambda: build_model(features.x[train], run_settings, steps),
        spec=run_settings,
        data={"files": data_fingerprint, "features": features.info["weights"]},
        one_hot=False,
        class_weight=class_weights(labels[features.source[train]], run_settings["class_weight"], num_classes=2),
        extra_metrics=binary_metrics,
        predict_batch_size=run_settings["predict_batch_size"],
        evaluate_train=True,
    )


def make_runs(name, features, labels, splits, run_settings, seed, data_fingerprint):
    """One run per protocol and fold for backbone `name`: trained on the fold's cells and their augmented copies,
    validated on the fold's other cells, tested on the test part (cells only, never copies)."""
    runs = []
    for protocol in run_settings["protocols"]:
        for fold, (train, val) in enumerate(splits["folds"][protocol], start=1):
            split = {"train": features.rows(train), "val": np.asarray(val), "test": np.asarray(splits["test"])}
            runs.append(_run(name, protocol, fold, split, features, labels, run_settings, seed, data_fingerprint))
    return runs


def final_run(name, features, labels, splits, run_settings, seed, data_fingerprint):
    """The refit of backbone `name` on every non-test cell and its copies (no validation side), tested once."""
    split = {"train": features.rows(splits["rest"]), "test": np.asarray(splits["test"])}
    return _run(name, FINAL, None, split, features, labels, run_settings, seed, data_fingerprint)


def labels_of(features, labels):
    """The label of every feature row (a copy has its cell's label)."""
    return np.asarray(labels)[features.source]


def train_backbone(name, images, labels, splits_by_seed, run_settings, cache, data_fingerprint, log=print):
    """Features of backbone `name` for every seed (`feature_seed`: computed again only where the seed draws other
    views or weights), then its runs for every seed, protocol and fold (trained or reused). One seed's features
    are held in memory at a time.

    Returns:
        (the first seed's Features, whose `info["feature_s"]` counts every seed's features and
        `info["feature_seeds"]` lists the seeds they were drawn with; runs; records).
    """
    from medcnn.experiment import run_all

    first = features = None
    seconds, drawn_seeds, runs, records = 0.0, [], [], []
    for seed, splits in splits_by_seed.items():
        drawn = feature_seed(run_settings, seed, name)
        if features is None or features.info["feature_seed"] != drawn:
            features = extract_features(
                name, images, run_settings, data_fingerprint, cache.out_dir / "cache" / "features", cache.reuse, log,
                seed=seed,
            )  # fmt: skip
            seconds += features.info["feature_s"]
            drawn_seeds.append(drawn)
        first = first or features
        made = make_runs(name, features, labels, splits, run_settings, seed, data_fingerprint)
        runs += made
        records += run_all(made, features.x, labels_of(features, labels), CLASS_NAMES, cache, log=log)
    info = {**first.info, "feature_s": seconds, "feature_seeds": drawn_seeds}
    return Features(first.x, first.source, first.copy, info), runs, records


def image_model(name, head, run_settings, seed=0):
    """The whole classifier: [0, 1] images at the scale's size -> frozen backbone (the weights the features of the
    run of `seed` came from) -> the trained head."""
    import keras

    backbone, _ = backbone_model(name, run_settings, seed)
    head.trainable = False
    inputs = keras.Input((*run_settings["image_size"], 3), name="image")
    return keras.Model(inputs, head(backbone(inputs)), name=f"{name}_cnmc")


def export(run, features, labels, run_settings, cache, path, log=print):
    """Save `run`'s head on its backbone as one `model.keras` that classifies raw cell images (any size, RGB).

    The head is `experiment.trained_model`'s: the run's recorded weights, or the run trained again when they are
    missing (records are committed, weights are not).
    """
    from medcnn.experiment import export_model, trained_model

    head = trained_model(run, features.x, labels_of(features, labels), CLASS_NAMES, cache, log=log)
    model = image_model(run.settings["backbone"], head, run_settings, run.seed)
    return export_model(model, CLASS_NAMES, path, input_max=1.0)


# ----------------------------------------------------------------------------------------------------------------
# What the records show


def patient_results(record, labels, groups, class_names=CLASS_NAMES):
    """Per test patient of a record: class, cells, share of cells right, and whether the majority vote is right."""
    import pandas as pd

    index = np.asarray(record["test_indices"])
    p = np.asarray(record["test_probabilities"], dtype="float64").reshape(len(index), -1)[:, -1]
    truth, patients = np.asarray(labels)[index], np.asarray(groups)[index]
    correct = (p >= 0.5).astype(int) == truth
    frame = pd.DataFrame({"patient": patients, "class": np.asarray(class_names)[truth], "correct": correct})
    table = frame.groupby("patient", sort=False).agg(
        **{"class": ("class", "first"), "cells": ("correct", "size"), "accuracy": ("correct", "mean")}
    )
    table["majority right"] = table["accuracy"] > 0.5
    return table


def complete(records, feature_info, labels, groups):
    """Add what the tables need to every record, in place: model, protocol and fold, parameters, inference
    images/s, test metrics in percent, the validation-to-test gap and the per-patient numbers."""
    for record in records:
        config = record["settings"]
        info = feature_info[config["backbone"]]
        record.update({"model": config["model"], "protocol": config["protocol"], "fold": config["fold"]})
        record.update({"parameters": info["parameters"], "inference_images_per_s": info["inference_images_per_s"]})
        for key in ("test_accuracy", "test_weighted_f1"):
            record[f"{key}_percent"] = 100.0 * record[key]
        if "val_accuracy" in record:
            record["val_test_gap"] = record["val_balanced_accuracy"] - record["test_balanced_accuracy"]
        patients = patient_results(record, labels, groups)
        record["test_patient_majority"] = float(patients["majority right"].mean())
        record["test_patient_accuracy"] = float(patients["accuracy"].mean())
    return records


def summaries(records, protocols=tuple(PROTOCOLS)):
    """{protocol: mean ± std over folds (and seeds) per model}, in the tables' row order."""
    from medcnn.experiment import summarise

    made = {}
    for protocol in protocols:
        chosen = [r for r in records if r.get("protocol", r["group"]) == protocol]
        summary = summarise(chosen, SUMMARY_METRICS, by="model")
        made[protocol] = summary.loc[[m for m in TABLE_5_1.index if m in summary.index]]
    return made


def row_notes(feature_info=None, weights=None):
    """{model: "random weights"} for the backbones whose features came from random weights: from the features'
    `info` ({backbone: {"model", "weights"}}, what the run loaded) or else from {model: weights used}."""
    from medcnn.experiment.truth import weights_notes

    if feature_info:
        weights = {
            entry.get("model", MODEL_NAMES.get(name, name)): entry["weights"] for name, entry in feature_info.items()
        }
    return weights_notes({MODEL_NAMES.get(name, name): used for name, used in (weights or {}).items()})


def comparisons(by_protocol, info, feature_info=None):
    """{"Table 5.1 (published)": compare(...), ...}: each published table beside each protocol's summary; rows
    whose backbone had random weights (`feature_info`, else `info["weights"]`) say so."""
    from medcnn.experiment import compare

    notes = row_notes(feature_info, info.get("weights"))
    return {
        table_id(name, protocol): compare(paper, summary, info, METRIC_KEYS[name], row_notes=notes)
        for name, paper in paper_tables().items()
        for protocol, summary in by_protocol.items()
    }


def extra_table(by_protocol, digits=3):
    """Per model and protocol: the further metrics, parameters and images/s (mean ± std over folds)."""
    import pandas as pd

    from medcnn.experiment import mean_std

    rows = []
    for protocol, summary in by_protocol.items():
        for model, r in summary.iterrows():
            row = {"model": model, "protocol": protocol, "runs (folds x seeds)": int(r["runs"])}
            for key, title in EXTRA_COLUMNS.items():
                row[title] = mean_std(r[f"{key}_mean"], r[f"{key}_std"], digits)
            row["parameters"] = f"{r['parameters_mean']:,.0f}"
            row["inference images/s"] = f"{r['inference_images_per_s_mean']:,.0f}"
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "protocol"])


def patient_table(records, labels, groups):
    """Accuracy per test patient (rows) for each model and protocol (mean over folds and seeds that tested the
    patient; NaN where none did) and the final model."""
    import pandas as pd

    columns, every = {}, []
    for record in records:
        name = f"{record['model']} ({record['protocol']})"
        results = patient_results(record, labels, groups)
        columns.setdefault(name, []).append(results)
        every.append(results[["class", "cells"]])
    table = pd.concat(every)
    table = table[~table.index.duplicated()].copy()  # seeds with other test parts add their patients
    for name, parts in columns.items():
        table[name] = pd.concat([part["accuracy"] for part in parts], axis=1).mean(axis=1)  # NaN: never tested
    return table


def choose_backbone(by_protocol, metric="val_balanced_accuracy"):
    """The backbone with the best mean patient-grouped validation `metric` (ties: the tables' order)."""
    summary = by_protocol["grouped"]
    model = summary[f"{metric}_mean"].idxmax()
    return next(name for name, shown in MODEL_NAMES.items() if shown == model)


def lopsided_folds(labels, splits, class_names=CLASS_NAMES, share=0.5):
    """[(fold, class, cells, expected)] of the grouped folds whose validation side holds fewer than `share` of
    the cells of a class that its size predicts."""
    labels = np.asarray(labels)
    rest = np.asarray(splits["rest"])
    found = []
    for fold, (_, val) in enumerate(splits["folds"]["grouped"], start=1):
        for k, name in enumerate(class_names):
            expected = np.mean(labels[rest] == k) * len(val)
            count = int((labels[val] == k).sum())
            if count < share * expected:
                found.append((fold, name, count, float(expected)))
    return found


def findings(by_protocol, records, feature_info, splits, labels, groups, final_record):
    """The sentences only this study prints, each computed from this run's numbers; `splits` are those of the
    final record's seed."""
    from medcnn.experiment import mean_std
    from medcnn.experiment import truth

    def row(protocol, model, key):
        r = by_protocol[protocol].loc[model]
        return mean_std(r[f"{key}_mean"], r[f"{key}_std"])

    def runs_of(protocol, model=None):
        return [
            r for r in records
            if r.get("protocol", r.get("group")) == protocol and (model is None or r.get("model") == model)
        ]  # fmt: skip

    sentences = []
    published = by_protocol["published"]
    verdicts = {
        model: truth.compare_records(
            runs_of("published", model), runs_of("grouped", model), "val_accuracy", "cell-level folds",
            "patient-grouped folds", "validation accuracy",
        )
        for model in published.index
    }  # fmt: skip
    parts = ", ".join(
        f"{model} {row('published', model, 'val_accuracy')} vs {row('grouped', model, 'val_accuracy')} "
        f"({v.difference:+.3f}, standard error {v.standard_error:.3f}: {v.verdict})"
        for model, v in verdicts.items()
    )
    above = [model for model, v in verdicts.items() if v.verdict == "above"]
    sentences.append(
        f"Validation accuracy over the same cells (each validated once per protocol), cell-level folds as published "
        f"vs patient-grouped folds (fold runs averaged per seed, then paired by seed): {parts}; seeing other cells "
        f"of the same patient in training lifts validation accuracy beyond two standard errors for {len(above)} of "
        f"{len(verdicts)} models" + (f" ({', '.join(above)})." if above else ".")
    )
    seed = final_record["seed"]  # `splits` are this seed's
    test = np.asarray(splits["test"])
    mix = ", ".join(f"{int((labels[test] == k).sum())} {name.upper()}" for k, name in enumerate(CLASS_NAMES))
    gaps = {protocol: by_protocol[protocol]["val_test_gap_mean"].mean() for protocol in PROTOCOLS}
    paper_gap = (TABLE_5_1["val acc"] - TABLE_5_2["accuracy %"] / 100).mean()
    gap_verdict = truth.compare_records(
        runs_of("published"), runs_of("grouped"), "val_test_gap", "after cell-level folds",
        "after patient-grouped folds", "validation minus test balanced accuracy",
    )  # fmt: skip
    sentences.append(
        f"The test part holds whole held-out patients ({mix} cells with seed {seed}), so its plain accuracy mostly "
        "counts ALL cells. "
        f"Validation minus test balanced accuracy, mean over models: {gaps['published']:+.3f} after cell-level folds, "
        f"{gaps['grouped']:+.3f} after patient-grouped folds ({gap_verdict.verdict}: {gap_verdict.difference:+.3f}, "
        f"standard error {gap_verdict.standard_error:.3f} over seeds, fold runs averaged per seed); the thesis' "
        f"validation minus test accuracy: {paper_gap:+.3f} on average."
    )
    both = {
        protocol: [len(set(groups[train]) & set(groups[val])) for train, val in folds]
        for protocol, folds in splits["folds"].items()
    }
    patients = len(set(groups[splits["rest"]]))
    sentences.append(
        f"Patients with cells on both sides of a fold (seed {seed}), of the {patients} outside the test part: "
        + "; ".join(f"{protocol} {', '.join(map(str, counts))}" for protocol, counts in both.items())
        + "."
    )
    lopsided = lopsided_folds(labels, splits)
    sizeable = patients_per_class(labels, groups)
    sizeable = sizeable[(sizeable["class"] == "hem") & (sizeable["cells"] >= 30)]
    if lopsided:
        listed = "; ".join(f"fold {f}: {n} {c.upper()} cells where {e:.0f} were expected" for f, c, n, e in lopsided)
        named = ", ".join(f"{p} ({n})" for p, n in zip(sizeable["patient"], sizeable["cells"]))
        sentences.append(
            f"The patient-grouped folds are lopsided (seed {seed}: {listed}): only {len(sizeable)} HEM patients with "
            f"30 cells or more are staged ({named}), "
            "and a patient sits on one side only, so a fold may validate on one HEM patient; the full training set "
            "(26 HEM patients) removes this."
        )
    sentences += thesis_statements(records)
    random = [info["model"] for info in feature_info.values() if info["weights"] != "imagenet"]
    if random:
        sentences.append(
            f"{', '.join(random)} ran with random weights (no ImageNet file offline): their rows measure a frozen "
            "random network, not the pretrained one the thesis used."
        )
    sizes = sorted(feature_info.values(), key=lambda info: info["parameters"])
    sentences.append(
        "Parameters and inference rate on this machine: "
        + ", ".join(
            f"{info['model']} {info['parameters'] / 1e6:.1f} M, {info['inference_images_per_s']:.0f} images/s"
            for info in sizes
        )
        + "."
    )
    patients_final = patient_results(final_record, labels, groups)
    majority = truth.references([final_record])
    always = (
        f" (always predicting the largest class: {majority.loc['majority class', 'accuracy']:.3f}, balanced 0.500)"
        if majority is not None
        else ""
    )
    sentences.append(
        f"The exported model ({final_record['model']}, chosen by patient-grouped validation, refit on every "
        f"non-test cell, one run) scores test accuracy {final_record['test_accuracy']:.3f}, balanced "
        f"{final_record['test_balanced_accuracy']:.3f}{always}, and the majority vote of its cells is right for "
        f"{int(patients_final['majority right'].sum())} of {len(patients_final)} test patients."
    )
    sentences.append(near_chance_statement(records))
    return sentences


def thesis_statements(records, protocol="grouped"):
    """Each model's test accuracy against the thesis' (Table 5.2), through `truth.reaches_paper` with the
    majority-class reference of the same test parts (mostly ALL cells: plain accuracy there mostly counts ALL), then
    the models compared on balanced accuracy, the best against the runner-up (`truth.compare_records`)."""
    from medcnn.experiment import truth

    chosen = {
        model: [r for r in records if r.get("protocol", r.get("group")) == protocol and r.get("model") == model]
        for model in TABLE_5_2.index
    }
    chosen = {model: runs for model, runs in chosen.items() if runs}
    sentences, learned = [], {}
    for model, runs in chosen.items():
        if truth.all_collapsed(runs):
            sentences.append(
                f"{model} ({PROTOCOLS[protocol]}): every one of its {len(runs)} runs collapsed to one class; no "
                "number of it stands beside the thesis'."
            )
            continue
        learned[model] = runs
        values, _ = truth.row_values(runs, "test_accuracy_percent")
        reference = truth.references(runs)
        majority = np.nan if reference is None else 100.0 * reference.loc["majority class", "accuracy"]
        sentences.append(
            truth.reaches_paper(
                values, TABLE_5_2.loc[model, "accuracy %"], majority, f"{model} ({PROTOCOLS[protocol]})",
                "test accuracy %",
            ).sentence
        )  # fmt: skip
    if len(learned) > 1:
        means = {
            model: np.nanmean(truth.row_values(runs, "test_balanced_accuracy")[0]) for model, runs in learned.items()
        }
        first, second = sorted(means, key=means.get, reverse=True)[:2]
        verdict = truth.compare_records(
            learned[first], learned[second], "test_balanced_accuracy", first, second, "test balanced accuracy"
        )
        sentences.append(
            f"By test balanced accuracy after {PROTOCOLS[protocol]}, the highest mean is {first}'s: {verdict} The "
            f"thesis ranks {TABLE_5_2['accuracy %'].idxmax()} first by plain accuracy."
        )
    return sentences


def near_chance_statement(records, below=0.55):
    """How many fold runs stay near chance in balanced validation accuracy (one class for almost everything).

    The validation side, not the test part: the test part is mostly ALL cells, so a plain-accuracy check against
    the majority class there would flag every run.
    """
    runs = [r for r in records if "val_balanced_accuracy" in r]
    near = [r["configuration"] for r in runs if r["val_balanced_accuracy"] < below]
    return (
        f"{len(near)} of {len(runs)} fold runs stay near chance (balanced validation accuracy below {below}): "
        + ("; ".join(near) or "none")
        + "."
    )


# ----------------------------------------------------------------------------------------------------------------
# Figures


def plot_fold_curves(records, protocol, path=None):
    """Loss and accuracy per epoch of every fold of the first seed (training solid, validation dashed), one row per
    model."""
    from matplotlib.figure import Figure

    from medcnn.plots import save_figure

    seed = min(r["seed"] for r in records)
    chosen = [r for r in records if r["protocol"] == protocol and r["seed"] == seed]
    models = list(dict.fromkeys(r["model"] for r in chosen))
    figure = Figure(figsize=(9, 2.6 * len(models)), layout="constrained")
    axes = figure.subplots(len(models), 2, squeeze=False)
    for row, model in enumerate(models):
        for column, metric in enumerate(("loss", "accuracy")):
            ax = axes[row, column]
            for record in (r for r in chosen if r["model"] == model):
                history = record["history"]
                epochs = np.arange(1, len(history[metric]) + 1)
                (line,) = ax.plot(epochs, history[metric], label=f"fold {record['fold']} train")
                if f"val_{metric}" in history:
                    ax.plot(epochs, history[f"val_{metric}"], "--", color=line.get_color(), label="validation")
            ax.set_title(f"{model}: {metric}", fontsize="small")
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        axes[row, 0].legend(fontsize="x-small", ncol=2)
    figure.suptitle(f"Training curves per fold, {PROTOCOLS.get(protocol, protocol)} (seed {seed})")
    save_figure(figure, path)
    return figure


def plot_confusion_grid(records, path=None, class_names=CLASS_NAMES):
    """Test confusion matrices summed over folds: one row per protocol, one column per model."""
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    from medcnn.plots import save_figure

    protocols = list(dict.fromkeys(r["protocol"] for r in records))
    models = list(dict.fromkeys(r["model"] for r in records))
    figure = Figure(figsize=(3.0 * len(models), 2.9 * len(protocols)), layout="constrained")
    axes = figure.subplots(len(protocols), len(models), squeeze=False)
    for i, protocol in enumerate(protocols):
        for j, model in enumerate(models):
            chosen = [r for r in records if r["protocol"] == protocol and r["model"] == model]
            matrix = np.sum([np.asarray(r["test_confusion"]) for r in chosen], axis=0)
            ConfusionMatrixDisplay(matrix, display_labels=[n.upper() for n in class_names]).plot(
                ax=axes[i, j], colorbar=False
            )
            axes[i, j].set_title(f"{model}\n{protocol} ({len(chosen)} run(s))", fontsize="small")
    figure.suptitle("Test confusion matrices (rows: true class), summed over folds")
    save_figure(figure, path)
    return figure


def roc_inputs(records, labels, protocol):
    """(labels, {model: P(HEM)}) of a protocol's fold models on the test part, folds stacked one after another."""
    chosen = [r for r in records if r["protocol"] == protocol]
    truth, scores = {}, {}
    for record in chosen:
        index = np.asarray(record["test_indices"])
        p = np.asarray(record["test_probabilities"], dtype="float64").reshape(len(index), -1)[:, -1]
        truth.setdefault(record["model"], []).append(np.asarray(labels)[index])
        scores.setdefault(record["model"], []).append(p)
    stacked = {model: np.concatenate(parts) for model, parts in truth.items()}
    first = next(iter(stacked.values()))
    if any(not np.array_equal(first, other) for other in stacked.values()):
        raise ValueError(f"The {protocol} runs were tested on different cells; their ROC curves cannot share labels.")
    return first, {model: np.concatenate(parts) for model, parts in scores.items()}


def readme_section(payload, scale="cpu"):
    """The README's section on a committed run, generated from its `results.json` payload."""
    from medcnn.experiment import readme_findings, readme_table, scale_title
    from medcnn.report import run_summary

    run, described = payload["run"], run_summary(payload["run"])
    counts = run["data"]["counts"]
    minutes = sum(payload["time_s"][key] for key in ("features", "heads")) / 60
    intro = (
        f"{scale_title(run['scale'])} scale on {described['hardware']}, {sum(counts.values()):,} cells "
        f"({', '.join(f'{n} {name.upper()}' for name, n in counts.items())}) of {sum(run['patients'].values())} "
        f"patients; weights {described['weights']}; seeds {described['seeds']}. Frozen backbones with the thesis' "
        "head (dropout 0.25, sigmoid, Adam 0.01 with cosine restarts, batch 32) on features of the cells and their "
        "augmented copies; 3 folds, mean ± std over folds; test = whole held-out patients outside the folds. "
        f"Features and training took {minutes:.0f} min over {run['runs']} runs ({run['trained_now']} trained in the "
        f"last pass, {run['reused']} reused). Per-patient results, Table 5.1, ROC curves and confusion matrices: "
        f"[results/cnmc/{scale}/report.md](results/cnmc/{scale}/report.md)."
    )
    parts, notes = [intro], row_notes(weights=run.get("weights"))
    for table, headers in (
        ("Table 5.2", {"accuracy %": "test accuracy %", "F1 %": "test F1 %"}),
        ("Table 5.1", {"val acc": "val acc"}),
    ):
        for protocol, title in PROTOCOLS.items():
            shown = readme_table(payload, table_id(table, protocol), headers, row_notes=notes)
            parts += ["", f"{table}, {title}:", "", shown]
    parts += ["", *readme_findings(payload)]
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------------
# The plan: what a scale would train, without training it (`python -m medcnn plan cnmc --scale cpu`)

PLAN_LEAVES_OUT = "decoding the cells, the augmentation of the views (about 200 images/s), evaluation and export"


def plan_runs(run_settings, data_dir=None):
    """Per backbone: its features of every cell and view (again for each seed whose `feature_seed` draws new
    ones), then one head per seed, protocol and fold; last the final refit. As `experiment.estimate.PlannedRun`s,
    from the staged files' counts (nothing decoded).

    Sizes: the test part is `test_fraction` of the cells (whole patients, so about), a fold trains on
    (folds - 1) / folds of the rest, each cell with its `augmented_copies` views. The final refit's backbone is
    chosen while the notebook runs: it is costed with the slowest head of the scale's backbones.
    """
    from medcnn.experiment.estimate import PlannedRun, count_files, rate_for

    cells = sum(count_files(DATASET_ID, data_dir, class_order=CLASS_NAMES).values())
    views = run_settings["augmented_copies"] + 1
    rest = cells - round(run_settings["test_fraction"] * cells)
    folds = run_settings["folds"]
    fold_train = round(rest * (folds - 1) / folds) * views
    size, epochs = tuple(run_settings["image_size"]), run_settings["epochs_per_fold"]
    planned = []
    for name in run_settings["backbones"]:
        drawn = []
        for seed in run_settings["seeds"]:
            if feature_seed(run_settings, seed, name) not in drawn:
                drawn.append(feature_seed(run_settings, seed, name))
                planned.append(PlannedRun(f"{MODEL_NAMES[name]} features of every cell and view", seed,
                                          "feature extraction", name, 1, cells * views, size))  # fmt: skip
            planned += [
                PlannedRun(run_label(name, protocol, fold), seed, "frozen-feature head", f"cnmc_head:{name}", epochs,
                           fold_train)
                for protocol in run_settings["protocols"]
                for fold in range(1, folds + 1)
            ]  # fmt: skip
    heads = [f"cnmc_head:{name}" for name in run_settings["backbones"]]
    slowest = min(heads, key=lambda model: (rate_for(model, "frozen-feature head") or (float("inf"),))[0])
    planned.append(PlannedRun("final refit (backbone chosen by the run)", run_settings["seeds"][0],
                              "frozen-feature head", slowest, epochs, rest * views))  # fmt: skip
    return planned
