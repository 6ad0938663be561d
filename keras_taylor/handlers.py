"""The one registry of how each layer type treats channels.

A handler answers three questions about one layer type:

* `propagate`: given the channel elements of the layer's inputs (one integer
  id per channel, see `graph.py`), which elements make up its outputs, and
  which channels does it couple, create or block?
* `weight_slices`: when channels are removed, which axis of which weight is
  indexed by which kept channels?
* `new_config`: how does the layer's config change (filters, units, ...)?
* `output_axes`: which weight axes make each output channel, so a following
  batch normalization can be folded into them (`folding.py`)?

Adding support for a layer type is one `register(...)` call. A layer whose
type is not registered is a blocker: it is never guessed at.
"""

import numpy as np

import keras
from keras import tree

SOURCE = "source"  # channels a pruning criterion may remove (conv filters)
PASSIVE = "passive"  # channels that can be sliced but never start pruning
FIXED = "fixed"  # channels that can never be removed (model inputs, ...)

_REGISTRY = {}


def register(layer_classes, handler):
    """Registers `handler` for each class in `layer_classes` (exact type)."""
    if not isinstance(layer_classes, (list, tuple)):
        layer_classes = [layer_classes]
    for cls in layer_classes:
        if cls is not None:
            _REGISTRY[cls] = handler
    return handler


def register_like(layer_class, like):
    """Handles `layer_class` exactly as the registered class `like`."""
    return register(layer_class, _REGISTRY[like])


_TRAINING_CLASS = {}
_PLAIN_CLASS = {}


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


def get_handler(operation):
    """Returns the handler of `operation`'s exact type, or the blocker."""
    return _REGISTRY.get(type(operation), UNKNOWN)


def is_registered(operation):
    return type(operation) in _REGISTRY


def _last_dim(shape):
    return shape[-1] if shape else None


def _positions(shape, node):
    """Number of positions (all but batch and channel axes) of a tensor shape."""
    spatial = shape[2:] if _is_channels_first(node) else shape[1:-1]
    return int(np.prod([d or 1 for d in spatial]))


def _is_channels_first(node):
    return node.config.get("data_format") == "channels_first"


class Handler:
    """Default behaviour: per-channel pass-through, no weights to slice."""

    #: Reduces over its input channels, so a pruned channel must be zeroed
    #: (masked) where it enters this layer.
    consumes = False

    def propagate(self, ctx, node, ins):
        return [ins[0]]

    def weight_slices(self, node, keep):
        return {}

    def new_config(self, node, config, keep):
        return config

    def output_axes(self, node):
        """{weight name: axes} whose flattening (C order) is the output channels.

        None when the layer's outputs are not a linear map plus a per-channel
        bias, so nothing can be folded into it.
        """
        return None

    #: Weights applied once per position of the output (a convolution's
    #: kernel at every pixel it writes); their sizes times the positions are
    #: the node's multiply-accumulates per sample.
    position_weights = ()

    def multiply_accumulates(self, node, shapes):
        """Multiply-accumulates per sample, with weights of shapes `shapes`.

        `shapes` maps weight name to its (possibly sliced) shape. Layers
        without kernels count 0: their elementwise work is small next to a
        convolution's and the same masked or stripped.
        """
        if not self.position_weights:
            return 0
        positions = _positions(node.output_shapes[0], node)
        return positions * sum(int(np.prod(shapes[n])) for n in self.position_weights if n in shapes)


class Blocker(Handler):
    """A layer whose result depends on the number of channels it sees."""

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


UNKNOWN = Blocker(
    "{type} is not a layer type keras_taylor knows, so the channels reaching "
    "it are kept (register a handler to prune through it)"
)


class PassThrough(Handler):
    """Acts on each channel independently; per-channel weights are sliced.

    A weight is per-channel when its last axis has the channel count (batch
    normalisation statistics, PReLU slopes, layer-scale gammas).
    """

    def __init__(self, check_data_format=True, axis_key=None):
        self.check_data_format = check_data_format
        self.axis_key = axis_key

    def _channel_axis_ok(self, node):
        if self.axis_key is None:
            return True
        axis = node.config.get(self.axis_key, -1)
        rank = len(node.input_shapes[0])
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                return False
            axis = axis[0]
        return axis in (-1, rank - 1)

    def propagate(self, ctx, node, ins):
        if self.check_data_format and _is_channels_first(node):
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


