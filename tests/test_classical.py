"""Classical references: the mean-grey-level baseline."""

import numpy as np

from medcnn.classical import mean_grey_baseline


def test_mean_grey_baseline_finds_a_darker_class_and_not_a_random_one():
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], 20)
    images = np.full((40, 4, 4, 1), 240, np.uint8)
    images[labels == 1] = 180  # the positive class is darker
    split = {"train": np.arange(24), "test": np.arange(24, 40)}
    assert mean_grey_baseline(images, labels, split) == {"balanced_accuracy": 1.0, "roc_auc": 1.0}
    noise = rng.integers(0, 255, (40, 4, 4, 1)).astype(np.uint8)
    assert mean_grey_baseline(noise, labels, split)["balanced_accuracy"] < 0.8
