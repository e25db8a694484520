"""`python -m medcnn`: every medcnn layer loads in a fresh process, and TensorFlow's start-up chatter is hidden."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import keras
from keras import layers

import medcnn
from medcnn import augment, cli, predict
from medcnn.layers import LAYER_MODULES, registered_layers
from medcnn.models.backbones import ReverseChannels, preprocessing_layers
from medcnn.models.blocks import baseline_cnn
from medcnn.preprocessing import ImagePreprocessing, with_preprocessing
from medcnn.uncertainty import MCDropout

CLASS_NAMES = ["dark", "bright"]
SIZE = (16, 16, 3)  # baseline_cnn's smallest input
BLOCKS = ("residual", "inception", "dense", "se", "cbam", "deformable", "spp", "recurrent")


def test_layers_module_lists_every_module_that_registers_a_layer():
    package = Path(medcnn.__file__).parent
    defining = {
        ".".join(("medcnn", *path.relative_to(package).with_suffix("").parts))
        for path in package.rglob("*.py")
        if "register_keras_serializable" in path.read_text(encoding="utf-8")
    }
    assert defining - {"medcnn.layers"} == set(LAYER_MODULES)
    names = set(registered_layers())
    assert {"medcnn>ReverseChannels", "medcnn>MCDropout", "medcnn>DeformableConv2D", "medcnn>ClassNames"} <= names
    assert {"medcnn>ResidualBlock", "medcnn>RowRecurrent", "medcnn>RandomPixelNoise", "medcnn>GaussianBlur"} <= names


def every_family_model():
    """One model holding a layer of every medcnn family, each branch built the way the library builds it.

    Branches, averaged: caffe preprocessing (ReverseChannels) and every augmentation layer (inactive at inference);
    baseline_cnn with each ablation block; an MC-dropout head whose last layer ignores its input (zero kernel), so
    the model's output is deterministic while MCDropout stays in the graph.
    """
    keras.utils.set_random_seed(0)
    image = keras.Input(SIZE)
    x = image
    for layer in (
        *preprocessing_layers("caffe", input_max=1.0),
        augment.RandomPixelNoise(seed=0, value_range=(-130, 130)),
        augment.GaussianBlur(seed=0),
        augment.RandomCentralZoom(seed=0),
        augment.RandomGaussianNoise(seed=0, value_range=(-130, 130)),
    ):
        x = layer(x)
    caffe = layers.Dense(2, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    assert any(isinstance(layer, ReverseChannels) for layer in keras.Model(image, caffe).layers)
    options = {"recurrent": {"units": 4}}
    blocks = [
        baseline_cnn(SIZE, 2, block=block, filters=(4, 8, 8), name=f"b_{block}", **options.get(block, {}))(image)
        for block in BLOCKS
    ]
    dropped = MCDropout(0.5, seed=0)(layers.GlobalAveragePooling2D()(image))
    constant = layers.Dense(2, activation="softmax", kernel_initializer="zeros", bias_initializer="zeros")(dropped)
    core = keras.Model(image, layers.Average()([caffe, *blocks, constant]), name="every_family")
    return with_preprocessing(core, ImagePreprocessing(SIZE[:2], "rgb"), CLASS_NAMES)


def test_predict_in_a_fresh_process_loads_every_layer_family_and_prints_no_tensorflow_noise(tmp_path):
    model = every_family_model()
    model_path = tmp_path / "every_family.keras"
    model.save(model_path)
    rng = np.random.default_rng(0)
    files = []
    for index, size in enumerate([(20, 24), (16, 16), (40, 30)]):
        files.append(tmp_path / f"image{index}.png")
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(files[-1])
    expected = {row["path"]: row for row in predict.predict_files(model, CLASS_NAMES, files)}

    env = {key: value for key, value in os.environ.items() if not key.startswith("TF_")}  # the CLI's own defaults
    result = subprocess.run(
        [sys.executable, "-m", "medcnn", "predict", str(model_path), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "3 predicted, 0 failed\n"  # no CUDA / oneDNN / absl lines, no traceback
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        path, label, probability = line.split("\t")
        assert label == expected[path]["class"]
        assert abs(float(probability) - expected[path]["probability"]) <= 1e-4


def test_a_model_keras_cannot_load_is_a_data_error_naming_the_file(tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip file")
    with pytest.raises(medcnn.DataError, match=re.escape(str(broken)) + ": Keras could not load this model"):
        predict.load_model(broken)


def test_filtered_native_stderr_drops_tensorflow_lines_and_keeps_the_rest(capfd):
    with cli.filtered_native_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n")
        os.write(2, b"E0000 00:00:1 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n")
        os.write(2, b"I0000 00:00:1 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"a real problem\n")
        print("python warning", file=sys.stderr)
    # (under pytest, Python's sys.stderr is not file descriptor 2, so the two lines may come in either order)
    assert sorted(capfd.readouterr().err.splitlines()) == ["a real problem", "python warning"]


def test_quiet_settings_keep_a_level_the_user_set(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert cli.quiet_tensorflow_settings() is True and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert cli.quiet_tensorflow_settings() is False and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_plan_prints_the_runs_and_a_total_without_training(shared_data, capsys, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    assert cli.main(["plan", "allgray", "--scale", "smoke", "--data-dir", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert "allgray, smoke scale" in out and "Total:" in out and " min " in out
    assert "15 epochs, batch 64, categorical CE" in out


def test_plan_of_an_unknown_scale_is_an_error_not_a_traceback(capsys, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    assert cli.main(["plan", "allgray", "--scale", "huge"]) == 1
    assert "`scale` must be one of" in capsys.readouterr().err
