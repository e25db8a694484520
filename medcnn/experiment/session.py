"""One notebook run of a study: what every study notebook sets up first and writes last.

`Session` holds the scale's settings, the output folder, the run cache, the precision and the clock; `figure` names
the PNGs it will list in the report; `write` records the run (hardware, software, data, weights, seeds, run counts)
in `results.json` and `report.md`. The README section is generated from that `results.json` (`make readme`).

Time: the run's `elapsed_s` is the notebook's wall time from the session's start to `write` (data, features,
training, evaluation and export alike); the runs' own training time is recorded apart, as `training_s_all_runs` and
`training_s_now` (from the records), and the report shows both.

Example (a notebook's setup and outputs cells):
    >>> session = experiment.Session(allgray, SCALE, OUTPUT_DIR, REUSE_RUNS, seeds=SEEDS)
    >>> session.settings["image_size"]
    (64, 64)
    >>> ...
    >>> info = session.run_info(data_name, counts, weights, seeds=[0])  # elapsed: the notebook's wall time
    >>> session.write(info, {"Table 1": table1}, summary, records, findings, sections, title)
"""

import time
from pathlib import Path

from medcnn import hardware, report
from medcnn.experiment.cache import RunCache
from medcnn.experiment.export import restored_since
from medcnn.experiment.outputs import RECORD_KEYS, results_payload, write_outputs


def repository_root(start=None):
    """The folder holding the `medcnn` package when `start` (default: the current folder) or its parent does."""
    start = Path.cwd() if start is None else Path(start)
    return start.parent if (start.parent / "medcnn").is_dir() else start


class Session:
    """A study's settings for one scale, with where and how its runs are recorded.

    Args:
        study: the study module (`medcnn.studies.<name>`): its `STUDY`, `CITATION` and `settings(scale, **overrides)`.
        scale: "smoke", "cpu" or "full".
        output_dir: where results go; None: `results/<study>/<scale>` in the repository.
        reuse: reuse recorded runs with the same fingerprint (`RunCache(reuse=...)`).
        **overrides: settings to change (None values are ignored), e.g. `seeds=SEEDS`.

    Attributes:
        settings, out_dir, cache, precision, repository, started (a `time.time()`, the start of the run's
        `elapsed_s`), figures ({name: path}).
    """

    def __init__(self, study, scale, output_dir=None, reuse=False, **overrides):
        self.started = time.time()
        self.study = study
        self.precision = hardware.apply_default_precision()  # float32 on a CPU unless MEDCNN_PRECISION says otherwise
        self.settings = study.settings(scale, **overrides)
        self.repository = repository_root()
        self.out_dir = (
            Path(output_dir)
            if output_dir
            else report.results_dir(study.STUDY, self.settings["scale"], root=self.repository / "results")
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.cache = RunCache(self.out_dir, reuse=reuse)
        self.figures = {}
        self._clock_reading = None  # the wall time `run_info` recorded, which `write` takes again

    def __repr__(self):
        return (
            f"{self.study.STUDY} {self.settings['scale']} run on {hardware.cpu_model()}, {self.precision} precision; "
            f"{self.cache}"
        )

    def settings_frame(self):
        """The settings as a one-column DataFrame, for the notebook to show."""
        import pandas as pd

        return pd.Series({key: str(value) for key, value in self.settings.items()}, name="value").to_frame()

    def figure(self, name):
        """`<out_dir>/<name>.png`, listed in the report in the order the figures were asked for."""
        self.figures[name] = self.out_dir / f"{name}.png"
        return self.figures[name]

    def elapsed(self):
        """Seconds since the session started."""
        return time.time() - self.started

    def run_info(self, data_name, data_counts, weights, seeds, elapsed_s=None, extra=None):
        """`report.run_info` of this run, with the settings and precision recorded in it.

        `elapsed_s`: None (the default) records the session's wall time, which `write` then takes again, so that it
        covers the notebook up to its outputs. Leave it None: the runs' training time is recorded apart by `write`.
        """
        if elapsed_s is None:
            elapsed_s = self._clock_reading = self.elapsed()
        return report.run_info(
            self.settings["scale"], data_name, data_counts, weights, seeds, elapsed_s,
            extra={"settings": self.settings, "precision": self.precision, **(extra or {})},
        )  # fmt: skip

    def write(self, info, tables, summary, records, findings, sections, title, extra=None, record_keys=RECORD_KEYS):
        """Write `results.json` and `report.md`; returns their paths, relative to the repository where they lie in it.

        `sections` are (heading, DataFrame or markdown) pairs; the figures asked for with `figure` that exist follow.
        An `info` from `run_info` with the session's clock gets the wall time up to now as its `elapsed_s`; runs
        trained again in this session to restore their missing weights are listed as its `weights_restored`.
        """
        if info.get("elapsed_s") is not None and info.get("elapsed_s") == self._clock_reading:
            info = {**info, "elapsed_s": self.elapsed()}
        restored = restored_since(self.cache, self.started)  # runs trained again for their missing weights
        if restored:
            info = {**info, "weights_restored": restored}
        payload = results_payload(
            self.study.STUDY, self.study.CITATION, info, tables, summary, records, findings, extra, record_keys
        )
        figures = [path for path in self.figures.values() if Path(path).exists()]
        paths = write_outputs(self.out_dir, payload, title, sections, figures)
        return [path.relative_to(self.repository) if path.is_relative_to(self.repository) else path for path in paths]
