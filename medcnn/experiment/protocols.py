"""Rows run under several split protocols: their summaries, one table beside the paper, and comparisons.

A study that runs its rows under the published protocol and an honest one beside it (kth: augment-then-split
against split-by-case-then-augment) labels each run "<row> | <protocol>" with `group` = protocol. Comparisons keep
to the runs that learned (`learned.compare_learned`); every comparative sentence comes from `truth`.

    summaries = {protocol: protocol_summary(records, protocol, metrics) for protocol in ("published", "honest")}
    frame = protocols_table(paper, summaries, {"AUC": "test_roc_auc"}, notes)
    text = protocol_effect(records, rows, "published", "honest")
"""

import numpy as np
import pandas as pd

from medcnn.experiment.learned import compare_learned, learned, none_learned


def row_of(label):
    """The row of a run label "<row> | <protocol>"."""
    return label.rsplit(" | ", 1)[0]


def row_records(records, row, protocol):
    """The run records of `row` under `protocol`."""
    return [r for r in records if r.get("group") == protocol and r["configuration"] == f"{row} | {protocol}"]


def ran_rows(records):
    """The rows of `records`' run labels "<row> | <protocol>"."""
    return {row_of(record["configuration"]) for record in records}


def shown_rows(paper, records, notes=()):
    """`paper`'s rows that ran in `records` or carry a note (e.g. "needs ImageNet weights": a row that could not run
    here stays beside the paper and says so), in the paper's order."""
    shown = ran_rows(records) | set(notes)
    return paper.loc[[row for row in paper.index if row in shown]]


def protocol_summary(records, protocol, metrics):
    """`experiment.summarise` of one protocol's records over `metrics`, indexed by row (the protocol dropped)."""
    from medcnn.experiment.summary import summarise

    return summarise([r for r in records if r.get("group") == protocol], metrics).rename(index=row_of)


def protocols_table(paper, summaries, metric_keys, notes=None, digits=2, paper_label="paper"):
    """Per metric the paper's value, then ours under each protocol (mean ± std of the runs that learned,
    "collapsed" where all collapsed), a note per row, the collapsed counts and the reference rows.

    Args:
        paper: the paper's table (rows x metric titles; NaN where the paper has no value), in the order shown.
        summaries: {protocol: `protocol_summary`}. metric_keys: {metric title: record key}.
        notes: {row: note} (e.g. "needs ImageNet weights"). digits: decimals of our cells.
        paper_label: what the paper's columns are called, "<metric title>: <paper_label>" (e.g. "thesis").
    """
    from medcnn.experiment.outputs import collapsed_cells, reference_cells, summary_cells

    frame = pd.DataFrame({"note": [(notes or {}).get(row, "") for row in paper.index]}, index=paper.index)
    references = {}
    for title, key in metric_keys.items():
        frame[f"{title}: {paper_label}"] = ["" if np.isnan(v) else f"{v:.2f}" for v in paper[title]]
        for protocol, summary in summaries.items():
            frame[f"{title}: {protocol}"] = summary_cells(summary, key, paper.index, digits)
            for label, cell in reference_cells(summary, key, paper.index, digits).items():
                references.setdefault(label, {})[f"{title}: {protocol}"] = cell
    for protocol, summary in summaries.items():
        frame[f"collapsed: {protocol}"] = collapsed_cells(summary, paper.index)
    frame = pd.concat([frame, pd.DataFrame.from_dict(references, orient="index")]).fillna("")
    frame.index.name = paper.index.name
    return frame


def compare_rows_learned(records, a_row, b_row, protocol, alpha=0.05, a_label=None, b_label=None):
    """`learned.compare_learned` of two rows under `protocol` on test AUC: its sentence, or None when either row
    did not run."""
    verdict = _rows_verdict(records, a_row, b_row, protocol, alpha, a_label, b_label)
    return None if verdict is None else verdict.sentence


def _rows_verdict(records, a_row, b_row, protocol, alpha=0.05, a_label=None, b_label=None):
    """`compare_rows_learned`'s `truth.Verdict`, or None when either row did not run."""
    a, b = row_records(records, a_row, protocol), row_records(records, b_row, protocol)
    if a and b:
        return compare_learned(a, b, a_label or f"'{a_row}'", b_label or f"'{b_row}'", alpha=alpha)
    return None


def protocol_effect(records, rows, a="published", b="honest", alpha=0.05):
    """Test AUC under protocol `a` minus under `b`, row by row (paired by seed), on the runs that learned; rows
    without such runs under a protocol are named, not compared. Rows that did not run under both are left out."""
    parts, skipped, above = [], [], []
    for row in rows:
        first, second = row_records(records, row, a), row_records(records, row, b)
        if not first or not second:
            continue
        verdict = compare_learned(first, second, a, b, alpha=alpha)
        if not np.isfinite(verdict.difference):
            skipped.append(f"'{row}'")
            continue
        above += [f"'{row}'"] if verdict.verdict == "above" else []
        spread = "" if not np.isfinite(verdict.standard_error) else f", standard error {verdict.standard_error:.3f}"
        parts.append(f"'{row}' {verdict.difference:+.3f}{spread} ({verdict.verdict})")
    text = f"Leakage effect, test AUC {a} minus {b}, per row on the runs that learned (paired by seed): "
    text += "; ".join(parts) + "." if parts else "no row learned under both protocols."
    if parts:
        text += f" Above beyond two standard errors for {len(above)} of {len(parts)} row(s)"
        text += f" ({', '.join(above)})." if above else "."
    if skipped:
        text += f" No run learned under a protocol, so not compared: {', '.join(skipped)}."
    return text


