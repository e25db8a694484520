"""Backbones, their named blocks and weights, and transfer models built from them (weights=None, smallest inputs)."""

import keras
import numpy as np
import pytest

from medcnn.errors import DataError
from medcnn.models import backbones as backbones_module
from medcnn.models import weights as weights_module
from medcnn.models.backbones import (
    BACKBONES,
    block_layers,
    build_backbone,
    get_backbone_spec,
    identify_backbone,
    preprocessing_layers,
    resolve_backbone_weights,
    unfreeze_last_blocks,
)
from medcnn.models.heads import HeadSpec, cnmc_head, kth_head
from medcnn.models.transfer import set_trainable_blocks, transfer_model
from medcnn.models.weights import (
    RandomWeightsWarning,
    WeightsUnavailableError,
    resolve_weights_file,
)
from medcnn.data.paths import SHARED

# include_top=False parameter counts and feature channels, as published in the Keras applications table / papers
BACKBONE_PARAMS = {
    "vgg16": (14_714_688, 512),
    "vgg19": (20_024_384, 512),
    "inception_v3": (21_802_784, 2048),
    "resnet50": (23_587_712, 2048),
    "resnet101v2": (42_626_560, 2048),
    "xception": (20_861_480, 2048),
    "inception_resnet_v2": (54_336_736, 1536),
    "mobilenet_v2": (2_257_984, 1280),
    "efficientnet_b0": (4_049_571, 1280),
    "densenet121": (7_037_504, 1024),
}
HEAD_UNITS = 8
STAGED_MOBILENET = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def _trainable_names(layer):
    return {weight.path for weight in layer.trainable_weights}


@pytest.fixture(scope="module", params=sorted(BACKBONE_PARAMS))
def built(request):
    """(name, transfer model) for every registered backbone, each built once at its smallest input."""
    name = request.param
    size = get_backbone_spec(name).min_size
    return name, transfer_model(name, kth_head(units=HEAD_UNITS), (size, size, 3), weights=None)


def test_registry_matches_the_table():
    assert set(BACKBONES) == set(BACKBONE_PARAMS)


def test_transfer_model_shapes_and_parameter_counts(built):
    name, model = built
    params, channels = BACKBONE_PARAMS[name]
    backbone, head = model.get_layer("backbone"), model.get_layer("head")
    assert backbone.output.shape[-1] == channels
    assert model.output_shape == (None, 2)
    head_params = 4 * channels + (channels * HEAD_UNITS + HEAD_UNITS) + (HEAD_UNITS * 2 + 2)
    assert head.count_params() == head_params
    assert model.count_params() == params + head_params
    assert model.weights_used == "random"
    assert model.transfer_info["backbone"] == name and model.transfer_info["weights"] == "random"
    assert not backbone.trainable_weights  # the first stage trains the head only
    assert _trainable_names(model) == _trainable_names(head)


def test_named_blocks_cover_the_backbone_in_order(built):
    name, model = built
    backbone = model.get_layer("backbone")
    assert identify_backbone(backbone).blocks == get_backbone_spec(name).blocks
    blocks = block_layers(backbone)
    assert [block for block, _ in blocks] == [block.name for block in get_backbone_spec(name).blocks]
    covered = [layer for _, layers in blocks for layer in layers]
    assert covered == backbone.layers[1:]  # every layer but the input, once, in order
    assert all(layers for _, layers in blocks)


def test_unfreezing_the_last_block_trains_exactly_it(built):
    name, model = built
    backbone = model.get_layer("backbone")
    last_block = block_layers(backbone)[-1][1]
    assert set_trainable_blocks(model, 1) == [get_backbone_spec(name).blocks[-1].name]
    expected = {
        weight.path
        for layer in last_block
        if not isinstance(layer, keras.layers.BatchNormalization)
        for weight in layer.trainable_weights
    }
    assert expected and _trainable_names(backbone) == expected
    assert all(not layer.trainable for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization))
    set_trainable_blocks(model, 0)
    assert not backbone.trainable_weights


