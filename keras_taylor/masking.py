"""The serializable channel-mask layer, and how its outputs are tapped.

A `ChannelMask` sits where a channel group enters a layer that reduces over
channels (a conv or dense kernel). Multiplying there, rather than at the
conv output, makes a masked channel vanish exactly as it will in the
stripped model: batch-norm shifts, activations and pooling of that channel
never reach a consumer.

While a `tap_masks()` block is active, every `ChannelMask` call records its
output, so the training step can ask the tape for the loss gradient with
respect to it (the Taylor criterion) in the same backward pass.
"""

import contextlib
import threading

import keras
import tensorflow as tf
from keras import ops

from keras_taylor import handlers

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

    def build(self, input_shape=None):
        self.mask = self.add_weight(
            name="mask",
            shape=(self.channels,),
            initializer="ones",
            trainable=False,
            dtype="float32",
        )

    def call(self, inputs):
        # While every channel is kept (a freshly wrapped or rebuilt model)
        # the multiply and its gradient are skipped: on CPU they cost about
        # 13% of a ResNet-20 training step.
        outputs = ops.cond(
            ops.all(self.mask > 0),
            lambda: tf.identity(inputs),
            lambda: inputs * ops.cast(self.mask, inputs.dtype),
        )
        state = getattr(_TAPS, "state", None)
        if state is not None:
            taps, tape = state
            if tape is not None:
                tape.watch(outputs)
            taps[self.name] = outputs
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return dict(super().get_config(), channels=self.channels)


handlers.register(ChannelMask, handlers.ChannelMaskHandler())
