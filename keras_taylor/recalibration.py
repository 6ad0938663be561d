"""Re-estimating batch-norm statistics after filters are removed.

Pruning a filter changes what every later layer sees, but a
`BatchNormalization` layer keeps normalising with the moving mean and
variance of the unpruned network. Those stale statistics, not the loss of
the filters, cost most of the accuracy a pruned network shows before it is
fine-tuned: on MATLAB's digits CNN at 70% fewer learnables, Taylor pruning
kept 25% test accuracy with the old statistics and 71% once they were
re-estimated from ten training batches, with no weight trained (means of 10
seeds; the criteria benchmark in docs/benchmarks.md). Fine-tuning updates the
statistics too, but slowly (Keras's default momentum 0.99 keeps 85% of the
old value after 16 steps), so a short fine-tuning epoch is also validated
with stale statistics unless they are re-estimated first.

The moving statistics become the plain average of the batch statistics
over the given batches (as PyTorch's `momentum=None`), computed with every
other layer in inference mode (dropout off).
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf
from keras import tree

from keras_taylor import _compat
from keras_taylor.errors import InvalidArgumentError


def batch_norm_layers(model):
    """The `BatchNormalization` layers whose statistics can be re-estimated.

    Frozen layers (`trainable=False`, as in transfer learning, where the
    statistics are meant to stay) and batch renormalization layers (which
    keep their own corrections) are left out.
    """
    return [
        layer for layer in _compat.all_sublayers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
        and layer.trainable and not _compat.batch_norm_renorm(layer)
    ]


def recalibrate_batch_norm(model, data, batches=10, batch_size=32, seed=0):
    """Re-estimates the moving statistics of every `BatchNormalization` layer.

    Runs `batches` batches of `data` through `model` with its batch-norm
    layers computing batch statistics and everything else in inference
    mode, and sets each layer's moving mean and variance to their average.
    No weight is trained. Use it after pruning (before evaluating or
    fine-tuning), or after any change that shifts the activations.
    `compress` does it after every pruning step (`recalibration_batches`).

    Args:
        model: a `keras.Model` (a plain one, or a `TaylorPrunableModel`).
            Updated in place: only the moving statistics change.
        data: a `tf.data.Dataset` of batches (`x` or `(x, y, ...)`), a NumPy
            array `x`, or a tuple of arrays `(x, y)`. Arrays are shuffled
            with `seed` and batched with `batch_size`.
        batches: number of batches to average over (positive int); fewer
            are used if `data` runs out.
        batch_size: batch size for arrays.
        seed: seed of the shuffle of arrays.

    Returns:
        The names of the layers whose statistics were re-estimated (frozen
        and renormalization layers are left as they were).

    Example:

    >>> import keras, numpy as np, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3)(inputs)
    >>> x = keras.layers.BatchNormalization(name="bn")(x)
    >>> model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    >>> images = np.random.default_rng(0).normal(2.0, 1.0, (64, 8, 8, 3))
    >>> kt.recalibrate_batch_norm(model, images, batches=2)
    ['bn']
    """
    if not isinstance(model, keras.Model):
        raise InvalidArgumentError(
            f"model must be a keras.Model, got {type(model).__name__}"
        )
    check_positive_int(batches, "batches")
    layers = batch_norm_layers(model)
    if not layers:
        return []
    dataset = _input_batches(data, batch_size, seed)
    saved = [(layer, layer.momentum, layer.moving_mean.numpy(), layer.moving_variance.numpy())
             for layer in layers]
    used = 0
    try:
        with _batch_statistics(layers):
            for x in dataset.take(int(batches)):
                # Momentum k/(k+1) at the k-th batch makes the moving value
                # the running average of the batch values.
                for layer in layers:
                    layer.momentum = used / (used + 1.0)
                model(x, training=False)
                used += 1
    except Exception:
        for layer, _, mean, variance in saved:
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
        raise
    finally:
        for layer, momentum, _, _ in saved:
            layer.momentum = momentum
    return [layer.name for layer in layers]


class RecalibrateBeforeValidation(keras.callbacks.Callback):
    """Re-estimates batch-norm statistics before each validation inside `fit`.

    During fine-tuning the moving statistics trail the weights (at momentum
    0.99 an epoch of 60 steps still carries half of the statistics it
    started with), so the validation score and the weights kept would
    describe a network a little different from the one trained. Without
    validation data the statistics are re-estimated when training ends.
    """

    def __init__(self, data, batches):
        super().__init__()
        self.data = data
        self.batches = batches
        self._validated = False

    def on_train_begin(self, logs=None):
        self._validated = False

    def on_test_begin(self, logs=None):
        self._validated = True
        recalibrate_batch_norm(self.model, self.data, batches=self.batches)

    def on_train_end(self, logs=None):
        if not self._validated:
            recalibrate_batch_norm(self.model, self.data, batches=self.batches)


@contextlib.contextmanager
def _batch_statistics(layers):
    """Makes `layers` run as in training while the model runs in inference."""
    for layer in layers:
        original = layer.call

        def call(inputs, training=None, mask=None, _original=original):
            return _original(inputs, training=True, mask=mask)

        layer.call = call
    try:
        yield
    finally:
        for layer in layers:
            del layer.call


def _input_batches(data, batch_size, seed):
    """A dataset of model inputs `x` from any form `recalibrate_batch_norm` takes."""
    if isinstance(data, tf.data.Dataset):
        # A tuple element (x, y, ...) arrives as separate arguments.
        return data.map(lambda *element: element[0])
    data = check_data(data)
    check_positive_int(batch_size, "batch_size")
    order = np.random.default_rng(seed).permutation(len(tree.flatten(data)[0]))
    picked = tree.map_structure(lambda a: np.asarray(a)[order], data)
    return tf.data.Dataset.from_tensor_slices(picked).batch(int(batch_size))


def check_positive_int(value, name):
    """Raises an error naming `name` unless `value` is a positive int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a positive int, got {value!r}")


def check_data(data, name="data"):
    """The inputs `x` of `data` (arrays), or an error naming `name`; copies nothing.

    Datasets are returned as they are.
    """
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, (tuple, list)):
        if not data:
            raise InvalidArgumentError(f"{name} is an empty tuple")
        data = data[0]
    arrays = tree.flatten(data)
    if not arrays or any(not hasattr(a, "shape") for a in arrays):
        raise InvalidArgumentError(
            f"{name} must be a tf.data.Dataset, a NumPy array x or a tuple (x, y), "
            f"got {type(data).__name__}"
        )
    if len(arrays[0]) == 0:
        raise InvalidArgumentError(f"{name} holds no samples")
    return data
