"""Handlers of layers that act on each channel on its own."""

import numpy as np

import keras

from keras_taylor.handlers.base import (
    BLOCK_CHANNELS_FIRST,
    Blocker,
    Handler,
    _last_dim,
    acts_on_last_axis,
    is_channels_first,
    plain_class,
    training_class,
)


class PassThrough(Handler):
    """Acts on each channel on its own; per-channel weights are sliced.

    A weight is per-channel when its last axis has the channel count (batch
    normalisation statistics, PReLU slopes, layer-scale gammas).

    Args:
        check_data_format: block the layer when its config says
            `data_format="channels_first"`.
        axis_key: the config key naming the axis the layer acts along
            (`"axis"` for normalisations); the layer blocks unless it is the
            last axis. None when the layer has no such axis.

    Example:

    >>> import keras, keras_taylor as kt
    >>> class Clip(keras.layers.Layer):
    ...     def call(self, x):
    ...         return keras.ops.clip(x, -1.0, 1.0)
    >>> _ = kt.register_layer(Clip, kt.handlers.PassThrough())
    """

    def __init__(self, check_data_format=True, axis_key=None):
        self.check_data_format = check_data_format
        self.axis_key = axis_key

    def _channel_axis_ok(self, node):
        return self.axis_key is None or acts_on_last_axis(node, self.axis_key)

    def propagate(self, ctx, node, ins):
        if self.check_data_format and is_channels_first(node):
            return BLOCK_CHANNELS_FIRST.propagate(ctx, node, ins)
        if not self._channel_axis_ok(node):
            return Blocker(
                "{type} normalises over an axis other than the channels; "
                "only channels-last is supported"
            ).propagate(ctx, node, ins)
        return [ins[0]]

    def weight_slices(self, node, keep):
        channels = _last_dim(node.input_shapes[0])
        return {
            w.name: {-1: keep.inputs[0]}
            for w in node.layer.weights
            if len(w.shape) >= 1 and w.shape[-1] == channels
        }




# Built-in activations that are not element-wise (glu also halves the axis).
_MIXING_ACTIVATIONS = ("softmax", "log_softmax", "sparsemax", "glu")
_NOT_ACTIVATIONS = ("get", "serialize", "deserialize")


def activation_problem(config):
    """Why the `activation` in a layer config stops channel pruning, or None.

    Only Keras's own element-wise activations are trusted; a custom function
    could mix the channels, and is not guessed at.
    """
    name = config.get("activation")
    if name is None:
        return None
    if (
        not isinstance(name, str)
        or name in _NOT_ACTIVATIONS
        or not callable(getattr(keras.activations, name, None))
    ):
        if isinstance(name, dict):
            name = name.get("config", name)
        return (
            f"its activation {name!r} is not a Keras element-wise activation, "
            "so it may mix the channels"
        )
    if name in _MIXING_ACTIVATIONS:
        return f"its activation '{name}' works across the channels"
    return None


class ActivationHandler(PassThrough):
    """Element-wise activations pass through; softmax mixes the channels."""

    def propagate(self, ctx, node, ins):
        problem = activation_problem(node.config)
        if problem:
            reason = "{type}: " + problem.replace("{", "{{").replace("}", "}}")
            return Blocker(reason).propagate(ctx, node, ins)
        return [ins[0]]


class SoftmaxHandler(PassThrough):
    def propagate(self, ctx, node, ins):
        axis = node.config.get("axis", -1)
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        rank = len(node.input_shapes[0])
        if any(a in (-1, rank - 1) for a in axes):
            return Blocker(
                "{type} normalises across the channels"
            ).propagate(ctx, node, ins)
        return [ins[0]]


class RescalingHandler(PassThrough):
    """Scalar scale/offset pass through; per-channel ones are sliced."""

    def new_config(self, node, config, keep):
        config = dict(config)
        channels = _last_dim(node.input_shapes[0])
        for key in ("scale", "offset"):
            value = config.get(key, 0.0)
            if isinstance(value, dict):  # numpy arrays are serialized dicts
                value = keras.saving.deserialize_keras_object(value)
            value = np.asarray(value)
            if value.ndim >= 1 and value.shape[-1] == channels > 1:
                config[key] = np.take(value, keep.inputs[0], axis=-1).tolist()
        return config


