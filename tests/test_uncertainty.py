"""Monte Carlo dropout: the fast path agrees with full passes, BatchNorm stays in inference, vote and calibration."""

import numpy as np
import pandas as pd
import pytest

import keras
from keras import layers

from medcnn import uncertainty
from medcnn.models.heads import kth_head as library_kth_head
from medcnn.models.transfer import transfer_model as library_transfer_model
from medcnn.preprocessing import ImagePreprocessing, with_preprocessing
from medcnn.uncertainty import MCDropout, MCDropoutPredictor

SHAPE = (8, 8, 3)


def backbone(dropout=0.0):
    inputs = keras.Input(SHAPE)
    x = layers.Conv2D(6, 3, activation="relu")(inputs)
    x = layers.BatchNormalization()(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, layers.Conv2D(8, 3, activation="relu")(x), name="backbone")


def kth_head(feature_shape, rate=0.5, outputs=3):
    """GAP -> BN -> Dropout -> Dense -> Dropout -> Dense, as in kth."""
    inputs = keras.Input(feature_shape)
    x = layers.GlobalAveragePooling2D()(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(rate)(x)
    x = layers.Dense(16, activation="relu")(x)
    x = layers.Dropout(rate)(x)
    return keras.Model(
        inputs, layers.Dense(outputs, activation="softmax" if outputs > 1 else "sigmoid")(x), name="head"
    )


def branching_head(feature_shape, rate=0.5):
    """Not a chain: average and max pooling side by side."""
    inputs = keras.Input(feature_shape)
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(inputs), layers.GlobalMaxPooling2D()(inputs)])
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(rate)(x)
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(x), name="head")


def transfer_model(rate=0.5, backbone_dropout=0.0, head=kth_head, **head_kwargs):
    keras.utils.set_random_seed(1)
    body = backbone(backbone_dropout)
    top = head(body.output.shape[1:], rate=rate, **head_kwargs)
    image = keras.Input(SHAPE)
    model = keras.Model(image, top(body(layers.Rescaling(1 / 255)(image))))
    rng = np.random.default_rng(0)
    for layer in list(body.layers) + list(top.layers):  # statistics that batch statistics would not reproduce
        if isinstance(layer, layers.BatchNormalization):
            size = layer.moving_mean.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 2, size), rng.normal(0, 0.5, size), rng.normal(0, 1, size), rng.uniform(0.5, 2, size)]
            )
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (6,) + SHAPE).astype("float32")


