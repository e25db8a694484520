"""allgray: ALL subtypes from grayscale cell images with a small CNN (Zhang, 2024).

Everything the `allgray` notebook needs: the paper's Table 1 as data, the settings per scale, and the runs
(one configuration, one seed) that reproduce it, each cached in `<output>/runs/` so that an interrupted run
resumes and more seeds can be added later without retraining the earlier ones.
"""

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from medcnn.data.loaders import decode_set, load_folders
from medcnn.data.paths import resolve_dataset
from medcnn.studies import copy_tables, select_settings

STUDY = "allgray"
DATASET_ID = "all4"
CITATION = {
    "title": "Optimized Convolutional Neural Networks for Enhanced Detection of Acute Lymphoblastic Leukemia "
    "from Grayscale Cell Images",
    "authors": "Yuan Zhang (University of Melbourne)",
    "year": 2024,
    "venue": "ISSN 2959-6157",
    "seed_file": "003_6c3989d349fbf500.txt",
    "data": "Kaggle 'Leukemia' (mehradaria/leukemia), Ghaderzadeh et al. 2022: 3,256 images, 4 classes",
}
CLASS_NAMES = ["Benign", "Early", "Pre", "Pro"]
METRICS = ["val_accuracy", "val_predict_s", "test_accuracy", "test_predict_s"]

# Table 1 exactly as printed: configuration -> (val acc, val prediction s, test acc, test prediction s).
PAPER_TABLE1 = pd.DataFrame(
    [
        ("15 epochs, batch 64, categorical CE", 0.80, 2.13, 0.82, 1.98),
        ("15 epochs, batch 64, binary CE", 0.76, 2.09, 0.78, 2.62),
        ("15 epochs, batch 32, categorical CE", 0.74, 2.09, 0.75, 2.62),
        ("10 epochs, batch 32, categorical CE", 0.78, 2.09, 0.81, 2.62),
    ],
    columns=["configuration", *METRICS],
).set_index("configuration")
PAPER_TABLE1.attrs = {
    "study": STUDY,
    "table": "Table 1",
    "caption": "The Performance of The Model Under Different Configurations",
}


@dataclass(frozen=True)
class Configuration:
    """One trained setting. `group` says which table it belongs to; the rest define the run."""

    label: str
    epochs: int
    batch_size: int
    loss: str = "categorical_crossentropy"
    conv_layers: int = 3
    batch_norm: bool = False
    augment: bool = False
    deduplicate: bool = False
    group: str = "table1"

    @property
    def slug(self):
        return "".join(c if c.isalnum() else "-" for c in self.label.lower()).strip("-").replace("--", "-")


CATEGORICAL, BINARY = "categorical_crossentropy", "binary_crossentropy"
TABLE1 = [
    Configuration("15 epochs, batch 64, categorical CE", 15, 64, CATEGORICAL),
    Configuration("15 epochs, batch 64, binary CE", 15, 64, BINARY),
    Configuration("15 epochs, batch 32, categorical CE", 15, 32, CATEGORICAL),
    Configuration("10 epochs, batch 32, categorical CE", 10, 32, CATEGORICAL),
]
_BEST_PUBLISHED = TABLE1[0]
CONV_LAYER_VARIANTS = [
    replace(
        _BEST_PUBLISHED,
        label=f"{n} conv layers (15 epochs, batch 64, categorical CE)",
        conv_layers=n,
        group="conv_layers",
    )
    for n in (2, 4)
]
HONEST = replace(
    _BEST_PUBLISHED,
    label="exact duplicates removed before the split (15 epochs, batch 64)",
    deduplicate=True,
    group="honest",
)
BEYOND = replace(
    _BEST_PUBLISHED,
    label="ours: 40 epochs, batch 64, categorical CE",
    epochs=40,
    group="beyond",
)

