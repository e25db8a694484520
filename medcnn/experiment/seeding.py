"""What a study's seed varies, and what it holds fixed on purpose, as results.json records it.

"± over seeds" means only what the seeds vary. A study states it with `seed_policy` and passes the result to
`results_payload(..., extra=...)`:

    extra = {**study.seeding(settings), ...}  # {"seed_varies": [...], "held_fixed": {part: why}}

The parts use the names in `SEED_PARTS`, so that studies can be compared; a part that holds for some models only
names them in parentheses: "augmented views (MobileNetV2)".
"""

SEED_PARTS = {
    "split": "which images (or patients) go to training, validation and test",
    "initialisation": "the trained layers' initial weights",
    "data order": "the order of the training batches",
    "dropout masks": "which units each Dropout layer drops at each step",
    "augmentation draws": "the random transforms applied to training batches on the fly",
    "augmented views": "the augmented copies made once, before training (offline or as frozen features)",
    "random backbone weights": "the initial weights of a backbone whose pretrained weights are unavailable",
    "pretrained backbone weights": "a backbone's loaded (ImageNet) weights: not drawn, the same for every seed",
    "composition": "which images are composed or drawn from the source",
    "outlier forest": "the isolation forest that removes outliers from the training pool",
    "search": "the hyperparameter search's trials",
    "mc dropout passes": "the masks of Monte Carlo dropout at prediction time",
}


# What a transfer row's head built with `HeadSpec(seed=0)` holds fixed (`seed_policy(..., seeded_heads=True)`).
SEEDED_HEAD = {"dropout masks (transfer rows' head)": "the head is built with `HeadSpec(seed=0)`: its masks repeat"}


def seed_policy(varies, held_fixed=None, weights=None, seeded_heads=False):
    """The record of what a study's seed varies and what it holds fixed, for results.json.

    Args:
        varies: the random parts (names from `SEED_PARTS`, optionally followed by " (the models it holds for)")
            that each seed draws anew.
        held_fixed: {part: why} for the random parts that are the same for every seed, each with its reason
            (e.g. "ImageNet weights: pretrained, not drawn"); None or {} when nothing is.
        weights: {backbone: "imagenet" or "random"} as loaded, or None: `backbone_parts(weights)` follows `varies`
            (random weights, drawn per seed) and `held_fixed` (ImageNet weights, loaded).
        seeded_heads: the backbones' heads draw their dropout masks from a fixed seed: with `weights`, `SEEDED_HEAD`
            is held fixed too.

    Returns:
        {"seed_varies": [part, ...], "held_fixed": {part: why}}, to pass in `results_payload(..., extra=...)`.
    """
    drawn, pretrained = backbone_parts(weights or {})
    seeded = SEEDED_HEAD if seeded_heads and weights else {}
    varies, held_fixed = [*varies, *drawn], {**(held_fixed or {}), **seeded, **pretrained}
    unknown = [part for part in [*varies, *held_fixed] if part.split(" (")[0] not in SEED_PARTS]
    if unknown:
        raise ValueError(f"Unknown seed parts {unknown}. Expected names from SEED_PARTS: {list(SEED_PARTS)}")
    both = sorted(set(varies) & set(held_fixed))
    if both:
        raise ValueError(f"A part cannot both vary and be held fixed. Received both: {both}")
    if len(set(varies)) != len(varies):
        raise ValueError(f"`varies` lists a part twice. Received: varies={varies}")
    missing = [part for part, why in held_fixed.items() if not isinstance(why, str) or not why.strip()]
    if missing:
        raise ValueError(f"Every held-fixed part needs its reason (a non-empty string). Received none for: {missing}")
    return {"seed_varies": varies, "held_fixed": held_fixed}


def for_models(part, chosen, every):
    """`part` when it holds for `every` model, else `part` naming the `chosen` ones: "augmented views (VGG19)"."""
    chosen = list(chosen)
    return part if set(chosen) == set(every) else f"{part} ({', '.join(chosen)})"


def backbone_parts(weights):
    """What each seed does with the backbones of `weights` ({name: "imagenet" or "random"}, as loaded): random
    weights are drawn per seed, ImageNet ones are loaded. Returns ([varied part], {held part: why}), each empty when
    no backbone falls under it."""
    drawn = [name for name, used in weights.items() if used == "random"]
    pretrained = [name for name in weights if name not in drawn]
    varies = [for_models("random backbone weights", drawn, weights)] if drawn else []
    held = {for_models("pretrained backbone weights", pretrained, weights): "ImageNet weights: loaded, not drawn"}
    return varies, held if pretrained else {}
