"""Published tables beside ours, and the files every reproduction writes to `results/<study>/<scale>/`.

A published table is a plain pandas DataFrame (see `paper_table`): rows indexed by the paper's row label,
one column per printed metric, numbers exactly as printed, and what it is in `frame.attrs`:
`study`, `table` (e.g. "Table 5.1"), `caption`, `percent` (True when the paper printed percentages) and
`source` (where in the seed text it is printed). A DataFrame rather than a custom class, so that the notebooks
can show, index and compare it like any other table; `attrs` survive `copy()` and `reindex`.

Our results are compared in the paper's units: when `attrs["percent"]` is True, give ours in percent too
(`as_percent`).
"""

import hashlib
import importlib
import json
import math
import os
import platform
import warnings
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from medcnn.errors import DataError

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
RUN_COLUMNS = ("scale", "hardware", "data", "weights", "seeds")


# --------------------------------------------------------------------------------------------------------------
# Published tables


def paper_table(study, table, caption, columns, rows, index_name, percent=False, source=""):
    """A published table as a DataFrame indexed by its row labels, with its description in `attrs`.

    Args:
        study: study id, e.g. "kth".
        table: the paper's table id, e.g. "Table 5.1".
        caption: the caption (or a short description when the paper has none).
        columns: metric names, as printed.
        rows: a list of `(row label, value, value, ...)` tuples, numbers exactly as printed (NaN where the paper
            has no number).
        index_name: the name of the row-label column.
        percent: True when the paper printed percentages.
        source: where the table is printed (seed file, section or page).
    """
    columns = list(columns)
    for row in rows:
        if len(row) != len(columns) + 1:
            raise ValueError(
                f"Each row needs a label and {len(columns)} values (columns {columns}). Received: row={row!r}"
            )
    frame = pd.DataFrame(
        [list(row[1:]) for row in rows],
        columns=columns,
        dtype="float64",
        index=pd.Index([row[0] for row in rows], name=index_name),
    )
    frame.attrs.update({"study": study, "table": table, "caption": caption, "percent": bool(percent), "source": source})
    return frame


def as_percent(frame):
    """`frame` times 100 (fractions to percentages), attrs kept and `attrs["percent"]` set."""
    scaled = frame * 100.0
    scaled.attrs = {**frame.attrs, "percent": True}
    return scaled


