"""Crash-safe state of a `compress` run, so a killed run can resume.

A checkpoint directory holds `state.json` and the files it names (the
current model with its masks, its accumulated scores and mask state, the best
model so far).
Model files get a new name each iteration and are written before
`state.json`, which is replaced atomically last: a crash at any moment leaves
either the previous complete state or the new one, never a mix.

`state.json` also records a fingerprint of the call (arguments, model
config and weights, data). Resuming with anything different raises
`CheckpointError` naming what differs, instead of silently continuing a
different run or starting over on top of it.
"""

import hashlib
import json
import os
import pathlib
import tempfile

import numpy as np
import tensorflow as tf

import keras
from keras import tree

from keras_taylor.errors import CheckpointError

FORMAT = 1
STATE = "state.json"


def _sha(*chunks):
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk if isinstance(chunk, bytes) else str(chunk).encode())
    return digest.hexdigest()[:20]


def _array_digest(arrays):
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()[:20]


def model_fingerprint(model):
    """Digests of a model's architecture, weights and compile config."""
    config = json.dumps(model.get_config(), sort_keys=True, default=str)
    try:
        compile_config = json.dumps(model.get_compile_config(), sort_keys=True, default=str)
    except Exception:  # not compiled, or an uncommon optimizer
        compile_config = ""
    return {
        "model architecture": _sha(config),
        "model weights": _array_digest(model.get_weights()),
        "model compile config": _sha(compile_config),
    }


def data_fingerprint(data):
    """Digest of arrays by content; of a tf.data.Dataset by its structure.

    A dataset's content cannot be read without running it, so only its
    element spec and cardinality are compared.
    """
    if data is None:
        return "none"
    if isinstance(data, tf.data.Dataset):
        return _sha("dataset", data.element_spec, int(data.cardinality()))
    return _array_digest([a for a in tree.flatten(data) if a is not None])


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return repr(value)


class CompressCheckpoint:
    """The checkpoint directory of one `compress` call.

    Args:
        directory: where to keep the state; created if missing.
        fingerprint: dict of name -> JSON value identifying the call.
    """

    def __init__(self, directory, fingerprint):
        self.directory = pathlib.Path(directory)
        self.fingerprint = {k: _plain(v) for k, v in fingerprint.items()}
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(
                f"checkpoint_dir '{self.directory}' exists and is not a directory"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.files = {}

    # ------------------------------------------------------------ reading
    def load(self):
        """The saved state dict, or None when no iteration has completed.

        Raises:
            CheckpointError: the state is unreadable or from another call.
        """
        path = self.directory / STATE
        if not path.exists():
            return None
        try:
            saved = json.loads(path.read_text())
            version, fingerprint = saved["format"], saved["fingerprint"]
            state, files = saved["state"], saved["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise self._corrupt(f"'{STATE}' cannot be read ({exc})") from None
        if version != FORMAT:
            raise self._corrupt(f"'{STATE}' has format {version!r}, expected {FORMAT}")
        differences = [
            key for key in sorted(set(fingerprint) | set(self.fingerprint))
            if fingerprint.get(key) != self.fingerprint.get(key)
        ]
        if differences:
            details = "; ".join(
                f"{key}: {fingerprint.get(key)!r} then, {self.fingerprint.get(key)!r} now"
                if not key.startswith(("model ", "ds", "validation_data"))
                else f"{key} differ"
                for key in differences
            )
            raise CheckpointError(
                f"checkpoint_dir '{self.directory}' belongs to a compress call with "
                f"different inputs ({details}). Call compress with the same model, "
                "data and arguments to resume, or use another checkpoint_dir (or "
                "delete this one) to start over."
            )
        for name in files.values():
            if name is not None and not (self.directory / name).is_file():
                raise self._corrupt(f"'{name}', named in '{STATE}', is missing")
        self.files = dict(files)
        return state

    def load_model(self, key):
        """The model saved under `key` ("current" or "best"), or None."""
        name = self.files.get(key)
        if name is None:
            return None
        try:
            return keras.models.load_model(self.directory / name, compile=False, safe_mode=True)
        except Exception as exc:
            raise self._corrupt(f"'{name}' cannot be loaded ({' '.join(str(exc).split())[:200]})") from None

    def load_arrays(self, key):
        name = self.files.get(key)
        if name is None:
            return None
        try:
            with np.load(self.directory / name) as data:
                return {k: data[k] for k in data.files}
        except Exception as exc:
            raise self._corrupt(f"'{name}' cannot be read ({exc})") from None

    def _corrupt(self, what):
        return CheckpointError(
            f"checkpoint_dir '{self.directory}' is corrupt: {what}. Delete it to "
            "start over (nothing in it was changed)."
        )

    # ------------------------------------------------------------ writing
    def save(self, state, current=None, scores=None, best=None):
        """Writes the state of a completed iteration atomically.

        Args:
            state: JSON-serialisable dict (histories, iteration, ...).
            current: the model to resume from (a plain keras.Model), if any.
            scores: dict of arrays saved next to it.
            best: a new best model; None keeps the previous best file.
        """
        iteration = int(state.get("iteration", 0))
        files = dict(self.files)
        files["current"] = self._write_model(current, f"current_{iteration:04d}.keras") if current is not None else None
        files["scores"] = self._write_arrays(scores, f"scores_{iteration:04d}.npz") if scores is not None else None
        if best is not None:
            files["best"] = self._write_model(best, f"best_{iteration:04d}.keras")
        files.setdefault("best", None)
        payload = {"format": FORMAT, "fingerprint": self.fingerprint, "state": state, "files": files}
        self._atomic(STATE, lambda f: f.write(json.dumps(payload, indent=1).encode()))
        self.files = files
        self._clean()

    def _atomic(self, name, write):
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp_", suffix="_" + name)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.directory / name)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return name

    def _write_model(self, model, name):
        # model.save needs a path ending in .keras, so no file object here.
        tmp = self.directory / f".tmp_{name}"
        try:
            model.save(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.directory / name)
        finally:
            if tmp.exists():
                tmp.unlink()
        return name

    def _write_arrays(self, arrays, name):
        return self._atomic(name, lambda f: np.savez(f, **arrays))

    def _clean(self):
        """Removes our files that `state.json` no longer names."""
        keep = {STATE} | {n for n in self.files.values() if n}
        for path in self.directory.iterdir():
            ours = path.name.startswith((".tmp_", "current_", "scores_", "best_"))
            if ours and path.name not in keep and path.is_file():
                path.unlink()
