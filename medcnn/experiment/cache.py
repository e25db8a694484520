"""The run record cache: `<out_dir>/runs/<key>.json` (committed) and `<out_dir>/cache/weights/<key>.weights.h5` with
`<key>.weights.json` (the fingerprint and precision those weights were trained under; neither is committed).

A record is reused only when its fingerprint and its numeric precision match, and only when the cache is asked to
reuse: a fresh reproduction trains (`reuse=False`), an interrupted one resumes or adds seeds (`reuse=True`).

The fingerprint (`Run.fingerprint`) hashes the whole run spec, never a hand-picked part of it: the study's settings
for the scale (all of them but `NON_RESULT_SETTINGS`), the data digest, the configuration's settings, seed, epochs,
batch size, label encoding, class weights, the identity of the model builder, augmentation and callbacks
(`callable_identity`), the run it starts from, and the split. A setting a study adds later therefore changes the
fingerprint by itself, and a record made under other settings is never silently reused. Source code is not hashed:
after a change to what a builder does, run again with `reuse=False`; a change to the library's code that changes
what every run trains bumps `runs.FINGERPRINT_VERSION`, which every fingerprint hashes.
"""

import dataclasses
import functools
import hashlib
import json
import os
import re
import types
from pathlib import Path

import numpy as np

# Settings that cannot change the result of a run that exists under both values, so they stay out of the
# fingerprint: adding a seed, a group, a protocol or a backbone, resuming into another folder or predicting in other
# batches still reuses the records already made. Each one only chooses which runs exist, where they are written, or
# how fast predictions go:
NON_RESULT_SETTINGS = (
    "scale",  # the scale's name: its settings are hashed themselves ("cpu" and "full" may be one protocol)
    "seeds",  # which seeds run; each run's own seed is hashed
    "n_seeds",  # how many seeds run
    "groups",  # which configuration groups run (and each group's seeds)
    "group_seeds",  # per-group seeds, as "seeds"
    "protocols",  # which split protocols run; each run's split and label are hashed
    "backbones",  # which backbones run; each run's configuration names its backbone
    "predict_batch_size",  # inference batch: the same predictions, other timings
    "output_dir",  # where records are written
    "out_dir",
    "reuse_runs",  # whether records are reused
    "reuse",
)


def fingerprint(payload):
    """A 16-hex-digit sha256 of `payload` (any JSON-able structure; keys sorted, so order does not matter)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def split_digests(split):
    """{side: md5 of its int64 indices}: a split's identity for a fingerprint."""
    return {side: hashlib.md5(np.asarray(index, np.int64).tobytes()).hexdigest() for side, index in split.items()}


def result_settings(spec):
    """`spec` (a study's settings for one scale) without `NON_RESULT_SETTINGS`: the part a fingerprint hashes."""
    return {key: value for key, value in (spec or {}).items() if key not in NON_RESULT_SETTINGS}


def _qualified_name(value):
    return f"{getattr(value, '__module__', None)}.{getattr(value, '__qualname__', type(value).__qualname__)}"


