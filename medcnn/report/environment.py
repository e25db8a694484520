"""What a run was: hardware, software versions, scale, data, weights, seeds and time."""

import importlib
import json
import os
import platform
from collections import Counter
from datetime import datetime, timezone

import numpy as np
import pandas as pd


def _fallback_hardware():
    return {
        "summary": f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs), no GPU information",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "source": "platform",
    }


def describe_hardware():
    """`medcnn.hardware.describe_hardware()` when that module exists, else a description from `platform`."""
    try:
        module = importlib.import_module("medcnn.hardware")
        describe = module.describe_hardware
    except ImportError as error:
        if getattr(error, "name", None) not in (None, "medcnn.hardware"):
            raise  # medcnn.hardware exists but one of its own imports is broken: say so
        return _fallback_hardware()
    except AttributeError:
        return _fallback_hardware()
    description = describe()
    return description if isinstance(description, dict) else {"summary": str(description)}


def _package_version(name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def software_versions():
    """Python, Keras, the Keras backend and its version, NumPy, scikit-learn, pandas, medcnn."""
    import keras

    import medcnn

    backend = keras.backend.backend()
    backend_package = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend, backend)
    versions = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": _package_version(backend_package),
        "numpy": np.__version__,
        "scikit-learn": _package_version("scikit-learn"),
        "pandas": pd.__version__,
        "medcnn": medcnn.__version__,
    }
    return versions


def run_info(scale, data_name, data_counts, weights, seeds, elapsed_s, extra=None):
    """What a run was: scale, data set and counts, weights, seeds, time, hardware, versions, UTC timestamp.

    Args:
        scale: "smoke" or "full" (or the name of another budget).
        data_name: the data set, e.g. "all4 (Kaggle 'Leukemia', staged subset)".
        data_counts: counts as a dict, e.g. {"train": {...per class...}, "test": {...}}.
        weights: "imagenet", "random" (say why in `extra`), "none" (a model from scratch), or a dict per model.
        seeds: an int or a list of ints.
        elapsed_s: seconds the run took.
        extra: optional dict of anything else to record (merged in last).

    Returns:
        A dict of plain values, ready for `write_results` and `paper_vs_ours`.
    """
    seeds = [int(seeds)] if isinstance(seeds, (int, np.integer)) else [int(seed) for seed in seeds]
    info = {
        "scale": scale,
        "data": {"name": data_name, "counts": data_counts},
        "weights": weights,
        "seeds": seeds,
        "elapsed_s": None if elapsed_s is None else float(elapsed_s),
        "hardware": describe_hardware(),
        "versions": software_versions(),
        "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    info.update(extra or {})
    return info


def _hardware_text(hardware):
    """A one-line hardware label, e.g. "NVIDIA H100 80GB HBM3 (gpu)" or "AMD EPYC, 2 CPU cores, no GPU"."""
    if not isinstance(hardware, dict):
        return "" if hardware is None else str(hardware)
    if hardware.get("summary"):
        return str(hardware["summary"])
    devices = hardware.get("accelerators") or []
    if devices:
        names = [
            f"{device.get('name', '?')} ({device.get('kind', 'gpu')})" if isinstance(device, dict) else str(device)
            for device in devices
        ]
        return ", ".join(f"{count} x {name}" if count > 1 else name for name, count in Counter(names).items())
    if hardware.get("cpu"):
        cores = hardware.get("cpu_cores_usable") or hardware.get("cpu_cores")
        return f"{hardware['cpu']}, {cores} CPU cores, no GPU" if cores else f"{hardware['cpu']}, no GPU"
    return json.dumps(hardware, sort_keys=True, default=str)


def _weights_text(weights):
    if isinstance(weights, dict):
        return ", ".join(f"{name}: {value}" for name, value in weights.items())
    return "" if weights is None else str(weights)


def run_summary(info):
    """The run's description as short strings: scale, hardware, data, weights, seeds, elapsed, date, versions.

    `elapsed` is the whole run's `elapsed_s`; where the info holds the runs' training time (`training_s_all_runs`,
    `training_s_now`, from `experiment.run_counts`), a `training` line follows it; where runs were trained again to
    restore their missing weights (`weights_restored`), a `weights restored` line follows `runs`.
    """
    data = info.get("data") or {}
    versions = info.get("versions") or {}
    elapsed = info.get("elapsed_s")
    training = {}
    if info.get("training_s_all_runs") is not None:
        now = info.get("training_s_now")
        training["training"] = f"{info['training_s_all_runs']:.1f} s, summed over the runs" + (
            "" if now is None else f" ({now:.1f} s of it trained in this pass)"
        )
    restored = info.get("weights_restored")  # runs trained again because their weights were missing
    restored = {"weights restored": f"{'; '.join(restored)} (trained again)"} if restored else {}
    return {
        "scale": str(info.get("scale", "")),
        "hardware": _hardware_text(info.get("hardware")),
        "data": str(data.get("name", "")) if isinstance(data, dict) else str(data),
        "weights": _weights_text(info.get("weights")),
        "seeds": ", ".join(str(seed) for seed in info.get("seeds", [])),
        "elapsed": "" if elapsed is None else f"{elapsed:.1f} s",
        **training,
        "runs": str(info.get("runs", "")),
        **restored,
        "date (UTC)": str(info.get("timestamp_utc", "")),
        "software": ", ".join(f"{name} {value}" for name, value in versions.items() if value),
    }
