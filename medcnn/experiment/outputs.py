"""What a study's run writes: the paper-vs-ours tables, `results.json`, `report.md`, and the README's table.

Every study calls the same four: `compare` (a published table beside our summary), `results_payload`,
`write_outputs` and `readme_table` / `update_readme`.
"""

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from medcnn import report
from medcnn.experiment.plan import run_counts
from medcnn.experiment import truth
from medcnn.experiment.summary import mean_std

RECORD_KEYS = (
    "configuration",
    "group",
    "seed",
    "epochs",
    "cached",
    "snapshot_of",
    "val_accuracy",
    "val_balanced_accuracy",
    "val_macro_f1",
    "test_accuracy",
    "test_balanced_accuracy",
    "test_macro_f1",
    "test_roc_auc",
    "val_predict_s",
    "test_predict_s",
    "train_s",
    "train_images_per_s",
    "sizes",
    "test_confusion",
)


def paper_decimals(paper):
    """The decimals the paper printed: `attrs["decimals"]`, else the fewest that show every value (2 for fractions)."""
    if "decimals" in paper.attrs:
        return int(paper.attrs["decimals"])
    values = paper.to_numpy(dtype="float64").ravel()
    values = values[np.isfinite(values)]
    needed = next((d for d in range(5) if np.allclose(np.round(values, d), values)), 4)
    return max(needed, 2) if values.size and np.abs(values).max() <= 1 else needed


ROW_FIELDS = ("runs", "epochs", "collapsed", "note")  # the fields of a results.json table row that are no metric


def _beside(paper, summary, metric_keys, rows):
    """{title: (key, scale, printed metric)}: balanced accuracy (and ROC-AUC for two classes) beside plain accuracy."""
    binary = "classes" in summary and summary.loc[rows, "classes"].max() == 2
    extra = {}
    for title, key in metric_keys.items():
        match = re.match(r"^(val|test)_accuracy(_percent)?$", key)
        if not match:
            continue
        side = match.group(1)
        for name, label in (("balanced_accuracy", "balanced accuracy"), ("roc_auc", "ROC-AUC")):
            other = f"{side}_{name}"
            if other in metric_keys.values() or f"{other}_mean" not in summary or (name == "roc_auc" and not binary):
                continue
            values = summary.loc[rows, f"{other}_mean"].to_numpy(dtype="float64")
            fractions = not np.any(np.abs(values[np.isfinite(values)]) > 1)
            scale = 100.0 if (match.group(2) or paper.attrs.get("percent")) and fractions else 1.0
            extra[f"{side} {label}" + (" %" if scale == 100.0 else "")] = (other, scale, title)
    return extra


