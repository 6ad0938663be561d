"""Per-layer attribution of a latency profile: what each layer's channels cost in the running model.

The per-kind fit of `keras_taylor.profile` gets whole-model times right, but
it shares one time per MAC (and per element) among all layers of a kind, so
its split of time between layers can be wrong by a factor of 4 (MobileNetV2
on LiteRT: it said an early expansion's channels save 2.2x what the last 1x1
convolution's do per MAC; the runtime measured 0.5x, docs/benchmarks.md,
"Latency attribution"). A latency goal prunes by that split, so it removed
the channels the model overrated, not the ones that cost the time.

What is measured here instead: one more variant per cluster of channel
groups (the groups whose first layer is the same layer: a convolution's
filters, or a residual stage's shared channels), cut to a fifth of its
groups with everything else whole. These are timed in the same round robin as
the profile's other variants, so the time each cut saves is what that
cluster costs in the model as the runtime runs it, with the batch norm and
activation fused in, the packing and the knock-on in its consumers. Each
layer call then gets its own time per MAC (`fit_rates`): NNLS in relative
error over all the variants, the cuts counted `CUT_WEIGHT` times, with each
layer's rate pulled toward a common rate of its kind (`PRIOR`), so a layer
that no cut moves, or that the timings cannot tell from its neighbour,
keeps its kind's. The profile keeps each rate as a `scale` on its kind's.

Why the cuts count more than the random-width variants: near full width
(where pruning starts and where its choices are made) the split between
layers decides what goes; the curve at heavy pruning is left to the timed
checks of `kt.prune_to_latency`, which refit only the fixed time and one
common factor (`profile.fit_level`) so that they do not undo the split.

Why cuts in the whole model and not HALP's tables of each layer timed on
its own: a layer run alone is not fused, packed or scheduled as it is in
the model, and the per-operator overhead that decides small layers' time
only shows in the whole graph. A cut costs one conversion per cluster (12
for ResNet-20, 25 for MobileNetV2), where tables cost one per layer and
width.
"""

import numpy as np

from keras_taylor import accounting, pruner
from keras_taylor.channel_tile import SMALLEST

# A cut keeps a fifth of a cluster: 50-70% pruning takes clusters that far, where narrow layers stop
# getting cheaper in proportion (per-pixel work, channel tiles), and the saving stands further above
# timing noise. Cuts to a half overrated MobileNetV2's savings (its 2x plans by prediction fell short);
# with cuts to a fifth they measured 1.98x (docs/benchmarks.md, latency_model at e596f09).
CUT_KEEP = 0.2
CUT_WEIGHT = 4.0  # a cut counts this many times in the fits: near full width, the split matters more than the curve
# Pull of a layer's time per MAC toward its kind's, per layer call: PRIOR over the call's share of the
# model's MACs. Why the share: a cut saves about that share of the time, while the timing noise is the
# same for every variant (0.5-4% between interpreters of one model here), so the smaller the share, the
# more of what its cut seems to save is noise, and the harder its rate is held at its kind's. One pull
# for all layers could not serve both ends (`python -m benchmarks.latency_prior --runtime litert` at
# b0d4d65, each pull's plans on the same timings, timed together): 0.02 (LiteRT's until this rule) let
# noise set the rates of ResNet50's 53 small clusters, and its 50% / 70% plans measured 1.69x / 2.34x
# for 2.00x / 3.33x (MobileNetV2's 70% plan 2.57x for 3.34x); 0.5 (the Keras runtime's) flattened
# ResNet-20's real differences, its 50% plan 1.89x where 0.02's was 2.14x. This rule at 0.01: ResNet50
# 1.83x / 2.90x, MobileNetV2 3.39x, ResNet-20 2.02x. One rule for both runtimes: on the Keras runtime
# its plans came within 3% of 0.5's but MobileNetV2's at 70% less, 3.08x to 3.20x (--runtime keras).
PRIOR = 0.01


def clusters(channel_graph):
    """{name of the first layer holding a group: its removable groups}."""
    layout = channel_graph.layout
    out = {}
    for g in layout.candidates(np.ones(layout.num_groups, bool)):
        layers = channel_graph.unit_layers.get(int(g)) or [f"layer {layout.members[int(g)][0][0]}"]
        out.setdefault(layers[0], []).append(int(g))
    return out


def cuts(channel_graph, keep=CUT_KEEP, round_to=SMALLEST):
    """`[(cluster name, alive set)]`: each cluster cut to `keep` of its groups (a multiple of `round_to` left)."""
    layout = channel_graph.layout
    full = np.ones(layout.num_groups, bool)
    out = []
    for name, groups in clusters(channel_graph).items():
        count = int(round(len(groups) * (1.0 - keep)))
        _, removed = layout.remove_in_order(groups[::-1], full, limit=count)
        removed = pruner.round_channels(layout, full, removed, len(removed), round_to, nearest=False)
        alive = pruner.without(full, removed)
        if not alive.all():
            out.append((name, alive))
    return out


