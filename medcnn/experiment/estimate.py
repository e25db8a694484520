"""Plan a scale before training it: the runs it would train and an estimate of their time on this CPU.

Each study lists its runs with `<study>.plan_runs(settings, data_dir)` (configuration, seed, kind, model, input
size, epochs, images per epoch) from its settings, its configurations and the staged data's file counts, without
decoding an image or building a model. This module holds the measured rates (`RATES`) and turns the list into a
table and a total:

    planned = allgray.plan_runs(allgray.settings("full"))
    print(estimate.plan_text("allgray", "full", planned))

or `python -m medcnn plan allgray --scale full` (`make plan-allgray SCALE=full`; `medcnn.cli.run_plan`).

Rates are images per second on this project's CPU (2 cores, TensorFlow 2.21 on float32, batch 32-64), each with
where it was measured. A rate measured at one input size is used at another in proportion to the pixel count
(`rate x measured pixels / planned pixels`, from the measured size nearest in pixels): a convolutional network's
cost grows about linearly with its pixels, less so for small inputs where fixed per-step costs weigh more. A
head on precomputed features has no input size. A model with no measured rate gets no guess: the plan lists it
as "no measured rate" and leaves it out of the total. Rates measured while other jobs shared the cores (noted
in their source) are slower than free cores, so estimates from them lean long.
"""

import math
from dataclasses import dataclass

# How each kind of run spends its time, which decides the rate it takes.
KINDS = {
    "from scratch": "a whole network trained from random initialisation on images",
    "frozen backbone + head": "a head trained on images through a frozen backbone (the backbone runs every step)",
    "frozen-feature head": "a head trained on features precomputed once (the backbone does not run)",
    "fine-tuning": "some of a pretrained backbone's blocks trained with the head",
    "feature extraction": "one inference pass of a frozen backbone over every image (and augmented copy)",
}

BENCH = "benchmarks/train_throughput.py and the issue measurements, 2 free cores, TF 2.21, batch 32-64"
CNMC_NOTE = "medcnn/studies/cnmc.py SETTINGS['cpu'] comment (scaled to free cores), batch 64"
KTH_V3 = "kth v3 rate ratios to kth_scratch_cnn at 150 px, one process, shared cores (scaled to its 109 images/s)"


@dataclass(frozen=True)
class Rate:
    """One measured rate.

    Args:
        model: the model's name as the plans use it, e.g. "mobilenet_v2" or "allgray_cnn".
        kind: a key of `KINDS`.
        image_size: (height, width) it was measured at, or None (a head on features).
        images_per_s: images (training: per epoch pass; inference: forward) per second.
        measured: where and how, e.g. a benchmark or `results/<study>/<scale>/results.json`.
    """

    model: str
    kind: str
    image_size: tuple
    images_per_s: float
    measured: str


AN2DL_V2 = "results/an2dl/cpu/results.json of the v2 run (commit 7f9b493)"


def _records(study, scale, what, shared=True):
    where = f"results/{study}/{scale}/results.json, median train_images_per_s of {what}"
    return where + (" (other jobs shared the cores for part of the run: leans slow)" if shared else "")


