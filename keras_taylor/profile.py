"""`latency_profile`: where a model's time goes on a runtime, and what pruning a channel group saves.

The model: a call's latency is a fixed part no pruning removes (operator
dispatch, the input and output, layers that keep their width) plus, per
layer call, a time per multiply-accumulate of its kind, a time per output
element and a time per input element read:

    ms = fixed + sum over layers of (t_kind * MACs + t_out * out_elements + t_in * in_elements)

with kinds `conv` (kxk), `pointwise` (1x1 convolution), `depthwise` and
`dense`. Each term is bilinear in a layer's alive input and output
channels (`costs.LayerCosts`), so a channel group's latency saving includes
the knock-on in the layers that consume it and follows the widths as they
shrink. Why these terms: a kxk convolution and a 1x1 one run different
XNNPACK / oneDNN kernels (im2col or an indirection buffer against a plain
GEMM) with different times per MAC, and MobileNetV2 is mostly 1x1 while
ResNet-20 is all 3x3; a layer also packs or reads its whole input and
writes its whole output, work linear in the channel counts that does not
shrink with the square of the width. NNLS sets a term to 0 where the
timings do not need it (ResNet-20 on LiteRT: fixed and kxk conv only).
What took the errors within 10%, run by run, is in docs/benchmarks.md
("Latency model"): the variants, the CPU-time clock, the fit in relative
error, per-layer attribution with cuts to a fifth, the narrowest variant,
small layers held at their kind's rate (`attribution.PRIOR`): 26 of 30
plans within 10% at b0d4d65. Known limits: ResNet50 on LiteRT (-11% to
-18% at 50-70% less), whose time falls more slowly than its MACs (a refit
on a second round of timings misses alike), and MobileNetV2 at Keras batch
32 at 70% less (-21%); the timed loop of `kt.prune_to_latency` closes those.
Channel tiles: a kernel computes output channels a SIMD register at a
time (16 floats with AVX-512), so below a multiple of the tile a layer's
own time does not fall; its consumers' does, since they read fewer input
channels. That step is not bilinear and is not in the model: the variants
keep multiples of 8 channels, `round_to=8` is what to prune with when the
goal is latency, and the profile measures the tile
(`keras_taylor.channel_tile`) and reports it as `channel_tile`. Why not
round to the tile: ResNet-20's 16-channel stage then cannot be cut at
all, and on LiteRT its plans stopped at 2.15x, where round_to=8 reached
3.41x (docs/benchmarks.md, "Channel tile").

Per-layer attribution (`attribute=True`, the default): the per-kind fit
gets totals right but splits them between layers wrongly (one time per MAC
for every 3x3 convolution, say), so the profile also times one cut per
cluster of channel groups and fits each layer call its own time per MAC,
pulled toward its kind's (`keras_taylor.attribution` says how and why).

Why whole-model timings with a fitted model, not per-layer tables: the
runtime does not run layers on their own. The converter fuses batch norm
and activations into convolutions, XNNPACK packs and schedules the whole
graph, and the fixed per-operator cost only shows in the whole model. A
few whole-model variants (each one conversion and one timing, whatever the
depth) are timed round robin, so machine load falls on all alike, and the
handful of per-term times are fitted by non-negative least squares. The
variants are the unpruned model and ones whose MACs fall evenly from 100%
to 15% of its MACs, alternately with one keep fraction for every layer and
with random per-layer fractions (they tell the kinds apart), and the
narrowest model pruning can make, every layer at 8 channels (it pins the
fixed part). Each variant's time is the fastest of its samples:
other work on a shared machine only ever adds time. Per-layer tables would
need a conversion and a timing per layer and width (hundreds for
MobileNetV2) and still miss the fusion and the fixed cost.

The errors left are one-sided (the pruner removes first what the model
overrates), so for a latency goal `kt.prune_to_latency` closes the loop:
it times the model the pruner chose, refits with it, and chooses again
(`keras_taylor/latency_goal.py`).

Profiles are cached on disk (`profile_cache.py` says what the key holds) in
`$KERAS_TAYLOR_CACHE` or `~/.cache/keras_taylor`, so a second run costs nothing.
"""

