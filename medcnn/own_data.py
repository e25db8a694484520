"""own_data: any labelled folder of images -> an honest baseline table, MC dropout referral and a saved model.

A workflow on the `medcnn.studies` contract whose data are the user's (no published study, hence outside
`medcnn/studies/`): class names and groups come from the folder (`load_data`), and there is no published table.
Rows, each over every seed: a small CNN from scratch, a linear head on frozen MobileNetV2 features, MobileNetV2 with
its last blocks fine-tuned; the majority-class reference beside them.
"""

import itertools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from medcnn.data.imageio import read_header
from medcnn.data.labels import class_weights
from medcnn.data.loaders import ImageSet, decode_set, load_folders, natural_key
from medcnn.data.splits import check_no_leakage, image_fingerprints, stratified_subset, train_val_test_split
from medcnn.data.validate import validate_dataset
from medcnn.errors import DataError
from medcnn.experiment import (
    Run, RunCache, backbone_parts, export_model, find_run, rows_table, run_all, seed_policy,
    stuck_statement, test_predictions, trained_model, truth,
)  # fmt: skip
from medcnn.models.backbones import unfreeze_last_blocks
from medcnn.models.features import feature_stats, seeded_backbone, standardise
from medcnn.models.scratch import position_cnn
from medcnn.models.transfer import split_backbone
from medcnn.report import file_list_hash
from medcnn.settings import select_settings
from medcnn.train import compile_model
from medcnn.uncertainty import mc_dropout_predict, summarise_passes

STUDY = "own_data"
CITATION = {"title": "Your own labelled images", "authors": None, "year": None, "venue": "no published study",
            "seed_file": None}  # fmt: skip
CLASS_NAMES = None  # the data's own: its class folders (or the CSV's labels) in natural order, `data.class_names`
BACKBONE = "mobilenet_v2"
ROWS = {"cnn": "small CNN from scratch", "frozen": "linear head on frozen MobileNetV2 features",
        "fine_tune": "MobileNetV2, last blocks fine-tuned"}  # fmt: skip
METRICS = {"test_balanced_accuracy": "balanced accuracy", "test_macro_f1": "macro F1",
           "test_roc_auc": "AUC (one-vs-rest)", "test_accuracy": "accuracy"}  # fmt: skip
SUMMARY_METRICS = [*METRICS, "val_balanced_accuracy", "epochs"]
_COMMON = {
    "ratios": (0.7, 0.15, 0.15),  # train / validation / test; test is held out first, whole groups where known
    "min_images_per_class": 5,  # fewer cannot give every side of the split an image of the class
    "deduplicate": True,  # byte-identical copies: the first of each is kept, so no copy sits on two sides
    "max_images": None,  # a number: a stratified slice of the folder (seed 0)
    "batch_size": 32, "learning_rate": 1e-3, "fine_tune_learning_rate": 1e-4, "head_dropout": 0.2,
    "cnn_filters": (16, 32, 64), "cnn_dropout": 0.5, "referral_threshold": 0.8,
    "predict_batch_size": 64,
}  # fmt: skip
SETTINGS = {  # smoke: 1,000 images at most, about 3 min on 2 CPU cores; cpu and full are not measured here yet
    "smoke": {**_COMMON, "image_size": (96, 96), "max_images": 1000, "seeds": [0, 1], "cnn_epochs": 6,
              "head_epochs": 30, "fine_tune_epochs": 5, "fine_tune_blocks": 2, "mc_passes": 30,
              "allow_random_weights": True},
    "cpu": {**_COMMON, "image_size": (128, 128), "seeds": [0, 1, 2], "cnn_epochs": 20, "head_epochs": 60,
            "fine_tune_epochs": 15, "fine_tune_blocks": 3, "mc_passes": 50, "allow_random_weights": True},
    "full": {**_COMMON, "image_size": (224, 224), "seeds": [0, 1, 2, 3, 4], "cnn_epochs": 40, "head_epochs": 100,
             "fine_tune_epochs": 30, "fine_tune_blocks": 4, "mc_passes": 100, "allow_random_weights": False},
}  # fmt: skip


def settings(scale="smoke", **overrides):
    """The settings of `scale` ("smoke", "cpu", "full") with the non-None `overrides` applied."""
    return select_settings(SETTINGS, scale, overrides)


