"""medcnn.evaluate: metrics checked against scikit-learn and Keras, computed independently."""

import time

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from medcnn.data.labels import flat_labels
from medcnn.evaluate import (
    as_labels,
    classification_metrics,
    keras2_accuracy,
    keras_binary_accuracy,
    probability_matrix,
    timed_predict,
)

BINARY_NAMES = ["normal", "abnormal"]


@pytest.fixture
def binary_case():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    positive = np.clip(labels * 0.4 + rng.random(40) * 0.6, 0, 1)  # informative but imperfect
    return labels, positive


@pytest.mark.parametrize(
    "shape_name, make",
    [
        ("vector (N,)", lambda p: p),
        ("sigmoid column (N, 1)", lambda p: p[:, None]),
        ("softmax pair (N, 2)", lambda p: np.stack([1 - p, p], axis=1)),
    ],
)
def test_binary_probability_shapes_give_the_same_metrics(binary_case, shape_name, make):
    labels, positive = binary_case
    metrics = classification_metrics(labels, make(positive), BINARY_NAMES)
    predicted = (positive >= 0.5).astype(int)
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert metrics["precision"] == pytest.approx(precision_score(labels, predicted))
    assert metrics["recall"] == pytest.approx(recall_score(labels, predicted))
    assert metrics["f1_weighted"] == pytest.approx(f1_score(labels, predicted, average="weighted"))
    assert metrics["f1_macro"] == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, positive))
    true_negative = int(np.sum((labels == 0) & (predicted == 0)))
    assert metrics["confusion_matrix"][0][0] == true_negative
    assert sum(map(sum, metrics["confusion_matrix"])) == len(labels)
    assert set(metrics["per_class"]) >= {"normal", "abnormal", "weighted avg"}


def test_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 10)
    probabilities = rng.dirichlet(np.ones(4), size=40)
    probabilities[np.arange(40), labels] += 0.5
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    metrics = classification_metrics(labels, probabilities, ["Benign", "Early", "Pre", "Pro"])
    predicted = probabilities.argmax(axis=1)
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert metrics["precision_macro"] == pytest.approx(precision_score(labels, predicted, average="macro"))
    assert metrics["recall_weighted"] == pytest.approx(recall_score(labels, predicted, average="weighted"))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, probabilities, multi_class="ovr"))
    assert len(metrics["roc_auc_per_class"]) == 4
    assert "precision" not in metrics  # positive-class metrics exist for binary problems only
    assert np.array_equal(
        np.diag(metrics["confusion_matrix"]), [np.sum((labels == k) & (predicted == k)) for k in range(4)]
    )


def test_onehot_labels_are_accepted():
    labels = np.array([0, 1, 2, 2])
    probabilities = np.eye(3)[[0, 1, 2, 1]]
    from_onehot = classification_metrics(np.eye(3)[labels], probabilities, ["a", "b", "c"])
    assert from_onehot["accuracy"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    "labels, expected",
    [
        ([2, 0, 1], [2, 0, 1]),
        ([[2], [0], [1]], [2, 0, 1]),
        (np.eye(3)[[2, 0, 1]], [2, 0, 1]),
        ([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]], [1, 0]),
        (np.array([1.0, 0.0]), [1, 0]),
        (np.array([True, False]), [1, 0]),
    ],
)
def test_as_labels(labels, expected):
    assert as_labels(labels).tolist() == expected


@pytest.mark.parametrize(
    "labels, message",
    [
        ([0.5, 1.0], r"must hold integer class labels. Received: y_true\[:5\]=\[0.5, 1.0\]"),
        ([np.nan, 1.0], "must hold integer class labels"),
        (["a", "b"], "must hold integer class labels"),
        (np.zeros((2, 2, 2)), r"Received: y_true.shape=\(2, 2, 2\)"),
    ],
)
def test_as_labels_rejects(labels, message):
    with pytest.raises(ValueError, match=message):
        as_labels(labels)


def test_flat_labels_keeps_what_it_cannot_flatten():
    fractions = np.array([[0.5], [1.0]])
    assert flat_labels(fractions).tolist() == [0.5, 1.0] and flat_labels(fractions).dtype == np.float64
    assert flat_labels(np.zeros((4, 2, 2))).shape == (4, 2, 2)


def test_auc_is_nan_when_one_class_is_missing():
    metrics = classification_metrics(np.zeros(5, int), np.linspace(0.1, 0.9, 5), BINARY_NAMES)
    assert np.isnan(metrics["roc_auc"])
    assert metrics["accuracy"] == pytest.approx(0.4)  # all true 0; only 0.1 and 0.3 fall below 0.5


def test_multiclass_auc_skips_absent_classes():
    labels = np.array([0, 0, 1, 1])  # class 2 never occurs
    probabilities = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    metrics = classification_metrics(labels, probabilities, ["a", "b", "c"])
    assert set(metrics["roc_auc_per_class"]) == {"a", "b"}
    assert metrics["roc_auc"] == pytest.approx(1.0)


