"""Per-layer reports (`analyze`) and the maximum-reduction analysis."""

import numpy as np
import pandas as pd

from keras_taylor import accounting, handlers
from keras_taylor.graph import ChannelGraph, Options, hidden_sources, read_model
from keras_taylor.masking import ChannelMask
from keras_taylor.model import TaylorPrunableModel

COLUMNS = [
    "name", "type", "output_shape", "num_learnables", "learnables_reduction",
    "multiply_accumulates", "num_filters", "num_pruned_filters", "prunable", "blocked_by", "reason",
]


def _graph_and_alive(model_or_pm, prune_dense=False):
    if isinstance(model_or_pm, TaylorPrunableModel):
        return model_or_pm.channel_graph, model_or_pm.alive
    graph = ChannelGraph(read_model(model_or_pm), Options(prune_dense=prune_dense))
    return graph, np.ones(graph.num_units, dtype=bool)


def analyze(model_or_pm, prune_dense=False, latency_profile=None):
    """Per-layer table of sizes, pruning state and blockers.

    Args:
        model_or_pm: a `keras.Model` or a `TaylorPrunableModel`.
        prune_dense: for a plain model, count Dense units as prunable.
        latency_profile: optional `kt.latency_profile(...)` of this
            architecture: adds `predicted_latency_ms`, the time of each
            layer (over its calls, after pruning) that pruning can change;
            the profile's `fixed_ms` is the rest of the model's time.

    Returns:
        A pandas DataFrame, one row a layer, with `name`, `type`,
        `output_shape`, `num_learnables` (after pruning), `learnables_reduction`
        (fraction removed vs the unpruned layer), `multiply_accumulates`
        (per sample, over every call of the layer, after pruning; their sum
        is the model's), `num_filters` (output
        channels it creates), `num_pruned_filters`, `prunable`, and for
        every candidate layer that cannot be pruned (a convolution, or a
        Dense layer) `reason`, and `blocked_by` when another layer stops it
        (the first one found; `reason` names every blocker). A Dense layer
        without `prune_dense` has a reason but no `blocked_by`. For a layer keras_taylor cannot see into that
        holds convolutions, `reason` says how many and the `kt.register_layer`
        line that would teach it.

    Example:

    >>> import keras, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3)(inputs)
    >>> outputs = keras.layers.Softmax()(x)
    >>> table = kt.analyze(keras.Model(inputs, outputs)).set_index("name")
    >>> table.loc["conv2d", "blocked_by"]
    'softmax'
    >>> int(table.loc["conv2d", "multiply_accumulates"])  # 6x6 positions x 4 x 27
    3888
    """
    graph, alive = _graph_and_alive(model_or_pm, prune_dense)
    full = np.ones(graph.num_units, dtype=bool)
    before = {c.name: c for c in accounting.count_layers(graph, full)}
    macs = accounting.layer_multiply_accumulates(graph, alive)
    ms = latency_profile.layer_latency(graph, alive) if latency_profile is not None else None
    hidden = hidden_sources(graph.flat)
    rows = []
    for node, count in zip(
        accounting.first_nodes(graph.flat), accounting.count_layers(graph, alive)
    ):
        if isinstance(node.layer, ChannelMask):
            continue
        units = graph.layer_units.get(node.name)
        original = before[node.name].learnables
        blocked_by = reason = None
        prunable = False
        filters = pruned = 0
        if units is not None:
            filters = len(units)
            pruned = int((~alive[units]).sum())
            prunable = bool(graph.unit_prunable[units].any())
            if not prunable:
                blocked_by, reason = _why_not_prunable(graph, node)
        if node.name in hidden:
            reason = hidden[node.name].describe()
        shape = node.output_shapes[0] if node.output_shapes else None
        rows.append({
            "name": node.name,
            "type": handlers.plain_class(type(node.layer)).__name__,
            "output_shape": _shrunk_shape(shape, graph, node, alive),
            "num_learnables": count.learnables,
            "learnables_reduction": (1 - count.learnables / original) if original else 0.0,
            "multiply_accumulates": macs.get(node.name, 0),
            "num_filters": filters,
            "num_pruned_filters": pruned,
            "prunable": prunable,
            "blocked_by": blocked_by,
            "reason": reason,
        })
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if ms is not None:
        frame["predicted_latency_ms"] = [ms.get(name, 0.0) for name in frame.name]
    return frame