def test_mc_dropout_layer_is_active_at_inference_and_seeded():
    inputs = np.ones((4, 50), "float32")
    first = keras.ops.convert_to_numpy(MCDropout(0.5, seed=3)(inputs, training=False))
    assert set(np.unique(first)) == {0.0, 2.0} and 0.3 < (first == 0).mean() < 0.7
    np.testing.assert_array_equal(first, keras.ops.convert_to_numpy(MCDropout(0.5, seed=3)(inputs)))
    assert not np.array_equal(first, keras.ops.convert_to_numpy(MCDropout(0.5, seed=4)(inputs)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(MCDropout(0.0)(inputs)), inputs)
    layer = MCDropout(0.25, noise_shape=(None, 1), seed=7)
    restored = MCDropout.from_config(layer.get_config())
    assert (restored.rate, restored.noise_shape, restored.seed) == (0.25, (None, 1), 7)
    with pytest.raises(ValueError, match="Received: rate=1.5"):
        MCDropout(1.5)


def test_fast_path_matches_full_passes_statistically(images):
    model = transfer_model(rate=0.5)
    passes = 400
    fast, plan = uncertainty.mc_dropout_predict(model, images, passes=passes, seed=0, return_plan=True)
    naive = uncertainty.mc_dropout_predict_naive(model, images, passes=passes, seed=1)
    assert "head's start (GlobalAveragePooling2D, BatchNormalization) once" in plan
    assert fast.shape == naive.shape == (passes, len(images), 3)
    np.testing.assert_allclose(fast.sum(axis=-1), 1.0, rtol=1e-5)
    assert fast.std(axis=0).mean() > 0.01  # dropout is really on
    # Two independent Monte Carlo estimates of the same mean: their difference within 5 standard errors.
    standard_error = np.sqrt((fast.var(axis=0) + naive.var(axis=0)) / passes)
    assert np.all(np.abs(fast.mean(axis=0) - naive.mean(axis=0)) < 5 * standard_error + 1e-6)
    # The same check catches the classic mistake, model(x, training=True), which puts BatchNorm on batch statistics.
    wrong = np.stack([keras.ops.convert_to_numpy(model(images, training=True)) for _ in range(100)])
    wrong_error = np.sqrt(wrong.var(axis=0) / 100 + naive.var(axis=0) / passes)
    assert np.any(np.abs(wrong.mean(axis=0) - naive.mean(axis=0)) > 5 * wrong_error)


@pytest.mark.parametrize("head", [kth_head, branching_head], ids=["chain_head", "branching_head"])
def test_batch_norm_stays_in_inference_mode(images, head):
    model = transfer_model(rate=0.0, head=head)
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    fast, plan = uncertainty.mc_dropout_predict(model, images, passes=3, return_plan=True)
    naive = uncertainty.mc_dropout_predict_naive(model, images, passes=3)
    assert ("not a chain" in plan) == (head is branching_head)
    for run in (fast, naive):
        np.testing.assert_allclose(run, np.broadcast_to(expected, run.shape), rtol=1e-4, atol=1e-5)
    # A predictor keeps its MC copies: they must follow the model's current weights.
    predictors = [MCDropoutPredictor(model), MCDropoutPredictor(model, fast=False)]
    assert predictors[0].reason is None and predictors[0].description == plan
    assert predictors[1].description == "full passes: asked for (fast=False)"
    dense = model.get_layer("head").layers[-1]
    dense.set_weights([weights * -2 for weights in dense.get_weights()])
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    for predictor in predictors:
        run = predictor.predict(images, passes=2)
        np.testing.assert_allclose(run, np.broadcast_to(expected, run.shape), rtol=1e-4, atol=1e-5)
    # Batch statistics would give other outputs (last: a training call also moves the moving statistics).
    assert not np.allclose(expected, keras.ops.convert_to_numpy(model(images, training=True)), atol=1e-3)


def test_branching_head_fast_path_matches_full_passes(images):
    model = transfer_model(rate=0.5, head=branching_head)
    fast = uncertainty.mc_dropout_predict(model, images, passes=300, seed=0)
    naive = uncertainty.mc_dropout_predict_naive(model, images, passes=300, seed=1)
    standard_error = np.sqrt((fast.var(axis=0) + naive.var(axis=0)) / 300)
    assert np.all(np.abs(fast.mean(axis=0) - naive.mean(axis=0)) < 5 * standard_error + 1e-6)


def test_dropout_inside_the_backbone_falls_back_to_full_passes_and_says_why(images):
    model = transfer_model(rate=0.5, backbone_dropout=0.3)
    probabilities, plan = uncertainty.mc_dropout_predict(model, images, passes=4, return_plan=True)
    assert plan == (
        "full passes: dropout sits before the head (in the backbone or the layers before it): every pass must run it"
    )
    assert probabilities.shape == (4, len(images), 3)
    assert np.any(probabilities.std(axis=0) > 1e-3)  # the backbone's dropout is on in full passes
    plain = keras.Sequential([keras.Input((4,)), layers.Dropout(0.5), layers.Dense(2, activation="softmax")])
    assert uncertainty.fast_path_plan(plain) is None
    assert MCDropoutPredictor(plain).reason == "the model has no nested 'backbone' and 'head' models"


@pytest.fixture(scope="module")
def wrapped_transfer_path(tmp_path_factory):
    """A library transfer model (MobileNetV2, random weights) with kth's head, wrapped with its preprocessing
    and class names, saved: what a kth notebook exports."""
    keras.utils.set_random_seed(2)
    core = library_transfer_model("mobilenet_v2", library_kth_head(num_classes=3, units=16), (32, 32, 3), weights=None)
    for layer in uncertainty.all_layers(core.get_layer("backbone")):  # statistics that keep features alive
        if isinstance(layer, layers.BatchNormalization):
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 0.05, "float32"))
    model = with_preprocessing(core, ImagePreprocessing((32, 32), "rgb", scale=1.0), ["a", "b", "c"])
    path = tmp_path_factory.mktemp("mc") / "wrapped.keras"
    model.save(path)
    return path


