"""an2dl: 8 classes of peripheral blood cells with transfer learning (AN2DL homework report, 2024).

The published Table 2, Table 3 and the fine-tuning F1 as data, the citation, the settings per scale, the rows
(four study backbones with the study's head, MobileNetV2, fine-tuning, three custom CNNs), the data protocol
(PBC drawn in the homework's class proportions, duplicates and isolation-forest outliers removed, an untouched test
split beside the study's 80/20 split) and the sentences only this study prints. The homework's own 96 x 96 set is
not public; the notebook uses the PBC images it came from (Acevedo et al. 2020, staged as `pbc`), resized to
96 x 96 by the saved model's own preprocessing, or the homework's npz when a user has it.

Frozen-backbone rows train the head on features computed once (exactly the published first stage, whose backbone
is frozen and whose augmentation is offline); fine-tuning trains the last block and the head on the features of
the blocks before it. Runs, caching, summaries, export and outputs come from `medcnn.experiment`.
"""

from dataclasses import asdict, dataclass, field

import numpy as np

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
# The published numbers are maxima over epochs on the validation set (Table 2's caption). Recall equals accuracy in
# Table 2, which is what weighted recall always gives (so we read the study's recall and F1 as weighted).
METRIC_KEYS = {
    "Table 2": {"accuracy %": "val_accuracy_max", "recall %": "val_recall_max", "F1 %": "val_f1_max"},
    "Table 3": {"accuracy %": "accuracy"},
    "Fine-tuning F1": {"F1 %": "val_f1_max"},
}

# The homework's data (section 2.1): 13,759 images; after duplicates and outliers were removed the largest class
# (6, neutrophil) held 2,280 images and the smallest (0, basophil) 817. The report prints no other class count.
HOMEWORK_IMAGES = 13759
HOMEWORK_PRINTED = {"neutrophil": 2280, "basophil": 817}
# PBC's published per-class counts (Acevedo et al. 2020; ../shared/data/pbc/PROVENANCE.md). Scaled so that the
# neutrophils are 2,280, they give 834 basophils against the 817 printed: the homework's proportions follow PBC's.
PBC_COUNTS = {
    "basophil": 1218,
    "eosinophil": 3117,
    "erythroblast": 1551,
    "ig": 2895,
    "lymphocyte": 1214,
    "monocyte": 1420,
    "neutrophil": 3330,
    "platelet": 2348,
}
# The published number on the same images: MedMNIST v2's BloodMNIST is PBC centre-cropped and resized to 28x28,
# with an official 70 / 10 / 20 split.
ANCHOR = {
    "model": "ResNet-18 (28), MedMNIST v2 benchmark",
    "accuracy": 0.958,
    "auc": 0.998,
    "source": "Yang et al., MedMNIST v2, Scientific Data 10:41 (2023), doi:10.1038/s41597-022-01721-8, BloodMNIST",
    "protocol": (
        "all 17,092 PBC images centre-cropped and resized to 28x28, the official split of 11,959 training, 1,712 "
        "validation and 3,421 test images, the model chosen on validation and reported on test"
    ),
}

FINE_TUNED = FINE_TUNING.index[0]  # "ResNet50, last block fine-tuned"
TRANSFER = "MobileNetV2, ImageNet weights (not in the study)"
TRANSFER_FINE_TUNED = "MobileNetV2, last block fine-tuned (not in the study)"
K = len(CLASS_NAMES)
BACKBONE_ROWS = dict(zip(BACKBONES, TABLE_2.index))  # registry name -> Table 2 row
CUSTOM_ROWS = {
    "plain": "custom CNN: 5 conv blocks",
    "residual": "custom CNN: 3 residual blocks (32 to 128 filters)",
    "inception": "custom CNN: 4 inception blocks",
}
SUMMARY_METRICS = [
    "val_accuracy_max",
    "val_recall_max",
    "val_f1_max",
    "val_accuracy",
    "val_weighted_f1",
    "test_accuracy",
    "test_balanced_accuracy",
    "test_weighted_f1",
    "test_macro_f1",
    "test_roc_auc",
    "train_accuracy",
    "epochs",
    "best_epoch",
    "train_images_per_s",
]

_COMMON = {
    "dataset_id": DATASET_ID,
    "class_names": CLASS_NAMES,
    "image_size": (96, 96),  # the homework's images; the saved model resizes raw PBC files (360x363) to it
    "deduplicate": True,  # exact copies, and cells pasted on two backgrounds (compared on the central half)
    "near_duplicates": {"threshold": 0.97, "center_fraction": 0.5},
    "outliers": {"method": "isolation_forest", "contamination": "auto"},  # the report gives no share
    # Honest protocol: a test split held out before any cleaning or choice; then the study's 80/20 split.
    "test_fraction": 0.2,
    "split_ratios": (0.8, 0.2),  # stratified train / validation, as published
    "augmentation": {"rotation": 0.5, "zoom": 0.1, "brightness": 0.1, "noise_stddev": 0.02},  # flips too; no shift
    "backbones": BACKBONES,
    "transfer_backbone": "mobilenet_v2",
    "weights": "imagenet",
    # Each seed draws its own offline augmented copies and, for a backbone whose ImageNet weights are unavailable,
    # its own random weights (`prepare_inputs`: features per backbone and seed, all kept in memory); ImageNet
    # weights are the same for every seed. `seeding` records this in results.json.
    # Ours: a Normalization layer (training-side mean and variance) between the pooling and the study's head. Random
    # backbones give features of very different scales (InceptionV3's are about 1e-4), which the study's head
    # cannot learn from; full scale (ImageNet weights) uses the head as published.
    "standardise_features": True,
    "l2": 0.01,  # not stated; 0.01 is what Keras' kernel_regularizer="l2" means (medcnn.models.heads.an2dl_head)
    "optimizer": "lion",
    "learning_rate": 1e-4,
    "loss": "sparse_categorical_crossentropy",
    "batch_size": 64,
    "predict_batch_size": 64,
    "reduce_lr": {"monitor": "val_accuracy", "factor": 0.5, "patience": 5, "min_lr": 1e-7},  # factor, patience: ours
    "early_stopping": {"monitor": "val_loss", "patience": 15, "restore_best_weights": True},
    "class_weight": "balanced",  # inversely proportional to the class counts of the training side
    "fine_tune": {"backbones": ("resnet50", "mobilenet_v2"), "blocks": 1, "learning_rate": 1e-5},
}

SETTINGS = {
    "smoke": {
        **_COMMON,
        "largest_class": 100,  # neutrophils drawn, the others in the homework's proportions (120: 183 s in all)
        "augment_copies": 1,  # offline augmented copies of every image (the study built an augmented set)
        "epochs": 10,
        "fine_tune_epochs": 2,  # ResNet50's last block trains at ~32 images/s here: the smoke run's longest row
        "custom_epochs": 2,
        "seeds": [0],
        "group_seeds": {},  # {group: [seeds]} overrides `seeds` for a group
        "allow_random_weights": True,
    },
    "full": {
        **_COMMON,
        "largest_class": None,  # every image the proportions allow (the homework npz: every image)
        "augment_copies": 3,
        "standardise_features": False,
        "epochs": 30,
        "fine_tune_epochs": 70,
        "custom_epochs": 30,
        "seeds": [0, 1, 2],
        "group_seeds": {},
        "allow_random_weights": False,
    },
}
# The largest protocol that fits about 2 hours on 2 CPU cores: the study's epochs (30, fine-tuning 70), batch size,
# callbacks and rows on every staged image the homework's proportions allow (1,661 of the 2,592 staged), two
# augmented copies per image, three seeds (the custom CNNs, reference rows, one); the four study backbones with
# random weights where their ImageNet files are not available (recorded as such). Estimated from rates measured on
# this CPU (scaled to ResNet50-96 inference at 197 images/s on 2 free cores): about 3 min of features, 4 min of
# heads, up to 18 min per seed for ResNet50's 70 fine-tuning epochs (less when early stopping ends them), 1 min
# per seed for MobileNetV2's, 14 min for the custom CNNs: 60 to 80 minutes. Measured (results/an2dl/cpu): 2 h 22 min
# elapsed, nearly all of it training, mostly ResNet50's fine-tuning (28-38 min per seed at about 35 s per epoch: its
# small-batch steps keep one core busy), partly beside other jobs.
SETTINGS["cpu"] = {
    **SETTINGS["full"],
    "augment_copies": 2,
    "standardise_features": True,
    "group_seeds": {"custom": [0]},
    "allow_random_weights": True,
}


