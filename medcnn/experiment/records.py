"""What a study adds to its run records after training: parameters per row, inference rate, how each run ended
(the epoch of its lowest validation loss, early stopping or the epoch cap), why a collapsed run collapsed, and the
best value over epochs of history metrics (`history_maxima`, for a paper that reports its best epoch).

    records = run_all(runs, ...)
    complete(records, parameter_counts(runs))
    summary = summarise(records, [..., "best_epoch", "test_images_per_s", "parameters"])
"""

import numpy as np


def early_stopping(patience, start_from_epoch=0, monitor="val_loss"):
    """`() -> [EarlyStopping(monitor, patience, best weights restored, start_from_epoch)]` for `Run.callbacks`, or
    None without `patience` (every run trains all its epochs). `start_from_epoch` (0-based) lets early stopping
    wait, e.g. until BatchNorm's moving statistics have settled (`medcnn.train.bn_warmup_epochs`)."""
    if not patience:
        return None

    def make():
        import keras

        return [
            keras.callbacks.EarlyStopping(
                monitor, patience=patience, restore_best_weights=True, start_from_epoch=start_from_epoch
            )
        ]

    return make


def parameter_counts(runs, row_of=lambda run: run.label):
    """{row: parameters of its model}, each row (`row_of(run)`, default the run's label) built once."""
    import keras

    counts = {}
    for run in runs:
        if row_of(run) not in counts:
            counts[row_of(run)] = int(run.build_model().count_params())
            keras.backend.clear_session()
    return counts


def complete(records, parameters=None, row="row", monitor="val_loss", maxima=None, weights=None,
             no_backbone="none (from scratch)"):  # fmt: skip
    """Add to every record (in place): `parameters` ({row: count}, by the record's `row` field, else its
    configuration), `test_images_per_s` (from its test size and prediction seconds), and for trained runs with a
    `monitor` history `best_epoch` (1-based epoch of its lowest value, what early stopping restores) and
    `stopped_early` (fewer epochs than `epochs_cap`, when the record has one). With `maxima`, first
    `history_maxima(records, maxima)`; with `weights` ({backbone: weights used}), each record's "weights": its
    settings' backbone's, or `no_backbone` for a record without one. Returns `records`."""
    if maxima:
        history_maxima(records, maxima)
    for record in records:
        name = record.get(row, record.get("configuration"))
        if parameters and name in parameters:
            record["parameters"] = parameters[name]
        if record.get("test_predict_s", 0) > 0 and "sizes" in record:
            record["test_images_per_s"] = record["sizes"]["test"] / record["test_predict_s"]
        values = np.asarray(record.get("history", {}).get(monitor, []), dtype="float64")
        if values.size and np.isfinite(values).any():
            record["best_epoch"] = int(np.nanargmin(values)) + 1
            if "epochs_cap" in record:
                record["stopped_early"] = bool(record["epochs"] < record["epochs_cap"])
        if weights is not None:
            backbone = (record.get("settings") or {}).get("backbone")
            record["weights"] = weights[backbone] if backbone else no_backbone
    return records


def collapse_cause(record, num_classes):
    """Why a collapsed run collapsed, from its last epoch's history: "inference-mode statistics" when it learned
    in training (accuracy above twice chance) while validation, run in inference mode, sits below twice chance
    (e.g. BatchNorm's moving statistics), else "never left chance in training" (a failed start)."""
    history, chance = record.get("history", {}), 1.0 / num_classes
    train, val = (float(history.get(key, [np.nan])[-1]) for key in ("accuracy", "val_accuracy"))
    if train > 2 * chance and val < 2 * chance:
        return f"inference-mode statistics (training accuracy {train:.2f}, validation {val:.2f})"
    return f"never left chance in training (training accuracy {train:.2f})"


def collapse_statement(records, num_classes):
    """One sentence: each collapsed run (`truth.is_collapsed`) with its row, fold and `collapse_cause`, or that none
    collapsed among the trained runs."""
    from medcnn.experiment import truth

    trained = [record for record in records if "history" in record]
    collapsed = [
        f"'{r.get('row', r['configuration'])}'" + (f" fold {r['fold']}" if r.get("fold") else f" seed {r['seed']}")
        + f": {collapse_cause(r, num_classes)}" for r in trained if truth.is_collapsed(r)
    ]  # fmt: skip
    if collapsed:
        return f"{len(collapsed)} of {len(trained)} runs collapsed, with their cause: {'; '.join(collapsed)}."
    return f"No run collapsed ({len(trained)} runs trained): every row learns."


def convergence_statement(summary, records):
    """One sentence from `complete`'s fields: each row's mean epoch of lowest validation loss (`best_epoch_mean` of
    a summary), then the rows with a run that early stopping did not end before its cap (compared before
    convergence) and the rows trained for a fixed budget (trained runs without `epochs_cap`: no early stopping),
    or that early stopping ended every run."""
    epochs = ", ".join(f"'{row}' {e:.0f}" for row, e in summary["best_epoch_mean"].items() if np.isfinite(e))
    trained = [r for r in records if "history" in r]

    def rows(keep):
        return sorted({r.get("row", r["configuration"]) for r in trained if keep(r)})

    at_cap = rows(lambda r: r.get("stopped_early") is False)
    fixed = rows(lambda r: "epochs_cap" not in r)
    endings = []
    if at_cap:
        endings.append(f"Rows with runs that early stopping did not end before the epoch cap (compared before "
                       f"convergence): {', '.join(map(repr, at_cap))}.")  # fmt: skip
    if fixed and fixed == rows(lambda r: True):
        endings.append("No run stopped early: every run trained its whole budget.")
    elif fixed:
        endings.append(f"Rows trained for a fixed number of epochs (no early stopping): {', '.join(map(repr, fixed))}.")
    if not endings:
        endings.append("Early stopping ended every run: rows are compared at convergence.")
    return f"Epochs to the lowest validation loss (mean per row): {epochs}. {' '.join(endings)}"


def history_maxima(records, keys):
    """Add to every record (in place) the maximum over epochs of history metrics, {history key: record key, or a
    tuple of keys that all get it}, e.g. {"val_accuracy": "val_accuracy_max"} for a study that reports its best
    epoch. Returns `records`."""
    for record in records:
        history = record.get("history") or {}
        for key, names in keys.items():
            if key in history:
                best = float(np.nanmax(history[key]))
                record.update(dict.fromkeys([names] if isinstance(names, str) else names, best))
    return records
