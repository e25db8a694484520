"""Export a trained run as one `model.keras` that classifies raw image files (`python -m medcnn predict`).

The saved model holds its preprocessing (resize, colour mode, scaling) and its class names. Size and colour mode
come from the model's input; the scaling from the range the model was trained on (`input_max`): 1.0 for a CNN
trained on [0, 1] inputs, 255.0 for a transfer model whose backbone preprocessing sits inside it (read from
`model.transfer_info` when the model was built by `medcnn.models.transfer.transfer_model`).

`weights_file` saves a run's trained weights alone, when called (e.g. a stage-one head that a fine-tuning run loads).
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


def recorded_weights(run, cache, precision=None):
    """The weights file of `run` in `cache` when they were trained as the run says, else None.

    Both the record and the weights' own info file (`RunCache.weights_info_path`, written with the weights) must
    carry the run's fingerprint and the current precision (`precision`; None: Keras' dtype policy now): records are
    committed and weights are not, so a record that matches says nothing of local weights trained under other
    settings.
    """
    import json

    import keras

    precision = precision or keras.config.dtype_policy().name
    weights, record = cache.weights_for(run.key, run.fingerprint, precision), cache.record_path(run.key)
    if weights is None or not record.is_file():
        return None
    recorded = json.loads(record.read_text())
    # records written before the precision was recorded ran in float32
    if recorded.get("fingerprint") != run.fingerprint or recorded.get("precision", "float32") != precision:
        return None
    return weights


def required_weights(run, cache, what="The weights", who="that run", class_names=None, log=print):
    """`run`'s weights file in `cache`, saved under its fingerprint and the current precision, e.g. the stage-one head
    a stage-two run starts from.

    Missing (weights are not committed, so a fresh checkout has records without them): with `class_names`, the run
    is trained again in `<cache>/cache/retrain/` (`restored_weights`, logged, and listed by `restored_since`), so
    that what starts from it can be built; its own stage one, if any, is restored first in the same way when its
    build asks for it. Without `class_names`, a FileNotFoundError says `what` is missing and how `who` trains again.
    """
    import keras

    precision = keras.config.dtype_policy().name
    weights = cache.weights_for(run.key, run.fingerprint, precision)
    if weights is not None:
        return weights
    if class_names is not None:
        return restored_weights(run, None, None, class_names, cache, log=log)
    raise FileNotFoundError(
        f"{what} {cache.weights_path(run.key)} are missing or were not trained as '{run.label}' seed {run.seed} "
        f"is now (fingerprint {run.fingerprint}, {precision}); weights are not committed. Run the notebook with "
        f"REUSE_RUNS=False so that {who} trains again."
    )


def retrain_cache(cache):
    """The `RunCache` in `<cache>/cache/retrain/` where runs are trained again to restore their missing weights
    (never reused as records: a record there without weights is no use)."""
    return RunCache(cache.out_dir / "cache" / "retrain", reuse=False)


def restored_since(cache, started):
    """["<run> (seed N)", ...]: the runs of `cache` trained again since `started` (a `time.time()`) to restore their
    missing weights (`restored_weights`), for the run's results to say so."""
    import json

    folder = retrain_cache(cache).out_dir / "runs"
    paths = sorted(folder.glob("*.json"), key=lambda path: path.stat().st_mtime) if folder.is_dir() else []
    records = [json.loads(path.read_text()) for path in paths if path.stat().st_mtime >= started]
    return [f"{record['configuration']} (seed {record['seed']})" for record in records]


