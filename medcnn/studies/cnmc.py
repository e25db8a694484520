"""cnmc: ALL vs healthy lymphocytes (C-NMC 2019) with MobileNetV2 and three other backbones (RUET, 2023).

The published Tables 5.1 and 5.2 as data, the citation, the settings per scale, the splits (a test part that holds
a healthy patient), the thesis' head and its runs on frozen features, and the sentences only this study prints. The
thesis' validation (~95 %) and test (~80 %) numbers differ the way cell-level folds with one patient's cells on both
sides do; the notebook runs those folds and patient-grouped ones, and tests both on whole held-out patients.
"""

import numpy as np

from medcnn.report.published import paper_table, tables_function
from medcnn.settings import settings_function

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
    STUDY, "Table 5.1", "Comparison of model accuracy, loss and F1-Score on train dataset (after 105 epochs)",
    ["acc", "loss", "val acc", "val loss", "F1", "val F1"],
    [
        ("InceptionV3", 0.9872, 0.0249, 0.9685, 0.1034, 0.9872, 0.9684),
        ("VGG19", 0.9521, 0.1017, 0.9449, 0.1445, 0.9623, 0.9449),
        ("ResNet101V2", 0.9873, 0.0349, 0.9575, 0.1579, 0.9881, 0.9569),
        ("MobileNetV2", 0.9557, 0.1136, 0.9519, 0.1316, 0.9558, 0.9516),
    ],
    index_name="model", source="seed 002_e9a35e93fa7fb751.txt, section 5.3",
)  # fmt: skip
TABLE_5_1.attrs["notes"] = "3-fold cross-validation, 35 epochs per fold; F1 is the weighted F1."
TABLE_5_2 = paper_table(
    STUDY, "Table 5.2", "The comparison of the Accuracy and F1-score on test dataset", ["accuracy %", "F1 %"],
    [("InceptionV3", 80.24, 79.96), ("VGG19", 77.40, 76.37), ("ResNet101V2", 77.18, 76.19),
     ("MobileNetV2", 82.75, 82.48)],
    index_name="model", percent=True, source="seed 002_e9a35e93fa7fb751.txt, section 5.4",
)  # fmt: skip
TABLE_5_2.attrs["notes"] = "Independent test part: 1,867 cells of 28 patients."
# The thesis' independent test part (section 5.2): 28 patients (13 ALL, 15 HEM), 1,867 cells, about 65 % of them ALL.
THESIS_TEST_CELLS = {"all": 1219, "hem": 648}
THESIS_ROW = "thesis' test part"
FULL_SET_HEM_PATIENTS = 26  # HEM patients of the C-NMC 2019 training part (the staged copy holds 2 of size)
METRIC_KEYS = {
    "Table 5.1": {"acc": "train_accuracy", "loss": "train_loss", "val acc": "val_accuracy", "val loss": "val_loss",
                  "F1": "train_weighted_f1", "val F1": "val_weighted_f1"},
    "Table 5.2": {"accuracy %": "test_accuracy_percent", "F1 %": "test_weighted_f1_percent"},
}  # fmt: skip
# The model names of the tables, per backbone (registry name).
MODEL_NAMES = dict(zip(BACKBONES, TABLE_5_1.index))
# "published": cell-level stratified folds, as the thesis' 3-fold cross-validation reads (one patient's cells on both
# sides); "grouped": stratified group folds on the patient id (every patient on one side of each fold).
PROTOCOLS = {"published": "cell-level stratified folds (as published)", "grouped": "patient-grouped stratified folds"}
FINAL = "final"  # the run group of the exported model: one backbone refit on every non-test cell
EXTRA_COLUMNS = {
    "test_balanced_accuracy": "balanced accuracy", "test_precision_all": "precision (ALL)",
    "test_recall_all": "recall (ALL)", "test_roc_auc": "ROC-AUC", "val_test_gap": "val - test balanced accuracy",
    "test_patient_majority": "patients right (majority vote)",
}  # fmt: skip
SUMMARY_METRICS = [
    *METRIC_KEYS["Table 5.1"].values(), *METRIC_KEYS["Table 5.2"].values(), "test_accuracy", "test_weighted_f1",
    *EXTRA_COLUMNS, "val_balanced_accuracy", "test_patient_accuracy", "parameters", "inference_images_per_s", "epochs",
]  # fmt: skip