def paper_tables():
    """{}: a user's data has no published table (`results_table` sets our rows beside the reference rows)."""
    return {}


def groups_from_names(paths, pattern):
    """The first group of `pattern` (`re.search` on each file name) per file: its patient, case or slide id."""
    regex = re.compile(pattern)
    if regex.groups < 1:
        raise ValueError(f"GROUP_PATTERN needs a group, e.g. '^(P[0-9]+)_' for P07_12.png. Received: {pattern!r}")
    groups = []
    for path in paths:
        match = regex.search(Path(path).name)
        if not match or not match.group(1):
            raise DataError(f"{path}: the file name does not match GROUP_PATTERN {pattern!r} (searched in the name; "
                            "its first group is the patient, case or slide id). Fix the pattern or rename the file.",
                            path=path, problem="bad_name")  # fmt: skip
        groups.append(match.group(1))
    return np.asarray(groups, dtype=str)


def read_csv(csv_path, data_dir=None):
    """An `ImageSet` (not decoded) of a CSV with the columns file, label[, group]; relative file names are taken
    from `data_dir` (default: the CSV's folder)."""
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    if not {"file", "label"} <= set(table.columns):
        raise DataError(f"{csv_path}: expected the columns file,label[,group]. Found: {list(table.columns)}.",
                        path=csv_path, problem="bad_csv")  # fmt: skip
    base = Path(data_dir) if data_dir else Path(csv_path).parent
    paths = [str(base / name) for name in table["file"]]
    for line, (path, label) in enumerate(zip(paths, table["label"]), start=2):
        if not Path(path).is_file() or not label.strip():
            problem = "no label" if Path(path).is_file() else f"no such image {path} (names are relative to {base})"
            raise DataError(f"{csv_path}, line {line}: {problem}.", path=csv_path, problem="bad_csv")
    names = sorted(set(table["label"]), key=natural_key)
    labels = np.array([names.index(label) for label in table["label"]], dtype=np.int64)
    groups = table["group"].to_numpy(dtype=str) if "group" in table else None
    return ImageSet(labels=labels, class_names=names, paths=paths, groups=groups, source=str(csv_path))


def check_counts(data, minimum):
    """DataError unless there are two classes or more, each with at least `minimum` images."""
    counts = data.class_counts()
    small = {name: count for name, count in counts.items() if count < minimum}
    if len(counts) < 2 or small:
        raise DataError(f"{data.source}: found {len(counts)} class(es), {counts}. This notebook needs at least two "
                        f"classes and {minimum} images in each (training, validation and test each need some)"
                        f"{f'; too few in {sorted(small)}' if small else ''}. Add images, or merge or remove the small "
                        "classes.", path=data.source, problem="too_few_items")  # fmt: skip


def load_data(data_dir, run_settings, csv=None, group_pattern=None):
    """The user's images, checked: (ImageSet decoded at the scale's size, RGB in [0, 1], and `checks`).

    `checks`: "report" (the validation report's text), "sizes" (Counter of (height, width)), "duplicates" (groups
    of byte-identical files), "warnings". Raises DataError naming the folder or file for whatever the run cannot
    leave out: fewer than two classes, an empty class folder, a class under `min_images_per_class`, a file name
    that does not match `group_pattern`, a CSV row without its file. Unreadable images are left out and listed.
    """
    if not data_dir and not csv:
        raise ValueError("Set DATA_DIR to your folder of labelled images (one sub-folder per class) or CSV to a "
                         "file,label[,group] table. Received: DATA_DIR=None, CSV=None")  # fmt: skip
    data = read_csv(csv, data_dir) if csv else load_folders(data_dir, decode=False)
    check_counts(data, run_settings["min_images_per_class"])
    if group_pattern:
        data.groups = groups_from_names(data.paths, group_pattern)
    if csv:  # a CSV's files may lie anywhere: their headers give the sizes (an unreadable file stops here)
        report, sizes = (
            f"{len(data)} images listed in {Path(csv).name}",
            Counter(read_header(p).size for p in data.paths),
        )
    else:
        validation = validate_dataset(data_dir)
        report, sizes = validation.to_text(), validation.sizes
    warnings = []
    by_digest = {}
    for index, digest in enumerate(image_fingerprints(data.paths)):
        by_digest.setdefault(digest, []).append(index)
    copies = [indices for indices in by_digest.values() if len(indices) > 1]
    duplicates = [[f"{Path(data.paths[i]).parent.name}/{Path(data.paths[i]).name}" for i in group] for group in copies]
    if copies and run_settings["deduplicate"]:
        warnings.append(f"{sum(len(group) - 1 for group in copies)} byte-identical copies left out (the first of each "
                        "kept), so that no image sits on two sides of the split.")  # fmt: skip
        data = data.subset(sorted(indices[0] for indices in by_digest.values()))
    if data.groups is None:
        warnings.append("No group ids (GROUP_PATTERN or a CSV group column): the split is by image. If one patient, "
                        "case or slide gave several images, its images sit on both sides and the test scores are "
                        "optimistic.")  # fmt: skip
    if run_settings["max_images"] and len(data) > run_settings["max_images"]:
        warnings.append(f"This scale uses a stratified slice of {run_settings['max_images']} of {len(data)} images.")
        data = data.subset(stratified_subset(data.labels, run_settings["max_images"], seed=0))
    data = decode_set(data, tuple(run_settings["image_size"]), "rgb", skip_bad=True)
    warnings += [f"Left out, unreadable: {reason}" for _, reason in data.skipped]
    check_counts(data, run_settings["min_images_per_class"])
    data.images = np.asarray(data.images, dtype="float32") / 255.0
    return data, {"report": report, "sizes": sizes, "duplicates": duplicates, "warnings": warnings}


