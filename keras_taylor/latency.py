"""`measure_latency`: a model's own forward time on the runtime it ships on.

Two runtimes, each timed as it serves:

* ``"litert"``: the LiteRT (TFLite) flatbuffer run by the interpreter with its
  default delegate (XNNPACK on CPUs) and a fixed thread count, batch 1 by
  default: a phone or an embedded board.
* ``"keras"``: a `tf.function` of `model(x, training=False)` at a batch size,
  on TensorFlow's own thread pool: a server. A compiled graph, not
  `model.predict_on_batch`, because serving (TF Serving, a SavedModel, a
  `tf.function` in your service) runs the traced graph; `predict_on_batch`
  adds Python and data-adapter work per call that no deployment pays, and
  it would count against small models most.

Timing: a few warm-up calls, then `runs` samples, each of as many
back-to-back calls as fill about `sample_seconds` (a single sub-millisecond
call is at the mercy of one thread wake-up), and the median of the samples.
The same machinery times several runners round robin (`time_interleaved`),
so that ratios between models come from one run on one machine load.
"""

import contextlib
import dataclasses
import io
import math
import os
import statistics
import time
import warnings

import numpy as np

import keras

from keras_taylor.errors import InvalidArgumentError, UnsupportedModelError

RUNTIMES = ("litert", "keras")
SAMPLE_SECONDS = 0.02


@dataclasses.dataclass(frozen=True)
class LatencyResult:
    """Seconds per forward call of one model on one runtime.

    Attributes:
        runtime: "litert" or "keras".
        median: median seconds per call over the samples.
        q1, q3: first and third quartile of the samples (seconds per call).
        runs: number of timed samples.
        calls_per_run: back-to-back calls timed in each sample.
        batch_size: samples per call.
        threads: interpreter threads (LiteRT) or TensorFlow's intra-op pool
            size (Keras; 0 means TensorFlow's default, one per core).
    """

    runtime: str
    median: float
    q1: float
    q3: float
    runs: int
    calls_per_run: int
    batch_size: int
    threads: int

    @property
    def iqr(self):
        """Interquartile range of the samples, in seconds: the spread."""
        return self.q3 - self.q1

    @classmethod
    def from_samples(cls, samples, **fields):
        q1, _, q3 = statistics.quantiles(samples, n=4) if len(samples) > 1 else samples * 3
        return cls(median=statistics.median(samples), q1=q1, q3=q3, runs=len(samples), **fields)

    def __str__(self):
        return (f"{1000 * self.median:.3f} ms (IQR {1000 * self.iqr:.3f} ms, {self.runs} runs) on "
                f"{self.runtime}, batch {self.batch_size}, {self.threads or 'default'} threads")


# -------------------------------------------------------------- conversion
def single_input_shape(model, name="model"):
    if not isinstance(model, keras.Model):
        raise UnsupportedModelError(f"{name} must be a keras.Model, got {type(model).__name__}")
    if not model.built or not getattr(model, "inputs", None):
        raise UnsupportedModelError(
            f"{name} '{model.name}' has no symbolic inputs (subclassed or never built); "
            "build it functionally with keras.Input")
    if len(model.inputs) != 1:
        raise UnsupportedModelError(
            f"{name} '{model.name}' has {len(model.inputs)} inputs; latency and export take one-input models")
    shape = tuple(model.inputs[0].shape[1:])
    if None in shape:
        raise UnsupportedModelError(
            f"{name} '{model.name}' has input shape {shape} with unknown sizes; give it a fixed input shape")
    return shape


