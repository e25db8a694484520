"""cnmc: ALL vs healthy lymphocytes (C-NMC 2019) with MobileNetV2 and three other backbones (RUET, 2023).

The published Tables 5.1 and 5.2 as data, the citation, and the settings per scale for the `cnmc` notebook.
The thesis' validation (~95 %) and test (~80 %) numbers differ the way image-level folds with one patient's
cells on both sides do; the notebook runs those folds as published and patient-grouped folds beside them.
"""

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
        "acc": "accuracy",
        "val acc": "val_accuracy",
        "loss": "loss",
        "val loss": "val_loss",
        "F1": "f1_weighted",
        "val F1": "val_f1_weighted",
    },
    "Table 5.2": {"accuracy %": "accuracy", "F1 %": "f1_weighted"},
}

_COMMON = {
    "dataset_id": DATASET_ID,
    "class_names": CLASS_NAMES,
    "backbones": BACKBONES,
    "weights": "imagenet",
    "rescale": 1.0 / 255.0,  # images scaled to [0, 1] before each backbone's own preprocessing
    # Rotation, flip, crop, zoom; the thesis: "with a probability greater than 70 %, the image is centrally
    # cropped by various fractions of its original size" (read here as: 70 % of the time; fractions not given).
    "augmentation": {
        "rotation": 0.5,
        "flip": "horizontal_and_vertical",
        "zoom": 0.1,
        "central_crop_probability": 0.7,
        "central_crop_fraction": (0.6, 1.0),
    },
    "optimizer": "adam",
    "learning_rate": 0.01,
    "schedule": "cosine_decay_restarts",
    "first_decay_epochs": 5,  # not stated; the thesis' schedule plot shows several restarts
    "dropout": 0.25,
    "output": "sigmoid",
    "loss": "binary_crossentropy",
    "metrics": ("accuracy", "f1_weighted", "precision", "recall", "roc_auc"),
    # "published": image-level stratified folds (one patient's cells on both sides);
    # "honest": stratified group folds on the patient id parsed from the file name.
    "protocols": ("published", "honest"),
    # The staged copy has no separate test part: a patient-grouped hold-out stands in for the 28 test patients.
    "test_fraction": 0.2,
}

SETTINGS = {
    "smoke": {
        **_COMMON,
        "image_size": (75, 75),  # InceptionV3's smallest input
        "max_images": 96,  # stratified by class, whole patients kept together
        "folds": 2,
        "epochs_per_fold": 1,
        "batch_size": 16,
        "honest_backbones": ("mobilenet_v2",),  # the patient-grouped rerun of the proposed model only
        "seeds": [0],
        "allow_random_weights": True,
    },
    "full": {
        **_COMMON,
        "image_size": (224, 224),
        "max_images": None,
        "folds": 3,
        "epochs_per_fold": 35,
        "batch_size": 32,
        "honest_backbones": BACKBONES,
        "seeds": [0],
        "allow_random_weights": False,
    },
}


def settings(scale="smoke", **overrides):
    """The study's settings for `scale` ("smoke" or "full"), with `overrides` (None values are ignored)."""
    return select_settings(SETTINGS, scale, overrides)


def paper_tables():
    """{"Table 5.1": DataFrame, "Table 5.2": DataFrame}, fresh copies each call."""
    return copy_tables({"Table 5.1": TABLE_5_1, "Table 5.2": TABLE_5_2})
