"""Classical reference classifiers beside the CNNs: HOG features, PCA and an RBF support-vector machine.

Records come out shaped like the experiment layer's run records (val/test accuracy, balanced accuracy, macro F1,
confusion, prediction seconds), so they summarise and tabulate with the CNN rows.
"""

import time

import numpy as np


def hog_features(x, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)):
    """scikit-image's HOG descriptor of each single-channel image (N, H, W, 1) or (N, H, W): (N, features)."""
    from skimage.feature import hog

    images = np.asarray(x)
    if images.ndim == 4:
        if images.shape[-1] != 1:
            raise ValueError(f"HOG here takes single-channel images. Received: x.shape={images.shape}")
        images = images[..., 0]
    return np.stack(
        [
            hog(image, orientations=orientations, pixels_per_cell=pixels_per_cell, cells_per_block=cells_per_block)
            for image in images
        ]
    )


def pca_svm_record(features, labels, split, class_names, components=100, C=10.0, seed=0, label=None):
    """PCA fitted on the training split, then an RBF SVM; a run-shaped record for `val` and `test`, with the test
    side's indices and predicted labels (`test_indices`, `test_predicted`).

    No standardisation after PCA: it would blow the low-variance (noisy) components up to the weight of the first.
    """
    from sklearn.decomposition import PCA
    from sklearn.svm import SVC

    from medcnn.evaluate import classification_metrics, record_entries

    components = min(components, len(split["train"]) - 1, features.shape[1])
    pca = PCA(n_components=components, random_state=seed).fit(features[split["train"]])
    reduced = pca.transform(features)
    classifier = SVC(kernel="rbf", C=C, random_state=seed).fit(reduced[split["train"]], labels[split["train"]])
    record = {
        "configuration": label or f"HOG + PCA({pca.n_components_}) + RBF SVM",
        "group": "reference",
        "seed": seed,
        "explained_variance": float(pca.explained_variance_ratio_.sum()),
    }
    onehot = np.eye(len(class_names))
    for side in ("val", "test"):
        started = time.perf_counter()
        predicted = classifier.predict(reduced[split[side]])
        record[f"{side}_predict_s"] = time.perf_counter() - started
        metrics = classification_metrics(labels[split[side]], onehot[predicted], class_names)
        record.update(record_entries(metrics, f"{side}_"))
    record["test_indices"] = [int(i) for i in split["test"]]
    record["test_predicted"] = [int(k) for k in predicted]  # the test side's, predicted last
    return record


def mean_grey_baseline(images, labels, split):
    """A logistic regression on each image's mean grey level alone, trained on `split["train"]` and scored on
    `split["test"]`: how far brightness alone tells binary classes apart.

    Offline augmentation that copies one class more often than the other, with a brightness shift that greys a
    white background, lets a model learn "looks augmented" as that class; this measures the cue on its own.

    Returns:
        {"balanced_accuracy", "roc_auc"} on the test side.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    images, labels = np.asarray(images), np.asarray(labels)
    grey = images.reshape(len(images), -1).mean(axis=1, keepdims=True)
    train, test = np.asarray(split["train"]), np.asarray(split["test"])
    model = LogisticRegression().fit(grey[train], labels[train])
    truth = labels[test]
    return {
        "balanced_accuracy": float(balanced_accuracy_score(truth, model.predict(grey[test]))),
        "roc_auc": float(roc_auc_score(truth, model.predict_proba(grey[test])[:, 1])),
    }