import time

import numpy as np
import pandas as pd

from keras_taylor import accounting, attribution, channel_tile, latency
from keras_taylor.errors import InvalidArgumentError
from keras_taylor.latency_fit import FEATURES, features, fit, fit_level, multiply_accumulates, sample_table
from keras_taylor.latency_variants import narrowest, variants
from keras_taylor.model import TaylorPrunableModel
from keras_taylor.profile_cache import DEFAULT_SAMPLES, DEFAULT_SEED, cache_key, cache_path, read_entry, write_entry
from keras_taylor.surgery import strip_pruning

class LatencyProfile:
    """A fitted latency model of one architecture on one runtime and machine.

    Attributes:
        coefficients: dict: `fixed` (ms per call), `conv`, `pointwise`,
            `depthwise`, `dense` (ms per multiply-accumulate of the kind),
            `activations` and `inputs` (ms per element written and read).
        scales: {layer call name: its time per MAC over its kind's}, measured
            by one cut per cluster of channel groups (empty with
            `attribute=False`; a layer not named has 1).
        samples: DataFrame of the timed variants: `multiply_accumulates`,
            `measured_ms`, `predicted_ms`, the `weight` of each in the fit
            and its features (`x_fixed`, `x_conv`, ...).
        key: the cache key; `runtime`, `threads`, `batch_size`.
        channel_tile: the runtime's channel tile, measured (8, 16 or 32) or
            given (`tile`): below a multiple of it a layer's own time does
            not fall (its consumers' still does).
        from_cache: whether it was read from the cache.
        layers: DataFrame, one row per layer call of the unpruned model:
            `name`, `kind`, `multiply_accumulates`, `activation_elements`,
            `scale`, `latency_ms` (the time pruning can change) and `share`
            of the whole; `fixed_ms` is the rest.

    Example:

    >>> import keras, numpy as np, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 3))
    >>> outputs = keras.layers.Conv2D(2, 1)(keras.layers.Conv2D(4, 3)(inputs))
    >>> fake = lambda models, *args: [1e-3 + 1e-9 * m.count_params() for m in models]
    >>> profile = kt.latency_profile(keras.Model(inputs, outputs), timer=fake, cache_dir=False)
    >>> round(profile.fixed_ms, 3)  # the 1 ms no pruning removes
    1.0
    """

    def __init__(self, coefficients, samples, key, runtime, threads, batch_size, graph, from_cache=False,
                 path=None, scales=None, tile=channel_tile.SMALLEST):
        self.coefficients = {k: float(coefficients.get(k, 0.0)) for k in FEATURES}
        self.scales = dict(scales or {})
        self.samples = samples
        self.key, self.runtime, self.threads, self.batch_size = key, runtime, threads, batch_size
        self.channel_graph = graph
        self.channel_tile = int(tile)
        self.from_cache = from_cache
        self.path = path
        self.timer = time_models  # what times more models for it (`kt.prune_to_latency`, `compress`)

    def add_samples(self, cases, ms, weight):
        """Refits with more timed models, each counted `weight` times.

        `cases`: one `(channel_graph, alive)` per model, `ms` its time. Used
        by `kt.prune_to_latency` to make the model right where the pruner's
        choices lie; the layer scales stay as measured, the per-kind times and
        the fixed part are fitted again, and the cache entry is rewritten.
        """
        old = self.samples
        x = np.vstack([self.features(graph, [alive]) for graph, alive in cases])
        design = np.vstack([old[[f"x_{k}" for k in FEATURES]].to_numpy(), x])
        ms = np.concatenate([old.measured_ms.to_numpy(), np.asarray(ms, dtype=np.float64)])
        weights = np.concatenate([old.weight.to_numpy(), np.full(len(x), float(weight))])
        macs = np.concatenate([old.multiply_accumulates.to_numpy(),
                               [multiply_accumulates(graph, [alive])[0] for graph, alive in cases]])
        labels = list(old.variant) if "variant" in old else [""] * len(old)
        # with layer scales, the split between layers stays as measured: the timings move only the fixed
        # time and one factor on the rest (a free refit could give every layer's time to one shared term)
        self.coefficients = fit_level(design, ms, weights, self.coefficients) if self.scales else fit(design, ms, weights)
        self.samples = sample_table(design, ms, self.coefficients, weights, labels + ["timed check"] * len(x), macs)
        if self.path is not None:
            save(self.path, self)

    @property
    def fixed_ms(self):
        return self.coefficients["fixed"]

    def cost_table(self, channel_graph):
        """The `costs.LayerCosts` (milliseconds) of this model on `channel_graph`'s groups."""
        table = attribution.row_cost_table(channel_graph, self.coefficients, self.scales)
        return table.combined(1.0, base=self.fixed_ms)

    def features(self, channel_graph, alive_sets):
        """The feature rows of `alive_sets` on `channel_graph`, with this profile's layer scales."""
        return features(channel_graph, alive_sets, self.scales)

    def predict_ms(self, alive=None, channel_graph=None):
        """Predicted milliseconds per call with the `alive` channel groups (default: all)."""
        graph = channel_graph or self.channel_graph
        alive = np.ones(graph.num_units, bool) if alive is None else alive
        return self.cost_table(graph).total(alive)

    def layer_latency(self, channel_graph, alive):
        """Predicted ms of each layer (summed over its calls), fixed part left out."""
        table = self.cost_table(channel_graph)
        out = {}
        for name, ms in zip(table.names, table.per_row(alive)):
            out[name] = out.get(name, 0.0) + float(ms)
        return out

    @property
    def layers(self):
        graph = self.channel_graph
        alive = np.ones(graph.num_units, bool)
        tables, kinds = accounting.layer_cost_tables(graph)
        ms = self.cost_table(graph).per_row(alive)
        frame = pd.DataFrame({
            "name": tables["macs"].names, "kind": kinds,
            "multiply_accumulates": tables["macs"].per_row(alive).astype(np.int64),
            "activation_elements": tables["activations"].per_row(alive).astype(np.int64),
            "scale": attribution.scale_vector(tables["macs"].names, self.scales),
            "latency_ms": ms,
        })
        frame["share"] = frame.latency_ms / (ms.sum() + self.fixed_ms)
        return frame

    def __repr__(self):
        return (f"<LatencyProfile {self.runtime} threads={self.threads} batch={self.batch_size}: "
                f"{self.predict_ms():.3f} ms predicted, {self.fixed_ms:.3f} ms fixed, "
                f"channel tile {self.channel_tile}>")