_COMMON = {
    "dataset_id": DATASET_ID, "class_names": CLASS_NAMES, "backbones": BACKBONES, "weights": "imagenet",
    # Images scaled to [0, 1] as the thesis says, then each backbone's own ImageNet preprocessing inside the model
    # ([-1, 1], or BGR minus the ImageNet mean for VGG19), which is what its weights expect (the thesis is silent).
    "rescale": 1.0 / 255.0,
    # Rotation, flip, crop, zoom; the thesis: "with a probability greater than 70 %, the image is centrally
    # cropped by various fractions of its original size" (read as: 70 % of the time; fractions not given).
    "augmentation": {"rotation": 0.5, "flip": "horizontal_and_vertical", "zoom": 0.1,
                     "central_crop_probability": 0.7, "central_crop_fraction": (0.6, 1.0)},
    # The backbone stays frozen: its features are computed once per cell and augmented view (each seed draws its
    # own views, and its own weights for a backbone without ImageNet weights); the head (dropout 0.25, sigmoid) is
    # trained on them. Adam at 0.01 is a rate for a new head, one that would wreck pretrained weights.
    "backbone_trainable": False, "optimizer": "adam", "learning_rate": 0.01, "schedule": "cosine_decay_restarts",
    "first_decay_epochs": 5,  # not stated; the thesis' schedule plot shows several restarts
    "t_mul": 2.0,  # Keras' default: each cycle twice as long as the one before
    "dropout": 0.25,
    # "A smaller, balanced dataset" (not said how): each class gets the same total weight in the loss.
    "class_weight": "balanced",
    "output": "sigmoid", "loss": "binary_crossentropy", "batch_size": 32, "predict_batch_size": 64,
    "metrics": ("accuracy", "f1_weighted", "precision", "recall", "roc_auc"), "protocols": tuple(PROTOCOLS),
    # The thesis' test part (1,867 cells of 28 other patients, 65 % ALL) is not staged. Stand-in (`make_splits`):
    # whole ALL patients (about `test_fraction` of the cells) with small HEM patients, and one HEM patient of size
    # (H10 or H14, by seed) capped so that ALL makes up `test_all_share` of the test part.
    "test_fraction": 0.2, "test_all_share": 0.65,
}  # fmt: skip

SETTINGS = {
    "smoke": {
        **_COMMON,
        "image_size": (75, 75),  # InceptionV3's smallest input; 0.6x the pixels of 96 px for the four backbones
        # 3 epochs (cycles of 1 and 2): on a test part that holds an unseen HEM patient, heads of 3 epochs score
        # as well as those of 9 (balanced 0.61-0.71 vs 0.60-0.70 at 75 px, seed 0) in a third of the time.
        "augmented_copies": 1, "folds": 3, "epochs_per_fold": 3, "first_decay_epochs": 1, "seeds": [0],
        "allow_random_weights": True,
    },
    "full": {
        **_COMMON,
        "image_size": (224, 224),
        "augmented_copies": 14,  # 15 views of every cell; features of the whole set take ~1.3 GB per backbone
        "folds": 3, "epochs_per_fold": 35, "seeds": [0, 1, 2, 3, 4], "allow_random_weights": False,
    },
}  # fmt: skip
# The largest protocol that fits about 2 hours on 2 free CPU cores: the thesis' 224x224 inputs, folds, epochs and
# batch, all four backbones, both protocols, five seeds, each drawing its own views and random backbone weights
# (offline only MobileNetV2 has ImageNet weights). Features cost the backbone's whole time again per seed (images/s
# at 224 px on free cores: MobileNetV2 ~183, InceptionV3 ~65, ResNet101V2 ~22, VGG19 ~10): 5 views of every cell
# keep them near an hour for five seeds (`make plan-cnmc SCALE=cpu`); 15 views would take about three.
SETTINGS["cpu"] = {**SETTINGS["full"], "allow_random_weights": True, "augmented_copies": 4}


