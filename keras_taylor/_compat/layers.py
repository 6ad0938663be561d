"""Private access to layers: created weights, raw kernels, op and application layer classes.

Part of `keras_taylor._compat` (see its docstring). Nothing here imports keras_taylor.
"""

import importlib


def created_trainable_weights(layer):
    """The weights `layer` was built to train, even while it is frozen.

    Public stand-in: `layer.trainable_weights`, which is empty when
    `layer.trainable` is False.
    """
    variables = getattr(layer, "_trainable_variables", None)
    return layer.trainable_weights if variables is None else variables


def raw_kernel(layer):
    """A convolution's kernel variable, not a (masked or quantized) view of it.

    Public stand-in: `layer.kernel`, which a subclass may compute.
    """
    return layer._kernel


def keras_op_classes(*names, module="numpy"):
    """The classes of `keras.ops` operations (`Add`, `Multiply`, `Relu`, ...).

    Public stand-in: none; `keras.ops.add` is a function whose call in a
    functional model leaves a node of one of these classes. `module` is the
    `keras.src.ops` module that defines them: "numpy", "nn", "math" or "core".
    Names this Keras version lacks are left out.
    """
    ops_module = importlib.import_module(f"keras.src.ops.{module}")
    return [getattr(ops_module, n) for n in names if hasattr(ops_module, n)]


def _application_layer_class(module, name):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def application_layer_classes():
    """{name: class} of layers defined inside keras.applications (None if gone).

    Public stand-in: none; `keras.applications` does not export the layers
    its models use: ConvNeXt's per-channel `LayerScale` and
    InceptionResNetV2's scaled residual sum `CustomScaleLayer`.
    """
    return {
        "LayerScale": _application_layer_class("keras.src.applications.convnext", "LayerScale"),
        "CustomScaleLayer": _application_layer_class(
            "keras.src.applications.inception_resnet_v2", "CustomScaleLayer"
        ),
    }


def batch_norm_renorm(layer):
    """Whether a `BatchNormalization` layer uses batch renormalization.

    Public stand-in: `layer.renorm`, which newer Keras releases have; Keras 3.5
    has no renormalization (and no such attribute), so False there.
    """
    return bool(getattr(layer, "renorm", False))