def seed_summary(frames):
    """Mean and sample standard deviation over seeds of same-shaped DataFrames (one per seed).

    Returns (mean, std) DataFrames in the first frame's row and column order; std is NaN for a single seed.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("`frames` is empty: pass one DataFrame per seed.")
    stacked = pd.concat(frames, keys=range(len(frames)), names=["_seed", *frames[0].index.names])
    grouped = stacked.groupby(level=list(range(1, stacked.index.nlevels)), sort=False)
    mean = grouped.mean().reindex(index=frames[0].index, columns=frames[0].columns)
    std = grouped.std(ddof=1).reindex(index=frames[0].index, columns=frames[0].columns)
    return mean, std


def table_from_metrics(metrics_by_row, columns, percent=False, index_name=None):
    """Our side of a published table from per-row metric dicts (e.g. `classification_metrics` results).

    Args:
        metrics_by_row: {row label: {metric key: value}}.
        columns: {table column: metric key}, e.g. a study's `METRIC_KEYS["Table 5.1"]`.
        percent: multiply by 100 (for tables printed in percent) and set `attrs["percent"]`.
        index_name: name of the row-label index.

    Returns:
        DataFrame indexed by row label with the table's columns; missing keys are NaN.
    """
    frame = pd.DataFrame(
        [[metrics.get(key, np.nan) for key in columns.values()] for metrics in metrics_by_row.values()],
        index=pd.Index(list(metrics_by_row), name=index_name),
        columns=list(columns),
        dtype="float64",
    )
    return as_percent(frame) if percent else frame


# --------------------------------------------------------------------------------------------------------------
# Paper beside ours


def _numeric_columns(frame):
    return [column for column in frame.columns if pd.api.types.is_numeric_dtype(frame[column])]


def paper_vs_ours(paper, ours, run_info, std=None, metrics=None):
    """The published table beside ours, in long form: one row per (table row, metric).

    Args:
        paper: a published table (`paper_table`): index = row labels, columns = metrics.
        ours: our numbers with the same row labels and metric names, in the paper's units (the mean over
            seeds when there are several).
        run_info: the run's description (`run_info`); its scale, hardware, data set, weights and seeds are
            repeated on every row so that the table can be read on its own.
        std: optional standard deviation over seeds, shaped like `ours`.
        metrics: the metrics to compare; default every numeric column of `paper`, then of `ours`.

    Returns:
        DataFrame with columns `row`, `metric`, `paper`, `ours`, `std`, `delta` (ours - paper), `status`
        ("both", "paper only" or "ours only") and the run columns `scale`, `hardware`, `data`, `weights`,
        `seeds`. Rows and metrics found on one side only are kept, with NaN on the other side. `attrs` holds
        the paper table's attrs and `run_info`.
    """
    if metrics is None:
        metrics = list(dict.fromkeys([*_numeric_columns(paper), *_numeric_columns(ours)]))
    rows = list(dict.fromkeys([*paper.index, *ours.index]))
    if paper.attrs.get("percent") and not ours.attrs.get("percent"):
        shared = [m for m in metrics if m in ours.columns and m in paper.columns]
        values = ours[shared].to_numpy(dtype="float64").ravel() if shared else np.array([])
        values = values[np.isfinite(values)]
        if values.size and np.max(np.abs(values)) <= 1.0:
            warnings.warn(
                f"{paper.attrs.get('table', 'The paper table')} is in percent but our numbers are all <= 1: "
                "they look like fractions. Convert them with medcnn.report.as_percent(ours).",
                stacklevel=2,
            )

    def aligned(frame):
        return frame.reindex(index=rows, columns=metrics).to_numpy(dtype="float64").ravel()

    paper_values, our_values = aligned(paper), aligned(ours)
    std_values = aligned(std) if std is not None else np.full(len(rows) * len(metrics), np.nan)
    in_paper = np.repeat([row in paper.index for row in rows], len(metrics))
    in_ours = np.repeat([row in ours.index for row in rows], len(metrics))
    status = np.where(in_paper & in_ours, "both", np.where(in_paper, "paper only", "ours only"))
    comparison = pd.DataFrame(
        {
            "row": np.repeat(np.array(rows, dtype=object), len(metrics)),
            "metric": np.tile(np.array(metrics, dtype=object), len(rows)),
            "paper": paper_values,
            "ours": our_values,
            "std": std_values,
            "delta": our_values - paper_values,
            "status": status,
        }
    )
    summary = run_summary(run_info)
    for column in RUN_COLUMNS:
        comparison[column] = summary[column]
    comparison.attrs = {**paper.attrs, "index_name": paper.index.name, "run_info": run_info}
    return comparison


def to_wide(comparison, fields=("paper", "ours", "std", "delta")):
    """A `paper_vs_ours` table pivoted for reading: one row per table row, columns (metric, field)."""
    rows = list(dict.fromkeys(comparison["row"]))
    metrics = list(dict.fromkeys(comparison["metric"]))
    wide = comparison.set_index(["row", "metric"])[list(fields)].unstack("metric")
    wide.columns = wide.columns.swaplevel(0, 1)
    wide = wide.reindex(index=rows, columns=pd.MultiIndex.from_product([metrics, list(fields)]))
    wide.index.name = comparison.attrs.get("index_name") or "row"
    wide.attrs = dict(comparison.attrs)
    return wide


# --------------------------------------------------------------------------------------------------------------
# The run's description


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
    return json.dumps(to_jsonable(hardware), sort_keys=True)


def _weights_text(weights):
    if isinstance(weights, dict):
        return ", ".join(f"{name}: {value}" for name, value in weights.items())
    return "" if weights is None else str(weights)


def run_summary(info):
    """The run's description as short strings: scale, hardware, data, weights, seeds, elapsed, date, versions."""
    data = info.get("data") or {}
    versions = info.get("versions") or {}
    elapsed = info.get("elapsed_s")
    return {
        "scale": str(info.get("scale", "")),
        "hardware": _hardware_text(info.get("hardware")),
        "data": str(data.get("name", "")) if isinstance(data, dict) else str(data),
        "weights": _weights_text(info.get("weights")),
        "seeds": ", ".join(str(seed) for seed in info.get("seeds", [])),
        "elapsed": "" if elapsed is None else f"{elapsed:.1f} s",
        "date (UTC)": str(info.get("timestamp_utc", "")),
        "software": ", ".join(f"{name} {value}" for name, value in versions.items() if value),
    }


# --------------------------------------------------------------------------------------------------------------
# Files


