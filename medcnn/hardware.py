"""What the run is on, and the precision and distribution settings that follow from it.

`describe_hardware()` goes into every results.json; `default_precision()` picks mixed precision on a GPU;
`distribution_scope()` lets the same training code use several GPUs (TensorFlow: MirroredStrategy; JAX:
`keras.distribution.DataParallel`) and does nothing on one device.
"""

import contextlib
import os
import platform
from importlib import metadata

import keras

# Packages whose versions every run records (missing ones are recorded as None).
RECORDED_PACKAGES = ("keras", "tensorflow", "jax", "jaxlib", "torch", "keras-tuner", "numpy", "scikit-learn")


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (Linux), else `platform.processor()`, else 'unknown'."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def accelerators():
    """The accelerators the Keras backend sees, as dicts {name, kind, compute_capability}.

    `kind` is 'gpu' or 'tpu'; `compute_capability` is a float like 7.5 for NVIDIA GPUs, else None.
    An empty list means CPU only. Nothing is allocated on the device.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        found = []
        for kind in ("GPU", "TPU"):
            for device in tf.config.list_physical_devices(kind):
                details = tf.config.experimental.get_device_details(device) if kind == "GPU" else {}
                capability = details.get("compute_capability")
                found.append(
                    {
                        "name": details.get("device_name", device.name),
                        "kind": kind.lower(),
                        "compute_capability": float("%d.%d" % capability) if capability else None,
                    }
                )
        return found
    if backend == "jax":
        import jax

        found = []
        for device in jax.devices():
            if device.platform == "cpu":
                continue
            capability = getattr(device, "compute_capability", None)
            found.append(
                {
                    "name": getattr(device, "device_kind", str(device)),
                    "kind": "tpu" if device.platform == "tpu" else "gpu",
                    "compute_capability": float(capability) if capability else None,
                }
            )
        return found
    if backend == "torch":
        import torch

        return [
            {
                "name": torch.cuda.get_device_name(index),
                "kind": "gpu",
                "compute_capability": float("%d.%d" % torch.cuda.get_device_capability(index)),
            }
            for index in range(torch.cuda.device_count())
        ]
    return []


def describe_hardware():
    """A JSON-ready description of the machine and software: CPU, cores, accelerators, backend, versions.

    Returns:
        dict with `cpu`, `cpu_cores` (logical cores), `cpu_cores_usable` (this process's affinity),
        `accelerators` (see `accelerators()`), `keras_backend`, `platform`, `python` and `versions`
        ({package: version or None}).
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    versions = {}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "accelerators": accelerators(),
        "keras_backend": keras.backend.backend(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def default_precision(devices=None):
    """The Keras dtype policy to train with on this machine.

    'mixed_bfloat16' on a TPU or a GPU of compute capability >= 8 (A100, L4, H100, H200), 'mixed_float16' on an
    NVIDIA GPU of capability 7.x (V100, T4), 'float32' on older GPUs (mixed precision only speeds up from 7.0, as
    Keras' mixed-precision guide says) and on the CPU. Outputs stay float32 either way when the model's last
    layer is given `dtype="float32"`.

    Args:
        devices: list of dicts as returned by `accelerators()`; defaults to this machine's.
    """
    devices = accelerators() if devices is None else devices
    if not devices:
        return "float32"
    if any(device["kind"] == "tpu" for device in devices):
        return "mixed_bfloat16"
    capability = min((device.get("compute_capability") or 0.0) for device in devices)
    if capability >= 8.0:
        return "mixed_bfloat16"
    if capability >= 7.0:
        return "mixed_float16"
    return "float32"


@contextlib.contextmanager
def distribution_scope():
    """Run the enclosed model building and training on every local accelerator; a no-op on one device.

    TensorFlow: inside `tf.distribute.MirroredStrategy().scope()` when there is more than one GPU, else the
    default strategy's scope. JAX: sets `keras.distribution.DataParallel()` over all devices when there is more
    than one, and restores the previous distribution on exit. Build *and* compile the model inside the scope.

    Example:
        with distribution_scope():
            model = build_model()
            compile_model(model)
        fit(model, train, val)
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
        with strategy.scope():
            yield strategy
        return
    if backend == "jax":
        import jax

        if len(jax.devices()) > 1:
            previous = keras.distribution.distribution()
            keras.distribution.set_distribution(keras.distribution.DataParallel())
            try:
                yield keras.distribution.distribution()
            finally:
                keras.distribution.set_distribution(previous)
            return
    yield None


PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
PRECISION_VARIABLE = "MEDCNN_PRECISION"


def chosen_precision(devices=None):
    """The precision asked for in `$MEDCNN_PRECISION` (one of `PRECISIONS`), else `default_precision(devices)`.

    On a CPU with AVX-512 bf16 / AMX, `MEDCNN_PRECISION=mixed_bfloat16` trains faster than float32
    (`benchmarks/train_throughput.py` measures by how much, and the accuracy of a short run beside it); the
    default stays float32 there, the precision the committed CPU results were trained in.
    """
    import os

    asked = os.environ.get(PRECISION_VARIABLE, "").strip()
    if not asked:
        return default_precision(devices)
    if asked not in PRECISIONS:
        raise ValueError(f"${PRECISION_VARIABLE} must be one of {list(PRECISIONS)} or unset. Received: {asked!r}")
    return asked


def apply_default_precision(devices=None):
    """Set Keras' global dtype policy to `chosen_precision()` and return its name.

    Call it before building models: float32 on the CPU (nothing changes) unless `$MEDCNN_PRECISION` asks for
    another, mixed precision on a GPU. Models keep their probability outputs in float32 (their last layer sets
    `dtype="float32"`). The run records and results.json record the precision; a recorded run is reused only under
    the same precision.
    """
    import keras

    policy = chosen_precision(devices)
    keras.config.set_dtype_policy(policy)
    return policy