SETTINGS = {
    "smoke": {
        "image_size": (100, 100),
        "load_size": (224, 224),
        "max_images": 480,  # stratified slice of the staged images
        # seeds per group of runs; each seed fixes the split and the initialisation
        "seeds": {"table1": [0, 1], "conv_layers": [0], "honest": [0, 1], "beyond": [0]},
        "epoch_scale": 0.2,  # 15 -> 3 epochs, 10 -> 2, 40 -> 8
        "ratios": (0.7, 0.15, 0.15),
        "learning_rate": 1e-3,
        "predict_batch_size": 32,
        "hog_pca_components": 100,
        "reuse_runs": True,  # reuse a run recorded in <output>/runs/ when configuration, seed, data and split match
    },
    "full": {
        "image_size": (100, 100),
        "load_size": (224, 224),
        "max_images": None,  # every image found (3,061 staged; 3,256 in the Kaggle download)
        # What one session's 2-core CPU allows (about 15 epochs of 2,141 images per 4 minutes); more seeds reuse
        # the recorded runs in results/allgray/full/runs/ and train only the new ones.
        "seeds": {"table1": [0, 1], "conv_layers": [0], "honest": [0, 1], "beyond": [0]},
        "epoch_scale": 1.0,
        "ratios": (0.7, 0.15, 0.15),
        "learning_rate": 1e-3,
        "predict_batch_size": 32,
        "hog_pca_components": 100,
        "reuse_runs": True,
    },
}


def settings(scale="smoke", **overrides):
    """The study's settings for `scale` ("smoke" or "full"), with `overrides` (None values are ignored).

    `seeds` may be overridden by a list (used for every group) or a dict {group: [seeds]}.
    """
    chosen = select_settings(SETTINGS, scale, overrides)
    unknown = set(overrides) - set(SETTINGS[scale])
    if unknown:
        raise ValueError(f"Unknown setting(s) {sorted(unknown)}; known: {sorted(SETTINGS[scale])}.")
    if isinstance(chosen["seeds"], (list, tuple)):
        chosen["seeds"] = {group: list(chosen["seeds"]) for group in SETTINGS[scale]["seeds"]}
    return chosen


def configurations(groups=("table1", "conv_layers", "honest", "beyond")):
    """All configurations of the given groups, Table 1 first."""
    every = [*TABLE1, *CONV_LAYER_VARIANTS, HONEST, BEYOND]
    return [c for c in every if c.group in groups]


def paper_tables():
    """{"Table 1": DataFrame}, a fresh copy each call."""
    return copy_tables({"Table 1": PAPER_TABLE1})


# --------------------------------------------------------------------------------------------------------------
# Data


def load_data(data_dir=None, load_size=(224, 224), max_images=None, seed=0):
    """The Kaggle ALL images as RGB uint8 at `load_size`, optionally a stratified slice of `max_images`.

    Bad files are skipped, counted and listed in `data.skipped` (the notebook prints them).
    """
    from sklearn.model_selection import train_test_split

    root = resolve_dataset(DATASET_ID, data_dir)
    folder = root / "Original" if (root / "Original").is_dir() else root
    data = load_folders(folder, decode=False)
    if max_images is not None and max_images < len(data):
        picked, _ = train_test_split(
            np.arange(len(data)), train_size=max_images, stratify=data.labels, random_state=seed
        )
        data = data.subset(np.sort(picked))
    return decode_set(data, load_size, "rgb", skip_bad=True)


def preprocessing_layer(image_size=(100, 100)):
    """The paper's preprocessing as a Keras layer: resize, grayscale, scale to [0, 1]."""
    from medcnn.preprocessing import ImagePreprocessing

    return ImagePreprocessing(tuple(image_size), color_mode="grayscale", scale=1.0 / 255.0, name="preprocessing")


