"""What a test-first cleaning removed (`medcnn.data.cleaning.remove_duplicates` and `split_test_first`), for
results.json and one findings sentence: duplicates, outliers per class, and how the best run does on the test
images the forest would have removed had it seen them."""

import numpy as np


def cleaning_summary(pairs, infos, splits, best, labels, class_names):
    """What cleaning removed, on the best run's seed.

    Args:
        pairs: `remove_duplicates`' table of removed copies.
        infos, splits: {seed: info}, {seed: split} of `split_test_first`.
        best: the best run's record (its seed is the one described; it has test indices and probabilities).
        labels: the labels of the de-duplicated images; class_names: in label order.

    Returns:
        {"duplicates", "duplicate_kinds", "outliers", "outlier_classes", "outliers_per_seed", "pool" (training,
        validation and outlier images), "pool_classes", "flagged_accuracy": `summary.subset_accuracy` of the best
        run on the test images the forest flags}.
    """
    from medcnn.experiment.summary import subset_accuracy

    split, info, labels = splits[best["seed"]], infos[best["seed"]], np.asarray(labels)
    pool = np.concatenate([split["train"], split["val"], info["outliers"]])

    def per_class(index):
        counts = np.bincount(labels[np.asarray(index, dtype=int)], minlength=len(class_names))
        return {class_names[k]: int(n) for k, n in enumerate(counts)}

    return {
        "duplicates": int(len(pairs)),
        "duplicate_kinds": pairs["kind"].value_counts().to_dict() if len(pairs) else {},
        "outliers": int(len(info["outliers"])),
        "outlier_classes": per_class(info["outliers"]),
        "outliers_per_seed": {int(s): int(len(i["outliers"])) for s, i in infos.items()},
        "pool": int(len(pool)),
        "pool_classes": per_class(pool),
        "flagged_accuracy": subset_accuracy(best, labels, info["test_flagged"]),
    }


def cleaning_sentence(cleaning, best):
    """What cleaning removed (a `cleaning_summary`), and how the best run does on the test images the forest would
    have flagged."""
    on, off, count = cleaning["flagged_accuracy"]
    classes = cleaning.get("outlier_classes") or {}
    most = max(classes, key=classes.get) if classes and max(classes.values()) else None
    share = (
        f" ({classes[most]} of them {most}, a class that makes up "
        f"{100 * cleaning['pool_classes'][most] / cleaning['pool']:.0f} % of those {cleaning['pool']})"
        if most and cleaning.get("pool_classes")
        else ""
    )
    return (
        f"Cleaning removed {cleaning['duplicates']} duplicate(s), then {cleaning['outliers']} of "
        f"{cleaning['pool']} training and validation images as isolation-forest outliers{share} (seed "
        f"{best['seed']}); the same forest would have flagged {count} test images, on which the best run is "
        + (f"{100 * on:.1f} % right against {100 * off:.1f} % on the rest." if count else "not measured.")
    )
