"""Convolutions inside layers keras_taylor cannot see into are named.

A custom block built from Conv layers that cannot be traced (here: a raw
TensorFlow op in its call) is opaque until it is registered: the nothing-prunable error and `analyze` say which layers
hold how many convolutions, and the line that would teach them.
"""

import pytest

import keras
import tensorflow as tf
from keras import layers

import keras_taylor as kt
from helpers import head


class ConvBlock(layers.Layer):
    """Two convolutions and a batch norm, called inside `call`."""

    def __init__(self, filters=4, **kwargs):
        super().__init__(**kwargs)
        self.filters_out = filters
        self.a = layers.Conv2D(filters, 3, padding="same")
        self.bn = layers.BatchNormalization()
        self.b = layers.Conv2D(filters, 1)

    def call(self, x):
        return self.b(tf.nn.relu(self.bn(self.a(x))))  # raw TF: not traceable

    def get_config(self):
        return dict(super().get_config(), filters=self.filters_out)


def _blocks_only():
    inputs = keras.Input((8, 8, 3))
    x = ConvBlock(name="block1")(inputs)
    x = ConvBlock(name="block2")(x)
    return keras.Model(inputs, head(x))


def test_nothing_prunable_names_hidden_convolutions():
    with pytest.raises(kt.NothingPrunableError) as info:
        kt.TaylorPrunableModel(_blocks_only())
    message = str(info.value)
    assert "that keras_taylor can see" in message
    assert "4 convolutions sit inside 2 layers" in message
    assert "ConvBlock 'block1' holds 2 convolutions" in message
    assert "kt.register_layer(ConvBlock, handler)" in message


def test_blocked_candidates_and_hidden_convolutions_are_both_named():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, name="visible")(inputs)
    x = ConvBlock(name="block")(x)
    model = keras.Model(inputs, head(x))
    with pytest.raises(kt.NothingPrunableError) as info:
        kt.TaylorPrunableModel(model)
    message = str(info.value)
    assert "visible: blocked by 'block'" in message
    assert "2 convolutions sit inside a layer" in message
    assert info.value.blockers["visible"][0][0] == "block"


def test_analyze_says_what_an_opaque_layer_holds():
    inputs = keras.Input((8, 8, 3))
    x = ConvBlock(name="block")(inputs)
    x = layers.Conv2D(5, 3, name="after")(x)
    table = kt.analyze(keras.Model(inputs, head(x))).set_index("name")
    assert table.loc["after", "prunable"]
    assert "holds 2 convolutions" in table.loc["block", "reason"]
    assert "kt.register_layer(ConvBlock" in table.loc["block", "reason"]


def test_registered_block_is_not_called_hidden():
    class Scale(layers.Layer):
        def call(self, x):
            return tf.multiply(x, 2.0)

    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(5, 3, name="c")(inputs)
    x = Scale(name="scale")(x)
    table = kt.analyze(keras.Model(inputs, head(x))).set_index("name")
    assert "convolution" not in str(table.loc["scale", "reason"])
