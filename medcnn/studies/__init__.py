"""The five studies: each module holds its published tables, its citation and its settings per scale.

Every study module `medcnn.studies.<id>` exposes:

- `STUDY` (its id), `CITATION` (title, authors, year, venue, seed file in `../shared/seeds/`),
- `SETTINGS` = {scale: {...}} for every scale of `SCALES`, each with the keys of "smoke", and
  `settings(scale, **overrides)` = `medcnn.settings.settings_function(SETTINGS)`: one of them with `scale` added
  and the non-None overrides applied,
- `paper_tables()` -> {table id: DataFrame}, the published numbers exactly as printed (see `medcnn.report`),
- and the rest of `CONTRACT`: its class names, findings (sentences through `medcnn.experiment.truth`), what its
  seeds vary (`seeding`), which rows ran on random weights (`row_notes`), its README section, and the runs a scale
  would train (`plan_runs`, for `make plan-<study>`). A test checks every study against it.

Modules are imported only when asked for (`get_study`), so a missing or broken study never breaks the others.
"""

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