RATES = [
    # allgray's CNN (3 conv layers), from scratch
    Rate("allgray_cnn", "from scratch", (100, 100), 226.0, BENCH),
    Rate("allgray_cnn", "from scratch", (64, 64), 482.0, BENCH),
    Rate("allgray_cnn_bn", "from scratch", (100, 100), 101.0, BENCH + " (BatchNorm, with or without flips)"),
    Rate("allgray_cnn_2conv", "from scratch", (100, 100), 99.0, _records("allgray", "full", "3 runs")),
    Rate("allgray_cnn_4conv", "from scratch", (100, 100), 67.0, _records("allgray", "full", "3 runs")),
    Rate("mobilenet_v2", "frozen backbone + head", (100, 100), 145.0, _records("allgray", "full", "3 runs")),
    Rate("mobilenet_v2", "frozen backbone + head", (96, 48), 260.0, _records("chromosome", "cpu", "3 runs")),
    # ImageNet backbones: inference (feature extraction) and whole-network training
    Rate("mobilenet_v2", "feature extraction", (96, 96), 653.0, BENCH),
    Rate("mobilenet_v2", "from scratch", (96, 96), 197.0, BENCH),
    Rate("mobilenet_v2", "feature extraction", (224, 224), 183.0, BENCH),
    Rate("mobilenet_v2", "from scratch", (224, 224), 35.0, BENCH),
    Rate("resnet50", "feature extraction", (96, 96), 197.0, BENCH),
    Rate("resnet50", "from scratch", (96, 96), 50.0, BENCH),
    Rate("vgg16", "feature extraction", (224, 224), 12.0, BENCH),
    Rate("vgg16", "from scratch", (224, 224), 3.0, BENCH),
    Rate("inception_v3", "feature extraction", (224, 224), 65.0, CNMC_NOTE),
    Rate("resnet101_v2", "feature extraction", (224, 224), 22.0, CNMC_NOTE),
    Rate("vgg19", "feature extraction", (224, 224), 10.0, CNMC_NOTE),
    Rate("xception", "feature extraction", (96, 96), 62.6, f"{AN2DL_V2} run.feature_images_per_s "
         "(pooled and stem features of every image and copy; shared cores for part of the run)"),  # fmt: skip
    Rate("inception_resnet_v2", "feature extraction", (96, 96), 79.8, f"{AN2DL_V2} "
         "run.feature_images_per_s (shared cores for part of the run)"),  # fmt: skip
    # kth at 150 px (MobileNetV2 at 160), fine-tuning on images and heads on features
    Rate("vgg16 last block", "fine-tuning", (150, 150), 12.0, _records("kth", "cpu", "6 runs, batch 16")),
    Rate("vgg16 last two blocks", "fine-tuning", (150, 150), 11.0, _records("kth", "cpu", "6 runs, batch 16")),
    Rate("inception_v3 whole", "fine-tuning", (150, 150), 20.0, _records("kth", "cpu", "6 runs, batch 16")),
    Rate("kth_scratch_cnn", "from scratch", (150, 150), 109.0, _records("kth", "cpu", "6 runs, batch 16")),
    # kth's heads on features: the augmented-data runs (443 images); on the original data (92 images) per-epoch
    # overheads dominate and the rate was 330-590 images/s, which costs those runs seconds either way
    Rate("kth_head:vgg16", "frozen-feature head", None, 1600.0, _records("kth", "cpu", "6 augmented-data runs")),
    Rate("kth_head:inception_v3", "frozen-feature head", None, 1130.0, _records("kth", "cpu", "6 augmented-data runs")),
    Rate("kth_head:mobilenet_v2", "frozen-feature head", None, 1120.0, _records("kth", "cpu", "6 runs")),
    # kth v3 (issue 22), measured against the small CNN at 150 px in one process while other jobs shared the cores
    # (rate = 109 images/s x the measured ratio): the small CNN at 300 px 0.15-0.21 of it, MobileNetV2 whole at
    # 160 px (BatchNorm frozen) 0.55-0.64, its last two blocks on cached stem features 9.8, its last block 22
    Rate("kth_scratch_cnn", "from scratch", (300, 300), 20.0, KTH_V3),
    Rate("mobilenet_v2 whole", "fine-tuning", (160, 160), 65.0, KTH_V3),
    Rate("mobilenet_v2 last two blocks", "fine-tuning", (160, 160), 1070.0, KTH_V3),
    Rate("mobilenet_v2 last block", "fine-tuning", (160, 160), 2400.0, KTH_V3),
    # chromosome's CNNs at 64x32 (grayscale), one rate per block switched in
    *[
        Rate(f"chromosome_cnn:{block}", "from scratch", (64, 32), rate, _records("chromosome", "cpu", "3 runs"))
        for block, rate in {
            "baseline": 556.0, "residual": 355.0, "inception": 502.0, "dense": 388.0, "se": 675.0, "cbam": 473.0,
            "separable": 1243.0, "batch_norm": 362.0, "spp": 383.0, "dropout": 538.0, "recurrent": 428.0,
            "deformable": 209.0,
        }.items()
    ],  # fmt: skip
    Rate("chromosome_cnn:combination", "from scratch", (64, 32), 182.0, _records("chromosome", "cpu", "3 runs of "
         "the combination that run chose (its blocks decide the rate)")),  # fmt: skip
    # chromosome's own row at 96x48 (the fold's best combination, flips and rotations, cosine decay); the median of its
    # 5 case-grouped runs in the v3 cpu run (193-253 img/s by the blocks each fold chose)
    Rate("chromosome_cnn:ours", "from scratch", (96, 48), 208.0, _records("chromosome", "cpu", "our row's 5 "
         "case-grouped runs")),  # fmt: skip
    # an2dl at 96 px: heads on pooled features, the last block on stem features, custom CNNs from scratch
    Rate("an2dl_head", "frozen-feature head", None, 6700.0, _records("an2dl", "cpu", "the 15 frozen-backbone runs")),
    Rate("resnet50 last block", "fine-tuning", (96, 96), 93.0, f"{AN2DL_V2}, median train_images_per_s of 3 runs "
         "(on stem features: only the last block runs; shared cores)"),  # fmt: skip
    Rate("mobilenet_v2 last block", "fine-tuning", (96, 96), 2712.0, f"{AN2DL_V2}, median train_images_per_s of 3 "
         "runs (on stem features; shared cores)"),  # fmt: skip
    Rate("mobilenet_v2 last 5 blocks", "fine-tuning", (96, 96), 922.0, _records("an2dl", "cpu", "3 runs (the last "
         "stage, block_13 to Conv_1, and the study's head on 6x6x96 stem features)")),  # fmt: skip
    Rate("mobilenet_v2 whole", "fine-tuning", (96, 96), 197.0, BENCH + " (whole-network training, as 'from "
         "scratch')"),  # fmt: skip
    Rate("mobilenet_v2 whole", "fine-tuning", (128, 128), 62.0, _records("an2dl", "cpu", "3 runs of our row (a "
         "128x128 crop, the study's augmentation on every batch)")),  # fmt: skip
    Rate("mobilenet_v2 whole", "fine-tuning", (224, 224), 35.0, BENCH + " (whole-network training, as for "
         "'from scratch')"),  # fmt: skip
    Rate("an2dl_cnn:plain", "from scratch", (96, 96), 216.0, _records("an2dl", "cpu", "3 runs")),
    Rate("an2dl_cnn:residual", "from scratch", (96, 96), 116.0, _records("an2dl", "cpu", "3 runs")),
    Rate("an2dl_cnn:inception", "from scratch", (96, 96), 176.0, _records("an2dl", "cpu", "3 runs")),
    # cnmc's heads on 1x1 pooled features (35 epochs of ~7,000 rows a run)
    Rate("cnmc_head:inception_v3", "frozen-feature head", None, 10900.0, _records("cnmc", "cpu", "30 runs")),
    Rate("cnmc_head:vgg19", "frozen-feature head", None, 9600.0, _records("cnmc", "cpu", "30 runs")),
    Rate("cnmc_head:resnet101_v2", "frozen-feature head", None, 15800.0, _records("cnmc", "cpu", "30 runs")),
    Rate("cnmc_head:mobilenet_v2", "frozen-feature head", None, 17500.0, _records("cnmc", "cpu", "30 runs")),
]


