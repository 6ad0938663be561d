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

from keras_taylor import _compat, handlers
from keras_taylor.graph import sliced_shapes
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