def compare(paper, summary, info, metric_keys=None, row_notes=None):
    """The published table beside our mean ± std (long form, `report.paper_vs_ours`), rows and metrics of the paper,
    with what makes it honest: collapsed runs, the runs that learned, reference rows and balanced accuracy.

    Args:
        paper: a published table (rows = configurations, columns = metrics as printed).
        summary: `summarise` output whose index holds (some of) the paper's rows, with `<key>_mean` / `<key>_std`
            (and, from records with test confusion matrices, `collapsed`, `<key>_learned_mean` / `_std` and
            `<key>_reference_majority` / `_chance`).
        info: the run's description (`report.run_info`).
        metric_keys: {printed column: our metric key}, e.g. {"test acc": "test_accuracy"}; default: the columns
            themselves, those the summary has.
        row_notes: {row: note} shown in the row's label, e.g. {"VGG16": "random weights"}.

    Returns:
        DataFrame with `report.paper_vs_ours`'s columns plus `runs`, (`epochs`), `key`, `learned`, `learned_std`,
        `collapsed` (NaN where not checked), `note` and `beside` (the printed metric an added balanced accuracy or
        ROC-AUC stands beside); rows "reference: majority class" and "reference: chance" (status "reference") hold
        what those predictors score on the runs' test sides, averaged over the runs.
    """
    metric_keys = metric_keys or {column: column for column in paper.columns if f"{column}_mean" in summary}
    columns = list(metric_keys)
    rows = [row for row in paper.index if row in summary.index]
    ours = summary.loc[rows, [f"{metric_keys[c]}_mean" for c in columns]].set_axis(columns, axis=1)
    std = summary.loc[rows, [f"{metric_keys[c]}_std" for c in columns]].set_axis(columns, axis=1)
    beside = _beside(paper, summary, metric_keys, rows)
    table = report.paper_vs_ours(paper, ours, info, std=std, metrics=columns)
    attrs = dict(table.attrs)  # concat below keeps no attrs
    table["runs"] = table["row"].map(summary["runs"]).fillna(0).astype(int)
    if "epochs_mean" in summary:  # what was trained, e.g. a smoke run's fraction of the published epochs
        table["epochs"] = table["row"].map(summary["epochs_mean"]).round()
    table["key"], table["beside"] = table["metric"].map(metric_keys), None
    added = []
    for title, (key, scale, base) in beside.items():
        extra = table[table["metric"] == base].copy()
        extra["metric"], extra["key"], extra["beside"], extra["paper"] = title, key, base, np.nan
        extra["ours"] = extra["row"].map(summary[f"{key}_mean"] * scale)
        extra["std"] = extra["row"].map(summary[f"{key}_std"] * scale)
        extra["delta"] = np.nan
        added.append(extra)
    scales = {title: scale for title, (_, scale, _) in beside.items()}
    table = pd.concat([table, *added], ignore_index=True)
    metric_order = [m for c in columns for m in [c, *[t for t in beside if beside[t][2] == c]]]
    positions = {"row": {r: i for i, r in enumerate(paper.index)}, "metric": {m: i for i, m in enumerate(metric_order)}}
    table = table.sort_values(["row", "metric"], key=lambda s: s.map(positions[s.name]), kind="stable")
    table = table.reset_index(drop=True)

    def stat(row, key, name, scale):
        column = f"{key}_{name}"
        return summary.at[row, column] * scale if row in summary.index and column in summary else np.nan

    scale_of = [scales.get(metric, 1.0) for metric in table["metric"]]
    table["learned"] = [
        stat(row, key, "learned_mean", scale) if f"{key}_learned_mean" in summary else ours_value
        for row, key, scale, ours_value in zip(table["row"], table["key"], scale_of, table["ours"])
    ]
    table["learned_std"] = [
        stat(row, key, "learned_std", scale) if f"{key}_learned_std" in summary else std_value
        for row, key, scale, std_value in zip(table["row"], table["key"], scale_of, table["std"])
    ]
    table["majority"] = [
        stat(row, key, "reference_majority", scale) for row, key, scale in zip(table["row"], table["key"], scale_of)
    ]
    if "collapse_checked" in summary:
        checked = summary["collapsed"].where(summary["collapse_checked"] > 0)
        table["collapsed"] = table["row"].map(checked)
    else:
        table["collapsed"] = np.nan
    table["note"] = table["row"].map(row_notes or {})
    references = []
    for name, label in truth.REFERENCE_ROWS.items():
        for metric in dict.fromkeys(table["metric"]):
            key, scale = (beside[metric][0], beside[metric][1]) if metric in beside else (metric_keys[metric], 1.0)
            column = f"{key}_reference_{name.split()[0]}"
            if column not in summary or not rows:
                continue
            values = summary.loc[rows, column].to_numpy("float64")
            weights = summary.loc[rows, "runs"].to_numpy("float64")
            keep = np.isfinite(values)
            if keep.any():
                value = float(np.average(values[keep], weights=weights[keep])) * scale
                references.append({**table.iloc[0].to_dict(), "row": label, "metric": metric, "paper": np.nan,
                                   "ours": value, "std": np.nan, "delta": np.nan, "status": "reference", "runs": 0,
                                   "key": key, "beside": beside.get(metric, (None, None, None))[2], "learned": value,
                                   "learned_std": np.nan, "collapsed": np.nan, "note": np.nan, "majority": np.nan,
                                   **({"epochs": np.nan} if "epochs" in table else {})})  # fmt: skip
    if references:
        table = pd.concat([table, pd.DataFrame(references)], ignore_index=True)
    table.attrs = {**attrs, "decimals": paper_decimals(paper)}
    return table


def value_range(low, high, digits=3):
    """"low–high" at `digits` decimals, or one value where both print the same."""
    low_text, high_text = f"{low:.{digits}f}", f"{high:.{digits}f}"
    return low_text if low_text == high_text else f"{low_text}–{high_text}"