def test_vgg16_last_two_blocks():
    backbone, _ = build_backbone("VGG16", (32, 32, 3), weights=None)
    assert unfreeze_last_blocks(backbone, 2) == ["block4", "block5"]
    trainable = sorted(layer.name for layer in backbone.layers if layer.trainable and layer.weights)
    assert trainable == [f"block{b}_conv{c}" for b in (4, 5) for c in (1, 2, 3)]


def test_whole_network_with_batch_norm_trains_everything():
    backbone, _ = build_backbone("mobilenet_v2", (32, 32, 3), weights=None)
    assert len(unfreeze_last_blocks(backbone, "all", train_batch_norm=True)) == 19
    assert len(backbone.trainable_weights) == sum(len(layer.trainable_weights) for layer in backbone.layers) > 0
    unfreeze_last_blocks(backbone, "all")
    bn_gammas = [w for w in backbone.weights if "bn" in w.path.lower() and w.path.endswith("gamma")]
    assert bn_gammas and not any(w.trainable for w in bn_gammas)
    with pytest.raises(ValueError, match="`n` must be 'all' or an int between 0 and 19"):
        unfreeze_last_blocks(backbone, 20)


@pytest.mark.parametrize("name", ["vgg16", "inception_v3", "densenet121", "efficientnet_b0"])
@pytest.mark.parametrize("input_max", [255.0, 1.0])
def test_preprocessing_layers_match_keras_preprocess_input(name, input_max):
    spec = get_backbone_spec(name)
    pixels = np.random.default_rng(0).uniform(0, 255, size=(2, 4, 5, 3)).astype("float32")
    expected = spec.preprocess_input(pixels.copy())
    output = pixels * (input_max / 255.0)
    for layer in preprocessing_layers(spec.preprocess_mode, input_max):
        output = layer(output)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(output), expected, rtol=1e-5, atol=1e-4)


def test_gray_input_is_repeated_to_rgb():
    model = transfer_model("vgg16", cnmc_head(), (32, 32, 1), weights=None)
    assert model.input_shape == (None, 32, 32, 1) and model.output_shape == (None, 1)
    assert model.get_layer("backbone").get_layer("gray_to_rgb").output.shape == (None, 32, 32, 3)


def test_transfer_model_saves_and_reloads(tmp_path):
    model = transfer_model("mobilenet_v2", HeadSpec(3, seed=0), (32, 32, 1), weights=None, input_max=1.0)
    images = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert [layer.name for layer in reloaded.layers] == ["image", "backbone", "head"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(images)), keras.ops.convert_to_numpy(model(images)), rtol=1e-5
    )