settings = settings_function(SETTINGS)
paper_tables = tables_function({"Table 5.1": TABLE_5_1, "Table 5.2": TABLE_5_2})


def table_id(table, protocol):
    """The results' name of a published table under one protocol, e.g. "Table 5.1 (grouped)"."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {list(PROTOCOLS)}. Received: protocol={protocol!r}")
    return f"{table} ({protocol})"


# ----------------------------------------------------------------------------------------------------------------
# Data and splits


def load_data(data_dir=None, image_size=(224, 224)):
    """The C-NMC cells resized as the saved model resizes a raw file: an ImageSet (float32 in [0, 255]) with patients
    in `groups`; bad files skipped and listed. A Kaggle download's `C-NMC_Leukemia/training_data/` is found inside."""
    from medcnn.data.loaders import load_cnmc
    from medcnn.data.paths import resolve_dataset

    root = resolve_dataset(DATASET_ID, data_dir, inner=("C-NMC_Leukemia/training_data", "training_data"))
    return load_cnmc(root, image_size=tuple(image_size), color_mode="rgb", skip_bad=True)


def make_splits(labels, groups, seed=0, folds=3, test_fraction=0.2, test_all_share=0.65):
    """The test part and both protocols' folds, as indices into the cells, drawn from `seed`
    (`data.splits.capped_group_split`): whole ALL patients (about `test_fraction` of the cells outside the sizeable
    HEM patients, "large": those of 30 cells or more; the staged copy: H10 and H14) with the small HEM patients drawn
    beside them, and one sizeable HEM patient (the `seed`-th in turn) capped so that ALL makes up about
    `test_all_share`; its other cells are "unused". The rest is split into `folds` stratified folds, "published" cell
    by cell, "grouped" patient by patient."""
    from medcnn.data.splits import capped_group_split

    return capped_group_split(labels, groups, seed, folds, test_fraction, test_all_share, large_class=1, min_items=30)


def held_out_mix(labels, groups, splits_by_seed, class_names=CLASS_NAMES):
    """Per seed: the test part's cells per class, ALL share and patients, the sizeable HEM patient held out and
    its cells left unused (`data.splits.capped_split_rows`); a last row gives the thesis' test part."""
    import pandas as pd

    from medcnn.data.splits import capped_split_rows

    rows = capped_split_rows(labels, groups, splits_by_seed, class_names, "patient")
    cells, share = THESIS_TEST_CELLS, round(THESIS_TEST_CELLS["all"] / sum(THESIS_TEST_CELLS.values()), 3)
    rows[THESIS_ROW] = {"ALL cells": cells["all"], "HEM cells": cells["hem"], "patients": 28, "ALL share": share}
    return pd.DataFrame(rows).T.fillna("")


# ----------------------------------------------------------------------------------------------------------------
# Frozen-backbone features (`medcnn.experiment.features`)


def views_of(options, seed):
    """The thesis' augmentation (the settings' "augmentation" `options`; `medcnn.augment.geometric_and_zoom`) drawing
    seed `seed`'s views, its random layers seeded `100 * seed` and up: no two seeds share a layer's seed."""
    from medcnn.augment import geometric_and_zoom, with_seed

    layer = geometric_and_zoom(
        rotation=options["rotation"], zoom=options["zoom"], central_zoom_fraction=options["central_crop_fraction"],
        central_zoom_probability=options["central_crop_probability"],
    )  # fmt: skip
    return with_seed(layer, 100 * seed)


def feature_spec(name, run_settings, seed):
    """The `experiment.FeatureSpec` of backbone `name` for the runs of `seed`: [0, 1] cells at the scale's size,
    ImageNet weights (else random ones drawn from `seed`, where allowed), `augmented_copies` views from `seed`."""
    import functools

    from medcnn.experiment import FeatureSpec

    return FeatureSpec(
        name, (*run_settings["image_size"], 3), seed=seed, weights=run_settings["weights"],
        allow_random=run_settings["allow_random_weights"], input_max=1.0, views=run_settings["augmented_copies"],
        augmentation=functools.partial(views_of, run_settings["augmentation"]),
        view_settings=run_settings["augmentation"], batch_size=run_settings["predict_batch_size"],
    )  # fmt: skip