def settings(scale="smoke", **overrides):
    """The study's settings for `scale` ("smoke", "cpu" or "full"), with the non-None `overrides` applied."""
    return select_settings(SETTINGS, scale, overrides)


def paper_tables():
    """{"Table 2", "Table 3", "Fine-tuning F1"}: DataFrames, fresh copies each call."""
    return copy_tables({"Table 2": TABLE_2, "Table 3": TABLE_3, "Fine-tuning F1": FINE_TUNING})


# ----------------------------------------------------------------------------------------------------------------
# Data: PBC drawn in the homework's class proportions, or the homework's own npz


def homework_counts():
    """{class: images} of the homework's cleaned set: the two counts the report prints, the other six PBC's
    published counts scaled to its largest class (2,280 neutrophils)."""
    scale = HOMEWORK_PRINTED["neutrophil"] / PBC_COUNTS["neutrophil"]
    return {name: HOMEWORK_PRINTED.get(name, round(PBC_COUNTS[name] * scale)) for name in CLASS_NAMES}


def draw_counts(available, largest_class=None, target=None):
    """{class: images to draw} in the proportions of `target` (default `homework_counts()`).

    Args:
        available: {class: images there are}.
        largest_class: images of the largest target class; None takes as many as every class allows.
        target: {class: count}, the proportions to follow.
    """
    target = target or homework_counts()
    scale = min(available[name] / count for name, count in target.items())
    if largest_class is not None:
        scale = min(scale, largest_class / max(target.values()))
    drawn = {name: min(available[name], max(1, round(count * scale))) for name, count in target.items()}
    return drawn


def load_data(data_dir=None, npz=None, image_size=(96, 96), largest_class=None, seed=0):
    """The images the notebook trains on, at `image_size`, and how they were drawn.

    PBC (`<data root>/pbc/<class>/*.jpg`, 360x363 JPEGs): the classes are drawn (seeded) in the homework's
    proportions (`draw_counts`) and resized exactly as the saved model's `ImagePreprocessing` resizes a raw file.
    The homework's npz (`images` (N, 96, 96, 3), `labels` 0..7): every image, or a stratified subset of the size
    PBC would give at this scale.

    Returns:
        (ImageSet with decoded images, {"source", "available", "drawn", "not drawn", "target"}).
    """
    from medcnn.data.loaders import decode_set, load_folders, load_npz
    from medcnn.data.paths import resolve_dataset

    target = homework_counts()
    if npz is not None:
        from medcnn.data.splits import stratified_subset

        data = load_npz(npz, CLASS_NAMES)
        available = data.class_counts()
        size = None if largest_class is None else sum(draw_counts(PBC_COUNTS, largest_class).values())
        data = data.subset(stratified_subset(data.labels, size, seed))
        if tuple(data.images.shape[1:3]) != tuple(image_size) or data.images.shape[-1] != 3:
            from medcnn.preprocessing import resize_pixels

            rgb = np.repeat(data.images, 3, axis=-1) if data.images.shape[-1] == 1 else data.images[..., :3]
            data.images = resize_pixels(rgb, image_size)
        source = "npz"
    else:
        listed = load_folders(resolve_dataset(DATASET_ID, data_dir), decode=False, class_order=CLASS_NAMES)
        available = listed.class_counts()
        counts = draw_counts(available, largest_class, target)
        rng = np.random.default_rng(seed)
        picked = [
            rng.choice(np.flatnonzero(listed.labels == label), counts[name], replace=False)
            for label, name in enumerate(CLASS_NAMES)
        ]
        data = decode_set(listed.subset(np.sort(np.concatenate(picked))), tuple(image_size), "rgb", skip_bad=True)
        source = DATASET_ID
    drawn = data.class_counts()
    info = {
        "source": source,
        "available": available,
        "drawn": drawn,
        "not drawn": {name: available[name] - drawn[name] for name in CLASS_NAMES},
        "target": target,
    }
    return data, info


PBC_URL = "https://data.mendeley.com/public-api/zip/snkd93bnjr/download/1"  # Mendeley Data's zip of version 1


def fetch_pbc(root, url=PBC_URL, archive=None):
    """Download PBC from Mendeley Data (CC BY 4.0) and lay it out as `<root>/pbc/<class>/*.jpg`; returns that folder.

    Mendeley's dataset zip holds `PBC_dataset_normal_DIB.zip`, which holds one folder per class; zips inside zips are
    opened until the eight class folders appear. `archive`: an already downloaded zip (then nothing is downloaded).
    """
    import shutil
    import urllib.request
    import zipfile
    from pathlib import Path

    root = Path(root)
    work = root / "_pbc_download"
    work.mkdir(parents=True, exist_ok=True)
    if archive is None:
        archive = work / "pbc.zip"
        urllib.request.urlretrieve(url, archive)
    pending = [Path(archive)]
    while pending:
        with zipfile.ZipFile(pending.pop()) as opened:
            target = work / f"part{len(list(work.iterdir()))}"
            opened.extractall(target)
        pending += [path for path in target.rglob("*.zip") if "__MACOSX" not in path.parts]
    found = [
        folder
        for folder in work.rglob("*")
        if folder.is_dir() and "__MACOSX" not in folder.parts and {c.name for c in folder.iterdir()} >= set(CLASS_NAMES)
    ]
    if not found:
        raise FileNotFoundError(f"No folder with the class folders {CLASS_NAMES} in {archive}.")
    destination = root / DATASET_ID
    if destination.exists():
        shutil.rmtree(destination)
    shutil.move(str(found[0]), destination)
    shutil.rmtree(work)
    return destination


def data_fingerprint(data):
    """A hash of the data a run used: the files' relative paths and sizes, or the npz images' bytes."""
    import hashlib

    from medcnn.report import file_list_hash

    if data.paths is not None:
        return file_list_hash(data.paths)
    return hashlib.sha256(np.ascontiguousarray(data.images).tobytes()).hexdigest()


def remove_duplicates(data, near_duplicates=None):
    """Exact copies, then near copies (central part compared: a cell pasted on two backgrounds) removed.

    Returns:
        (cleaned ImageSet, DataFrame of kept / removed pairs with `kind` "exact" or "near" and the correlation).
    """
    import pandas as pd

    from medcnn.data.cleaning import remove_exact_duplicates, remove_near_duplicates

    cleaned, exact = remove_exact_duplicates(data)
    exact["kind"] = "exact"
    if not near_duplicates:
        return cleaned, exact
    kept = np.setdiff1d(np.arange(len(data)), exact["removed_index"].to_numpy(dtype=int))
    cleaned_near, near = remove_near_duplicates(cleaned, **near_duplicates)
    for column in ("kept_index", "removed_index"):  # indices into `data`, as for the exact copies
        near[column] = kept[near[column].to_numpy(dtype=int)]
    near["kind"] = "near"
    return cleaned_near, pd.concat([exact, near], ignore_index=True)