def file_list_hash(paths, root=None):
    """sha256 of the sorted relative paths and sizes of `paths`: a fingerprint of the data a run used.

    Paths are taken relative to `root` (default: the folder that holds them all) and written with "/", so
    the same files give the same hash on any machine. Contents are not read; a changed size changes the hash.
    """
    paths = [Path(path) for path in paths]
    if not paths:
        raise ValueError("`paths` is empty: there are no files to fingerprint.")
    root = Path(root) if root is not None else Path(os.path.commonpath([str(path.parent) for path in paths]))
    lines = []
    for path in paths:
        try:
            size = path.stat().st_size
        except OSError as error:
            raise DataError(
                f"Cannot read the size of {path}: {error.strerror}. Was the file moved or deleted?",
                path=path,
                problem="missing_file",
            ) from error
        lines.append(f"{Path(os.path.relpath(path, root)).as_posix()}\t{size}\n")
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode("utf-8"))
    return digest.hexdigest()


def to_jsonable(value):
    """`value` as plain JSON types: numpy and pandas objects converted, NaN and infinities as None.

    DataFrames become a list of records (the index as the first field), Series a dict, paths strings.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, pd.DataFrame):
        frame = value.copy()
        if isinstance(frame.columns, pd.MultiIndex):
            frame.columns = [" / ".join(str(part) for part in column) for column in frame.columns]
        if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
            frame = frame.reset_index()
        return [to_jsonable(record) for record in frame.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return [to_jsonable(item) for item in value.tolist()]
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(item) for item in items]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return value
    return str(value)


def write_results(out_dir, results):
    """Write `results` (a dict) to `<out_dir>/results.json` as plain JSON (NaN -> null); returns the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULTS_FILE
    text = json.dumps(to_jsonable(results), indent=1, allow_nan=False)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(text + "\n", encoding="utf-8")
    temporary.replace(path)  # never leave a half-written results.json behind
    return path


def _cell(value, float_format):
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else float_format.format(value)
    if value is None or value is pd.NA:
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame, float_format="{:.4g}", index=None):
    """A DataFrame as a GitHub markdown table (no `tabulate` needed); NaN cells are left empty.

    Args:
        frame: the DataFrame; MultiIndex columns are joined with " / ".
        float_format: format for floats (default 4 significant digits).
        index: include the index as the first column; default when it is named or not a plain RangeIndex.
    """
    if index is None:
        index = frame.index.name is not None or not isinstance(frame.index, pd.RangeIndex)
    headers = [" / ".join(map(str, column)) if isinstance(column, tuple) else str(column) for column in frame.columns]
    rows = [[_cell(value, float_format) for value in row] for row in frame.itertuples(index=False, name=None)]
    if index:
        headers.insert(0, str(frame.index.name or ""))
        for row, label in zip(rows, frame.index):
            row.insert(0, _cell(" / ".join(map(str, label)) if isinstance(label, tuple) else label, float_format))
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(out_dir, title, run_info, sections=(), figures=()):
    """Write `<out_dir>/report.md`: the title, the run's description, the sections, then the figures.

    Args:
        out_dir: the run's results folder.
        title: the report's title.
        run_info: the run's description (`run_info`).
        sections: a list of `(heading, content)`; content is markdown text or a DataFrame (written as a table).
        figures: PNG paths; linked relative to `out_dir`, so the report renders on GitHub.

    Returns:
        The path of report.md.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = run_summary(run_info)
    counts = (run_info.get("data") or {}).get("counts") if isinstance(run_info.get("data"), dict) else None
    if counts:
        summary["data"] += f" — {json.dumps(to_jsonable(counts))}"
    lines = [f"# {title}", "", "## Run", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {_cell(value, '{}')} |" for key, value in summary.items()]
    for heading, content in sections:
        lines += ["", f"## {heading}", ""]
        lines.append(markdown_table(content) if isinstance(content, pd.DataFrame) else str(content).strip())
    if figures:
        lines += ["", "## Figures", ""]
        for figure in figures:
            figure = Path(figure)
            if not figure.is_file():
                raise FileNotFoundError(f"Figure {figure} does not exist; save it (e.g. `path=`) before the report.")
            link = Path(os.path.relpath(figure.resolve(), out_dir.resolve())).as_posix()
            lines += [f"![{figure.stem.replace('_', ' ')}]({link})", ""]
    path = out_dir / REPORT_FILE
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def results_dir(study, scale, root="results"):
    """`<root>/<study>/<scale>/`, created if needed. A relative `root` is taken from the current folder."""
    for name, value in (("study", study), ("scale", scale)):
        if not value or not isinstance(value, str) or "/" in value or "\\" in value or value.startswith("."):
            raise ValueError(
                f"`{name}` must be a plain folder name such as 'kth' or 'smoke'. Received: {name}={value!r}"
            )
    path = Path(root) / study / scale
    path.mkdir(parents=True, exist_ok=True)
    return path