def backbone_weights(run_settings):
    """{model: "imagenet" or "random"}: what each backbone loads here (random only where allowed)."""
    return {MODEL_NAMES[name]: feature_spec(name, run_settings, 0).weights_info().used
            for name in run_settings["backbones"]}  # fmt: skip


def seeding(run_settings, weights=None):
    """What each seed varies (`experiment.seed_policy`): the test part (which HEM patient, which of its cells) and
    folds, the head, batch order, dropout, views and random backbone weights (`weights`: `backbone_weights`)."""
    from medcnn.experiment import seed_policy

    views = ["augmented views"] if run_settings["augmented_copies"] else []
    weights = weights if weights is not None else backbone_weights(run_settings)
    return seed_policy(["split", "initialisation", "data order", "dropout masks", *views], None, weights)


def feature_info(images, run_settings, seeds, cache, data_fingerprint):
    """{backbone: its first seed's `Features.info` with the model's name, the whole model's parameters (backbone and
    head) and `feature_s`, the seconds its features took over all `seeds`} (read back from the features cache)."""
    from medcnn.experiment.features import extracted_info

    infos = {}
    for name in run_settings["backbones"]:
        specs = [feature_spec(name, run_settings, seed) for seed in seeds]
        info = extracted_info(specs, images, cache, data_fingerprint)
        infos[name] = {**info, "model": MODEL_NAMES[name], "parameters": info["parameters"] + info["feature_size"] + 1}
    return infos


# ----------------------------------------------------------------------------------------------------------------
# The head, its runs, the exported model


def build_head(feature_size, mean, variance, dropout=0.25, seed=None):
    """The thesis' head on frozen features (`experiment.standardised_head`, named "head"): pool -> standardise with
    the training side's fixed `mean` and `variance` -> Dropout -> Dense(1, sigmoid); any feature map size."""
    from keras import layers

    from medcnn.experiment import standardised_head

    def top(x):
        x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
        return layers.Dense(1, activation="sigmoid", dtype="float32", name="probabilities")(x)

    return standardised_head((1, 1, int(feature_size)), mean, variance, top)


def build_model(inputs, train_rows, run_settings, steps_per_epoch):
    """The head for `train_rows` of `inputs` (a run's own inputs, or an (x, labels) pair), compiled: Adam with
    cosine decay and restarts, binary cross-entropy."""
    from medcnn.models.features import feature_stats
    from medcnn.train import compile_model, cosine_restarts

    x, _ = inputs() if callable(inputs) else inputs
    mean, variance = feature_stats(x[np.asarray(train_rows)])
    head = build_head(len(mean), mean, variance, run_settings["dropout"])
    first = run_settings["first_decay_epochs"] * steps_per_epoch
    schedule = cosine_restarts(run_settings["learning_rate"], first, t_mul=run_settings["t_mul"])
    return compile_model(head, run_settings["optimizer"], schedule, loss="binary_crossentropy", metrics=["accuracy"])


def run_label(name, protocol, fold=None):
    """A run's label: "MobileNetV2 | grouped | fold 2", or "MobileNetV2 | final" for the refit."""
    return f"{MODEL_NAMES.get(name, name)} | {protocol}" + (f" | fold {fold}" if fold is not None else "")


def make_run(name, protocol, fold, cells, inputs, labels, run_settings, seed, data_fingerprint):
    """The run of backbone `name` on its own `inputs` (`experiment.feature_inputs`): trained on the training
    cells (`cells["train"]`) and their views, validated and tested (where given) on cells only, never views."""
    import functools
    import math

    from medcnn.data.labels import class_weights
    from medcnn.evaluate import binary_side_metrics
    from medcnn.experiment import Run, view_rows

    train = view_rows(cells["train"], len(labels), run_settings["augmented_copies"])
    steps = math.ceil(len(train) / run_settings["batch_size"])
    return Run(
        label=run_label(name, protocol, fold), seed=seed, epochs=run_settings["epochs_per_fold"],
        split={"train": train, **{side: np.asarray(index) for side, index in cells.items() if side != "train"}},
        batch_size=run_settings["batch_size"], group=protocol,
        settings={"backbone": name, "model": MODEL_NAMES.get(name, name), "protocol": protocol, "fold": fold},
        build_model=lambda: build_model(inputs, train, run_settings, steps), spec=run_settings,
        data={"files": data_fingerprint}, one_hot=False, inputs=inputs,
        class_weight=class_weights(np.asarray(labels)[cells["train"]], run_settings["class_weight"], num_classes=2),
        extra_metrics=functools.partial(binary_side_metrics, positive=0, positive_name="all"),
        predict_batch_size=run_settings["predict_batch_size"], evaluate_train=True,
    )  # fmt: skip


