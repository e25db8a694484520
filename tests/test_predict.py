import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import keras

from medcnn.preprocessing import ImagePreprocessing, with_preprocessing


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny saved model: class 'bright' when the mean pixel is high, else 'dark'."""
    keras.utils.set_random_seed(0)
    core = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")]
    )
    core.layers[-1].set_weights([np.array([[-20.0, 20.0]], "float32"), np.array([10.0, -10.0], "float32")])
    model = with_preprocessing(core, ImagePreprocessing((4, 4), "grayscale"), ["dark", "bright"])
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "cells"
    folder.mkdir()
    Image.new("RGB", (30, 20), (250, 250, 250)).save(folder / "bright.png")
    Image.new("L", (16, 16), 5).save(folder / "dark.jpg")
    (folder / "broken.png").write_bytes(b"")  # zero bytes
    (folder / ".DS_Store").write_bytes(b"junk")  # hidden: ignored
    return folder


def test_predicts_each_image_and_reports_bad_files(model_path, images, tmp_path, capsys):
    from medcnn.cli import main

    code = main(["predict", str(model_path), str(images), "--csv", str(tmp_path / "out.csv")])
    out = capsys.readouterr()
    lines = dict(line.split("\t", 1) for line in out.out.strip().splitlines())
    assert lines[str(images / "bright.png")].startswith("bright\t")
    assert lines[str(images / "dark.jpg")].startswith("dark\t")
    assert "ERROR" in lines[str(images / "broken.png")] and "empty" in lines[str(images / "broken.png")]
    assert ".DS_Store" not in out.out
    assert code == 1  # one file failed, the others were still predicted
    csv_text = (tmp_path / "out.csv").read_text()
    assert "p_dark" in csv_text and csv_text.count("\n") == 4


def test_missing_model_is_a_clear_error_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "medcnn", "predict", str(tmp_path / "nope.keras"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "no such model file" in result.stderr
    assert "Traceback" not in result.stderr
