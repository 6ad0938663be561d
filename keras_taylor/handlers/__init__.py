"""How each layer treats channels: the `Handler` API and the registry.

Teach keras-taylor a layer with `kt.register_layer(cls, handler)` and one of
the building blocks below (or a `Handler` subclass of your own); see
docs/handlers.md. A layer whose class (or nearest registered base class) has
no handler blocks the channels that reach it: nothing is guessed.

Building blocks:

* `Handler`: the base class; its hooks are documented there.
* `PassThrough`: acts on each channel on its own; per-channel weights sliced.
* `Blocker`: keeps every channel that reaches it, with a reason.
* `Producer`: creates channels with a kernel (Conv, Dense).
* `ElementwiseMerge`, `ConcatenateHandler`: couple or join their inputs.
* `KernelWrapperHandler`: a wrapper around a kernel layer
  (`keras.layers.SpectralNormalization`).
"""

from keras_taylor.handlers.base import (
    BLOCK_CHANNELS_FIRST,
    FIXED,
    PASSIVE,
    SOURCE,
    UNKNOWN,
    Blocker,
    Handler,
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

__all__ = [
    "ActivationHandler",
    "Blocker",
    "ConcatenateHandler",
    "DepthwiseHandler",
    "ElementwiseMerge",
    "FlattenHandler",
    "Handler",
    "KernelWrapperHandler",
    "NormalizationHandler",
    "PassThrough",
    "PermuteHandler",
    "Producer",
    "RescalingHandler",
    "ReshapeHandler",
    "SeparableHandler",
    "SoftmaxHandler",
    "get_handler",
    "is_registered",
    "register_layer",
]
