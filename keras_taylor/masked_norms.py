"""Normalisations over the channels that count only the kept channels.

`keras.layers.LayerNormalization` and `keras.layers.RMSNormalization` take
their statistics over the channel axis, so removing a channel changes what
every other channel becomes. The prunable model therefore trains them as
`MaskedLayerNormalization` / `MaskedRMSNormalization`: the same layer, whose
mean and variance (or mean square) are taken over the channels its input's
`ChannelMask` keeps, divided by the kept count. The stripped model's plain
layer, which only has the kept channels, computes exactly the same thing.

The mask is bound to the layer by `masking.bind_kernel_masks` (as a
convolution's kernel mask is); a layer with no bound mask (every channel of
its input stays) computes what the Keras layer computes.
"""

import keras
from keras import ops


class _InputMasked:
    """Mixin: statistics over the channels of a bound 0/1 mask."""

    #: `masking.bind_kernel_masks` binds the mask of the layer's input here.
    binds_input_mask = True
    _input_mask = None

    def bind_input_mask(self, variable):
        # A tuple set past Keras's attribute tracking: the mask must not
        # become one of this layer's weights.
        object.__setattr__(self, "_input_mask", (variable,))

    def _mask_and_count(self):
        mask = ops.cast(self._input_mask[0], "float32")
        return mask, ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="keras_taylor")
class MaskedLayerNormalization(_InputMasked, keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` over the kept channels only.

    Same arguments and weights as the Keras layer, whose normalisation acts
    on the last axis. Channels the bound mask removes output 0.

    Example:

    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0, 30.0, 3.0]], "float32")
    >>> layer = MaskedLayerNormalization()
    >>> layer.build(x.shape)
    >>> mask = keras.Variable([1.0, 1.0, 0.0, 1.0], trainable=False)
    >>> layer.bind_input_mask(mask)
    >>> kept = keras.layers.LayerNormalization()(x[:, [0, 1, 3]])
    >>> bool(np.allclose(keras.ops.convert_to_numpy(layer(x))[:, [0, 1, 3]], kept, atol=1e-5))
    True
    """

    def call(self, inputs):
        if self._input_mask is None:
            return super().call(inputs)
        mask, count = self._mask_and_count()
        x = ops.cast(inputs, "float32")
        mean = ops.sum(x * mask, axis=-1, keepdims=True) / count
        centred = (x - mean) * mask
        variance = ops.sum(centred * centred, axis=-1, keepdims=True) / count
        inv = ops.rsqrt(variance + self.epsilon)
        if self.rms_scaling:  # Keras scales x (not x - mean) by the variance
            outputs = x * inv
        else:
            outputs = centred * inv
        if self.scale:
            outputs = outputs * ops.cast(self.gamma, "float32")
        if self.center and not self.rms_scaling:
            outputs = outputs + ops.cast(self.beta, "float32")
        return ops.cast(outputs * mask, self.compute_dtype)


_RMS = getattr(keras.layers, "RMSNormalization", None)

if _RMS is not None:

    @keras.saving.register_keras_serializable(package="keras_taylor")
    class MaskedRMSNormalization(_InputMasked, _RMS):
        """`keras.layers.RMSNormalization` over the kept channels only.

        Same arguments and weights as the Keras layer (last axis). Channels
        the bound mask removes output 0.
        """

        def call(self, x):
            if self._input_mask is None:
                return super().call(x)
            mask, count = self._mask_and_count()
            values = ops.cast(x, "float32") * mask
            mean_square = ops.sum(values * values, axis=-1, keepdims=True) / count
            outputs = values * ops.rsqrt(mean_square + self.epsilon)
            outputs = outputs * ops.cast(self.scale, "float32")
            return ops.cast(outputs, self.compute_dtype)

else:  # pragma: no cover - older Keras
    MaskedRMSNormalization = None
