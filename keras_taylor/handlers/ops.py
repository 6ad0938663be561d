"""Handlers of `keras.ops` calls recorded as nodes of a functional model.

Model code written with `keras.ops` (`ops.relu(x)`, `ops.split(x, 2, -1)`,
`x[..., :8]`) leaves operation nodes in the graph. Element-wise ones pass
channels through; reductions, padding and pooling over the other axes pass
them through; splits and slices of the channel axis take their channels by
offset; reshapes and transposes that keep the channel axis last pass them
through; `depth_to_space` / `space_to_depth` couple blocks of channels.
Anything else blocks, as any unknown layer does.
"""

import numpy as np

from keras_taylor.handlers.base import BLOCK_CHANNELS_FIRST, Blocker, Handler, _last_dim
from keras_taylor.handlers.structure import ReshapeHandler


def _block(ctx, node, ins, reason):
    return Blocker(reason).propagate(ctx, node, ins)


def _axes(axis, rank):
    """Axes as non-negative ints; None means all of them."""
    if axis is None:
        return set(range(rank))
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return {a % rank for a in axes}


class ElementwiseOp(Handler):
    """`ops.relu`, `ops.exp`, `ops.clip`, ...: each channel on its own.

    A constant with one value per channel in the op's config (a per-channel
    `clip` bound) blocks: it would not be sliced.
    """

    def propagate(self, ctx, node, ins):
        channels = _last_dim(node.input_shapes[0])
        for key, value in node.config.items():
            if np.ndim(value) and np.shape(value)[-1] == channels and channels > 1:
                return _block(ctx, node, ins, f"{{type}} has one {key!r} per channel")
        return [ins[0]]


class ReduceOp(Handler):
    """`ops.mean`, `ops.max`, ...: pass through unless the channels are reduced."""

    def propagate(self, ctx, node, ins):
        rank = len(node.input_shapes[0])
        if rank - 1 in _axes(node.config.get("axis"), rank):
            return _block(ctx, node, ins, "{type} reduces over the channel axis")
        return [ins[0]]


class PadOp(Handler):
    """`ops.pad`: pass through unless the channel axis is padded."""

    def propagate(self, ctx, node, ins):
        width = np.asarray(node.config.get("pad_width"), dtype=object)
        last = width[-1] if width.ndim == 2 else width
        if np.any(np.asarray(last, dtype=np.int64) != 0):
            return _block(ctx, node, ins, "{type} pads the channel axis")
        return [ins[0]]


class PoolOp(Handler):
    """`ops.max_pool` / `ops.average_pool`: pooling over spatial axes."""

    def propagate(self, ctx, node, ins):
        if node.config.get("data_format") == "channels_first":
            return BLOCK_CHANNELS_FIRST.propagate(ctx, node, ins)
        return [ins[0]]


class SplitOp(Handler):
    """`ops.split`: along the channels, each output takes its channels by offset.

    Along another axis, every output has all the channels. The stripped op
    splits at the kept channels' offsets.
    """

    def _on_channels(self, node):
        rank = len(node.input_shapes[0])
        return node.config.get("axis", 0) % rank == rank - 1

    def propagate(self, ctx, node, ins):
        if not self._on_channels(node):
            return [ins[0]] * len(node.output_shapes)
        sections = np.split(np.asarray(ins[0]), node.config["indices_or_sections"])
        for section in sections:
            ctx.keep_one(section)
        return sections

    def new_config(self, node, config, keep):
        if not self._on_channels(node):
            return config
        offsets = np.cumsum([len(k) for k in keep.outputs[:-1]])
        return dict(config, indices_or_sections=[int(o) for o in offsets])


def _expanded_key(key, rank):
    """A `x[key]` key as one entry per axis, or None if it adds or drops axes oddly."""
    key = list(key) if isinstance(key, tuple) else [key]
    ellipses = [i for i, k in enumerate(key) if k is Ellipsis]  # `is`: keys may hold arrays
    if any(k is None for k in key) or len(ellipses) > 1:
        return None
    if ellipses:
        at = ellipses[0]
        key[at:at + 1] = [slice(None)] * (rank - len(key) + 1)
    return key + [slice(None)] * (rank - len(key))


class GetItemOp(Handler):
    """`x[..., a:b]` (a slice of the channels, step 1) or slicing other axes."""

    def _channel_slice(self, node):
        rank = len(node.input_shapes[0])
        key = _expanded_key(node.keras_node.arguments.args[1], rank)
        if key is None or len(key) != rank:
            return None, "{type} indexes with newaxis, several ellipses or too many axes"
        last = key[-1]
        if not isinstance(last, slice) or last.step not in (None, 1) or not all(
            isinstance(b, (int, type(None))) for b in (last.start, last.stop)
        ):
            return None, "{type} picks channels other than by a constant slice of step 1"
        if any(not isinstance(k, (slice, int)) for k in key[:-1]):
            return None, "{type} indexes with a tensor or an array"
        return last, None

    def propagate(self, ctx, node, ins):
        last, problem = self._channel_slice(node)
        if problem:
            return _block(ctx, node, ins, problem)
        picked = np.asarray(ins[0])[last]
        ctx.keep_one(picked)
        return [picked]

    def new_arguments(self, node, args, kwargs, keep):
        last, _ = self._channel_slice(node)
        channels = _last_dim(node.input_shapes[0])
        start, stop, _ = last.indices(channels)
        kept = np.asarray(keep.inputs[0])
        new_last = slice(int((kept < start).sum()), int((kept < stop).sum()))
        key = _expanded_key(args[1], len(node.input_shapes[0]))
        return (args[0], tuple(key[:-1] + [new_last])) + tuple(args[2:]), kwargs


class ReshapeOp(ReshapeHandler):
    """`ops.reshape`: as `keras.layers.Reshape` (channel pattern kept last)."""

    def new_config(self, node, config, keep):
        shape = list(config["newshape"])
        if shape[-1] != -1:
            shape[-1] = int(len(keep.outputs[0]))
        return dict(config, newshape=tuple(shape))


class TransposeOp(Handler):
    """`ops.transpose`: passes through when the channel axis stays last."""

    def propagate(self, ctx, node, ins):
        axes = node.config.get("axes")
        rank = len(node.input_shapes[0])
        if axes is None or axes[-1] % rank != rank - 1:
            return _block(ctx, node, ins, f"{{type}} with axes {axes} moves the channel axis")
        return [ins[0]]


class DepthToSpaceOp(Handler):
    """`ops.depth_to_space`: output channel c reads input channels k*C' + c.

    The r*r input channels that become one output channel are one channel
    group; the stripped op keeps the same block size.
    """

    def propagate(self, ctx, node, ins):
        if node.config.get("data_format") == "channels_first":
            return BLOCK_CHANNELS_FIRST.propagate(ctx, node, ins)
        size = node.config["block_size"] ** 2
        blocks = np.asarray(ins[0]).reshape(size, -1)
        for row in blocks[1:]:
            ctx.union(blocks[0], row)
        return [blocks[0]]


class SpaceToDepthOp(Handler):
    """`ops.space_to_depth`: output channel k*C + c is input channel c."""

    def propagate(self, ctx, node, ins):
        if node.config.get("data_format") == "channels_first":
            return BLOCK_CHANNELS_FIRST.propagate(ctx, node, ins)
        return [np.tile(ins[0], node.config["block_size"] ** 2)]
