import re
from pathlib import Path

import numpy as np
import pytest

from medcnn.studies import allgray

STUDIES_MD = Path(__file__).resolve().parents[2] / "shared" / "studies.md"


def test_table1_is_exactly_the_published_table():
    if not STUDIES_MD.is_file():
        pytest.skip("../shared/studies.md not found")
    text = STUDIES_MD.read_text().split("## `allgray`")[1].split("## `")[0]
    rows = re.findall(r"^\| (\d+ epochs[^|]+)\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", text, re.M)
    assert len(rows) == 4
    for label, *numbers in rows:
        assert list(allgray.PAPER_TABLE1.loc[label.strip()]) == [float(n) for n in numbers]


def test_table1_configurations_match_the_paper_rows():
    assert [c.label for c in allgray.TABLE1] == list(allgray.PAPER_TABLE1.index)
    assert [(c.epochs, c.batch_size) for c in allgray.TABLE1] == [(15, 64), (15, 64), (15, 32), (10, 32)]
    assert allgray.TABLE1[1].loss == "binary_crossentropy"


def test_settings_overrides_and_errors():
    smoke = allgray.settings("smoke", seeds=[7])
    assert all(seeds == [7] for seeds in smoke["seeds"].values())
    assert allgray.settings("full")["max_images"] is None
    with pytest.raises(ValueError, match="`scale` must be one of"):
        allgray.settings("medium")
    with pytest.raises(ValueError, match="Unknown setting"):
        allgray.settings("smoke", epochs=3)


def test_run_plan_goes_seed_by_seed():
    plan = allgray.run_plan({"seeds": {"table1": [0, 1], "honest": [0]}}, groups=("table1", "honest"))
    assert [seed for _, seed in plan] == [0] * 5 + [1] * 4
    assert plan[4][0].group == "honest"


def test_deduplicated_split_has_no_copy_on_two_sides():
    labels = np.repeat(np.arange(4), 25)
    fingerprints = [f"img{i // 2}" if i < 40 else f"img{i}" for i in range(100)]  # 20 duplicate pairs
    split, info = allgray.make_split(labels, fingerprints, seed=0, deduplicate=True)
    assert info["duplicates_removed"] == 20
    assert info["duplicates_across_sides"] == {"val": 0, "test": 0}
    assert sum(len(v) for v in split.values()) == 80
    published, _ = allgray.make_split(labels, fingerprints, seed=0)
    assert sum(len(v) for v in published.values()) == 100


def test_summarise_means_and_stds():
    runs = [
        {"configuration": "a", "group": "table1", "seed": s, **{m: v for m in allgray.SUMMARY_METRICS}}
        for s, v in ((0, 1.0), (1, 3.0))
    ]
    summary = allgray.summarise(runs)
    assert summary.loc["a", "val_accuracy_mean"] == 2.0
    assert summary.loc["a", "val_accuracy_std"] == pytest.approx(np.sqrt(2.0))
    assert summary.loc["a", "seeds"] == 2


@pytest.fixture(scope="module")
def tiny():
    """48 synthetic 40x40 images in 4 classes told apart by brightness."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 12)
    x = (rng.random((48, 40, 40, 1)) * 0.2 + labels[:, None, None, None] * 0.25).astype("float32")
    return x, labels, [f"f{i}" for i in range(48)]


def test_run_configuration_caches_and_reports(tiny, tmp_path):
    x, labels, fingerprints = tiny
    run_settings = dict(allgray.settings("smoke"), image_size=(40, 40), epoch_scale=0.1)
    split, _ = allgray.make_split(labels, fingerprints, seed=0)
    config = allgray.TABLE1[1]  # binary cross-entropy
    first = allgray.run_configuration(config, x, labels, split, 0, run_settings, tmp_path, verbose=0)
    assert first["cached"] is False and first["epochs"] == 2
    assert 0.0 <= first["test_accuracy"] <= 1.0 and first["test_predict_s"] > 0
    # Keras-2-style (element-wise) accuracy of a 4-class one-hot target is at least 0.5 whatever the model does
    assert first["test_keras2_accuracy"] >= 0.5
    assert (tmp_path / "runs" / f"{config.slug}__seed0.json").is_file()
    again = allgray.run_configuration(config, x, labels, split, 0, run_settings, tmp_path, verbose=0)
    assert again["cached"] is True and again["test_accuracy"] == first["test_accuracy"]
    fresh = allgray.run_configuration(
        config, x, labels, split, 0, dict(run_settings, reuse_runs=False), tmp_path, verbose=0
    )
    assert fresh["cached"] is False


def test_hog_pca_reference_row(tiny):
    x, labels, fingerprints = tiny
    split, _ = allgray.make_split(labels, fingerprints, seed=0)
    features = allgray.hog_features(x)
    assert features.shape == (48, 576)  # 5x5 cells of 8 px -> 4x4 blocks of 2x2 cells x 9 orientations
    row = allgray.hog_pca_reference(features, labels, split, components=100, seed=0)
    assert row["configuration"].startswith("HOG + PCA(")
    assert 0.0 <= row["test_accuracy"] <= 1.0 and 0 < row["explained_variance"] <= 1.0 + 1e-5


def test_stuck_runs_are_those_no_better_than_the_largest_class():
    learned = {"test_accuracy": 0.7, "test_confusion": [[5, 1], [2, 2]]}
    stuck = {"test_accuracy": 0.6, "test_confusion": [[6, 0], [4, 0]]}
    assert allgray.stuck_runs([learned, stuck]) == [stuck]