def make_runs(images, labels, splits_by_seed, run_settings, cache, data_fingerprint, log=print):
    """Every fold run, seed by seed and backbone by backbone (runs sharing features follow one another), each on
    its backbone's features of its seed (`experiment.feature_inputs`, computed when its first run trains)."""
    from medcnn.experiment import feature_inputs

    runs = []
    for seed, splits in splits_by_seed.items():
        for name in run_settings["backbones"]:
            spec = feature_spec(name, run_settings, seed)
            inputs = feature_inputs(spec, images, labels, cache, data_fingerprint, log=log)
            runs += [
                make_run(name, protocol, fold, {"train": train, "val": val, "test": splits["test"]}, inputs, labels,
                         run_settings, seed, data_fingerprint)
                for protocol in run_settings["protocols"]
                for fold, (train, val) in enumerate(splits["folds"][protocol], start=1)
            ]  # fmt: skip
    return runs


def final_run(name, images, labels, splits, run_settings, seed, cache, data_fingerprint, log=print):
    """The refit of backbone `name` on every non-test cell and its views (no validation side), tested once."""
    from medcnn.experiment import feature_inputs

    inputs = feature_inputs(feature_spec(name, run_settings, seed), images, labels, cache, data_fingerprint, log=log)
    cells = {"train": splits["rest"], "test": splits["test"]}
    return make_run(name, FINAL, None, cells, inputs, labels, run_settings, seed, data_fingerprint)


def export(run, run_settings, cache, path, log=print):
    """Save `run`'s head on its backbone (the weights its features came from) as one `model.keras` that classifies
    raw cell images (any size, RGB), through `experiment.export_head` (the run's recorded head, or trained again)."""
    from medcnn.experiment import export_head

    spec = feature_spec(run.settings["backbone"], run_settings, run.seed)
    return export_head(run, spec, CLASS_NAMES, cache, path, log=log, name=f"{run.settings['backbone']}_cnmc")


# ----------------------------------------------------------------------------------------------------------------
# What the records show


def complete(records, feature_info, labels, groups):
    """Add what the tables need to every record, in place: model, protocol and fold, parameters, inference
    images/s, test metrics in percent, the validation-to-test gap and the per-patient numbers."""
    from medcnn.experiment.groups import group_results

    for record in records:
        config = record["settings"]
        info = feature_info[config["backbone"]]
        record.update({"model": config["model"], "protocol": config["protocol"], "fold": config["fold"]})
        record.update({"parameters": info["parameters"], "inference_images_per_s": info["inference_images_per_s"]})
        for key in ("test_accuracy", "test_weighted_f1"):
            record[f"{key}_percent"] = 100.0 * record[key]
        if "val_accuracy" in record:
            record["val_test_gap"] = record["val_balanced_accuracy"] - record["test_balanced_accuracy"]
        patients = group_results(record, labels, groups, CLASS_NAMES)
        record["test_patient_majority"] = float(patients["majority right"].mean())
        record["test_patient_accuracy"] = float(patients["accuracy"].mean())
    return records


def runs_of(records, protocol, model=None):  # the records of one protocol (and model)
    return [r for r in records if r.get("protocol", r.get("group")) == protocol and model in (None, r.get("model"))]


def summaries(records, protocols=tuple(PROTOCOLS)):
    """{protocol: mean ± std over folds (and seeds) per model}, in the tables' row order."""
    from medcnn.experiment import summarise

    made = {protocol: summarise(runs_of(records, protocol), SUMMARY_METRICS, by="model") for protocol in protocols}
    return {protocol: s.loc[[m for m in TABLE_5_1.index if m in s.index]] for protocol, s in made.items()}


