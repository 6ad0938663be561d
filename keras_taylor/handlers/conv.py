"""Handlers of layers that create channels: convolutions, Dense, their wrappers."""

import dataclasses

import numpy as np

from keras_taylor.handlers.base import (
    BLOCK_CHANNELS_FIRST,
    PASSIVE,
    SOURCE,
    Handler,
    _last_dim,
    get_handler,
    is_channels_first,
    positions,
)
from keras_taylor.handlers.channelwise import activation_problem


class Producer(Handler):
    """Conv and Dense: consume all input channels, produce new channels.

    Args:
        size_key: the config key holding the number of output channels
            (`"filters"`, `"units"`); the stripped layer's config gets the
            kept count there.
        role_option: name of a `graph.Options` flag that must be on for the
            channels to start pruning (`"prune_dense"`); None: always.
        kernel_axes: the kernel's (input, output) channel axes.
        transposed: a transposed convolution (its work follows its input size).

    Example:

    >>> import keras, keras_taylor as kt
    >>> class MyConv(keras.layers.Layer):  # owns a "kernel" and a "bias"
    ...     pass
    >>> _ = kt.register_layer(MyConv, kt.handlers.Producer("filters"))
    """

    consumes = True
    position_weights = ("kernel",)

    def __init__(self, size_key, role_option=None, kernel_axes=(-2, -1), transposed=False):
        self.size_key = size_key
        self.role_option = role_option
        self.kernel_axes = kernel_axes
        self.transposed = transposed

    def multiply_accumulates(self, node, shapes):
        if self.transposed:
            # A transposed convolution scatters its kernel from every input
            # position, so its work follows the input's size.
            return positions(node.input_shapes[0], node) * int(np.prod(shapes.get("kernel", ())))
        return super().multiply_accumulates(node, shapes)

    def role(self, ctx):
        if self.role_option is None or getattr(ctx.options, self.role_option):
            return SOURCE
        return PASSIVE

    def propagate(self, ctx, node, ins):
        outs = self._propagate(ctx, node, ins)
        problem = activation_problem(node.config)
        if problem is None:
            return outs
        ctx.block(outs[0], node, problem)
        channels = _last_dim(node.output_shapes[0]) or 0
        if len(outs[0]) != channels:  # glu halves the channels
            return [ctx.fixed(node, channels, problem)]
        return outs

    def _propagate(self, ctx, node, ins):
        groups = node.config.get("groups", 1)
        size = node.config[self.size_key]
        if is_channels_first(node):
            ctx.blocked_source(
                node, size, self.role(ctx), BLOCK_CHANNELS_FIRST.describe(node)
            )
            return BLOCK_CHANNELS_FIRST.propagate(ctx, node, ins)
        if groups != 1 and groups == len(ins[0]) and size % groups == 0:
            # groups == input channels is a depthwise convolution.
            ctx.bind_input(node, 0, ins[0])
            return [np.repeat(ins[0], size // groups)]
        if groups != 1:
            for elems in ins:
                ctx.block(
                    elems,
                    node,
                    f"grouped convolution (groups={groups}) ties channels "
                    "to fixed group slots",
                )
            return [
                ctx.blocked_source(
                    node, size, self.role(ctx),
                    f"grouped convolution (groups={groups}) cannot lose single "
                    "filters: every group must keep the same number",
                )
            ]
        ctx.bind_input(node, 0, ins[0])
        return [ctx.source(node, size, self.role(ctx))]

    def filter_weights(self, layer):
        """(kernel, output axis): the weights that make each filter."""
        return layer.get_weights()[0], self.kernel_axes[1]

    def _groups(self, node):
        return node.config.get("groups", 1)

    def weight_slices(self, node, keep):
        in_axis, out_axis = self.kernel_axes
        groups = self._groups(node)
        if groups != 1:
            if groups != node.input_shapes[0][-1]:
                return {}  # blocked grouped convolution: nothing changes
            return {"kernel": {out_axis: keep.outputs[0]}, "bias": {0: keep.outputs[0]}}
        return {
            "kernel": {in_axis: keep.inputs[0], out_axis: keep.outputs[0]},
            "bias": {0: keep.outputs[0]},
        }

    def output_axes(self, node):
        if is_channels_first(node):
            return None
        return {"kernel": (self.kernel_axes[1],)}

    def new_config(self, node, config, keep):
        config = dict(config, **{self.size_key: int(len(keep.outputs[0]))})
        if self._groups(node) != 1 and self._groups(node) == node.input_shapes[0][-1]:
            config["groups"] = int(len(keep.inputs[0]))
        return config


class DepthwiseHandler(Handler):
    """Each input channel has its own `depth_multiplier` output channels."""

    position_weights = ("kernel",)

    def propagate(self, ctx, node, ins):
        if is_channels_first(node):
            return BLOCK_CHANNELS_FIRST.propagate(ctx, node, ins)
        ctx.bind_input(node, 0, ins[0])
        multiplier = int(node.config.get("depth_multiplier", 1))
        out = np.repeat(ins[0], multiplier)
        problem = activation_problem(node.config)
        if problem:
            ctx.block(out, node, problem)
            channels = _last_dim(node.output_shapes[0]) or 0
            if len(out) != channels:
                return [ctx.fixed(node, channels, problem)]
        return [out]

    def weight_slices(self, node, keep):
        return {"kernel": {-2: keep.inputs[0]}, "bias": {0: keep.outputs[0]}}

    def output_axes(self, node):
        if is_channels_first(node):
            return None
        # Output channel i * depth_multiplier + m comes from kernel[..., i, m].
        return {"kernel": (-2, -1)}


class SeparableHandler(Producer):
    """Depthwise part passes channels through; pointwise part produces."""

    position_weights = ("depthwise_kernel", "pointwise_kernel")

    def __init__(self):
        super().__init__("filters", role_option="prune_separable")

    def filter_weights(self, layer):
        return layer.pointwise_kernel.numpy(), -1

    def output_axes(self, node):
        if is_channels_first(node):
            return None
        return {"pointwise_kernel": (-1,)}

    def weight_slices(self, node, keep):
        multiplier = int(node.config.get("depth_multiplier", 1))
        kept_in = np.asarray(keep.inputs[0], dtype=np.int64)
        expanded = (kept_in[:, None] * multiplier + np.arange(multiplier)).ravel()
        return {
            "depthwise_kernel": {-2: kept_in},
            "pointwise_kernel": {-2: expanded, -1: keep.outputs[0]},
            "bias": {0: keep.outputs[0]},
        }



class KernelWrapperHandler(Handler):
    """A wrapper whose `layer` does the work and owns the kernel.

    `keras.layers.SpectralNormalization` calls its inner `Conv*` or `Dense`
    with a kernel it rescales in training and keeps in the inner layer's own
    weights, plus `vector_u`, one entry per output channel. Channels flow as
    through the inner layer; `vector_u` is sliced with the output channels.
    In inference mode the wrapper is its inner layer, so the stripped model
    computes exactly what the masked one does.

    Args:
        per_output_weights: names of the wrapper's own weights whose last
            axis is the output channels.
    """

    def __init__(self, per_output_weights=("vector_u",)):
        self.per_output_weights = tuple(per_output_weights)

    def _inner(self, node):
        inner = node.layer.layer
        config = node.config.get("layer", {}).get("config", {})
        return get_handler(inner), dataclasses.replace(node, config=config)

    @property
    def consumes(self):
        return True  # only kernel layers can be wrapped (see register call)

    def propagate(self, ctx, node, ins):
        handler, inner = self._inner(node)
        return handler.propagate(ctx, inner, ins)

    def weight_slices(self, node, keep):
        handler, inner = self._inner(node)
        spec = dict(handler.weight_slices(inner, keep))
        for name in self.per_output_weights:
            spec[name] = {-1: keep.outputs[0]}
        return spec

    def new_config(self, node, config, keep):
        handler, inner = self._inner(node)
        wrapped = dict(config["layer"])
        wrapped["config"] = handler.new_config(inner, wrapped["config"], keep)
        # The wrapped layer's saved build shape has the old input channels;
        # without it the layer builds from the input it is called on.
        wrapped.pop("build_config", None)
        return dict(config, layer=wrapped)

    def filter_weights(self, layer):
        return get_handler(layer.layer).filter_weights(layer.layer)

    def multiply_accumulates(self, node, shapes):
        handler, inner = self._inner(node)
        return handler.multiply_accumulates(inner, shapes)
