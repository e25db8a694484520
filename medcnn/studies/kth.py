"""kth: karyogram abnormality detection with VGG16 / InceptionV3 transfer learning and MC dropout (KTH, 2020).

The published Table 5.1 as data, the citation, and the settings per scale that the `kth` notebook uses.
The thesis' 146 karyograms (the private "alpha-dataset") are not public, so the notebook runs on a public
stand-in and says so; the stand-in is named in `SETTINGS[...]["dataset_id"]`.
"""

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
# Which `medcnn.evaluate.classification_metrics` key fills each column.
METRIC_KEYS = {"Table 5.1": {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "AUC": "roc_auc"}}

_COMMON = {
    "dataset_id": DATASET_ID,
    "class_names": CLASS_NAMES,
    "positive_class": "abnormal",
    "split_ratios": (0.64, 0.16, 0.20),  # train / val / test, random
    # "published": augment first, then split (as the thesis did); "honest": split first, augment train only.
    "protocols": ("published", "honest"),
    # Offline and order-preserving only: no flips or rotations, a karyogram's layout means something.
    "augmentation": {
        "brightness": (-0.25, 0.25),
        "noise_fraction": 0.05,
        "blur": True,
        "flips": False,
        "rotations": False,
    },
    "backbones": ("vgg16", "inception_v3"),
    "weights": "imagenet",
    "head": "kth",  # GAP -> BN -> Dropout -> Dense -> Dropout -> Dense, the same on both backbones
    "learning_rate": 1e-3,  # chosen by the thesis' Bayesian search (good range 7e-4 .. 3e-2)
    "batch_size": 16,  # chosen by the same search (batch >= 512 ran out of memory)
    "monitor": "val_auc",
    "fine_tune_blocks": {"vgg16": (1, 2), "inception_v3": "all"},  # last N blocks trainable, or the whole network
    "tuner": {"objective": "val_auc", "learning_rate": (1e-4, 1e-1), "batch_sizes": (8, 16, 32, 64)},
    "refer_below": 0.8,  # MC-dropout confidence under which the case goes to a human
}

SETTINGS = {
    "smoke": {
        **_COMMON,
        "image_size": (75, 75),  # InceptionV3's smallest input; 416 x 416 is far beyond 2 CPU cores
        "max_images": None,  # the stand-in's karyograms are few: take them all
        "augmented_counts": {"normal": 47, "abnormal": 40},  # the thesis' 376 / 316, divided by 8
        "epochs": 2,
        "fine_tune_epochs": 1,
        "tuner_trials": 2,
        "tuner_epochs": 1,
        "mc_passes": 20,
        "seeds": [0],
        "allow_random_weights": True,  # when no offline ImageNet file exists; the run then records it
    },
    "full": {
        **_COMMON,
        "image_size": (416, 416),
        "max_images": None,
        "augmented_counts": {"normal": 376, "abnormal": 316},
        "epochs": 30,  # not stated; the thesis' training curves span about 25-30 epochs
        "fine_tune_epochs": 30,
        "tuner_trials": 20,
        "tuner_epochs": 10,
        "mc_passes": 100,
        "seeds": [0, 1, 2],
        "allow_random_weights": False,
    },
}


def settings(scale="smoke", **overrides):
    """The study's settings for `scale` ("smoke" or "full"), with `overrides` (None values are ignored)."""
    return select_settings(SETTINGS, scale, overrides)


def paper_tables():
    """{"Table 5.1": DataFrame}, a fresh copy each call."""
    return copy_tables({"Table 5.1": TABLE_5_1})