def called_positive_table(records, rows, groups_of, protocol, alpha=0.05, first=()):
    """Share of the test items of each group called positive, per row, over its runs that learned (every seed's,
    pooled): "k/n" cells, `first` groups first. `groups_of(record)` gives the group of each of the record's
    `test_indices`. Rows without a run that learned are left out."""
    from medcnn.significance import called_positive_by_group

    columns = {}
    for row in rows:
        chosen = [record for record in row_records(records, row, protocol) if learned(record, alpha)]
        if not chosen:
            continue
        predicted = np.concatenate([np.argmax(r["test_probabilities"], axis=1) for r in chosen])
        counts = called_positive_by_group(predicted, np.concatenate([groups_of(r) for r in chosen]), first=first)
        columns[row] = pd.Series([f"{k}/{n}" for k, n in zip(counts["called positive"], counts["images"])],
                                 index=counts.index)  # fmt: skip
    return pd.DataFrame(columns).fillna("")


def grouped_intervals(records, protocol, test_side, resamples, alpha=0.05, names=("groups", "items")):
    """Test AUC of each run that learned under `protocol`, with a 95 % interval from a bootstrap that resamples the
    test side's groups (`significance.bootstrap_by_group`: the items of one group together).

    `test_side(record)` gives (labels, groups, {column: value}) of the record's `test_indices`, the last added to
    its row; `names` name the columns of the group and item counts (e.g. ("metaphases", "karyograms")).
    """
    from medcnn.significance import bootstrap_by_group

    rows = []
    for record in records:
        if record.get("group") != protocol or not learned(record, alpha):
            continue
        labels, groups, extra = test_side(record)
        scores = np.asarray(record["test_probabilities"])[:, 1]
        interval = bootstrap_by_group(labels, scores, groups, "roc_auc", resamples, seed=record["seed"])
        rows.append({"row": row_of(record["configuration"]), "seed": record["seed"], "test AUC": interval["estimate"],
                     "low": interval["low"], "high": interval["high"], names[0]: interval["groups"], **extra,
                     names[1]: interval["items"]})  # fmt: skip
    return pd.DataFrame(rows)


def compare_pairs(records, pairs, protocol, alpha=0.05):
    """`compare_rows_learned` of each (a_row, b_row) of `pairs` under `protocol`, each sentence prefixed with the
    protocol; the pairs with a row without a run that learned are named in one sentence. Pairs with a row that did
    not run are left out."""
    verdicts = [(pair, _rows_verdict(records, *pair, protocol, alpha)) for pair in pairs]
    verdicts = [(pair, verdict) for pair, verdict in verdicts if verdict is not None]
    title = protocol.capitalize()
    sentences = [f"{title} protocol: {verdict.sentence}" for _, verdict in verdicts if not none_learned(verdict)]
    skipped = [f"'{a}' vs '{b}'" for (a, b), verdict in verdicts if none_learned(verdict)]
    if skipped:
        sentences.append(f"{title} protocol, not compared (a row without a run that learned): {', '.join(skipped)}.")
    return sentences


def best_run_sentence(best, intervals, protocol="honest", counts=("groups",), unseen="cases it never saw"):
    """The run chosen on `protocol`'s validation AUC (`summary.best_run`) with its test numbers and, where
    `intervals` (`grouped_intervals`) has its row and seed, the 95 % interval over its test groups: `counts` name
    the columns counted, the first the resampled groups (e.g. ("metaphases", "cases"))."""
    row, seed = row_of(best["configuration"]), best["seed"]
    mine = intervals[(intervals["row"] == row) & (intervals["seed"] == seed)] if len(intervals) else []
    spread = ""
    if len(mine):
        first = mine.iloc[0]
        spread = f"; 95 % interval over its {first[counts[0]]} test {counts[0]}"
        spread += "".join(f" ({first[column]} {column})" for column in counts[1:])
        spread += f": {first['low']:.3f}-{first['high']:.3f}"
    return (
        f"Best run on the {protocol} validation AUC: '{best['configuration']}' (seed {seed}): test accuracy "
        f"{best['test_accuracy']:.3f}, balanced {best['test_balanced_accuracy']:.3f}, AUC {best['test_roc_auc']:.3f}"
        f"{spread}, on {unseen}; this is the exported model."
    )


def protocols_readme_section(payload, tables, headers, intro, class_names, notes=None):
    """The README section of a run under several protocols: as `outputs.readme_section` (its intro, the first
    protocol's table, its findings), with each other protocol's table ("<Protocol> protocol:") before the findings.

    Args:
        payload: the run's results.json. tables: {protocol: table id}, the first shown first.
        headers, notes: as `readme_table` takes them (`notes` as `row_notes`). intro: the text after the table.
        class_names: counts given per part of the data ({part: {class: n}}) are summed per class.
    """
    from medcnn.experiment.outputs import readme_findings, readme_intro, readme_table

    counts = payload["run"]["data"]["counts"]
    if any(isinstance(value, dict) for value in counts.values()):
        totals = {name: sum(part.get(name, 0) for part in counts.values()) for name in class_names}
        payload = {**payload, "run": {**payload["run"], "data": {**payload["run"]["data"], "counts": totals}}}
    (_, first), *others = tables.items()
    parts = [readme_intro(payload, intro), "", readme_table(payload, first, headers, row_notes=notes), ""]
    for protocol, table in others:
        parts += [f"{protocol.capitalize()} protocol:", "", readme_table(payload, table, headers, row_notes=notes), ""]
    return "\n".join([*parts, *readme_findings(payload)])
