"""The `Handler` base class and the registry that maps layer classes to handlers.

A handler tells keras-taylor how one kind of layer treats channels. The
channel graph (`keras_taylor.graph`) calls its hooks once per call of the
layer in the model; `strip_pruning`, the reports and `fold_batch_norm` call
them again to slice weights, shrink configs, count work and fold.

Lookup follows the class hierarchy: a layer whose own class is not
registered is handled as its nearest registered base class (a subclass of
`Conv2D` is a `Conv2D`), and a layer with no registered class anywhere in its
hierarchy blocks the channels that reach it. Nothing is guessed.
"""

import numpy as np

from keras_taylor.errors import InvalidArgumentError, UnsupportedModelError

#: Role of channels a criterion may remove (convolution filters, Dense units).
SOURCE = "source"
#: Role of channels that are sliced when coupled to removed ones, but never
#: start pruning themselves (Dense units while `prune_dense=False`).
PASSIVE = "passive"
#: Role of channels that can never be removed (model inputs, ...).
FIXED = "fixed"

_REGISTRY = {}
_LOOKUP_CACHE = {}
_TRAINING_CLASS = {}
_PLAIN_CLASS = {}


def _last_dim(shape):
    return shape[-1] if shape else None


def is_channels_first(node):
    """True when the layer of `node` was configured with channels first."""
    return node.config.get("data_format") == "channels_first"


def positions(shape, node):
    """Number of positions (all but batch and channel axes) of a tensor shape."""
    spatial = shape[2:] if is_channels_first(node) else shape[1:-1]
    return int(np.prod([d or 1 for d in spatial]))


def acts_on_last_axis(node, axis_key="axis"):
    """True when the `axis_key` entry of the layer's config is its last axis.

    Normalisations (BatchNormalization, Normalization) act per channel only
    along the axis they are configured with.
    """
    axis = node.config.get(axis_key, -1)
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            return False
        axis = axis[0]
    return axis in (-1, len(node.input_shapes[0]) - 1)


class Handler:
    """How one kind of layer treats channels. Subclass it to teach a layer.

    Every hook has a default that suits a layer acting on each channel on its
    own with no weights (an activation); override the ones that differ.

    Hooks:

    * `propagate(ctx, node, ins)`: what the layer does to channels. `ins`
      holds, per input, one integer id per channel; return, per output, the
      ids of its channels. Use `ctx.source` (the layer creates channels a
      criterion may remove), `ctx.union` (channels that must go together),
      `ctx.block` / `ctx.fixed` (channels that must stay, with a reason),
      `ctx.keep_one` (at least one of these channels must stay).
    * `weight_slices(node, keep)`: how weights are sliced when channels go:
      `{weight name: {axis: kept indices}}`, where `keep.inputs[k]` and
      `keep.outputs[k]` are the kept channel indices of input/output `k`.
    * `new_config(node, config, keep)`: the layer's config with fewer
      channels (e.g. `filters`).
    * `new_arguments(node, args, kwargs, keep)`: the call's arguments with
      fewer channels (the key of an `x[..., a:b]` slice).
    * `consumes`: True when the layer sums over its input channels (a
      kernel); the prunable model then masks pruned channels where they
      enter it, so masked equals stripped exactly.
    * `filter_weights(layer)`: `(array, output axis)` of the weights that
      make each output channel, for magnitude criteria (`L1`); None if none.
    * `output_axes(node)`: `{weight name: axes}` whose flattening is the
      output channels, when the layer is linear plus a per-channel bias, so
      `fold_batch_norm` can fold a following normalisation into it.
    * `position_weights` / `multiply_accumulates(node, shapes)`: the work
      of one sample, for reports and MACs goals.

    Whether a layer's mask can live in its kernel instead of a separate
    multiply is a property of its training class (`register_training_class`).

    Example:

    >>> import keras, keras_taylor as kt
    >>> class Halve(keras.layers.Layer):
    ...     def call(self, x):
    ...         return x / 2
    >>> _ = kt.register_layer(Halve, kt.handlers.PassThrough())
    """

    #: Sums over its input channels, so a pruned channel must be zeroed
    #: (masked) where it enters this layer.
    consumes = False

    #: Weights applied once per position of the output (a convolution's
    #: kernel at every pixel it writes); their sizes times the positions are
    #: the node's multiply-accumulates per sample.
    position_weights = ()

    #: The `graph.Options` flag that must be on for the channels this layer
    #: creates to be pruned (`"prune_dense"`); None: no flag is needed.
    role_option = None

    def propagate(self, ctx, node, ins):
        """Channel ids of each output, given those of each input."""
        return [ins[0]]

    def weight_slices(self, node, keep):
        """`{weight name: {axis: kept indices}}` for the kept channels."""
        return {}

    def new_config(self, node, config, keep):
        """`config` of the layer once only the kept channels are left."""
        return config

    def new_arguments(self, node, args, kwargs, keep):
        """`(args, kwargs)` of the call once only the kept channels are left."""
        return args, kwargs

    def filter_weights(self, layer):
        """`(array, output axis)` of the weights making each output channel."""
        return None

    def output_axes(self, node):
        """{weight name: axes} whose flattening (C order) is the output channels.

        None when the layer's outputs are not a linear map plus a per-channel
        bias, so nothing can be folded into it.
        """
        return None

    def multiply_accumulates(self, node, shapes):
        """Multiply-accumulates per sample, with weights of shapes `shapes`.

        `shapes` maps weight name to its (possibly sliced) shape. Layers
        without kernels count 0: their elementwise work is small next to a
        convolution's and the same masked or stripped.
        """
        if not self.position_weights:
            return 0
        count = positions(node.output_shapes[0], node)
        return count * sum(
            int(np.prod(shapes[n])) for n in self.position_weights if n in shapes
        )


