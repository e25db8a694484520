"""Bayesian hyper-parameter search with KerasTuner: learning rate, batch size, dropout, head width and optimiser.

A search lives in `<output>/<project_name>/` and resumes where it stopped when started again with the same folder
(`overwrite=False`, KerasTuner's default): finished trials are never rerun. Three things KerasTuner 1.4.8 alone
does not handle after a hard kill (SIGKILL, out of memory, a lost Colab runtime) are handled here:

- A trial that was training when the process died is rerun from its start with the same hyper-parameters (KerasTuner
  does this for trials it lists as ongoing; here also for a trial whose trial.json says RUNNING but which the
  oracle's own file never recorded, and a trial found COMPLETED on disk is not rerun). A trial that kills the process
  again and again would otherwise be rerun forever (keras-team/keras-tuner#439); after `max_restarts_per_trial`
  interrupted runs it is marked FAILED with a message saying so, and the search moves on.
- The search state is written atomically (temporary file, then rename), so a kill while saving cannot leave a
  half-written oracle.json; a damaged file from elsewhere is reported with the folder to delete.
- A folder with an oracle.json always resumes: KerasTuner reloads only when the tuner's own state file exists, which
  it first writes after a trial ends, so a kill during the very first trial would silently start the search over.

Distributed search uses KerasTuner's chief/worker mode: every process runs the same script; the environment
variables KERASTUNER_TUNER_ID ('chief' or 'tuner<k>'), KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT tell each
one its role. `run_distributed_search` starts a chief and N workers on one machine. Search folders hold a checkpoint
per trial (about 20 MB for the allgray CNN): keep them out of git.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import pandas as pd

import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from medcnn.train import compile_model, monitor_mode


def _write_json_atomically(path, state):
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=".json")
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(state, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def make_objective(name="val_accuracy", direction=None):
    """A KerasTuner objective: a logged metric name and 'min' or 'max' (None: 'min' for losses, else 'max').

    kth tuned on validation AUC: `make_objective("val_auc")` with `keras.metrics.AUC(name="auc")` among the metrics.
    """
    direction = direction or monitor_mode(name)
    if direction not in ("min", "max"):
        raise ValueError(f"`direction` must be 'min' or 'max'. Received: direction={direction!r}")
    return keras_tuner.Objective(name, direction)


class ClassifierHyperModel(keras_tuner.HyperModel):
    """The search space the studies tune: learning rate (log scale), batch size, dropout, head width, optimiser.

    `build` makes a model with `build_model(dropout=..., head_units=...)` and compiles it with the trial's learning
    rate (and optimiser); `fit` trains it with the trial's batch size.

    Args:
        build_model: callable(dropout, head_units) -> an uncompiled Keras model (e.g. a backbone + kth head);
            callable(dropout) when `head_units` is empty.
        learning_rate: (low, high), sampled on a log scale. kth found 7e-4 .. 3e-2 good.
        batch_sizes: the batch sizes to choose from.
        dropout: (low, high) dropout rate, step 0.05; (x, x) fixes it.
        head_units: the widths of the head's hidden Dense layer to choose from; () for a model without one (the
            width is then not searched).
        optimizer: a name for `medcnn.train.compile_model`, or a tuple of names to search over (hyper-parameter
            "optimizer"), e.g. ("adam", "sgd", "rmsprop").
        loss: for `medcnn.train.compile_model`.
        metrics: metric names, or a callable returning fresh metric objects per trial, e.g.
            `lambda: ["accuracy", keras.metrics.AUC(name="auc")]` (metric objects must not be shared by trials).

    Data for `fit`: arrays (batched by the trial's batch size), or a callable(batch_size) -> dataset for `x` and
    `validation_data` (a tf.data pipeline or PyDataset built at that batch size).
    """

    def __init__(
        self,
        build_model,
        learning_rate=(1e-4, 3e-2),
        batch_sizes=(16, 32, 64),
        dropout=(0.0, 0.5),
        head_units=(64, 128, 256),
        optimizer="adam",
        loss=None,
        metrics=("accuracy",),
    ):
        super().__init__(name="classifier")
        if not 0 < learning_rate[0] < learning_rate[1]:
            raise ValueError(
                f"`learning_rate` must be (low, high) with 0 < low < high. Received: learning_rate={learning_rate}"
            )
        if not 0 <= dropout[0] <= dropout[1] < 1:
            raise ValueError(f"`dropout` must be (low, high) with 0 <= low <= high < 1. Received: dropout={dropout}")
        self.build_model = build_model
        self.learning_rate = tuple(float(value) for value in learning_rate)
        self.batch_sizes = [int(value) for value in batch_sizes]
        self.dropout = tuple(float(value) for value in dropout)
        self.head_units = [int(value) for value in head_units]
        self.optimizers = [optimizer] if isinstance(optimizer, str) else list(optimizer)
        if not self.optimizers:
            raise ValueError(
                f"`optimizer` must be a name or a non-empty tuple of names. Received: optimizer={optimizer!r}"
            )
        self.optimizer = optimizer
        self.loss = loss
        self.metrics = metrics

    def declare_hyperparameters(self, hp):
        """Declare the whole space up front, so the first trials sample the batch size too."""
        hp.Float("learning_rate", *self.learning_rate, sampling="log")
        hp.Choice("batch_size", self.batch_sizes)
        if self.dropout[0] == self.dropout[1]:
            hp.Fixed("dropout", self.dropout[0])
        else:
            hp.Float("dropout", *self.dropout, step=0.05)
        if self.head_units:
            hp.Choice("head_units", self.head_units)
        if len(self.optimizers) > 1:
            hp.Choice("optimizer", self.optimizers)

    def build(self, hp):
        self.declare_hyperparameters(hp)
        sizes = {"head_units": hp.get("head_units")} if self.head_units else {}
        model = self.build_model(dropout=hp.get("dropout"), **sizes)
        metrics = self.metrics() if callable(self.metrics) else self.metrics
        optimizer = hp.get("optimizer") if len(self.optimizers) > 1 else self.optimizers[0]
        return compile_model(model, optimizer, hp.get("learning_rate"), loss=self.loss, metrics=metrics)

    def fit(self, hp, model, x, y=None, validation_data=None, **kwargs):
        batch_size = hp.Choice("batch_size", self.batch_sizes)
        if callable(x):
            x, y = x(batch_size), None
        if callable(validation_data):
            validation_data = validation_data(batch_size)
        return model.fit(
            x, y, batch_size=batch_size if y is not None else None, validation_data=validation_data, **kwargs
        )


class ResumableBayesianOracle(keras_tuner.oracles.BayesianOptimizationOracle):
    """BayesianOptimizationOracle that survives hard kills: see the module docstring.

    Args:
        max_restarts_per_trial: how many times a trial may be found interrupted (the process died while it ran)
            and be rerun; the next time it is marked FAILED. Other arguments as for BayesianOptimizationOracle.
    """

    def __init__(self, *args, max_restarts_per_trial=2, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(max_restarts_per_trial, int) or max_restarts_per_trial < 0:
            raise ValueError(
                "`max_restarts_per_trial` must be an int >= 0. "
                f"Received: max_restarts_per_trial={max_restarts_per_trial!r}"
            )
        self.max_restarts_per_trial = max_restarts_per_trial
        self.interrupted_runs = {}
        self._ongoing_at_reload = []

    def get_state(self):
        return {**super().get_state(), "interrupted_runs": dict(self.interrupted_runs)}

    def set_state(self, state):
        self._ongoing_at_reload = list(state["ongoing_trials"].values())
        super().set_state(state)
        self.interrupted_runs = dict(state.get("interrupted_runs", {}))

    def save(self):
        _write_json_atomically(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        _write_json_atomically(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"), trial.get_state())

    def reload(self):
        try:
            super().reload()
        except json.JSONDecodeError as error:
            raise RuntimeError(
                f"The search folder {self._project_dir} holds a damaged state file ({error}). It was probably being "
                "written when the process was killed. Delete that folder, or pass `overwrite=True`, to start the "
                "search again."
            ) from error
        orphans = [
            trial_id
            for trial_id, trial in self.trials.items()
            if trial.status == TrialStatus.RUNNING
            and trial_id not in self._retry_queue
            and trial_id not in self.end_order
        ]
        for trial_id in dict.fromkeys(self._ongoing_at_reload + orphans):
            self._recover(trial_id)
        self._ongoing_at_reload = []
        self.save()

    def _recover(self, trial_id):
        trial = self.trials[trial_id]
        if trial_id in self._retry_queue:
            self._retry_queue.remove(trial_id)
        if trial_id not in self.start_order:
            self.start_order.append(trial_id)
        if trial.status == TrialStatus.COMPLETED:
            if trial_id not in self.end_order:
                self.end_order.append(trial_id)
            return
        runs = self.interrupted_runs.get(trial_id, 0) + 1
        self.interrupted_runs[trial_id] = runs
        if runs > self.max_restarts_per_trial:
            trial.status = TrialStatus.FAILED
            trial.message = (
                f"Trial {trial_id} was interrupted {runs} times: the process died while it was training (out of "
                "memory? try a smaller batch size or input). It is marked FAILED and the search goes on."
            )
            self.end_order.append(trial_id)
            self._save_trial(trial)
            print(trial.message)
            return
        print(
            f"Trial {trial_id} was interrupted while training; rerunning it from the start with the same "
            f"hyper-parameters (interrupted run {runs}, at most {self.max_restarts_per_trial} reruns)."
        )
        self._retry_queue.append(trial_id)


class ResumableTuner(keras_tuner.Tuner):
    """keras_tuner.Tuner that writes its state atomically."""

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        _write_json_atomically(self._get_tuner_fname(), self.get_state())


def make_tuner(
    hypermodel,
    directory,
    objective="val_accuracy",
    max_trials=10,
    project_name="bayesian_search",
    seed=0,
    max_restarts_per_trial=2,
    overwrite=False,
):
    """A Bayesian-optimisation tuner that resumes from `directory/project_name` when it exists.

    Args:
        hypermodel: a `ClassifierHyperModel` (or any keras_tuner.HyperModel).
        directory: the run's output folder (e.g. `results/kth/smoke/tuning`).
        objective: a metric name ('val_auc', 'val_accuracy') or a keras_tuner.Objective.
        max_trials: total trials, counting those already done; raise it to extend a finished search.
        project_name: sub-folder of `directory` holding the search.
        seed: seeds the oracle's random initial points.
        max_restarts_per_trial: reruns allowed for a trial found interrupted (see the module docstring).
        overwrite: True deletes an existing search and starts over.
    """
    if isinstance(objective, str):
        objective = make_objective(objective)
    project = os.path.join(str(directory), project_name)
    tuner_file = os.path.join(project, f"{os.environ.get('KERASTUNER_TUNER_ID', 'tuner0')}.json")
    if not overwrite and os.path.exists(os.path.join(project, "oracle.json")) and not os.path.exists(tuner_file):
        # KerasTuner reloads only when this tuner's own file exists, which it first writes when a trial ends;
        # a kill during the first trial, or another tuner id, would otherwise silently start the search over.
        _write_json_atomically(tuner_file, {})
    oracle = ResumableBayesianOracle(
        objective=objective, max_trials=max_trials, seed=seed, max_restarts_per_trial=max_restarts_per_trial
    )
    return ResumableTuner(
        oracle=oracle, hypermodel=hypermodel, directory=str(directory), project_name=project_name, overwrite=overwrite
    )


def random_start_trials(hypermodel):
    """How many trials `make_tuner`'s Bayesian oracle draws at random before its first Bayesian step: KerasTuner's
    default `num_initial_points`, 3 per hyper-parameter of `hypermodel`'s space (at least 3). A search with no more
    trials than this is a random search."""
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    return max(3 * len(hp.space), 3)


def trials_table(tuner):
    """All trials, one row each, in id order: status, score, best step, every hyper-parameter, reruns, message."""
    oracle = tuner.oracle
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        message = (trial.message or "").strip().splitlines()
        rows.append(
            {
                "trial_id": trial_id,
                "status": trial.status,
                "score": trial.score,
                "best_step": trial.best_step,
                **trial.hyperparameters.values,
                "interrupted_runs": getattr(oracle, "interrupted_runs", {}).get(trial_id, 0),
                "message": message[-1] if message else "",
            }
        )
    table = pd.DataFrame(rows)
    return table.set_index("trial_id") if rows else table


def best_hyperparameters(tuner):
    """The best completed trial's hyper-parameter values as a dict ({} when no trial has completed)."""
    best = [trial for trial in tuner.oracle.get_best_trials(1) if trial.status == TrialStatus.COMPLETED]
    return dict(best[0].hyperparameters.values) if best else {}


def search(tuner, train, val, epochs=10, callbacks=None, verbose="auto"):
    """Run (or resume) the search; return (trials table, best hyper-parameters).

    Args:
        tuner: from `make_tuner`.
        train: (images, labels) arrays or a callable(batch_size) -> dataset.
        val: the same kinds (a callable gets the trial's batch size too).
        epochs: epochs per trial; add an EarlyStopping callback to cut poor trials short.
        callbacks: Keras callbacks for each trial (copied per trial by KerasTuner).
        verbose: Keras progress output.

    In a distributed search the chief holds the results; a worker returns an empty table and {}. Read them
    afterwards with `make_tuner(...)` on the chief's folder.
    """
    x, y = train if isinstance(train, tuple) else (train, None)
    tuner.search(x, y, validation_data=val, epochs=epochs, callbacks=list(callbacks or []), verbose=verbose)
    if tuner._is_worker():
        return pd.DataFrame(), {}
    return trials_table(tuner), best_hyperparameters(tuner)


def free_port(host="127.0.0.1"):
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def run_distributed_search(command, workers=2, port=None, timeout=600, env=None, cwd=None):
    """Run one search as a KerasTuner chief plus `workers` worker processes on this machine (127.0.0.1 only).

    Every process runs `command` (e.g. `[sys.executable, "tune_kth.py"]`), a script that calls `make_tuner(...)`
    and `search(...)` on the same directory; the environment tells each its role. The chief only serves the
    oracle; workers train. On a cluster, set the same three variables on each machine instead (the chief's IP
    for KERASTUNER_ORACLE_IP).

    Args:
        command: the argument list to run.
        workers: number of worker processes (each trains one trial at a time).
        port: the chief's port; None picks a free one.
        timeout: seconds for the whole search; past it every process is killed and TimeoutError raised.
        env: extra environment variables for all processes.
        cwd: working directory.

    Returns:
        list of {tuner_id, returncode, output} (chief first). Raises RuntimeError naming the process and the
        end of its output if any exits with an error.
    """
    if workers < 1:
        raise ValueError(f"`workers` must be >= 1. Received: workers={workers}")
    port = port or free_port()
    base = {**os.environ, **(env or {}), "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port)}
    roles = ["chief"] + [f"tuner{index}" for index in range(workers)]
    processes, logs = [], []
    for role in roles:
        log = tempfile.TemporaryFile(mode="w+")
        processes.append(
            subprocess.Popen(
                list(command), env={**base, "KERASTUNER_TUNER_ID": role}, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
            )
        )
        logs.append(log)
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        codes = [process.poll() for process in processes]
        if any(code not in (None, 0) for code in codes) or all(code is not None for code in codes):
            break
        if time.monotonic() > deadline:
            timed_out = True
            break
        time.sleep(0.5)
    failed = [
        (role, process.returncode) for role, process in zip(roles, processes) if process.returncode not in (None, 0)
    ]
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
    results = []
    for role, process, log in zip(roles, processes, logs):
        log.seek(0)
        results.append({"tuner_id": role, "returncode": process.returncode, "output": log.read()})
        log.close()
    if failed:
        role, code = failed[0]
        output = next(result["output"] for result in results if result["tuner_id"] == role)
        raise RuntimeError(
            f"Distributed search process '{role}' exited with code {code}; the others were stopped. "
            f"End of its output:\n{output[-3000:]}"
        )
    if timed_out:
        tails = "\n".join(f"--- {result['tuner_id']} ---\n{result['output'][-1500:]}" for result in results)
        raise TimeoutError(
            f"The distributed search did not finish within {timeout} s; all processes were stopped.\n{tails}"
        )
    return results


if __name__ == "__main__":  # pragma: no cover
    sys.exit("medcnn.tune is a library: see run_distributed_search for running a search on several processes.")
