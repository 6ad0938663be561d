"""How each layer treats channels: the `Handler` API and the registry.

Teach keras-taylor a layer with `kt.register_layer(cls, handler)` and one of
the building blocks below (or a `Handler` subclass of your own); see
docs/handlers.md. A layer whose class (or nearest registered base class) has
no handler is traced (its `call` read as a graph of its sublayers and
`keras.ops`); where that fails it blocks the channels that reach it:
nothing is guessed.

Building blocks:

* `Handler`: the base class; its hooks are documented there.
* `PassThrough`: acts on each channel on its own; per-channel weights sliced.
* `Blocker`: keeps every channel that reaches it, with a reason.
* `Trace`: opens a layer, reading its `call` as a graph of sublayers and ops.
* `Producer`: creates channels with a kernel (Conv, Dense).
* `ElementwiseMerge`, `ConcatenateHandler`: couple or join their inputs.
* `KernelWrapperHandler`: a wrapper around a kernel layer
  (`keras.layers.SpectralNormalization`).

Example:

>>> import keras, keras_taylor as kt
>>> class Gate(keras.layers.Layer):
...     def build(self, shape):
...         self.gate = self.add_weight(shape=(shape[-1],), initializer="ones")
...     def call(self, x):
...         return x * keras.ops.sigmoid(self.gate)
>>> _ = kt.register_layer(Gate, kt.handlers.PassThrough())
>>> kt.handlers.is_registered(Gate())
True
"""

from keras_taylor.handlers.base import (
    BLOCK_CHANNELS_FIRST,
    FIXED,
    PASSIVE,
    SOURCE,
    UNKNOWN,
    Blocker,
    Handler,
    Trace,
    acts_on_last_axis,
    get_handler,
    is_registered,
    plain_class,
    register,
    register_layer,
    register_like,
    register_training_class,
    training_class,
)
from keras_taylor.handlers.channelwise import (
    ActivationHandler,
    ChannelMaskHandler,
    NormalizationHandler,
    PassThrough,
    RescalingHandler,
    SoftmaxHandler,
    activation_problem,
)
from keras_taylor.handlers.conv import (
    DepthwiseHandler,
    KernelWrapperHandler,
    Producer,
    SeparableHandler,
)
from keras_taylor.handlers.structure import (
    ConcatenateHandler,
    ElementwiseMerge,
    FlattenHandler,
    PermuteHandler,
    ReshapeHandler,
)
from keras_taylor.handlers import builtin as _builtin  # noqa: F401  fills the registry

# The building blocks users register layers with (the other handlers are
# importable for keras_taylor's own table, but not part of the promise).
__all__ = [
    "Blocker",
    "ConcatenateHandler",
    "ElementwiseMerge",
    "Handler",
    "KernelWrapperHandler",
    "PassThrough",
    "Producer",
    "Trace",
    "get_handler",
    "is_registered",
    "register_layer",
]