def make_split(labels, groups, seed, ratios):
    """{"train", "val", "test"} indices: test held out first, then validation; whole groups where `groups`."""
    split = dict(zip(("train", "val", "test"), train_val_test_split(labels, ratios, seed, groups=groups)))
    check_no_leakage(split, groups)
    return split


def _compiled(model, learning_rate):

    return compile_model(model, "adam", learning_rate, loss="sparse_categorical_crossentropy")


def cnn_model(input_shape, num_classes, run_settings):
    """A small CNN from scratch: [Conv 3x3 -> BatchNorm -> ReLU -> MaxPool] per filter count, Dropout, softmax."""
    model = position_cnn(tuple(input_shape), num_classes, run_settings["cnn_filters"], run_settings["cnn_dropout"],
                         invert=False, name="small_cnn")  # fmt: skip
    return _compiled(model, run_settings["learning_rate"])


def head_model(feature_shape, num_classes, stats, dropout):
    """Global average pooling -> the training side's standardisation (`stats`) -> Dropout -> Dense softmax: a linear
    classifier of the backbone's features, whose dropout Monte Carlo dropout uses. Named "head"."""
    inputs = keras.Input(tuple(feature_shape), name="features")
    x = standardise(*stats)(keras.layers.GlobalAveragePooling2D(name="pool")(inputs))
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="head")


def backbone(run_settings, seed):
    """(MobileNetV2 on [0, 1] inputs, weights used): ImageNet (staged, else downloaded), else where the scale allows
    it random weights drawn from `seed`, with a RandomWeightsWarning."""
    shape, allow = (*run_settings["image_size"], 3), run_settings["allow_random_weights"]
    return seeded_backbone(BACKBONE, shape, seed, allow_random=allow, input_max=1.0, freeze=False)


def backbone_features(x, run_settings, seed):
    """{"pooled": (N, 1, 1, C) pooled features, "stem": the input of the last `fine_tune_blocks` blocks, "weights"}."""
    whole, used = backbone(run_settings, seed)
    stem, _ = split_backbone(whole, run_settings["fine_tune_blocks"], BACKBONE)
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pooled")(whole.output)
    pooled, stem = keras.Model(whole.input, [pooled, stem.output]).predict(x, run_settings["predict_batch_size"], 0)
    keras.backend.clear_session()
    return {"pooled": pooled, "stem": stem, "weights": used}


def fine_tune_model(stem_shape, num_classes, run_settings, stats, seed, head_weights=None):
    """MobileNetV2's last `fine_tune_blocks` blocks (BatchNormalization frozen: inference mode, ImageNet statistics)
    and the head, on the stem features; the head starts from `head_weights()` (the frozen row's trained head)."""
    whole, _ = backbone(run_settings, seed)
    _, tail = split_backbone(whole, run_settings["fine_tune_blocks"], BACKBONE)
    unfreeze_last_blocks(whole, run_settings["fine_tune_blocks"], BACKBONE)
    head = head_model(tail.output.shape[1:], num_classes, stats, run_settings["head_dropout"])
    if head_weights is not None:
        head.set_weights(head_weights())
    inputs = keras.Input(tuple(stem_shape), name="stem_features")
    model = keras.Model(inputs, head(tail(inputs)), name="mobilenet_v2_fine_tune")
    return _compiled(model, run_settings["fine_tune_learning_rate"])


