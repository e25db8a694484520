"""chromosome: which CNN building blocks help classify single chromosomes (IJIEMR, 2022).

The paper lists techniques but prints no numbers. Its "table" here is the ablation the `chromosome` notebook
fills in: one small baseline CNN, then each block added alone on the same data and budget, then tuning,
transfer learning, an ensemble and CNN features + SVM. Every cell of the published side is NaN.
"""

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
}
# The staged folders 1..22, X, Y in karyotype order (the loader may sort them as strings: map by name).
CLASS_NAMES = [str(number) for number in range(1, 23)] + ["X", "Y"]

# (row label, block switched in): the block names are keys of `medcnn.models.blocks.ABLATION_BLOCKS`, which
# `baseline_cnn(..., block=name)` takes. METHOD_ROWS are whole-method comparisons.
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
METHOD_ROWS = [
    "baseline CNN, tuned hyper-parameters",
    "transfer learning (MobileNetV2)",
    "ensemble of the block variants",
    "CNN features + SVM",
]
ABLATION_COLUMNS = ["accuracy", "macro F1", "parameters", "images/s"]
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
    "Ablation": {"accuracy": "accuracy", "macro F1": "f1_macro", "parameters": "parameters", "images/s": "images_per_s"}
}

_COMMON = {
    "dataset_id": DATASET_ID,
    "class_names": CLASS_NAMES,
    "color_mode": "grayscale",
    "keep_aspect": True,  # crops are 16-56 px wide and 20-147 px tall: pad to square before resizing
    # Grouped by case (the first id in the file name), so homologues of one case stay on one side.
    "split_ratios": (0.7, 0.15, 0.15),
    "group_by": "case",
    "blocks": tuple(block for _, block in BLOCK_ROWS if block),
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "early_stopping": {"monitor": "val_loss", "patience": 5, "restore_best_weights": True},
    "tuner": {
        "objective": "val_accuracy",
        "learning_rate": (1e-4, 1e-2),
        "batch_sizes": (16, 32, 64),
        "dropout": (0.0, 0.5),
        "optimizers": ("adam", "sgd", "rmsprop"),
    },
    "transfer_backbone": "mobilenet_v2",
    "weights": "imagenet",
    "svm": {"kernel": "rbf", "C": 10.0},
}

SETTINGS = {
    "smoke": {
        **_COMMON,
        "image_size": (32, 32),
        "max_per_class": 12,
        "epochs": 2,
        "batch_size": 32,
        "tuner_trials": 2,
        "ensemble_size": 2,
        "seeds": [0],
        "allow_random_weights": True,
    },
    "full": {
        **_COMMON,
        "image_size": (96, 96),
        "max_per_class": None,
        "epochs": 40,
        "batch_size": 32,
        "tuner_trials": 20,
        "ensemble_size": 5,
        "seeds": [0, 1, 2],
        "allow_random_weights": False,
    },
}


def settings(scale="smoke", **overrides):
    """The study's settings for `scale` ("smoke" or "full"), with `overrides` (None values are ignored)."""
    return select_settings(SETTINGS, scale, overrides)


def paper_tables():
    """{"Ablation": DataFrame}: the intended rows and columns, every published value NaN."""
    return copy_tables({"Ablation": ABLATION})
