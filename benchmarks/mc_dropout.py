"""Benchmark: 100-pass Monte Carlo dropout, full passes vs backbone once + vectorised head.

The model is kth's shape on a MobileNetV2 backbone at 96x96: MobileNetV2 (weights=None: random initialisation, so
nothing is downloaded; the timing does not depend on the weights) -> GAP -> BN -> Dropout 0.5 -> Dense 256 ReLU ->
Dropout 0.5 -> Dense 2 softmax. Both methods run in this process on the same images; the script prints both times,
their ratio (goal >= 20x) and the largest difference between the two estimates of the mean probabilities, with the
standard error that two independent Monte Carlo estimates have.

Run from the repository root: `python benchmarks/mc_dropout.py [--images 200] [--passes 100]`.
The last line reads `mc_dropout: <ratio>x ...`.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import keras  # noqa: E402
from keras import layers  # noqa: E402

from medcnn import hardware  # noqa: E402
from medcnn.uncertainty import MCDropoutPredictor  # noqa: E402

IMAGE_SIZE = 96  # the MobileNetV2-96 setting


def kth_mobilenet(image_size=IMAGE_SIZE, classes=2, seed=0):
    """MobileNetV2 backbone (random weights) with kth's head, as nested 'backbone' and 'head' models."""
    keras.utils.set_random_seed(seed)
    backbone = keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3), include_top=False, weights=None, name="backbone"
    )
    features = keras.Input(backbone.output.shape[1:])
    x = layers.GlobalAveragePooling2D()(features)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    head = keras.Model(features, layers.Dense(classes, activation="softmax")(x), name="head")
    image = keras.Input((image_size, image_size, 3))
    return keras.Model(image, head(backbone(image, training=False)), name="kth_mobilenet_v2")


def set_batch_norm_statistics(model, images):
    """Give every BatchNormalization layer the statistics of `images`, as training would.

    With random weights and Keras' default statistics (mean 0, variance 1) MobileNetV2's features shrink to about
    1e-11, the head sees zeros and every pass gives 0.5 / 0.5. One training-mode call with momentum 0 sets each
    layer's moving statistics to those of this batch (a data-dependent initialisation); dropout masks drawn in
    that call do not matter.
    """
    batch_norms = [layer for layer in model._flatten_layers() if isinstance(layer, layers.BatchNormalization)]
    momenta = [layer.momentum for layer in batch_norms]
    for layer in batch_norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(batch_norms, momenta):
        layer.momentum = momentum


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--passes", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    hardware_description = hardware.describe_hardware()
    print(
        f"Keras {keras.__version__} ({keras.backend.backend()}), CPU: {hardware_description['cpu']}, "
        f"accelerators: {[device['name'] for device in hardware_description['accelerators']] or 'none'}"
    )
    model = kth_mobilenet()
    images = np.random.default_rng(0).uniform(-1, 1, (args.images, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    set_batch_norm_statistics(model, images[:32])

    # Warm up both paths (tracing / compiling for the shapes used below) so that the timings compare steady states:
    # each predictor keeps its MC copies and their compiled predict functions.
    fast_path, full_passes = MCDropoutPredictor(model), MCDropoutPredictor(model, fast=False)
    warm_up = images[: args.batch_size]
    fast_path.predict(warm_up, passes=args.passes, batch_size=args.batch_size)
    full_passes.predict(warm_up, passes=2, batch_size=args.batch_size)

    start = time.perf_counter()
    fast = fast_path.predict(images, passes=args.passes, seed=0, batch_size=args.batch_size)
    fast_seconds = time.perf_counter() - start
    print(f"fast path: {fast_seconds:.2f} s ({fast_path.description})")

    start = time.perf_counter()
    naive = full_passes.predict(images, passes=args.passes, seed=1, batch_size=args.batch_size)
    naive_seconds = time.perf_counter() - start
    print(f"full passes: {naive_seconds:.1f} s")

    difference = np.abs(fast.mean(axis=0) - naive.mean(axis=0))
    standard_error = np.sqrt((fast.var(axis=0) + naive.var(axis=0)) / args.passes)
    z_scores = difference / np.maximum(standard_error, 1e-12)
    ratio = naive_seconds / fast_seconds
    print(
        f"largest |mean difference| {difference.max():.4f}; largest difference in standard errors {z_scores.max():.2f} "
        "(two independent estimates of one mean: expect below about 4); "
        f"mean per-pass spread {fast.std(axis=0).mean():.4f}"
    )
    print(
        f"mc_dropout: {ratio:.1f}x faster (full passes {naive_seconds:.1f} s, backbone once + vectorised head "
        f"{fast_seconds:.2f} s; {args.images} images x {args.passes} passes, MobileNetV2-{IMAGE_SIZE} weights=None, "
        f"max |mean diff| {difference.max():.4f})"
    )


if __name__ == "__main__":
    main()