def preprocess(images, image_size=(100, 100), batch_size=256):
    """Apply `preprocessing_layer` to uint8 RGB images in batches; float32 (N, H, W, 1) in [0, 1]."""
    import keras

    layer = preprocessing_layer(image_size)
    parts = [keras.ops.convert_to_numpy(layer(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return np.concatenate(parts).astype("float32")


def make_split(labels, fingerprints, seed, ratios=(0.7, 0.15, 0.15), deduplicate=False):
    """Stratified train/val/test indices; with `deduplicate`, exact duplicates are removed first.

    Returns (split dict of index arrays, info dict: duplicates removed, duplicate groups across sides).
    """
    from medcnn.data.splits import train_val_test_split

    keep = np.arange(len(labels))
    removed = 0
    if deduplicate:
        _, first = np.unique(np.asarray(fingerprints), return_index=True)
        keep = np.sort(first)
        removed = len(labels) - len(keep)
    train, val, test = train_val_test_split(labels[keep], ratios=ratios, seed=seed)
    split = {"train": keep[train], "val": keep[val], "test": keep[test]}
    return split, {"duplicates_removed": removed, "duplicates_across_sides": duplicates_across(split, fingerprints)}


def duplicates_across(split, fingerprints):
    """How many evaluation images (val or test) have a byte-identical copy in the training split."""
    train = {fingerprints[i] for i in split["train"]}
    return {side: int(sum(fingerprints[i] in train for i in split[side])) for side in ("val", "test")}


# --------------------------------------------------------------------------------------------------------------
# One run: one configuration, one seed


def _fingerprint(payload):
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_paths(out_dir, key):
    """(result json, weights file) of run `key` under a run's output folder."""
    out_dir = Path(out_dir)
    return out_dir / "runs" / f"{key}.json", out_dir / "cache" / "weights" / f"{key}.weights.h5"


def scaled_epochs(config, epoch_scale):
    return max(1, int(round(config.epochs * epoch_scale)))


def build_model(config, input_shape=(100, 100, 1), num_classes=4, learning_rate=1e-3):
    """The paper's CNN for `config`, compiled with Adam as published; metrics as the paper's code would ask."""
    import keras

    from medcnn.models.scratch import allgray_cnn

    model = allgray_cnn(input_shape, num_classes, conv_layers=config.conv_layers, batch_norm=config.batch_norm)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=config.loss,
        # "accuracy" is what the paper's code asks for. tf.keras 2.x turned it into *binary* accuracy whenever the
        # loss was binary cross-entropy; Keras 3 turns it into categorical accuracy. We record both explicitly.
        metrics=["accuracy", keras.metrics.BinaryAccuracy(name="binary_accuracy")],
        jit_compile=False,  # XLA made this CNN 4x slower on the 2-core CPU (49 vs 198 img/s)
    )
    return model


def training_augmentation(seed):
    """Random horizontal and vertical flips for the "beyond" row: a cell image has no up, down, left or right.

    Free rotations would fit too but cost more than a training step of this CNN on a 2-core CPU.
    """
    import keras

    return keras.Sequential([keras.layers.RandomFlip("horizontal_and_vertical", seed=seed)], name="augmentation")


def run_configuration(config, x, labels, split, seed, run_settings, out_dir, data_fingerprint="", verbose=2):
    """Train and evaluate `config` with `seed` on `split`; reuse the cached result when nothing changed.

    Returns a dict: configuration, seed, epochs, history, true and Keras-2-style accuracies, prediction times,
    test labels and predictions, confusion matrix, elapsed seconds. The trained weights go to
    `<out_dir>/cache/weights/<key>.weights.h5` (not committed), the result to `<out_dir>/runs/<key>.json`.
    """
    import keras

    from medcnn.evaluate import keras_binary_accuracy, timed_predict
    from medcnn.data.pipeline import make_dataset

    epochs = scaled_epochs(config, run_settings["epoch_scale"])
    key = f"{config.slug}__seed{seed}"
    out_dir = Path(out_dir)
    run_path, weights_path = run_paths(out_dir, key)
    fingerprint = _fingerprint(
        {
            "config": asdict(config),
            "seed": seed,
            "epochs": epochs,
            "learning_rate": run_settings["learning_rate"],
            "image_size": list(run_settings["image_size"]),
            "data": data_fingerprint,
            "split": {
                side: hashlib.md5(np.asarray(idx, np.int64).tobytes()).hexdigest() for side, idx in split.items()
            },
        }
    )
    precision = keras.config.dtype_policy().name
    if run_settings.get("reuse_runs", True) and run_path.is_file():
        cached = json.loads(run_path.read_text())
        # runs recorded before the precision was recorded ran in float32
        if cached.get("fingerprint") == fingerprint and cached.get("precision", "float32") == precision:
            cached["cached"] = True
            return cached

    num_classes = len(CLASS_NAMES)
    onehot = np.eye(num_classes, dtype="float32")
    keras.utils.set_random_seed(seed)
    model = build_model(config, x.shape[1:], num_classes, run_settings["learning_rate"])
    train_ds = make_dataset(
        x[split["train"]],
        labels[split["train"]],
        config.batch_size,
        training=True,
        num_classes=num_classes,
        augmentation=training_augmentation(seed) if config.augment else None,
        seed=seed,
    )
    val_ds = make_dataset(
        x[split["val"]], labels[split["val"]], config.batch_size, training=False, num_classes=num_classes
    )
    started = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=verbose)
    train_s = time.perf_counter() - started

    result = {
        "configuration": config.label,
        "group": config.group,
        "settings": asdict(config),
        "seed": seed,
        "epochs": epochs,
        "fingerprint": fingerprint,
        "precision": precision,
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "train_s": train_s,
        "train_images_per_s": len(split["train"]) * epochs / train_s,
        "sizes": {side: int(len(idx)) for side, idx in split.items()},
    }
    for side in ("val", "test"):
        idx = split[side]
        probabilities, seconds = timed_predict(model, x[idx], batch_size=run_settings["predict_batch_size"])
        predicted = probabilities.argmax(axis=1)
        result[f"{side}_accuracy"] = float((predicted == labels[idx]).mean())
        result[f"{side}_keras2_accuracy"] = float(keras_binary_accuracy(onehot[labels[idx]], probabilities))
        result[f"{side}_predict_s"] = float(seconds)
        if side == "test":
            from sklearn.metrics import confusion_matrix, f1_score

            result["test_macro_f1"] = float(f1_score(labels[idx], predicted, average="macro"))
            result["test_confusion"] = confusion_matrix(labels[idx], predicted, labels=range(num_classes)).tolist()
            result["test_indices"] = [int(i) for i in idx]
            result["test_predicted"] = [int(p) for p in predicted]
            result["test_confidence"] = [round(float(p), 4) for p in probabilities.max(axis=1)]
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    run_path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(weights_path)
    run_path.write_text(json.dumps(result, indent=1))
    result["cached"] = False
    keras.backend.clear_session()
    return result


def run_plan(run_settings, groups=("table1", "conv_layers", "honest", "beyond")):
    """[(configuration, seed)] in the order they run: seed by seed, so that a cut-short run still has every row."""
    plan = []
    seeds_of = run_settings["seeds"]
    every_seed = sorted({seed for group in groups for seed in seeds_of.get(group, [])})
    for seed in every_seed:
        plan += [(config, seed) for config in configurations(groups) if seed in seeds_of.get(config.group, [])]
    return plan


def run_all(
    x,
    labels,
    fingerprints,
    run_settings,
    out_dir,
    groups=("table1", "conv_layers", "honest", "beyond"),
    data_fingerprint="",
    verbose=2,
    log=print,
):
    """Run (or reuse from `out_dir/runs/`) every configuration of `groups` for the seeds the settings give it.

    Each seed fixes the split and the initialisation. Returns the list of run results.
    """
    results = []
    for config, seed in run_plan(run_settings, groups):
        split, info = make_split(labels, fingerprints, seed, run_settings["ratios"], deduplicate=config.deduplicate)
        log(f"--- {config.label} | seed {seed} | train/val/test {[len(v) for v in split.values()]}")
        result = run_configuration(config, x, labels, split, seed, run_settings, out_dir, data_fingerprint, verbose)
        result.update(info)
        if result.get("cached"):
            log(f"    reused the cached run (val {result['val_accuracy']:.3f}, test {result['test_accuracy']:.3f})")
        results.append(result)
    return results


SUMMARY_METRICS = [
    "val_accuracy",
    "val_predict_s",
    "test_accuracy",
    "test_predict_s",
    "val_keras2_accuracy",
    "test_keras2_accuracy",
    "test_macro_f1",
    "train_images_per_s",
]


def summarise(results):
    """Mean and std over seeds per configuration: a DataFrame indexed by configuration (run order kept)."""
    frame = pd.DataFrame([{k: r[k] for k in ("configuration", "group", "seed", *SUMMARY_METRICS)} for r in results])
    order = list(dict.fromkeys(frame["configuration"]))
    grouped = frame.groupby("configuration", sort=False)
    summary = (
        grouped[SUMMARY_METRICS]
        .mean()
        .add_suffix("_mean")
        .join(grouped[SUMMARY_METRICS].std(ddof=1).add_suffix("_std"))
    )
    summary["seeds"] = grouped["seed"].count()
    summary["group"] = grouped["group"].first()
    return summary.loc[order]


def hog_features(x):
    """HOG descriptor of each (H, W, 1) image: 9 orientations, 8x8-pixel cells, 2x2-cell blocks.

    The paper gives no HOG parameters; these are scikit-image's defaults except the cell size.
    """
    from skimage.feature import hog

    return np.stack([hog(image[..., 0], orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)) for image in x])


