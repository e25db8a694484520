"""A KerasTuner search judged against the paper's own setting on the validation side (binary, validation AUC).

Papers often give the hyper-parameters their own search chose. Ours (`medcnn.tune`) trains on the training side and
scores the validation side; the paper's setting then trains on the same split for the same epochs and is scored the
same way. The search's choice is used only where it beats the paper's setting, and the sentence says whether that
margin, and the spread of the trials, are within the noise of a validation AUC (`significance.beats_default`). The
verdict is for binary labels and a validation-AUC objective: its noise comes from the two classes' counts.

    trials, best, paper_score = search_against_default(hypermodel, train, val, paper_model, 16, folder, "val_auc")
    choice = search_verdict(trials, best, paper_score, val_labels, {"learning_rate": 1e-3, "batch_size": 16})
    search_sentence(choice, trials=10)
"""

import numpy as np
import pandas as pd


def search_split(hypermodel, x, labels, split, directory, objective, trials, epochs, seed=0, overwrite=True, verbose=2):
    """KerasTuner's Bayesian search (`tune.make_tuner`, `tune.search`) of `hypermodel` on the `split["train"]` rows
    of (x, labels), scored on its `split["val"]` rows (never a test side), from `keras.utils.set_random_seed(seed)`:
    (trials table, best hyper-parameters)."""
    import keras

    from medcnn import tune

    keras.utils.set_random_seed(seed)
    tuner = tune.make_tuner(hypermodel, directory, objective, trials, seed=seed, overwrite=overwrite)
    train, val = split["train"], split["val"]
    return tune.search(tuner, (x[train], labels[train]), (x[val], labels[val]), epochs=epochs, verbose=verbose)


def search_against_default(hypermodel, train, val, default_model, default_batch_size, directory, objective="val_auc",
                           trials=10, epochs=10, seed=0, overwrite=True, verbose=2):  # fmt: skip
    """Run (or resume) KerasTuner's Bayesian search, then train the default setting on the same split.

    Args:
        hypermodel: a `tune.ClassifierHyperModel` (or any keras_tuner.HyperModel).
        train, val: (x, y) arrays; only `val` is scored (never a test side).
        default_model: callable() -> the model compiled with the default setting (e.g. the paper's learning rate).
        default_batch_size: the default setting's batch size.
        directory, objective, trials, seed, overwrite: as `tune.make_tuner` takes them. epochs: per trial, and for
            the default setting.

    Returns:
        (trials table, best hyper-parameters, the default setting's best `objective` over its epochs). Both the
        search and the default model start from `keras.utils.set_random_seed(seed)`.
    """
    import keras

    from medcnn import tune
    from medcnn.train import monitor_mode

    keras.utils.set_random_seed(seed)
    tuner = tune.make_tuner(hypermodel, directory, objective, trials, seed=seed, overwrite=overwrite)
    table, best = tune.search(tuner, train, val, epochs, verbose=verbose)
    keras.utils.set_random_seed(seed)
    history = default_model().fit(*train, batch_size=default_batch_size, epochs=epochs, validation_data=val,
                                  verbose=0).history  # fmt: skip
    scores = history[objective]
    return table, best, float(max(scores) if monitor_mode(objective) == "max" else min(scores))


def search_head_against_default(make_head, features, targets, split, space, default_model, default_batch_size,
                                directory, trials=10, epochs=10, seed=0, overwrite=True, verbose=2, **options):
    """`search_against_default` of a head on precomputed `features` and their one-hot `targets`, trained on the
    `split["train"]` rows and scored on the `split["val"]` rows: a `tune.ClassifierHyperModel` of
    `make_head(dropout)` over a settings' `space` ({"objective", "learning_rate": (low, high), "batch_sizes"});
    `options` go to the hypermodel (e.g. `dropout=(0.5, 0.5)`, `head_units=()`, `loss`, `metrics`)."""
    from medcnn import tune

    hypermodel = tune.ClassifierHyperModel(make_head, learning_rate=space["learning_rate"],
                                           batch_sizes=space["batch_sizes"], **options)  # fmt: skip
    train, val = ((features[split[side]], targets[split[side]]) for side in ("train", "val"))
    return search_against_default(hypermodel, train, val, default_model, default_batch_size, directory,
                                  space["objective"], trials, epochs, seed, overwrite, verbose)  # fmt: skip


def search_verdict(trials, best, default_score, val_labels, default, name="default"):
    """Whether the search's choice beats the default setting on validation AUC, and by more than its noise.

    Args:
        trials: the trials table (`tune.trials_table`; its "score" column). best: the best hyper-parameters.
        default_score: the default setting's validation AUC. val_labels: the validation side's 0/1 labels (other
            labels raise a ValueError).
        default: {hyper-parameter: value} of the default setting; only these are taken from `best`.
        name: what the default is called in the result's keys (e.g. "thesis").

    Returns:
        `significance.beats_default`'s numbers, its "default_score" as f"{name}_score", with "search" (the chosen
        values of `default`'s keys; {} without a finished trial), `name` (`default`) and "used" ("search" when it
        beats the default, else `name`).
    """
    from medcnn.significance import beats_default

    val_labels = np.asarray(val_labels)
    if val_labels.ndim != 1 or not np.isin(val_labels, (0, 1)).all():
        raise ValueError(
            "`val_labels` must be the validation side's binary labels (0/1, one per item): the verdict reads the noise "
            f"of a binary validation AUC. Received labels of shape {val_labels.shape} with values "
            f"{np.unique(val_labels)[:10].tolist()}."
        )
    scores = pd.to_numeric(trials["score"], errors="coerce") if "score" in trials else []
    chosen = {key: best[key] for key in default if key in best}
    negatives, positives = (int(n) for n in np.bincount(val_labels.astype(int), minlength=2))
    verdict = beats_default(scores if chosen else [], default_score, positives, negatives)
    return {
        **{key: value for key, value in verdict.items() if key != "default_score"},
        f"{name}_score": verdict["default_score"],
        "search": chosen,
        name: dict(default),
        "used": "search" if verdict["beats"] else name,
    }


def _setting(values):
    return ", ".join(f"{key.replace('_', ' ')} {value:.3g}" for key, value in values.items())


def search_sentence(choice, trials, name="default", owner="the default", where="on the training side"):
    """`search_verdict`'s result as a sentence: what the search chose against `owner`'s setting (e.g. "the
    thesis'"), whether the margin and the trials' spread are beyond two standard errors, and which of
    `choice["rows"]` (where given) use which setting. `trials`: how many the search ran."""
    if not choice or not choice["search"]:
        return "The Bayesian search finished no trial."
    low, high = choice["trials_range"]
    rows = choice.get("rows", [])
    used = "its choice" if choice["used"] == "search" else f"{owner} setting"
    applied = f" {', '.join(map(repr, rows))} use{'s' if len(rows) == 1 else ''} {used}." if rows else ""
    return (
        f"The Bayesian search ({trials} trials {where}, validation AUC) chose {_setting(choice['search'])}: "
        f"validation AUC {choice['search_score']:.3f} against {choice[f'{name}_score']:.3f} for {owner} "
        f"{_setting(choice[name])} under the same budget, {'within' if choice['within_noise'] else 'beyond'} two "
        f"standard errors of a validation AUC here ({2 * choice['standard_error']:.3f}); its trials span "
        f"{low:.3f}-{high:.3f}{', within that noise' if choice['trials_within_noise'] else ''}.{applied}"
    )
