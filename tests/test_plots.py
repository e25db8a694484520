"""medcnn.plots: each figure is built headlessly, written as a PNG, and titled as documented."""

import matplotlib.pyplot as plt  # only to check that no pyplot figure is left open (headless: Agg)
import numpy as np
import pytest
from matplotlib.figure import Figure

from medcnn import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ["Benign", "Early", "Pre"]


def assert_png(path):
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_MAGIC


def titles(figure):
    return [ax.get_title() for ax in figure.axes]


@pytest.fixture
def multiclass():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 6)
    probabilities = rng.dirichlet(np.ones(3), size=18)
    probabilities[np.arange(18), labels] += 0.3
    return labels, probabilities / probabilities.sum(axis=1, keepdims=True)


def test_history_panels_and_file(tmp_path):
    history = {
        "loss": [0.9, 0.5, 0.3],
        "accuracy": [0.5, 0.7, 0.8],
        "val_loss": [1.0, 0.7, 0.6],
        "val_accuracy": [0.4, 0.6, 0.7],
        "auc": [0.6, 0.7, 0.9],
    }
    figure = plots.plot_history(history, path=tmp_path / "curves" / "history.png")
    assert isinstance(figure, Figure)
    assert titles(figure)[:3] == ["loss", "accuracy", "auc"]
    loss_axes = figure.axes[0]
    assert [line.get_label() for line in loss_axes.get_lines()] == ["train", "validation"]
    np.testing.assert_allclose(loss_axes.get_lines()[1].get_ydata(), history["val_loss"])
    assert_png(tmp_path / "curves" / "history.png")
    assert plt.get_fignums() == []  # nothing left open in pyplot


def test_history_accepts_a_keras_history_object():
    class History:
        def __init__(self):
            self.history = {"loss": [1.0, 0.5]}

    assert titles(plots.plot_history(History()))[0] == "loss"


def test_empty_history():
    with pytest.raises(ValueError, match="`history` is empty"):
        plots.plot_history({})


def test_roc_binary_and_several_models(tmp_path):
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    figure = plots.plot_roc(labels, scores, ["normal", "abnormal"], path=tmp_path / "roc.png")
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend[0] == "abnormal (AUC = 0.889)"  # 8 of 9 positive-negative pairs ranked right
    assert_png(tmp_path / "roc.png")
    compared = plots.plot_roc(labels, {"VGG16": scores, "InceptionV3": 1 - scores}, ["normal", "abnormal"])
    legend = [text.get_text() for text in compared.axes[0].get_legend().get_texts()]
    assert legend[:2] == ["VGG16 (AUC = 0.889)", "InceptionV3 (AUC = 0.111)"]


def test_roc_multiclass_draws_one_curve_per_class(multiclass):
    labels, probabilities = multiclass
    figure = plots.plot_roc(labels, probabilities, NAMES)
    assert len(figure.axes[0].get_lines()) == 3 + 1  # three classes and the chance line
    assert figure.axes[0].get_title() == "ROC curve"


def test_confusion_matrix_counts_and_normalised(tmp_path):
    matrix = [[3, 1, 0], [0, 2, 2], [0, 0, 0]]
    figure = plots.plot_confusion_matrix(matrix, NAMES, path=tmp_path / "confusion.png")
    assert titles(figure) == ["Counts", "Row-normalised"]
    normalised_texts = [text.get_text() for text in figure.axes[1].texts]
    assert "0.75" in normalised_texts and "0.50" in normalised_texts  # rows divided by 4 and 4; empty row stays 0
    assert_png(tmp_path / "confusion.png")


def test_confusion_matrix_wrong_shape():
    with pytest.raises(ValueError, match=r"Received: matrix.shape=\(2, 2\)"):
        plots.plot_confusion_matrix([[1, 0], [0, 1]], NAMES)


