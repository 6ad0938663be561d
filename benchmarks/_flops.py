"""A small FLOPs counter for Keras models, from layer shapes.

Counts multiply-accumulates (MACs) of Conv1D/Conv2D/Conv3D (grouped included),
DepthwiseConv1D/2D, SeparableConv1D/2D and Dense; FLOPs = 2 x MACs. Batch
normalisation, activations, additions and pooling are not counted (they are a
few percent of a CNN's work and scale with the same channel counts). Nested
sub-models are walked; a layer called several times is counted per call.
"""

import numpy as np


def _shape(t):
    return tuple(t.shape)


def _positions(shape):
    """Number of positions of an (N, ..., C) tensor shape."""
    return int(np.prod([d for d in shape[1:-1]])) if len(shape) > 2 else 1


def layer_macs(layer, in_shape, out_shape):
    import keras

    L = keras.layers
    kind = type(layer).__name__
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)) or kind.startswith("DepthwiseConv"):
        kernel = int(np.prod(layer.kernel_size))
        return _positions(out_shape) * out_shape[-1] * kernel
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        kernel = int(np.prod(layer.kernel_size))
        c_in = in_shape[-1]
        depthwise = _positions(out_shape) * c_in * layer.depth_multiplier * kernel
        pointwise = _positions(out_shape) * c_in * layer.depth_multiplier * out_shape[-1]
        return depthwise + pointwise
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)) and not kind.endswith("Transpose"):
        kernel = int(np.prod(layer.kernel_size))
        groups = getattr(layer, "groups", 1) or 1
        return _positions(out_shape) * out_shape[-1] * kernel * in_shape[-1] // groups
    if isinstance(layer, L.Dense):
        return _positions(out_shape) * in_shape[-1] * out_shape[-1]
    return 0


def macs(model):
    """Multiply-accumulates of one forward pass of one sample."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += macs(layer)
            continue
        for node in getattr(layer, "_inbound_nodes", []):
            inputs = node.input_tensors
            outputs = node.output_tensors
            if not inputs or not outputs:
                continue
            total += layer_macs(layer, _shape(inputs[0]), _shape(outputs[0]))
    return int(total)


def flops(model):
    """FLOPs (2 x MACs) of one forward pass of one sample."""
    return 2 * macs(model)