def _converter_message(exc):
    """The lines of a converter error that say what failed (it prints pages)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    keep = [line for line in lines if "not supported" in line or "ops:" in line or "error:" in line[:12]]
    text = " ".join(keep or lines[:2])
    return text[:600]


def convert(model, configure=None, what="float32"):
    """The LiteRT flatbuffer (bytes) of `model`, via `tf.lite.TFLiteConverter`.

    Converts the traced inference function (`model(x, training=False)`,
    batch size left open) with `from_concrete_functions`, which freezes the
    weights into the graph and gives the same operators as
    `from_keras_model`, 4-5x faster: `from_keras_model` first writes and
    reads back a SavedModel (ResNet-20: 1.4 s against 6.5 s; MobileNetV2 at
    96x96: 9 s against 41 s), and the latency profile converts several
    variants of a model. Only LiteRT's builtin ops are allowed, so the file
    runs on the stock interpreter of a device (TF Select "flex" ops need
    TensorFlow's kernels linked in). `configure(converter)` sets
    quantization options; the converter's chatter is silenced and its
    failure becomes one `UnsupportedModelError` naming the model and the
    ops at fault.
    """
    import tensorflow as tf

    shape = single_input_shape(model)
    spec = tf.TensorSpec((None, *shape), model.inputs[0].dtype or tf.float32)
    forward = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([forward])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if configure is not None:
        configure(converter)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return converter.convert()
    except Exception as exc:  # ConverterError and friends carry pages of MLIR
        raise UnsupportedModelError(
            f"model '{model.name}' cannot be converted to LiteRT {what}: {_converter_message(exc)}") from None


def interpreter(flat, threads):
    """An interpreter of `flat` (bytes) with its default delegate (XNNPACK)."""
    try:  # LiteRT's own package, where installed
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        return Interpreter(model_content=flat, num_threads=threads)


# ----------------------------------------------------------------- runners
def litert_runner(flat, x, threads=1):
    """A function that runs `flat` on `x` (or on another batch of x's shape) and returns the output."""
    it = interpreter(flat, threads)
    detail = it.get_input_details()[0]
    it.resize_tensor_input(detail["index"], list(x.shape))
    it.allocate_tensors()
    out = it.get_output_details()[0]["index"]
    x = x.astype(detail["dtype"])

    def run(batch=x):
        it.set_tensor(detail["index"], batch)
        it.invoke()
        return it.get_tensor(out)

    return run


def keras_runner(model, x):
    """A no-argument function that runs a traced forward pass of `model` on `x`."""
    import tensorflow as tf

    fn = tf.function(lambda t: model(t, training=False))
    t = tf.constant(x)
    return lambda: fn(t).numpy()


def calls_per_sample(fn, sample_seconds=SAMPLE_SECONDS):
    """How many calls of `fn` make one timed sample last about `sample_seconds`.

    A single sub-millisecond call (TFLite's ResNet-20 at batch 1 takes about
    0.5 ms) is at the mercy of a thread wake-up: with one call per sample, 15
    samples once gave a stripped model 1.5 ms against 0.5 ms on the next run.
    """
    t = time.perf_counter()
    fn()
    once = time.perf_counter() - t
    return max(1, math.ceil(sample_seconds / max(once, 1e-6)))


def time_interleaved(runners, runs, warmup=2, sample_seconds=SAMPLE_SECONDS, clock=time.perf_counter):
    """Seconds per call of each runner, one list of `runs` samples each.

    Runners are warmed up (`warmup` calls each: tracing, allocation) and then
    timed round robin, so a change of machine load falls on all of them
    alike. `clock` is the wall clock by default; `time.process_time` (the
    CPU time of this process) suits work that runs on one thread, where it
    is the wall time an idle machine would show, however loaded this one is.
    Returns `({key: [seconds per call, ...]}, {key: calls per sample})`.
    """
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    calls = {k: calls_per_sample(fn, sample_seconds) for k, fn in runners.items()}
    times = {k: [] for k in runners}
    for _ in range(runs):
        for k, fn in runners.items():
            t = clock()
            for _ in range(calls[k]):
                fn()
            times[k].append((clock() - t) / calls[k])
    return times, calls


# ----------------------------------------------------------------- public
def check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise InvalidArgumentError(f"{name} must be >= {low}, got {value}")
    return int(value)


def keras_threads(threads):
    """TensorFlow's intra-op pool size; `threads` must match it (fixed at start-up).

    With a size given, ops also run one at a time (an inter-op pool of one)
    where TensorFlow has not started yet or already does so: otherwise
    independent ops share the cores with the op being timed, and one model's
    time moved by up to 20% from one round of timings to the next (MobileNetV2,
    batch 32, one intra-op thread; within 3% with one inter-op thread).
    """
    import tensorflow as tf

    current = tf.config.threading.get_intra_op_parallelism_threads()
    if threads is None:
        return current
    if threads != current:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        except RuntimeError:
            raise InvalidArgumentError(
                f"threads={threads}: TensorFlow's thread pool is already running with "
                f"{current or 'the default number of'} threads and cannot change; call "
                "tf.config.threading.set_intra_op_parallelism_threads before TensorFlow starts, "
                "or pass threads=None") from None
    if tf.config.threading.get_inter_op_parallelism_threads() != 1:
        try:
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # TensorFlow has started: its inter-op pool stays, and timings are noisier
    return threads


def runner_for(model, runtime, x, threads):
    """The runner of `model` (a keras.Model, or LiteRT bytes) on `runtime`."""
    if runtime == "litert":
        flat = model if isinstance(model, (bytes, bytearray)) else convert(model)
        return litert_runner(bytes(flat), x, threads)
    return keras_runner(model, x)


def _input_shape(model, runtime):
    if runtime == "litert" and isinstance(model, (bytes, bytearray)):
        return tuple(interpreter(bytes(model), 1).get_input_details()[0]["shape"][1:])
    return single_input_shape(model)


def _read_model(model, runtime):
    if runtime == "litert" and isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            return f.read()
    if isinstance(model, (bytes, bytearray)) and runtime != "litert":
        raise InvalidArgumentError("model is a LiteRT flatbuffer; measure it with runtime='litert'")
    return model


def measure_latency(model, runtime="litert", threads=None, batch_size=1, runs=20, warmup=2,
                    sample_seconds=SAMPLE_SECONDS, seed=0):
    """Measures the forward time of `model` on a runtime, on this machine.

    Times the model's own forward pass on random inputs of its input shape:
    no data pipeline, no pre- or post-processing. `"litert"` converts the
    model with `tf.lite.TFLiteConverter` (float32, builtin ops) and runs the
    interpreter with its default delegate (XNNPACK) on `threads` threads;
    `"keras"` runs a `tf.function` of `model(x, training=False)`, the graph a
    server runs, on TensorFlow's thread pool. Timings on a busy machine
    wander: compare models measured side by side, not across runs.

    Args:
        model: a one-input `keras.Model` with a fixed input shape; for
            `runtime="litert"` also a LiteRT flatbuffer (bytes) or the path of
            a `.tflite` file, timed as it is (e.g. an int8 export).
        runtime: `"litert"` or `"keras"`.
        threads: interpreter threads for LiteRT (default 1). For Keras,
            TensorFlow's intra-op pool size, which is fixed once TensorFlow
            has started: None (default) takes it as it is, a different number
            is an error after start-up.
        batch_size: samples per call (default 1).
        runs: timed samples; the median is reported (default 20).
        warmup: untimed calls before timing (tracing, allocation).
        sample_seconds: each sample times as many back-to-back calls as fill
            about this long, then divides.
        seed: seed of the random input.

    Returns:
        A `LatencyResult`: `median`, `q1`, `q3`, `iqr` (seconds per call),
        `runs`, `calls_per_run`, `batch_size`, `threads`.

    Example:

    >>> import keras, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 1))
    >>> outputs = keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs)))
    >>> result = kt.measure_latency(keras.Model(inputs, outputs), runtime="litert", runs=3)
    >>> result.runs, result.batch_size, result.threads, result.median > 0
    (3, 1, 1, True)
    """
    if runtime not in RUNTIMES:
        raise InvalidArgumentError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    batch_size = check_int("batch_size", batch_size, 1)
    runs = check_int("runs", runs, 1)
    warmup = check_int("warmup", warmup, 0)
    if not isinstance(sample_seconds, (int, float)) or not sample_seconds >= 0:
        raise InvalidArgumentError(f"sample_seconds must be a number >= 0, got {sample_seconds!r}")
    if threads is not None:
        threads = check_int("threads", threads, 1)
    model = _read_model(model, runtime)
    threads = (threads or 1) if runtime == "litert" else keras_threads(threads)
    shape = _input_shape(model, runtime)
    x = np.random.default_rng(seed).random((batch_size, *shape), dtype=np.float32)
    runner = runner_for(model, runtime, x, threads)
    times, calls = time_interleaved({0: runner}, runs, warmup, sample_seconds)
    return LatencyResult.from_samples(times[0], runtime=runtime, calls_per_run=calls[0],
                                      batch_size=batch_size, threads=threads)
