"""The published table beside ours: one long table (row, metric, paper, ours, std, delta) and its wide view."""

import warnings

import numpy as np
import pandas as pd

from medcnn.report.environment import run_summary

RUN_COLUMNS = ("scale", "hardware", "data", "weights", "seeds")


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