def _ours_cell(entry, digits):
    """mean ± std of the runs that learned; "(all n: mean)" beside it when some collapsed; "collapsed" for all."""
    collapsed, runs = entry.get("collapsed", np.nan), entry.get("runs", 0)
    if collapsed is None or not np.isfinite(collapsed) or collapsed == 0:
        return mean_std(entry["ours"], entry["std"], digits)
    if collapsed >= runs:
        return "collapsed"
    learned = mean_std(entry.get("learned", np.nan), entry.get("learned_std", np.nan), digits)
    return f"{learned} (all {int(runs)}: {entry['ours']:.{digits}f})"


def _own_majority(ours_rows, metrics, added):
    """The first metric whose majority-class reference differs between rows (rows tested on different sides), so
    that each row shows its own; None when one reference row holds for all."""
    if "majority" not in ours_rows:
        return None
    for metric in metrics:
        values = ours_rows.loc[ours_rows["metric"] == metric, "majority"].to_numpy(dtype="float64")
        values = values[np.isfinite(values)]
        if metric not in added and values.size:
            return metric if np.ptp(values) > 1e-6 else None
    return None


def _majority_ranges(ours_rows, metrics):
    """{metric: (min, max)} of the rows' own majority-class references, for the metrics where they differ (rows
    tested on different sides): the pooled reference row then shows this range, not a mean that matches no side."""
    if "majority" not in ours_rows:
        return {}
    ranges = {}
    for metric in metrics:
        values = ours_rows.loc[ours_rows["metric"] == metric, "majority"].to_numpy(dtype="float64")
        values = values[np.isfinite(values)]
        if values.size and np.ptp(values) > 1e-6:
            ranges[metric] = (float(values.min()), float(values.max()))
    return ranges


def _is_beside(entry):
    beside = entry.get("beside")
    return isinstance(beside, str) and bool(beside)


def comparison_markdown(comparison, headers=None, digits=3):
    """A comparison as a markdown table: per metric the paper (at its printed precision) and ours.

    Ours is mean ± std of the runs that learned; where some runs collapsed the all-run mean follows and the
    `collapsed` column says "k of n"; where all did, the cell says "collapsed". Added metrics (balanced accuracy,
    ROC-AUC beside accuracy) have no paper column. The reference rows show our side only.

    Args:
        comparison: `compare` output.
        headers: {metric: column title}, default the metric names.
        digits: decimals of our numbers.
    """
    decimals = comparison.attrs.get("decimals", 2)
    is_reference = comparison["status"].eq("reference") if "status" in comparison else comparison["row"].isna()
    ours_rows, reference_rows = comparison[~is_reference], comparison[is_reference]
    first = {metric: entry for metric, entry in zip(ours_rows["metric"], ours_rows.to_dict("records"))}
    metrics = list(dict.fromkeys(ours_rows["metric"]))
    added = {metric for metric in metrics if _is_beside(first[metric])}
    headers = headers or {}
    columns = []
    for metric in metrics:
        title = headers.get(metric, metric)
        columns += [f"ours {title}"] if metric in added else [f"paper {title}", f"ours {title}"]
    trained = ["epochs trained"] if "epochs" in comparison else []
    flagged = ["collapsed"] if "collapsed" in ours_rows and ours_rows["collapsed"].notna().any() else []
    own = _own_majority(ours_rows, metrics, added)
    flagged += [f"majority class, {headers.get(own, own)}"] if own else []
    lines = [
        "| " + " | ".join([comparison.attrs.get("index_name") or "row", *columns, *trained, "runs", *flagged]) + " |",
        "|" + "---|" * (len(columns) + len(trained) + 2 + len(flagged)),
    ]
    for row, part in ours_rows.groupby("row", sort=False):
        entries = {entry["metric"]: entry for entry in part.to_dict("records")}
        cells = []
        for metric in metrics:
            entry = entries.get(metric, {"paper": np.nan, "ours": np.nan, "std": np.nan})
            if metric not in added:
                cells.append("" if not np.isfinite(entry["paper"]) else f"{entry['paper']:.{decimals}f}")
            cells.append(_ours_cell(entry, digits))
        if trained:
            epochs = part["epochs"].iloc[0]
            cells.append("" if not np.isfinite(epochs) else str(int(epochs)))
        runs = int(part["runs"].iloc[0])
        cells.append(str(runs))
        if "collapsed" in flagged:
            cells.append(truth.collapsed_note(part["collapsed"].iloc[0], runs))
        if own:
            value = entries.get(own, {}).get("majority", np.nan)
            cells.append("" if value is None or not np.isfinite(value) else f"{value:.{digits}f}")
        note = part["note"].iloc[0] if "note" in part else None
        label = f"{row} *({note})*" if isinstance(note, str) and note else str(row)
        lines.append("| " + " | ".join([label, *cells]) + " |")
    ranges = _majority_ranges(ours_rows, metrics)
    for row, part in reference_rows.groupby("row", sort=False):
        values = dict(zip(part["metric"], part["ours"]))
        cells = []
        for metric in metrics:
            value = values.get(metric, np.nan)
            cell = "" if not np.isfinite(value) else f"{value:.{digits}f}"
            if row == truth.REFERENCE_ROWS["majority class"] and cell and metric in ranges:
                low, high = ranges[metric]  # rows tested on different sides: no one pooled reference holds
                cell = value_range(low, high, digits)
            cells += ([] if metric in added else [""]) + [cell]
        lines.append("| " + " | ".join([str(row), *cells, *[""] * (len(trained) + 1 + len(flagged))]) + " |")
    return "\n".join(lines)