def make_protocol(labels, features, seed, run_settings):
    """The split of one seed: test held out first (stratified), untouched; then, as published, isolation-forest
    outliers removed from the rest and an 80/20 stratified train / validation split of what is left.

    Args:
        labels: (N,) integer labels of the de-duplicated images.
        features: (N, F) `medcnn.data.cleaning.image_features` of those images.
        seed: fixes the test split, the forest and the train / validation split.
        run_settings: the scale's settings (`test_fraction`, `outliers`, `split_ratios`).

    Returns:
        (split {"train", "val", "test"} of sorted indices, info {"outliers": indices removed from train /
        validation, lowest score first, "outlier_scores", "test_flagged": test indices the forest would flag}).
    """
    from sklearn.model_selection import train_test_split

    from medcnn.data.cleaning import fit_outlier_forest

    labels = np.asarray(labels)
    everything = np.arange(len(labels))
    pool, test = train_test_split(
        everything, test_size=run_settings["test_fraction"], stratify=labels, random_state=seed
    )
    forest = fit_outlier_forest(None, run_settings["outliers"]["contamination"], seed, features=features[pool])
    flagged = forest.predict(features) == -1
    scores = forest.score_samples(features)
    outliers = pool[flagged[pool]]
    outliers = outliers[np.argsort(scores[outliers])]
    kept = np.setdiff1d(pool, outliers)
    train, val = train_test_split(
        kept, test_size=run_settings["split_ratios"][1], stratify=labels[kept], random_state=seed
    )
    split = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    info = {
        "outliers": outliers,
        "outlier_scores": scores[outliers],
        "test_flagged": np.sort(test[flagged[test]]),
    }
    return split, info


def make_splits(data, run_settings):
    """`make_protocol` for every seed the scale uses (image features computed once): ({seed: split}, {seed: info})."""
    from medcnn.data.cleaning import image_features

    seeds = sorted({*run_settings["seeds"], *(s for chosen in run_settings["group_seeds"].values() for s in chosen)})
    features = image_features(data.images)
    made = {seed: make_protocol(data.labels, features, seed, run_settings) for seed in seeds}
    return {seed: split for seed, (split, _) in made.items()}, {seed: info for seed, (_, info) in made.items()}


def cleaning_summary(pairs, infos, splits, best, labels):
    """What cleaning removed and what the untouched test split says about it, for `findings` and results.json."""
    seed = best["seed"]
    split, info = splits[seed], infos[seed]
    return {
        "duplicates": int(len(pairs)),
        "duplicate_kinds": pairs["kind"].value_counts().to_dict() if len(pairs) else {},
        "outliers": int(len(info["outliers"])),
        "outlier_classes": {
            CLASS_NAMES[k]: int(n) for k, n in enumerate(np.bincount(np.asarray(labels)[info["outliers"]], minlength=K))
        },
        "outliers_per_seed": {int(s): int(len(i["outliers"])) for s, i in infos.items()},
        "pool": int(len(split["train"]) + len(split["val"]) + len(info["outliers"])),
        "pool_classes": {
            CLASS_NAMES[k]: int(n)
            for k, n in enumerate(
                np.bincount(
                    np.asarray(labels)[np.concatenate([split["train"], split["val"], info["outliers"]])], minlength=K
                )
            )
        },
        "flagged_accuracy": flagged_accuracy(best, labels, info["test_flagged"]),
    }


def example_files(data, indices, folder):
    """Raw files of `indices` for `python -m medcnn predict`: the source files, or PNGs written from npz images."""
    from pathlib import Path

    from PIL import Image

    if data.paths is not None:
        return [str(data.paths[i]) for i in indices]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in indices:
        path = folder / f"image{index:05d}_{CLASS_NAMES[data.labels[index]]}.png"
        Image.fromarray(np.clip(np.rint(data.images[index]), 0, 255).astype(np.uint8)).save(path)
        files.append(str(path))
    return files


def augmentation(run_settings, seed=0):
    """The study's augmentation (rotation, flips, zoom, brightness, Gaussian noise; no translation) on [0, 255]."""
    from medcnn.augment import rotation_flip_zoom_brightness_noise

    return rotation_flip_zoom_brightness_noise(**run_settings["augmentation"], value_range=(0, 255), seed=seed)


def augmented_images(images, copies, run_settings, seed=0):
    """(N * (1 + copies), H, W, 3) float32: the images, then `copies` augmented versions of every one (offline, as
    the study built its augmented set). Copy k of image i sits at `k * N + i`."""
    from medcnn.data.loaders import ImageSet
    from medcnn.data.offline_augment import expand

    images = np.asarray(images, dtype=np.float32)
    if not copies:
        return images
    holder = ImageSet(labels=np.zeros(len(images), dtype=int), class_names=["all"], images=images)
    return expand(holder, copies, augmentation(run_settings, seed), seed=seed).images


def with_copies(split, n, copies):
    """`split` with the augmented copies of its training images added to the training side (never to validation
    or test); indices follow `augmented_images`."""
    train = np.asarray(split["train"])
    return {**split, "train": np.concatenate([train + k * n for k in range(copies + 1)])}


# ----------------------------------------------------------------------------------------------------------------
# Backbones and their features


def backbone_model(name, run_settings, seed=0):
    """The backbone `name` at the scale's image size, preprocessing inside, [0, 255] inputs; ImageNet weights (the
    same for every seed), or (where allowed) random ones drawn from the run's `seed`, the same on every call with
    that seed. Returns (backbone, weights used)."""
    from medcnn.models.features import seeded_backbone

    return seeded_backbone(
        name,
        (*run_settings["image_size"], 3),
        seed,
        run_settings["weights"],
        allow_random=run_settings["allow_random_weights"],
        input_max=255.0,
        freeze=False,  # fine-tuning unfreezes blocks itself; the exported model keeps Keras' default flags
    )


def backbone_features(name, images, run_settings, stem_blocks=0, seed=0):
    """The frozen backbone's features of every image, computed once (per `seed`: see `backbone_model`).

    Returns:
        {"pooled": (M, 1, 1, C) global-average-pooled output (the head's GAP of it is the identity, so a head
        trained on it works on the unpooled map unchanged), "stem": the input of the last `stem_blocks` blocks
        (None for 0), "weights": "imagenet" or "random", "seconds", "images_per_s"}.
    """
    import time

    import keras

    from medcnn.models.transfer import split_backbone

    backbone, weights = backbone_model(name, run_settings, seed)
    outputs = [keras.layers.GlobalAveragePooling2D(keepdims=True, name="pooled")(backbone.output)]
    if stem_blocks:
        outputs.append(split_backbone(backbone, stem_blocks, name)[0].output)
    extractor = keras.Model(backbone.input, outputs, name=f"{name}_features")
    started = time.perf_counter()
    values = extractor.predict(
        np.asarray(images, dtype=np.float32), batch_size=run_settings["predict_batch_size"], verbose=0
    )
    seconds = time.perf_counter() - started
    values = values if isinstance(values, (list, tuple)) else [values]
    keras.backend.clear_session()
    return {
        "pooled": np.asarray(values[0], dtype=np.float32),
        "stem": np.asarray(values[1], dtype=np.float32) if stem_blocks else None,
        "weights": weights,
        "seconds": seconds,
        "images_per_s": len(images) / seconds,
    }


