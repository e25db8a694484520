"""The README's first screen gives the two commands, and its allgray table is the committed full run's."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_first_screen_has_the_two_commands():
    first_screen = "\n".join(README.splitlines()[:25])
    assert "make setup reproduce-allgray" in first_screen
    assert "make test" in first_screen


def test_ci_runs_the_readme_test_command():
    assert "make setup test" in (ROOT / ".ci" / "run").read_text()


def test_allgray_section_in_readme_is_generated_from_the_committed_full_run():
    from medcnn.cli import readme_text

    results = json.loads((ROOT / "results" / "allgray" / "full" / "results.json").read_text())
    section = README.split("<!-- allgray-full-table -->")[1].split("<!-- /allgray-full-table -->")[0]
    assert section.strip() == readme_text("allgray", "full", results).strip(), "run `make readme`"
    for label, row in results["tables"]["Table 1"].items():
        starts = (f"| {label} |", f"| {label} *(")  # a row may carry its note in italics
        line = next(line for line in section.splitlines() if line.startswith(starts))
        assert f"{row['test acc']['ours']:.3f}" in line and f"{row['test acc']['paper']:.2f}" in line


def test_chromosome_section_in_readme_is_generated_from_the_committed_cpu_run():
    from medcnn.experiment.outputs import PREDATES_V3
    from medcnn.cli import readme_text

    results = json.loads((ROOT / "results" / "chromosome" / "cpu" / "results.json").read_text())
    section = README.split("<!-- chromosome-cpu-table -->")[1].split("<!-- /chromosome-cpu-table -->")[0]
    assert section.strip() == readme_text("chromosome", "cpu", results).strip(), "run `make readme`"
    body = section.strip().removeprefix(PREDATES_V3).lstrip()
    assert body.startswith("CPU scale on") and "seeds 0 (" in section
    assert "mean ± std over the case-grouped folds" in section
    assert section.strip().startswith(PREDATES_V3) == ("seed_varies" not in results)


def test_every_generated_section_matches_its_committed_results():
    import re

    from medcnn.cli import readme_text

    markers = re.findall(r"<!-- (\w+)-(smoke|cpu|full)-table -->", README)
    assert ("kth", "cpu") in markers and ("chromosome", "cpu") in markers
    for study, scale in markers:
        results = json.loads((ROOT / "results" / study / scale / "results.json").read_text())
        section = README.split(f"<!-- {study}-{scale}-table -->")[1].split(f"<!-- /{study}-{scale}-table -->")[0]
        expected = readme_text(study, scale, results).strip()
        assert section.strip() == expected, f"{study}-{scale}: run `make readme`"
