"""Removal of exact duplicates, near duplicates and outliers, and a split that holds the test side out first.

Each removal returns the cleaned `ImageSet` and a pandas DataFrame of what it removed, so a notebook can show it
(`remove_duplicates`: exact copies, then near ones). `split_test_first` (per seed: `split_test_first_by_seed`) is a
split, not a removal: a stratified test side held out untouched, then isolation-forest outliers removed from the rest
only, then train / validation (an2dl uses both). Nothing is deleted from disk. Class weights live in
`medcnn.data.labels`; the report of a cleaning in `medcnn.experiment.cleaning_report`.
"""

import numpy as np
import pandas as pd

from medcnn.errors import DataError
from medcnn.data.splits import image_fingerprints


def _removed_table(data, pairs, extra=None):
    """DataFrame naming, for each (kept index, removed index), both items and their classes."""
    names = data.names()
    kept, removed = (np.asarray([p[i] for p in pairs], dtype=int) for i in (0, 1))
    table = pd.DataFrame(
        {
            "kept_index": kept,
            "kept": [names[i] for i in kept],
            "kept_class": [data.class_names[data.labels[i]] for i in kept],
            "removed_index": removed,
            "removed": [names[i] for i in removed],
            "removed_class": [data.class_names[data.labels[i]] for i in removed],
        }
    )
    if extra is not None:
        table[extra[0]] = extra[1]
    return table


def _without(data, removed_indices):
    keep = np.setdiff1d(np.arange(len(data)), np.asarray(removed_indices, dtype=int))
    return data.subset(keep)


def remove_exact_duplicates(data):
    """Keep the first of each group of identical images (pixels if decoded, else file bytes).

    Returns:
        (cleaned ImageSet, DataFrame with kept/removed index, name and class per removed item).
    """
    fingerprints = image_fingerprints(data)
    first_seen, pairs = {}, []
    for index, fingerprint in enumerate(fingerprints):
        if fingerprint in first_seen:
            pairs.append((first_seen[fingerprint], index))
        else:
            first_seen[fingerprint] = index
    return _without(data, [p[1] for p in pairs]), _removed_table(data, pairs)


def _require_images(data, what):
    if data.images is None:
        raise DataError(
            f"{data.source or 'data'}: {what} needs decoded images; load with decode=True "
            "(or medcnn.data.loaders.decode_set).",
            path=data.source or None,
            problem="not_decoded",
        )


def value_peak(images):
    """The top of the images' value range: 255 for uint8 images and for float images with values above 1 (the
    loaders' resized float32 images are in [0, 255]), else 1 (float images in [0, 1])."""
    arrays = [np.asarray(image) for image in images]
    if any(array.dtype == np.uint8 or (array.size and float(array.max()) > 1.0) for array in arrays):
        return 255.0
    return 1.0


def thumbnails(images, size=16, center_fraction=1.0):
    """Small grayscale thumbnails (N, size*size) in [0, 1], optionally of the central `center_fraction` only."""
    from skimage.color import rgb2gray
    from skimage.transform import resize

    if not 0 < center_fraction <= 1:
        raise ValueError(f"`center_fraction` must be in (0, 1]. Received: center_fraction={center_fraction}")
    out = np.empty((len(images), size * size), dtype=np.float32)
    peak = value_peak(images)
    for index, image in enumerate(images):
        image = np.asarray(image, dtype=np.float32) / peak
        gray = rgb2gray(image[..., :3]) if image.shape[-1] >= 3 else image[..., 0]
        height, width = gray.shape
        top, left = int(height * (1 - center_fraction) / 2), int(width * (1 - center_fraction) / 2)
        gray = gray[top : height - top, left : width - left]
        out[index] = resize(gray, (size, size), anti_aliasing=True).ravel()
    return out


