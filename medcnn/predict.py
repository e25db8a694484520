"""Classify raw image files with a saved medcnn model (`model.keras` with its preprocessing inside).

Prints one line per image: path, predicted class, its probability. Bad files get the loaders' clear error on
their own line and do not stop the other predictions; the exit status is 1 when any file failed, else 0.
"""

import csv
import sys
from pathlib import Path

import numpy as np

from medcnn.errors import DataError
from medcnn.data.imageio import is_image_file, read_image


def expand_inputs(inputs):
    """Files named directly, plus the image files inside named folders (recursively, sorted, hidden files skipped)."""
    files = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.is_file() and is_image_file(p))
        else:
            files.append(item)
    return files


def load_model(model_path):
    """Load a saved medcnn model and its class names.

    Every medcnn layer is registered first (`medcnn.layers`), so a model holding any of them loads.

    Returns:
        (model, class names).

    Raises:
        DataError: the file is missing, Keras cannot load it, or it carries no class names.
    """
    import keras

    import medcnn.layers  # noqa: F401  (registers every medcnn layer for deserialisation)
    from medcnn.preprocessing import class_names_of

    model_path = Path(model_path)
    if not model_path.is_file():
        raise DataError(
            f"{model_path}: no such model file. Train one first (e.g. `make reproduce-allgray`).", path=model_path
        )
    try:
        model = keras.saving.load_model(model_path)
    except Exception as error:  # Keras raises TypeError, ValueError, OSError, ... for a file it cannot read
        raise DataError(
            f"{model_path}: Keras could not load this model ({type(error).__name__}: {_short_reason(error)}). "
            "Expected a `.keras` file saved by medcnn; a layer from another package must be imported before loading.",
            path=model_path,
        ) from error
    names = class_names_of(model)
    if names is None:
        raise DataError(
            f"{model_path}: the model stores no class names (no ClassNames layer). Save it with "
            "medcnn.preprocessing.with_preprocessing(...).",
            path=model_path,
        )
    return model, names


def _short_reason(error, limit=300):
    """The line of a Keras loading error that names the problem (its messages repeat whole configs)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = next((line for line in lines if "Could not locate" in line), lines[0] if lines else "")
    reason = reason.split(" Full object config:")[0]
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def predict_files(model, class_names, files):
    """Yield one dict per file: path, class, probability, probabilities (or error)."""
    for path in files:
        try:
            image = read_image(path, color_mode="rgb")
        except DataError as error:
            yield {"path": str(path), "error": str(error)}
            continue
        probabilities = np.asarray(model.predict_on_batch(image[None].astype("float32")))[0]
        if probabilities.shape[-1] == 1:  # a single sigmoid unit: [negative, positive]
            probabilities = np.array([1.0 - probabilities[0], probabilities[0]])
        best = int(np.argmax(probabilities))
        yield {
            "path": str(path),
            "class": class_names[best],
            "probability": float(probabilities[best]),
            "probabilities": {name: float(p) for name, p in zip(class_names, probabilities)},
        }


def add_arguments(parser):
    parser.add_argument("model", help="a model.keras saved by a medcnn notebook")
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument("--csv", dest="csv_path", help="also write the predictions to this CSV file")
    parser.set_defaults(run=run, uses_keras=True)


def run(args):
    try:
        model, class_names = load_model(args.model)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    files = expand_inputs(args.images)
    if not files:
        print("error: no image files found in " + ", ".join(args.images), file=sys.stderr)
        return 1
    rows, failed = [], 0
    for row in predict_files(model, class_names, files):
        rows.append(row)
        if "error" in row:
            failed += 1
            print(f"{row['path']}\tERROR\t{row['error']}", flush=True)
        else:
            print(f"{row['path']}\t{row['class']}\t{row['probability']:.4f}", flush=True)
    if args.csv_path:
        with open(args.csv_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "class", "probability", *[f"p_{name}" for name in class_names], "error"])
            for row in rows:
                probs = row.get("probabilities", {})
                writer.writerow(
                    [
                        row["path"],
                        row.get("class", ""),
                        row.get("probability", ""),
                        *[probs.get(name, "") for name in class_names],
                        row.get("error", ""),
                    ]
                )
    print(f"{len(rows) - failed} predicted, {failed} failed", file=sys.stderr)
    return 1 if failed else 0