def row_notes(feature_info=None, weights=None):
    """{model: "random weights"} for the backbones whose features came from random weights: from the features'
    `info` ({backbone: {"model", "weights"}}, what the run loaded) or else from {model: weights used}."""
    from medcnn.experiment.truth import weights_notes

    weights = {name: entry["weights"] for name, entry in feature_info.items()} if feature_info else weights
    return weights_notes({MODEL_NAMES.get(name, name): used for name, used in (weights or {}).items()})


ALWAYS_ALL = "reference: always ALL (majority class)"


def comparisons(by_protocol, info, feature_info=None, records=None):
    """{"Table 5.1 (published)": compare(...), ...}: each published table beside each protocol's summary (balanced
    accuracy and ROC-AUC beside accuracy, reference rows of the same cells, random-weight rows noted). Where ALL is
    the larger class of every test part of `records`, Table 5.2's majority-class row is labelled `ALWAYS_ALL`."""
    from medcnn.experiment import compare
    from medcnn.experiment.truth import REFERENCE_ROWS

    notes = row_notes(feature_info, info.get("weights"))
    always_all = bool(records) and all(np.argmax(np.sum(r["test_confusion"], axis=1)) == 0 for r in records)
    tables = {}
    for name, paper in paper_tables().items():
        for protocol, summary in by_protocol.items():
            table = compare(paper, summary, info, METRIC_KEYS[name], row_notes=notes)
            if always_all and name == "Table 5.2":
                table["row"] = table["row"].replace(REFERENCE_ROWS["majority class"], ALWAYS_ALL)
            tables[table_id(name, protocol)] = table
    return tables


def choose_backbone(by_protocol, metric="val_balanced_accuracy"):
    """The backbone with the best mean patient-grouped validation `metric` (ties: the tables' order)."""
    model = by_protocol["grouped"][f"{metric}_mean"].idxmax()
    return next(name for name, shown in MODEL_NAMES.items() if shown == model)


