"""Command line: `python -m medcnn validate PATH`, `python -m medcnn predict MODEL IMAGES...` and
`python -m medcnn plan STUDY --scale SCALE`.

`update_readme` (`make readme`) regenerates the README's sections from the studies' committed results.

TensorFlow's start-up messages on a machine without a GPU ("Could not find cuda drivers", "failed call to cuInit",
"oneDNN custom operations are on", ...) say nothing useful to someone classifying a few images, so the command
line hides them: `TF_CPP_MIN_LOG_LEVEL=3` unless set otherwise, and the lines native code writes while Keras is
imported are filtered (TensorFlow 2.19+ writes some before its log level applies, tensorflow/tensorflow#100442).
Set `TF_CPP_MIN_LOG_LEVEL=0` to see everything.
"""

import argparse
import contextlib
import os
import re
import sys
import tempfile

# Lines of TensorFlow's start-up chatter, matched anywhere in a line written to file descriptor 2.
TENSORFLOW_NOISE = re.compile(
    r"absl::InitializeLog\(\)|cudart_stub|cuInit|cuda_(?:platform|driver|dnn|fft|blas)\.cc|"
    r"oneDNN custom operations|cpu_feature_guard|rebuild TensorFlow with the appropriate compiler flags|"
    r"computation placer already registered|TF-TRT Warning"
)


def quiet_tensorflow_settings():
    """Set TensorFlow's log level to errors-only (3) unless the environment already sets one.

    Must run before TensorFlow is imported. Returns True when the start-up chatter should be filtered (the
    level is not 0, i.e. the user did not ask for every message).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0"


@contextlib.contextmanager
def filtered_native_stderr(noise=TENSORFLOW_NOISE):
    """Inside the block, capture what anything (native code included) writes to file descriptor 2; afterwards
    write every captured line back to stderr except those matching `noise`.

    Nothing is lost: an error raised in the block still shows, and so do lines that are not noise.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().decode("utf-8", errors="replace").splitlines(keepends=True)
                if not noise.search(line)
            ]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def import_keras_quietly():
    """Import Keras (and its backend) without TensorFlow's start-up chatter; lower absl's Python verbosity."""
    if not quiet_tensorflow_settings():
        import keras  # noqa: F401

        return
    with filtered_native_stderr():
        import keras  # noqa: F401
    with contextlib.suppress(ImportError):  # absl comes with TensorFlow, not with every backend
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m medcnn", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    from medcnn import predict
    from medcnn.data import validate  # light modules: Keras is imported only by `predict` when it runs

    validate.add_arguments(commands.add_parser("validate", help=validate.__doc__.splitlines()[0]))
    predict.add_arguments(commands.add_parser("predict", help=predict.__doc__.splitlines()[0]))
    add_plan_arguments(commands.add_parser("plan", help="list a scale's runs and estimate their time, untrained"))
    return parser


def add_plan_arguments(parser):
    """Add the `plan STUDY [--scale S] [--data-dir D]` arguments to an argparse parser (see `run_plan`)."""
    from medcnn.studies import STUDIES

    parser.add_argument("study", choices=STUDIES, help="the study to plan")
    parser.add_argument("--scale", default="smoke", help="smoke, cpu or full (default: smoke)")
    parser.add_argument("--data-dir", default=None, help="data root or data set folder (default: MEDCNN_DATA, "
                        "then ../shared/data)")  # fmt: skip
    parser.set_defaults(run=run_plan, uses_keras=True)  # the study's plan imports medcnn.experiment, hence Keras
    return parser


def run_plan(args):
    """Print the runs `args.study` would train at `args.scale` and their estimated time
    (`medcnn.experiment.estimate`); nothing is trained. Returns 0, or 1 on an unknown scale or missing data."""
    from medcnn.errors import DataError
    from medcnn.experiment import estimate
    from medcnn.studies import get_study

    study = get_study(args.study)
    try:
        run_settings = study.settings(args.scale)
        planned = study.plan_runs(run_settings, args.data_dir)
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    leaves_out = getattr(study, "PLAN_LEAVES_OUT", "")
    print(estimate.plan_text(args.study, run_settings["scale"], planned, leaves_out=leaves_out))
    return 0


def readme_text(study, scale, payload):
    """The README section of `study` at `scale` from its `results.json` payload (the study's `readme_section`),
    marked when the run predates v3."""
    from medcnn.experiment.outputs import marked_section
    from medcnn.studies import get_study

    return marked_section(get_study(study).readme_section(payload, scale), payload)


def update_readme(readme="README.md", results="results"):
    """Regenerate each `<!-- <study>-<scale>-table -->` section of the README from the committed `results.json`
    (`make readme`). Returns the sections written, e.g. ["allgray-full-table"]."""
    from medcnn.experiment.outputs import update_readme_sections
    from medcnn.studies import STUDIES

    return update_readme_sections(readme, results, STUDIES, readme_text)


def main(argv=None):
    quiet_tensorflow_settings()
    args = build_parser().parse_args(argv)
    if getattr(args, "uses_keras", False):
        import_keras_quietly()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