def test_reloaded_wrapped_transfer_model_keeps_the_fast_path(wrapped_transfer_path):
    model = keras.saving.load_model(wrapped_transfer_path)
    images = np.random.default_rng(3).uniform(0, 255, (4, 40, 36, 3)).astype("float32")  # any size: resized inside
    predictor = MCDropoutPredictor(model)
    assert predictor.reason is None
    assert predictor.description == (
        "backbone and the head's start (GlobalAveragePooling2D, BatchNormalization) once; the other 4 head layers "
        "for all passes; then ClassNames per pass"
    )
    fast = predictor.predict(images, passes=400, seed=0)
    naive = MCDropoutPredictor(model, fast=False).predict(images, passes=100, seed=1)  # full passes cost more
    assert fast.shape == (400, len(images), 3) and naive.shape == (100, len(images), 3)
    assert fast.std(axis=0).mean() > 0.01  # dropout is really on
    standard_error = np.sqrt(fast.var(axis=0) / 400 + naive.var(axis=0) / 100)
    assert np.all(np.abs(fast.mean(axis=0) - naive.mean(axis=0)) < 5 * standard_error + 1e-6)
    # Without dropout both paths are the model itself, exactly.
    deterministic = np.asarray(model.predict_on_batch(images))
    assert not np.allclose(deterministic, deterministic[:1], atol=1e-3)  # the images get different outputs
    for layer in uncertainty.all_layers(model):
        if isinstance(layer, layers.Dropout):
            layer.rate = 0.0
    for path in (MCDropoutPredictor(model), MCDropoutPredictor(model, fast=False)):
        run = path.predict(images, passes=2)
        np.testing.assert_allclose(run, np.broadcast_to(deterministic, run.shape), rtol=1e-4, atol=1e-5)
    # A second predictor on the same model finds the same path: building one leaves the model's graph as it was.
    assert MCDropoutPredictor(model).description == predictor.description


