"""Counting learnables of a channel graph for any set of removed groups.

"Learnables" follow MATLAB's meaning: weights a layer trains (kernels,
biases, batch-norm gamma/beta), not its state (moving statistics) and not
keras_taylor's masks. Every layer of the model counts, the ones keras_taylor
cannot prune through included (LSTM, MultiHeadAttention, custom layers and
the layers they hold), so goals and reductions are fractions of the whole
model; a variable two layers share counts once. Counts come from the shapes the weights will have after
`strip_pruning`, so they equal what the stripped model reports.
"""

import dataclasses

import numpy as np

from keras_taylor import _compat, costs, handlers
from keras_taylor.graph import Keep, sliced_shapes
from keras_taylor.masking import ChannelMask


def learnable_names(layer):
    """Names of the weights `layer` was built to train (frozen or not).

    Weights of layers it holds count too (a `SpectralNormalization`'s
    wrapped kernel).
    """
    layers = [layer] + _compat.all_sublayers(layer)
    return {v.name for sub in layers for v in _compat.created_trainable_weights(sub)}


@dataclasses.dataclass
class LayerCount:
    name: str
    type: str
    learnables: int
    parameters: int
    shapes: dict  # weight name -> shape after slicing


def first_nodes(flat):
    """The first node of each distinct layer, in graph order."""
    seen, out = set(), []
    for node in flat.nodes:
        if id(node.layer) not in seen:
            seen.add(id(node.layer))
            out.append(node)
    return out


def count_layers(channel_graph, alive, skip=()):
    """`LayerCount` per layer when channel groups with `alive[g]` False are removed.

    `skip`: layer classes left out of the count.
    """
    counts = []
    seen = set()  # a variable two layers share (tied weights) counts once
    for node in first_nodes(channel_graph.flat):
        if isinstance(node.layer, tuple(skip)):
            continue
        weights = getattr(node.layer, "weights", [])
        keep = channel_graph.keep(node, alive)
        shapes = sliced_shapes(node, keep) if weights else []
        trainable = learnable_names(node.layer) if weights else set()
        learn = params = 0
        shape_map = {}
        for variable, shape in zip(weights, shapes):
            if id(variable) in seen:
                continue
            seen.add(id(variable))
            size = int(np.prod(shape)) if shape else 1
            params += size
            if variable.name in trainable:
                learn += size
                shape_map[variable.name] = shape
        counts.append(
            LayerCount(node.name, type(node.layer).__name__, learn, params, shape_map)
        )
    return counts


def total_learnables(channel_graph, alive, skip=(ChannelMask,)):
    return sum(c.learnables for c in count_layers(channel_graph, alive, skip))


def layer_multiply_accumulates(channel_graph, alive):
    """Multiply-accumulates per sample of each layer with the `alive` channel groups kept.

    A dict from layer name to its count over every call of the layer (a
    shared layer works at each of its nodes), with the weight shapes the
    stripped model will have. Layers without weights are left out.
    """
    counts = {}
    for node in channel_graph.flat.nodes:
        weights = getattr(node.layer, "weights", [])
        if not weights:
            continue
        handler = handlers.get_handler(node.layer)
        shapes = sliced_shapes(node, channel_graph.keep(node, alive))
        macs = handler.multiply_accumulates(node, {v.name: s for v, s in zip(weights, shapes)})
        counts[node.name] = counts.get(node.name, 0) + int(macs)
    return counts


def total_multiply_accumulates(channel_graph, alive):
    """Multiply-accumulates per sample of the model with the `alive` channel groups kept."""
    return sum(layer_multiply_accumulates(channel_graph, alive).values())


# ----------------------------------------------------- costs per channel group
def _probe(node, handler, n_in, n_out, trainable):
    """(learnables, multiply-accumulates) of `node` with `n_in` / `n_out` channels kept."""
    inputs = [np.arange(_channels(s)) for s in node.input_shapes]
    if inputs:
        inputs[0] = inputs[0][:n_in]
    keep = Keep(inputs, [np.arange(n_out)] + [np.arange(_channels(s)) for s in node.output_shapes[1:]])
    shapes = sliced_shapes(node, keep)
    weights = node.layer.weights
    learn = sum(int(np.prod(s)) if s else 1 for v, s in zip(weights, shapes) if v.name in trainable)
    macs = handler.multiply_accumulates(node, {v.name: s for v, s in zip(weights, shapes)})
    return learn, int(macs)