PRUNE_DENSE_OFF = "Dense units are pruned only with prune_dense=True"


def _why_not_prunable(graph, node):
    """(blocked_by, reason) of a candidate layer that is not prunable, else (None, None).

    Candidates are the layers that create channels a criterion may remove:
    convolution filters, and Dense units (with `prune_dense`).
    """
    role = graph.layer_roles.get(node.name)
    if role == handlers.SOURCE:
        found = graph.blockers_of(node.name)
        if not found:
            return None, None
        reason = found[0][1]
        others = [f"{layer}: {why}" for layer, why in found[1:]]
        if others:
            reason += "; also blocked by " + "; ".join(others)
        return found[0][0], reason
    if handlers.get_handler(node.layer).role_option == "prune_dense":
        return None, PRUNE_DENSE_OFF
    return None, None


def _shrunk_shape(shape, graph, node, alive):
    if not shape or not node.outputs:
        return shape
    channels = int(alive[graph.tensor_units[node.outputs[0]]].sum())
    return tuple(shape[:-1]) + (channels,)


def max_reduction(model, prune_dense=False):
    """The largest fraction of learnables that filter pruning can remove.

    MATLAB's "Analyze for compression" figure: every prunable group is
    removed except one channel per layer.

    Args:
        model: a `keras.Model` or a `TaylorPrunableModel` (from its unpruned
            state).
        prune_dense: for a plain model, count Dense units as prunable.

    Returns:
        A float in [0, 1).

    Example:

    >>> import keras, keras_taylor as kt
    >>> inputs = keras.Input((4, 4, 1))
    >>> x = keras.layers.Conv2D(4, 1, use_bias=False)(inputs)
    >>> model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False)(x))
    >>> kt.max_reduction(model)  # 8 weights -> 2 when one filter is left
    0.75
    """
    graph, _ = _graph_and_alive(model, prune_dense)
    full = np.ones(graph.num_units, dtype=bool)
    before = accounting.total_learnables(graph, full)
    alive, _ = graph.remove(graph.prunable_units, full)
    after = accounting.total_learnables(graph, alive)
    return (1 - after / before) if before else 0.0


def compare(original, pruned):
    """Per-layer sizes of `original` next to those of its pruned version.

    Args:
        original: the `keras.Model` before pruning.
        pruned: a stripped model derived from it (layer names are kept).

    Returns:
        A DataFrame with `name`, `type`, `filters_before`, `filters_after`,
        `learnables_before`, `learnables_after` and `learnables_reduction`,
        one row a layer of `original` that has learnables. The filter
        columns are `<NA>` (not applicable) for layers that create no
        channels of their own (batch normalization, depthwise convolution:
        their channels follow the layer before).

    Example:

    >>> import keras, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3)(inputs)
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    >>> float(kt.compare(model, model).learnables_reduction.max())
    0.0
    >>> x = keras.layers.BatchNormalization(name="bn")(x)
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    >>> kt.compare(model, model).set_index("name").loc["bn", "filters_before"]
    <NA>
    """
    before = analyze(original)
    after = analyze(pruned).set_index("name")
    rows = []
    for row in before.itertuples():
        if row.num_learnables == 0 or row.name not in after.index:
            continue
        new = after.loc[row.name]
        creates = row.num_filters > 0
        rows.append({
            "name": row.name,
            "type": row.type,
            "filters_before": int(row.num_filters) if creates else pd.NA,
            "filters_after": int(new.num_filters) if creates else pd.NA,
            "learnables_before": int(row.num_learnables),
            "learnables_after": int(new.num_learnables),
            "learnables_reduction": 1 - int(new.num_learnables) / row.num_learnables,
        })
    frame = pd.DataFrame(rows, columns=COMPARE_COLUMNS)
    return frame.astype({"filters_before": "Int64", "filters_after": "Int64"})


COMPARE_COLUMNS = [
    "name", "type", "filters_before", "filters_after", "learnables_before", "learnables_after", "learnables_reduction",
]