def hog_pca_reference(features, labels, split, components=100, seed=0):
    """The paper's HOG + PCA(100) step with a classical classifier (RBF SVM, C=10) as a reference row.

    PCA is fitted on the training split only. The paper names no classifier.
    """
    from sklearn.decomposition import PCA
    from sklearn.svm import SVC

    components = min(components, len(split["train"]) - 1, features.shape[1])
    pca = PCA(n_components=components, random_state=seed).fit(features[split["train"]])
    reduced = pca.transform(features)
    # No standardisation: it would blow the low-variance (noisy) components up to the weight of the first ones.
    classifier = SVC(kernel="rbf", C=10.0, random_state=seed).fit(reduced[split["train"]], labels[split["train"]])
    row = {
        "configuration": f"HOG + PCA({pca.n_components_}) + RBF SVM",
        "seed": seed,
        "explained_variance": float(pca.explained_variance_ratio_.sum()),
    }
    for side in ("val", "test"):
        started = time.perf_counter()
        predicted = classifier.predict(reduced[split[side]])
        row[f"{side}_predict_s"] = time.perf_counter() - started
        row[f"{side}_accuracy"] = float((predicted == labels[split[side]]).mean())
    return row


def best_run(results, group="table1"):
    """The run with the highest validation accuracy in `group` (chosen on validation, never on test)."""
    candidates = [r for r in results if r["group"] == group]
    return max(candidates, key=lambda r: (r["val_accuracy"], -r["seed"]))