def jsonable(value):
    """`value` as plain JSON (str keys, lists), the same in every process: what a fingerprint may hash.

    Numbers, strings, None and booleans stay; NumPy scalars become Python numbers; dicts, lists, tuples and sets
    are converted item by item; a dataclass becomes its type and its fields that are not None (so a field added
    later with a None default leaves fingerprints alone); a callable becomes its `callable_identity`; an array
    becomes its shape and dtype (its values come from the data and the split, hashed apart); a path becomes its
    file name (the folder differs between machines). Anything else is its type's name plus its `repr`, unless that
    repr holds a memory address (" at 0x"), which would change from process to process.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return f"array(shape={list(value.shape)}, dtype={value.dtype})"
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(item) for item in value), key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"type": _qualified_name(type(value)), **{k: jsonable(v) for k, v in fields.items() if v is not None}}
    if isinstance(value, os.PathLike):
        return Path(value).name
    if callable(value):
        return callable_identity(value)
    text = repr(value)
    return _qualified_name(type(value)) if " at 0x" in text else f"{_qualified_name(type(value))}: {text}"


def _names_used(code):
    """The global and attribute names a code object (and the lambdas and functions inside it) uses, in order."""
    names = list(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names += [name for name in _names_used(constant) if name not in names]
    return names


def _plain_captures(function):
    """{name: value} of the closure's captured values that are plain scalars (see `callable_identity`)."""
    captured = {}
    for name, cell in zip(function.__code__.co_freevars, function.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # a cell not filled yet
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            captured[name] = value.item() if isinstance(value, np.generic) else value
    return captured


def callable_identity(function):
    """A JSON-able identity of a model builder (or augmentation, or callbacks factory), stable across processes.

    It changes when another builder is used or the same builder gets other arguments; it does not look at the
    builder's source code. A module-level function is `"module.qualname"` with its default values; a lambda or
    a function defined inside another (a closure) adds the names it calls, e.g. `["build_model", "shape"]` for
    `lambda c=config: build_model(c, x.shape[1:])`, and its bound default values (`c` here); a
    `functools.partial` is its function's identity with the partial's arguments; a bound method is its function's
    identity with the type it is bound to. Of the values a closure captures from the enclosing scope, the plain
    scalars (None, bool, int, float, str, e.g. a patience or a step count) are kept by name; the others are left
    out: they are the data, the settings or the split, which the fingerprint hashes apart, or objects without a
    stable form. Values are converted by `jsonable`.

    Args:
        function: any callable, or None.

    Returns:
        None for None, else a str (a plain function without defaults, a class) or a dict.

    Example:
        >>> callable_identity(functools.partial(round, ndigits=2))
        {'function': 'builtins.round', 'args': [], 'keywords': {'ndigits': 2}}
    """
    if function is None:
        return None
    if isinstance(function, functools.partial):
        return {
            "function": callable_identity(function.func),
            "args": jsonable(function.args),
            "keywords": jsonable(function.keywords),
        }
    if isinstance(function, types.MethodType):
        return {"function": callable_identity(function.__func__), "bound_to": _qualified_name(type(function.__self__))}
    if isinstance(function, types.FunctionType):
        name = _qualified_name(function)
        local = "<lambda>" in function.__qualname__ or "<locals>" in function.__qualname__
        defaults = jsonable(function.__defaults__ or ())
        keyword_defaults = jsonable(function.__kwdefaults__ or {})
        if not (local or defaults or keyword_defaults):
            return name
        identity = {"function": name, "defaults": defaults, "keyword_defaults": keyword_defaults}
        if local:
            identity["calls"] = _names_used(function.__code__)
            captured = _plain_captures(function)
            if captured:
                identity["captured"] = captured
        return identity
    if isinstance(function, (type, types.BuiltinFunctionType)):
        return _qualified_name(function)
    text = repr(function)  # another callable object: its type, and its repr where that is stable
    return _qualified_name(type(function)) if " at 0x" in text else f"{_qualified_name(type(function))}: {text}"


def derive_from_confusion(record):
    """Fill in metrics that a confusion matrix determines (balanced accuracy, macro F1) where a record lacks them.

    Records written before these metrics were recorded keep their meaning: nothing is estimated, only derived.
    """
    for side in ("val", "test"):
        matrix = record.get(f"{side}_confusion")
        if matrix is None:
            continue
        matrix = np.asarray(matrix, dtype="float64")
        true_counts, predicted_counts, correct = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
        recall = np.divide(correct, true_counts, out=np.zeros_like(correct), where=true_counts > 0)
        precision = np.divide(correct, predicted_counts, out=np.zeros_like(correct), where=predicted_counts > 0)
        f1 = np.divide(
            2 * precision * recall, precision + recall, out=np.zeros_like(correct), where=precision + recall > 0
        )
        present = true_counts > 0
        record.setdefault(f"{side}_balanced_accuracy", float(recall[present].mean()))
        record.setdefault(f"{side}_macro_f1", float(f1[present].mean()))
    return record


def compact_json(value):
    """JSON with one key per line but each list of numbers on one line (per-image probabilities stay small)."""
    text = json.dumps(value, indent=1)
    return re.sub(r"\[\s+([-+0-9.eE,\s]*?)\s+\]", lambda match: "[" + " ".join(match.group(1).split()) + "]", text)


class RunCache:
    """Where runs are recorded, and whether recorded runs may stand in for training them again.

    Args:
        out_dir: the results folder of one study and scale, e.g. `results/allgray/full`.
        reuse: reuse a record whose fingerprint and precision match. False (a fresh reproduction) trains every
            run and overwrites its record.
    """

    def __init__(self, out_dir, reuse=False):
        self.out_dir = Path(out_dir)
        self.reuse = bool(reuse)

    def __repr__(self):
        return f"RunCache({str(self.out_dir)!r}, reuse={self.reuse})"

    def record_path(self, key):
        return self.out_dir / "runs" / f"{key}.json"

    def weights_path(self, key):
        return self.out_dir / "cache" / "weights" / f"{key}.weights.h5"

    def load(self, key, expected_fingerprint, precision):
        """The record of run `key` if reuse is on and it matches, else None. Marked `cached=True`."""
        path = self.record_path(key)
        if not self.reuse or not path.is_file():
            return None
        record = json.loads(path.read_text())
        # records written before the precision was recorded ran in float32
        if record.get("fingerprint") != expected_fingerprint or record.get("precision", "float32") != precision:
            return None
        record["cached"] = True
        return derive_from_confusion(record)

    def weights_info_path(self, key):
        """`<key>.weights.json` beside the weights: the fingerprint and precision they were trained under."""
        return self.out_dir / "cache" / "weights" / f"{key}.weights.json"

    def weights_for(self, key, expected_fingerprint, precision):
        """The weights file of run `key` when it was saved under `expected_fingerprint` and `precision`, else None.

        Checked against `weights_info_path(key)`, written with the weights, not against the record: records are
        committed and weights are not, so after a pull a record can sit beside local weights of other settings.
        """
        weights, info = self.weights_path(key), self.weights_info_path(key)
        if not (weights.is_file() and info.is_file()):
            return None
        saved = json.loads(info.read_text())
        if saved.get("fingerprint") != expected_fingerprint or saved.get("precision") != precision:
            return None
        return weights

    def save(self, key, record, model=None):
        """Write, when given, the model's weights and then the record (without its `cached` flag).

        The weights come first, with `weights_info_path(key)` (the record's fingerprint and precision), so that a
        crash in between never leaves a new record beside older weights; the old weights' info file is removed
        before they are overwritten.
        """
        stored = {name: value for name, value in record.items() if name != "cached"}
        if model is not None:
            weights, info = self.weights_path(key), self.weights_info_path(key)
            weights.parent.mkdir(parents=True, exist_ok=True)
            info.unlink(missing_ok=True)
            model.save_weights(weights)
            saved = {"fingerprint": stored.get("fingerprint"), "precision": stored.get("precision", "float32")}
            temporary = info.with_suffix(".json.tmp")
            temporary.write_text(json.dumps(saved))
            temporary.replace(info)
        path = self.record_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(compact_json(stored))
        temporary.replace(path)
        return path
