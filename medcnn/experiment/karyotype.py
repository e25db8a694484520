"""The karyotype constraint on a classifier of chromosome crops: a normal metaphase holds two of each autosome and
XX or XY, so its crops are assigned to classes jointly (the Hungarian algorithm) instead of one by one.

Classes are in karyotype order, the autosomes first and then X and Y (the last two): `medcnn.data.chromosomes`'
order. `karyotype_accuracy` scores a run record's test probabilities after the assignment, `karyotype_view` shows it
per test metaphase.
"""

import numpy as np


def karyotype_capacities(sex, num_classes=24):
    """How many chromosomes of each class a normal metaphase holds: two per autosome, XX or XY."""
    if sex not in ("female", "male"):
        raise ValueError(f"`sex` must be 'female' or 'male'. Received: sex={sex!r}")
    capacities = np.full(num_classes, 2)
    capacities[-2:] = (2, 0) if sex == "female" else (1, 1)
    return capacities


def constrained_assignment(probabilities, capacities):
    """Assign each chromosome of one metaphase ((n, K) `probabilities`) to a class, at most `capacities[k]` to class
    k, maximising the summed log-probabilities (SciPy's Hungarian algorithm, one column per free place). A metaphase
    with more chromosomes than places (a trisomy, or debris) gets one more place per class until all fit.
    Returns (labels (n,), total cost = - the chosen log-probabilities' sum)."""
    from scipy.optimize import linear_sum_assignment

    probabilities = np.asarray(probabilities, dtype="float64")
    capacities = np.asarray(capacities, dtype=int)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(capacities):
        raise ValueError(f"`probabilities` must be (n, {len(capacities)}), one column per class of `capacities`. "
                         f"Received: probabilities.shape={probabilities.shape}")  # fmt: skip
    while capacities.sum() < len(probabilities):
        capacities = capacities + 1
    places = np.repeat(np.arange(len(capacities)), capacities)
    cost = -np.log(np.clip(probabilities, 1e-12, 1.0))[:, places]
    rows, columns = linear_sum_assignment(cost)
    assigned = np.empty(len(probabilities), dtype=int)
    assigned[rows] = places[columns]
    return assigned, float(cost[rows, columns].sum())


def karyotype_predictions(probabilities, metaphases):
    """Each metaphase's chromosomes assigned jointly, two per autosome and XX or XY, whichever fits better: (labels
    (N,), {metaphase: "female" or "male"}) for (N, 24) probabilities and the (N,) metaphase ids."""
    probabilities, metaphases = np.asarray(probabilities), np.asarray(metaphases)
    labels, sexes = np.empty(len(probabilities), dtype=int), {}
    for metaphase in dict.fromkeys(metaphases.tolist()):
        rows = np.flatnonzero(metaphases == metaphase)
        options = {sex: constrained_assignment(probabilities[rows], karyotype_capacities(sex))
                   for sex in ("female", "male")}  # fmt: skip
        sex = min(options, key=lambda name: options[name][1])
        labels[rows], sexes[metaphase] = options[sex][0], sex
    return labels, sexes


def karyotype_accuracy(record, labels, metaphases):
    """The accuracy of a record's test probabilities after the joint assignment; None without probabilities."""
    if "test_probabilities" not in record:
        return None
    index = np.asarray(record["test_indices"])
    assigned, _ = karyotype_predictions(record["test_probabilities"], np.asarray(metaphases)[index])
    return float(np.mean(assigned == np.asarray(labels)[index]))


def karyotype_view(records, labels, metaphases):
    """Per test metaphase of `records` (a record, or one row's folds): crops, correct per image and after the joint
    assignment, the sex its crops show (male when one is a Y, the last class) and the sex called."""
    import pandas as pd

    rows = []
    for record in [records] if isinstance(records, dict) else records:
        index, probabilities = np.asarray(record["test_indices"]), np.asarray(record["test_probabilities"])
        (truth, cells), y = (np.asarray(values)[index] for values in (labels, metaphases)), probabilities.shape[1] - 1
        assigned, sexes = karyotype_predictions(probabilities, cells)
        for cell in dict.fromkeys(cells.tolist()):
            mine = cells == cell
            rows.append({
                "metaphase": cell, "fold": record.get("fold"), "crops": int(mine.sum()),
                "correct per image": int((probabilities[mine].argmax(axis=1) == truth[mine]).sum()),
                "correct, karyotype": int((assigned[mine] == truth[mine]).sum()),
                "sex (from its crops)": "male" if (truth[mine] == y).any() else "female",
                "sex called": sexes[cell],
            })  # fmt: skip
    return pd.DataFrame(rows).set_index("metaphase")
