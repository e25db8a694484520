import numpy as np
import pytest

import keras

from medcnn.models.scratch import allgray_cnn, gap_in_place_of_flatten, position_cnn


def test_published_model_shapes_and_parameter_count():
    model = allgray_cnn()
    assert model.input_shape == (None, 100, 100, 1)
    assert model.output_shape == (None, 4)
    # conv 1,664 + 51,232 + 36,992; dense 10*10*128*128 + 128; output 516 ('valid' padding)
    assert model.count_params() == 1664 + 51232 + 36992 + (12800 * 128 + 128) + 516
    assert [layer.name for layer in model.layers if "conv" in layer.name] == ["conv1", "conv2", "conv3"]


@pytest.mark.parametrize("conv_layers, last_filters", [(1, 64), (2, 32), (4, 128)])
def test_conv_layers_variation(conv_layers, last_filters):
    model = allgray_cnn(conv_layers=conv_layers)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == conv_layers
    assert convs[-1].filters == last_filters


def test_conv_layers_out_of_range():
    with pytest.raises(ValueError, match="`conv_layers` must be between 1 and 4"):
        allgray_cnn(conv_layers=5)


def test_batch_norm_variant_has_one_bn_per_conv():
    model = allgray_cnn(batch_norm=True)
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 3


def test_batch_norm_momentum_defaults_to_0_9():
    """Keras' 0.99 leaves validation (inference mode) behind training for hundreds of steps (see test_blocks)."""
    from medcnn.models.scratch import an2dl_residual_cnn

    def momenta(model):
        found = model._flatten_layers()
        return {layer.momentum for layer in found if isinstance(layer, keras.layers.BatchNormalization)}

    assert momenta(allgray_cnn(batch_norm=True)) == {0.9}
    assert momenta(allgray_cnn(batch_norm=True, batch_norm_momentum=0.99)) == {0.99}
    assert momenta(position_cnn((16, 16, 1), filters=(4,))) == {0.9}
    small = {"input_shape": (32, 32, 3), "filters": (8,), "dense_units": (8,)}
    assert momenta(an2dl_residual_cnn(**small)) == {0.9}
    assert momenta(an2dl_residual_cnn(**small, batch_norm_momentum=0.99)) == {0.99}


def test_learns_an_easy_task():
    """Bright vs dark images: a few epochs must separate them."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 128)
    images = (rng.random((128, 28, 28, 1)) * 0.3 + labels[:, None, None, None] * 0.6).astype("float32")
    keras.utils.set_random_seed(0)
    model = allgray_cnn(input_shape=(28, 28, 1), num_classes=2, conv_layers=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=4, batch_size=32, verbose=0)
    assert model.evaluate(images, labels, verbose=0)[1] > 0.9


def _where_not_what(count=192, size=24, seed=0):
    """White images with one dark square each: in the left half for class 0, the right half for class 1. Both
    classes hold the same object, so only its position tells them apart."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    images = np.ones((count, size, size, 1), "float32")
    for image, label in zip(images, labels):
        top, left = rng.integers(0, size - 6), rng.integers(0, size // 2 - 6) + label * size // 2
        image[top : top + 6, left : left + 6] = 0.1
    return images, labels


def test_position_cnn_shapes_and_inversion():
    model = position_cnn((32, 32, 1), 2, filters=(4, 8))
    assert model.output_shape == (None, 2) and model.get_layer("flatten").output.shape[1] == 8 * 8 * 8
    pooling = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
    assert not any(isinstance(layer, pooling) for layer in model.layers)
    np.testing.assert_allclose(model.get_layer("invert")(np.array([[0.0, 0.25, 1.0]])), [[1.0, 0.75, 0.0]])
    with pytest.raises(ValueError, match="filters"):
        position_cnn((32, 32, 1), filters=())


def test_gap_in_place_of_flatten_keeps_the_trunk_and_drops_position():
    flat = position_cnn((32, 32, 1), 2, filters=(4, 8), name="cnn")
    gap = gap_in_place_of_flatten(flat, 2, dropout=0.25)
    assert gap.name == "cnn_gap" and gap.output_shape == (None, 2)
    assert gap.get_layer("conv2") is flat.get_layer("conv2")  # the same trunk, shared
    assert gap.get_layer("dropout_gap").rate == 0.25 and "flatten" not in [layer.name for layer in gap.layers]
    assert gap.get_layer("probabilities_gap").kernel.shape == (8, 2)  # one weight per channel, none per place


def test_position_cnn_learns_where_an_object_is():
    """A task only position solves: the same dark square on the left (class 0) or right (class 1)."""
    images, labels = _where_not_what()
    keras.utils.set_random_seed(0)
    model = position_cnn((24, 24, 1), 2, filters=(8, 16))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images[:128], labels[:128], epochs=8, batch_size=16, verbose=0)
    assert model.evaluate(images[128:], labels[128:], verbose=0)[1] > 0.9


def test_allgray_cnn_centres_its_inputs_inside_the_model():
    model = allgray_cnn((20, 20, 1), 4, conv_layers=1, centre=0.8)
    centre = model.get_layer("centre")
    assert float(keras.ops.convert_to_numpy(centre(np.full((1, 2, 2, 1), 0.8, "float32"))).max()) == pytest.approx(0.0)
    assert "centre" not in [layer.name for layer in allgray_cnn((20, 20, 1), 4, conv_layers=1).layers]
