"""Honest accounting: learnables are every trainable weight of the model.

LSTM, MultiHeadAttention and custom layers with their own weights (and the
layers they hold) count, although nothing in them is pruned, so the
reductions keras_taylor reports are fractions of the real model. Each test
checks them against the stripped model's own counts. "Learnables" are
trainable weights (MATLAB's learnables); batch-norm moving statistics are
state, not learnables, and the models here without batch normalisation
therefore have `count_params() == learnables`.
"""

import numpy as np
import pytest

import keras
from keras import layers

import keras_taylor as kt
from helpers import assert_masked_equals_stripped, prune_channels, rand, randomize_weights


@keras.saving.register_keras_serializable(package="test_accounting")
class Project(layers.Layer):
    """A custom layer with a weight of its own and a Dense inside."""

    def __init__(self, units=5, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = layers.Dense(3)

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1], self.units), initializer="ones")
        self.inner.build((None, self.units))

    def call(self, x):
        return self.inner(keras.ops.matmul(x, self.w))

    def get_config(self):
        return dict(super().get_config(), units=self.units)


def _trunk():
    inputs = keras.Input((16, 8, 1))
    x = layers.Conv2D(8, 3, padding="same", name="c0")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(6, 3, padding="same", name="c1")(x)
    return inputs, layers.Reshape((8, 4 * 6))(x)


def lstm_model():
    inputs, x = _trunk()
    x = layers.Dense(12, name="d")(x)
    x = layers.Bidirectional(layers.LSTM(16, return_sequences=True))(x)
    return keras.Model(inputs, layers.Dense(4, name="out")(x))


def attention_model():
    inputs, x = _trunk()
    x = layers.Dense(8, name="d")(x)
    x = layers.MultiHeadAttention(2, 8)(x, x)
    return keras.Model(inputs, layers.Dense(4, name="out")(layers.GlobalAveragePooling1D()(x)))


def custom_model():
    inputs, x = _trunk()
    x = Project()(x)
    return keras.Model(inputs, layers.Dense(4, name="out")(layers.GlobalAveragePooling1D()(x)))


@pytest.mark.parametrize("make", [lstm_model, attention_model, custom_model])
def test_accounted_reduction_is_the_real_one(make):
    model = randomize_weights(make())
    before = model.count_params()
    pm = kt.TaylorPrunableModel(model)
    assert pm.original_learnables == before
    table = kt.analyze(model)
    assert int(table.num_learnables.sum()) == before
    prune_channels(pm, "c0", [0, 3, 5])
    if make is not custom_model:  # the custom layer blocks c1
        prune_channels(pm, "c1", [1, 2])
    x = rand((2, 16, 8, 1))
    small = assert_masked_equals_stripped(pm, x)
    assert pm.num_learnables == small.count_params()
    assert pm.learnables_reduction == pytest.approx(1 - small.count_params() / before)
    assert int(kt.analyze(pm).num_learnables.sum()) == small.count_params()


@pytest.mark.parametrize("make", [lstm_model, attention_model, custom_model])
def test_max_reduction_is_what_pruning_everything_gives(make):
    model = randomize_weights(make())
    before = model.count_params()
    pm = kt.TaylorPrunableModel(model, criterion="l1")
    pm.update_prunables(max_to_prune=pm.num_prunables)
    small = kt.strip_pruning(pm)
    assert kt.max_reduction(model) == pytest.approx(1 - small.count_params() / before)


def test_batch_norm_statistics_are_not_learnables():
    inputs, x = _trunk()
    x = layers.BatchNormalization()(x)
    x = layers.LSTM(6)(x)
    model = randomize_weights(keras.Model(inputs, layers.Dense(2)(x)))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    pm = kt.TaylorPrunableModel(model)
    assert pm.original_learnables == trainable == model.count_params() - 2 * 24


def test_shared_variable_counts_once():
    inputs = keras.Input((6, 6, 2))
    x = layers.Conv2D(4, 3, name="c0")(inputs)
    dense = layers.Dense(4, name="shared")
    y = dense(layers.GlobalAveragePooling2D()(x))
    y = dense(y)
    model = keras.Model(inputs, layers.Dense(2)(y))
    pm = kt.TaylorPrunableModel(model)
    assert pm.original_learnables == model.count_params()