@dataclass(frozen=True)
class PlannedRun:
    """One run a scale would train (or one pass it would compute), as a plan lists it.

    Args:
        label: the configuration's row label (a run's `label`).
        seed: the run's seed (a pass done once, e.g. a search, names the seed whose split it uses).
        kind: a key of `KINDS`.
        model: the name its rate is looked up under (see `RATES`).
        epochs: epochs (at most, with `early_stopping`); 1 for feature extraction.
        images_per_epoch: training images per epoch (augmented copies included), or images passed once.
        image_size: (height, width) of the model's input, or None (features).
        early_stopping: True when early stopping may end the run before `epochs`.
    """

    label: str
    seed: int
    kind: str
    model: str
    epochs: int
    images_per_epoch: int
    image_size: tuple = None
    early_stopping: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {list(KINDS)}. Received: kind={self.kind!r}")

    @property
    def image_epochs(self):
        return self.epochs * self.images_per_epoch


def _pixels(size):
    return size[0] * size[1]


def rate_for(model, kind, image_size=None, rates=None):
    """(images/s at `image_size`, the `Rate` it comes from), or None when `model` has no measured rate for `kind`.

    The measured size nearest in pixel count (by ratio) is used, its rate scaled by measured / planned pixels.
    """
    chosen = [rate for rate in (RATES if rates is None else rates) if rate.model == model and rate.kind == kind]
    if not chosen:
        return None
    if image_size is None or any(rate.image_size is None for rate in chosen):
        return chosen[0].images_per_s, chosen[0]
    nearest = min(chosen, key=lambda rate: abs(math.log(_pixels(rate.image_size) / _pixels(image_size))))
    return nearest.images_per_s * _pixels(nearest.image_size) / _pixels(image_size), nearest


def estimate_runs(planned, rates=None):
    """One row per planned run: what it trains, its image-epochs, the rate it gets and its seconds (NaN: no rate)."""
    import pandas as pd

    rows = []
    for run in planned:
        found = rate_for(run.model, run.kind, run.image_size, rates)
        measured_at = found[1].image_size if found else None
        rows.append(
            {
                "configuration": run.label,
                "seed": run.seed,
                "kind": run.kind,
                "model": run.model,
                "input": _size_text(run.image_size),
                "epochs": f"<= {run.epochs}" if run.early_stopping else str(run.epochs),
                "images/epoch": run.images_per_epoch,
                "image-epochs": run.image_epochs,
                "images/s": found[0] if found else float("nan"),
                "seconds": run.image_epochs / found[0] if found else float("nan"),
                "measured at": _size_text(measured_at) if found else "",
                "measured images/s": found[1].images_per_s if found else float("nan"),
                "rate measured": found[1].measured if found else "no measured rate",
            }
        )
    return pd.DataFrame(rows)


