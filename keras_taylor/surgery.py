"""`strip_pruning`: the physically smaller plain Keras model."""

import warnings

import keras

from keras_taylor import handlers
from keras_taylor.errors import UnsupportedModelError
from keras_taylor.graph import Rebuild, replay, slice_weights
from keras_taylor.masking import ChannelMask
from keras_taylor.model import TaylorPrunableModel


class _Strip(Rebuild):
    """Drops the masks; shrinks configs and slices weights to kept channels."""

    def __init__(self, channel_graph, alive):
        self.graph = channel_graph
        self.alive = alive

    def skip(self, node):
        return isinstance(node.layer, ChannelMask)

    def keeps_whole(self, nodes):
        # no channel group that may be pruned reaches it: nothing in it changes
        return not self.graph.touches_prunable(nodes) and not any(
            isinstance(n.layer, ChannelMask) for n in nodes
        )

    def config(self, node):
        handler = handlers.get_handler(node.layer)
        return handler.new_config(node, node.config, self.graph.keep(node, self.alive))

    def arguments(self, node, args, kwargs):
        handler = handlers.get_handler(node.layer)
        return handler.new_arguments(node, args, kwargs, self.graph.keep(node, self.alive))

    def weights(self, node):
        keep = self.graph.keep(node, self.alive)
        return slice_weights(node, keep, node.layer.get_weights())

    def layer_class(self, node):
        return handlers.plain_class(type(node.layer))


def strip_pruning(model):
    """Returns a plain `keras.Model` with the pruned filters removed.

    Rebuilds the graph of a `TaylorPrunableModel` without its masks, with
    fewer filters in every pruned layer and the matching slices of every
    downstream weight (input channels of kernels, batch-norm statistics,
    depthwise kernels, Dense rows after Flatten). In inference mode its outputs
    equal the masked model's. It contains no keras_taylor layers, so it saves
    and loads as `.keras` without custom objects. `model` is not modified.

    Args:
        model: a `TaylorPrunableModel`.

    Returns:
        A functional `keras.Model`, compiled like `model` if it was compiled.

    Example:

    >>> import keras, numpy as np, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    >>> outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    >>> pm = kt.TaylorPrunableModel(keras.Model(inputs, outputs), criterion="l1")
    >>> pm.update_prunables(max_to_prune=3)
    3
    >>> small = kt.strip_pruning(pm)
    >>> small.get_layer(index=1).filters
    5
    """
    if not isinstance(model, TaylorPrunableModel):
        raise UnsupportedModelError(
            "strip_pruning expects a keras_taylor.TaylorPrunableModel, got "
            f"{type(model).__name__} '{getattr(model, 'name', model)}'. Wrap the "
            "model with kt.TaylorPrunableModel(model) and prune it first."
        )
    stripped = replay(
        model.channel_graph.flat, _Strip(model.channel_graph, model.alive), name=model.net.name
    )
    return compile_like(stripped, model)


def compile_like(new, old):
    """Compiles `new` with the loss, metric and optimizer objects `old` was compiled with.

    The objects themselves are reused (optimizer and metric objects copied
    fresh), not a config round trip, so losses written as plain Python
    functions, `Loss` subclasses and lambdas carry over. What cannot be
    carried over is said in a warning, and `new` is returned uncompiled.
    """
    from keras_taylor.compile_settings import compile_settings, compile_with

    settings = compile_settings(old)
    if settings is None:
        return new
    try:
        compile_with(new, settings, f"'{old.name}'")
    except Exception as exc:  # the model itself must not be lost
        warnings.warn(
            f"the model returned for '{old.name}' is not compiled: its compile settings could not "
            f"be carried over ({' '.join(str(exc).split())[:300]}). Call compile() on it.",
            stacklevel=3,
        )
    return new