# ----------------------------------------------------------------------------------------------------------------
# Configurations, models and runs


@dataclass(frozen=True)
class Configuration:
    """One row. `group`: "table2" (a study backbone, frozen, with the study's head), "transfer" (MobileNetV2, the
    same), "fine_tune" (the last `blocks` of `backbone` unfrozen, starting from the `stage_one` row's head) or
    "custom" (a CNN from scratch, `model` in `CUSTOM_ROWS`). None fields take the scale's setting."""

    label: str
    group: str
    backbone: str = None
    model: str = None
    stage_one: str = None
    blocks: int = None
    learning_rate: float = None

    def settings(self):
        """What defines the run (recorded and fingerprinted): the fields that are set."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    @property
    def inputs(self):
        """What the run trains on: "images", ("pooled", backbone) or ("stem", backbone)."""
        if self.group == "custom":
            return "images"
        return ("stem" if self.group == "fine_tune" else "pooled", self.backbone)


def row_of(backbone, run_settings):
    """The frozen-backbone row of `backbone`: its Table 2 row, or the MobileNetV2 row."""
    if backbone in BACKBONE_ROWS:
        return BACKBONE_ROWS[backbone]
    if backbone == run_settings["transfer_backbone"]:
        return TRANSFER
    raise ValueError(
        f"No frozen-backbone row for '{backbone}'. Known: {[*BACKBONE_ROWS, run_settings['transfer_backbone']]}"
    )


def configurations(run_settings):
    """Every row, in training order: Table 2, MobileNetV2, fine-tuning (after the row it starts from), custom CNNs."""
    tune = run_settings["fine_tune"]
    rows = [Configuration(BACKBONE_ROWS[name], "table2", backbone=name) for name in run_settings["backbones"]]
    rows.append(Configuration(TRANSFER, "transfer", backbone=run_settings["transfer_backbone"]))
    for name in tune["backbones"]:
        label = FINE_TUNED if name == "resnet50" else TRANSFER_FINE_TUNED
        rows.append(
            Configuration(
                label, "fine_tune", backbone=name, stage_one=row_of(name, run_settings), blocks=tune["blocks"],
                learning_rate=tune["learning_rate"],
            )
        )  # fmt: skip
    rows += [Configuration(label, "custom", model=key) for key, label in CUSTOM_ROWS.items()]
    return rows


def head_spec(run_settings):
    """The study's head (its Table 1) for 8 classes."""
    from medcnn.models.heads import an2dl_head

    return an2dl_head(len(CLASS_NAMES), l2=run_settings["l2"])  # dropout masks drawn from the run's seed


def head_model(feature_shape, run_settings, stats=None):
    """The head of a frozen-backbone row, named "head": global average pooling of the feature map, then (with
    `stats`, our addition) each feature standardised with the training side's (mean, variance), then the study's
    head. On pooled (1, 1, C) features the pooling is the identity, so a head trained on them runs unchanged on
    the backbone's own map."""
    import keras

    from medcnn.models.features import standardise
    from medcnn.models.heads import build_head

    inputs = keras.Input(tuple(feature_shape), name="features")
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pooled")(inputs)
    if stats is not None:
        x = standardise(*stats)(x)
    study = build_head(head_spec(run_settings), (1, 1, int(feature_shape[-1])), name="study_head")
    return keras.Model(inputs, study(x), name="head")


def feature_stats(pooled):
    """(mean, variance) per feature of pooled features (M, 1, 1, C), float32 computed in float64: what
    `head_model` standardises with."""
    from medcnn.models.features import feature_stats as stats

    return stats(pooled)


def compile_for_study(model, learning_rate):
    """Lion, sparse categorical cross-entropy, accuracy and the weighted F1 logged every epoch."""
    from medcnn.train import SparseF1Score, compile_model

    return compile_model(
        model, "lion", learning_rate, loss="sparse_categorical_crossentropy",
        metrics=["accuracy", SparseF1Score(len(CLASS_NAMES), "weighted")],
    )  # fmt: skip


def build_model(config, input_shape, run_settings, head_weights=None, stats=None, seed=0):
    """The configuration's compiled model, on the inputs it trains on (`Configuration.inputs`).

    A frozen-backbone row is `head_model` alone (it trains on features computed once). A fine-tuning model maps
    the backbone's stem features through its last blocks (trainable, BatchNormalization frozen) and `head_model`,
    which starts from `head_weights` (the frozen-backbone row's trained head) when given; `model.backbone` is the
    whole backbone, sharing those blocks. `stats`: see `head_model`. `seed`: the run's seed, which drew a random
    backbone's weights (`backbone_model`).
    """
    import keras

    from medcnn.models import scratch

    if config.group == "custom":
        builders = {
            "plain": scratch.an2dl_plain_cnn, "residual": scratch.an2dl_residual_cnn,
            "inception": scratch.an2dl_inception_cnn,
        }  # fmt: skip
        model = builders[config.model](tuple(input_shape), len(CLASS_NAMES))
    elif config.group == "fine_tune":
        from medcnn.models.backbones import unfreeze_last_blocks
        from medcnn.models.transfer import split_backbone

        backbone, weights = backbone_model(config.backbone, run_settings, seed)
        _, tail = split_backbone(backbone, config.blocks, config.backbone)
        unfreeze_last_blocks(backbone, config.blocks, config.backbone)
        head = head_model(tail.output.shape[1:], run_settings, stats)
        if head_weights is not None:
            head.load_weights(head_weights)
        inputs = keras.Input(tuple(input_shape), name="stem_features")
        model = keras.Model(inputs, head(tail(inputs)), name=f"{config.backbone}_fine_tune")
        model.backbone, model.weights_used = backbone, weights
    else:
        model = head_model(tuple(input_shape), run_settings, stats)
    return compile_for_study(model, config.learning_rate or run_settings["learning_rate"])


def callbacks(run_settings, start_from_epoch=0):
    """`() -> [ReduceLROnPlateau on val accuracy, EarlyStopping on val loss (best weights restored)]`; early
    stopping watches from epoch `start_from_epoch` (0-based) on (`_early_stopping_start`)."""

    def make():
        import keras

        from medcnn.train import monitor_mode

        reduce, stop = dict(run_settings["reduce_lr"]), dict(run_settings["early_stopping"])
        return [
            keras.callbacks.ReduceLROnPlateau(mode=monitor_mode(reduce["monitor"]), verbose=1, **reduce),
            keras.callbacks.EarlyStopping(
                mode=monitor_mode(stop["monitor"]), start_from_epoch=start_from_epoch, verbose=1, **stop
            ),
        ]

    return make


def _early_stopping_start(config, n_train, run_settings):
    """0, or for the residual CNN (the one row with BatchNormalization trained from scratch) the epochs its moving
    statistics need (`medcnn.train.bn_warmup_epochs`): before then validation, in inference mode, lags training
    and early stopping would stop on those epochs and restore their weights."""
    import math

    from medcnn.models.blocks import BATCH_NORM_MOMENTUM
    from medcnn.train import bn_warmup_epochs

    if config.group != "custom" or config.model != "residual":
        return 0
    return bn_warmup_epochs(math.ceil(n_train / run_settings["batch_size"]), BATCH_NORM_MOMENTUM)