def table_payload(comparison):
    """{row: {metric: {paper, ours, std, delta, key, learned, learned_std[, beside]}, runs[, epochs, collapsed,
    note]}} for results.json (the reference rows go to `reference_payload`)."""
    rows = {}
    for record in comparison.to_dict("records"):
        if record.get("status") == "reference":
            continue
        entry = {key: record[key] for key in ("paper", "ours", "std", "delta")}
        entry.update({key: record[key] for key in ("key", "learned", "learned_std") if key in record})
        if record.get("majority") is not None and np.isfinite(record["majority"]):
            entry["majority"] = record["majority"]
        if _is_beside(record):
            entry["beside"] = record["beside"]
        rows.setdefault(record["row"], {})[record["metric"]] = entry
        rows[record["row"]]["runs"] = int(record["runs"])
        if "epochs" in record and np.isfinite(record["epochs"]):
            rows[record["row"]]["epochs"] = int(record["epochs"])
        if record.get("collapsed") is not None and np.isfinite(record["collapsed"]):
            rows[record["row"]]["collapsed"] = int(record["collapsed"])
        if isinstance(record.get("note"), str) and record["note"]:
            rows[record["row"]]["note"] = record["note"]
    return rows


def reference_payload(comparison):
    """{"reference: majority class": {metric: value}, "reference: chance": {...}} of a comparison ({} if none)."""
    if "status" not in comparison:
        return {}
    chosen = comparison[comparison["status"] == "reference"]
    return {row: dict(zip(part["metric"], part["ours"])) for row, part in chosen.groupby("row", sort=False)}


def results_payload(study, citation, info, tables, summary, records, findings, extra=None, record_keys=RECORD_KEYS):
    """Everything `results.json` records: the run, each table (paper, ours, std, delta), the summary, every run.

    Args:
        study, citation: the study module's `STUDY` and `CITATION`.
        info: `report.run_info(...)`; the run counts (trained now, reused, training seconds) are added to it.
        tables: {table id: `compare` output}.
        summary: `summarise` output over every configuration.
        records: the run records.
        findings: the sentences the notebook printed.
        extra: anything else the study records (reference rows, leak counts, ...).
        record_keys: which fields of each record to keep (histories and per-image predictions stay in runs/).
    """
    return {
        "study": study,
        "citation": citation,
        "run": {**info, **run_counts(records)},
        "tables": {name: table_payload(comparison) for name, comparison in tables.items()},
        "paper_decimals": {name: comparison.attrs.get("decimals", 2) for name, comparison in tables.items()},
        "references": {name: reference_payload(c) for name, c in tables.items() if reference_payload(c)},
        "summary": summary.reset_index().to_dict("records"),
        "findings": list(findings),
        **(extra or {}),
        "runs": [{key: record[key] for key in record_keys if key in record} for record in records],
    }