def export_model(result, out_dir, out_path, image_size=(100, 100), retrain=None, log=print):
    """Rebuild `result`'s model, load its weights, wrap it with its preprocessing and class names, save it.

    Weights are not committed, so in a fresh clone whose run records were reused they may be missing: then
    `retrain` (a callable returning the weights path, e.g. `lambda: retrain_run(...)`) trains that run again,
    and the log says so; without it a FileNotFoundError names the missing file.
    """
    from medcnn.preprocessing import with_preprocessing

    config = Configuration(**result["settings"])
    weights = run_paths(out_dir, f"{config.slug}__seed{result['seed']}")[1]
    if not weights.is_file():
        if retrain is None:
            raise FileNotFoundError(
                f"{weights}: the weights of run '{config.label}' seed {result['seed']} are missing."
            )
        log(f"{weights.name} is missing (run records are committed, weights are not): training that run again.")
        weights = retrain()
    from medcnn.models.scratch import allgray_cnn

    model = allgray_cnn(
        (*image_size, 1), len(CLASS_NAMES), conv_layers=config.conv_layers, batch_norm=config.batch_norm
    )
    model.load_weights(weights)
    full = with_preprocessing(model, preprocessing_layer(image_size), CLASS_NAMES, name="allgray_cnn")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    full.save(out_path)
    return out_path


