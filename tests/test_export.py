"""medcnn.experiment.export's `weights_file`: a trained run's weights saved alone, e.g. the stage-one head that a
fine-tuning run starts from."""

import keras
import numpy as np

from medcnn import experiment
from medcnn.experiment.export import weights_file
from medcnn.train import compile_model


def _dense():
    inputs = keras.Input((1, 1, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs))
    return compile_model(keras.Model(inputs, outputs), "adam", 0.05, loss="categorical_crossentropy")


def test_weights_file_saves_the_recorded_weights_or_trains_the_run_first(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 10)
    x = (rng.normal(size=(20, 1, 1, 3)) + labels[:, None, None, None]).astype("float32")
    split = {"train": np.arange(0, 20, 2), "val": np.arange(1, 20, 4), "test": np.arange(3, 20, 4)}
    run = experiment.Run(label="head", seed=0, build_model=_dense, split=split, epochs=1, batch_size=4,
                         data="toy", inputs=(x, labels))  # fmt: skip
    cache, said = experiment.RunCache(tmp_path), []
    resolve = weights_file(run, ["a", "b"], cache, "heads", log=said.append)
    path = resolve()  # no recorded weights: the run is trained again first
    assert path == tmp_path / "cache" / "heads" / "head__seed0.weights.h5" and path.is_file()
    assert "training that run again" in said[0]
    experiment.train_and_evaluate(run, None, None, ["a", "b"], cache, verbose=0, log=said.append)
    said.clear()
    model = _dense()
    model.load_weights(weights_file(run, ["a", "b"], cache, "heads", log=said.append)())
    recorded = _dense()
    recorded.load_weights(cache.weights_path(run.key))
    assert said == [] and all(np.array_equal(a, b) for a, b in zip(model.get_weights(), recorded.get_weights()))


def test_required_weights_refuses_weights_of_another_fingerprint(tmp_path):
    import pytest

    from medcnn.experiment.export import required_weights

    split = {"train": np.arange(4), "val": np.arange(4, 6)}
    run = experiment.Run(label="stage one", seed=1, build_model=_dense, split=split, epochs=1, batch_size=4)
    cache, precision = experiment.RunCache(tmp_path), keras.config.dtype_policy().name
    with pytest.raises(FileNotFoundError, match=r"^The head .* '.*stage one' seed 1 .*so that stage one trains again"):
        required_weights(run, cache, "The head", "stage one")
    cache.save(run.key, {"fingerprint": "other settings", "precision": precision}, _dense())
    with pytest.raises(FileNotFoundError, match=run.fingerprint):
        required_weights(run, cache)
    cache.save(run.key, {"fingerprint": run.fingerprint, "precision": precision}, _dense())
    assert required_weights(run, cache) == cache.weights_path(run.key)


def test_missing_weights_are_restored_in_dependency_order_and_listed(tmp_path):
    """A reuse pass on a fresh checkout: both stages recorded, no weights (they are not committed). Rebuilding stage
    two trains stage one again first (stage two's build asks for its weights), then stage two, both in
    `cache/retrain/`, logged and listed by `restored_since`; the records and fingerprints stay as they were."""
    import json
    import shutil
    import time

    from medcnn.experiment.export import required_weights, restored_since, trained_model

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 10)
    x = (rng.normal(size=(20, 1, 1, 3)) + labels[:, None, None, None]).astype("float32")
    split = {"train": np.arange(0, 20, 2), "val": np.arange(1, 20, 4), "test": np.arange(3, 20, 4)}
    cache, said, names = experiment.RunCache(tmp_path, reuse=True), [], ["a", "b"]
    first = experiment.Run(label="stage one", seed=0, build_model=_dense, split=split, epochs=1, batch_size=4,
                           data="toy", inputs=(x, labels))  # fmt: skip

    def build_second():  # stage two starts from stage one's weights
        model = _dense()
        model.load_weights(required_weights(first, cache, "Stage one's weights", "stage one", names, said.append))
        return model

    second = experiment.Run(label="stage two", seed=0, build_model=build_second, split=split, epochs=1,
                            batch_size=4, data="toy", starts_from=first, inputs=(x, labels))  # fmt: skip
    for run in (first, second):
        experiment.train_and_evaluate(run, None, None, names, cache, verbose=0)
    recorded = {run.key: cache.record_path(run.key).read_text() for run in (first, second)}
    shutil.rmtree(tmp_path / "cache")  # a fresh checkout: the records without their weights
    assert restored_since(cache, 0) == []

    model = trained_model(second, None, None, names, cache, log=said.append)
    assert model.output_shape == (None, 2)
    again = [line for line in said if "training that run again to restore them" in line]
    assert len(again) == 2 and "'stage two' seed 0" in again[0] and "'stage one' seed 0" in again[1]
    assert restored_since(cache, 0) == ["stage one (seed 0)", "stage two (seed 0)"]  # trained in that order
    assert restored_since(cache, time.time() + 60) == []
    weights = tmp_path / "cache" / "retrain" / "cache" / "weights"
    assert all((weights / f"{run.key}.weights.h5").is_file() for run in (first, second))
    retrained = json.loads((tmp_path / "cache" / "retrain" / "runs" / f"{second.key}.json").read_text())
    assert retrained["fingerprint"] == second.fingerprint
    assert {run.key: cache.record_path(run.key).read_text() for run in (first, second)} == recorded
    said.clear()
    trained_model(second, None, None, names, cache, log=said.append)
    assert said == []  # restored once: found in cache/retrain/ next time