@dataclass
class Inputs:
    """What the runs train on: the images with their augmented copies (`augmented_images`), their labels, how many
    are originals, each backbone's features ({backbone: `backbone_features` result}) and, when the scale
    standardises features, their training-side statistics ({(backbone, seed): (mean, variance)}).

    `images` and `features` are those of seed `seed`. `draw`: `seed -> (images, features)` for another seed (its
    own augmented copies and random backbone weights), called once per seed and kept in `drawn`; None: every seed
    uses `images` and `features`.
    """

    images: np.ndarray
    labels: np.ndarray
    n: int
    copies: int
    features: dict
    stats: dict = field(default_factory=dict)
    seed: int = 0
    draw: object = None
    drawn: dict = field(default_factory=dict)

    def of_seed(self, seed=None):
        """(images, features) of `seed` (None: of `self.seed`), drawn on first use."""
        if seed is None or seed == self.seed or self.draw is None:
            return self.images, self.features
        if seed not in self.drawn:
            self.drawn[seed] = self.draw(seed)
        return self.drawn[seed]

    def x(self, config, seed=None):
        """The array `config` trains on for `seed`, indexed like `images`."""
        images, features = self.of_seed(seed)
        if config.inputs == "images":
            return images
        kind, backbone = config.inputs
        return features[backbone][kind]

    def head_stats(self, config, seed):
        """The (mean, variance) `config`'s head standardises with for `seed`, or None."""
        return self.stats.get((config.backbone, seed)) if config.backbone else None

    def weights(self):
        """{backbone: "imagenet" or "random"}."""
        return {name: entry["weights"] for name, entry in self.features.items()}


def seed_inputs(images, run_settings, seed, log=print):
    """One seed's inputs: every image augmented offline (copies after the originals, drawn from `seed`), then each
    backbone's frozen features of them (random weights drawn from `seed`), with the stem features of the
    backbones that are fine-tuned. Returns (images with copies, {backbone: `backbone_features` result})."""
    # layer seeds 100 * seed and up: no two seeds share one (`medcnn.augment.with_seed`)
    every = augmented_images(images, run_settings["augment_copies"], run_settings, seed=100 * seed)
    tune = run_settings["fine_tune"]
    features = {}
    for name in (*run_settings["backbones"], run_settings["transfer_backbone"]):
        blocks = tune["blocks"] if name in tune["backbones"] else 0
        features[name] = backbone_features(name, every, run_settings, stem_blocks=blocks, seed=seed)
        entry = features[name]
        log(
            f"{name} (seed {seed}): {entry['weights']} weights, features {entry['pooled'].shape[1:]}"
            + (f", stem {entry['stem'].shape[1:]}" if blocks else "")
            + f" of {len(every)} images in {entry['seconds']:.0f} s ({entry['images_per_s']:.0f} images/s)"
        )
    return every, features


def prepare_inputs(images, labels, run_settings, log=print):
    """The runs' `Inputs`: the first seed's (`seed_inputs`) now, every other seed's on first use."""
    copies = run_settings["augment_copies"]
    groups = run_settings["group_seeds"].values()
    first = min({*run_settings["seeds"], *(seed for chosen in groups for seed in chosen)})
    every, features = seed_inputs(images, run_settings, first, log)
    labels = np.tile(np.asarray(labels), copies + 1)
    draw = lambda seed: seed_inputs(images, run_settings, seed, log)  # noqa: E731
    return Inputs(every, labels, len(images), copies, features, seed=first, draw=draw)


def seeding(run_settings, weights):
    """What each seed varies and what is held fixed on purpose, for results.json (`experiment.seed_policy`).

    Args:
        run_settings: the scale's settings.
        weights: {backbone: "imagenet" or "random"} (`Inputs.weights()`).
    """
    from medcnn.experiment import backbone_parts, seed_policy

    varies = ["split", "outlier forest", "initialisation", "data order", "dropout masks"]
    if run_settings["augment_copies"]:
        varies.append("augmented views")
    drawn, pretrained = backbone_parts(weights)
    held = {"composition": "the images drawn from PBC (`load_data`, seed 0): one data set, cleaned once, for all seeds"}
    return seed_policy([*varies, *drawn], {**held, **pretrained})


def trained_model(run, config, inputs, cache, run_settings, log=print):
    """`run`'s model with its recorded weights, or trained again when they are missing (`experiment.trained_model`).

    Rebuilt without the stage-one head a fine-tuning run starts from: the run's own weights replace it."""
    from medcnn.experiment import trained_model as recorded_model

    x = inputs.x(config, run.seed)
    stats = inputs.head_stats(config, run.seed)
    build = lambda: build_model(config, x.shape[1:], run_settings, stats=stats, seed=run.seed)  # noqa: E731
    return recorded_model(run, x, inputs.labels, CLASS_NAMES, cache, log=log, build=build)


def make_runs(configs, inputs, splits, run_settings, data_hash, cache, log=print):
    """The `experiment.Run`s, seed by seed (each seed fixes the split, the initialisation, the augmented copies and
    a random backbone's weights: `seeding`).

    Args:
        configs: `configurations(...)`, in training order.
        inputs: `prepare_inputs(...)`.
        splits: {seed: split of the originals} (`make_protocol`); augmented copies join the training side.
        run_settings: the scale's settings, fingerprinted whole (a record is reused only under the same settings).
        data_hash: `data_fingerprint(data)`, fingerprinted with the copies and the backbone's weights.
        cache: the `RunCache`; a fine-tuning run reads its stage-one head's weights from it.
    """
    from medcnn.data.labels import class_weights
    from medcnn.experiment import Run, seed_order

    groups = {config.group for config in configs}
    seeds_of = {group: run_settings["group_seeds"].get(group) or run_settings["seeds"] for group in groups}
    epochs_of = {"fine_tune": "fine_tune_epochs", "custom": "custom_epochs"}
    by_label = {config.label: config for config in configs}
    runs, made = [], {}
    for config, seed in seed_order(configs, seeds_of):
        split = with_copies(splits[seed], inputs.n, inputs.copies)
        x = inputs.x(config, seed)
        # the data: its files, how many augmented copies join the training side, which weights made the features
        data = {"files": data_hash, "copies": inputs.copies, "backbone_weights": None}
        head_weights = first = None
        if config.backbone:
            data["backbone_weights"] = inputs.features[config.backbone]["weights"]
            if run_settings["standardise_features"] and (config.backbone, seed) not in inputs.stats:
                pooled = inputs.of_seed(seed)[1][config.backbone]["pooled"][split["train"]]
                inputs.stats[(config.backbone, seed)] = feature_stats(pooled)
        if config.stage_one:
            first = made[(config.stage_one, seed)]
            head_weights = _stage_one_weights(first, by_label[config.stage_one], inputs, cache, run_settings, log)
        stats = inputs.head_stats(config, seed)
        run = Run(
            label=config.label,
            seed=seed,
            split=split,
            epochs=run_settings[epochs_of.get(config.group, "epochs")],
            batch_size=run_settings["batch_size"],
            group=config.group,
            settings=config.settings(),
            build_model=lambda c=config, shape=x.shape[1:], w=head_weights, stats=stats, seed=seed: build_model(
                c, shape, run_settings, w() if w else None, stats, seed
            ),
            spec=run_settings,
            data=data,
            starts_from=first,
            one_hot=False,
            class_weight=class_weights(inputs.labels[splits[seed]["train"]]),
            callbacks=callbacks(run_settings, _early_stopping_start(config, len(split["train"]), run_settings)),
            predict_batch_size=run_settings["predict_batch_size"],
        )
        made[(config.label, seed)] = run
        runs.append(run)
    return runs


def _stage_one_weights(run, config, inputs, cache, run_settings, log):
    """`() -> path` of the stage-one head's weights (the head alone), training that run again if they are missing."""

    def resolve():
        import keras

        path = cache.out_dir / "cache" / "heads" / f"{run.key}.weights.h5"
        model = trained_model(run, config, inputs, cache, run_settings, log)
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save_weights(path)  # the stage-one model is the head alone
        keras.backend.clear_session()
        return path

    return resolve


