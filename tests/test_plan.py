"""`medcnn.experiment.estimate` and each study's `plan_runs`: the runs a scale would train, and their time, without
training anything or decoding an image."""

import math

import numpy as np
import pytest

from medcnn.experiment import estimate
from medcnn.experiment.estimate import PlannedRun, Rate
from medcnn.studies import allgray, get_study

OTHER_STUDIES = ("kth", "cnmc", "an2dl", "chromosome")


def made_runs(scale, count=40):
    """`allgray.make_runs` on tiny fake arrays (as tests/test_allgray.py builds them): [(label, seed, epochs)]."""
    labels = np.repeat(np.arange(4), count // 4)
    x = np.zeros((count, 8, 8, 1), "float32")
    runs, _ = allgray.make_runs(x, labels, [f"f{i}" for i in range(count)], allgray.settings(scale), "data-hash")
    return [(run.label, run.seed, run.epochs) for run in runs]


@pytest.mark.parametrize("scale", ["smoke", "full"])
def test_allgray_plan_lists_exactly_the_runs_make_runs_builds(scale, shared_data):
    planned = allgray.plan_runs(allgray.settings(scale), shared_data)
    assert [(run.label, run.seed, run.epochs) for run in planned] == made_runs(scale)
    assert allgray.TABLE1[3].label not in {run.label for run in planned}  # a snapshot: recorded, not trained
    # deduplicated_split's training side over the staged counts (3,061 images: 2,141 in training)
    assert {run.images_per_epoch for run in planned} == {2141}


def test_allgray_plan_counts_files_without_decoding(tmp_path):
    for name, count in zip(allgray.CLASS_NAMES, (10, 12, 14, 16)):
        folder = tmp_path / "all4" / "Original" / name
        folder.mkdir(parents=True)
        for i in range(count):
            (folder / f"{name}-{i}.jpg").write_bytes(b"not an image")  # never opened
    assert estimate.count_files("all4", tmp_path, "Original", allgray.CLASS_NAMES) == dict(
        zip(allgray.CLASS_NAMES, (10, 12, 14, 16))
    )
    planned = allgray.plan_runs(allgray.settings("smoke"), tmp_path)
    assert [(run.label, run.seed, run.epochs) for run in planned] == made_runs("smoke")
    assert all(0 < run.images_per_epoch < 52 for run in planned)


def test_estimate_is_image_epochs_over_the_measured_rate():
    run = PlannedRun("15 epochs, batch 64", 0, "from scratch", "allgray_cnn", 15, 2141, (100, 100))
    frame = estimate.estimate_runs([run])
    assert frame.loc[0, "seconds"] == pytest.approx(15 * 2141 / 226.0)
    assert frame.loc[0, "rate measured"].startswith("benchmarks/")


TOY_RATES = [Rate("toy", "from scratch", (10, 10), 100.0, "test"), Rate("toy", "from scratch", (40, 40), 5.0, "test")]


@pytest.mark.parametrize(
    "size, expected",
    [
        ((10, 10), 100.0),  # measured
        ((15, 15), 100.0 * 100 / 225),  # nearest in pixels (by ratio) is 10x10
        ((10, 20), 50.0),  # twice the pixels: half the rate
        ((30, 30), 5.0 * 1600 / 900),  # nearest is 40x40
    ],
)
def test_rate_scales_with_pixel_count_from_the_nearest_measured_size(size, expected):
    rate, source = estimate.rate_for("toy", "from scratch", size, TOY_RATES)
    assert rate == pytest.approx(expected) and source.measured == "test"


def test_a_model_without_a_measured_rate_is_listed_not_guessed():
    planned = [
        PlannedRun("known", 0, "from scratch", "toy", 2, 50, (10, 10)),
        PlannedRun("unknown", 0, "fine-tuning", "toy", 2, 50, (10, 10)),
    ]
    frame = estimate.estimate_runs(planned, TOY_RATES)
    assert frame["seconds"].tolist()[0] == pytest.approx(1.0) and math.isnan(frame["seconds"].tolist()[1])
    assert estimate.missing_rates(planned, TOY_RATES) == [
        "no measured rate: toy (fine-tuning) at 10x10: 1 run(s), 100 image-epochs left out of the total"
    ]
    text = estimate.plan_text("toy", "smoke", planned, TOY_RATES)
    assert "Total: 0.0 min" in text and "no measured rate: toy (fine-tuning)" in text


def test_plan_table_groups_runs_by_row():
    planned = [PlannedRun("row", seed, "from scratch", "toy", 3, 100, (10, 10), early_stopping=True) for seed in (0, 1)]
    table = estimate.plan_table(planned, TOY_RATES)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["runs"], row["seeds"], row["image-epochs"], row["epochs"]) == (2, "0, 1", 600, "<= 3")
    assert row["seconds"] == pytest.approx(600 / 100.0)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        PlannedRun("row", 0, "training", "toy", 1, 1)


@pytest.mark.parametrize("scale", ["smoke", "cpu"])
@pytest.mark.parametrize("study", OTHER_STUDIES)
def test_every_planned_run_has_a_rate_or_is_listed_as_missing(study, scale, shared_data):
    module = get_study(study)
    planned = module.plan_runs(module.settings(scale), shared_data)
    assert planned
    assert all(run.epochs >= 1 and run.images_per_epoch > 0 for run in planned)
    frame = estimate.estimate_runs(planned)
    missing = "\n".join(estimate.missing_rates(planned))
    for model, kind in frame.loc[frame["seconds"].isna(), ["model", "kind"]].itertuples(index=False):
        assert f"no measured rate: {model} ({kind})" in missing
    assert frame["seconds"].notna().any()
    assert "Total:" in estimate.plan_text(study, scale, planned)


def test_group_seeds_and_snapshot_pairs():
    from types import SimpleNamespace

    from medcnn.experiment.plan import group_seeds, snapshot_pairs

    assert group_seeds({"a": None, "b": [0]}, [0, 1, 2]) == {"a": [0, 1, 2], "b": [0]}
    items = {("short", 0): SimpleNamespace(epochs=10), ("long", 0): SimpleNamespace(epochs=15),
             ("short", 1): SimpleNamespace(epochs=15), ("long", 1): SimpleNamespace(epochs=15),
             ("short", 2): SimpleNamespace(epochs=3)}  # fmt: skip
    assert snapshot_pairs(items, {"short": "long"}, [0, 1, 2]) == [(("short", 0), ("long", 0))]