def retrain_run(result, x, labels, fingerprints, run_settings, out_dir):
    """Train `result`'s configuration and seed again in `<out_dir>/cache/retrain`; returns its weights path."""
    config = Configuration(**result["settings"])
    split, _ = make_split(labels, fingerprints, result["seed"], run_settings["ratios"], deduplicate=config.deduplicate)
    scratch = Path(out_dir) / "cache" / "retrain"
    again = run_configuration(config, x, labels, split, result["seed"], run_settings, scratch, verbose=0)
    print(f"retrained: val {again['val_accuracy']:.3f}, test {again['test_accuracy']:.3f}")
    return run_paths(scratch, f"{config.slug}__seed{result['seed']}")[1]


# --------------------------------------------------------------------------------------------------------------
# Tables and the sentences the notebook prints (every number comes from the run's results)


def ours_table1(summary):
    """(means, stds) of our Table 1 rows, with the paper's columns and row labels."""
    rows = summary.loc[[c.label for c in TABLE1 if c.label in summary.index]]
    means = rows[[f"{m}_mean" for m in METRICS]].set_axis(METRICS, axis=1)
    stds = rows[[f"{m}_std" for m in METRICS]].set_axis(METRICS, axis=1)
    return means, stds


def difference_statement(summary, first=TABLE1[0].label, second=TABLE1[2].label, metric="test_accuracy"):
    """Is the paper's gap between two rows beyond our seed-to-seed noise? One sentence."""
    paper_gap = PAPER_TABLE1.loc[first, metric] - PAPER_TABLE1.loc[second, metric]
    a, b = summary.loc[first], summary.loc[second]
    ours_gap = a[f"{metric}_mean"] - b[f"{metric}_mean"]
    n = int(min(a["seeds"], b["seeds"]))
    if n < 2:
        return (
            f"The paper reports {metric} {PAPER_TABLE1.loc[first, metric]:.2f} for '{first}' vs "
            f"{PAPER_TABLE1.loc[second, metric]:.2f} for '{second}'; with a single seed we cannot tell whether "
            "such a gap "
            "is beyond noise."
        )
    noise = float(np.sqrt((a[f"{metric}_std"] ** 2 + b[f"{metric}_std"] ** 2) / n))
    verdict = "beyond" if abs(ours_gap) > 2 * noise else "within"
    return (
        f"The paper's {metric.replace('_', ' ')} gap between '{first}' and '{second}' is {paper_gap:+.2f}; "
        f"over {n} seeds "
        f"ours is {ours_gap:+.3f} with a standard error of {noise:.3f}, so our difference is {verdict} two standard "
        f"errors of seed-to-seed noise (split and initialisation), and one seed's std on this metric is "
        f"{a[f'{metric}_std']:.3f}."
    )


def binary_accuracy_statement(summary, label=TABLE1[1].label):
    """What the binary cross-entropy row's 'accuracy' most likely measured, from our own numbers."""
    row = summary.loc[label]
    true_acc, keras2_acc = row["test_accuracy_mean"], row["test_keras2_accuracy_mean"]
    paper = PAPER_TABLE1.loc[label, "test_accuracy"]
    floor = (len(CLASS_NAMES) - 1) / len(CLASS_NAMES)  # all outputs below 0.5: every zero of the one-hot is "right"
    closer = (
        "element-wise binary accuracy" if abs(paper - keras2_acc) < abs(paper - true_acc) else "true 4-class accuracy"
    )
    return (
        f"With binary cross-entropy and metrics=['accuracy'], tf.keras 2.x (the TensorFlow of 2024) silently reported "
        f"element-wise binary accuracy over the {len(CLASS_NAMES)} one-hot outputs, which is {floor:.2f} for a model "
        f"that predicts nothing (Keras 3 now reports categorical accuracy here); our runs of that row reach a true "
        f"4-class test accuracy of "
        f"{true_acc:.3f} but would have printed {keras2_acc:.3f}, so the paper's {paper:.2f} is closer to the "
        f"{closer}."
    )


