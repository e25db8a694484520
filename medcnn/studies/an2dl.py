"""an2dl: 8 classes of peripheral blood cells with transfer learning (AN2DL homework report, 2024).

The published Table 2, Table 3 and the fine-tuning F1 as data, the citation, and the settings per scale for the
`an2dl` notebook. The homework's own 96 x 96 set is not public; the notebook uses the PBC images it came from
(Acevedo et al. 2020, staged as `pbc`), resized to 96 x 96.
"""

from medcnn.report import paper_table
from medcnn.studies import copy_tables, select_settings

STUDY = "an2dl"
DATASET_ID = "pbc"
CITATION = {
    "title": "AN2DL - First Homework Report (team Madapenguins)",
    "authors": "Irene Caridi, Francesca Girolami, Kristina Tas, Mengshuang Tang",
    "year": 2024,
    "venue": "Artificial Neural Networks and Deep Learning (AN2DL) course homework report, November 22, 2024",
    "seed_file": "004_6d5ffa410396d4a9.txt",
    "evidence": [
        "AN2DL - First Homework Report Madapenguins",
        "November 22, 2024",
        "Table 2: Performance metrics of transfer learning models.",
    ],
}
# The staged PBC folders, in the loader's (sorted) order; the homework's labels 0..7 name the same cell types.
CLASS_NAMES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]
BACKBONES = ("resnet50", "xception", "inception_v3", "inception_resnet_v2")  # in Table 2's row order

TABLE_2 = paper_table(
    STUDY,
    "Table 2",
    "Performance metrics of transfer learning models (maximum validation values across all epochs)",
    ["accuracy %", "recall %", "F1 %"],
    [
        ("ResNet50", 87.32, 87.32, 87.33),
        ("Xception", 87.36, 87.36, 87.32),
        ("InceptionV3", 82.96, 82.96, 83.02),
        ("InceptionResNetV2", 86.53, 86.53, 86.59),
    ],
    index_name="model",
    percent=True,
    source="seed 004_6d5ffa410396d4a9.txt, section 3.3",
)
TABLE_3 = paper_table(
    STUDY,
    "Table 3",
    "Accuracy of the final model (ResNet50 after fine-tuning)",
    ["accuracy %"],
    [("train", 98.28), ("validation", 98.18), ("external test", 51.00)],
    index_name="set",
    percent=True,
    source="seed 004_6d5ffa410396d4a9.txt, section 5",
)
FINE_TUNING = paper_table(
    STUDY,
    "Fine-tuning F1",
    "F1 after unfreezing the last ResNet50 block (printed in the text, not in a table)",
    ["F1 %"],
    [("ResNet50, last block fine-tuned", 98.19)],
    index_name="model",
    percent=True,
    source="seed 004_6d5ffa410396d4a9.txt, section 3.4",
)
# Recall equals accuracy in Table 2, which is what weighted recall always gives; F1 is read as weighted too.
METRIC_KEYS = {
    "Table 2": {"accuracy %": "accuracy", "recall %": "recall_weighted", "F1 %": "f1_weighted"},
    "Table 3": {"accuracy %": "accuracy"},
    "Fine-tuning F1": {"F1 %": "f1_weighted"},
}

_COMMON = {
    "dataset_id": DATASET_ID,
    "class_names": CLASS_NAMES,
    "deduplicate": True,  # some images appear pasted on two backgrounds
    "outliers": {"method": "isolation_forest", "contamination": "auto"},
    "split_ratios": (0.8, 0.2),  # stratified train / validation
    "augmentation": {
        "rotation": 0.5,
        "flip": "horizontal_and_vertical",
        "zoom": 0.1,
        "brightness": 0.1,
        "gaussian_noise": 0.05,
    },  # no translation; strengths are not given in the report
    "backbones": BACKBONES,
    "weights": "imagenet",
    "head": "an2dl",  # GAP -> Dense 512 ReLU (L2) -> Dropout .5 -> Dense 256 ReLU (L2) -> Dropout .5 -> Dense 8 softmax
    "l2": 0.01,  # not stated; 0.01 is what Keras' kernel_regularizer="l2" means (medcnn.models.heads.an2dl_head)
    "optimizer": "lion",
    "learning_rate": 1e-4,
    "loss": "sparse_categorical_crossentropy",
    "reduce_lr": {"monitor": "val_accuracy", "factor": 0.5, "patience": 5},  # factor and patience not stated
    "early_stopping": {"monitor": "val_loss", "patience": 15, "restore_best_weights": True},
    "class_weight": "balanced",  # inversely proportional to the class counts
    "fine_tune": {"backbone": "resnet50", "blocks": 1, "learning_rate": 1e-5},
    # The homework's external test set is not public; the staged PBC hold-out is kept outside the repository.
    "external_test": None,
}

SETTINGS = {
    "smoke": {
        **_COMMON,
        "image_size": (75, 75),  # the smallest size every backbone accepts (InceptionV3: 75)
        "max_per_class": 16,
        "epochs": 1,
        "fine_tune_epochs": 1,
        "batch_size": 32,
        "seeds": [0],
        "allow_random_weights": True,
    },
    "full": {
        **_COMMON,
        "image_size": (96, 96),
        "max_per_class": None,
        "epochs": 30,
        "fine_tune_epochs": 70,
        "batch_size": 64,
        "seeds": [0],
        "allow_random_weights": False,
    },
}


def settings(scale="smoke", **overrides):
    """The study's settings for `scale` ("smoke" or "full"), with `overrides` (None values are ignored)."""
    return select_settings(SETTINGS, scale, overrides)


def paper_tables():
    """{"Table 2", "Table 3", "Fine-tuning F1"}: DataFrames, fresh copies each call."""
    return copy_tables({"Table 2": TABLE_2, "Table 3": TABLE_3, "Fine-tuning F1": FINE_TUNING})
