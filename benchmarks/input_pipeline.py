"""Benchmark: is the augmented input pipeline ever the bottleneck of training the allgray CNN?

Run from the repository root: `python benchmarks/input_pipeline.py [--preset NAME] [--batches N]`.

Measures images/s of the augmented training pipeline (`medcnn.data.pipeline.make_dataset`, training split, one
`medcnn.augment` preset) and images/s of a training step of the allgray CNN (`medcnn.models.scratch.allgray_cnn`,
Adam, compiled by `medcnn.train.compile_model`: no XLA on a TensorFlow CPU, jit under JAX) on batches taken from that
pipeline. Data: the staged all4 images at 100x100 grayscale, or synthetic images of that size when all4 is not found
(the output says which). The last line is `input_pipeline: <ratio>x ...`; the goal is a ratio >= 5 (the pipeline is
never the bottleneck). Note that in a real fit both share the same CPU cores; this measures each alone.

Under TensorFlow it also measures, in a subprocess with `KERAS_BACKEND=jax`, the pipeline other backends get (a
`keras.utils.PyDataset` augmenting eagerly) on the same images, and prints its rate as a ratio of the tf.data
rate: the ceiling a JAX run on a GPU cannot train faster than. `--no-jax` skips it.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np

from medcnn import augment, train
from medcnn.data import pipeline
from medcnn.errors import DataError
from medcnn.data.loaders import load_folders
from medcnn.models.scratch import allgray_cnn
from medcnn.data.paths import resolve_dataset

# The allgray study: 100x100 grayscale, 4 classes, batch 64 in its best configuration.
IMAGE_SIZE = (100, 100)
NUM_CLASSES = 4
BATCH_SIZE = 64
SYNTHETIC_IMAGES = 3256  # the size of all4


def load_images():
    """(images uint8 (N, 100, 100, 1), labels, description): all4 when staged, synthetic otherwise."""
    try:
        root = resolve_dataset("all4") / "Original"
        start = time.perf_counter()
        data = load_folders(root, image_size=IMAGE_SIZE, color_mode="grayscale")
        seconds = time.perf_counter() - start
        return data.images, data.labels, f"all4 ({len(data)} images from {root}, decoded in {seconds:.1f} s)"
    except DataError as error:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (SYNTHETIC_IMAGES, *IMAGE_SIZE, 1), dtype=np.uint8)
        labels = rng.integers(0, NUM_CLASSES, SYNTHETIC_IMAGES)
        return images, labels, f"synthetic ({SYNTHETIC_IMAGES} random images; all4 not found: {error})"


def pipeline_rate(dataset, epochs):
    """Images/s over `epochs` full passes, after one warm-up pass (tracing, cache fill)."""
    for _ in dataset:
        pass
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in dataset:
            count += len(batch[0])
    return count / (time.perf_counter() - start)


def training_rate(batches):
    """Images/s of `train_on_batch` of the allgray CNN over `batches`, after one warm-up step."""
    model = allgray_cnn(input_shape=(*IMAGE_SIZE, 1), num_classes=NUM_CLASSES)
    train.compile_model(model, keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=[])
    model.train_on_batch(*batches[0])
    count, start = 0, time.perf_counter()
    for images, labels in batches:
        model.train_on_batch(images, labels)
        count += len(images)
    return count / (time.perf_counter() - start)


def augmented_dataset(images, labels, preset, deterministic=True):
    """The training pipeline timed here: `preset` augmentation, batches of 64, shuffled with seed 0."""
    return pipeline.make_dataset(
        images,
        labels,
        BATCH_SIZE,
        training=True,
        augmentation=augment.PRESETS[preset](seed=0),
        seed=0,
        deterministic=deterministic,
    )


RATE_PREFIX = "pipeline_images_per_second="  # how the JAX subprocess reports its rate


def jax_pipeline_rate(images, labels, preset, epochs):
    """Images/s of the PyDataset pipeline under `KERAS_BACKEND=jax`, measured in a subprocess on these images.

    Returns (rate, None), or (None, why not) when JAX is missing or the subprocess fails.
    """
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "images.npz"
        np.savez(data, images=images, labels=labels)
        env = {**os.environ, "KERAS_BACKEND": "jax"}
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave GPU memory to this process' TensorFlow
        command = [sys.executable, __file__, "--jax-pipeline-only", str(data), "--preset", preset]
        result = subprocess.run(command + ["--epochs", str(epochs)], capture_output=True, text=True, env=env)
    rates = [line[len(RATE_PREFIX) :] for line in result.stdout.splitlines() if line.startswith(RATE_PREFIX)]
    if result.returncode != 0 or not rates:
        return None, (result.stderr.strip().splitlines() or ["no output"])[-1]
    return float(rates[-1]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="rotation_flip_zoom_brightness_noise", choices=sorted(augment.PRESETS))
    parser.add_argument("--batches", type=int, default=20, help="training steps timed (batches of 64)")
    parser.add_argument("--epochs", type=int, default=2, help="pipeline passes timed")
    parser.add_argument("--no-jax", action="store_true", help="skip the JAX (PyDataset) pipeline subprocess")
    parser.add_argument("--jax-pipeline-only", metavar="NPZ", help=argparse.SUPPRESS)  # the subprocess' job
    args = parser.parse_args()

    if args.jax_pipeline_only:
        with np.load(args.jax_pipeline_only) as data:
            images, labels = data["images"], data["labels"]
        print(f"{RATE_PREFIX}{pipeline_rate(augmented_dataset(images, labels, args.preset), args.epochs)}")
        return

    images, labels, description = load_images()
    print(f"data: {description}")
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, {os.cpu_count()} CPU cores visible")
    # The JAX subprocess runs first, before this process' TensorFlow takes the GPU's memory (on a GPU machine).
    run_jax = pipeline.resolve_backend() == "tf.data" and not args.no_jax
    jax_rate, jax_problem = jax_pipeline_rate(images, labels, args.preset, args.epochs) if run_jax else (None, None)

    # tf.data: the default maps the augmentation one batch at a time (reproducible); also time AUTOTUNE calls.
    # The PyDataset (other backends) has one mode.
    modes = (True, False) if pipeline.resolve_backend() == "tf.data" else (True,)
    rates = {}
    for deterministic in modes:
        rates[deterministic] = pipeline_rate(augmented_dataset(images, labels, args.preset, deterministic), args.epochs)
        mode = "one batch at a time (default)" if deterministic else "num_parallel_calls=AUTOTUNE"
        kind = f"tf.data, augmentation {mode}" if len(modes) == 2 else "PyDataset"
        print(f"pipeline ({kind}), {args.preset}: {rates[deterministic]:,.0f} images/s")
    jax_note = ""
    if jax_rate is not None:
        jax_note = f"; JAX PyDataset {jax_rate:,.0f} images/s = {jax_rate / rates[True]:.2f}x tf.data"
        print(
            f"pipeline (PyDataset, KERAS_BACKEND=jax, subprocess), {args.preset}: {jax_rate:,.0f} images/s = "
            f"{jax_rate / rates[True]:.2f}x the tf.data default: the most images/s a JAX run can train at"
        )
    elif jax_problem is not None:
        print(f"pipeline (PyDataset, KERAS_BACKEND=jax): not measured ({jax_problem})")

    batches = []
    for batch_images, batch_labels in augmented_dataset(images, labels, args.preset):
        if len(batch_images) == BATCH_SIZE:
            batches.append((np.asarray(batch_images) / 255.0, np.asarray(batch_labels)))
        if len(batches) == args.batches + 1:
            break
    jit = train.default_jit_compile()
    step = training_rate(batches)
    print(f"training step, allgray CNN (3 conv), batch {BATCH_SIZE}, jit_compile={jit}: {step:,.0f} images/s")
    ratio = rates[True] / step
    verdict = "goal >= 5 met" if ratio >= 5 else "goal >= 5 NOT met"
    print(
        f"input_pipeline: {ratio:.1f}x augmented pipeline ({rates[True]:,.0f} images/s, {args.preset}) vs allgray "
        f"training step ({step:,.0f} images/s), {description.split(' (')[0]} 100x100 grayscale; {verdict}{jax_note}"
    )


if __name__ == "__main__":
    main()
