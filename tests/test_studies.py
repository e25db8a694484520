"""medcnn.studies: published numbers exactly as in ../shared/studies.md, citations, settings per scale."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from medcnn.data.paths import SHARED
from medcnn.settings import select_settings
from medcnn.studies import SCALES, STUDIES, get_study

STUDIES_MD = SHARED / "studies.md"
SEEDS = SHARED / "seeds"
OURS = STUDIES  # every study module follows the same contract
SECTION = re.compile(r"^## `(?P<study>\w+)`")
PERCENT_IN_TEXT = re.compile(r"(\d+\.\d+) %")


def parse_studies_md(text):
    """{study: {"tables": [(header, rows)], "text": [lines outside tables]}} from studies.md's markdown."""
    sections, study, table = {}, None, None
    for line in text.splitlines():
        match = SECTION.match(line)
        if match:
            study = match["study"]
            sections[study] = {"tables": [], "text": []}
            table = None
            continue
        if study is None:
            continue
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [cell.strip() for cell in stripped.strip("|").split("|")]
            if table is None:
                table = (cells, [])
                sections[study]["tables"].append(table)
            elif not all(set(cell) <= set("-: ") for cell in cells):
                table[1].append(cells)
        else:
            table = None
            sections[study]["text"].append(line)
    return sections


@pytest.fixture(scope="module")
def studies_md():
    if not STUDIES_MD.is_file():
        pytest.skip(f"{STUDIES_MD} not found (the shared folder beside the repository)")
    return parse_studies_md(STUDIES_MD.read_text(encoding="utf-8"))


def test_parser_reads_every_study(studies_md):
    assert set(studies_md) == set(STUDIES)
    assert [len(section["tables"]) for section in studies_md.values()] == [1, 2, 1, 1, 0]


@pytest.mark.parametrize("study", STUDIES)
def test_every_published_number_is_in_the_module(studies_md, study):
    tables = get_study(study).paper_tables()
    for header, rows in studies_md[study]["tables"]:
        labels = [row[0] for row in rows]
        # Our modules keep the printed column names; allgray's names its columns as code (val_accuracy, ...).
        matches = [
            frame
            for frame in tables.values()
            if list(frame.index) == labels
            and frame.shape == (len(rows), len(header) - 1)
            and (study not in OURS or (list(frame.columns) == header[1:] and frame.index.name == header[0]))
        ]
        assert len(matches) == 1, f"{study}: no table with rows {labels} and columns {header[1:]}"
        frame = matches[0]
        for row in rows:
            for position, printed in enumerate(row[1:]):
                value = frame.loc[row[0]].iloc[position]
                column = header[position + 1]
                assert value == float(printed), f"{study} {row[0]!r} {column!r}: {value} != {printed}"


@pytest.mark.parametrize("study", STUDIES)
def test_percentages_in_the_text_are_in_the_module(studies_md, study):
    printed = {float(number) for line in studies_md[study]["text"] for number in PERCENT_IN_TEXT.findall(line)}
    values = {float(value) for frame in get_study(study).paper_tables().values() for value in frame.to_numpy().ravel()}
    assert printed <= values


def test_an2dl_table_3_and_fine_tuning():
    tables = get_study("an2dl").paper_tables()
    assert tables["Table 3"]["accuracy %"].to_dict() == {"train": 98.28, "validation": 98.18, "external test": 51.00}
    assert tables["Fine-tuning F1"].loc["ResNet50, last block fine-tuned", "F1 %"] == 98.19


def test_chromosome_ablation_is_empty_with_intended_rows():
    chromosome = get_study("chromosome")
    table = chromosome.paper_tables()["Ablation"]
    assert list(table.columns) == [
        "accuracy", "balanced accuracy", "macro F1", "karyotype accuracy", "parameters", "train images/s",
        "inference images/s",
    ]  # fmt: skip
    assert table.index[0] == "baseline CNN" and len(table) == len(chromosome.BLOCK_ROWS) + len(chromosome.METHOD_ROWS)
    assert table.isna().all().all()
    assert set(chromosome.settings("smoke")["blocks"]) == {block for _, block in chromosome.BLOCK_ROWS if block}