def write_outputs(out_dir, payload, title, sections, figures=()):
    """Write `results.json` and `report.md`. The report's run table says how many runs were trained now and reused;
    its elapsed is the run's `elapsed_s` (a notebook's wall time), its training the runs' own training time."""
    counts = payload["run"]
    info = {**counts, "runs": f"{counts['runs']} ({counts['trained_now']} trained now, {counts['reused']} reused)"}
    results = report.write_results(out_dir, payload)
    markdown = report.write_report(out_dir, title, info, sections, figures)
    return results, markdown


def _runs_of(runs, row, table):
    """The run records of a table row: configuration == row, or "row | protocol | ..." for a table "... (protocol)"."""
    protocol = re.search(r"\(([^()]+)\)\s*$", table)
    chosen = []
    for run in runs:
        parts = str(run.get("configuration", "")).split(" | ")
        if run.get("configuration") == row or (
            len(parts) > 1 and parts[0] == row and (protocol is None or protocol.group(1) in parts[1:])
        ):
            chosen.append(run)
    return chosen


def _infer_key(runs, title, ours):
    """(key, scale) of the run field whose mean over `runs` (or 100 times it) is `ours`; None if none is."""
    words = set(re.findall(r"[a-z0-9]+", title.lower().replace("acc", "accuracy").replace("accuracyuracy", "accuracy")))
    found = []
    for key in dict.fromkeys(key for run in runs for key in run):
        values = [run.get(key) for run in runs]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        mean = float(np.mean(values))
        for scale in (1.0, 100.0):
            if ours is not None and np.isclose(mean * scale, ours, rtol=1e-9, atol=1e-12):
                shared = len(words & set(key.split("_")))
                found.append((-shared, truth.metric_kind(key) is None, key, scale))
    return min(found)[2:] if found else None


def _learned(runs, flags, key, scale):
    """{learned, learned_std} of `key` over the runs that did not collapse."""
    values = np.array([run[key] for run, flag in zip(runs, flags) if not flag and key in run], dtype="float64") * scale
    return {
        "learned": float(values.mean()) if values.size else np.nan,
        "learned_std": float(values.std(ddof=1)) if values.size > 1 else np.nan,
    }


def _row_majority(runs, key, scale):
    """{"majority": what always predicting the largest class scores on the test sides of `runs`} or {}."""
    kind = truth.metric_kind(key)
    value = np.nan if kind is None else truth.reference_value({kind[0]: truth.references(runs, kind[0])}, key)
    return {"majority": value * scale} if np.isfinite(value) else {}


def _beside_entries(mine, flags, metric, key, scale, skip):
    """{title: entry}: the balanced accuracy (and, for two classes, ROC-AUC) of `mine` beside accuracy `metric`."""
    side = re.match(r"^(val|test)_accuracy(_percent)?$", key)
    if not side:
        return {}
    extra_scale = 100.0 if scale == 100.0 or side.group(2) else 1.0
    binary = all(len(run.get(f"{side.group(1)}_confusion") or ()) == 2 for run in mine)
    added = {}
    for name, label in (("balanced_accuracy", "balanced accuracy"), ("roc_auc", "ROC-AUC")):
        other = f"{side.group(1)}_{name}"
        if other in skip or (name == "roc_auc" and not binary) or not all(other in run for run in mine):
            continue
        shown = np.array([run[other] for run in mine], dtype="float64") * extra_scale
        added[f"{side.group(1)} {label}" + (" %" if extra_scale == 100.0 else "")] = {
            "paper": None, "ours": float(shown.mean()),
            "std": float(shown.std(ddof=1)) if shown.size > 1 else None, "delta": None,
            "key": other, **_learned(mine, flags, other, extra_scale), "beside": metric, "scale": extra_scale,
            **_row_majority(mine, other, extra_scale),
        }  # fmt: skip
    return added


