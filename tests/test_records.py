"""medcnn.experiment.records: what a study adds to its run records after training."""

from medcnn.experiment.records import complete, history_maxima


def test_history_maxima_fill_one_or_several_keys():
    records = [{"history": {"val_accuracy": [0.5, 0.8, 0.7], "val_f1": [0.4, float("nan"), 0.6]}}, {"history": {}}]
    history_maxima(records, {"val_accuracy": ("val_accuracy_max", "val_recall_max"), "val_f1": "val_f1_max"})
    assert records[0]["val_accuracy_max"] == records[0]["val_recall_max"] == 0.8 and records[0]["val_f1_max"] == 0.6
    assert records[1] == {"history": {}}


def test_complete_adds_maxima_best_epoch_and_each_records_backbone_weights():
    history = {"val_accuracy": [0.5, 0.8, 0.7], "val_loss": [1.0, 0.6, 0.9]}
    frozen = {"configuration": "a", "history": history, "settings": {"backbone": "resnet50"}}
    scratch = {"configuration": "b", "history": {}, "settings": {}}
    complete([frozen, scratch], maxima={"val_accuracy": "val_accuracy_max"}, weights={"resnet50": "random"})
    assert frozen["val_accuracy_max"] == 0.8 and frozen["best_epoch"] == 2 and frozen["weights"] == "random"
    assert scratch["weights"] == "none (from scratch)" and "best_epoch" not in scratch
    plain = {"configuration": "c", "history": history}
    assert "weights" not in complete([plain])[0] and plain["best_epoch"] == 2  # no weights given: none added
