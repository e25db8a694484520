"""k-fold runner: a fresh seeded model per fold, never trained on a validation group, per-fold and mean ± std."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GroupKFold

import keras
from keras import layers

from medcnn.errors import DataError
from medcnn.kfold import run_kfold, summarise_folds
from medcnn.train import compile_model

COUNT = 24


@pytest.fixture
def dataset():
    """Image i holds the value i everywhere, so a pipeline can tell which images it was given."""
    images = np.repeat(np.arange(COUNT, dtype="float32")[:, None], 4, axis=1)
    labels = (np.arange(COUNT) % 2).astype("int32")
    groups = np.repeat([f"P{index}" for index in range(8)], 3)  # 8 patients, 3 images each
    return images, labels, groups


def build_model(fold):
    model = keras.Sequential([keras.Input((4,)), layers.Dense(2, activation="softmax")])
    return compile_model(model, learning_rate=0.01, metrics=["accuracy"])


class Recorder:
    """A make_dataset that records which images each fold trains and validates on."""

    def __init__(self):
        self.seen = []

    def __call__(self, images, labels, training):
        self.seen.append((training, images[:, 0].astype(int)))
        return (images / COUNT, labels)


def test_never_trains_on_a_validation_group(dataset):
    images, labels, groups = dataset
    splits = list(GroupKFold(n_splits=3).split(images, labels, groups))
    recorder = Recorder()
    built = []
    per_fold, summary = run_kfold(
        lambda fold: built.append(fold) or build_model(fold),
        images,
        labels,
        splits,
        fit_kwargs={"epochs": 2, "batch_size": 8, "verbose": 0},
        make_dataset=recorder,
        groups=groups,
    )
    assert built == [0, 1, 2]
    trained = [indices for training, indices in recorder.seen if training]
    validated = [indices for training, indices in recorder.seen if not training]
    for (train_idx, val_idx), seen_train, seen_val in zip(splits, trained, validated):
        np.testing.assert_array_equal(seen_train, train_idx)
        np.testing.assert_array_equal(seen_val, val_idx)
        assert not set(groups[seen_train]) & set(groups[seen_val])

    assert list(per_fold.index) == [0, 1, 2]
    assert {"accuracy", "loss", "n_train", "n_val", "epochs"} <= set(per_fold.columns)
    assert list(per_fold["n_val"]) == [len(val_idx) for _, val_idx in splits]
    assert (per_fold["epochs"] == 2).all()
    assert list(summary.columns) == ["mean", "std", "mean ± std"]
    assert set(summary.index) == {"accuracy", "loss"}
    assert np.isclose(summary.loc["accuracy", "mean"], per_fold["accuracy"].mean())
    assert np.isclose(summary.loc["loss", "std"], per_fold["loss"].std(ddof=1))


def test_a_patient_on_both_sides_is_refused_before_training(dataset):
    images, labels, groups = dataset
    leaky = [(np.arange(0, 13), np.arange(13, COUNT))]  # patient P4 has images 12, 13, 14
    built = []
    with pytest.raises(DataError, match="Fold 0: Patient/group 'P4' has 1 in train and 2 in val"):
        run_kfold(lambda fold: built.append(fold) or build_model(fold), images, labels, leaky, groups=groups)
    assert built == []
    with pytest.raises(DataError, match="Fold 0: Item 12 is in train and val"):
        run_kfold(build_model, images, labels, [(np.arange(0, 13), np.arange(12, COUNT))])


def test_each_fold_starts_from_its_own_seeded_model(dataset):
    images, labels, _ = dataset
    splits = [(np.arange(0, 12), np.arange(12, COUNT)), (np.arange(12, COUNT), np.arange(0, 12))]
    first_weights = []

    def build(fold):
        model = build_model(fold)
        first_weights.append(model.get_weights()[0].copy())
        return model

    run_kfold(
        build,
        images,
        labels,
        splits,
        fit_kwargs={"epochs": 1, "verbose": 0},
        make_dataset=lambda x, y, training: (x / COUNT, y),
        seed=5,
    )
    assert not np.allclose(first_weights[0], first_weights[1])  # fold 1 is not fold 0's model continued
    keras.utils.set_random_seed(5 + 1)
    np.testing.assert_array_equal(build_model(1).get_weights()[0], first_weights[1])  # seeded with seed + fold


def test_custom_metrics_on_validation_predictions(dataset):
    images, labels, _ = dataset
    splits = [(np.arange(0, 16), np.arange(16, COUNT))]
    calls = []

    def metrics(true, probabilities):
        calls.append((true.copy(), probabilities.shape))
        return {"accuracy": accuracy_score(true, probabilities.argmax(axis=1))}

    per_fold, summary = run_kfold(
        build_model,
        images,
        labels,
        splits,
        fit_kwargs={"epochs": 1, "verbose": 0},
        make_dataset=lambda x, y, training: (x / COUNT, y),
        metrics_fn=metrics,
    )
    np.testing.assert_array_equal(calls[0][0], labels[16:])
    assert calls[0][1] == (8, 2)
    assert list(per_fold.columns) == ["accuracy", "n_train", "n_val", "epochs"]
    assert summary.loc["accuracy", "std"] == 0.0  # one fold


def test_summarise_folds_text_column():
    per_fold = pd.DataFrame({"auc": [0.8, 0.9, 1.0], "n_train": [1, 1, 1]})
    summary = summarise_folds(per_fold)
    assert summary.loc["auc", "mean ± std"] == "0.9000 ± 0.1000"
    assert "n_train" not in summary.index


def test_bad_arguments(dataset):
    images, labels, _ = dataset
    with pytest.raises(ValueError, match="differ in length: 24 vs 3"):
        run_kfold(build_model, images, labels[:3], [(np.arange(3), np.arange(3, 6))])
    with pytest.raises(ValueError, match="`splits` is empty"):
        run_kfold(build_model, images, labels, [])