# -------------------------------------------------------------- measuring
def time_models(models, runtime, threads, batch_size, runs=11):
    """Seconds per call of each model: the fastest of `runs` samples, timed round robin on `runtime`.

    The fastest sample, not the median: on a shared machine other work only
    ever adds time, so the least disturbed sample is the model's own. With
    one thread the clock is the process's CPU time, which is the wall time
    of an idle machine and does not count the time other work holds the
    core (on a machine at load 7 on 2 cores, wall-clock minimums of one
    model wandered by 2x from run to run); with a thread pool, the wall clock.
    """
    shape = latency.single_input_shape(models[0])
    x = np.random.default_rng(0).random((batch_size, *shape), dtype=np.float32)
    threads = threads if runtime == "litert" else latency.keras_threads(threads)
    runners = {k: latency.runner_for(m, runtime, x, threads) for k, m in enumerate(models)}
    clock = time.process_time if threads == 1 else time.perf_counter
    times, _ = latency.time_interleaved(runners, runs, clock=clock)
    return [float(np.min(times[k])) for k in range(len(models))]


def variant_sets(graph, samples, seed, attribute):
    """`(alive sets, labels)` that a profile times: the variants, the narrowest model, then (with
    `attribute`) one cut per cluster; each layer a multiple of 8 channels."""
    round_to = channel_tile.SMALLEST
    sets = variants(graph, samples, seed, round_to=round_to)
    if len({a.tobytes() for a in sets}) < 3:
        # Layers of 8 channels or fewer cannot shrink in steps of 8: aligned
        # variants would all be the same model and the fit would see no cost.
        round_to = 1
        sets = variants(graph, samples, seed, round_to=round_to)
    labels = ["unpruned"] + [f"variant {k}" for k in range(1, len(sets))]
    floor = narrowest(graph, round_to)
    if not any(np.array_equal(floor, alive) for alive in sets):
        sets, labels = sets + [floor], labels + ["narrowest"]
    if attribute:
        cut = attribution.cuts(graph, round_to=round_to)
        sets += [alive for _, alive in cut]
        labels += [f"cut {name}" for name, _ in cut]
    return sets, labels


