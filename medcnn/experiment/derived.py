"""Rows made from trained runs without training a network: soft-vote ensembles and CNN features + an SVM.

Both are built per test side (a `crossval.UNIT`: seed, fold, protocol), from the runs scored on it, and chosen by
validation only: an ensemble's members are that side's best runs by validation accuracy, an SVM's features come
from the network the study picks by validation. Their records look like the runs' (test metrics, confusion,
indices, prediction time), so they summarise, pool and tabulate with them.
"""

import numpy as np

from medcnn.experiment.crossval import unit_of


def _units(records):
    """{(seed, fold, protocol): [records]} in first-seen order."""
    units = {}
    for record in records:
        units.setdefault(unit_of(record), []).append(record)
    return units


def soft_vote_records(records, labels, class_names, label, size, group="ensemble", name="row", score="val_accuracy"):
    """Soft voting (mean test probabilities) of each test side's `size` best runs by `score` (validation).

    Args:
        records: run records with `score`, `test_indices` and `test_probabilities`; runs without them are skipped.
        labels: every item's label; class_names: in label order.
        label: the new row's `configuration` and `row`.
        size: members per test side; a side with fewer candidates gets no record.
        name: the record field that names a member (default the table row), listed in `members`.

    Returns:
        One record per test side (seed, fold, protocol): test metrics, confusion, indices and probabilities,
        `members`, summed parameters and prediction time, the members' combined training rate (each member was
        trained); no `train_s`, so it is not counted as a trained run.

    Raises:
        ValueError: a side's members were tested on different items.
    """
    from medcnn.evaluate import classification_metrics, record_entries

    labels = np.asarray(labels)
    made = []
    for (seed, fold, protocol), chosen in _units(records).items():
        candidates = [r for r in chosen if score in r and "test_probabilities" in r and "test_indices" in r]
        if len(candidates) < size:
            continue
        members = sorted(candidates, key=lambda r: -r[score])[:size]  # stable: ties keep the records' order
        index = np.asarray(members[0]["test_indices"])
        if any(not np.array_equal(index, r["test_indices"]) for r in members):
            raise ValueError(f"The members of '{label}' (seed {seed}, fold {fold}) were tested on different items.")
        probabilities = np.mean([np.asarray(r["test_probabilities"]) for r in members], axis=0)
        metrics = classification_metrics(labels[index], probabilities, class_names)
        made.append(
            {
                "configuration": label, "row": label, "group": group, "seed": seed, "fold": fold, "protocol": protocol,
                "members": [r.get(name, r["configuration"]) for r in members],
                **record_entries(metrics, "test_"), "test_roc_auc": metrics["roc_auc"],
                "test_indices": index.tolist(), "test_probabilities": np.round(probabilities, 4).tolist(),
                "test_predict_s": float(sum(r.get("test_predict_s", 0.0) for r in members)),
                "train_images_per_s": 1.0 / sum(1.0 / r["train_images_per_s"] for r in members),
                "parameters": int(sum(r.get("parameters", 0) for r in members)), "sizes": members[0].get("sizes"),
            }
        )  # fmt: skip
    return made


def penultimate(model, output_layer="probabilities"):
    """`model` up to the input of its output layer: the features a classical classifier is trained on."""
    import keras

    return keras.Model(model.inputs, model.get_layer(output_layer).input, name=f"{model.name}_features")


def cnn_svm_records(sources, inputs_of, labels, class_names, cache, svm, label, group="svm", log=print):
    """CNN features + SVM: for each (run, record) of `sources`, the trained run's penultimate features of every item,
    then PCA and an RBF SVM fitted on its training side (`classical.pca_svm_record`); one record per source.

    Args:
        sources: [(run, record)], one network per test side, chosen by the caller on validation.
        inputs_of: `run -> x`, the inputs that run trains on (for `experiment.trained_model`).
        labels, class_names: as for the runs; cache: their `RunCache` (the weights, or the run trained again).
        svm: {"pca_components": int, "C": float}.
        label: the new row's `configuration` and `row`.

    Returns:
        Records with val and test metrics, test indices and predicted labels (`test_predicted`), `features_of`,
        the source's seed, fold, parameters, sizes and training rate; prediction time adds the feature pass.
    """
    from medcnn.classical import pca_svm_record
    from medcnn.evaluate import timed_predict
    from medcnn.experiment.export import trained_model

    made = []
    for run, record in sources:
        x = inputs_of(run)
        extractor = penultimate(trained_model(run, x, labels, class_names, cache, log=log))
        features = extractor.predict(x, batch_size=run.predict_batch_size, verbose=0)
        _, feature_seconds = timed_predict(extractor, x[run.split["test"]], run.predict_batch_size)
        made_record = pca_svm_record(
            features, labels, run.split, class_names, svm["pca_components"], svm["C"], seed=run.seed, label=label
        )
        made_record.update(
            {
                "row": label, "group": group, "fold": record.get("fold"), "protocol": record.get("protocol"),
                "features_of": record.get("row", record["configuration"]),
                "test_predict_s": made_record["test_predict_s"] + feature_seconds,
                "train_images_per_s": record["train_images_per_s"],  # the CNN's training; the SVM adds seconds
                "parameters": record.get("parameters"), "sizes": record.get("sizes"),
            }
        )  # fmt: skip
        made.append(made_record)
    return made


def best_per_unit(records, score="val_accuracy"):
    """The record with the highest `score` (a validation metric) of each test side (`crossval.UNIT`), in first-seen
    order; ties go to the earlier record."""
    return [max(chosen, key=lambda r: r[score]) for chosen in _units([r for r in records if score in r]).values()]