@dataclass
class Trained:
    """The runs, their records, what each trained on ({(row key, seed): inputs}) and the backbone's weights."""

    runs: list
    records: list
    inputs: dict
    labels: np.ndarray
    class_names: list
    cache: object
    weights: str = None

    def x_of(self, run):
        return self.inputs[(run.group, run.seed)]


def train_rows(data, run_settings, out_dir, reuse=False, log=print):
    """Every row over every seed, seed by seed (each seed draws the split, initialisation, data order and dropout
    masks); records in `<out_dir>/runs/` (`reuse`: records of the same fingerprint are reused). Returns `Trained`."""
    x, labels, names, k = data.images, data.labels, data.class_names, len(data.class_names)
    trained = Trained([], [], {}, labels, names, RunCache(out_dir, reuse=reuse))
    files, features, s = file_list_hash(data.paths), None, run_settings
    for seed in s["seeds"]:
        split = make_split(labels, data.groups, seed, s["ratios"])
        if features is None or features["weights"] == "random":  # random weights: drawn anew for each seed
            features = backbone_features(x, s, seed)
        trained.weights, stats = features["weights"], feature_stats(features["pooled"][split["train"]])
        common = dict(seed=seed, split=split, batch_size=s["batch_size"], spec=s, one_hot=False,
                      class_weight=class_weights(labels[split["train"]], num_classes=k),
                      predict_batch_size=s["predict_batch_size"])  # fmt: skip
        data_id = {"files": files, "backbone_weights": features["weights"]}
        cnn = Run(ROWS["cnn"], group="cnn", epochs=s["cnn_epochs"], data=files,
                  build_model=lambda: cnn_model(x.shape[1:], k, s), **common)  # fmt: skip
        frozen = Run(ROWS["frozen"], group="frozen", epochs=s["head_epochs"], data=data_id, **common,
                     build_model=lambda st=stats, shape=features["pooled"].shape[1:]: _compiled(
                         head_model(shape, k, st, s["head_dropout"]), s["learning_rate"]))  # fmt: skip
        head = lambda r=frozen, p=features["pooled"]: trained_model(r, p, labels, names, trained.cache).get_weights()  # noqa: E731
        tuned = Run(ROWS["fine_tune"], group="fine_tune", epochs=s["fine_tune_epochs"], data=data_id,
                    starts_from=frozen, **common,
                    build_model=lambda st=stats, shape=features["stem"].shape[1:], h=head, seed=seed: fine_tune_model(
                        shape, k, s, st, seed, h))  # fmt: skip
        for run, inputs in ((cnn, x), (frozen, features["pooled"]), (tuned, features["stem"])):
            trained.inputs[(run.group, seed)] = inputs
            trained.runs.append(run)
            trained.records += run_all([run], inputs, labels, names, trained.cache, log=log)
    return trained


def row_notes(weights):
    """{row: "random weights"} for the MobileNetV2 rows when its ImageNet weights were unavailable."""
    return {ROWS["frozen"]: "random weights", ROWS["fine_tune"]: "random weights"} if weights == "random" else {}


def seeding(run_settings, weights="imagenet"):
    """What each seed varies and what is held fixed, for results.json (`experiment.seed_policy`)."""
    drawn, pretrained = backbone_parts({BACKBONE: weights})
    held = {"composition": "the images used (a stratified slice, seed 0, where `max_images` cuts the folder)"}
    return seed_policy(["split", "initialisation", "data order", "dropout masks", *drawn], {**held, **pretrained})


def results_table(summary, weights):
    """Our rows (mean ± std over seeds of the runs that learned, collapsed runs marked) and the majority-class and
    chance references on the same test sides."""
    rows = [row for row in ROWS.values() if row in summary.index]
    table = rows_table(summary, METRICS, rows=rows, row_notes=row_notes(weights) or None, references=True)
    return table.drop(columns="group", errors="ignore")


