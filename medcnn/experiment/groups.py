"""Results per group of items: a patient's cells, a case's images. Test sides hold whole groups under a grouped
protocol, so each group can be scored on its own and by the majority vote of its items.

`group` and `items` name the two in the tables' columns (default "patient" and "cells").
"""

import numpy as np
import pandas as pd


def items_per_group(labels, groups, class_names, group="patient", items="cells"):
    """Items per group with the group's class, largest first within each class."""
    frame = pd.DataFrame({group: np.asarray(groups), "class": np.asarray(class_names)[np.asarray(labels)]})
    counts = frame.groupby(["class", group]).size().rename(items).reset_index()
    return counts.sort_values(["class", items], ascending=[True, False]).reset_index(drop=True)


def group_results(record, labels, groups, class_names, group="patient", items="cells"):
    """Per test group of a record: class, items, share of items right, and whether the majority vote is right.
    One probability per item is the last class's (called at 0.5); more are one per class (the largest called)."""
    index = np.asarray(record["test_indices"])
    p = np.asarray(record["test_probabilities"], dtype="float64").reshape(len(index), -1)
    called = (p[:, -1] >= 0.5).astype(int) if p.shape[1] == 1 else p.argmax(axis=1)
    truth = np.asarray(labels)[index]
    frame = pd.DataFrame({group: np.asarray(groups)[index], "class": np.asarray(class_names)[truth],
                          "correct": called == truth})  # fmt: skip
    table = frame.groupby(group, sort=False).agg(
        **{"class": ("class", "first"), items: ("correct", "size"), "accuracy": ("correct", "mean")}
    )
    table["majority right"] = table["accuracy"] > 0.5
    return table


def group_table(records, labels, groups, class_names, by=("configuration",), group="patient", items="cells"):
    """Accuracy per test group (rows, every class) for each column of records, named by the record's `by` keys, e.g.
    "MobileNetV2 (grouped)" for ("model", "protocol"): the mean over its records that tested the group (NaN where none
    did), largest groups first within each class."""
    columns, every = {}, []
    for record in records:
        results = group_results(record, labels, groups, class_names, group, items)
        name = str(record[by[0]]) + "".join(f" ({record[key]})" for key in by[1:])
        columns.setdefault(name, []).append(results)
        every.append(results[["class", items]])
    table = pd.concat(every)
    table = table[~table.index.duplicated()].copy()  # records with other test sides add their groups
    for name, parts in columns.items():
        table[name] = pd.concat([part["accuracy"] for part in parts], axis=1).mean(axis=1)  # NaN: never tested
    return table.sort_values(["class", items], ascending=[True, False])
