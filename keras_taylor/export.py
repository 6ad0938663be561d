"""`export_litert`: a pruned model to a LiteRT file, with what it costs and buys.

The path: the stripped model (a `TaylorPrunableModel` is stripped first) →
batch normalization folded into the convolutions (`kt.fold_batch_norm`) →
`tf.lite.TFLiteConverter` → a `.tflite` flatbuffer in float32, float16
(weights stored in half precision, computed in float32) or int8 (full-integer
post-training quantization: weights and activations in int8, calibrated on
representative samples of the user's data; float32 input and output, so the
file replaces the float one without touching the code around it).

Why the converter and not Keras 3.15's `model.export(format="litert")` and
`model.quantize`: `model.quantize("int8")` quantizes the kernels of Dense,
EinsumDense and Embedding layers only (a CNN's convolutions stay float) and
takes activation ranges per call instead of calibrating them, so it cannot
give a full-integer LiteRT file of a CNN; and `model.export` goes
through a SavedModel on disk and turns on TF Select ("flex") ops, which the
stock LiteRT interpreter of a device does not have. The converter, called
directly with builtin ops only (`TFLITE_BUILTINS_INT8` for int8), either
produces a file every LiteRT runtime runs or fails at export time, naming
the op; `keras.export` itself calls the same converter underneath.
"""

import dataclasses
import os
import tempfile

import numpy as np

import keras

from keras_taylor import latency
from keras_taylor.errors import InvalidArgumentError

PRECISIONS = ("float32", "float16", "int8")
COLUMNS = ("model", "runtime", "file_mb", "latency_ms", "latency_iqr_ms", "agreement")


@dataclasses.dataclass
class ExportReport:
    """What `export_litert` wrote and how it compares with the Keras model.

    Attributes:
        path: the `.tflite` file written.
        precision: "float32", "float16" or "int8".
        metric: name of the metric column.
        rows: one dict per model: the Keras model as given ("keras", timed in
            the Keras runtime), the float32 LiteRT file ("litert float32") and,
            for float16 and int8, the exported file. Keys: `COLUMNS` and the
            metric's name.
    """

    path: str
    precision: str
    metric: str
    rows: list

    def to_frame(self):
        """The rows as a pandas DataFrame (one row per model)."""
        import pandas as pd

        columns = list(COLUMNS[:-1]) + [self.metric, COLUMNS[-1]]
        return pd.DataFrame(self.rows, columns=columns)

    def __str__(self):
        return self.to_frame().to_string(index=False)


# ---------------------------------------------------------------- data
def _first(batch):
    """x of an (x, y[, weights]) element, or the element itself."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _as_arrays(data, name, limit=None):
    """(x, y or None) NumPy arrays of `data`: arrays, an (x, y) tuple or a batched tf.data."""
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        xs, ys, count = [], [], 0
        for batch in data.as_numpy_iterator():
            xs.append(np.asarray(_first(batch)))
            ys.append(np.asarray(batch[1]) if isinstance(batch, (tuple, list)) and len(batch) > 1 else None)
            count += len(xs[-1])
            if limit is not None and count >= limit:
                break
        if not xs:
            raise InvalidArgumentError(f"{name} is an empty dataset")
        y = None if any(v is None for v in ys) else np.concatenate(ys)
        return np.concatenate(xs), y
    if isinstance(data, (tuple, list)) and len(data) in (1, 2, 3):
        x = np.asarray(data[0])
        y = np.asarray(data[1]) if len(data) > 1 else None
    elif isinstance(data, np.ndarray):
        x, y = data, None
    else:
        raise InvalidArgumentError(
            f"{name} must be a NumPy array, an (x, y) tuple or a tf.data.Dataset, got {type(data).__name__}")
    if len(x) == 0:
        raise InvalidArgumentError(f"{name} holds no samples")
    return x, y


def _representative(data, shape, samples, seed):
    """A generator function of single samples for the converter's calibration."""
    x, _ = _as_arrays(data, "representative_data", limit=samples)
    if tuple(x.shape[1:]) != shape:
        raise InvalidArgumentError(
            f"representative_data has samples of shape {tuple(x.shape[1:])}, the model takes {shape}")
    pick = np.random.default_rng(seed).permutation(len(x))[:samples]
    x = x[pick].astype(np.float32)
    return lambda: ([x[i:i + 1]] for i in range(len(x)))


def _configure(precision, representative):
    import tensorflow as tf

    def configure(converter):
        if precision == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif precision == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            # Integer kernels only: an op without one fails the export
            # instead of silently running in float on the device.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

    return configure


