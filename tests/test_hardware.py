"""What the run is on: the description agrees with what Keras and its backend report, on a CPU or a GPU host."""

import os

import numpy as np
import pytest

import keras

from medcnn import hardware, train


def backend_accelerators():
    """Keras' own device list (`keras.distribution.list_devices`), CPUs left out: e.g. ['gpu:0'], or []."""
    return [device for device in keras.distribution.list_devices() if not device.lower().startswith("cpu")]


@pytest.mark.parametrize(
    "devices, expected",
    [
        ([], "float32"),
        ([{"name": "Tesla T4", "kind": "gpu", "compute_capability": 7.5}], "mixed_float16"),
        ([{"name": "NVIDIA H200", "kind": "gpu", "compute_capability": 9.0}], "mixed_bfloat16"),
        ([{"name": "Tesla P100", "kind": "gpu", "compute_capability": 6.0}], "float32"),
        ([{"name": "TPU v4", "kind": "tpu", "compute_capability": None}], "mixed_bfloat16"),
        (
            [
                {"name": "NVIDIA H200", "kind": "gpu", "compute_capability": 9.0},
                {"name": "Tesla T4", "kind": "gpu", "compute_capability": 7.5},
            ],
            "mixed_float16",  # the weakest GPU decides
        ),
    ],
)
def test_default_precision(devices, expected):
    assert hardware.default_precision(devices) == expected


def test_describe_hardware_agrees_with_the_backend():
    description = hardware.describe_hardware()
    assert description["cpu"] == hardware.cpu_model()
    assert description["cpu_cores"] == os.cpu_count()
    assert description["cpu_cores_usable"] == len(os.sched_getaffinity(0))
    assert description["keras_backend"] == keras.backend.backend()
    assert description["versions"]["keras"] == keras.__version__
    assert description["versions"]["numpy"] == np.__version__
    found = description["accelerators"]
    seen = backend_accelerators()
    assert len(found) == len(seen)  # none on a CPU host, each GPU on a GPU host
    assert sorted(device["kind"] for device in found) == sorted(device.split(":")[0].lower() for device in seen)
    for device in found:
        assert device["name"]
        assert device["compute_capability"] is None or device["compute_capability"] >= 1.0
    assert hardware.default_precision() == hardware.default_precision(found)
    if not found:
        assert hardware.default_precision() == "float32"


def test_training_inside_the_distribution_scope_matches_training_outside_it_on_one_device():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 32).astype("int32")
    features = (rng.normal(size=(32, 4)) + 2.5 * labels[:, None]).astype("float32")

    def train_once():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
        return train.compile_model(model, learning_rate=0.05)

    with hardware.distribution_scope() as strategy:
        inside = train_once()
        replicas = strategy.num_replicas_in_sync if keras.backend.backend() == "tensorflow" else None
    history = train.fit(inside, (features, labels), epochs=2, batch_size=16, verbose=0)
    if keras.backend.backend() == "tensorflow":
        assert replicas == max(1, len(backend_accelerators()))
    if len(backend_accelerators()) > 1:
        pytest.skip("several accelerators: the scope distributes, so the losses need not match one device's")
    outside = train.fit(train_once(), (features, labels), epochs=2, batch_size=16, verbose=0)
    np.testing.assert_allclose(history["loss"], outside["loss"], rtol=1e-5)
    assert history["loss"][1] < history["loss"][0]


def test_precision_can_be_chosen_through_the_environment(monkeypatch):
    monkeypatch.delenv(hardware.PRECISION_VARIABLE, raising=False)
    assert hardware.chosen_precision([]) == "float32"
    monkeypatch.setenv(hardware.PRECISION_VARIABLE, "mixed_bfloat16")
    assert hardware.chosen_precision([]) == "mixed_bfloat16"
    monkeypatch.setenv(hardware.PRECISION_VARIABLE, "bf16")
    with pytest.raises(ValueError, match="MEDCNN_PRECISION must be one of"):
        hardware.chosen_precision([])
