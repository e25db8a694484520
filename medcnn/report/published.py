"""Published tables beside ours, and the files every reproduction writes to `results/<study>/<scale>/`.

A published table is a plain pandas DataFrame (see `paper_table`): rows indexed by the paper's row label,
one column per printed metric, numbers exactly as printed, and what it is in `frame.attrs`:
`study`, `table` (e.g. "Table 5.1"), `caption`, `percent` (True when the paper printed percentages) and
`source` (where in the seed text it is printed). A DataFrame rather than a custom class, so that the notebooks
can show, index and compare it like any other table; `attrs` survive `copy()` and `reindex`.

Our results are compared in the paper's units: when `attrs["percent"]` is True, give ours in percent too
(`as_percent`).
"""

import copy

import numpy as np
import pandas as pd


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


def with_extra_row(paper, *labels):
    """A copy of a published table with rows `labels` appended whose numbers are NaN (rows of ours only, e.g. a
    stand-in model set beside the paper's rows), its attrs kept."""
    extended = pd.concat([paper, pd.DataFrame(np.nan, index=list(labels), columns=paper.columns)])
    extended.index.name, extended.attrs = paper.index.name, dict(paper.attrs)
    return extended


def copy_tables(tables):
    """Deep copies of published tables (with their attrs), so that callers cannot change the module's data."""
    copies = {}
    for name, frame in tables.items():
        duplicate = frame.copy(deep=True)
        duplicate.attrs = copy.deepcopy(frame.attrs)
        copies[name] = duplicate
    return copies


def tables_function(tables):
    """A study's `paper_tables()`: `copy_tables(tables)`, fresh copies each call."""

    def paper_tables():
        """{table id: DataFrame}, the published numbers exactly as printed; fresh copies each call."""
        return copy_tables(tables)

    return paper_tables
