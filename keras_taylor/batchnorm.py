"""Batch normalization that trains with TensorFlow's fused kernel.

Keras 3 normalizes a batch with separate moment, subtract, multiply and add
ops (and as many in the backward pass). On a CPU, where a small CNN's time
goes to such elementwise passes over its activations, that makes a ResNet-20
training step about twice as slow as with `tf.nn.fused_batch_norm`, one
kernel each way. The prunable model therefore trains its copies of
`BatchNormalization` as `FusedBatchNormalization`, which computes the same
thing (up to float rounding) and keeps the same weights and config;
`strip_pruning` turns them back into plain Keras layers.
"""

import keras
import tensorflow as tf

from keras_taylor import _compat

# The fused kernel rejects smaller epsilons on some devices (cuDNN's limit).
_MIN_FUSED_EPSILON = 1.001e-5


@keras.saving.register_keras_serializable(package="keras_taylor")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training step is one fused op.

    Same arguments, weights and results as the Keras layer. Training calls on
    float32 inputs with the channels last, no mask, no renormalization and no
    cross-replica synchronization use `tf.nn.fused_batch_norm`; everything
    else (inference included) runs the Keras layer's own code.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
    >>> fused = FusedBatchNormalization()
    >>> plain = keras.layers.BatchNormalization()
    >>> a = keras.ops.convert_to_numpy(fused(x, training=True))
    >>> b = keras.ops.convert_to_numpy(plain(x, training=True))
    >>> bool(np.allclose(a, b, atol=1e-5))
    True
    """

    def _fusable(self, inputs, training, mask):
        rank = len(inputs.shape)
        return (
            bool(training)
            and self.trainable
            and mask is None
            and not _compat.batch_norm_renorm(self)
            and not self.synchronized
            and rank >= 2
            and self.axis in (-1, rank - 1)
            and inputs.dtype == tf.float32
            and self.epsilon >= _MIN_FUSED_EPSILON
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        shape = tf.shape(inputs)
        # The kernel wants NHWC: any (batch, ..., channels) becomes
        # (batch, 1, positions, channels), which has the same statistics.
        four_d = tf.reshape(inputs, [shape[0], 1, -1, channels])
        scale = self.gamma if self.scale else tf.ones((channels,), tf.float32)
        offset = self.beta if self.center else tf.zeros((channels,), tf.float32)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            four_d, scale, offset, epsilon=self.epsilon, is_training=True
        )
        # The kernel reports the unbiased variance; Keras keeps the biased one.
        count = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, tf.float32)
        variance = variance * tf.maximum(count - 1.0, 0.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(
            self.moving_mean * self.momentum + mean * (1.0 - self.momentum)
        )
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return tf.reshape(outputs, shape)

