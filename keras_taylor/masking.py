"""The serializable channel-mask layer, and how its outputs are tapped.

A `ChannelMask` sits where a channel group enters a layer that reduces over
channels (a conv or dense kernel). Multiplying there, rather than at the
conv output, makes a masked channel vanish exactly as it will in the
stripped model: batch-norm shifts, activations and pooling of that channel
never reach a consumer.

While a `tap_masks()` block is active, every `ChannelMask` call records its
output, so the training step can ask the tape for the loss gradient with
respect to it (the Taylor criterion) in the same backward pass.

Where every consumer of a mask is a plain convolution, the prunable model
trains those as `MaskedKernelConv1D/2D/3D`, which multiply the mask into
their kernel's input channels instead (`bind_kernel_masks`): the same
result, since a convolution is linear in each input channel, but a pass
over a few kilobytes of kernel instead of two (forward and backward) over
the activations, and no branch in the traced graph. The mask layer is then
an identity that only records its tap.
"""

import contextlib
import threading

import keras
import tensorflow as tf
from keras import ops

from keras_taylor import _compat

_TAPS = threading.local()


@contextlib.contextmanager
def tap_masks(tape=None):
    """Collects `{layer name: output}` of every ChannelMask called inside.

    With a `tf.GradientTape`, each output is also watched, so its gradient
    exists even where no trainable weight lies upstream. Thread-local, so each
    replica of a distribution strategy taps its own.
    """
    previous = getattr(_TAPS, "state", None)
    taps = {}
    _TAPS.state = (taps, tape)
    try:
        yield taps
    finally:
        _TAPS.state = previous


@keras.saving.register_keras_serializable(package="keras_taylor")
class ChannelMask(keras.layers.Layer):
    """Multiplies the last axis by a 0/1 mask held in a non-trainable weight.

    Inside a `TaylorPrunableModel` whose convolutions carry this mask in
    their kernels (`absorbed`, set by `bind_kernel_masks`) it passes its
    input on unchanged and only records it for the Taylor scores.

    Args:
        channels: size of the last axis.

    Example:

    >>> layer = ChannelMask(3)
    >>> layer.build((None, 3))
    >>> _ = layer.mask.assign([1.0, 0.0, 1.0])
    >>> keras.ops.convert_to_numpy(layer(keras.ops.ones((1, 3)))).tolist()
    [[1.0, 0.0, 1.0]]
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.supports_masking = True
        # Set once by bind_kernel_masks, before anything is traced.
        self.absorbed = False

    def build(self, input_shape=None):
        self.mask = self.add_weight(
            name="mask",
            shape=(self.channels,),
            initializer="ones",
            trainable=False,
            dtype="float32",
        )

    def call(self, inputs):
        if self.absorbed:
            outputs = inputs  # the consumers' kernels carry the mask
        else:
            outputs = self._multiply(inputs)
        state = getattr(_TAPS, "state", None)
        if state is not None:
            taps, tape = state
            if tape is not None:
                tape.watch(outputs)
            taps[self.name] = outputs
        return outputs

    def _multiply(self, inputs):
        # While every channel is kept (a freshly wrapped or rebuilt model)
        # the multiply and its gradient are skipped: when every mask still
        # multiplied, skipping took benchmarks/overhead from 1.11 to 1.055.
        return ops.cond(
            ops.all(self.mask > 0),
            lambda: tf.identity(inputs),
            lambda: inputs * ops.cast(self.mask, inputs.dtype),
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return dict(super().get_config(), channels=self.channels)



class _MaskRef:
    """Holds a mask variable out of sight of Keras's weight tracking.

    A layer attribute holding the variable itself would make it one of the
    convolution's weights (and of its `get_weights()`).
    """

    __slots__ = ("variable",)

    def __init__(self, variable):
        self.variable = variable


class _MaskedKernel:
    """Mixin: the kernel's input channels are multiplied by a bound mask."""

    _input_mask = None

    @property
    def kernel(self):
        kernel = super().kernel
        if self._input_mask is None:
            return kernel
        kernel = ops.convert_to_tensor(kernel)
        mask = ops.cast(self._input_mask.variable, kernel.dtype)
        return kernel * ops.reshape(mask, (1,) * (len(kernel.shape) - 2) + (-1, 1))

    def bind_input_mask(self, variable):
        object.__setattr__(self, "_input_mask", _MaskRef(variable))


def _masked_kernel_class(conv_class):
    cls = type(
        f"MaskedKernel{conv_class.__name__}",
        (_MaskedKernel, conv_class),
        {
            "__doc__": (
                f"`keras.layers.{conv_class.__name__}` that can carry the "
                "ChannelMask of its input in its kernel (see bind_kernel_masks)."
            ),
            "__module__": __name__,
        },
    )
    cls = keras.saving.register_keras_serializable(package="keras_taylor")(cls)
    return cls


MaskedKernelConv1D = _masked_kernel_class(keras.layers.Conv1D)
MaskedKernelConv2D = _masked_kernel_class(keras.layers.Conv2D)
MaskedKernelConv3D = _masked_kernel_class(keras.layers.Conv3D)


def bind_kernel_masks(flat):
    """Moves each ChannelMask into its consumers' kernels where it can.

    A mask is absorbed when every consumer of its output is a
    `MaskedKernelConv*` called once in the graph, ungrouped, channels last,
    reading the mask's channels as its kernel's input channels. Anything
    else (Dense, separable or grouped convolutions, shared layers) keeps the
    mask's own multiply. A consumer that takes statistics over the
    channels (`binds_input_mask`, keras_taylor.masked_norms) is given the
    mask whatever the other consumers are. Binding the same graph again gives the same result,
    which traced functions rely on.

    Args:
        flat: the `FlatGraph` of a model with ChannelMask layers.
    """
    calls = {}
    consumers = {}
    for node in flat.nodes:
        calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
        for tid in node.inputs:
            consumers.setdefault(tid, []).append(node)

    def can_absorb(mask, node):
        layer = node.layer
        return (
            isinstance(layer, _MaskedKernel)
            and calls[id(layer)] == 1
            and len(node.inputs) == 1
            and layer.groups == 1
            and layer.data_format == "channels_last"
            and layer.built
            and _compat.raw_kernel(layer).shape[-2] == mask.channels
        )

    for node in flat.nodes:
        mask = node.layer
        if not isinstance(mask, ChannelMask) or calls[id(mask)] != 1:
            continue
        users = consumers.get(node.outputs[0], [])
        for user in users:
            # Normalisations over the channels (keras_taylor.masked_norms)
            # read the mask to count only the kept channels.
            if getattr(user.layer, "binds_input_mask", False):
                user.layer.bind_input_mask(mask.mask)
        if users and all(can_absorb(mask, user) for user in users):
            for user in users:
                user.layer.bind_input_mask(mask.mask)
            mask.absorbed = True