def findings(by_protocol, records, feature_info, splits_by_seed, labels, groups, final_record):
    """The sentences only this study prints, from this run's numbers (`splits_by_seed`: the seeds' `make_splits`)."""
    from medcnn.experiment import mean_std, truth
    from medcnn.experiment.groups import group_results

    labels, groups = np.asarray(labels), np.asarray(groups)
    verdicts = {m: truth.compare_records(runs_of(records, "published", m), runs_of(records, "grouped", m),
                                         "val_accuracy", "cell-level folds", "patient-grouped folds",
                                         "validation accuracy") for m in by_protocol["published"].index}  # fmt: skip
    cells = {p: {m: mean_std(r["val_accuracy_mean"], r["val_accuracy_std"]) for m, r in s.iterrows()}
             for p, s in by_protocol.items()}  # fmt: skip
    parts = ", ".join(f"{m} {cells['published'][m]} vs {cells['grouped'][m]} ({v.difference:+.3f}, standard error "
                      f"{v.standard_error:.3f}: {v.verdict})" for m, v in verdicts.items())  # fmt: skip
    above = [model for model, v in verdicts.items() if v.verdict == "above"]
    sentences = [
        f"Validation accuracy over the same cells (each validated once per protocol), cell-level folds as published "
        f"vs patient-grouped folds (fold runs averaged per seed, then paired by seed): {parts}; seeing other cells "
        f"of the same patient in training lifts validation accuracy beyond two standard errors for {len(above)} of "
        f"{len(verdicts)} models" + (f" ({', '.join(above)})." if above else ".")
    ]
    mix = held_out_mix(labels, groups, splits_by_seed)
    seeds, sizeable = mix.drop(index=THESIS_ROW), next(iter(splits_by_seed.values()))["large"]
    listed = "; ".join(f"{name} {r['ALL cells']} ALL + {r['HEM cells']} HEM" + (f" ({r['HEM patient held out']})"
                       if r["HEM patient held out"] else "") for name, r in seeds.iterrows())  # fmt: skip
    sentences.append(
        f"Test parts ({listed}): ALL makes up {seeds['ALL share'].astype(float).mean():.3f} of them on average, "
        f"{mix.loc[THESIS_ROW, 'ALL share']:.3f} of the thesis' test part. Only {len(sizeable)} HEM patients of "
        f"size are staged ({', '.join(sizeable)}): a test part's HEM cells come mostly from one of them and the "
        f"folds learn HEM mostly from the other; the full training set ({FULL_SET_HEM_PATIENTS} HEM patients) "
        "removes this limit."
    )
    gaps = {protocol: by_protocol[protocol]["val_test_gap_mean"].mean() for protocol in PROTOCOLS}
    gap = truth.compare_records(runs_of(records, "published"), runs_of(records, "grouped"), "val_test_gap",
                                "after cell-level folds", "after patient-grouped folds",
                                "validation minus test balanced accuracy")  # fmt: skip
    sentences.append(
        f"Validation minus test balanced accuracy, mean over models: {gaps['published']:+.3f} after cell-level "
        f"folds, {gaps['grouped']:+.3f} after patient-grouped folds ({gap.verdict}: {gap.difference:+.3f}, "
        f"standard error {gap.standard_error:.3f} over seeds); the thesis' validation minus test accuracy: "
        f"{(TABLE_5_1['val acc'] - TABLE_5_2['accuracy %'] / 100).mean():+.3f} on average."
    )
    seed, splits = next(iter(splits_by_seed.items()))
    both = {p: [len(set(groups[t]) & set(groups[v])) for t, v in folds] for p, folds in splits["folds"].items()}
    sentences.append(
        f"Patients with cells on both sides of a fold (seed {seed}), of the {len(set(groups[splits['rest']]))} in "
        "the folds: " + "; ".join(f"{p} {', '.join(map(str, counts))}" for p, counts in both.items()) + "."
    )
    sentences += thesis_statements(records)
    random = [info["model"] for info in feature_info.values() if info["weights"] != "imagenet"]
    if random:
        sentences.append(f"{', '.join(random)} ran with random weights (no ImageNet file offline), drawn anew by "
                         "every seed: their rows measure a frozen random network, not the pretrained one the thesis "
                         "used.")  # fmt: skip
    votes = group_results(final_record, labels, groups, CLASS_NAMES).groupby("class")["majority right"]
    votes = votes.agg(["sum", "size"])
    votes = ", ".join(f"{int(r['sum'])} of {int(r['size'])} {name.upper()}" for name, r in votes.iterrows())
    always = truth.references([final_record]).loc["majority class", "accuracy"]
    sentences.append(
        f"The exported model ({final_record['model']}, chosen by patient-grouped validation, refit on every "
        f"non-test cell, one run) scores test accuracy {final_record['test_accuracy']:.3f} (always ALL: "
        f"{always:.3f}), balanced {final_record['test_balanced_accuracy']:.3f} (always ALL: 0.500), ROC-AUC "
        f"{final_record['test_roc_auc']:.3f}; the majority vote of a patient's cells is right for {votes} test "
        "patients."
    )
    return sentences


def thesis_statements(records, protocol="grouped"):
    """Each model against the thesis' Table 5.2 on balanced accuracy (`truth.reaches_paper` over seeds, folds
    averaged per seed, against the 50 % of always predicting ALL): the thesis printed plain accuracy on a test
    part of about 65 % ALL, where plain accuracy rewards calling cells ALL. Then the models ranked by test ROC-AUC,
    the best against the runner-up (`truth.compare_records`)."""
    from medcnn.experiment import truth

    sentences, learned = [], {}
    for model in TABLE_5_2.index:
        runs = runs_of(records, protocol, model)
        if runs and truth.all_collapsed(runs):
            sentences.append(f"{model} ({PROTOCOLS[protocol]}): every one of its {len(runs)} runs collapsed to one "
                             "class; no number of it stands beside the thesis'.")  # fmt: skip
        elif runs:
            learned[model] = runs
            per_seed, _ = truth.per_seed(*truth.row_values(runs, "test_balanced_accuracy"))
            verdict = truth.reaches_paper(
                100.0 * per_seed,
                TABLE_5_2.loc[model, "accuracy %"],
                50.0,
                f"{model} ({PROTOCOLS[protocol]})",
                "test balanced accuracy % per seed",
            )
            sentences.append(f"{verdict} (The thesis' number is plain accuracy.)")  # fmt: skip
    if len(learned) > 1:
        means = {model: np.nanmean(truth.row_values(runs, "test_roc_auc")[0]) for model, runs in learned.items()}
        first, second = sorted(means, key=means.get, reverse=True)[:2]
        verdict = truth.compare_records(learned[first], learned[second], "test_roc_auc", first, second,
                                        "test ROC-AUC")  # fmt: skip
        sentences.append(f"By test ROC-AUC after {PROTOCOLS[protocol]}, the highest mean is {first}'s: {verdict} The "
                         f"thesis ranks {TABLE_5_2['accuracy %'].idxmax()} first by plain accuracy.")  # fmt: skip
    return sentences