def test_threshold_changes_binary_predictions():
    labels = np.array([0, 1, 1])
    probabilities = np.array([0.2, 0.4, 0.9])
    assert classification_metrics(labels, probabilities, BINARY_NAMES)["recall"] == pytest.approx(0.5)
    assert classification_metrics(labels, probabilities, BINARY_NAMES, threshold=0.3)["recall"] == pytest.approx(1.0)


def test_length_mismatch():
    with pytest.raises(ValueError, match="has 3 items but `y_prob` has 2"):
        classification_metrics([0, 1, 0], [0.2, 0.7], BINARY_NAMES)


def test_label_out_of_range():
    with pytest.raises(ValueError, match=r"Labels must lie in \[0, 1\]"):
        classification_metrics([0, 2], [0.2, 0.7], BINARY_NAMES)


def test_probability_columns_do_not_match_classes():
    with pytest.raises(ValueError, match=r"or \(N, 3\) for 3 classes"):
        classification_metrics([0, 1], np.full((2, 4), 0.25), ["a", "b", "c"])


def test_single_column_for_multiclass():
    with pytest.raises(ValueError, match="only fits a binary problem"):
        probability_matrix(np.array([0.1, 0.2]), 3)


def test_nan_probabilities():
    with pytest.raises(ValueError, match="NaN or infinite"):
        classification_metrics([0, 1], [np.nan, 0.5], BINARY_NAMES)


def test_keras_binary_accuracy_matches_keras():
    import keras

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 64)
    onehot = np.eye(4, dtype="float32")[labels]
    probabilities = rng.dirichlet(np.ones(4), size=64).astype("float32")
    metric = keras.metrics.BinaryAccuracy()
    metric.update_state(onehot, probabilities)
    ours = keras_binary_accuracy(onehot, probabilities)
    assert ours == pytest.approx(float(metric.result()), abs=1e-6)
    assert ours > np.mean(probabilities.argmax(axis=1) == labels)  # the inflation the docstring describes


def test_keras2_accuracy_is_element_wise():
    labels = np.array([0, 1])
    probabilities = np.array([[0.9, 0.1, 0.0, 0.0], [0.6, 0.2, 0.1, 0.1]])  # right, then wrong
    # first: 4 of 4 elements match; second: predicts class 0 (1 wrong) and misses class 1 (1 wrong): 2 of 4
    assert keras2_accuracy(labels, probabilities) == {"keras2_accuracy": 0.75}


def test_keras_binary_accuracy_shape_mismatch():
    with pytest.raises(ValueError, match="must have the same shape"):
        keras_binary_accuracy(np.zeros((2, 3)), np.zeros((2, 4)))


class SlowFirstCall:
    """A stand-in model whose first predict call is slow, as a first (tracing) call is."""

    def __init__(self):
        self.calls = []

    def predict(self, x, batch_size, verbose):
        self.calls.append(len(x))
        if len(self.calls) == 1:
            time.sleep(0.3)
        return np.full((len(x), 2), 0.5)


def test_timed_predict_excludes_the_warm_up_call():
    model = SlowFirstCall()
    probabilities, seconds = timed_predict(model, np.zeros((10, 3)), batch_size=4)
    assert probabilities.shape == (10, 2)
    assert model.calls == [4 + 10 % 4, 10]  # warm-up: a full batch and the last partial batch's size
    assert seconds < 0.3


def test_timed_predict_with_a_keras_model():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    x = np.random.default_rng(3).random((9, 3)).astype("float32")
    started = time.perf_counter()
    probabilities, seconds = timed_predict(model, x, batch_size=4)
    elapsed = time.perf_counter() - started
    np.testing.assert_allclose(probabilities, model.predict(x, verbose=0), atol=1e-6)
    assert 0 < seconds < elapsed  # the timed call only, inside the whole call with its warm-up


def test_timed_predict_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        timed_predict(SlowFirstCall(), np.zeros((2, 3)), batch_size=0)


def test_per_class_from_confusion_and_confused_pairs():
    from medcnn.evaluate import confused_pairs, per_class_from_confusion

    names = ["1", "2", "3", "4", "X"]
    confusion = np.zeros((5, 5), int)
    confusion[0, 0], confusion[0, 1], confusion[1, 1], confusion[1, 0], confusion[2, 2] = 8, 2, 9, 1, 5
    confusion[3, 2] = 3
    table = per_class_from_confusion(confusion, names)
    assert table.loc["1", "recall"] == pytest.approx(0.8) and table.loc["1", "precision"] == pytest.approx(8 / 9)
    assert table.loc["3", "F1"] == pytest.approx(2 * (5 / 8) * 1 / (5 / 8 + 1)) and table.loc["4", "F1"] == 0.0
    assert table.loc["X", "support"] == 0
    assert confused_pairs(confusion, names, top=2) == [("1", "2", 3), ("3", "4", 3)]  # ties: class order
    assert confused_pairs(np.diag([1] * 5), names) == []
    with pytest.raises(ValueError, match=r"Received: shape=\(5, 5\)"):
        confused_pairs(confusion, names[:4])