BLOCK_CHANNELS_FIRST = Blocker(
    "{type} uses data_format='channels_first'; keras_taylor prunes "
    "channels-last models"
)


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


class Producer(Handler):
    """Conv and Dense: consume all input channels, produce new channels.

    `kernel_axes` gives the kernel's (input, output) channel axes.
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
            return _positions(node.input_shapes[0], node) * int(np.prod(shapes.get("kernel", ())))
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
        if _is_channels_first(node):
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
        if _is_channels_first(node):
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
        if _is_channels_first(node):
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
        if _is_channels_first(node):
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
        if _is_channels_first(node):
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
        if _is_channels_first(node) and len(node.input_shapes[0]) > 2:
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


class ChannelMaskHandler(Handler):
    """keras_taylor's own mask: pass-through, remembered as a mask point."""

    def propagate(self, ctx, node, ins):
        ctx.mask_point(node, ins[0])
        return [ins[0]]


def _layer_classes(*names):
    out = []
    for name in names:
        cls = getattr(keras.layers, name, None)
        if cls is not None:
            out.append(cls)
    return out


def _keras_op_classes(*names):
    from keras.src.ops import numpy as knp

    return [getattr(knp, n) for n in names if hasattr(knp, n)]


def _application_class(module, name):
    """Layers defined inside keras.applications (private modules)."""
    try:
        import importlib

        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


# ---------------------------------------------------------------- registry
register(_layer_classes("Conv1D", "Conv2D", "Conv3D"), Producer("filters"))
register(
    _layer_classes("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"),
    Producer("filters", kernel_axes=(-1, -2), transposed=True),
)
register(_layer_classes("Dense"), Producer("units", role_option="prune_dense"))
register(_layer_classes("DepthwiseConv1D", "DepthwiseConv2D"), DepthwiseHandler())
register(_layer_classes("SeparableConv1D", "SeparableConv2D"), SeparableHandler())
register(
    _layer_classes("BatchNormalization"),
    PassThrough(check_data_format=False, axis_key="axis"),
)
register(
    _layer_classes(
        "ReLU", "LeakyReLU", "PReLU", "ELU", "Dropout", "SpatialDropout1D",
        "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
        "GaussianDropout", "AlphaDropout", "ActivityRegularization",
        "Identity", "Masking",
    ),
    PassThrough(check_data_format=False),
)
register(_layer_classes("Activation"), ActivationHandler(check_data_format=False))
register(_layer_classes("Softmax"), SoftmaxHandler(check_data_format=False))
register(
    _layer_classes(
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
        "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D",
        "GlobalAveragePooling2D", "GlobalAveragePooling3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
        "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
        "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D",
        "UpSampling3D", "Resizing", "CenterCrop", "RandomCrop", "RandomFlip",
        "RandomRotation", "RandomTranslation", "RandomZoom",
    ),
    PassThrough(),
)
register(_layer_classes("Rescaling"), RescalingHandler(check_data_format=False))
register(_layer_classes("Normalization"), NormalizationHandler())
register(
    _layer_classes("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"),
    ElementwiseMerge(),
)
register(
    _keras_op_classes(
        "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum",
        "Minimum",
    ),
    ElementwiseMerge(),
)
register(_layer_classes("Concatenate"), ConcatenateHandler())
register(_layer_classes("Flatten"), FlattenHandler())
register(_layer_classes("Reshape"), ReshapeHandler())
register(_layer_classes("Permute"), PermuteHandler())
register(
    _layer_classes("Lambda"),
    Blocker("Lambda layers can compute anything, so their channels are kept"),
)
register(
    _layer_classes("GroupNormalization"),
    Blocker("GroupNormalization splits channels into fixed-size groups"),
)
register(
    _layer_classes("LayerNormalization"),
    Blocker("LayerNormalization normalises across the channels"),
)
register(
    _layer_classes("UnitNormalization"),
    Blocker("UnitNormalization normalises across the channels"),
)
# keras.applications' own layers: ConvNeXt's per-channel scale and
# InceptionResNetV2's scaled residual sum.
register(
    _application_class("keras.src.applications.convnext", "LayerScale"),
    PassThrough(check_data_format=False),
)
register(
    _application_class(
        "keras.src.applications.inception_resnet_v2", "CustomScaleLayer"
    ),
    ElementwiseMerge(),
)
