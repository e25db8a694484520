"""Monte Carlo dropout on the runs that learned: which runs, their passes over the test side, and the report.

MC dropout's confidence describes a model only where the model learned (`learned.learned`): the "confidence" of a
constant predictor describes the constant. Per model (e.g. per backbone), the row whose runs that learned have the
best mean validation AUC is chosen with those runs (`best_learned_rows`, as the kth thesis' Tables 4.1 / 4.2 are one
model of each backbone); `mc_dropout_entry` predicts one run's test side `passes` times and summarises the referral
(`uncertainty.referral_summary`); `entries_table`, `entries_payload` and `referral_statement` report the entries.

    picks = best_learned_rows(honest_records, {"mobilenet_v2": "MobileNetV2"})
    entry = mc_dropout_entry(run, model, labels, 100, 0.8, class_names, table, group="aberration")
"""

import numpy as np
import pandas as pd

from medcnn.experiment.learned import best_learned
from medcnn.experiment.runs import run_data


def best_learned_rows(records, names, by="backbone", alpha=0.05):
    """{name: (row, [its runs that learned])}: for each value of the configuration setting `by` (the keys of
    `names`, reported under its values), the row whose runs that learned have the best mean validation AUC
    (`learned.best_learned`); a value none of whose runs learned gets no entry.

    Each record needs `settings[by]`, "configuration" and what `learned.learned` reads ("val_confusion",
    "val_roc_auc"). Its row is `settings["row"]` where recorded (kth), else its "configuration" label without the
    protocol (`protocols.row_of`: "<row> | <protocol>")."""
    from medcnn.experiment.protocols import row_of

    def row(record):
        return record["settings"].get("row") or row_of(record["configuration"])

    picks = {}
    for value, name in names.items():
        mine = [record for record in records if record["settings"][by] == value]
        best = best_learned([{**record, "row": row(record)} for record in mine], "row", alpha=alpha)
        if best:
            picks[name] = best
    return picks


def wrong_test_cases(passes, labels, index, class_names, threshold=0.8, table=None, columns=(), positive=1,
                     item="image"):  # fmt: skip
    """The test items the majority vote of the passes gets wrong (the kth thesis' Tables 4.1 / 4.2): true and
    voted class, the mean softmax of the `positive` class over the passes, the confidence (share of votes), whether
    it is referred, the item's row in the data (`index[i]`, under the column `item`) and `columns` of `table` (a
    frame with one row per item of the data)."""
    from medcnn.uncertainty import summarise_passes, wrong_cases

    summary = summarise_passes(passes, threshold, class_names)
    wrong = wrong_cases(summary, labels, class_names)
    within = wrong["image"].to_numpy(dtype=int)  # positions on the test side
    wrong["image"] = np.asarray(index)[within]
    wrong["mean_softmax"] = summary[f"mean_{class_names[positive]}"].to_numpy()[within]
    for column in columns:
        wrong[column] = table[column].to_numpy()[wrong["image"].to_numpy(dtype=int)]
    return wrong.rename(columns={"image": item})


def mc_dropout_entry(run, model, labels, passes, threshold, class_names, table=None, group=None, first=(),
                     columns=(), item="image"):  # fmt: skip
    """Monte Carlo dropout of one trained run on its test side (`uncertainty.MCDropoutPredictor`, seeded by the run).

    Args:
        run: the `Run` (its own inputs and split); model: the run's trained model (`experiment.trained_model`).
        labels: the labels of the run's data (N,). passes: T. threshold: referral below this confidence.
        table: a frame with one row per item of the data, for `group` and `columns` (or None).
        group: a column of `table` whose values the voted recall is counted by (`significance.called_positive_by_
            group`, `first` listed first), or None.
        columns, item: what `wrong_test_cases` adds and how it names the item's row.

    Returns:
        {"seed", "path" (the predictor's), "summary" (`uncertainty.referral_summary`), "wrong" (`wrong_test_cases`),
        "groups" (only with `group`), "passes" (T, n, classes), "labels" (n,), "index" (n,)}.
    """
    from medcnn.significance import called_positive_by_group
    from medcnn.uncertainty import MCDropoutPredictor, referral_summary, summarise_passes

    x = run_data(run, None, labels)[0]
    index = np.asarray(run.split["test"])
    predictor = MCDropoutPredictor(model)
    predicted = predictor.predict(x[index], passes, seed=run.seed)
    truth = np.asarray(labels)[index]
    entry = {
        "seed": run.seed, "path": predictor.description, "summary": referral_summary(predicted, truth, threshold),
        "wrong": wrong_test_cases(predicted, truth, index, class_names, threshold, table, columns, item=item),
    }  # fmt: skip
    if group is not None:
        vote = summarise_passes(predicted, threshold)["vote"].to_numpy()
        entry["groups"] = called_positive_by_group(vote, table[group].to_numpy()[index], first=first)
    return {**entry, "passes": predicted, "labels": truth, "index": index}


