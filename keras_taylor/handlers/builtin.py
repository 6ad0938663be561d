"""The built-in registry: every layer class keras-taylor knows, in one place.

Imported once by `keras_taylor.handlers`; nothing else registers built-in
layers. Users add theirs with `kt.register_layer`.
"""

import keras

from keras_taylor import _compat
from keras_taylor.batchnorm import FusedBatchNormalization
from keras_taylor.handlers.base import (
    Blocker,
    register_layer,
    register_training_class,
)
from keras_taylor.handlers import channelwise, conv, ops, structure
from keras_taylor.masked_norms import MaskedLayerNormalization, MaskedRMSNormalization
from keras_taylor.masking import (
    ChannelMask,
    MaskedKernelConv1D,
    MaskedKernelConv2D,
    MaskedKernelConv3D,
)


def _layer_classes(*names):
    """The `keras.layers` classes of `names` that this Keras version has."""
    return [getattr(keras.layers, n) for n in names if hasattr(keras.layers, n)]


register_layer(_layer_classes("Conv1D", "Conv2D", "Conv3D"), conv.Producer("filters"))
register_layer(
    _layer_classes("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"),
    conv.Producer("filters", kernel_axes=(-1, -2), transposed=True),
)
register_layer(_layer_classes("Dense"), conv.Producer("units", role_option="prune_dense"))
register_layer(_layer_classes("DepthwiseConv1D", "DepthwiseConv2D"), conv.DepthwiseHandler())
register_layer(_layer_classes("SeparableConv1D", "SeparableConv2D"), conv.SeparableHandler())
register_layer(
    _layer_classes("BatchNormalization"),
    channelwise.PassThrough(check_data_format=False, axis_key="axis"),
)
register_layer(
    _layer_classes(
        "ReLU", "LeakyReLU", "PReLU", "ELU", "Dropout", "SpatialDropout1D",
        "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
        "GaussianDropout", "AlphaDropout", "ActivityRegularization",
        "Identity", "Masking",
    ),
    channelwise.PassThrough(check_data_format=False),
)
register_layer(_layer_classes("Activation"), channelwise.ActivationHandler(check_data_format=False))
register_layer(_layer_classes("Softmax"), channelwise.SoftmaxHandler(check_data_format=False))
register_layer(
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
    channelwise.PassThrough(),
)
register_layer(_layer_classes("Rescaling"), channelwise.RescalingHandler(check_data_format=False))
register_layer(_layer_classes("Normalization"), channelwise.NormalizationHandler())
register_layer(
    _layer_classes("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"),
    structure.ElementwiseMerge(),
)
register_layer(
    _compat.keras_op_classes(
        "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum",
        "Minimum",
    ),
    structure.ElementwiseMerge(),
)
register_layer(_layer_classes("Concatenate"), structure.ConcatenateHandler())
register_layer(_layer_classes("Flatten"), structure.FlattenHandler())
register_layer(_layer_classes("Reshape"), structure.ReshapeHandler())
register_layer(_layer_classes("Permute"), structure.PermuteHandler())
register_layer(
    _layer_classes("Lambda"),
    Blocker("Lambda layers can compute anything, so their channels are kept"),
)
register_layer(_layer_classes("GroupNormalization"), channelwise.GroupNormalizationHandler())
for _norm in _layer_classes("LayerNormalization", "RMSNormalization", "UnitNormalization"):
    register_layer(_norm, channelwise.AcrossChannels(_norm))
# keras.applications' own layers: ConvNeXt's per-channel scale and
# InceptionResNetV2's scaled residual sum.
_APPLICATION_LAYERS = _compat.application_layer_classes()
register_layer(_APPLICATION_LAYERS["LayerScale"], channelwise.LayerScaleHandler())
register_layer(_APPLICATION_LAYERS["CustomScaleLayer"], structure.ElementwiseMerge())
register_layer(_layer_classes("SpectralNormalization"), conv.KernelWrapperHandler())

# keras_taylor's own layers.
register_layer(ChannelMask, channelwise.ChannelMaskHandler())
register_training_class(keras.layers.Conv1D, MaskedKernelConv1D)
register_training_class(keras.layers.Conv2D, MaskedKernelConv2D)
register_training_class(keras.layers.Conv3D, MaskedKernelConv3D)
register_training_class(keras.layers.BatchNormalization, FusedBatchNormalization)
register_training_class(keras.layers.LayerNormalization, MaskedLayerNormalization)
if MaskedRMSNormalization is not None:
    register_training_class(keras.layers.RMSNormalization, MaskedRMSNormalization)

# keras.ops calls recorded as nodes of a functional model.
register_layer(
    _compat.keras_op_classes(
        "Relu", "Relu6", "Sigmoid", "SparseSigmoid", "Softplus", "Softsign",
        "SoftShrink", "SparsePlus", "Silu", "Squareplus", "LogSigmoid",
        "LeakyRelu", "HardSigmoid", "HardSilu", "Elu", "Selu", "Gelu", "Celu",
        "HardTanh", "HardShrink", "TanhShrink", "Threshold", module="nn",
    )
    + _compat.keras_op_classes(
        "Abs", "Absolute", "Tanh", "Exp", "Exp2", "Expm1", "Log", "Log1p",
        "Log2", "Log10", "Sqrt", "Square", "Negative", "Sin", "Cos", "Tan",
        "Arctan", "Sinh", "Cosh", "Arcsinh", "Clip", "Sign", "Floor", "Ceil",
        "Round", "Reciprocal", "NanToNum",
    )
    + _compat.keras_op_classes("Erf", "Rsqrt", module="math")
    + _compat.keras_op_classes("Cast", module="core"),
    ops.ElementwiseOp(),
)
register_layer(
    _compat.keras_op_classes("Mean", "Max", "Min", "Sum", "Prod", "Var", "Std", "Amax", "Amin"),
    ops.ReduceOp(),
)
register_layer(_compat.keras_op_classes("Pad"), ops.PadOp())
register_layer(_compat.keras_op_classes("MaxPool", "AveragePool", module="nn"), ops.PoolOp())
register_layer(_compat.keras_op_classes("Split"), ops.SplitOp())
register_layer(_compat.keras_op_classes("GetItem"), ops.GetItemOp())
register_layer(_compat.keras_op_classes("Reshape"), ops.ReshapeOp())
register_layer(_compat.keras_op_classes("Transpose"), ops.TransposeOp())
register_layer(_compat.keras_op_classes("DepthToSpace", module="nn"), ops.DepthToSpaceOp())
register_layer(_compat.keras_op_classes("SpaceToDepth", module="nn"), ops.SpaceToDepthOp())