def restored_weights(run, x, labels, class_names, cache, retrain_missing=True, log=print):
    """`run`'s weights file, recorded in `cache` or in `retrain_cache(cache)` (`recorded_weights`), else the run
    trained again in the latter (`train_and_evaluate`, same seed and spec; logged with how it scored), unless
    `retrain_missing` is False: then a FileNotFoundError says which weights are missing and how to get them."""
    retrain = retrain_cache(cache)
    weights = recorded_weights(run, cache) or recorded_weights(run, retrain)
    if weights is not None:
        return weights
    missing = cache.weights_path(run.key)
    if not retrain_missing:
        raise FileNotFoundError(
            f"The weights of '{run.label}' seed {run.seed} are not here ({missing}): run records are committed, "
            "weights are not. Pass `retrain_missing=True` (or run the notebook with REUSE_RUNS=False) to train "
            "that run again."
        )
    log(
        f"The weights of '{run.label}' seed {run.seed} ({missing.name}) are missing or were trained under other "
        "settings (run records are committed, weights are not): training that run again to restore them."
    )
    again = train_and_evaluate(run, x, labels, class_names, retrain, verbose=0, log=log)[0]
    log(f"retrained: val {again.get('val_accuracy', float('nan')):.3f}, "
        f"test {again.get('test_accuracy', float('nan')):.3f}")  # fmt: skip
    return retrain.weights_path(run.key)


def trained_model(run, x, labels, class_names, cache, retrain_missing=True, log=print, build=None):
    """`run`'s model with the weights it was trained to: the one policy behind every export and every reuse of a
    trained model.

    1. The weights are looked for in `cache`, then in `<cache>/cache/retrain/` (where an earlier call trained the
       run again); either counts only when the record beside it and the weights' own info file carry
       `run.fingerprint` and the current precision (`recorded_weights`), so weights left by a run under other
       settings are never taken for this one.
    2. Missing (records are committed, weights are not), the run is trained again in `<cache>/cache/retrain/`
       (`train_and_evaluate`, same seed and spec; the log says so and how it scored), unless `retrain_missing` is
       False: then `FileNotFoundError` says which weights are missing and how to get them.
    3. The model is built under `run.seed` (by `build()`, default `run.build_model`) and the weights loaded.

    Args:
        run: an `experiment.Run`; `x`, `labels`, `class_names`: what it trains on, as for `train_and_evaluate`.
        cache: the `RunCache` the run was recorded in.
        retrain_missing: train the run again when its weights are missing (True), or raise (False).
        log: where the retraining lines go.
        build: `() -> model` with the run's architecture, for a study that rebuilds without `run.build_model`
            (e.g. with no stage-one head weights to load first); None: `run.build_model`.

    Returns:
        The model with the run's trained weights (compiled as `build` returns it).
    """
    import warnings

    import keras

    weights = restored_weights(run, x, labels, class_names, cache, retrain_missing, log)
    keras.utils.set_random_seed(run.seed)
    model = (build or run.build_model)()
    with warnings.catch_warnings():  # the weights file also holds the optimiser's state, which is not needed here
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(weights)
    return model


def export_run(
    run, x, labels, class_names, cache, path, input_max=None, retrain_missing=True, log=print, preprocessing=None
):
    """Export `run`'s model with its recorded weights (`trained_model`'s policy); None when the weights are missing
    and `retrain_missing` is False (the log says why)."""
    try:
        model = trained_model(run, x, labels, class_names, cache, retrain_missing, log)
    except FileNotFoundError as error:
        if retrain_missing:
            raise
        log(f"No model exported: {error}")
        return None
    return export_model(model, class_names, path, input_max, preprocessing)


def weights_file(run, class_names, cache, folder, build=None, log=print):
    """`() -> path`: `run`'s trained weights (`trained_model`'s policy: recorded, or the run trained again), saved
    alone when called as `<out_dir>/cache/<folder>/<run key>.weights.h5`, e.g. the stage-one head a fine-tuning
    run loads before it trains. `build`: as `trained_model` takes it."""

    def resolve():
        import keras

        path = cache.out_dir / "cache" / folder / f"{run.key}.weights.h5"
        model = trained_model(run, None, None, class_names, cache, log=log, build=build)
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save_weights(path)
        keras.backend.clear_session()
        return path

    return resolve