class NormalizationHandler(PassThrough):
    """`keras.layers.Normalization`: mean/variance are sliced per channel."""

    def __init__(self):
        super().__init__(check_data_format=False, axis_key="axis")

    def new_config(self, node, config, keep):
        config = dict(config)
        channels = _last_dim(node.input_shapes[0])
        for key in ("mean", "variance"):
            value = config.get(key)
            if value is not None and np.ndim(value) >= 1:
                value = np.asarray(value)
                if value.shape[-1] == channels:
                    config[key] = np.take(value, keep.inputs[0], axis=-1)
        return config



class LayerScaleHandler(PassThrough):
    """keras.applications ConvNeXt's `LayerScale`: `projection_dim` gammas."""

    def __init__(self):
        super().__init__(check_data_format=False)

    def new_config(self, node, config, keep):
        return dict(config, projection_dim=int(len(keep.inputs[0])))


class AcrossChannels(PassThrough):
    """A normalisation whose statistics run over the channel axis.

    `LayerNormalization`, `RMSNormalization`, `UnitNormalization`: a
    `ChannelMask` is placed at the layer's input (it `consumes` the
    channels), and the prunable model trains the layer as a class that
    takes its statistics over the kept channels only (see
    `keras_taylor.masked_norms`), so the stripped layer, which has only the
    kept channels, computes the same. Normalising over other or more axes
    than the channels blocks, and so does a subclass (its `call` may not
    count only the kept channels; a `UnitNormalization` subclass that keeps
    its parent's `call` is exact and passes).

    Args:
        layer_class: the Keras class whose `call` this handler knows.
    """

    consumes = True

    def __init__(self, layer_class):
        super().__init__(check_data_format=False, axis_key="axis")
        self.layer_class = layer_class

    def propagate(self, ctx, node, ins):
        cls, known = plain_class(type(node.layer)), self.layer_class
        if cls is not known and (training_class(known) is not known or cls.call is not known.call):
            return Blocker(
                f"{{type}} is a subclass of {known.__name__}; only "
                f"{known.__name__} itself is computed over the kept channels"
            ).propagate(ctx, node, ins)
        if not self._channel_axis_ok(node):
            axis = node.config.get("axis")
            return Blocker(
                f"{{type}} normalises over axis {axis}, not the channel axis "
                "alone; only normalisation over the last axis can be pruned"
            ).propagate(ctx, node, ins)
        return [ins[0]]


class GroupNormalizationHandler(PassThrough):
    """`GroupNormalization`: each normalisation group is one channel group.

    The statistics of a group depend only on its own channels, so removing
    whole groups leaves the others exact; the stripped layer has fewer
    `groups`.
    """

    def __init__(self):
        super().__init__(check_data_format=False, axis_key="axis")

    def _group_size(self, node):
        channels = _last_dim(node.input_shapes[0])
        groups = node.config.get("groups", 32)
        return 1 if groups == -1 else channels // groups

    def propagate(self, ctx, node, ins):
        if not self._channel_axis_ok(node):
            return Blocker(
                "{type} groups an axis other than the channels"
            ).propagate(ctx, node, ins)
        size = self._group_size(node)
        if size > 1:
            grouped = np.asarray(ins[0]).reshape(-1, size)
            ctx.union(grouped[:, :-1].ravel(), grouped[:, 1:].ravel())
        return [ins[0]]

    def new_config(self, node, config, keep):
        if config.get("groups") == -1:
            return config
        groups = len(keep.inputs[0]) // self._group_size(node)
        return dict(config, groups=int(groups))


class ChannelMaskHandler(Handler):
    """keras_taylor's own mask: pass-through, remembered as a mask point."""

    def propagate(self, ctx, node, ins):
        ctx.mask_point(node, ins[0])
        return [ins[0]]
