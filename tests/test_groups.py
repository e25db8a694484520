"""medcnn.experiment.groups: results per group of items (a patient's cells), one probability or one per class."""

import numpy as np
import pytest

from medcnn.experiment.groups import group_results, group_table, items_per_group


def test_groups_scored_from_one_probability_or_one_per_class():
    labels, groups = np.array([0, 0, 1, 1, 2]), np.array(["a", "a", "b", "b", "c"])
    one = {"test_indices": [0, 1, 2, 3], "test_probabilities": [[0.2], [0.7], [0.9], [0.6]], "model": "m", "fold": 1}
    table = group_results(one, labels, groups, ["x", "y", "z"], group="case", items="images")
    assert table.index.name == "case" and table.loc["a", "images"] == 2
    assert table["accuracy"].tolist() == [0.5, 1.0] and table["majority right"].tolist() == [False, True]
    every = {"test_indices": [2, 4], "test_probabilities": [[0.1, 0.8, 0.1], [0.5, 0.2, 0.3]], "model": "m", "fold": 2}
    assert group_results(every, labels, groups, ["x", "y", "z"])["accuracy"].tolist() == [1.0, 0.0]
    shown = group_table([one, every], labels, groups, ["x", "y", "z"], by=("model", "fold"))
    assert list(shown.columns) == ["class", "cells", "m (1)", "m (2)"] and shown.loc["b", "m (2)"] == 1.0
    assert np.isnan(shown.loc["c", "m (1)"]) and shown.loc["a", "m (1)"] == pytest.approx(0.5)
    per_class = items_per_group(labels, groups, ["x", "y", "z"])
    assert per_class.columns.tolist() == ["class", "patient", "cells"] and per_class["cells"].tolist() == [2, 2, 1]