def remove_near_duplicates(data, threshold=0.97, size=16, center_fraction=1.0, block=1024):
    """Keep the first of each set of near-identical images: Pearson correlation of grayscale thumbnails.

    Args:
        data: a decoded ImageSet.
        threshold: correlation in (0, 1] at or above which two images count as duplicates; 1.0 keeps only
            exact copies apart, lower values catch re-encoded or lightly edited copies.
        size: thumbnail side in pixels.
        center_fraction: compare only the central part of each image, e.g. 0.5 for the an2dl cells that were
            pasted on two different backgrounds.
        block: rows compared at once (memory: block x N floats).

    Returns:
        (cleaned ImageSet, DataFrame of kept/removed items with their `correlation`).
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"`threshold` must be in (0, 1]. Received: threshold={threshold}")
    _require_images(data, "near-duplicate removal")
    features = thumbnails(data.images, size=size, center_fraction=center_fraction)
    features -= features.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    features /= np.where(norms > 0, norms, 1.0)  # flat images correlate with nothing
    removed = np.zeros(len(features), dtype=bool)
    pairs, scores = [], []
    for start in range(0, len(features), block):
        similarity = features[start : start + block] @ features.T
        for row, index in enumerate(range(start, min(start + block, len(features)))):
            if removed[index]:
                continue
            later = np.flatnonzero(similarity[row, index + 1 :] >= threshold - 1e-6) + index + 1
            later = later[~removed[later]]
            removed[later] = True
            pairs += [(index, j) for j in later]
            scores += [float(similarity[row, j]) for j in later]
    return _without(data, [p[1] for p in pairs]), _removed_table(data, pairs, ("correlation", scores))


def image_features(images, size=16, bins=16):
    """Simple features per image for outlier detection: a grayscale thumbnail plus a per-channel colour histogram."""
    thumbs = thumbnails(images, size=size)
    peak = value_peak(images)
    histograms = []
    for image in images:
        image = np.asarray(image)
        channels = [np.histogram(image[..., c], bins=bins, range=(0, peak))[0] for c in range(image.shape[-1])]
        histograms.append(np.concatenate(channels) / image[..., 0].size)
    return np.hstack([thumbs, np.asarray(histograms, dtype=np.float32)])


def _check_contamination(contamination):
    if contamination != "auto" and not (isinstance(contamination, (int, float)) and 0 < contamination <= 0.5):
        raise ValueError(f"`contamination` must be in (0, 0.5] or 'auto'. Received: contamination={contamination}")


def fit_outlier_forest(images, contamination="auto", seed=0, features=None):
    """scikit-learn's IsolationForest fitted on `image_features(images)`.

    Args:
        images: decoded images (N, H, W, C), uint8 or float in [0, 255] or [0, 1].
        contamination: expected share of outliers in (0, 0.5], or "auto" (scikit-learn's default: the threshold
            of the original paper, so the share removed is found, not chosen).
        seed: random_state of the forest.
        features: `image_features(images)` when already computed (then `images` is not read).

    Returns:
        The fitted forest; `forest.predict(image_features(other)) == -1` marks outliers among other images too.
    """
    from sklearn.ensemble import IsolationForest

    _check_contamination(contamination)
    features = image_features(images) if features is None else features
    return IsolationForest(contamination=contamination, random_state=seed).fit(features)


def remove_outliers(data, contamination=0.01, seed=0):
    """Drop the images scikit-learn's IsolationForest marks as outliers on `image_features`.

    Args:
        data: a decoded ImageSet.
        contamination: expected share of outliers, in (0, 0.5]; that share is removed. "auto" lets the forest's
            own threshold decide (see `fit_outlier_forest`).
        seed: random_state of the forest.

    Returns:
        (cleaned ImageSet, DataFrame of removed items: index, name, class, score; lower score = more anomalous).
    """
    _check_contamination(contamination)
    _require_images(data, "outlier removal")
    features = image_features(data.images)
    forest = fit_outlier_forest(None, contamination, seed, features=features)
    scores = forest.score_samples(features)
    outliers = np.flatnonzero(forest.predict(features) == -1)
    outliers = outliers[np.argsort(scores[outliers])]
    names = data.names()
    removed = pd.DataFrame(
        {
            "index": outliers,
            "name": [names[i] for i in outliers],
            "class": [data.class_names[data.labels[i]] for i in outliers],
            "score": scores[outliers],
        }
    )
    return _without(data, outliers), removed


def remove_duplicates(data, near_duplicates=None):
    """Exact copies removed, then near copies (`remove_near_duplicates(**near_duplicates)`; None: exact copies only).

    Returns:
        (cleaned ImageSet, DataFrame of kept / removed pairs, indices into `data`, with `kind` "exact" or "near").
    """
    cleaned, exact = remove_exact_duplicates(data)
    exact["kind"] = "exact"
    if not near_duplicates:
        return cleaned, exact
    kept = np.setdiff1d(np.arange(len(data)), exact["removed_index"].to_numpy(dtype=int))
    cleaned_near, near = remove_near_duplicates(cleaned, **near_duplicates)
    for column in ("kept_index", "removed_index"):  # indices into `data`, as for the exact copies
        near[column] = kept[near[column].to_numpy(dtype=int)]
    near["kind"] = "near"
    return cleaned_near, pd.concat([exact, near], ignore_index=True)


def split_test_first(labels, features, seed, test_fraction=0.2, val_fraction=0.2, contamination="auto"):
    """A stratified test split held out first and left untouched; then isolation-forest outliers (fitted on the
    rest only) removed from the rest, and a stratified train / validation split of what is left.

    Args:
        labels: (N,) integer labels.
        features: (N, F) `image_features` of the same images.
        seed: fixes the test split, the forest and the train / validation split.
        test_fraction, val_fraction: the test share of all images, the validation share of what is left.
        contamination: as `fit_outlier_forest` takes it.

    Returns:
        (split {"train", "val", "test"} of sorted indices, info {"outliers": indices removed from train /
        validation, lowest score first, "outlier_scores", "test_flagged": test indices the forest would flag}).
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    pool, test = train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed)
    forest = fit_outlier_forest(None, contamination, seed, features=features[pool])
    flagged = forest.predict(features) == -1
    scores = forest.score_samples(features)
    outliers = pool[flagged[pool]]
    outliers = outliers[np.argsort(scores[outliers])]
    kept = np.setdiff1d(pool, outliers)
    train, val = train_test_split(kept, test_size=val_fraction, stratify=labels[kept], random_state=seed)
    split = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    info = {"outliers": outliers, "outlier_scores": scores[outliers], "test_flagged": np.sort(test[flagged[test]])}
    return split, info


def split_test_first_by_seed(images, labels, seeds, **options):
    """`split_test_first` for every seed, the image features computed once: ({seed: split}, {seed: info}).
    `options`: its `test_fraction`, `val_fraction` and `contamination`."""
    features = image_features(images)
    made = {seed: split_test_first(labels, features, seed, **options) for seed in seeds}
    return {seed: split for seed, (split, _) in made.items()}, {seed: info for seed, (_, info) in made.items()}