def test_chromosome_blocks_exist_in_the_model_builder():
    blocks = pytest.importorskip("medcnn.models.blocks")
    assert set(get_study("chromosome").settings("full")["blocks"]) <= set(blocks.ABLATION_BLOCKS)


@pytest.mark.parametrize("study", OURS)
def test_tables_carry_their_description(study):
    module = get_study(study)
    for name, frame in module.paper_tables().items():
        assert frame.attrs["study"] == study and frame.attrs["table"] == name
        assert frame.attrs["caption"] and frame.attrs["source"].startswith(f"seed {module.CITATION['seed_file']}")
        assert frame.attrs["percent"] == any(column.endswith("%") for column in frame.columns)
        assert set(module.METRIC_KEYS[name]) == set(frame.columns)


@pytest.mark.parametrize("study", OURS)
def test_paper_tables_are_copies(study):
    module = get_study(study)
    name, frame = next(iter(module.paper_tables().items()))
    frame.iloc[0, 0] = -1.0
    frame.attrs["study"] = "changed"
    fresh = module.paper_tables()[name]
    assert fresh.iloc[0, 0] != -1.0 and fresh.attrs["study"] == study


@pytest.mark.parametrize("study", STUDIES)
def test_citation_matches_the_seed_file(study):
    citation = get_study(study).CITATION
    assert {"title", "authors", "year", "venue", "seed_file"} <= set(citation)
    seed = SEEDS / citation["seed_file"]
    if not seed.is_file():
        pytest.skip(f"{seed} not found")
    text = seed.read_text(encoding="utf-8")
    for quoted in citation.get("evidence", [citation["title"]]):
        assert quoted in text, f"{quoted!r} is not in {seed.name}"
    assert str(citation["year"]) in text


@pytest.mark.parametrize("study", OURS)
def test_settings_per_scale(study):
    module = get_study(study)
    smoke, full = module.settings("smoke"), module.settings("full")
    assert smoke["scale"] == "smoke" and full["scale"] == "full"
    assert np.prod(smoke["image_size"]) <= np.prod(full["image_size"])
    for key in smoke:
        if "epochs" in key or key in ("mc_passes", "tuner_trials", "folds", "ensemble_size"):
            assert full[key] is None or smoke[key] <= full[key], key  # None: no cap
    assert smoke["allow_random_weights"] is True and full["allow_random_weights"] is False


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_has_every_scale_with_the_same_settings(study):
    """SETTINGS holds exactly SCALES; every scale has the settings smoke has (a scale may name another one:
    allgray's cpu run is its full run)."""
    module = get_study(study)
    assert set(module.SETTINGS) == set(SCALES) == {"smoke", "cpu", "full"}
    keys = set(module.SETTINGS["smoke"])
    for scale in SCALES:
        declared = module.SETTINGS[scale]
        assert declared in SCALES if isinstance(declared, str) else set(declared) == keys, scale
        assert set(module.settings(scale)) == keys | {"scale"}, scale


@pytest.mark.parametrize("study", OURS)
def test_settings_overrides_and_isolation(study):
    module = get_study(study)
    chosen = module.settings("smoke", seeds=[5], image_size=None)
    assert chosen["seeds"] == [5]
    assert chosen["image_size"] == module.SETTINGS["smoke"]["image_size"]  # None leaves the setting alone
    chosen["class_names"].append("extra")
    assert "extra" not in module.settings("smoke")["class_names"]


@pytest.mark.parametrize("study", OURS)
def test_unknown_scale(study):
    with pytest.raises(ValueError, match=r"Received: scale='huge'"):
        get_study(study).settings("huge")


def test_get_study_unknown_name():
    with pytest.raises(ValueError, match=r"Unknown study.*Received: name='mnist'"):
        get_study("mnist")


def test_studies_are_imported_lazily(fresh_python):
    import sys

    code = "import sys, medcnn.studies; print([m for m in sys.modules if m.startswith('medcnn.studies.')])"
    assert fresh_python(code) == "[]"
    assert get_study("kth") is sys.modules["medcnn.studies.kth"]