def findings(summary, records, weights):
    """Sentences printed from the run: each pair of rows compared beyond seed noise, collapsed runs, the weights."""
    of = {row: [r for r in records if r["configuration"] == row] for row in ROWS.values() if row in summary.index}
    sentences = [
        str(truth.compare_records(of[a], of[b], "test_balanced_accuracy", f"'{a}'", f"'{b}'", "test balanced accuracy"))
        for a, b in itertools.combinations(of, 2)
    ]
    sentences.append(stuck_statement(records))
    if weights == "random":
        sentences.append("No ImageNet weights for MobileNetV2 were found or downloaded: its two rows ran on random "
                         "weights (labelled so) and measure a random network, not the pretrained one.")  # fmt: skip
    return sentences


def error_analysis(best, data, top=5):
    """(the `top` most confused (true, predicted) pairs of `best`'s test side, accuracy per group or None)."""
    confusion, names = np.asarray(best["test_confusion"]), data.class_names
    pairs = [(names[i], names[j], int(confusion[i, j]), confusion[i, j] / confusion[i].sum())
             for i, j in itertools.permutations(range(len(names)), 2) if confusion[i, j]]  # fmt: skip
    confused = pd.DataFrame(sorted(pairs, key=lambda pair: -pair[2])[:top],
                            columns=["true", "predicted", "images", "share of the true class"])  # fmt: skip
    if data.groups is None:
        return confused, None
    index, predicted, _ = test_predictions(best)
    frame = pd.DataFrame({"group": data.groups[index], "correct": predicted == data.labels[index],
                          "class": [names[label] for label in data.labels[index]]})  # fmt: skip
    per_group = frame.groupby("group").agg(
        images=("correct", "size"), accuracy=("correct", "mean"), classes=("class", lambda c: ", ".join(sorted(set(c))))
    )
    return confused, per_group.sort_values("accuracy")


def referral(trained, best, run_settings):
    """Monte Carlo dropout on `best`'s test side: images referred below the confidence threshold, accuracy on the
    rest and on all. Returns a dict with the sentence to print."""
    run = find_run(trained.runs, best)
    x, test = trained.x_of(run), np.asarray(run.split["test"])
    model = trained_model(run, x, trained.labels, trained.class_names, trained.cache)
    x = x[test]
    if run.group == "fine_tune":  # dropout sits in the head only: the tuned blocks run once, the head every pass
        x, model = model.get_layer("backbone_tail").predict(x, verbose=0), model.get_layer("head")
    passes, threshold = run_settings["mc_passes"], run_settings["referral_threshold"]
    table = summarise_passes(mc_dropout_predict(model, x, passes, seed=run.seed), threshold)
    correct, kept = table["vote"].to_numpy() == trained.labels[test], ~table["refer_to_human"].to_numpy()
    result = {"row": run.label, "seed": run.seed, "passes": passes, "threshold": threshold, "test_images": len(test),
              "referred": int((~kept).sum()), "accuracy_all": float(correct.mean()),
              "accuracy_kept": float(correct[kept].mean()) if kept.any() else None}  # fmt: skip
    rest = f"{result['accuracy_kept']:.3f}" if kept.any() else "undefined (every image referred)"
    result["sentence"] = (
        f"MC dropout ({passes} passes) on '{run.label}' (seed {run.seed}) refers {result['referred']} of {len(test)} "
        f"test images (confidence below {threshold:.0%}); accuracy on the other {int(kept.sum())} is {rest}, on all "
        f"{len(test)} {result['accuracy_all']:.3f}."
    )
    return result


def export_best(trained, best, run_settings, path):
    """Save `best`'s whole classifier (raw image files in: its resize, RGB and scaling inside, class names stored)
    as `path`; returns (path, the `python -m medcnn predict` command for new files)."""
    run = find_run(trained.runs, best)
    model = trained_model(run, trained.x_of(run), trained.labels, trained.class_names, trained.cache)
    if run.group != "cnn":  # trained on features: put it on the backbone part that computed them
        whole, _ = backbone(run_settings, run.seed)
        stem = split_backbone(whole, run_settings["fine_tune_blocks"], BACKBONE)[0].output
        pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(whole.output)
        model = keras.Model(whole.input, model(pooled if run.group == "frozen" else stem))
    path = export_model(model, trained.class_names, path, input_max=1.0)
    return path, f"python -m medcnn predict {path} IMAGE_OR_FOLDER ... --csv predictions.csv"
