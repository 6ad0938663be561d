"""Grouped convolutions that are depthwise, copied as `DepthwiseConv1D/2D`.

keras-hub (and code ported from PyTorch) writes a depthwise convolution as
`Conv2D(groups=channels)`. It computes exactly what `DepthwiseConv2D` does,
but TensorFlow runs it on the CPU as a loop over groups: about ten times
slower to train (keras-hub's MobileNetV3 small at 32x32, batch 128: 5.3 s a
step against 0.57 s), and LiteRT has no grouped-convolution kernel on
every delegate. The prunable model, and so every stripped model, gets the
depthwise layer instead: same outputs, same weights rearranged.
"""

import keras
import numpy as np

# Plain Keras classes only: a subclass may change what `call` does.
_DEPTHWISE_OF = {
    keras.layers.Conv1D: keras.layers.DepthwiseConv1D,
    keras.layers.Conv2D: keras.layers.DepthwiseConv2D,
}
_RENAMED = {
    "kernel_initializer": "depthwise_initializer",
    "kernel_regularizer": "depthwise_regularizer",
}
_DROPPED = ("filters", "groups", "lora_rank", "lora_alpha", "kernel_constraint")


def is_grouped_depthwise(node):
    """True when `node` calls a plain `Conv1D/2D` with one group per input channel.

    Not where the kernel has a constraint (its axes would mean other things
    on the rearranged kernel) or low-rank adaptation, nor channels-first,
    nor with `padding="causal"`, which the depthwise layers do not take.
    """
    config = node.config
    groups = config.get("groups", 1)
    channels = node.input_shapes[0][-1] if node.input_shapes else None
    return (
        type(node.layer) in _DEPTHWISE_OF
        and groups != 1
        and groups == channels
        and config.get("filters", 0) % groups == 0
        and config.get("data_format", "channels_last") == "channels_last"
        and config.get("padding", "valid") in ("valid", "same")  # no "causal" in the depthwise layers
        and config.get("kernel_constraint") is None
        and not config.get("lora_rank")
    )


def depthwise_class(node):
    return _DEPTHWISE_OF[type(node.layer)]


def depthwise_config(node):
    """`node`'s config, as the config of its depthwise layer."""
    config = {_RENAMED.get(k, k): v for k, v in node.config.items() if k not in _DROPPED}
    config["depth_multiplier"] = node.config["filters"] // node.config["groups"]
    config.pop("build_config", None)  # built again from the input it is called on
    return config


def depthwise_weights(node, arrays):
    """`arrays` (kernel, bias) rearranged for the depthwise layer.

    The grouped kernel is `(*window, 1, filters)`, filter `o` reading input
    channel `o // multiplier`; the depthwise one is `(*window, channels,
    multiplier)`, the same filter at `[..., o // multiplier, o % multiplier]`:
    a reshape, since `o = channel * multiplier + m`.
    """
    kernel, *rest = arrays
    groups = node.config["groups"]
    shape = kernel.shape[:-2] + (groups, kernel.shape[-1] // groups)
    return [np.reshape(kernel, shape), *rest]