# ----------------------------------------------------------------------------------------------------------------
# Figures and the README


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
        "head on features of the cells and their augmented views; 3 folds, mean ± std over folds and seeds; test = "
        "whole held-out patients, one HEM patient of size among them, capped to the thesis' mix (~65 % ALL). "
        f"Features and training took {minutes:.0f} min over {run['runs']} runs ({run['trained_now']} trained in the "
        f"last pass, {run['reused']} reused). Per-patient results, Table 5.1, ROC curves and confusion matrices: "
        f"[results/cnmc/{scale}/report.md](results/cnmc/{scale}/report.md)."
    )
    parts, notes = [intro], row_notes(weights=run.get("weights"))
    for table, headers in (("Table 5.2", {"accuracy %": "test accuracy %", "F1 %": "test F1 %"}),
                           ("Table 5.1", {"val acc": "val acc"})):  # fmt: skip
        for protocol, title in PROTOCOLS.items():
            shown = readme_table(payload, table_id(table, protocol), headers, row_notes=notes)
            parts += ["", f"{table}, {title}:", "", shown]
    return "\n".join([*parts, "", *readme_findings(payload)])


# ----------------------------------------------------------------------------------------------------------------
# The plan: what a scale would train, without training it (`python -m medcnn plan cnmc --scale cpu`)

PLAN_LEAVES_OUT = "decoding the cells, evaluation, export, and drawing the views (inside feature extraction)"


def plan_runs(run_settings, data_dir=None):
    """Per seed and backbone: its features of every cell and view (once where a seed draws nothing: ImageNet
    weights, no views), then a head per protocol and fold; last the final refit, costed with the slowest head.
    `experiment.estimate.PlannedRun`s from the staged files' counts (the test part about `test_fraction` of them)."""
    from medcnn.experiment.estimate import PlannedRun, count_files, rate_for

    cells = sum(count_files(DATASET_ID, data_dir, class_order=CLASS_NAMES).values())
    views = run_settings["augmented_copies"] + 1
    rest = cells - round(run_settings["test_fraction"] * cells)
    folds, size, epochs = run_settings["folds"], tuple(run_settings["image_size"]), run_settings["epochs_per_fold"]
    fold_train = round(rest * (folds - 1) / folds) * views
    planned, drawn = [], {name: feature_spec(name, run_settings, 0).draws() for name in run_settings["backbones"]}
    for index, seed in enumerate(run_settings["seeds"]):
        for name in run_settings["backbones"]:
            if drawn[name] or index == 0:
                planned.append(PlannedRun(f"{MODEL_NAMES[name]} features of every cell and view", seed,
                                          "feature extraction", name, 1, cells * views, size))  # fmt: skip
            planned += [PlannedRun(run_label(name, protocol, fold), seed, "frozen-feature head", f"cnmc_head:{name}",
                                   epochs, fold_train)
                        for protocol in run_settings["protocols"] for fold in range(1, folds + 1)]  # fmt: skip
    heads = [f"cnmc_head:{name}" for name in run_settings["backbones"]]
    slowest = min(heads, key=lambda model: (rate_for(model, "frozen-feature head") or (float("inf"),))[0])
    planned.append(PlannedRun("final refit (backbone chosen by the run)", run_settings["seeds"][0],
                              "frozen-feature head", slowest, epochs, rest * views))  # fmt: skip
    return planned