def run_all(runs, configs, inputs, cache, verbose=2, log=print):
    """Train (or reuse) every run in order, each on its own inputs; returns the records (see `complete`)."""
    from medcnn.experiment import run_all as run_each

    by_label = {config.label: config for config in configs}
    records = []
    for run in runs:
        config = by_label[run.label]
        records += run_each([run], inputs.x(config, run.seed), inputs.labels, CLASS_NAMES, cache, verbose, log)
    return records


# ----------------------------------------------------------------------------------------------------------------
# What each record adds: the study's "maximum over epochs", the epoch chosen, training accuracy


def complete(records, weights=None):
    """Add to every record (in place) what the tables need: the validation accuracy, recall and F1 maximised over
    epochs (the study's Table 2 numbers; weighted recall equals accuracy), the epoch early stopping restored
    (lowest validation loss), and the backbone's weights."""
    for record in records:
        history = record.get("history") or {}
        if "val_accuracy" in history:
            record["val_accuracy_max"] = float(np.nanmax(history["val_accuracy"]))
            record["val_recall_max"] = record["val_accuracy_max"]
        if "val_f1_weighted" in history:
            record["val_f1_max"] = float(np.nanmax(history["val_f1_weighted"]))
        if "val_loss" in history:
            record["best_epoch"] = int(np.nanargmin(history["val_loss"])) + 1
        backbone = (record.get("settings") or {}).get("backbone")
        if weights and backbone:
            record["weights"] = weights[backbone]
        elif record.get("group") == "custom":
            record["weights"] = "none (from scratch)"
    return records


def add_train_accuracy(runs, records, configs, inputs, cache, run_settings, groups=("fine_tune",), log=print):
    """Accuracy of each chosen model on its own training images (originals, inference mode) for `groups` (Table 3's
    "train" row); written back to the run's record file so a reuse pass has it."""
    import keras

    from medcnn.experiment import find_run

    by_label = {config.label: config for config in configs}
    for record in records:
        if record.get("group") not in groups or "train_accuracy" in record:
            continue
        run = find_run(runs, record)
        config = by_label[run.label]
        model = trained_model(run, config, inputs, cache, run_settings, log)
        train = np.asarray(run.split["train"])
        train = train[train < inputs.n]
        probabilities = model.predict(inputs.x(config, run.seed)[train], batch_size=run.predict_batch_size, verbose=0)
        record["train_accuracy"] = float(np.mean(probabilities.argmax(axis=1) == inputs.labels[train]))
        cache.save(run.key, record)
        keras.backend.clear_session()
    return records


def full_model(config, model, run_settings, seed=0):
    """The whole classifier of a trained run, from [0, 255] images at the scale's size to probabilities.

    Custom CNNs are whole already; a frozen-backbone row's head (trained on pooled features) is put on its backbone
    (the same weights as the run of `seed`'s features came from); a fine-tuning model is its backbone (sharing
    the trained last blocks) with its head.
    """
    import keras

    if config.group == "custom":
        return model
    if config.group == "fine_tune":
        backbone = model.backbone
        return keras.Model(backbone.input, model.get_layer("head")(backbone.output), name=f"{config.backbone}_an2dl")
    backbone, _ = backbone_model(config.backbone, run_settings, seed)
    standardise = model.get_layer("standardise") if any(layer.name == "standardise" for layer in model.layers) else None
    stats = None if standardise is None else (standardise.input_mean, standardise.input_variance)
    head = head_model(backbone.output.shape[1:], run_settings, stats)
    head.set_weights(model.get_weights())
    return keras.Model(backbone.input, head(backbone.output), name=f"{config.backbone}_an2dl")


def export_best(run, configs, inputs, cache, path, run_settings, log=print):
    """Save `run`'s whole classifier with its preprocessing (resize to the scale's size, RGB, [0, 255]) and class
    names as `path`, so that `python -m medcnn predict` classifies raw image files of any size."""
    from medcnn.experiment import export_model

    config = {c.label: c for c in configs}[run.label]
    model = trained_model(run, config, inputs, cache, run_settings, log)
    return export_model(full_model(config, model, run_settings, run.seed), CLASS_NAMES, path, input_max=255.0)


# ----------------------------------------------------------------------------------------------------------------
# Tables


def percent(summary, keys):
    """A copy of `summary` with the `<key>_mean` / `<key>_std` columns of `keys` in percent."""
    scaled = summary.copy()
    for key in keys:
        for stat in ("mean", "std", "learned_mean", "learned_std", "reference_majority", "reference_chance"):
            if f"{key}_{stat}" in scaled:
                scaled[f"{key}_{stat}"] = scaled[f"{key}_{stat}"] * 100.0
    return scaled


def table3_summary(records, label=FINE_TUNED):
    """Table 3's rows (train, validation, external test) for the runs of `label`, shaped like a `summarise` output
    with `accuracy_mean` / `accuracy_std` in percent. Our "external test" is the untouched test split: the
    homework's external test set is not public."""
    from medcnn.experiment import summarise

    chosen = [r for r in records if r["configuration"] == label]
    rows = []
    for record in chosen:
        for name, key in (
            ("train", "train_accuracy"),
            ("validation", "val_accuracy"),
            ("external test", "test_accuracy"),
        ):
            rows.append(
                {
                    "set": name,
                    "seed": record["seed"],
                    "accuracy": 100.0 * record.get(key, np.nan),
                    "epochs": record["epochs"],
                }
            )
    return summarise(rows, ["accuracy", "epochs"], by="set")


ROW_COLUMNS = {
    "val_accuracy_max": "val acc, max over epochs",
    "val_f1_max": "val F1, max over epochs",
    "val_accuracy": "val acc, chosen epoch",
    "test_accuracy": "test acc",
    "test_balanced_accuracy": "test balanced acc",
    "test_weighted_f1": "test F1",
    "test_roc_auc": "test AUC",
}


def row_notes(weights, run_settings=None):
    """{row: "random weights"} for every row whose backbone loaded random weights ({backbone: weights used}, as
    `Inputs.weights()` returns and results.json's `backbone_weights` records): its Table 2 row, its fine-tuned row
    and, for ResNet50, Table 3's rows (they are the fine-tuned ResNet50's)."""
    from medcnn.experiment.truth import weights_notes

    weights = weights or {}
    rows = {}
    transfer = (run_settings or {}).get("transfer_backbone", "mobilenet_v2")
    for name, used in weights.items():
        if name in BACKBONE_ROWS:
            rows[BACKBONE_ROWS[name]] = used
        if name == transfer:
            rows[TRANSFER], rows[TRANSFER_FINE_TUNED] = used, used
        if name == "resnet50":
            rows[FINE_TUNED] = used
            rows.update({row: used for row in TABLE_3.index})
    return weights_notes(rows)


def results_table(summary, records, digits=3):
    """Every row in order (Table 2, MobileNetV2, fine-tuning, custom CNNs) with its weights, the study's numbers
    (maxima over validation epochs) beside the honest ones (test, the epoch chosen on validation), and the anchor."""
    import pandas as pd

    from medcnn.experiment import rows_table

    order = [*TABLE_2.index, TRANSFER, FINE_TUNED, TRANSFER_FINE_TUNED, *CUSTOM_ROWS.values()]
    rows = [label for label in order if label in summary.index]
    table = rows_table(summary, ROW_COLUMNS, rows=rows, digits=digits)
    weights = {r["configuration"]: r.get("weights", "") for r in records}
    table.insert(1, "weights", [weights.get(label, "") for label in table.index])
    anchor = pd.DataFrame(
        {"test acc": [f"{ANCHOR['accuracy']:.3f}"], "test AUC": [f"{ANCHOR['auc']:.3f}"]},
        index=pd.Index([f"anchor: BloodMNIST {ANCHOR['model']} (its own 28x28 data and split)"]),
    )
    return pd.concat([table, anchor]).fillna("")