def _channels(shape):
    return int(shape[-1] or 0) if shape else 0


def _kind(layer, macs):
    name = type(layer).__name__
    if "Depthwise" in name:
        return "depthwise"
    if not macs:
        return "other"
    if "Dense" in name:
        return "dense"
    kernel = getattr(layer, "kernel_size", None) or ()
    return "pointwise" if kernel and all(k == 1 for k in kernel) else "conv"


def _positions(shape):
    """Spatial positions of a `(batch, ..., channels)` shape (1 for a vector)."""
    return float(np.prod([d or 1 for d in shape[1:-1]])) if shape else 1.0


def layer_cost_tables(channel_graph):
    """Per layer call, its learnables, MACs and output elements as bilinear cost tables.

    Each cost is `c0 + c_in i + c_out o + c_io i o` of the alive input (`i`)
    and output (`o`) channels of the call, its coefficients read off the
    sliced weight shapes at full and at half widths (exact for kernels,
    biases and normalisation weights). A shared layer's weights count at its
    first call; its work at every call.

    Returns:
        `(tables, kinds)`: `tables` maps `"learnables"`, `"macs"`,
        `"activations"` (output elements per sample) and `"inputs"` (input
        elements per sample that a layer with weights reads) to
        `costs.LayerCosts` over the same rows; `kinds` is one of `"conv"`,
        `"pointwise"` (1x1 convolution), `"depthwise"`, `"dense"`, `"other"`
        per row.
    """
    graph = channel_graph
    seen = set()
    names, ins, outs, kinds = [], [], [], []
    coef = {k: [] for k in ("learnables", "macs", "activations", "inputs")}
    for node in graph.flat.nodes:
        if isinstance(node.layer, ChannelMask) or not node.outputs:
            continue
        i_groups = graph.tensor_units[node.inputs[0]] if node.inputs else np.zeros(0, np.int64)
        o_groups = graph.tensor_units[node.outputs[0]]
        i, o = len(i_groups), len(o_groups)
        learn_c = macs_c = (0.0, 0.0, 0.0, 0.0)
        if getattr(node.layer, "weights", []):
            trainable = learnable_names(node.layer) if id(node.layer) not in seen else set()
            seen.add(id(node.layer))
            learn_c, macs_c = _fit(node, trainable, i, o)
        positions = _positions(node.output_shapes[0])
        names.append(node.name)
        ins.append(i_groups)
        outs.append(o_groups)
        kinds.append(_kind(node.layer, macs_c != (0.0, 0.0, 0.0, 0.0)))
        coef["learnables"].append(learn_c)
        coef["macs"].append(macs_c)
        coef["activations"].append((0.0, 0.0, positions, 0.0))
        # a layer with weights reads its whole input (im2col, packing): linear in i
        reads = _positions(node.input_shapes[0]) if macs_c != (0.0, 0.0, 0.0, 0.0) and node.input_shapes else 0.0
        coef["inputs"].append((0.0, reads, 0.0, 0.0))
    tables = {
        k: costs.LayerCosts(graph.num_units, names, ins, outs, np.array(v, dtype=np.float64).reshape(-1, 4))
        for k, v in coef.items()
    }
    return tables, np.array(kinds, dtype=object)


def _fit(node, trainable, i, o):
    """Bilinear coefficients of a node's learnables and MACs (constant if probing fails)."""
    handler = handlers.get_handler(node.layer)
    ih, oh = (i // 2 if i > 1 else i), (o // 2 if o > 1 else o)
    try:
        points = [_probe(node, handler, a, b, trainable) for a, b in ((i, o), (ih, o), (i, oh), (ih, oh))]
    except Exception:  # a handler that needs consistent indices: count it as fixed
        full = _probe(node, handler, i, o, trainable)
        return (float(full[0]), 0.0, 0.0, 0.0), (float(full[1]), 0.0, 0.0, 0.0)
    return tuple(
        costs.bilinear_coefficients(*[p[k] for p in points], i, o, ih, oh) for k in (0, 1)
    )
