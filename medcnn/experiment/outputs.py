"""What a study's run writes: the paper-vs-ours tables, `results.json`, `report.md`, and the README's table.

Every study calls the same four: `compare` (a published table beside our summary), `results_payload`,
`write_outputs` and `readme_table` / `update_readme`.
"""

import re
from pathlib import Path

import numpy as np
import pandas as pd

from medcnn import report
from medcnn.experiment.plan import run_counts
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


def compare(paper, summary, info, metric_keys=None):
    """The published table beside our mean ± std (long form, `report.paper_vs_ours`), rows and metrics of the paper.

    Args:
        paper: a published table (rows = configurations, columns = metrics as printed).
        summary: `summarise` output whose index holds (some of) the paper's rows, with `<key>_mean` / `<key>_std`.
        info: the run's description (`report.run_info`).
        metric_keys: {printed column: our metric key}, e.g. {"test acc": "test_accuracy"}; default: the columns
            themselves, those the summary has.
    """
    metric_keys = metric_keys or {column: column for column in paper.columns if f"{column}_mean" in summary}
    columns = list(metric_keys)
    rows = [row for row in paper.index if row in summary.index]
    ours = summary.loc[rows, [f"{metric_keys[c]}_mean" for c in columns]].set_axis(columns, axis=1)
    std = summary.loc[rows, [f"{metric_keys[c]}_std" for c in columns]].set_axis(columns, axis=1)
    table = report.paper_vs_ours(paper, ours, info, std=std, metrics=columns)
    table["runs"] = table["row"].map(summary["runs"]).fillna(0).astype(int)
    if "epochs_mean" in summary:  # what was trained, e.g. a smoke run's fraction of the published epochs
        table["epochs"] = table["row"].map(summary["epochs_mean"]).round()
    table.attrs["decimals"] = paper_decimals(paper)
    return table


def comparison_markdown(comparison, headers=None, digits=3):
    """A comparison as a markdown table: per metric the paper (at its printed precision) and ours (mean ± std).

    Args:
        comparison: `compare` output.
        headers: {metric: column title}, default the metric names.
        digits: decimals of our numbers.
    """
    decimals = comparison.attrs.get("decimals", 2)
    metrics = list(dict.fromkeys(comparison["metric"]))
    headers = headers or {}
    columns = []
    for metric in metrics:
        title = headers.get(metric, metric)
        columns += [f"paper {title}", f"ours {title}"]
    trained = ["epochs trained"] if "epochs" in comparison else []
    lines = [
        "| " + " | ".join([comparison.attrs.get("index_name") or "row", *columns, *trained, "runs"]) + " |",
        "|" + "---|" * (len(columns) + len(trained) + 2),
    ]
    for row, part in comparison.groupby("row", sort=False):
        cells = []
        for metric in metrics:
            entry = part[part["metric"] == metric].iloc[0]
            cells += [
                "" if not np.isfinite(entry["paper"]) else f"{entry['paper']:.{decimals}f}",
                mean_std(entry["ours"], entry["std"], digits),
            ]
        if trained:
            epochs = part["epochs"].iloc[0]
            cells.append("" if not np.isfinite(epochs) else str(int(epochs)))
        lines.append("| " + " | ".join([str(row), *cells, str(int(part["runs"].iloc[0]))]) + " |")
    return "\n".join(lines)


def table_payload(comparison):
    """{row: {metric: {paper, ours, std, delta}}, "_runs": {row: n}} for results.json."""
    rows = {}
    for record in comparison.to_dict("records"):
        rows.setdefault(record["row"], {})[record["metric"]] = {
            key: record[key] for key in ("paper", "ours", "std", "delta")
        }
        rows[record["row"]]["runs"] = int(record["runs"])
        if "epochs" in record and np.isfinite(record["epochs"]):
            rows[record["row"]]["epochs"] = int(record["epochs"])
    return rows


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
        "summary": summary.reset_index().to_dict("records"),
        "findings": list(findings),
        **(extra or {}),
        "runs": [{key: record[key] for key in record_keys if key in record} for record in records],
    }


