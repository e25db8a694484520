"""The benchmarks are not run by the suite (they time things), but each of their cases must still build against
today's study modules: a renamed builder broke `train_throughput.py` once without any test noticing."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_throughput = load("train_throughput")


@pytest.mark.parametrize("name", sorted(train_throughput.CASES))
def test_every_training_case_builds_a_model_of_its_shape(name):
    case = train_throughput.CASES[name]()
    model = case["build"](1, 1)
    assert tuple(model.input_shape[1:]) == tuple(case["shape"])
    probabilities = np.asarray(model.predict(np.zeros((2, *case["shape"]), "float32"), verbose=0))
    assert probabilities.shape == (2, case["classes"])