# -------------------------------------------------------------- measures
def _predict(fn_of_batch, x, batch_size=64):
    return np.concatenate([fn_of_batch(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _litert_predict(flat, x, batch_size=64):
    """Outputs of `flat` on `x`: one interpreter, the last batch padded to size."""
    size = min(batch_size, len(x))
    pad = (-len(x)) % size
    x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x
    run = latency.litert_runner(flat, x[:size].astype(np.float32), threads=None)
    return _predict(lambda b: run(b.astype(np.float32)), x, size)[:len(x) - pad]


def _score(metric, y, pred):
    """Metric of predictions `pred` against labels `y`; 'accuracy' by argmax."""
    if callable(metric):
        return float(metric(y, pred))
    if pred.shape[-1] == 1:  # one sigmoid output
        return float(np.mean((pred[..., 0] > 0.5) == y.reshape(len(y), -1)[:, 0].astype(bool)))
    labels = y.argmax(-1) if y.ndim == pred.ndim and y.shape[-1] == pred.shape[-1] else y.reshape(len(y))
    return float(np.mean(pred.argmax(-1) == labels))


def _agreement(reference, pred):
    """Share of samples whose top class matches the Keras model's (NaN for one output)."""
    if reference.ndim < 2 or reference.shape[-1] < 2:
        return float("nan")
    return float(np.mean(reference.argmax(-1) == pred.argmax(-1)))


def keras_file_bytes(model):
    """Size in bytes of `model` saved as a `.keras` file, without optimizer state.

    A compiled model that has trained saves its optimizer's slots too (SGD
    momentum doubles the file); a deployment ships architecture and weights,
    so an uncompiled functional model of the same layers is saved instead.
    """
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.keras")
        keras.Model(model.inputs, model.outputs, name=model.name).save(path)
        return os.path.getsize(path)


def _timings(model, flats, shape, threads, batch_size, runs):
    """LatencyResult per row, all timed round robin in one run (None if runs == 0)."""
    if not runs:
        return {k: None for k in ["keras", *flats]}
    x = np.random.default_rng(0).random((batch_size, *shape), dtype=np.float32)
    runners = {"keras": latency.keras_runner(model, x)}
    runners.update({k: latency.litert_runner(flat, x, threads) for k, flat in flats.items()})
    times, calls = latency.time_interleaved(runners, runs)
    keras_threads = latency.keras_threads(None)
    return {k: latency.LatencyResult.from_samples(
        v, runtime="keras" if k == "keras" else "litert", calls_per_run=calls[k], batch_size=batch_size,
        threads=keras_threads if k == "keras" else threads) for k, v in times.items()}


def _rows(model, flats, validation_data, metric, timings):
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    x = y = reference = None
    if validation_data is not None:
        x, y = _as_arrays(validation_data, "validation_data")
        reference = _predict(lambda b: np.asarray(model.predict_on_batch(b)), x)
    outputs = {"keras": (reference, keras_file_bytes(model) / 1e6)}
    outputs.update({k: (None if x is None else _litert_predict(f, x), len(f) / 1e6) for k, f in flats.items()})
    rows = []
    for k, (pred, mb) in outputs.items():
        t = timings[k]
        rows.append({
            "model": k, "runtime": "keras" if k == "keras" else "litert", "file_mb": mb,
            "latency_ms": None if t is None else 1000 * t.median,
            "latency_iqr_ms": None if t is None else 1000 * t.iqr,
            name: float("nan") if pred is None or y is None else _score(metric, y, pred),
            "agreement": float("nan") if pred is None else _agreement(reference, pred),
        })
    return name, rows


def _folded(model):
    """`kt.fold_batch_norm(model)`, or `model` itself when there is nothing to fold.

    Folding rebuilds every layer from its config, and a `Lambda` rebuilt so
    loses the globals its function reads; a model with nothing to fold is
    converted as it is.
    """
    from keras_taylor.folding import find_foldable_pairs, fold_batch_norm
    from keras_taylor.graph import read_model

    if not find_foldable_pairs(read_model(model, where="export_litert")):
        return model
    return fold_batch_norm(model)


# ----------------------------------------------------------------- public
def _check(model, path, precision, representative_data, metric, representative_samples, threads, batch_size,
           latency_runs):
    from keras_taylor.model import TaylorPrunableModel

    if isinstance(model, TaylorPrunableModel):
        from keras_taylor.surgery import strip_pruning

        model = strip_pruning(model)
    shape = latency.single_input_shape(model)
    if precision not in PRECISIONS:
        raise InvalidArgumentError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "int8" and representative_data is None:
        raise InvalidArgumentError(
            "precision='int8' needs representative_data: a few hundred input samples (NumPy, (x, y) or "
            "tf.data) to calibrate the activation ranges")
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).endswith(".tflite"):
        raise InvalidArgumentError(f"path must be a file path ending in .tflite, got {path!r}")
    if metric != "accuracy" and not callable(metric):
        raise InvalidArgumentError(f"metric must be 'accuracy' or a function (y_true, y_pred) -> float, got {metric!r}")
    latency.check_int("representative_samples", representative_samples, 1)
    latency.check_int("threads", threads, 1)
    latency.check_int("batch_size", batch_size, 1)
    latency.check_int("latency_runs", latency_runs, 0)
    return model, shape


def export_litert(model, path, precision="float32", representative_data=None, validation_data=None,
                  fold_batch_norm=True, metric="accuracy", representative_samples=200, threads=1,
                  batch_size=1, latency_runs=20, seed=0):
    """Exports a (pruned) model to a LiteRT `.tflite` file and reports the trade.

    Strips a `TaylorPrunableModel`, folds batch normalization into the
    convolutions (`kt.fold_batch_norm`), converts with
    `tf.lite.TFLiteConverter` (builtin ops only, so the file runs on a stock
    LiteRT interpreter) and writes `path`. Then measures, next to the Keras
    model as given: file size, latency (Keras: a `tf.function`, TensorFlow's
    threads; LiteRT: the interpreter with XNNPACK on `threads` threads; all
    timed round robin in one run, `kt.measure_latency`'s method) and the
    metric on `validation_data`. The model passed in is not changed.

    Args:
        model: a one-input functional or Sequential `keras.Model`, or a
            `TaylorPrunableModel` (stripped first).
        path: the `.tflite` file to write.
        precision: "float32", "float16" (weights in half precision) or
            "int8" (full-integer post-training quantization, float32 input
            and output).
        representative_data: inputs for int8 calibration: an array, an
            `(x, y)` tuple or a batched `tf.data.Dataset` of the training data.
            Needed for int8. `representative_samples` samples are drawn at
            random from arrays; from a dataset, they are its first ones
            (shuffle it if its order is not random).
        validation_data: `(x, y)` arrays or a batched `tf.data.Dataset` of
            `(x, y)`; None skips the metric and agreement columns.
        fold_batch_norm: fold batch normalization before converting (the
            converter folds it too; folding first also covers normalizations
            it leaves alone, and keeps the float and int8 graphs alike).
        metric: "accuracy" (top-1 by argmax; labels sparse or one-hot) or a
            function `metric(y_true, y_pred) -> float` named by its `__name__`.
        representative_samples: calibration samples for int8 (default 200).
        threads, batch_size: LiteRT interpreter threads and the batch of the
            latency measurement (default 1 and 1).
        latency_runs: timed samples per model; 0 skips timing.
        seed: seed of the calibration draw.

    Returns:
        An `ExportReport`; `report.to_frame()` is a DataFrame with one row per
        model ("keras", "litert float32" and, for float16/int8, the exported
        file): `model`, `runtime`, `file_mb`, `latency_ms`, `latency_iqr_ms`,
        the metric, and `agreement` (share of samples whose top class matches
        the Keras model's).

    Example:

    >>> import tempfile, numpy as np, keras, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 1))
    >>> x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs))
    >>> model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    >>> data = np.random.rand(32, 8, 8, 1).astype("float32"), np.zeros(32, "int64")
    >>> report = kt.export_litert(model, tempfile.mktemp(suffix=".tflite"), precision="int8",
    ...                           representative_data=data, validation_data=data, latency_runs=2)
    >>> list(report.to_frame()["model"])
    ['keras', 'litert float32', 'litert int8']
    """
    source, shape = _check(model, path, precision, representative_data, metric, representative_samples, threads,
                           batch_size, latency_runs)
    served = _folded(source) if fold_batch_norm else source
    representative = (_representative(representative_data, shape, representative_samples, seed)
                      if precision == "int8" else None)
    flats = {"litert float32": latency.convert(served)}
    if precision != "float32":
        flats[f"litert {precision}"] = latency.convert(served, _configure(precision, representative), precision)
    with open(path, "wb") as f:
        f.write(flats[f"litert {precision}"])
    timings = _timings(source, flats, shape, threads, batch_size, latency_runs)
    name, rows = _rows(source, flats, validation_data, metric, timings)
    return ExportReport(path=os.fspath(path), precision=precision, metric=name, rows=rows)

