"""The five studies: each module holds its published tables, its citation and its settings per scale.

Every study module `medcnn.studies.<id>` exposes:

- `STUDY` (its id), `CITATION` (title, authors, year, venue, seed file in `../shared/seeds/`),
- `SETTINGS` = {scale: {...}} for every scale of `SCALES`, each with the keys of "smoke", and
  `settings(scale, **overrides)` = `select_settings(SETTINGS, scale, overrides)`: one of them with `scale` added
  and the non-None overrides applied,
- `paper_tables()` -> {table id: DataFrame}, the published numbers exactly as printed (see `medcnn.report`),
- and the rest of `CONTRACT`: its class names, findings (sentences through `medcnn.experiment.truth`), what its
  seeds vary (`seeding`), which rows ran on random weights (`row_notes`), its README section, and the runs a scale
  would train (`plan_runs`, for `make plan-<study>`). A test checks every study against it.

Modules are imported only when asked for (`get_study`), so a missing or broken study never breaks the others.
"""

import copy
import importlib

STUDIES = ("kth", "cnmc", "an2dl", "allgray", "chromosome")
# smoke: minutes on 2 CPU cores, to check that everything runs; cpu: the largest protocol that fits about 2 hours on
# 2 CPU cores; full: the published protocol (a GPU, or days of CPU).
SCALES = ("smoke", "cpu", "full")
# What every study module exposes (data, settings, tables, configurations and findings; the runs, caching, tables,
# export and outputs come from `medcnn.experiment`).
CONTRACT = (
    "STUDY", "CITATION", "CLASS_NAMES", "SETTINGS", "settings", "paper_tables", "findings", "seeding", "row_notes",
    "readme_section", "plan_runs", "PLAN_LEAVES_OUT",
)  # fmt: skip


def get_study(name):
    """The module `medcnn.studies.<name>`, imported on first use."""
    if name not in STUDIES:
        raise ValueError(f"Unknown study. Expected one of {list(STUDIES)}. Received: name={name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def select_settings(settings_by_scale, scale, overrides):
    """A copy of `settings_by_scale[scale]` with `scale` added and the non-None `overrides` applied.

    Args:
        settings_by_scale: {scale: settings}; every scale has the keys of "smoke", the only names `overrides` takes.
            A scale whose value is another scale's name is that scale: e.g. `"cpu": "full"` when the published
            protocol already fits the CPU, so that its settings (and `scale`, hence its results folder) are full's.
        scale: a key of `settings_by_scale`.
        overrides: {setting: value}; None values leave the setting alone.

    Raises:
        ValueError: an override names no setting (checked first), or `scale` is unknown.
    """
    known = settings_by_scale["smoke"]
    unknown = set(overrides) - set(known)
    if unknown:
        raise ValueError(f"Unknown setting(s) {sorted(unknown)}; known: {sorted(known)}.")
    if scale not in settings_by_scale:
        raise ValueError(f"`scale` must be one of {sorted(settings_by_scale)}. Received: scale={scale!r}")
    if isinstance(settings_by_scale[scale], str):
        scale = settings_by_scale[scale]
    chosen = copy.deepcopy(settings_by_scale[scale])
    chosen["scale"] = scale
    chosen.update({key: value for key, value in overrides.items() if value is not None})
    return chosen


def copy_tables(tables):
    """Deep copies of published tables (with their attrs), so that callers cannot change the module's data."""
    copies = {}
    for name, frame in tables.items():
        duplicate = frame.copy(deep=True)
        duplicate.attrs = copy.deepcopy(frame.attrs)
        copies[name] = duplicate
    return copies


PREDATES_V3 = (
    "*This committed run predates the library's v3 protocol. Where the sentence on the protocol below differs from its "
    "report, the report says what this run did; the sentence describes today's code, which the study's re-run uses.*"
)


def readme_text(study, scale, payload):
    """The README section of `study` at `scale` from its `results.json` payload, marked when the run predates v3."""
    section = get_study(study).readme_section(payload, scale)
    if "seed_varies" not in payload:  # written before `experiment.seeding` (library v3) recorded it
        section = f"{PREDATES_V3}\n\n{section}"
    return section


def update_readme(readme="README.md", results="results"):
    """Regenerate each `<!-- <study>-<scale>-table -->` section of the README from the committed `results.json`.

    Returns the sections written, e.g. ["allgray-full-table"].
    """
    import json
    from pathlib import Path

    from medcnn.experiment import update_readme as replace_section

    written = []
    text = Path(readme).read_text()
    for study in STUDIES:
        for scale in ("full", "cpu", "smoke"):
            marker = f"{study}-{scale}-table"
            path = Path(results) / study / scale / "results.json"
            if f"<!-- {marker} -->" in text and path.is_file():
                replace_section(readme, marker, readme_text(study, scale, json.loads(path.read_text())))
                written.append(marker)
    return written
