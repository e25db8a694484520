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