def test_reliability_diagram(tmp_path):
    labels = np.array([0, 1, 1, 0])
    positive = np.array([0.05, 0.95, 0.65, 0.65])  # two right at 0.95, one of two right at 0.65
    figure = plots.plot_reliability(labels, positive, bins=10, path=tmp_path / "reliability.png")
    expected_ece = 2 / 4 * abs(1.0 - 0.95) + 2 / 4 * abs(0.5 - 0.65)
    assert figure.axes[0].get_title() == f"Reliability diagram (ECE = {expected_ece:.3f})"
    counts = [patch.get_height() for patch in figure.axes[1].patches]
    assert counts == [0, 0, 0, 0, 0, 0, 2, 0, 0, 2]
    assert_png(tmp_path / "reliability.png")


def test_reliability_diagram_multiclass(multiclass):
    labels, probabilities = multiclass
    figure = plots.plot_reliability(labels, probabilities, bins=5)
    assert len(figure.axes[1].patches) == 5
    assert sum(patch.get_height() for patch in figure.axes[1].patches) == len(labels)


def test_image_grid_one_row_per_class(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    figure = plots.plot_image_grid(images, labels, NAMES, per_class=2, path=tmp_path / "grid.png")
    grid_titles = titles(figure)
    assert grid_titles == ["Benign", "Benign", "Early", "Early", "Pre", ""]  # class Pre has one image only
    assert_png(tmp_path / "grid.png")


def test_image_grid_grayscale_floats():
    images = np.random.default_rng(2).random((4, 8, 8, 1))
    figure = plots.plot_image_grid(images, [0, 1, 0, 1], ["a", "b"], per_class=1)
    assert figure.axes[0].images[0].get_array().shape == (8, 8)


def test_predictions_titles_and_colours(tmp_path):
    images = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    figure = plots.plot_predictions(
        images,
        [0, 1, 2, 2],
        [0, 2, 2, 1],
        NAMES,
        confidence=[0.9, 0.55, 1.0, 0.7],
        path=tmp_path / "predictions.png",
        columns=2,
    )
    assert figure.axes[0].get_title() == "True: Benign / Predicted: Benign (90 %)"
    assert figure.axes[1].get_title() == "True: Early / Predicted: Pre (55 %)"
    assert figure.axes[0].title.get_color() == plots.CORRECT_COLOR
    assert figure.axes[1].title.get_color() == plots.WRONG_COLOR
    assert_png(tmp_path / "predictions.png")


def test_predictions_length_mismatch():
    with pytest.raises(ValueError, match="must have the same length"):
        plots.plot_predictions(np.zeros((2, 4, 4)), [0, 1], [0], ["a", "b"])


def test_image_pairs_top_above_bottom_with_titles(tmp_path):
    images = np.stack([np.full((6, 6, 3), value, dtype=np.uint8) for value in (10, 20, 30, 40)])
    figure = plots.plot_image_pairs(images, [(0, 2), (1, 3)], [("kept a", "removed c"), ("kept b", "removed d")],
                                    path=tmp_path / "pairs.png")  # fmt: skip
    assert titles(figure) == ["kept a", "kept b", "removed c", "removed d"]  # row by row: tops, then bottoms
    assert figure.axes[2].images[0].get_array()[0, 0, 0] == 30  # the bottom of the first pair is image 2
    assert_png(tmp_path / "pairs.png")
    shown = plots.plot_image_pairs(images, [(0, 1)] * 9, max_pairs=3)
    assert len(shown.axes) == 6
    nothing = plots.plot_image_pairs(images, [], empty="no duplicates found")
    assert nothing.axes[0].texts[0].get_text() == "no duplicates found"
    with pytest.raises(ValueError, match="Received: 1 titles"):
        plots.plot_image_pairs(images, [(0, 1), (2, 3)], [("a", "b")])


def test_selected_images_in_the_order_given():
    images = np.stack([np.full((6, 6, 3), value, dtype=np.uint8) for value in (10, 20, 30)])
    figure = plots.plot_selected_images(images, [2, 0], ["c 0.41", "a 0.52"], columns=6)
    assert titles(figure)[:2] == ["c 0.41", "a 0.52"] and len(figure.axes) == 2
    assert figure.axes[0].images[0].get_array()[0, 0, 0] == 30
    assert plots.plot_selected_images(images, [], empty="no outliers").axes[0].texts[0].get_text() == "no outliers"
    with pytest.raises(ValueError, match="Received: 1 titles"):
        plots.plot_selected_images(images, [0, 1], ["a"])
