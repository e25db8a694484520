"""medcnn.own_data and notebooks/own_data.ipynb: a user's labelled folder -> checked data, honest table, model.

Fast tests use tiny synthetic images in `tmp_path`; the slow ones run the notebook through papermill on 3 classes of
the staged PBC cells (60 each, copied into `tmp_path`), with and without a group pattern, and on a folder with one
class, which must stop with a clear message.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcnn.errors import DataError
from medcnn.experiment import summarise
from medcnn.studies import CONTRACT, SCALES
from medcnn import own_data

REPOSITORY = Path(__file__).resolve().parents[1]
# No published study: no plan over a staged data set id (`make plan-<study>` takes those), no README section.
EXEMPT = {"plan_runs", "PLAN_LEAVES_OUT", "readme_section"}


def write_images(root, counts, size=(12, 10), seed=0):
    """`<root>/<class>/<class>_<i>.png` random RGB images, {class: count}; returns the root."""
    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"P{index % 3}_{name}_{index}.png")
    return root


def test_keeps_the_study_contract_but_the_documented_exemptions():
    missing = [name for name in CONTRACT if not hasattr(own_data, name)]
    assert set(missing) == EXEMPT
    assert own_data.STUDY == "own_data" and own_data.paper_tables() == {}
    assert set(own_data.SETTINGS) == set(SCALES)
    keys = set(own_data.SETTINGS["smoke"])
    for scale in SCALES:
        assert set(own_data.settings(scale)) == keys | {"scale"}
    smoke, full = own_data.settings("smoke"), own_data.settings("full")
    for key in ("cnn_epochs", "head_epochs", "fine_tune_epochs", "mc_passes"):
        assert smoke[key] <= full[key]
    assert smoke["allow_random_weights"] and not full["allow_random_weights"]
    assert own_data.settings("smoke", seeds=[7], max_images=None)["seeds"] == [7]
    with pytest.raises(ValueError, match="Received: scale='huge'"):
        own_data.settings("huge")


@pytest.mark.parametrize(
    ("pattern", "names", "groups"),
    [
        ("^(P[0-9]+)_", ["P07_1.png", "P12_x.jpg"], ["P07", "P12"]),
        ("case-([a-z]+)", ["a_case-left.png", "case-right_2.png"], ["left", "right"]),
        (r"(\d)\.jpg$", ["BA_1003.jpg", "EO_22.jpg"], ["3", "2"]),
    ],
)
def test_groups_from_names(pattern, names, groups):
    assert own_data.groups_from_names([f"/data/cls/{name}" for name in names], pattern).tolist() == groups


def test_group_pattern_errors():
    with pytest.raises(ValueError, match=r"GROUP_PATTERN needs a group.*Received: 'P\[0-9\]\+_'"):
        own_data.groups_from_names(["a/P1_x.png"], "P[0-9]+_")
    with pytest.raises(DataError, match=r"b/x_2\.png: the file name does not match GROUP_PATTERN"):
        own_data.groups_from_names(["a/P1_x.png", "b/x_2.png"], "^(P[0-9]+)_")


def test_one_class_folder_fails_clearly(tmp_path):
    root = write_images(tmp_path / "data", {"only": 6})
    with pytest.raises(DataError, match=r"found 1 class folder\(s\) \['only'\]; a classification data set needs"):
        own_data.load_data(root, own_data.settings("smoke"))


def test_a_class_with_one_image_fails_clearly(tmp_path):
    root = write_images(tmp_path / "data", {"a": 6, "b": 1})
    with pytest.raises(DataError, match=r"\{'a': 6, 'b': 1\}.*5 images in each.*too few in \['b'\]"):
        own_data.load_data(root, own_data.settings("smoke"))


def test_no_data_given():
    with pytest.raises(ValueError, match="Set DATA_DIR"):
        own_data.load_data(None, own_data.settings("smoke"))


def test_load_data_checks_resizes_and_removes_duplicates(tmp_path):
    root = write_images(tmp_path / "data", {"b": 6, "a": 7})
    shutil.copy(root / "a" / "P0_a_0.png", root / "b" / "copy.png")  # a copy that even changes label
    (root / "a" / "notes.txt").write_text("not an image")
    data, checks = own_data.load_data(root, own_data.settings("smoke", image_size=(16, 16)))
    assert data.class_names == ["a", "b"] and data.class_counts() == {"a": 7, "b": 6}  # the copy left out
    assert checks["duplicates"] == [["a/P0_a_0.png", "b/copy.png"]]
    assert any("1 byte-identical copies left out" in warning for warning in checks["warnings"])
    assert any("No group ids" in warning for warning in checks["warnings"])
    assert "Exact duplicates: 1 group(s)" in checks["report"] and checks["sizes"] == {(12, 10): 14}
    assert data.images.shape == (13, 16, 16, 3) and data.images.dtype == np.float32
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0 and data.images.max() > 0.5


def test_load_data_with_groups_and_a_slice(tmp_path):
    root = write_images(tmp_path / "data", {"a": 9, "b": 9})
    run_settings = own_data.settings("smoke", image_size=(8, 8), max_images=12)
    data, checks = own_data.load_data(root, run_settings, group_pattern="^(P[0-9])_")
    assert len(data) == 12 and data.class_counts() == {"a": 6, "b": 6}
    assert set(data.groups.tolist()) == {"P0", "P1", "P2"}
    assert not any("No group ids" in warning for warning in checks["warnings"])
    assert any("stratified slice of 12 of 18" in warning for warning in checks["warnings"])


def test_csv_with_labels_and_groups(tmp_path):
    root = write_images(tmp_path / "images", {"x": 10})
    files = sorted(path.name for path in (root / "x").iterdir())
    table = pd.DataFrame({"file": [f"x/{f}" for f in files], "label": ["10", "2"] * 5, "group": list("ppqqrrsstt")})
    table.to_csv(tmp_path / "labels.csv", index=False)
    data, checks = own_data.load_data(root, own_data.settings("smoke", image_size=(8, 8)), csv=tmp_path / "labels.csv")
    assert data.class_names == ["2", "10"]  # natural order
    assert data.labels.tolist() == [1, 0] * 5 and data.groups.tolist() == list("ppqqrrsstt")
    assert checks["sizes"] == {(12, 10): 10} and checks["report"] == "10 images listed in labels.csv"
    table.loc[3, "file"] = "x/missing.png"
    table.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match=r"labels\.csv, line 5: no such image .*missing\.png"):
        own_data.load_data(root, own_data.settings("smoke"), csv=tmp_path / "labels.csv")
    table.rename(columns={"label": "class"}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match=r"expected the columns file,label\[,group\]"):
        own_data.load_data(root, own_data.settings("smoke"), csv=tmp_path / "labels.csv")


def test_split_holds_test_out_and_keeps_groups_whole():
    labels = np.repeat([0, 1, 2], 40)
    groups = np.array([f"g{i % 12}" for i in range(len(labels))])
    for seed in (0, 1):
        split = own_data.make_split(labels, groups, seed, (0.7, 0.15, 0.15))
        assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(len(labels)))
        sides = [set(groups[index]) for index in split.values()]
        assert all(not (a & b) for i, a in enumerate(sides) for b in sides[i + 1 :])
    plain = own_data.make_split(labels, None, 0, (0.7, 0.15, 0.15))
    assert [len(index) for index in plain.values()] == [84, 18, 18]
    assert np.bincount(labels[plain["test"]]).tolist() == [6, 6, 6]


def fake_record(row, seed, confusion, **metrics):
    """A run record as `experiment.run_all` writes it, with its test confusion matrix and metrics."""
    confusion = np.asarray(confusion)
    recall = np.diag(confusion) / confusion.sum(axis=1)
    return {
        "configuration": row, "group": "g", "seed": seed, "epochs": 3, "test_confusion": confusion.tolist(),
        "test_accuracy": np.trace(confusion) / confusion.sum(), "test_balanced_accuracy": recall.mean(),
        "test_macro_f1": recall.mean(), "test_roc_auc": 0.9, "val_balanced_accuracy": recall.mean(), **metrics,
    }  # fmt: skip


def test_table_marks_collapsed_runs_and_shows_the_references():
    cnn, frozen = own_data.ROWS["cnn"], own_data.ROWS["frozen"]
    good = [[9, 1, 0], [1, 8, 1], [0, 2, 8]]
    stuck = [[10, 0, 0], [10, 0, 0], [10, 0, 0]]  # one class for every image
    records = [fake_record(cnn, 0, good), fake_record(cnn, 1, stuck), fake_record(frozen, 0, good)]
    table = own_data.results_table(summarise(records, own_data.SUMMARY_METRICS), "random")
    assert table.loc[cnn, "collapsed"] == "1 of 2" and table.loc[cnn, "balanced accuracy"].startswith("0.833 (all 2:")
    assert table.loc["reference: majority class", "balanced accuracy"] == "0.333"
    assert table.loc["reference: majority class", "accuracy"] == "0.333"
    assert table.loc["reference: chance", "AUC (one-vs-rest)"] == "0.500"
    assert table.loc[frozen, "note"] == "random weights" and table.loc[cnn, "note"] == ""


def test_findings_compare_rows_beyond_seed_noise():
    cnn, frozen = own_data.ROWS["cnn"], own_data.ROWS["frozen"]
    weak = [[[5 + s, 3, 2], [3, 5, 2], [2, 3, 5]] for s in range(3)]
    strong = [[[9, 1, 0], [0, 10 - (s % 2), s % 2], [0, 1, 9]] for s in range(3)]
    records = [fake_record(cnn, s, c) for s, c in enumerate(weak)] + [
        fake_record(frozen, s, c) for s, c in enumerate(strong)
    ]
    sentences = own_data.findings(summarise(records, own_data.SUMMARY_METRICS), records, "imagenet")
    assert sentences[0].startswith(f"'{cnn}' is below '{frozen}' on test balanced accuracy")
    assert "paired over 3 shared seeds" in sentences[0]
    assert sentences[1].startswith("0 of 6 runs collapsed")
    assert "random weights" in own_data.findings(summarise(records, own_data.SUMMARY_METRICS), records, "random")[-1]


def test_error_analysis_most_confused_and_per_group():
    data = type("Data", (), {})()
    data.class_names, data.labels = ["a", "b", "c"], np.array([0, 0, 1, 1, 2, 2])
    data.groups = np.array(["p1", "p1", "p2", "p2", "p3", "p3"])
    probabilities = np.eye(3)[[0, 1, 1, 1, 0, 0]]  # a->b once, c->a twice
    best = {"test_confusion": [[1, 1, 0], [0, 2, 0], [2, 0, 0]], "test_indices": list(range(6)),
            "test_probabilities": probabilities.tolist()}  # fmt: skip
    confused, per_group = own_data.error_analysis(best, data)
    assert confused[["true", "predicted", "images"]].values.tolist() == [["c", "a", 2], ["a", "b", 1]]
    assert confused["share of the true class"].tolist() == [1.0, 0.5]
    assert per_group["accuracy"].to_dict() == {"p3": 0.0, "p1": 0.5, "p2": 1.0}
    data.groups = None
    assert own_data.error_analysis(best, data)[1] is None


def test_seeding_names_what_the_seeds_vary():
    policy = own_data.seeding(own_data.settings("smoke"), "imagenet")
    assert (
        policy["seed_varies"][:2] == ["split", "initialisation"]
        and "pretrained backbone weights" in policy["held_fixed"]
    )
    assert "random backbone weights" in own_data.seeding(own_data.settings("smoke"), "random")["seed_varies"]


def test_make_target_runs_the_notebook_with_absolute_paths():
    dry = subprocess.run(
        ["make", "-n", "own-data", "DATA_DIR=some/cells", "GROUP_PATTERN=^(P[0-9]+)_", "SCALE=cpu"],
        capture_output=True, text=True, cwd=REPOSITORY,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    command = dry.stdout.replace("\\\n", " ")
    assert "papermill notebooks/own_data.ipynb" in command and "-p SCALE cpu" in command
    assert f'-r DATA_DIR "{REPOSITORY}/some/cells"' in command
    assert f'-r OUTPUT_DIR "{REPOSITORY}/results/own_data/cells"' in command
    assert "-r GROUP_PATTERN '^(P[0-9]+)_'" in command


# ----------------------------------------------------------------------------------------------------------------
# The notebook through papermill (slow)

PBC_CLASSES = ("basophil", "eosinophil", "lymphocyte")


def pbc_folder(shared_data, root, per_class=60, patients=None):
    """3 PBC classes, `per_class` images each, copied into `root`; with `patients`, each file name gets a
    `P<k>_` prefix (k cycling over that many patients). Returns (root, {class: files not copied})."""
    unseen = {}
    for name in PBC_CLASSES:
        files = sorted((shared_data / "pbc" / name).iterdir())
        (root / name).mkdir(parents=True)
        for index, path in enumerate(files[:per_class]):
            prefix = f"P{index % patients:02d}_" if patients else ""
            shutil.copy(path, root / name / f"{prefix}{path.name}")
        unseen[name] = files[-10:]  # never copied: images the run never sees
    return root, unseen


def run_notebook(tmp_path, **parameters):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "out"
    notebook = REPOSITORY / "notebooks" / "own_data.ipynb"
    papermill.execute_notebook(
        str(notebook), str(tmp_path / "executed.ipynb"), cwd=str(notebook.parent), kernel_name="python3",
        parameters={"OUTPUT_DIR": str(out), **parameters}, progress_bar=False,
    )  # fmt: skip
    return out, json.loads((out / "results.json").read_text())


def check_run(root, out, results, unseen):
    """Every row and reference in the table, the best model learns, and the saved model reads raw files in a fresh
    process: the probabilities its run recorded on its test images, and above chance on PBC images never seen."""
    from medcnn.data.loaders import list_folders
    from medcnn.experiment import slugify

    rows = [row["configuration"] for row in results["table"]]
    assert rows == [*own_data.ROWS.values(), "reference: majority class", "reference: chance"]
    assert results["run"]["reused"] == 0 and results["run"]["runs"] == 3 * len(results["run"]["seeds"])
    assert results["best_run"]["test_balanced_accuracy"] >= 1 / 3 + 0.15
    assert 0 <= results["referral"]["referred"] <= results["referral"]["test_images"]
    best = results["best_run"]
    record = json.loads((out / "runs" / f"{slugify(best['configuration'])}__seed{best['seed']}.json").read_text())
    assert results["checks"]["duplicates"] == []  # so the run's indices are those of the files in folder order
    test = [list_folders(root)[0][index] for index in record["test_indices"][:6]]
    files = test + [str(path) for name in PBC_CLASSES for path in unseen[name]]
    table = out / "predictions.csv"
    predict = [sys.executable, "-m", "medcnn", "predict", str(out / "model.keras"), *files, "--csv", str(table)]
    assert subprocess.run(predict, capture_output=True, text=True, cwd=REPOSITORY).returncode == 0
    predicted = pd.read_csv(table)
    probabilities = predicted[[f"p_{name}" for name in PBC_CLASSES]].to_numpy()
    np.testing.assert_allclose(probabilities[:6], np.array(record["test_probabilities"][:6]), atol=2e-3)
    truth = [PBC_CLASSES.index(Path(path).parent.name) for path in files[6:]]
    assert np.mean(probabilities[6:].argmax(axis=1) == truth) >= 1 / 3 + 0.15


@pytest.mark.slow
def test_notebook_without_groups(shared_data, tmp_path):
    root, unseen = pbc_folder(shared_data, tmp_path / "cells")
    out, results = run_notebook(tmp_path, DATA_DIR=str(root), SEEDS=[0])
    check_run(root, out, results, unseen)
    assert results["per_group"] is None and any("No group ids" in w for w in results["checks"]["warnings"])


@pytest.mark.slow
def test_notebook_with_a_group_pattern(shared_data, tmp_path):
    root, unseen = pbc_folder(shared_data, tmp_path / "cells", patients=12)
    out, results = run_notebook(tmp_path, DATA_DIR=str(root), GROUP_PATTERN="^(P[0-9]+)_", SEEDS=[0])
    check_run(root, out, results, unseen)
    assert results["run"]["groups"] == 12 and results["per_group"]
    assert {row["group"] for row in results["per_group"]} < {f"P{k:02d}" for k in range(12)}


@pytest.mark.slow
def test_notebook_stops_on_one_class_with_a_clear_message(shared_data, tmp_path):
    papermill = pytest.importorskip("papermill")
    root, _ = pbc_folder(shared_data, tmp_path / "cells", per_class=6)
    for name in PBC_CLASSES[1:]:
        shutil.rmtree(root / name)
    with pytest.raises(papermill.PapermillExecutionError, match=r"found 1 class folder\(s\) \['basophil'\]"):
        run_notebook(tmp_path, DATA_DIR=str(root))