@pytest.mark.parametrize("mode", ["caffe", "torch", "tf"])
def test_preprocessing_layers_reload(mode, tmp_path):
    inputs = keras.Input((4, 4, 3))
    outputs = inputs
    for layer in preprocessing_layers(mode, input_max=1.0):
        outputs = layer(outputs)
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "preprocessing.keras")
    reloaded = keras.saving.load_model(tmp_path / "preprocessing.keras")
    images = np.random.default_rng(1).random((2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(images)), keras.ops.convert_to_numpy(model(images)), rtol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "alexnet"}, "Unknown backbone. Expected one of"),
        ({"name": "inception_v3", "input_shape": (64, 64, 3)}, "inception_v3 needs inputs of at least 75x75"),
        ({"input_shape": (32, 32, 4)}, "`input_shape` must be \\(height, width, 1 or 3\\)"),
        ({"weights": "places365"}, "`weights` must be 'imagenet', None or the path of an existing weights file"),
        ({"weights": 365}, "`weights` must be 'imagenet', None or the path of a weights file. Received: weights=365"),
    ],
)
def test_invalid_backbone_arguments(kwargs, message):
    arguments = {"name": "vgg16", "input_shape": (32, 32, 3), "weights": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_backbone(**arguments)


# ---- weights -----------------------------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No local weight files (an empty folder) and no network: every download fails."""
    calls = []

    def failing_get_file(*args, **kwargs):
        calls.append(args)
        raise OSError("network is unreachable")

    monkeypatch.setattr(weights_module, "weights_dirs", lambda: [tmp_path])
    monkeypatch.setattr(keras.utils, "get_file", failing_get_file)
    return tmp_path, calls


def test_offline_error_names_the_file_and_where_to_put_it(offline):
    folder, calls = offline
    with pytest.raises(WeightsUnavailableError) as caught:
        build_backbone("vgg16", (32, 32, 3))
    message = str(caught.value)
    assert isinstance(caught.value, DataError)
    assert "ImageNet weights for 'vgg16' were not found offline and could not be downloaded" in message
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(folder) in message and "MEDCNN_WEIGHTS" in message and "allow_random=True" in message
    assert "network is unreachable" in message
    assert calls, "the download must have been tried"


def test_allow_random_warns_at_the_callers_line_and_records_random(offline):
    with pytest.warns(RandomWeightsWarning, match="RANDOM INITIALISATION for 'vgg16'") as caught:
        model = transfer_model("vgg16", kth_head(units=4), (32, 32, 3), allow_random=True)
    assert model.weights_used == "random"
    assert model.transfer_info["weights"] == "random" and model.transfer_info["weights_file"] is None
    with pytest.warns(RandomWeightsWarning) as direct:  # one call less deep: still this file
        build_backbone("vgg16", (32, 32, 3), allow_random=True)
    assert [warning.filename for warning in (*caught, *direct)] == [__file__, __file__]


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras' notes while failing the wrong file
def test_weights_file_path_is_loaded_and_recorded(tmp_path):
    keras.utils.set_random_seed(0)
    trained, _ = build_backbone("vgg16", (32, 32, 3), weights=None)
    path = tmp_path / "vgg16_fine_tuned.weights.h5"
    trained.save_weights(path)
    model = transfer_model("vgg16", kth_head(units=4), (32, 32, 3), weights=str(path))
    assert model.weights_used == "file"
    assert (model.transfer_info["weights"], model.transfer_info["weights_file"]) == ("file", str(path))
    assert model.transfer_info["weights_source"] == "file"
    for name in ("block1_conv1", "block5_conv3"):
        for loaded, saved in zip(
            model.get_layer("backbone").get_layer(name).get_weights(), trained.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(loaded, saved)
    with pytest.raises(WeightsUnavailableError, match="Could not load weights for 'mobilenet_v2' from .*vgg16_fine"):
        build_backbone("mobilenet_v2", (32, 32, 3), weights=path)


@pytest.mark.skipif(not STAGED_MOBILENET.is_file(), reason="staged MobileNetV2 weights not found in ../shared/weights")
def test_keras_imagenet_file_named_as_a_path_counts_as_imagenet(offline):
    backbone, weights_used = build_backbone("mobilenet_v2", (96, 96, 3), weights=STAGED_MOBILENET)
    assert weights_used == "imagenet"
    assert backbone.weights_info.as_dict() == {
        "weights": "imagenet", "weights_file": str(STAGED_MOBILENET), "weights_source": "file",
    }  # fmt: skip
    reference, _ = build_backbone("mobilenet_v2", (96, 96, 3), weights=None)
    reference.load_weights(STAGED_MOBILENET)
    np.testing.assert_array_equal(
        backbone.get_layer("Conv1").get_weights()[0], reference.get_layer("Conv1").get_weights()[0]
    )


def test_local_copy_comes_before_the_download(offline):
    folder, calls = offline
    (folder / "some_weights.h5").write_bytes(b"not read here")
    info = resolve_weights_file("thing", "some_weights.h5", "https://example.invalid/some_weights.h5")
    assert (info.used, info.source, info.path) == ("imagenet", "local", str(folder / "some_weights.h5"))
    assert not calls


def test_download_is_used_when_no_local_copy(monkeypatch, tmp_path):
    downloaded = tmp_path / "cache" / "file.h5"
    monkeypatch.setattr(weights_module, "weights_dirs", lambda: [tmp_path / "empty"])
    monkeypatch.setattr(keras.utils, "get_file", lambda *args, **kwargs: str(downloaded))
    info = resolve_weights_file("thing", "file.h5", "https://example.invalid/file.h5")
    assert (info.used, info.source, info.path) == ("imagenet", "download", str(downloaded))


def test_damaged_local_file_is_reported(offline):
    folder, _ = offline
    (folder / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsUnavailableError, match="Could not load ImageNet weights for 'vgg16' from"):
        build_backbone("vgg16", (32, 32, 3))


def test_mobilenet_v2_file_names_follow_keras():
    spec = get_backbone_spec("mobilenet_v2")
    assert spec.weights_file_for((96, 96, 3)) == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    assert spec.weights_file_for((100, 100, 3)).endswith("_1.0_224_no_top.h5")
    assert spec.weights_file_for((96, 128, 3)).endswith("_1.0_224_no_top.h5")
    assert spec.weights_url_for((96, 96, 3)) == (
        "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    )
    assert get_backbone_spec("vgg16").weights_url_for((416, 416, 3)) == (
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )


def test_mobilenet_v2_224_file_stands_in_at_other_sizes(offline):
    folder, calls = offline
    (folder / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5").write_bytes(b"x")
    info = resolve_backbone_weights("mobilenet_v2", (96, 96, 3))
    assert info.source == "local" and info.path.endswith("_1.0_224_no_top.h5")
    assert not calls
    from medcnn.models.backbones import weights_used

    assert weights_used(["mobilenet_v2"], (96, 96, 3)) == {"mobilenet_v2": "imagenet"}


@pytest.mark.skipif(not STAGED_MOBILENET.is_file(), reason="staged MobileNetV2 weights not found in ../shared/weights")
def test_staged_mobilenet_v2_loads_at_96_pixels(monkeypatch):
    import h5py

    monkeypatch.setattr(weights_module, "weights_dirs", lambda: [STAGED_MOBILENET.parent])
    backbone, weights_used = build_backbone("mobilenet_v2", (96, 96, 3), include_preprocessing=True)
    assert weights_used == "imagenet"
    assert backbone.weights_info.path == str(STAGED_MOBILENET)
    assert backbone.output.shape == (None, 3, 3, 1280)
    with h5py.File(STAGED_MOBILENET, "r") as weights_file:
        expected = weights_file["Conv1"]["Conv1"]["kernel"][()]
        expected_mean = weights_file["block_16_project_BN"]["block_16_project_BN"]["moving_mean"][()]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(backbone.get_layer("Conv1").kernel), expected)
    bn = backbone.get_layer("block_16_project_BN")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn.moving_mean), expected_mean)


def test_efficientnet_file_load_equals_keras_imagenet_path(monkeypatch, tmp_path):
    """weights="imagenet" adds a Rescaling that a file path skips; the loaded model must compute the same."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format
    from keras.src.utils import file_utils

    keras.utils.set_random_seed(0)
    ours, _ = build_backbone("efficientnet_b0", (32, 32, 3), weights=None)
    normalization = next(layer for layer in ours.layers if isinstance(layer, keras.layers.Normalization))
    normalization.adapt_mean.assign([120.0, 115.0, 100.0])
    normalization.adapt_variance.assign([0.229, 0.224, 0.225])  # the original file's "variance" holds the std
    path = tmp_path / "efficientnetb0_notop.h5"
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, ours)

    monkeypatch.setattr(file_utils, "get_file", lambda *args, **kwargs: str(path))
    reference = keras.applications.EfficientNetB0(include_top=False, weights="imagenet", input_shape=(32, 32, 3))
    backbones_module._load_imagenet_file(get_backbone_spec("efficientnet_b0"), ours, str(path))
    images = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(images)), keras.ops.convert_to_numpy(reference(images)), rtol=1e-4, atol=1e-4
    )


def test_resized_input_resizes_to_the_inner_models_size_and_keeps_its_transfer_info():
    from medcnn.models.transfer import resized_input

    inner = transfer_model("mobilenet_v2", kth_head(units=8), (32, 32, 3), weights=None)
    outer = resized_input(inner, (16, 8, 3))
    assert outer.input_shape == (None, 16, 8, 3) and outer.output_shape == inner.output_shape
    assert outer.get_layer("to_backbone_size").output.shape[1:3] == (32, 32)
    assert outer.transfer_info == inner.transfer_info and outer.name == f"{inner.name}_from_16"