def entries_table(entries, keys=("protocol", "model", "seed"), carried=("row",)):
    """One row per entry, indexed by `keys`: the `carried` values, then the referral numbers
    (`uncertainty.referral_table`); an empty frame without entries."""
    from medcnn.uncertainty import referral_table

    if not entries:
        return pd.DataFrame()
    summaries = {tuple(e[key] for key in keys): {**{c: e[c] for c in carried}, **e["summary"]} for e in entries}
    return referral_table(summaries, list(keys))


def entries_payload(entries, keys=("protocol", "model", "row", "seed", "path"), groups_key="group_recall"):
    """Entries for results.json: `keys`, the referral summary, the wrong cases and (where counted) the voted recall
    per group under `groups_key`; no passes."""
    return [
        {**{key: entry[key] for key in keys}, **entry["summary"], "wrong_cases": entry["wrong"].to_dict("records"),
         **({groups_key: entry["groups"].reset_index().to_dict("records")} if "groups" in entry else {})}
        for entry in entries
    ]  # fmt: skip


def referral_statement(entries, items="images"):
    """Whether referring the unsure items helps one model: majority-vote accuracy on the items it keeps against
    accuracy on all its test items, paired by seed (`truth.compare_rows`), as a sentence."""
    from medcnn.experiment.truth import compare_rows

    seeds = [e["seed"] for e in entries]
    retained = [e["summary"]["accuracy_retained"] for e in entries]
    every = [e["summary"]["accuracy_all"] for e in entries]
    labels = (f"the {items} it keeps", f"all its test {items}", "majority-vote accuracy")
    sentence = compare_rows(retained, every, *labels, paired=True, seeds_a=seeds, seeds_b=seeds).sentence
    return sentence[0].upper() + sentence[1:]


def mc_dropout_entries(records, runs, names, groups, entry_of, alpha=0.05):
    """MC dropout on each group's chosen runs (`best_learned_rows` of the group's records, every run that learned
    of the chosen row): `entry_of(run)` (e.g. a `mc_dropout_entry`) with "protocol" (the group), "model" (the name
    of `names`) and "row" added. `runs`: the `Run`s the records came from (`plan.find_run`)."""
    from medcnn.experiment.plan import find_run

    entries = []
    for group in groups:
        mine = [record for record in records if record["group"] == group]
        for name, (row, chosen) in best_learned_rows(mine, names, alpha=alpha).items():
            entries += [{"protocol": group, "model": name, "row": row, **entry_of(find_run(runs, record))}
                        for record in chosen]  # fmt: skip
    return entries


def mc_dropout_sentences(entries, groups, threshold, items="images"):
    """Per group and model of `mc_dropout_entries`: the referral numbers seed by seed and `referral_statement`; a
    group without entries says no model learned."""
    sentences = []
    for group in groups:
        names = dict.fromkeys(e["model"] for e in entries if e["protocol"] == group)
        if not names:
            sentences.append(f"MC dropout, {group} protocol: no model learned (validation AUC clearly above 0.5), so "
                             "none was run.")  # fmt: skip
        for name in names:
            chosen = [e for e in entries if e["protocol"] == group and e["model"] == name]
            numbers = "; ".join(
                f"seed {e['seed']}: {e['summary']['referred']} of {e['summary']['images']} referred, accuracy "
                f"{e['summary']['accuracy_all']:.3f} on all, {e['summary']['accuracy_retained']:.3f} on the rest, "
                f"ECE {e['summary']['ece']:.3f}"
                for e in chosen
            )
            sentences.append(
                f"MC dropout, {group}, {name} ('{chosen[0]['row']}', {chosen[0]['summary']['passes']} passes, "
                f"referral below {threshold:.0%}): {numbers}. {referral_statement(chosen, items)}"
            )
    return sentences
