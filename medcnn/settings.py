"""A study's settings per scale: `{scale: {setting: value}}`, one of them chosen with overrides, and the settings of
one of its configurations (`SetFields`). No Keras import."""

import copy
from dataclasses import asdict


def select_settings(settings_by_scale, scale, overrides):
    """A copy of `settings_by_scale[scale]` with `scale` added and the non-None `overrides` applied.

    Args:
        settings_by_scale: {scale: settings}; every scale has the keys of "smoke", the only names `overrides` takes.
            A scale whose value is another scale's name is that scale: e.g. `"cpu": "full"` when the published
            protocol already fits the CPU, so that its settings (and `scale`, hence its results folder) are full's.
        scale: a key of `settings_by_scale`.
        overrides: {setting: value}; None values leave the setting alone.

    Raises:
        ValueError: an override names no setting (checked first), or `scale` is unknown.
    """
    known = settings_by_scale["smoke"]
    unknown = set(overrides) - set(known)
    if unknown:
        raise ValueError(f"Unknown setting(s) {sorted(unknown)}; known: {sorted(known)}.")
    if scale not in settings_by_scale:
        raise ValueError(f"`scale` must be one of {sorted(settings_by_scale)}. Received: scale={scale!r}")
    if isinstance(settings_by_scale[scale], str):
        scale = settings_by_scale[scale]
    chosen = copy.deepcopy(settings_by_scale[scale])
    chosen["scale"] = scale
    chosen.update({key: value for key, value in overrides.items() if value is not None})
    return chosen


def settings_function(settings_by_scale):
    """A study's `settings(scale="smoke", **overrides)`: `select_settings(settings_by_scale, scale, overrides)`."""

    def settings(scale="smoke", **overrides):
        """The settings of `scale` ("smoke", "cpu" or "full") with the non-None `overrides` applied."""
        return select_settings(settings_by_scale, scale, overrides)

    return settings


class SetFields:
    """A study's configuration dataclass (one row) gets `settings()` from this mixin: the fields that are set, what
    defines its runs (recorded and fingerprinted). None is never set; a class lists further unset values in `UNSET`,
    e.g. `UNSET = ((), False)`."""

    UNSET = ()

    def settings(self):
        """What defines the run (recorded and fingerprinted): the fields that are set."""
        return {key: value for key, value in asdict(self).items() if value is not None and value not in self.UNSET}
