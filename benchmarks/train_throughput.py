"""Benchmark: does each study train at the rate this CPU allows, and does bfloat16 help?

Run from the repository root: `python benchmarks/train_throughput.py [--epochs N] [--images N] [--only NAME]`.

For each study's smallest trainable model, on the same synthetic but learnable images of the study's smoke input
shape (a bright blob whose position is the class, on a dark background, with noise), it measures training images/s
after one warm-up epoch:

- `bare`: `model.fit` on in-memory arrays (Keras' own input path);
- `pipeline`: the same model through the study's pipeline (`medcnn.data.pipeline.make_dataset` with the study's
  augmentation, then `medcnn.train.fit`), as `medcnn.experiment.train_and_evaluate` trains it;
- `bf16`: the pipeline again under the `mixed_bfloat16` dtype policy.

It prints, per model, the three rates, the ratios pipeline / bare (goal >= 0.9) and bf16 / fp32, and the held-out
accuracy of a short fp32 and bf16 run side by side, so that a speed-up that costs accuracy shows. Last, feature
extraction: images/s of a frozen MobileNetV2 at 224 px as a bare `predict` against the frozen-features path the
studies use (`medcnn.models.features.seeded_backbone` + pooling, `medcnn.evaluate.timed_predict`).

Every number is a ratio within one run: run it alone (a job beside it halves both sides, not the ratio).
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402


def learnable_images(count, shape, num_classes, seed=0):
    """(images float32 in [0, 1], labels): a blob at one of `num_classes` positions along the diagonal, plus noise."""
    rng = np.random.default_rng(seed)
    height, width, channels = shape
    labels = rng.integers(0, num_classes, count)
    images = rng.normal(0.1, 0.05, (count, height, width, channels)).astype("float32")
    for index, label in enumerate(labels):
        top = int((height - height // 4) * label / max(num_classes - 1, 1))
        left = int((width - width // 4) * label / max(num_classes - 1, 1))
        images[index, top : top + height // 4, left : left + width // 4] += 0.8
    return np.clip(images, 0, 1), labels


def allgray_case(config_name):
    from medcnn.studies import allgray

    config = {"paper": allgray.TABLE1[0], "ours": allgray.OURS}[config_name]
    return {
        "shape": (100, 100, 1),
        "classes": 4,
        "batch": config.batch_size,
        "one_hot": True,
        "build": lambda steps, epochs: allgray.build_model(config, (100, 100, 1), steps, epochs),
        "augmentation": allgray.flips if config.augment else None,
    }


def smoke_case(name, channels, build, one_hot=True, size_key="image_size"):
    """A study's model at its smoke input shape (`run_settings[size_key]`) and batch size: `build(shape,
    run_settings)` compiles it."""
    from medcnn.studies import get_study

    study = get_study(name)
    run_settings = study.settings("smoke")
    shape = (*run_settings[size_key], channels)
    return {
        "shape": shape,
        "classes": len(study.CLASS_NAMES),
        "batch": run_settings["batch_size"],
        "one_hot": one_hot,
        "build": lambda steps, epochs: build(shape, run_settings),
        "augmentation": None,
    }


def chromosome_case():
    from medcnn.studies import chromosome

    return smoke_case(
        "chromosome", 1, lambda shape, s: chromosome.build_model(chromosome.BLOCK_CONFIGURATIONS[0], shape, s)
    )


def kth_case():
    from medcnn.studies import kth

    return smoke_case("kth", 1, kth.small_cnn, size_key="scratch_size")


def an2dl_case():
    from medcnn.studies import an2dl

    def build(shape, run_settings):
        return an2dl.build_model(an2dl.Configuration("plain", "custom", model="plain"), run_settings, shape)

    return smoke_case("an2dl", 3, build, one_hot=False)


CASES = {
    "allgray CNN (Table 1)": lambda: allgray_case("paper"),
    "allgray ours (BN, flips)": lambda: allgray_case("ours"),
    "chromosome baseline CNN": chromosome_case,
    "kth small CNN": kth_case,
    "an2dl custom CNN (5 blocks)": an2dl_case,
}


class EpochTimes(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def measure(case, x, labels, epochs, path, precision="float32"):
    """(images/s after the first epoch, held-out accuracy) of one model trained `epochs` epochs on `path`."""
    from medcnn.data.pipeline import make_dataset
    from medcnn.train import fit

    keras.config.set_dtype_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        train, held_out = np.arange(len(x) * 4 // 5), np.arange(len(x) * 4 // 5, len(x))
        steps = int(np.ceil(len(train) / case["batch"]))
        model = case["build"](steps, epochs)
        timer = EpochTimes()
        num_classes = case["classes"] if case["one_hot"] else None
        if path == "bare":
            targets = np.eye(case["classes"], dtype="float32")[labels[train]] if case["one_hot"] else labels[train]
            model.fit(x[train], targets, batch_size=case["batch"], epochs=epochs, callbacks=[timer], verbose=0)
        else:
            augmentation = case["augmentation"](0) if case["augmentation"] else None
            dataset = make_dataset(x[train], labels[train], case["batch"], True, augmentation, num_classes, 0)
            fit(model, dataset, None, epochs=epochs, callbacks=[timer], verbose=0)
        rate = len(train) * (epochs - 1) / sum(timer.seconds[1:])
        predicted = np.asarray(model.predict(x[held_out], batch_size=64, verbose=0)).argmax(axis=-1)
        accuracy = float((predicted == labels[held_out]).mean())
    finally:
        keras.config.set_dtype_policy("float32")
        keras.backend.clear_session()
    return rate, accuracy


def feature_extraction(images):
    """(bare predict images/s, the studies' frozen-features path images/s) of MobileNetV2 at 224 px."""
    from medcnn.evaluate import timed_predict
    from medcnn.models.features import seeded_backbone

    backbone, _ = seeded_backbone("mobilenet_v2", (224, 224, 3), 0, "imagenet", allow_random=True, input_max=1.0)
    pooled = keras.layers.GlobalAveragePooling2D()(backbone.output)
    extractor = keras.Model(backbone.inputs, pooled)
    extractor.predict(images[:64], batch_size=64, verbose=0)  # warm-up: graph tracing
    started = time.perf_counter()
    extractor.predict(images, batch_size=64, verbose=0)
    bare = len(images) / (time.perf_counter() - started)
    _, seconds = timed_predict(extractor, images, 64)
    keras.backend.clear_session()
    return bare, len(images) / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per measurement (the first is warm-up)")
    parser.add_argument("--images", type=int, default=1280, help="synthetic images per model")
    parser.add_argument("--only", help="measure only the cases whose name contains this")
    parser.add_argument("--no-features", action="store_true", help="skip the feature-extraction measurement")
    args = parser.parse_args()
    print(f"keras {keras.__version__} on {keras.backend.backend()}; {os.cpu_count()} CPU cores; "
          f"{args.images} images, {args.epochs} epochs (rates after the first)")  # fmt: skip
    ratios = []
    for name, make in CASES.items():
        if args.only and args.only not in name:
            continue
        case = make()
        x, labels = learnable_images(args.images, case["shape"], case["classes"])
        bare, bare_accuracy = measure(case, x, labels, args.epochs, "bare")
        piped, accuracy = measure(case, x, labels, args.epochs, "pipeline")
        bf16, bf16_accuracy = measure(case, x, labels, args.epochs, "pipeline", "mixed_bfloat16")
        ratios.append(piped / bare)
        print(
            f"{name:30s} bare {bare:6.0f} img/s | pipeline {piped:6.0f} ({piped / bare:.2f}x bare) | "
            f"bf16 {bf16:6.0f} ({bf16 / piped:.2f}x fp32) | held-out accuracy fp32 {accuracy:.3f}, "
            f"bf16 {bf16_accuracy:.3f} (bare {bare_accuracy:.3f})"
        )
    if not args.no_features and not args.only:
        images = np.random.default_rng(0).random((512, 224, 224, 3), dtype="float32")
        bare, path = feature_extraction(images)
        print(f"{'MobileNetV2-224 features':30s} bare predict {bare:6.0f} img/s | studies' path {path:6.0f} "
              f"({path / bare:.2f}x bare)")  # fmt: skip
    if ratios:
        print(f"train_throughput: pipeline / bare min {min(ratios):.2f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
