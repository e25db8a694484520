"""Export a trained run as one `model.keras` that classifies raw image files (`python -m medcnn predict`).

The saved model holds its preprocessing (resize, colour mode, scaling) and its class names. Size and colour mode
come from the model's input; the scaling from the range the model was trained on (`input_max`): 1.0 for a CNN
trained on [0, 1] inputs, 255.0 for a transfer model whose backbone preprocessing sits inside it (read from
`model.transfer_info` when the model was built by `medcnn.models.transfer.transfer_model`).
"""

from pathlib import Path

from medcnn.experiment.cache import RunCache
from medcnn.experiment.runs import train_and_evaluate


def serving_model(model, class_names, input_max=None, preprocessing=None):
    """`model` behind its preprocessing: raw RGB images of any size in, probabilities out, class names stored.

    `preprocessing`: further `ImagePreprocessing` arguments, e.g. `{"pad_to_aspect_ratio": True, "fill_value": 255.0,
    "invert": True}` for a model trained on padded, inverted crops; None stretches to the input size.
    """
    from medcnn.preprocessing import ImagePreprocessing, with_preprocessing

    if input_max is None:
        input_max = getattr(model, "transfer_info", {}).get("input_max")
    if input_max is None:
        raise ValueError(
            f"Model '{model.name}' does not say which input range it was trained on: pass `input_max=1.0` for "
            "inputs scaled to [0, 1] or `input_max=255.0` for raw pixel values."
        )
    height, width, channels = model.input_shape[1:]
    if channels not in (1, 3) or height is None or width is None:
        raise ValueError(f"Expected a fixed (height, width, 1 or 3) input. Received: input_shape={model.input_shape}")
    preprocessing = ImagePreprocessing(
        (int(height), int(width)),
        color_mode="grayscale" if channels == 1 else "rgb",
        scale=float(input_max) / 255.0,
        name="preprocessing",
        **(preprocessing or {}),
    )
    return with_preprocessing(model, preprocessing, list(class_names), name=f"{model.name}_for_files")


def export_model(model, class_names, path, input_max=None, preprocessing=None):
    """Save `serving_model(model, ...)` to `path` (a `.keras` file); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    serving_model(model, class_names, input_max, preprocessing).save(path)
    return path


def export_run(
    run, x, labels, class_names, cache, path, input_max=None, retrain_missing=True, log=print, preprocessing=None
):
    """Rebuild `run`'s model with its recorded weights and export it; None when the weights are missing.

    Weights are not committed: after a reuse pass over committed records they may be missing. Then, with
    `retrain_missing`, that one run is trained again in `<cache>/cache/retrain/` (the log says so); otherwise
    nothing is exported and the log says why.
    """
    import keras

    weights = cache.weights_path(run.key)
    if not weights.is_file():
        if not retrain_missing:
            log(f"No model exported: the weights of '{run.label}' seed {run.seed} are not here ({weights.name}).")
            return None
        log(f"{weights.name} is missing (run records are committed, weights are not): training that run again.")
        scratch = RunCache(cache.out_dir / "cache" / "retrain", reuse=False)
        again = train_and_evaluate(run, x, labels, class_names, scratch, verbose=0, log=log)[0]
        log(f"retrained: val {again['val_accuracy']:.3f}, test {again.get('test_accuracy', float('nan')):.3f}")
        weights = scratch.weights_path(run.key)
    keras.utils.set_random_seed(run.seed)
    model = run.build_model()
    model.load_weights(weights)
    return export_model(model, class_names, path, input_max, preprocessing)
