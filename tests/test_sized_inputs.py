"""Inputs per input size: images at each size once, features keyed and lazy (`medcnn.experiment.sized_inputs`)."""

import numpy as np

from medcnn import experiment
from medcnn.experiment.runs import array_digest
from medcnn.experiment.sized_inputs import preprocessed_at, sized_inputs


def test_preprocessed_at_resizes_to_the_color_mode_and_scale_asked():
    images = np.full((3, 20, 30, 3), 255, np.uint8)
    scaled = preprocessed_at(images, (10, 12), "grayscale", 1 / 255)
    assert scaled.shape == (3, 10, 12, 1) and scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, 1.0, atol=1e-3)  # grayscale weights sum to 0.9999
    kept = preprocessed_at(images, (10, 12), "rgb", 1.0)
    assert kept.shape == (3, 10, 12, 3)
    np.testing.assert_allclose(kept, 255.0, atol=1e-2)


def test_sized_inputs_make_each_size_once_and_features_only_where_asked():
    labels, made = np.array([0, 1, 0, 1]), []

    def images_of(size):
        made.append(size)
        return np.zeros((4, *size, 1), "float32")

    spec = experiment.FeatureSpec("mobilenet_v2", (32, 32, 1), allow_random=True, input_max=1.0, outputs=("map",))
    wanted = [((32, 32), ("mobilenet_v2", "map"), spec), ((16, 16), None, None), ([32, 32], None, None)]
    inputs = sized_inputs(images_of, labels, wanted, None, log=lambda *a: None)
    assert made == [(32, 32), (16, 16)] and set(inputs["images"]) == {(32, 32), (16, 16)}
    assert inputs["specs"] == {("mobilenet_v2", "map"): spec} and list(inputs["features"]) == [("mobilenet_v2", "map")]
    features = inputs["features"][("mobilenet_v2", "map")]  # lazy: nothing extracted until a run reads it
    assert isinstance(features, experiment.LazyInputs)
    assert features.digest["output"] == "map" and features.digest["features"] == spec.key(
        array_digest(inputs["images"][(32, 32)])
    )
