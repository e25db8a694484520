"""Tests for medcnn.data.paths: the resolver's order, its error messages, and the data/README.md anchors."""

import re
import unicodedata

import pytest

from medcnn.data import paths
from medcnn.errors import DataError
from medcnn.data.paths import (
    DATASET_SECTIONS,
    REPO_ROOT,
    data_root,
    resolve_dataset,
    weights_dirs,
)


@pytest.fixture
def no_shared(tmp_path, monkeypatch):
    """No MEDCNN_DATA and no ../shared beside the repository."""
    monkeypatch.delenv("MEDCNN_DATA", raising=False)
    monkeypatch.setattr(paths, "SHARED", tmp_path / "no-shared")
    return tmp_path


def test_explicit_path_wins_over_environment(tmp_path, monkeypatch):
    (tmp_path / "arg" / "all4").mkdir(parents=True)
    (tmp_path / "env" / "all4").mkdir(parents=True)
    monkeypatch.setenv("MEDCNN_DATA", str(tmp_path / "env"))
    assert resolve_dataset("all4", tmp_path / "arg") == tmp_path / "arg" / "all4"
    assert resolve_dataset("all4") == tmp_path / "env" / "all4"


def test_environment_wins_over_shared(tmp_path, monkeypatch):
    (tmp_path / "shared" / "data" / "pbc").mkdir(parents=True)
    (tmp_path / "env" / "pbc").mkdir(parents=True)
    monkeypatch.setattr(paths, "SHARED", tmp_path / "shared")
    monkeypatch.delenv("MEDCNN_DATA", raising=False)
    assert resolve_dataset("pbc") == tmp_path / "shared" / "data" / "pbc"
    monkeypatch.setenv("MEDCNN_DATA", str(tmp_path / "env"))
    assert resolve_dataset("pbc") == tmp_path / "env" / "pbc"


def test_data_dir_may_be_the_data_set_itself(tmp_path):
    (tmp_path / "Original").mkdir()
    assert resolve_dataset("all4", tmp_path) == tmp_path


def test_inner_folders_of_a_data_set_are_returned_in_its_place_the_first_that_exists(tmp_path):
    (tmp_path / "cnmc" / "C-NMC_Leukemia" / "training_data").mkdir(parents=True)
    inner = ("C-NMC_Leukemia/training_data", "training_data")
    assert resolve_dataset("cnmc", tmp_path, inner) == tmp_path / "cnmc" / "C-NMC_Leukemia" / "training_data"
    assert resolve_dataset("cnmc", tmp_path, ("training_data",)) == tmp_path / "cnmc"  # none there: the set


def test_data_root_holding_other_sets_is_not_taken_for_the_set(tmp_path):
    (tmp_path / "all4").mkdir()
    with pytest.raises(DataError, match=r"has no 'kth/' folder.*data/README.md#kth--karyograms-kth"):
        resolve_dataset("kth", tmp_path)


def test_nothing_configured(no_shared):
    assert data_root() is None
    with pytest.raises(DataError, match=r"no data folder is configured.*data/README.md#cnmc--c-nmc-2019-cnmc") as info:
        resolve_dataset("cnmc")
    assert info.value.problem == "missing_dataset"


def test_environment_pointing_nowhere(no_shared, monkeypatch):
    monkeypatch.setenv("MEDCNN_DATA", str(no_shared / "missing"))
    with pytest.raises(DataError, match=r"from MEDCNN_DATA\) does not exist.*#pbc--pbc-blood-cells-an2dl"):
        resolve_dataset("pbc")


def test_weights_dirs_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCNN_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(paths, "SHARED", tmp_path / "no-shared")
    assert weights_dirs() == [tmp_path / "w", tmp_path / "keras" / "models"]


def github_anchor(heading):
    """GitHub's heading slug: lower case; letters, digits, '-', '_' and spaces kept; spaces -> '-'."""
    kept = "".join(ch for ch in heading.strip().lower() if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return "#" + kept.replace(" ", "-")


def test_github_anchor_rule():
    assert github_anchor("cnmc — C-NMC 2019 (cnmc)") == "#cnmc--c-nmc-2019-cnmc"


def test_readme_sections_match_the_anchors():
    text = (REPO_ROOT / "data" / "README.md").read_text(encoding="utf-8")
    anchors = {github_anchor(line[3:]) for line in text.splitlines() if re.match(r"## [^#]", line)}
    missing = {dataset: anchor for dataset, anchor in DATASET_SECTIONS.items() if anchor not in anchors}
    assert not missing, f"data/README.md has no heading for {missing}; headings give {sorted(anchors)}"