def _from_runs(payload, table):
    """A results.json table written before the truth fields, with them computed from `payload["runs"]`: per row
    the collapsed runs and the learned runs' mean ± std, balanced accuracy (and ROC-AUC) beside accuracy, and the
    reference rows over every run of the table."""
    entries, runs = copy.deepcopy(payload["tables"][table]), payload.get("runs", [])
    mine = {row: _runs_of(runs, row, table) for row in entries}
    flags = {row: [truth.is_collapsed(run) for run in chosen] for row, chosen in mine.items()}
    keys = {}  # {printed metric: (our key, scale)}
    for row, metrics in entries.items():
        for metric, values in metrics.items():
            found = None if metric in ROW_FIELDS or not mine[row] else _infer_key(mine[row], metric, values["ours"])
            if found is not None:
                keys.setdefault(metric, found)
                values.update(key=found[0], **_learned(mine[row], flags[row], *found))
                values.update(_row_majority(mine[row], *found))
    primary = {key for key, _ in keys.values()}
    for row, metrics in entries.items():
        rebuilt = {}
        for metric, values in metrics.items():
            rebuilt[metric] = values
            if metric not in ROW_FIELDS and "key" in values:
                added = _beside_entries(mine[row], flags[row], metric, values["key"], keys[metric][1], primary)
                for title, entry in added.items():
                    keys.setdefault(title, (entry["key"], entry.pop("scale")))
                rebuilt.update({title: entry for title, entry in added.items() if title not in metrics})
        if any(truth._present(run.get("test_confusion")) for run in mine[row]):
            rebuilt["collapsed"] = int(sum(flags[row]))
        entries[row] = rebuilt
    used = list({id(run): run for chosen in mine.values() for run in chosen}.values())
    by_side = {side: truth.references(used, side) for side in ("train", "val", "test")}
    references = {}
    for name, label in truth.REFERENCE_ROWS.items():
        values = {
            metric: truth.reference_value(by_side, key, name) * scale  # the key's units, times the table's
            for metric, (key, scale) in keys.items()
        }
        values = {metric: value for metric, value in values.items() if np.isfinite(value)}
        if values:
            references[label] = values
    return entries, references


def readme_table(payload, table, headers=None, digits=3, row_notes=None):
    """The README's markdown table of one published table from a `results.json` payload.

    `headers` ({metric: title}) also chooses the metrics shown (with the balanced accuracy or ROC-AUC beside a shown
    accuracy); default every metric of the table. A payload written before the collapsed counts and reference rows
    were recorded gets them from its `runs` (their test confusion matrices and metrics). `row_notes` ({row: note},
    e.g. from the weights the payload records) labels rows whose results.json holds no note of their own.
    """
    entries = payload["tables"][table]
    references = payload.get("references", {}).get(table, {})
    if not any(isinstance(v, dict) and "key" in v for metrics in entries.values() for v in metrics.values()):
        entries, references = _from_runs(payload, table)
    rows, shown = [], []
    for row, metrics in entries.items():
        for metric, values in metrics.items():
            if metric in ROW_FIELDS or not (headers is None or metric in headers or values.get("beside") in headers):
                continue
            shown.append(metric)
            fields = {name: metrics[name] for name in ROW_FIELDS if name in metrics}
            if not fields.get("note") and (row_notes or {}).get(row):
                fields["note"] = row_notes[row]
            rows.append({"row": row, "metric": metric, "status": "both", **values, **fields})
    for label, values in references.items():
        for metric, value in values.items():
            if metric in shown:
                rows.append({"row": label, "metric": metric, "ours": value, "status": "reference", "runs": 0})
    comparison = pd.DataFrame(rows)
    # a paper value the paper never printed (NaN) comes back from results.json as null
    numbers = ("paper", "ours", "std", "delta", "epochs", "learned", "learned_std", "collapsed", "majority")
    numbers = [column for column in numbers if column in comparison]
    comparison[numbers] = comparison[numbers].astype("float64")
    comparison.attrs["decimals"] = payload.get("paper_decimals", {}).get(table, 2)
    comparison.attrs["index_name"] = "configuration"
    return comparison_markdown(comparison, headers, digits)


def update_readme(readme, marker, text):
    """Replace what stands between `<!-- marker -->` and `<!-- /marker -->` in `readme` with `text`."""
    readme = Path(readme)
    content = readme.read_text()
    pattern = re.compile(rf"(<!-- {re.escape(marker)} -->)(?:\n.*?)??\n(<!-- /{re.escape(marker)} -->)", re.S)
    if not pattern.search(content):
        raise ValueError(f"{readme} has no '<!-- {marker} -->' ... '<!-- /{marker} -->' section.")
    readme.write_text(pattern.sub(lambda match: f"{match.group(1)}\n{text.strip()}\n{match.group(2)}", content))
    return readme


