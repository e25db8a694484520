"""A study's settings of one scale: the shared body of every study module's `settings(scale, **overrides)`."""

from medcnn.studies import select_settings


def study_settings(settings_by_scale, scale, overrides):
    """A copy of `settings_by_scale[scale]` with `scale` added and the non-None `overrides` applied.

    Args:
        settings_by_scale: {scale: settings}; every scale has the keys of "smoke", the only names `overrides` takes.
        scale: a key of `settings_by_scale`.
        overrides: {setting: value}; None values leave the setting alone.

    Raises:
        ValueError: an override names no setting (checked first), or `scale` is unknown.
    """
    known = settings_by_scale["smoke"]
    unknown = set(overrides) - set(known)
    if unknown:
        raise ValueError(f"Unknown setting(s) {sorted(unknown)}; known: {sorted(known)}.")
    return select_settings(settings_by_scale, scale, overrides)