def fit_rates(row_macs, row_kinds, shared, ms, weights=None, prior=PRIOR):
    """Each layer call's time per MAC, fitted to timed variants with a pull toward its kind's.

    The model: `ms ~ fixed + sum over rows of rate[row] * row_macs + shared @ coefficients`,
    every term >= 0, and each row's rate pulled toward a common rate of its
    kind (itself fitted) with weight `prior / share` per model-average ms per
    MAC, `share` being the row's share of the MACs (`macs_share`): a layer
    keeps its kind's rate unless the timings say otherwise, and the less of
    the time it holds, the more they must say. A row
    whose MACs no variant changes takes its kind's rate. In relative error,
    each variant counted `weights` times (default 1), as the per-kind fit.

    Args:
        row_macs: (variants, rows) MACs of each layer call in each variant.
        row_kinds: the kind of each row (kinds with no MACs are left out).
        shared: (variants, columns) of terms all layers share.
        ms: each variant's measured time.

    Returns:
        `(fixed, {kind: rate}, rate of each row, shared coefficients)`.
    """
    from scipy.optimize import nnls

    row_macs, ms = np.asarray(row_macs, dtype=np.float64), np.asarray(ms, dtype=np.float64)
    shared = np.asarray(shared, dtype=np.float64).reshape(len(ms), -1)
    row_kinds = np.asarray(row_kinds, dtype=object)
    w = np.ones(len(ms)) if weights is None else np.asarray(weights, dtype=np.float64)
    unit = float(np.median(ms / np.maximum(row_macs.sum(axis=1), 1.0)))  # ms per MAC, the model's average
    kinds = [k for k in dict.fromkeys(row_kinds) if row_macs[:, row_kinds == k].any()]
    moved = np.ptp(row_macs, axis=0) > 0
    moved_kind = np.array([kinds.index(k) for k in row_kinds[moved]], dtype=np.int64)
    n_kinds, n_moved = len(kinds), int(moved.sum())
    shared_unit = np.where(np.abs(shared).max(axis=0) > 0, np.abs(shared).max(axis=0), 1.0)
    unmoved_macs = [row_macs[:, (row_kinds == k) & ~moved].sum(axis=1) for k in kinds]
    columns = np.hstack([np.ones((len(ms), 1)), np.column_stack(unmoved_macs) * unit,
                         row_macs[:, moved] * unit, shared / shared_unit])
    strength = prior / macs_share(row_macs[:, moved])
    pull = np.zeros((n_moved, columns.shape[1]))
    pull[np.arange(n_moved), 1 + n_kinds + np.arange(n_moved)] = strength
    pull[np.arange(n_moved), 1 + moved_kind] = -strength
    design = np.vstack([columns * (w / ms)[:, None], pull])
    solution, _ = nnls(design, np.concatenate([w, np.zeros(n_moved)]), maxiter=50 * design.shape[1])
    kind_rate = {k: float(solution[1 + j]) * unit for j, k in enumerate(kinds)}
    rates = np.array([kind_rate.get(k, 0.0) for k in row_kinds])
    rates[moved] = solution[1 + n_kinds:1 + n_kinds + n_moved] * unit
    return float(solution[0]), kind_rate, rates, solution[1 + n_kinds + n_moved:] / shared_unit


def macs_share(row_macs):
    """Each row's share of the MACs of the largest timed model (about its share of the unpruned model's)."""
    return row_macs.max(axis=0) / row_macs.sum(axis=1).max()


def scale_vector(names, scales):
    """One scale per row name (1 where `scales` has none)."""
    scales = scales or {}
    return np.array([float(scales.get(name, 1.0)) for name in names])


def layer_scales(channel_graph, alive_sets, ms, weights=None, prior=PRIOR):
    """`({row name: its time per MAC over its kind's}, coefficients)` fitted to the timed `alive_sets`.

    `coefficients` as `keras_taylor.profile` keeps them: fixed, a time per
    MAC per kind and per element written and read.
    """
    tables, kinds = accounting.layer_cost_tables(channel_graph)
    row_macs = np.array([tables["macs"].per_row(alive) for alive in alive_sets])
    shared = np.array([[tables[k].total(alive) for k in ("activations", "inputs")] for alive in alive_sets])
    fixed, kind_rate, rates, (activations, inputs) = fit_rates(row_macs, kinds, shared, ms, weights, prior)
    # a kind whose common rate came out 0 is written as its layers' mean, so each scale stays finite
    per_kind = {k: v if v > 0 else float(np.mean(rates[kinds == k])) for k, v in kind_rate.items()}
    scales = {}
    for name, kind, rate in zip(tables["macs"].names, kinds, rates):
        if per_kind.get(kind, 0.0) > 0:
            scales.setdefault(name, float(rate / per_kind[kind]))  # a shared layer: its first call's
    coefficients = dict(per_kind, fixed=fixed, activations=float(activations), inputs=float(inputs))
    return scales, coefficients


def row_cost_table(channel_graph, coefficients, scales=None):
    """The latency model's `costs.LayerCosts` (ms, no fixed part): each row's time per MAC is its
    kind's times its scale (default 1); the times per element written and read are shared."""
    tables, kinds = accounting.layer_cost_tables(channel_graph)
    per_mac = np.array([coefficients.get(k, 0.0) for k in kinds]) * scale_vector(tables["macs"].names, scales)
    table = tables["macs"].combined(per_mac)
    table = table.plus(tables["activations"].combined(coefficients["activations"]))
    return table.plus(tables["inputs"].combined(coefficients["inputs"]))