PREDATES_V3 = (
    "*This committed run predates the library's v3 protocol: the numbers and sentences below, and its report, say "
    "what that run did; the study's notebook today follows v3, and its re-run will replace this section.*"
)


def marked_section(section, payload):
    """A README `section` made from a `results.json` `payload`, marked `PREDATES_V3` when the run predates v3."""
    if "seed_varies" not in payload:  # written before `experiment.seeding` (library v3) recorded it
        return f"{PREDATES_V3}\n\n{section}"
    return section


def update_readme_sections(readme, results, studies, section_of, scales=("full", "cpu", "smoke")):
    """Regenerate each `<!-- <study>-<scale>-table -->` section of `readme` that has a committed
    `<results>/<study>/<scale>/results.json`, as `section_of(study, scale, payload)`; returns the markers written."""
    written = []
    text = Path(readme).read_text()
    for study in studies:
        for scale in scales:
            marker, path = f"{study}-{scale}-table", Path(results) / study / scale / "results.json"
            if f"<!-- {marker} -->" in text and path.is_file():
                update_readme(readme, marker, section_of(study, scale, json.loads(path.read_text())))
                written.append(marker)
    return written


def data_label(path, data_dir=None):
    """A data path named relative to the data root (e.g. 'all4/Original'), never by this machine's absolute path."""
    from medcnn.data.paths import data_root

    path, root = Path(path), data_root(data_dir)
    try:
        return path.resolve().relative_to(root.resolve()).as_posix() if root is not None else path.name
    except ValueError:
        return path.name


def summary_cells(summary, key, rows, digits=3):
    """The cells of metric `key` for `rows` of a `summarise` output, as every table prints them: mean ± std of the
    runs that learned, "(all n: mean)" beside it when some collapsed, "collapsed" when all did; "" for a row the
    summary lacks."""
    checked = "collapse_checked" in summary and f"{key}_learned_mean" in summary
    cells = []
    for row in rows:
        if row not in summary.index:
            cells.append("")
            continue
        entry = summary.loc[row]
        learned = checked and entry["collapse_checked"] > 0
        cells.append(
            _ours_cell(
                {
                    "ours": entry[f"{key}_mean"],
                    "std": entry[f"{key}_std"],
                    "learned": entry[f"{key}_learned_mean"] if learned else np.nan,
                    "learned_std": entry[f"{key}_learned_std"] if learned else np.nan,
                    "collapsed": entry["collapsed"] if learned else np.nan,
                    "runs": entry["runs"],
                },
                digits,
            )
        )
    return cells


def collapsed_cells(summary, rows):
    """"k of n" collapsed runs of each of `rows` ("" where the summary did not check, or lacks the row)."""
    return [
        truth.collapsed_note(
            summary.at[row, "collapsed"] if summary.at[row, "collapse_checked"] > 0 else np.nan, summary.at[row, "runs"]
        )
        if row in summary.index and "collapse_checked" in summary
        else ""
        for row in rows
    ]


def reference_cells(summary, key, rows, digits=3):
    """{reference row label: cell} of metric `key`: what the majority-class predictor and chance score on the test
    sides of `rows`; a min-max range where the rows were tested on sides whose references differ."""
    cells = {}
    for name, label in truth.REFERENCE_ROWS.items():
        column = f"{key}_reference_{name.split()[0]}"
        values = summary.loc[[r for r in rows if r in summary.index], column] if column in summary else []
        values = np.asarray(values, dtype="float64")
        values = values[np.isfinite(values)]
        if not values.size:
            cells[label] = ""
        else:
            cells[label] = value_range(values.min(), values.max(), digits)
    return cells