def test_same_seed_same_passes_and_sigmoid_output(images):
    model = transfer_model(rate=0.5, outputs=1)
    first = uncertainty.mc_dropout_predict(model, images, passes=5, seed=2, batch_size=4)
    assert first.shape == (5, len(images), 2)  # [1 - p, p]
    np.testing.assert_allclose(first.sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(first, uncertainty.mc_dropout_predict(model, images, passes=5, seed=2, batch_size=4))
    assert not np.array_equal(first, uncertainty.mc_dropout_predict(model, images, passes=5, seed=3, batch_size=4))


def test_unsupported_arguments_and_layers(images):
    model = transfer_model()
    with pytest.raises(ValueError, match="Received: passes=0"):
        uncertainty.mc_dropout_predict(model, images, passes=0)
    noisy = keras.Sequential([keras.Input((4,)), layers.GaussianDropout(0.2), layers.Dense(2)])
    with pytest.raises(ValueError, match="handles `layers.Dropout` only"):
        uncertainty.mc_dropout_predict(noisy, np.zeros((2, 4), "float32"), passes=2)


# Five passes over two images, three classes: votes [0, 0, 0, 1, 1] and [2, 2, 2, 2, 2].
HAND_MADE = np.array(
    [
        [[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]],
        [[0.7, 0.2, 0.1], [0.2, 0.1, 0.7]],
        [[0.5, 0.4, 0.1], [0.0, 0.1, 0.9]],
        [[0.3, 0.6, 0.1], [0.3, 0.2, 0.5]],
        [[0.2, 0.7, 0.1], [0.1, 0.3, 0.6]],
    ]
)


def test_summarise_passes_votes_and_confidence():
    summary = uncertainty.summarise_passes(HAND_MADE, threshold=0.8, class_names=["a", "b", "c"])
    assert list(summary["vote"]) == [0, 2]
    np.testing.assert_allclose(summary["confidence"], [0.6, 1.0])
    np.testing.assert_allclose(summary["mean_probability"], [0.46, 0.7])
    assert list(summary["mean_label"]) == [0, 2]
    assert list(summary["refer_to_human"]) == [True, False]
    np.testing.assert_allclose(summary[["mean_a", "mean_b", "mean_c"]].to_numpy(), HAND_MADE.mean(axis=0))
    assert not uncertainty.summarise_passes(HAND_MADE, threshold=0.6)["refer_to_human"].any()


def test_summarise_passes_breaks_ties_by_mean_probability_and_takes_sigmoids():
    tie = np.array(
        [[[0.6, 0.4]], [[0.55, 0.45]], [[0.1, 0.9]], [[0.2, 0.8]]]
    )  # 2 votes each; class 1 has the higher mean
    summary = uncertainty.summarise_passes(tie)
    assert summary.loc[0, "vote"] == 1 and summary.loc[0, "confidence"] == 0.5
    sigmoid = uncertainty.summarise_passes(np.array([[[0.9]], [[0.8]], [[0.3]]]))
    assert sigmoid.loc[0, "vote"] == 1 and np.isclose(sigmoid.loc[0, "confidence"], 2 / 3)
    np.testing.assert_allclose(sigmoid.loc[0, "mean_probability"], 2 / 3)
    with pytest.raises(ValueError, match="Received: threshold=1.5"):
        uncertainty.summarise_passes(tie, threshold=1.5)


def test_calibration_error_and_reliability_curve():
    # Confidence 0.9 (bin 8: right 3 of 4) and 0.6 (bin 5: right 1 of 2), computed by hand.
    probabilities = np.array([[0.9, 0.1]] * 4 + [[0.4, 0.6]] * 2)
    labels = np.array([0, 0, 0, 1, 1, 0])
    curve = uncertainty.reliability_curve(probabilities, labels, bins=10)
    assert len(curve) == 10 and curve["count"].sum() == 6
    assert curve.loc[8, "count"] == 4 and np.isclose(curve.loc[8, "accuracy"], 0.75)
    assert curve.loc[5, "count"] == 2 and np.isclose(curve.loc[5, "mean_confidence"], 0.6)
    assert np.isnan(curve.loc[0, "accuracy"])
    expected = 4 / 6 * abs(0.75 - 0.9) + 2 / 6 * abs(0.5 - 0.6)
    assert np.isclose(uncertainty.expected_calibration_error(probabilities, labels), expected)
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert uncertainty.expected_calibration_error(perfect[None].repeat(3, axis=0), [0, 1]) == 0.0
    with pytest.raises(ValueError, match="Received: probabilities.shape"):
        uncertainty.expected_calibration_error(probabilities, labels[:2])


def test_wrong_cases_table():
    summary = uncertainty.summarise_passes(HAND_MADE)
    table = uncertainty.wrong_cases(summary, [1, 2], ["a", "b", "c"], paths=["x/one.png", "x/two.png"])
    expected = pd.DataFrame(
        {
            "image": ["x/one.png"],
            "true": ["b"],
            "predicted": ["a"],
            "mean_softmax": [0.46],
            "confidence": [0.6],
            "refer_to_human": [True],
        }
    )
    pd.testing.assert_frame_equal(table, expected)
    assert uncertainty.wrong_cases(summary, [0, 2], ["a", "b", "c"]).empty
    assert list(uncertainty.wrong_cases(summary, [2, 2], ["a", "b", "c"])["image"]) == [0]


def small_cnn(rate=0.5):
    """A chain like kth's small CNN: conv, BatchNorm (set statistics), pooling, Flatten, Dropout, softmax."""
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [keras.Input(SHAPE), layers.Conv2D(4, 3), layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(2),
         layers.Flatten(), layers.Dropout(rate), layers.Dense(3, activation="softmax")]
    )  # fmt: skip
    norm = model.layers[1]
    norm.set_weights([np.full(4, 1.5), np.full(4, 0.2), np.full(4, 30.0), np.full(4, 400.0)])
    return model


