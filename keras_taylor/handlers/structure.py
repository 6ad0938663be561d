"""Handlers of merges (Add, Concatenate, ...) and reshapes (Flatten, Reshape, Permute)."""

import numpy as np

import keras
from keras import tree

from keras_taylor.handlers.base import (
    BLOCK_CHANNELS_FIRST,
    Blocker,
    Handler,
    _last_dim,
    is_channels_first,
)


def _constants(node):
    """Array arguments of a keras op call that are not graph tensors."""
    arguments = getattr(node.keras_node, "arguments", None)
    if arguments is None:
        return []
    values = tree.flatten((arguments.args, arguments.kwargs))
    return [
        v for v in values
        if not isinstance(v, keras.KerasTensor) and hasattr(v, "shape")
    ]


class ElementwiseMerge(Handler):
    """Add, Multiply, ...: same-index channels of every input are coupled.

    Inputs with one channel broadcast and couple nothing.
    """

    def propagate(self, ctx, node, ins):
        channels = _last_dim(node.output_shapes[0])
        if channels and channels > 1 and any(
            np.ndim(v) and np.shape(v)[-1] == channels for v in _constants(node)
        ):
            # e.g. `x * np.array([...])`: replay re-inserts the constant
            # unsliced, so the channels it scales cannot be removed.
            return Blocker(
                "{type} uses a constant with one value per channel"
            ).propagate(ctx, node, ins)
        full = [e for e in ins if len(e) == channels]
        if not full:
            return [ctx.fixed(node, channels or 0, "broadcast result")]
        for other in full[1:]:
            ctx.union(full[0], other)
        return [full[0]]


class ConcatenateHandler(Handler):
    """Concatenate: along the channels, joins its inputs' channels in order.

    Along another axis, channel i of every input is one channel (coupled).
    """

    def propagate(self, ctx, node, ins):
        rank = len(node.output_shapes[0])
        axis = node.config.get("axis", -1)
        if axis in (-1, rank - 1):
            return [np.concatenate(ins)]
        # Joined along another axis: channel i of every input is one channel.
        return ElementwiseMerge().propagate(ctx, node, ins)


def _spatial_size(shape):
    return int(np.prod([d for d in shape[1:-1]])) if len(shape) > 2 else 1


class FlattenHandler(Handler):
    """Flatten of (..., C) repeats the channel pattern at every position."""

    def propagate(self, ctx, node, ins):
        if is_channels_first(node) and len(node.input_shapes[0]) > 2:
            return BLOCK_CHANNELS_FIRST.propagate(ctx, node, ins)
        shape = node.input_shapes[0]
        if any(d is None for d in shape[1:]):
            return Blocker(
                "{type} of a tensor with unknown spatial size"
            ).propagate(ctx, node, ins)
        return [np.tile(ins[0], _spatial_size(shape))]


class ReshapeHandler(Handler):
    """Keeps channel identity when the new last axis is a multiple of C.

    In row-major order, index j of a last axis of length k*C holds channel
    j mod C, so the channel pattern is repeated k times: k == 1 is the
    squeeze-excite broadcast (C,) -> (1, 1, C), k > 1 merges spatial axes.
    """

    def propagate(self, ctx, node, ins):
        in_shape, out_shape = node.input_shapes[0], node.output_shapes[0]
        channels, out_last = in_shape[-1], out_shape[-1]
        if channels and out_last and out_last % channels == 0:
            return [np.tile(ins[0], out_last // channels)]
        return Blocker(
            "Reshape from {0} to {1} mixes the channel axis with others".format(
                tuple(in_shape[1:]), tuple(out_shape[1:])
            )
        ).propagate(ctx, node, ins)

    def new_config(self, node, config, keep):
        target = list(config["target_shape"])
        target[-1] = int(len(keep.outputs[0]))
        return dict(config, target_shape=tuple(target))


class PermuteHandler(Handler):
    def propagate(self, ctx, node, ins):
        dims = tuple(node.config.get("dims", ()))
        if dims and dims[-1] == len(dims):
            return [ins[0]]
        return Blocker(
            f"Permute{dims} moves the channel axis"
        ).propagate(ctx, node, ins)