def rows_table(summary, metrics, rows=None, digits=3, row_notes=None, notes_title="note", extra_rows=None,
               references=False):
    """Summary rows as a readable table: group, runs averaged (seeds, or folds x seeds), `mean ± std` per metric
    ({key: column title}) and, like `comparison_markdown`, what makes it honest.

    Where the summary counted collapsed runs (`summarise` with test confusion matrices), a metric's cell is the
    mean ± std of the runs that learned, with "(all n: mean)" beside it when some collapsed and "collapsed" when all
    did, and a `collapsed` column says "k of n". `row_notes` ({row: note}, e.g. {"VGG16": "random weights"}) adds a
    column `notes_title`. `extra_rows` ({label: {column title: cell}}, e.g. a published anchor) are appended last;
    with `references`, the majority-class and chance rows (`reference_cells`) on the rows' test sides before them.
    """
    chosen = summary.loc[[row for row in (rows if rows is not None else summary.index) if row in summary.index]]
    table = pd.DataFrame(index=chosen.index)
    if "group" in chosen:
        table["group"] = chosen["group"]
    if row_notes:
        table[notes_title] = [row_notes.get(row, "") for row in chosen.index]
    table["runs"] = chosen["runs"].astype(int)
    if "epochs_mean" in chosen:
        table["epochs"] = [None if not np.isfinite(e) else int(round(e)) for e in chosen["epochs_mean"]]
    for key, title in metrics.items():
        table[title] = summary_cells(chosen, key, chosen.index, digits)
    if "collapse_checked" in chosen:
        table["collapsed"] = collapsed_cells(chosen, chosen.index)
    appended = {}
    if references:
        for key, title in metrics.items():
            for label, cell in reference_cells(summary, key, chosen.index, digits).items():
                appended.setdefault(label, {})[title] = cell
    appended.update(extra_rows or {})
    if appended:
        return pd.concat([table, pd.DataFrame.from_dict(appended, orient="index")]).fillna("").rename_axis(
            table.index.name
        )
    return table


def scale_title(scale):
    """A scale as the first word of a sentence: "Smoke", "CPU", "Full"."""
    return "CPU" if scale == "cpu" else str(scale).capitalize()


def readme_section(payload, table, headers, protocol, row_notes=None, spread="seeds"):
    """A README section on a committed run: what ran where, the paper-vs-ours table, and the printed findings.

    Args:
        payload: the run's `results.json` content.
        table: which published table to show; `headers` ({metric: title}) chooses its columns.
        protocol: one sentence on the protocol and where the full report is.
        row_notes: {row: note} for `readme_table`, e.g. {"ResNet50": "random weights"}.
        spread: what the table's "mean ± std" runs over ("seeds", or e.g. "the case-grouped folds").
    """
    intro = readme_intro(payload, protocol, spread)
    parts = [intro, "", readme_table(payload, table, headers, row_notes=row_notes), ""]
    return "\n".join([*parts, *readme_findings(payload)])


def readme_intro(payload, protocol, spread="seeds"):
    """The paragraph that opens `readme_section`: scale, hardware, images per class, seeds, what "mean ± std" runs
    over (`spread`), training time and runs, then "Protocol: " and `protocol`."""
    run, described = payload["run"], report.run_summary(payload["run"])
    counts = ", ".join(f"{name} {count}" for name, count in run["data"]["counts"].items())
    minutes = run["training_s_all_runs"] / 60
    varies = payload.get("seed_varies")
    if varies is None:  # written before `experiment.seeding` recorded it
        seeds_fix = "each fixes the split and the initialisation"
    else:
        seeds_fix = f"each draws anew: {', '.join(varies)}" if varies else "each draws nothing anew"
    return (
        f"{scale_title(run['scale'])} scale on {described['hardware']} "
        f"({run.get('precision', 'precision not recorded')}), {sum(run['data']['counts'].values()):,} images "
        f"({counts}), seeds {described['seeds']} ({seeds_fix}); mean ± std over {spread}. Training took {minutes:.0f} "
        f"min over {run['runs']} runs ({run['trained_now']} trained in the last pass, {run['reused']} reused from "
        f"`runs/`). Protocol: {protocol}"
    )


def readme_findings(payload):
    """The README lines of a payload's printed findings: a heading, then one bullet per sentence. A payload written
    before the v3 rules (it records no `seed_varies`, which `experiment.seeding` adds) first says so: its sentences
    may claim what the tables above, which apply today's rules, do not."""
    predates = (
        []
        if "seed_varies" in payload
        else [
            "These findings were printed by that run's notebook before the library's v3 rules (comparisons beyond "
            "two standard errors paired by seed, only above the majority class); the tables above apply those "
            "rules to the same runs, and the study's re-run replaces them.",
            "",
        ]
    )
    return [
        "What the run shows (printed by the notebook from the same results):",
        "",
        *predates,
        *[f"- {sentence}" for sentence in payload["findings"]],
    ]
