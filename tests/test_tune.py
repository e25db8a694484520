"""Bayesian search: results table, resume after a stop, after simulated and real hard kills, distributed mode.

Every search here is a Dense model on 64 samples, one epoch per trial.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import keras
from keras import layers

from medcnn import tune

SPACE = dict(learning_rate=(1e-3, 1e-1), batch_sizes=(16, 32), dropout=(0.0, 0.5), head_units=(4, 8))
HYPERPARAMETERS = ["learning_rate", "batch_size", "dropout", "head_units"]

# The same tiny problem and search space, for the processes the tests start.
CHILD_HEADER = textwrap.dedent(
    """
    import os, sys, time
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import keras
    from keras import layers
    from medcnn import tune

    def build(dropout, head_units):
        hidden, output = layers.Dense(head_units, activation="relu"), layers.Dense(2, activation="softmax")
        return keras.Sequential([keras.Input((8,)), hidden, layers.Dropout(dropout), output])

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    SPACE = dict(learning_rate=(1e-3, 1e-1), batch_sizes=(16, 32), dropout=(0.0, 0.5), head_units=(4, 8))
    directory = sys.argv[1]
    """
)


def build(dropout, head_units):
    return keras.Sequential(
        [
            keras.Input((8,)),
            layers.Dense(head_units, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(2, activation="softmax"),
        ]
    )


class CountingHyperModel(tune.ClassifierHyperModel):
    """Counts the trials it trains."""

    def __init__(self, **kwargs):
        super().__init__(build, **SPACE, **kwargs)
        self.fits = 0

    def fit(self, hp, model, *args, **kwargs):
        self.fits += 1
        return super().fit(hp, model, *args, **kwargs)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    return (x[:64], y[:64]), (x[64:], y[64:])


def run(directory, data, max_trials, **kwargs):
    hypermodel = CountingHyperModel()
    tuner = tune.make_tuner(hypermodel, directory, max_trials=max_trials, **kwargs)
    table, best = tune.search(tuner, *data, epochs=1, verbose=0)
    return hypermodel, table, best


def test_make_objective_direction():
    assert tune.make_objective("val_auc").direction == "max"
    assert tune.make_objective("val_loss").direction == "min"
    with pytest.raises(ValueError, match="`direction` must be 'min' or 'max'"):
        tune.make_objective("val_auc", "up")


def test_hypermodel_arguments_are_validated():
    with pytest.raises(ValueError, match="0 < low < high. Received: learning_rate"):
        tune.ClassifierHyperModel(build, learning_rate=(0.1, 0.01))
    with pytest.raises(ValueError, match="Received: dropout"):
        tune.ClassifierHyperModel(build, dropout=(0.2, 1.0))


def test_search_table_best_and_resume_after_stop(tmp_path, data):
    first, table, best = run(tmp_path, data, max_trials=2)
    assert first.fits == 2
    assert list(table.index) == ["0", "1"]
    assert set(HYPERPARAMETERS) <= set(table.columns)
    assert (table["status"] == "COMPLETED").all()
    correct = table["score"] * 32  # the score is val_accuracy on the 32 validation samples: k / 32
    np.testing.assert_allclose(correct, correct.round(), atol=1e-4)
    assert set(best) == set(HYPERPARAMETERS)
    assert best["batch_size"] in SPACE["batch_sizes"] and 1e-3 <= best["learning_rate"] <= 1e-1
    assert best == table.loc[table["score"].idxmax(), HYPERPARAMETERS].to_dict()

    # Start again with a larger budget: the two finished trials are kept, only two new ones train.
    second, resumed, _ = run(tmp_path, data, max_trials=4)
    assert second.fits == 2
    assert list(resumed.index) == ["0", "1", "2", "3"]
    assert (resumed["status"] == "COMPLETED").all()
    assert resumed.loc[["0", "1"], HYPERPARAMETERS].equals(table[HYPERPARAMETERS])
    assert (resumed["interrupted_runs"] == 0).all()


def test_trial_interrupted_by_a_kill_is_rerun_with_its_values(tmp_path, data):
    # A kill during the first trial: the oracle has handed out trial 0, nothing has been written by the tuner.
    killed = tune.make_tuner(CountingHyperModel(), tmp_path, max_trials=2)
    trial = killed.oracle.create_trial(killed.tuner_id)
    assert not os.path.exists(killed._get_tuner_fname())
    del killed

    hypermodel, table, _ = run(tmp_path, data, max_trials=2)
    assert hypermodel.fits == 2
    assert list(table.index) == ["0", "1"]
    assert (table["status"] == "COMPLETED").all()
    assert table.loc["0", HYPERPARAMETERS].to_dict() == trial.hyperparameters.values
    assert table.loc["0", "interrupted_runs"] == 1


def test_trial_killed_again_and_again_is_marked_failed(tmp_path, data, capsys):
    tuner = tune.make_tuner(CountingHyperModel(), tmp_path, max_trials=2, max_restarts_per_trial=1)
    tuner.oracle.create_trial(tuner.tuner_id)  # killed while training trial 0
    tuner = tune.make_tuner(CountingHyperModel(), tmp_path, max_trials=2, max_restarts_per_trial=1)
    assert "rerunning it from the start" in capsys.readouterr().out
    assert tuner.oracle.create_trial(tuner.tuner_id).trial_id == "0"  # the rerun, killed again

    hypermodel, table, best = run(tmp_path, data, max_trials=2, max_restarts_per_trial=1)
    assert "Trial 0 was interrupted 2 times" in capsys.readouterr().out
    assert hypermodel.fits == 1
    assert table.loc["0", "status"] == "FAILED"
    assert "interrupted 2 times" in table.loc["0", "message"]
    assert table.loc["1", "status"] == "COMPLETED"
    assert best == table.loc["1", HYPERPARAMETERS].to_dict()


def test_running_trial_missing_from_the_oracle_file_is_rerun(tmp_path, data):
    # Killed between writing trial_0/trial.json (RUNNING) and writing oracle.json.
    tuner = tune.make_tuner(CountingHyperModel(), tmp_path, max_trials=2)
    tuner.oracle.save()
    before = json.loads(open(tuner.oracle._get_oracle_fname()).read())
    trial = tuner.oracle.create_trial(tuner.tuner_id)
    tune._write_json_atomically(tuner.oracle._get_oracle_fname(), before)

    hypermodel, table, _ = run(tmp_path, data, max_trials=2)
    assert hypermodel.fits == 2
    assert (table["status"] == "COMPLETED").all()
    assert table.loc["0", HYPERPARAMETERS].to_dict() == trial.hyperparameters.values


def test_damaged_state_file_is_reported(tmp_path, data):
    run(tmp_path, data, max_trials=1)
    oracle_file = tmp_path / "bayesian_search" / "oracle.json"
    oracle_file.write_text(oracle_file.read_text()[:40])
    with pytest.raises(RuntimeError, match="holds a damaged state file.*overwrite=True"):
        tune.make_tuner(CountingHyperModel(), tmp_path, max_trials=2)


@pytest.mark.slow
def test_search_resumes_after_sigkill_during_training(tmp_path, data):
    marker = tmp_path / "training_trial_1"
    script = tmp_path / "search.py"
    script.write_text(
        CHILD_HEADER
        + textwrap.dedent(
            """
            class Stall(keras.callbacks.Callback):
                def on_train_batch_end(self, batch, logs=None):
                    open(sys.argv[2], "w").close()
                    time.sleep(120)

            class Model(tune.ClassifierHyperModel):
                fits = 0
                def fit(self, hp, model, *args, **kwargs):
                    Model.fits += 1
                    if Model.fits == 2:
                        kwargs["callbacks"] = list(kwargs.get("callbacks", [])) + [Stall()]
                    return super().fit(hp, model, *args, **kwargs)

            tuner = tune.make_tuner(Model(build, **SPACE), directory, max_trials=3)
            tune.search(tuner, (x[:64], y[:64]), (x[64:], y[64:]), epochs=1, verbose=0)
            """
        )
    )
    child = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), str(marker)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 90
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), f"the search never reached trial 1: {child.communicate(timeout=5)[0][-2000:]}"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    hypermodel, table, _ = run(tmp_path, data, max_trials=3)
    assert hypermodel.fits == 2  # trial 1 again, then trial 2; trial 0 is not rerun
    assert list(table.index) == ["0", "1", "2"]
    assert (table["status"] == "COMPLETED").all()
    assert list(table["interrupted_runs"]) == [0, 1, 0]


@pytest.mark.slow
def test_distributed_search_chief_and_two_workers(tmp_path, data):
    script = tmp_path / "search.py"
    script.write_text(
        CHILD_HEADER
        + textwrap.dedent(
            """
            class Model(tune.ClassifierHyperModel):
                def fit(self, hp, model, *args, **kwargs):
                    role = os.environ["KERASTUNER_TUNER_ID"]
                    open(os.path.join(directory, f"fit_{role}_{time.time_ns()}"), "w").close()
                    deadline = time.monotonic() + 60  # wait for the other worker, so that both train a trial
                    while len({name.split("_")[1] for name in os.listdir(directory) if name.startswith("fit_")}) < 2:
                        if time.monotonic() > deadline:
                            break
                        time.sleep(0.2)
                    return super().fit(hp, model, *args, **kwargs)

            tuner = tune.make_tuner(Model(build, **SPACE), directory, max_trials=4)
            tune.search(tuner, (x[:64], y[:64]), (x[64:], y[64:]), epochs=1, verbose=0)
            """
        )
    )
    results = tune.run_distributed_search([sys.executable, str(script), str(tmp_path)], workers=2, timeout=240)
    assert [result["tuner_id"] for result in results] == ["chief", "tuner0", "tuner1"]
    assert all(result["returncode"] == 0 for result in results)
    fits = sorted(path.name.split("_")[1] for path in tmp_path.glob("fit_*"))
    assert len(fits) == 4 and set(fits) == {"tuner0", "tuner1"}  # only workers train, both of them

    _, table, best = run(tmp_path, data, max_trials=4)
    assert list(table.index) == ["0", "1", "2", "3"]
    assert (table["status"] == "COMPLETED").all()
    assert set(best) == set(HYPERPARAMETERS)


def test_distributed_search_reports_a_failing_process(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("import sys\nsys.exit('no data found')\n")
    with pytest.raises(RuntimeError, match="(?s)exited with code 1.*no data found"):
        tune.run_distributed_search([sys.executable, str(script)], workers=2, timeout=30)


def test_optimiser_is_searched_and_head_width_can_be_left_out(tmp_path, data):
    def build_without_head(dropout):
        return keras.Sequential([keras.Input((8,)), layers.Dropout(dropout), layers.Dense(2, activation="softmax")])

    hypermodel = tune.ClassifierHyperModel(
        build_without_head, learning_rate=(1e-3, 1e-1), batch_sizes=(16, 32), head_units=(), optimizer=("adam", "sgd")
    )
    tuner = tune.make_tuner(hypermodel, tmp_path, max_trials=2)
    table, best = tune.search(tuner, *data, epochs=1, verbose=0)
    assert set(best) == {"learning_rate", "batch_size", "dropout", "optimizer"}
    assert set(table["optimizer"]) <= {"adam", "sgd"}
    trained = tuner.get_best_models(1)[0]
    assert type(trained.optimizer).__name__.lower() == best["optimizer"]
    with pytest.raises(ValueError, match="non-empty tuple of names"):
        tune.ClassifierHyperModel(build, optimizer=())


def test_random_start_is_three_trials_per_searched_hyper_parameter():
    def build(dropout, head_units=None):
        raise AssertionError("not built: only the space is declared")

    # learning rate, batch size, dropout, head width: 12 random trials before the first Bayesian step
    assert tune.random_start_trials(tune.ClassifierHyperModel(build)) == 12
    # plus the optimiser, without the head width: still 4 hyper-parameters
    searched = tune.ClassifierHyperModel(build, head_units=(), optimizer=("adam", "sgd"))
    assert tune.random_start_trials(searched) == 12
    fixed = tune.ClassifierHyperModel(build, dropout=(0.2, 0.2), head_units=())  # a fixed dropout stays in the space
    assert tune.random_start_trials(fixed) == 9