# ----------------------------------------------------------------------------------------------------------------
# Figures


def _show(ax, image, title):
    ax.imshow(np.clip(np.asarray(image, dtype="float32") / 255.0, 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize="small")


def plot_pairs(images, pairs, path=None, max_pairs=6):
    """Up to `max_pairs` duplicate pairs (`remove_duplicates`' table): kept image above, removed one below."""
    from matplotlib.figure import Figure

    from medcnn.plots import save_figure

    shown = pairs.head(max_pairs)
    figure = Figure(figsize=(2.0 * max(1, len(shown)), 4.4), layout="constrained")
    axes = figure.subplots(2, max(1, len(shown)), squeeze=False)
    if shown.empty:
        for ax in axes.ravel():
            ax.set_axis_off()
        axes[0, 0].text(0.5, 0.5, "no duplicates found", ha="center", va="center")
    for column, row in enumerate(shown.itertuples()):
        _show(axes[0, column], images[row.kept_index], f"kept: {row.kept_class}")
        _show(axes[1, column], images[row.removed_index], f"removed ({row.kind}): {row.removed_class}")
    save_figure(figure, path)
    return figure


def plot_outliers(images, indices, labels, scores=None, path=None, max_images=12, columns=6):
    """The images an isolation forest removed (most anomalous first), with their class and score."""
    from matplotlib.figure import Figure

    from medcnn.plots import save_figure

    indices = np.asarray(indices, dtype=int)[:max_images]
    count = max(1, len(indices))
    columns = min(columns, count)
    rows = -(-count // columns)
    figure = Figure(figsize=(2.0 * columns, 2.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    if not len(indices):
        axes[0].text(0.5, 0.5, "no outliers removed", ha="center", va="center")
    for position, index in enumerate(indices):
        score = "" if scores is None else f" {scores[position]:.2f}"
        axes[position].set_axis_on()
        _show(axes[position], images[index], f"{CLASS_NAMES[labels[index]]}{score}")
    save_figure(figure, path)
    return figure


# ----------------------------------------------------------------------------------------------------------------
# What the run shows


def _value(summary, label, key, digits=3, scale=1.0):
    from medcnn.experiment import mean_std

    row = summary.loc[label]
    return mean_std(row[f"{key}_mean"] * scale, row[f"{key}_std"] * scale, digits)


def honest_gap(summary, rows):
    """Mean over `rows` of (validation accuracy maximised over epochs - test accuracy of the chosen epoch)."""
    rows = [row for row in rows if row in summary.index]
    return float(
        np.mean([summary.loc[r, "val_accuracy_max_mean"] - summary.loc[r, "test_accuracy_mean"] for r in rows])
    )


def flagged_accuracy(record, labels, flagged):
    """(accuracy on the test images the forest would have removed, on the others, how many it flags) of a record."""
    index = np.asarray(record["test_indices"])
    right = np.asarray(record["test_probabilities"]).argmax(axis=1) == np.asarray(labels)[index]
    mask = np.isin(index, np.asarray(flagged, dtype=int))
    on = float(right[mask].mean()) if mask.any() else float("nan")
    return on, float(right[~mask].mean()) if (~mask).any() else float("nan"), int(mask.sum())


def findings(summary, records, weights, best, cleaning, run_settings):
    """The sentences only this study prints, each computed from this run's numbers.

    Args:
        summary: `experiment.summarise(records, SUMMARY_METRICS)`.
        records: every run record (after `complete`).
        weights: {backbone: weights used}.
        best: the best run's record (by validation accuracy at its chosen epoch).
        cleaning: {"duplicates": n, "outliers": n (seed 0), "pool": n, "test_flagged": n, "flagged_accuracy":
            (on flagged, on the rest, n) of the best run}.
        run_settings: the scale's settings.
    """
    from medcnn.experiment import stuck_statement
    from medcnn.experiment import truth

    sentences = []
    study = [BACKBONE_ROWS[name] for name in BACKBONES if BACKBONE_ROWS[name] in summary.index]
    random = [BACKBONE_ROWS[name] for name in BACKBONES if weights.get(name) == "random"]
    seeds = int(summary["runs"].max())
    if random:
        sentences.append(
            f"{len(random)} of the {len(BACKBONES)} study backbones ran with random weights (their ImageNet files "
            f"are not available here): {', '.join(random)}. Their rows show what the study's head learns from "
            "frozen random features, not ImageNet transfer; on Colab the same code loads ImageNet weights."
        )
    if run_settings["standardise_features"]:
        sentences.append(
            "At this scale each frozen-backbone head standardises its pooled features with the training side's mean "
            "and variance before the study's head (ours, not the study's): random backbones give features of very "
            "different scales, which the study's head alone cannot learn from."
        )

    def runs_of(label):
        return [r for r in records if r.get("configuration") == label]

    collapsed = [row for row in study if truth.all_collapsed(runs_of(row))]
    learned = [row for row in study if row not in collapsed]
    ranking = ""
    if len(learned) > 1:
        first, second = sorted(learned, key=lambda row: summary.loc[row, "val_f1_max_mean"], reverse=True)[:2]
        verdict = truth.compare_records(runs_of(first), runs_of(second), "val_f1_max", first, second,
                                        "validation F1 (max over epochs)")  # fmt: skip
        ranking = (
            f" The highest mean validation F1 is {first}'s (the study's best: ResNet50, by F1 and confusion matrix); "
            f"against the runner-up: {verdict.sentence}"
        )
    sentences.append(
        "Table 2 as published (maximum over epochs on validation): "
        + "; ".join(
            f"{row} {_value(summary, row, 'val_accuracy_max', 1, 100)} % vs {TABLE_2.loc[row, 'accuracy %']:.2f} %"
            for row in learned
        )
        + (f"; every run of {', '.join(collapsed)} collapsed to one class" if collapsed else "")
        + "."
        + ranking
    )
    if TRANSFER in summary.index:
        sentences.append(
            f"MobileNetV2 ({weights.get('mobilenet_v2')} weights, the staged file) with the same head reaches "
            f"{_value(summary, TRANSFER, 'val_accuracy_max', 1, 100)} % (max over epochs) and "
            f"{_value(summary, TRANSFER, 'test_accuracy', 1, 100)} % on the untouched test split."
        )
    frozen = [r for row in (*study, TRANSFER) for r in runs_of(row) if "val_accuracy_max" in r and "test_accuracy" in r]
    overstated = truth.compare_rows(
        [r["val_accuracy_max"] for r in frozen], [r["test_accuracy"] for r in frozen],
        "the maximum over epochs on the validation set that also picks the epoch (as the study reads it)",
        "the chosen epoch's accuracy on the untouched test split", "accuracy", paired=True, pairs="runs",
    )  # fmt: skip
    sentences.append(
        f"Over the frozen-backbone runs (seeds: {seeds}), {overstated.sentence[0].lower()}{overstated.sentence[1:]}"
    )
    if FINE_TUNED in summary.index:
        first = BACKBONE_ROWS["resnet50"]
        verdict = truth.compare_records(runs_of(FINE_TUNED), runs_of(first), "val_f1_max",
                                        "ResNet50 with its last block unfrozen", "ResNet50 frozen",
                                        "validation F1 (max over epochs)")  # fmt: skip
        sentences.append(
            f"{verdict.sentence.rstrip('.')}; the study: 87.33 % to {FINE_TUNING.iloc[0, 0]:.2f} %, +10.86 points."
        )
        table3 = table3_summary(records)
        sentences.append(
            "Table 3 for our fine-tuned ResNet50 (train / validation / untouched test accuracy): "
            + " / ".join(
                f"{table3.loc[name, 'accuracy_mean']:.1f} %" for name in ("train", "validation", "external test")
            )
            + f"; the study's {TABLE_3.iloc[0, 0]:.2f} / {TABLE_3.iloc[1, 0]:.2f} / {TABLE_3.iloc[2, 0]:.2f} % came "
            "from its own external test set, which is not public."
        )
    if TRANSFER_FINE_TUNED in summary.index and TRANSFER in summary.index:
        verdict = truth.compare_records(runs_of(TRANSFER_FINE_TUNED), runs_of(TRANSFER), "test_accuracy",
                                        f"MobileNetV2 ({weights.get('mobilenet_v2')} weights) with its last block "
                                        "unfrozen", "MobileNetV2 frozen", "test accuracy")  # fmt: skip
        sentences.append(
            f"{verdict.sentence.rstrip('.')} ({_value(summary, TRANSFER, 'test_accuracy', 1, 100)} % to "
            f"{_value(summary, TRANSFER_FINE_TUNED, 'test_accuracy', 1, 100)} %)."
        )
    custom = [label for label in CUSTOM_ROWS.values() if label in summary.index]
    gone = [label for label in custom if truth.all_collapsed(runs_of(label))]
    if gone:
        sentences.append(f"Every run of {', '.join(repr(label) for label in gone)} collapsed to one class.")
    custom = [label for label in custom if label not in gone]
    if custom:
        top = max(custom, key=lambda row: summary.loc[row, "val_accuracy_mean"])
        sentences.append(
            f"The best custom CNN on validation is '{top}': test accuracy "
            f"{_value(summary, top, 'test_accuracy', 1, 100)} % after {summary.loc[top, 'epochs_mean']:.0f} epochs "
            "(the study: about 94 % train and validation, 12 % on its test set)."
        )
    on, off, count = cleaning["flagged_accuracy"]
    classes = cleaning.get("outlier_classes") or {}
    most = max(classes, key=classes.get) if classes and max(classes.values()) else None
    share = (
        f" ({classes[most]} of them {most}, a class that makes up "
        f"{100 * cleaning['pool_classes'][most] / cleaning['pool']:.0f} % of those {cleaning['pool']})"
        if most and cleaning.get("pool_classes")
        else ""
    )
    sentences.append(
        f"Cleaning removed {cleaning['duplicates']} duplicate(s), then {cleaning['outliers']} of "
        f"{cleaning['pool']} training and validation images as isolation-forest outliers{share} (seed "
        f"{best['seed']}); the same forest would have flagged {count} test images, on which the best run is "
        + (f"{100 * on:.1f} % right against {100 * off:.1f} % on the rest." if count else "not measured.")
    )
    sentences.append(
        f"Anchor: BloodMNIST's {ANCHOR['model']} reports test accuracy {ANCHOR['accuracy']:.3f} and AUC "
        f"{ANCHOR['auc']:.3f} with {ANCHOR['protocol']}. Our best run ('{best['configuration']}', seed {best['seed']}) "
        f"reaches {best['test_accuracy']:.3f} and AUC {best['test_roc_auc']:.3f} on {best['sizes']['test']} untouched "
        f"test images, trained on {best['sizes']['train']} images and copies at 96x96 drawn in the homework's class "
        "proportions: different data, size and split, not comparable one to one."
    )
    sentences.append(stuck_statement([r for r in records if "test_confusion" in r]))
    return sentences


def readme_section(payload, scale="cpu"):
    """The README's section on a committed run, generated from its `results.json` payload."""
    from medcnn.experiment import readme_section as section

    return section(
        payload,
        "Table 2",
        {"accuracy %": "val accuracy % (max over epochs)", "F1 %": "val F1 % (max over epochs)"},
        "the study's head on each frozen backbone, Lion 1e-4, class weights, offline augmentation, 96x96 PBC images "
        "drawn in the homework's class proportions, duplicates and isolation-forest outliers removed, 80/20 split "
        "as published, plus a test split held out before cleaning (the honest protocol). The study backbones' rows "
        "say which weights they had. Table 3, fine-tuning, custom CNNs, MobileNetV2 and the BloodMNIST anchor: "
        f"[results/an2dl/{scale}/report.md](results/an2dl/{scale}/report.md).",
        row_notes=row_notes(payload.get("backbone_weights"), payload["run"].get("settings")),
    )


# ----------------------------------------------------------------------------------------------------------------
# The plan: what a scale would train, without training it (`python -m medcnn plan an2dl --scale cpu`)

PLAN_LEAVES_OUT = (
    "decoding the images, duplicate and outlier search, the offline augmented copies, the training-side accuracy "
    "of the fine-tuned rows, evaluation and export"
)


def plan_runs(run_settings, data_dir=None):
    """Per seed, each backbone's features of every image and copy, then `make_runs`' runs (`configurations`, seed
    by seed, `group_seeds` honoured), as `experiment.estimate.PlannedRun`s, from the staged files' counts drawn in
    the homework's proportions (`draw_counts`; nothing decoded).

    Sizes are counted before duplicates and outliers are removed (so at most): the test part `test_fraction` of
    the drawn images, the training side `split_ratios[0]` of the rest, times 1 + `augment_copies`.
    """
    from medcnn.experiment import seed_order
    from medcnn.experiment.estimate import PlannedRun, count_files

    available = count_files(DATASET_ID, data_dir, class_order=CLASS_NAMES)
    drawn = sum(draw_counts(available, run_settings["largest_class"]).values())
    copies = run_settings["augment_copies"]
    rest = drawn - round(run_settings["test_fraction"] * drawn)
    train = round(run_settings["split_ratios"][0] * rest) * (copies + 1)
    size = tuple(run_settings["image_size"])
    configs = configurations(run_settings)
    groups = {config.group for config in configs}
    seeds_of = {group: run_settings["group_seeds"].get(group) or run_settings["seeds"] for group in groups}
    epochs_of = {"fine_tune": "fine_tune_epochs", "custom": "custom_epochs"}
    patience = run_settings["early_stopping"]["patience"]
    backbones = (*run_settings["backbones"], run_settings["transfer_backbone"])
    planned = [
        PlannedRun(f"{name} features of every image and copy", seed, "feature extraction", name, 1,
                   drawn * (copies + 1), size)
        for seed in sorted({seed for chosen in seeds_of.values() for seed in chosen})
        for name in backbones
    ]  # fmt: skip
    for config, seed in seed_order(configs, seeds_of):
        epochs = run_settings[epochs_of.get(config.group, "epochs")]
        if config.group == "custom":
            kind, model, at = "from scratch", f"an2dl_cnn:{config.model}", size
        elif config.group == "fine_tune":
            blocks = "last block" if config.blocks == 1 else f"last {config.blocks} blocks"
            kind, model, at = "fine-tuning", f"{config.backbone} {blocks}", size
        else:
            kind, model, at = "frozen-feature head", "an2dl_head", None
        planned.append(PlannedRun(config.label, seed, kind, model, epochs, train, at, patience < epochs))
    return planned