def variants_table(summary, reference_rows=()):
    """Our other rows (conv layers, honest protocol, what it takes, HOG + PCA) beside the best published row."""
    keep = [TABLE1[0].label] + [c.label for c in configurations(("conv_layers", "honest", "beyond"))]
    rows = summary.loc[[label for label in keep if label in summary.index]]
    table = pd.DataFrame(
        {
            "group": rows["group"],
            "seeds": rows["seeds"],
            "val accuracy": [mean_std(m, s) for m, s in zip(rows["val_accuracy_mean"], rows["val_accuracy_std"])],
            "test accuracy": [mean_std(m, s) for m, s in zip(rows["test_accuracy_mean"], rows["test_accuracy_std"])],
            "test macro F1": rows["test_macro_f1_mean"].round(3),
            "test predict s": rows["test_predict_s_mean"].round(3),
        }
    )
    for reference in reference_rows:
        table.loc[reference["configuration"]] = {
            "group": "reference",
            "seeds": 1,
            "val accuracy": f"{reference['val_accuracy']:.3f}",
            "test accuracy": f"{reference['test_accuracy']:.3f}",
            "test macro F1": np.nan,
            "test predict s": round(reference["test_predict_s"], 3),
        }
    return table


def mean_std(mean, std, digits=3):
    """'0.812 ± 0.014', or just the mean when there is no std (a single seed)."""
    if std is None or not np.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def stuck_runs(results, margin=0.02):
    """Runs that never left the trivial solution: test accuracy within `margin` of always guessing the largest class."""
    stuck = []
    for result in results:
        counts = np.asarray(result["test_confusion"]).sum(axis=1)
        if result["test_accuracy"] <= counts.max() / counts.sum() + margin:
            stuck.append(result)
    return stuck


def findings(summary, results=None):
    """The notebook's findings as sentences, each computed from `summary` and the runs (no typed numbers)."""
    first = TABLE1[0].label
    row = summary.loc[first]
    paper = PAPER_TABLE1.loc[first, "test_accuracy"]
    reached = "reaches" if row["test_accuracy_mean"] >= paper else "does not reach"
    sentences = [
        f"The paper's best configuration ('{first}') {reached} the published test accuracy on this data: "
        f"{mean_std(row['test_accuracy_mean'], row['test_accuracy_std'])} over {int(row['seeds'])} seed(s) "
        f"vs {paper:.2f}."
    ]
    sentences.append(difference_statement(summary, first, TABLE1[2].label))
    sentences.append(difference_statement(summary, first, TABLE1[3].label))
    sentences.append(binary_accuracy_statement(summary))
    if HONEST.label in summary.index:
        honest = summary.loc[HONEST.label]
        sentences.append(
            f"Removing exact duplicates before the split changes the test accuracy of that configuration from "
            f"{mean_std(row['test_accuracy_mean'], row['test_accuracy_std'])} to "
            f"{mean_std(honest['test_accuracy_mean'], honest['test_accuracy_std'])}."
        )
    conv = [c.label for c in CONV_LAYER_VARIANTS if c.label in summary.index]
    if conv:
        parts = ", ".join(
            f"{c.conv_layers} conv layers {summary.loc[c.label, 'test_accuracy_mean']:.3f}"
            for c in [*CONV_LAYER_VARIANTS[:1], TABLE1[0], *CONV_LAYER_VARIANTS[1:]]
            if c.label in summary.index
        )
        sentences.append(f"Mean test accuracy by number of conv layers (15 epochs, batch 64, categorical CE): {parts}.")
    if results:
        stuck = stuck_runs(results)
        names = "; ".join(f"{r['configuration']} (seed {r['seed']})" for r in stuck) or "none"
        sentences.append(
            f"{len(stuck)} of {len(results)} runs never left the majority-class plateau (test accuracy within 0.02 of "
            f"always predicting the largest class): {names}. Adam at 1e-3 on this CNN sometimes fails to start, which "
            "single runs cannot show."
        )
    if BEYOND.label in summary.index:
        beyond = summary.loc[BEYOND.label]
        verdict = "passes" if beyond["test_accuracy_mean"] > paper else "still does not reach"
        sentences.append(
            f"'{BEYOND.label}' {verdict} the paper's {paper:.2f}: test accuracy "
            f"{mean_std(beyond['test_accuracy_mean'], beyond['test_accuracy_std'])} "
            f"over {int(beyond['seeds'])} seed(s)."
        )
    return sentences


