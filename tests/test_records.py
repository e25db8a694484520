"""medcnn.experiment.records: what a study adds to its run records after training."""

from medcnn.experiment.records import history_maxima


def test_history_maxima_fill_one_or_several_keys():
    records = [{"history": {"val_accuracy": [0.5, 0.8, 0.7], "val_f1": [0.4, float("nan"), 0.6]}}, {"history": {}}]
    history_maxima(records, {"val_accuracy": ("val_accuracy_max", "val_recall_max"), "val_f1": "val_f1_max"})
    assert records[0]["val_accuracy_max"] == records[0]["val_recall_max"] == 0.8 and records[0]["val_f1_max"] == 0.6
    assert records[1] == {"history": {}}