def test_paper_vs_ours_on_a_study_table():
    """A study table goes through the report function with every row kept."""
    from medcnn.report import as_percent, paper_vs_ours

    paper = get_study("cnmc").paper_tables()["Table 5.2"]
    ours = as_percent(pd.DataFrame({"accuracy %": [0.7], "F1 %": [0.69]}, index=["MobileNetV2"]))
    comparison = paper_vs_ours(paper, ours, {"scale": "smoke", "seeds": [0]})
    assert len(comparison) == 4 * 2
    row = comparison[(comparison.row == "MobileNetV2") & (comparison.metric == "accuracy %")].iloc[0]
    assert math.isclose(row["delta"], 70.0 - 82.75)


def test_select_settings_checks_overrides_then_the_scale():
    by_scale = {"smoke": {"epochs": 2, "seeds": [0]}, "full": {"epochs": 30, "seeds": [0, 1, 2]}}
    chosen = select_settings(by_scale, "full", {"epochs": 5, "seeds": None})
    assert chosen == {"epochs": 5, "seeds": [0, 1, 2], "scale": "full"}
    chosen["seeds"].append(3)
    assert by_scale["full"]["seeds"] == [0, 1, 2]  # a copy
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['epoch'\]; known: \['epochs', 'seeds'\]\."):
        select_settings(by_scale, "huge", {"epoch": 3})  # the override is checked before the scale
    with pytest.raises(ValueError, match=r"Received: scale='huge'"):
        select_settings(by_scale, "huge", {})
    aliased = select_settings({**by_scale, "cpu": "full"}, "cpu", {"epochs": 4})  # cpu is the full run
    assert aliased == {"epochs": 4, "seeds": [0, 1, 2], "scale": "full"}


def test_settings_function_and_tables_function_give_a_study_its_accessors():
    from medcnn.report.published import tables_function
    from medcnn.settings import settings_function

    by_scale = {"smoke": {"epochs": 2, "seeds": [0]}, "cpu": "full", "full": {"epochs": 9, "seeds": [1]}}
    settings = settings_function(by_scale)
    assert settings() == {"epochs": 2, "seeds": [0], "scale": "smoke"}
    assert settings("cpu", epochs=3, seeds=None) == {"epochs": 3, "seeds": [1], "scale": "full"}
    table = pd.DataFrame({"acc": [0.8]}, index=["row"])
    table.attrs["notes"] = ["as printed"]
    paper_tables = tables_function({"Table 1": table})
    first = paper_tables()["Table 1"]
    first.loc["row", "acc"] = 0.1
    first.attrs["notes"].append("changed")
    assert paper_tables()["Table 1"].loc["row", "acc"] == 0.8 and table.attrs["notes"] == ["as printed"]


def test_set_fields_gives_a_configuration_the_settings_that_are_set():
    from dataclasses import dataclass

    from medcnn.settings import SetFields

    @dataclass(frozen=True)
    class Row(SetFields):
        label: str
        blocks: tuple = ()
        rate: float = None
        augment: bool = False

    assert Row("a", rate=0.0).settings() == {"label": "a", "blocks": (), "rate": 0.0, "augment": False}
    Row.UNSET = ((), False)  # as chromosome's: no blocks, no augmentation (and 0, which equals False)
    assert Row("a", ("se",), 0.0).settings() == {"label": "a", "blocks": ("se",)}


def test_study_settings_do_not_import_keras(fresh_python):
    code = (
        "import sys; from medcnn.studies import STUDIES, get_study; "
        "[get_study(name).settings('smoke') for name in STUDIES]; "
        "print([m for m in ('keras', 'tensorflow') if m in sys.modules])"
    )
    assert fresh_python(code) == "[]"


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_keeps_the_contract(study):
    from medcnn.studies import CONTRACT

    module = get_study(study)
    missing = [name for name in CONTRACT if not hasattr(module, name)]
    assert not missing, f"medcnn.studies.{study} lacks {missing}"
    assert module.STUDY == study and set(module.SETTINGS) == set(SCALES)
    for name in CONTRACT:
        if name[0].islower():
            assert callable(getattr(module, name)), name