def fit_timings(graph, sets, labels, ms, attribute, prior=attribution.PRIOR):
    """`(coefficients, samples table, scales)` fitted to the times `ms` of `variant_sets`' alive sets.

    `prior`: the pull of each layer's rate toward its kind's (`attribution.fit_rates`).
    """
    scales, weights = {}, np.where([label.startswith("cut ") for label in labels], attribution.CUT_WEIGHT, 1.0)
    if attribute:
        scales, coefficients = attribution.layer_scales(graph, sets, ms, weights, prior=prior)
        coefficients = {k: coefficients.get(k, 0.0) for k in FEATURES}
    else:
        coefficients = fit(features(graph, sets), ms)
    x = features(graph, sets, scales)
    return coefficients, sample_table(x, ms, coefficients, weights, labels, multiply_accumulates(graph, sets)), scales


def _measure(pm, runtime, threads, batch_size, samples, seed, timer, attribute, tile):
    graph = pm.channel_graph
    if tile is None:
        tile = channel_tile.measure(timer, runtime, threads, batch_size)
    sets, labels = variant_sets(graph, samples, seed, attribute)
    seconds = timer(_stripped_all(pm, sets), runtime, threads, batch_size)
    ms = 1000.0 * np.asarray(seconds, dtype=np.float64)
    coefficients, table, scales = fit_timings(graph, sets, labels, ms, attribute)
    if not any(coefficients[k] > 0 for k in FEATURES[1:]):
        raise InvalidArgumentError(
            f"latency_profile: the {len(sets)} variants of '{pm.net.name}' timed {ms.min():.3f}-"
            f"{ms.max():.3f} ms on {runtime}, with no time that narrower layers remove; pruning "
            "cannot be steered by this latency. Prune for cost='macs', or profile a larger input "
            "or batch_size.")
    return coefficients, table, scales, tile


def _stripped_all(pm, alive_sets):
    before = pm.alive
    models = []
    try:
        for alive in alive_sets:
            pm.set_unit_alive(alive)
            models.append(strip_pruning(pm))
    finally:
        pm.set_unit_alive(before)
    return models


def _check(runtime, threads, batch_size, samples):
    if runtime not in latency.RUNTIMES:
        raise InvalidArgumentError(f"runtime must be one of {latency.RUNTIMES}, got {runtime!r}")
    if threads is not None:
        threads = latency.check_int("threads", threads, 1)
    elif runtime == "litert":
        threads = 1
    batch_size = latency.check_int("batch_size", batch_size, 1)
    samples = latency.check_int("samples", samples, 3)
    return threads, batch_size, samples


