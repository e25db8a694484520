"""The run record cache: `<out_dir>/runs/<key>.json` (committed) and `<out_dir>/cache/weights/<key>.weights.h5`.

A record is reused only when its fingerprint (a hash of everything that changes the result: configuration, seed,
epochs, data files, split) and its numeric precision match, and only when the cache is asked to reuse: a fresh
reproduction trains (`reuse=False`), an interrupted one resumes or adds seeds (`reuse=True`).
"""

import hashlib
import json
import re
from pathlib import Path

import numpy as np


def fingerprint(payload):
    """A 16-hex-digit sha256 of `payload` (any JSON-able structure; keys sorted, so order does not matter)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def split_digests(split):
    """{side: md5 of its int64 indices}: a split's identity for a fingerprint."""
    return {side: hashlib.md5(np.asarray(index, np.int64).tobytes()).hexdigest() for side, index in split.items()}


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

    def save(self, key, record, model=None):
        """Write the record (without its `cached` flag) and, when given, the model's weights."""
        path = self.record_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = {name: value for name, value in record.items() if name != "cached"}
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(compact_json(stored))
        temporary.replace(path)
        if model is not None:
            weights = self.weights_path(key)
            weights.parent.mkdir(parents=True, exist_ok=True)
            model.save_weights(weights)
        return path