def test_chain_model_runs_its_start_once_and_matches_full_passes(images):
    model = small_cnn()
    predictor = MCDropoutPredictor(model)
    assert predictor.reason is None
    assert predictor.description == (
        "the layers before the first dropout (Conv2D, BatchNormalization, ReLU, MaxPooling2D, Flatten) once; "
        "the other 2 layers for all passes"
    )
    fast = predictor.predict(images, passes=400, seed=0)
    naive = uncertainty.mc_dropout_predict_naive(model, images, passes=400, seed=1)
    assert fast.std(axis=0).mean() > 0.01
    standard_error = np.sqrt((fast.var(axis=0) + naive.var(axis=0)) / 400)
    assert np.all(np.abs(fast.mean(axis=0) - naive.mean(axis=0)) < 5 * standard_error + 1e-6)
    # rate 0: the model itself in inference mode (BatchNorm on its moving statistics), and new weights followed
    still = small_cnn(rate=0.0)
    expected = keras.ops.convert_to_numpy(still(images, training=False))
    chain = MCDropoutPredictor(still)
    np.testing.assert_allclose(chain.predict(images, passes=2), np.broadcast_to(expected, (2, *expected.shape)),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    dense = still.layers[-1]
    dense.set_weights([weights * -2 for weights in dense.get_weights()])
    expected = keras.ops.convert_to_numpy(still(images, training=False))
    np.testing.assert_allclose(chain.predict(images, passes=1)[0], expected, rtol=1e-4, atol=1e-5)
    assert MCDropoutPredictor(model).description == predictor.description  # the model's graph is left as it was


def test_referral_summary_counts_the_referred_and_scores_the_rest():
    # 10 passes over 6 images; image i gets votes[i] passes for class 1 (probability 0.9) and the rest for class 0.
    votes = [10, 9, 6, 0, 3, 10]
    passes = np.zeros((10, 6, 2))
    for image, count in enumerate(votes):
        p = np.r_[np.full(count, 0.9), np.full(10 - count, 0.1)]
        passes[:, image] = np.stack([1 - p, p], axis=1)
    labels = np.array([1, 1, 1, 0, 0, 0])
    summary = uncertainty.referral_summary(passes, labels, threshold=0.8)
    # votes: 1 (conf 1.0), 1 (0.9), 1 (0.6, referred), 0 (1.0), 0 (0.7, referred), 1 (1.0, wrong)
    assert (summary["passes"], summary["images"], summary["referred"]) == (10, 6, 2)
    assert summary["accuracy_all"] == pytest.approx(5 / 6) and summary["accuracy_retained"] == pytest.approx(3 / 4)
    assert summary["recall_all"] == 1.0 and summary["recall_retained"] == 1.0
    assert summary["mean_confidence"] == pytest.approx((1 + 0.9 + 0.6 + 1 + 0.7 + 1) / 6)
    assert 0 <= summary["ece"] <= 1
    everything = uncertainty.referral_summary(passes, labels, threshold=1.0)
    assert everything["referred"] == 3 and np.isfinite(everything["accuracy_retained"])
    assert np.isnan(uncertainty.referral_summary(passes[:, 2:3], labels[2:3])["accuracy_retained"])
    table = uncertainty.referral_table({("honest", "a"): summary, ("honest", "b"): everything}, ["protocol", "model"])
    assert table.index.names == ["protocol", "model"] and table.loc[("honest", "b"), "referred"] == 3
    with pytest.raises(ValueError, match="`labels` has 2 entries"):
        uncertainty.referral_summary(passes, labels[:2])


def test_chain_of_nested_models_runs_the_model_before_the_head_once(images):
    """A tail of backbone blocks (a model) then the head (a model), as kth's last blocks on cached stem features."""
    keras.utils.set_random_seed(5)
    body = backbone()
    tail = keras.Model(body.input, body.output, name="backbone_tail")  # not "backbone": no transfer model
    inputs = keras.Input(SHAPE)
    model = keras.Model(inputs, kth_head(tail.output.shape[1:])(tail(inputs)))
    predictor = MCDropoutPredictor(model)
    assert (
        predictor.description
        == "the layers before the first dropout (Functional) once; the other 1 layers for all passes"
    )
    fast = predictor.predict(images, passes=300, seed=0)
    naive = uncertainty.mc_dropout_predict_naive(model, images, passes=300, seed=1)
    standard_error = np.sqrt((fast.var(axis=0) + naive.var(axis=0)) / 300)
    assert fast.std(axis=0).mean() > 0.01
    assert np.all(np.abs(fast.mean(axis=0) - naive.mean(axis=0)) < 5 * standard_error + 1e-6)