def write_outputs(out_dir, payload, title, sections, figures=()):
    """Write `results.json` and `report.md` (the run table says how many runs were trained now and reused)."""
    counts = payload["run"]
    info = {**payload["run"], "elapsed_s": counts.get("training_s_all_runs", counts.get("elapsed_s"))}
    info["runs"] = f"{counts['runs']} ({counts['trained_now']} trained now, {counts['reused']} reused)"
    results = report.write_results(out_dir, payload)
    markdown = report.write_report(out_dir, title, info, sections, figures)
    return results, markdown


def readme_table(payload, table, headers=None, digits=3):
    """The README's markdown table of one published table from a `results.json` payload.

    `headers` ({metric: title}) also chooses the metrics shown; default every metric of the table.
    """
    rows = []
    for row, metrics in payload["tables"][table].items():
        for metric, values in metrics.items():
            if metric not in ("runs", "epochs") and (headers is None or metric in headers):
                trained = {"epochs": metrics["epochs"]} if "epochs" in metrics else {}
                rows.append({"row": row, "metric": metric, **values, "runs": metrics["runs"], **trained})
    comparison = pd.DataFrame(rows)
    # a paper value the paper never printed (NaN) comes back from results.json as null
    numbers = [column for column in ("paper", "ours", "std", "delta", "epochs") if column in comparison]
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


def data_label(path, data_dir=None):
    """A data path named relative to the data root (e.g. 'all4/Original'), never by this machine's absolute path."""
    from medcnn.data.paths import data_root

    path, root = Path(path), data_root(data_dir)
    try:
        return path.resolve().relative_to(root.resolve()).as_posix() if root is not None else path.name
    except ValueError:
        return path.name


def rows_table(summary, metrics, rows=None, digits=3):
    """Summary rows as a readable table: group, runs averaged (seeds, or folds x seeds) and `mean ± std` per metric
    ({key: column title})."""
    chosen = summary.loc[[row for row in (rows if rows is not None else summary.index) if row in summary.index]]
    table = pd.DataFrame(index=chosen.index)
    if "group" in chosen:
        table["group"] = chosen["group"]
    table["runs"] = chosen["runs"].astype(int)
    if "epochs_mean" in chosen:
        table["epochs"] = [None if not np.isfinite(e) else int(round(e)) for e in chosen["epochs_mean"]]
    for key, title in metrics.items():
        table[title] = [mean_std(m, s, digits) for m, s in zip(chosen[f"{key}_mean"], chosen[f"{key}_std"])]
    return table


def scale_title(scale):
    """A scale as the first word of a sentence: "Smoke", "CPU", "Full"."""
    return "CPU" if scale == "cpu" else str(scale).capitalize()


def readme_section(payload, table, headers, protocol):
    """A README section on a committed run: what ran where, the paper-vs-ours table, and the printed findings.

    Args:
        payload: the run's `results.json` content.
        table: which published table to show; `headers` ({metric: title}) chooses its columns.
        protocol: one sentence on the protocol and where the full report is.
    """
    run, described = payload["run"], report.run_summary(payload["run"])
    counts = ", ".join(f"{name} {count}" for name, count in run["data"]["counts"].items())
    minutes = run["training_s_all_runs"] / 60
    intro = (
        f"{scale_title(run['scale'])} scale on {described['hardware']} ({run.get('precision', 'float32')}), "
        f"{sum(run['data']['counts'].values()):,} images ({counts}), seeds {described['seeds']} (each fixes the split "
        f"and the initialisation); mean ± std over seeds. Training took {minutes:.0f} min over {run['runs']} runs "
        f"({run['trained_now']} trained in the last pass, {run['reused']} reused from `runs/`). Protocol: {protocol}"
    )
    return "\n".join(
        [
            intro,
            "",
            readme_table(payload, table, headers),
            "",
            "What the run shows (printed by the notebook from the same results):",
            "",
            *[f"- {sentence}" for sentence in payload["findings"]],
        ]
    )
