"""CI's end-to-end check: every study notebook runs at smoke scale through papermill, once, and its checks pass.

Each `tests/test_<study>.py` holds that study's checks of a smoke run as `check_smoke_*(run)` functions (tables filled
as published, the exported model learns and reads raw files it never saw); this module runs each notebook once
(a module-scoped fixture over the studies) and calls every check of its study.
"""

import importlib
import sys
from pathlib import Path

import pytest

from medcnn.studies import STUDIES

sys.path.insert(0, str(Path(__file__).resolve().parent))


def smoke_checks(study):
    """{name: check} of `tests/test_<study>.py`'s `check_smoke_*` functions, in file order."""
    module = importlib.import_module(f"test_{study}")
    return {name: value for name, value in vars(module).items() if name.startswith("check_smoke_")}


@pytest.fixture(scope="module", params=STUDIES)
def smoke_run(request, run_smoke_notebook):
    return request.param, run_smoke_notebook(request.param)


def test_every_study_has_smoke_checks():
    for study in STUDIES:
        assert len(smoke_checks(study)) >= 2, f"tests/test_{study}.py has no check_smoke_* functions"


@pytest.mark.slow
def test_smoke_notebook(smoke_run):
    """The notebook ran end to end at smoke scale, trained every run now, and passes its study's checks."""
    study, run = smoke_run
    assert run.results["study"] == study and run.results["run"]["scale"] == "smoke"
    assert run.results["run"]["reused"] == 0 and (run.out / "model.keras").is_file()
    for name, check in smoke_checks(study).items():
        try:
            check(run)
        except AssertionError as error:
            raise AssertionError(f"{study}: {name}: {error}") from error