class Blocker(Handler):
    """A layer whose channels must all stay, with the reason why.

    Args:
        reason: shown by `kt.analyze` and in errors; `{type}` is replaced by
            the layer's class name.

    Example:

    >>> import keras, keras_taylor as kt
    >>> class Shuffle(keras.layers.Layer):
    ...     def call(self, x):
    ...         return x[..., ::-1]
    >>> _ = kt.register_layer(Shuffle, kt.handlers.Blocker("{type} reorders channels"))
    """

    def __init__(self, reason):
        self.reason = reason

    def describe(self, node):
        return self.reason.format(type=type(node.layer).__name__)

    def propagate(self, ctx, node, ins):
        for elems in ins:
            ctx.block(elems, node, self.describe(node))
        return [
            ctx.fixed(node, _last_dim(shape) or 0, "output of a blocking layer")
            for shape in node.output_shapes
        ]


class Trace(Handler):
    """Opens a layer: its `call` is read as a graph of its sublayers and ops.

    Layers of your own classes with no handler are traced anyway; register
    `Trace()` to trace one of Keras's own classes, or to get an error (not
    an opaque layer that blocks) when tracing fails. Register any other
    handler (e.g. a `Blocker`) to keep a layer closed.

    Example:

    >>> import keras, keras_taylor as kt
    >>> class Block(keras.layers.Layer):
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.conv = keras.layers.Conv2D(4, 3, padding="same")
    ...     def call(self, x):
    ...         return keras.ops.relu(self.conv(x)) + x
    >>> _ = kt.register_layer(Block, kt.handlers.Trace())
    """

    def propagate(self, ctx, node, ins):
        raise UnsupportedModelError(
            f"layer '{node.layer.name}' ({type(node.layer).__name__}) is "
            "registered with Trace() but was not traced; read the model with "
            "keras_taylor.graph.read_model"
        )


UNKNOWN = Blocker(
    "{type} is not a layer type keras_taylor knows, so the channels reaching "
    "it are kept (teach it with kt.register_layer({type}, handler); see "
    "docs/handlers.md)"
)

BLOCK_CHANNELS_FIRST = Blocker(
    "{type} uses data_format='channels_first'; keras_taylor prunes "
    "channels-last models"
)


def register_layer(layer_classes, handler):
    """Teaches keras-taylor how layers of `layer_classes` treat channels.

    Subclasses of a registered class are handled by its handler unless they
    are registered themselves. Registering a class again replaces its handler.

    Args:
        layer_classes: a layer class, or a list or tuple of them.
        handler: a `kt.handlers.Handler` instance (e.g.
            `kt.handlers.PassThrough()` for a per-channel layer).

    Returns:
        `handler`.

    Example:

    >>> import keras, keras_taylor as kt
    >>> class Scale(keras.layers.Layer):
    ...     def build(self, shape):
    ...         self.gamma = self.add_weight(shape=(shape[-1],), initializer="ones")
    ...     def call(self, x):
    ...         return x * self.gamma
    >>> handler = kt.register_layer(Scale, kt.handlers.PassThrough())
    """
    if not isinstance(handler, Handler):
        raise InvalidArgumentError(
            f"handler must be a keras_taylor.handlers.Handler instance, got "
            f"{type(handler).__name__}"
        )
    if not isinstance(layer_classes, (list, tuple)):
        layer_classes = [layer_classes]
    for cls in layer_classes:
        if cls is None:
            continue  # a class this Keras version does not have
        if not isinstance(cls, type):
            raise InvalidArgumentError(
                f"layer_classes must be classes, got {cls!r} ({type(cls).__name__})"
            )
        _REGISTRY[cls] = handler
    _LOOKUP_CACHE.clear()
    return handler


#: The name keras_taylor's own modules used before `register_layer` was public.
register = register_layer


def register_like(layer_class, like):
    """Handles `layer_class` exactly as the registered class `like`."""
    return register_layer(layer_class, _REGISTRY[like])


def register_training_class(plain_class, training_class):
    """Trains `plain_class` layers as `training_class` inside the prunable model.

    The training class computes the same thing faster (or cheaper to
    mask); it is handled like `plain_class`, and `strip_pruning` turns it
    back into `plain_class`, so stripped models hold no keras_taylor layers.
    """
    register_like(training_class, plain_class)
    _TRAINING_CLASS[plain_class] = training_class
    _PLAIN_CLASS[training_class] = plain_class


def training_class(layer_class):
    """The class the prunable model trains a layer of `layer_class` as."""
    return _TRAINING_CLASS.get(layer_class, layer_class)


def plain_class(layer_class):
    """The Keras class a stripped model gets back for `layer_class`."""
    return _PLAIN_CLASS.get(layer_class, layer_class)


def _lookup(cls):
    if cls not in _LOOKUP_CACHE:
        _LOOKUP_CACHE[cls] = next(
            (_REGISTRY[base] for base in cls.__mro__ if base in _REGISTRY), None
        )
    return _LOOKUP_CACHE[cls]


def get_handler(operation):
    """The handler of `operation`'s class (or nearest registered base class).

    Returns `UNKNOWN`, a `Blocker`, when no class in its hierarchy is registered.
    """
    return _lookup(type(operation)) or UNKNOWN


def is_registered(operation):
    """True when `operation`'s class or one of its base classes has a handler."""
    return _lookup(type(operation)) is not None
