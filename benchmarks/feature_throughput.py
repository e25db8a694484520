"""Benchmark: does the frozen-features workflow extract at the backbone's bare inference rate?

Run from the repository root: `python benchmarks/feature_throughput.py [--images N] [--size S] [--backbone NAME]`.

On the same in-memory images (random, float32 in [0, 1]; MobileNetV2 at 224 px by default, its ImageNet weights
where staged, else random ones), it measures images/s of:

- `bare`: `backbone.predict` of the backbone alone (its preprocessing inside), after a warm-up call;
- `workflow`: `medcnn.experiment.features.extract` end to end, into a fresh cache folder: building the seeded
  backbone, the warm-up, the timed pass (its own rate is printed too), pooling and writing the `.npz`;
- `views`: the same with one augmented view per image (cnmc's augmentation, drawn inside the prediction
  function), as rows per second over images and views;
- `reuse`: reading the cached features back (seconds).

It prints the ratios workflow / bare (goal >= 0.9 for the timed pass) and views / bare. Every number is a ratio
within one run: run it alone (a job beside it slows both sides, not the ratio).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402


def bare_rate(spec, images):
    """Images/s of `backbone.predict` on `images`, after an untimed warm-up batch."""
    from medcnn.experiment.features import backbone_model

    backbone = backbone_model(spec)
    backbone.predict(images[: spec.batch_size], batch_size=spec.batch_size, verbose=0)
    started = time.perf_counter()
    backbone.predict(images, batch_size=spec.batch_size, verbose=0)
    seconds = time.perf_counter() - started
    keras.backend.clear_session()
    return len(images) / seconds


def workflow_rate(spec, images, folder):
    """(end-to-end images/s of `extract`, its timed pass's images/s, rows, seconds) into a fresh cache folder."""
    from medcnn.experiment import features

    features._LAST.clear()
    started = time.perf_counter()
    made = features.extract(spec, images, folder, log=lambda line: None)
    seconds = time.perf_counter() - started
    return len(made.x) / seconds, made.info["inference_images_per_s"], len(made.x), seconds


def main():
    from medcnn.augment import geometric_and_zoom, with_seed
    from medcnn.experiment import features

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512, help="images per measurement")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--backbone", default="mobilenet_v2", help="registry name of the backbone")
    args = parser.parse_args()
    images = np.random.default_rng(0).random((args.images, args.size, args.size, 3), dtype="float32")
    layer = geometric_and_zoom(rotation=0.5, zoom=0.1, central_zoom_probability=0.7, central_zoom_fraction=(0.6, 1.0))
    spec = features.FeatureSpec(args.backbone, images.shape[1:], allow_random=True, input_max=1.0)
    viewed = features.FeatureSpec(
        args.backbone, images.shape[1:], allow_random=True, input_max=1.0, views=1,
        augmentation=lambda seed: with_seed(layer, 100 * seed),
    )  # fmt: skip
    weights = spec.weights_info().used
    print(f"keras {keras.__version__} on {keras.backend.backend()}; {os.cpu_count()} CPU cores; {args.backbone} at "
          f"{args.size} px ({weights} weights), {args.images} images, batch {spec.batch_size}")  # fmt: skip
    bare = bare_rate(spec, images)
    with tempfile.TemporaryDirectory() as folder:
        end_to_end, timed, rows, seconds = workflow_rate(spec, images, folder)
        with_views, _, view_rows, view_seconds = workflow_rate(viewed, images, folder)
        features._LAST.clear()
        started = time.perf_counter()
        features.extract(viewed, images, folder, log=lambda line: None)  # written by this process
        reuse = time.perf_counter() - started
    print(f"bare backbone.predict     {bare:7.1f} img/s")
    print(f"workflow, timed pass      {timed:7.1f} img/s ({timed / bare:.2f}x bare)")
    print(f"workflow, end to end      {end_to_end:7.1f} img/s ({end_to_end / bare:.2f}x bare; {rows} rows in "
          f"{seconds:.1f} s with the build, warm-up and .npz)")  # fmt: skip
    print(f"workflow with 1 view      {with_views:7.1f} rows/s ({with_views / bare:.2f}x bare; {view_rows} rows in "
          f"{view_seconds:.1f} s, views augmented inside predict)")  # fmt: skip
    print(f"reuse from the cache      {reuse:7.2f} s for {view_rows} rows")
    print(
        f"feature_throughput: workflow / bare {timed / bare:.2f} timed, {end_to_end / bare:.2f} end to end "
        "(goal >= 0.9 timed)"
    )


if __name__ == "__main__":
    main()