def _size_text(size):
    return "x".join(str(side) for side in size) if size else "features"


def plan_table(planned, rates=None):
    """The runs grouped by row (configuration, kind, model, input, epochs), in plan order: how many, their seeds,
    image-epochs, the rate used and the estimated seconds (NaN: no measured rate)."""
    frame = estimate_runs(planned, rates)
    keys = ["configuration", "kind", "model", "input", "epochs"]
    grouped = frame.groupby(keys, sort=False, dropna=False).agg(
        runs=("seed", "size"),
        seeds=("seed", lambda seeds: ", ".join(str(seed) for seed in seeds)),
        image_epochs=("image-epochs", "sum"),
        images_per_s=("images/s", "first"),
        seconds=("seconds", lambda s: s.sum(min_count=1)),
    )
    return grouped.rename(columns={"image_epochs": "image-epochs", "images_per_s": "images/s"}).reset_index()


def missing_rates(planned, rates=None):
    """One line per (model, kind) that the plan needs and `RATES` does not hold, with its runs and image-epochs."""
    frame = estimate_runs(planned, rates)
    lines = []
    for (model, kind), rows in frame[frame["seconds"].isna()].groupby(["model", "kind"], sort=False):
        lines.append(
            f"no measured rate: {model} ({kind}) at {', '.join(sorted(set(rows['input'])))}: {len(rows)} run(s), "
            f"{rows['image-epochs'].sum():,} image-epochs left out of the total"
        )
    return lines


def rates_used(planned, rates=None):
    """One line per measured rate the plan uses: model, kind, images/s at the size measured, and where."""
    frame = estimate_runs(planned, rates).dropna(subset=["seconds"])
    used = frame.drop_duplicates(["model", "kind", "measured at"])
    columns = ("model", "kind", "measured images/s", "measured at", "rate measured")
    return [
        f"{model} ({kind}): {rate:,.0f} images/s {'on features' if size == 'features' else 'at ' + size}, {where}"
        for model, kind, rate, size, where in zip(*(used[column] for column in columns))
    ]


def plan_text(study, scale, planned, rates=None, leaves_out=""):
    """The printout: the grouped table, the total in minutes, the rates used, one line per missing rate, and what
    the plan leaves out."""
    import pandas as pd

    table = plan_table(planned, rates)
    total_min = estimate_runs(planned, rates)["seconds"].sum() / 60.0
    shown = table.copy()
    shown["images/s"] = shown["images/s"].map(lambda v: "-" if pd.isna(v) else f"{v:,.0f}")
    shown["seconds"] = shown["seconds"].map(lambda v: "no rate" if pd.isna(v) else f"{v:,.0f}")
    shown["image-epochs"] = shown["image-epochs"].map("{:,}".format)
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 300,
                           "display.max_colwidth", 90):  # fmt: skip
        body = shown.to_string(index=False)
    capped = any(run.early_stopping for run in planned)
    lines = [
        f"{study}, {scale} scale: {len(planned)} runs and feature passes (this plan trains nothing)",
        body,
        "",
        f"Total: {total_min:,.1f} min ({total_min / 60:.1f} h) estimated on 2 free CPU cores"
        + (" (at most: '<= N' epochs are a cap that early stopping may cut short)" if capped else ""),
        "Rates used (at another input size scaled by pixel count from the nearest measured size):",
        *[f"  {line}" for line in rates_used(planned, rates)],
    ]
    lines += missing_rates(planned, rates)
    if leaves_out:
        lines.append(f"Not estimated: {leaves_out}")
    return "\n".join(lines)


def count_files(dataset_id, data_dir=None, subfolder=None, class_order=None):
    """{class: files} of a staged class-folder tree (`medcnn.data.paths.resolve_dataset`), nothing decoded.

    Args:
        dataset_id: e.g. "all4"; `data_dir` as for `resolve_dataset`.
        subfolder: a folder inside the data set that holds the class folders (e.g. "Original"), when it exists.
        class_order: the class folders' order (see `medcnn.data.loaders.list_folders`).
    """
    import numpy as np

    from medcnn.data.loaders import list_folders
    from medcnn.data.paths import resolve_dataset

    root = resolve_dataset(dataset_id, data_dir)
    if subfolder and (root / subfolder).is_dir():
        root = root / subfolder
    _, labels, names = list_folders(root, class_order=class_order)
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(names))
    return {name: int(count) for name, count in zip(names, counts)}