def average_rows(rows):
    """Average the numeric entries of several per-seed result rows into one row (the label is kept)."""
    frame = pd.DataFrame(rows)
    averaged = frame.mean(numeric_only=True).to_dict()
    averaged["configuration"] = rows[0]["configuration"]
    averaged["seeds"] = len(rows)
    return averaged


def sample_predictions(result, labels, per_class=3):
    """Test images to show, `per_class` of each true class from `result`: dict of index/true/predicted/confidence."""
    index = np.asarray(result["test_indices"])
    predicted = np.asarray(result["test_predicted"])
    confidence = np.asarray(result["test_confidence"])
    chosen = np.concatenate([np.flatnonzero(labels[index] == k)[:per_class] for k in range(len(CLASS_NAMES))])
    return {
        "index": index[chosen],
        "true": labels[index[chosen]],
        "predicted": predicted[chosen],
        "confidence": confidence[chosen],
    }


def results_payload(info, table1, summary, results, variants, hog_rows, leak):
    """Everything `results.json` records: run info, Table 1 (paper, ours, std, delta), other rows, every run."""
    per_run_keys = (
        "configuration",
        "group",
        "seed",
        "epochs",
        "val_accuracy",
        "test_accuracy",
        "val_keras2_accuracy",
        "test_keras2_accuracy",
        "val_predict_s",
        "test_predict_s",
        "test_macro_f1",
        "train_s",
        "train_images_per_s",
        "sizes",
        "duplicates_removed",
        "duplicates_across_sides",
        "test_confusion",
    )
    table1_rows = {}
    for label in PAPER_TABLE1.index:
        part = table1[table1["row"] == label]
        table1_rows[label] = {
            metric: {"paper": r["paper"], "ours": r["ours"], "std": r["std"], "delta": r["delta"]}
            for metric, r in zip(part["metric"], part.to_dict("records"))
        }
    return {
        "study": STUDY,
        "citation": CITATION,
        "run": info,
        "table1": table1_rows,
        "summary": summary.reset_index().to_dict("records"),
        "other_rows": variants.reset_index(names="configuration").to_dict("records"),
        "hog_pca": hog_rows,
        "published_split_seed0": leak,
        "findings": findings(summary, results),
        "runs": [{key: r.get(key) for key in per_run_keys} for r in results],
    }


def report_sections(table1, summary, variants, results=None):
    """(heading, content) pairs for report.md."""
    from medcnn.report import to_wide

    wide = to_wide(table1, fields=("paper", "ours", "std")).round(3)
    wide.columns = [f"{metric} {field}" for metric, field in wide.columns]
    return [
        ("Table 1: paper vs ours (mean and std over seeds)", wide),
        ("Findings", "\n".join(f"- {sentence}" for sentence in findings(summary, results))),
        ("Beyond Table 1", variants),
    ]


def readme_table(results):
    """Markdown table of Table 1 (paper vs ours) from a `results.json` payload, for the README."""
    runs = pd.DataFrame(results["runs"])
    lines = [
        "| configuration | paper val acc | ours val acc | paper test acc | ours test acc "
        "| ours, as tf.keras 2 printed | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in results["table1"].items():
        mine = runs[runs["configuration"] == label]
        lines.append(
            f"| {label} | {row['val_accuracy']['paper']:.2f} "
            f"| {mean_std(row['val_accuracy']['ours'], row['val_accuracy']['std'])} "
            f"| {row['test_accuracy']['paper']:.2f} "
            f"| {mean_std(row['test_accuracy']['ours'], row['test_accuracy']['std'])} "
            f"| {mine['test_keras2_accuracy'].mean():.3f} | {len(mine)} |"
        )
    return "\n".join(lines)
