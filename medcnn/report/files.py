"""The files every reproduction writes to `results/<study>/<scale>/`: results.json and report.md."""

import hashlib
import json
import math
import os
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from medcnn.errors import DataError
from medcnn.report.environment import run_summary

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"


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