def latency_profile(model, runtime="litert", threads=1, batch_size=1, samples=DEFAULT_SAMPLES, cache_dir=None,
                    seed=DEFAULT_SEED, timer=None, attribute=True, tile=None):
    """Measures where a model's time goes on a runtime, and fits a latency model for pruning.

    Measures the runtime's channel tile (four one-layer probes), times
    `samples` stripped variants of the model (the unpruned one and ones
    with random per-layer widths) on the runtime, round robin, and fits
    a fixed time plus a time per multiply-accumulate of each layer kind and
    per output element (see the module's docstring for why). The result
    predicts the latency of any set of kept channel groups, which is what
    `cost="latency"` prunes by. Cached on disk per (architecture, runtime,
    threads, batch size, machine): a second call costs nothing.

    Args:
        model: a one-input `keras.Model` with a fixed input shape, or a
            `TaylorPrunableModel` (its pruning state is left as it was).
        runtime: `"litert"` (the LiteRT interpreter, XNNPACK) or `"keras"`.
        threads: interpreter threads for LiteRT (default 1); for Keras,
            TensorFlow's intra-op pool size (None: as it is).
        batch_size: samples per call (default 1).
        samples: how many variants to time (at least 3; default 8), besides
            the narrowest model and the cuts.
        cache_dir: where profiles are kept (default `$KERAS_TAYLOR_CACHE`
            or `~/.cache/keras_taylor`); False: no cache.
        seed: seed of the variants' widths.
        timer: `timer(models, runtime, threads, batch_size) -> seconds per
            call of each`, to replace the real timing (tests).
        attribute: also time one cut per cluster of channel groups (a
            fifth of its groups left) and fit a scale per layer, so the time is split
            between layers as the runtime spends it (`keras_taylor.attribution`;
            12 more variants for ResNet-20, 25 for MobileNetV2). False: the
            per-kind fit alone, which splits time by MACs and elements.
        tile: the runtime's channel tile, if known (e.g. 4 for ARM NEON);
            None (default): measured with four one-layer probes
            (`keras_taylor.channel_tile`).

    Returns:
        A `LatencyProfile`: `layers` (DataFrame of where the time goes),
        `fixed_ms`, `predict_ms(alive)`, `samples` (measured vs fitted) and
        `cost_table(channel_graph)` for the pruner.

    Example:

    >>> import keras, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    >>> outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    >>> fake = lambda models, *args: [1e-3 + 1e-6 * m.count_params() for m in models]
    >>> profile = kt.latency_profile(keras.Model(inputs, outputs), timer=fake, cache_dir=False)
    >>> list(profile.layers.columns)
    ['name', 'kind', 'multiply_accumulates', 'activation_elements', 'scale', 'latency_ms', 'share']
    >>> pm = kt.TaylorPrunableModel(keras.Model(inputs, outputs))
    >>> pm.latency_profile = profile  # now pm.update_prunables(cost="latency", ...) works
    """
    threads, batch_size, samples = _check(runtime, threads, batch_size, samples)
    if tile is not None:
        tile = latency.check_int("tile", tile, 1)
    if not isinstance(attribute, bool):
        raise InvalidArgumentError(f"attribute must be True or False, got {attribute!r}")
    if isinstance(model, TaylorPrunableModel):
        pm = model
        latency.single_input_shape(pm.net)
    else:
        latency.single_input_shape(model)
        pm = TaylorPrunableModel(model)
    graph = pm.channel_graph
    key = cache_key(graph, runtime, threads, batch_size, samples, seed, attribute, tile)
    path = None if cache_dir is False else cache_path(cache_dir, key)
    profile = load(path, key, runtime, threads, batch_size, graph)
    if profile is not None:
        profile.timer = timer or time_models
        return profile
    coefficients, table, scales, tile = _measure(pm, runtime, threads, batch_size, samples, seed,
                                                 timer or time_models, attribute, tile)
    profile = LatencyProfile(coefficients, table, key, runtime, threads, batch_size, graph, path=path,
                             scales=scales, tile=tile)
    profile.timer = timer or time_models
    if path is not None:
        save(path, profile)
    return profile


def load(path, key, runtime, threads, batch_size, graph):
    """The profile in cache entry `path`, or None where there is none (or it is damaged: measured again)."""
    saved = read_entry(path)
    try:
        return None if saved is None else LatencyProfile(
            saved["coefficients"], pd.DataFrame(saved["samples"]), key, runtime, threads, batch_size, graph,
            from_cache=True, path=path, scales=saved["scales"], tile=saved["channel_tile"])
    except (ValueError, KeyError):
        return None


def save(path, profile):
    """Writes `profile` to its cache entry."""
    write_entry(path, {"coefficients": profile.coefficients, "scales": profile.scales,
                       "channel_tile": profile.channel_tile, "samples": profile.samples.to_dict("list"),
                       "runtime": profile.runtime, "threads": profile.threads, "batch_size": profile.batch_size})
