"""Blockers: reported by `kt.analyze` with the layer and the reason, never
guessed. A prunable conv after each blocker checks that the blocked part is
copied untouched while the rest is still pruned and stripped exactly.
"""

import numpy as np
import pytest

import keras
import tensorflow as tf
from keras import layers

import keras_taylor as kt

from helpers import (
    keras_has_activation,
    assert_masked_equals_stripped,
    bn_params,
    conv_params,
    dense_params,
    head,
    rand,
    units_of,
    wrap_and_prune,
)

X = rand((2, 8, 8, 3))


@keras.saving.register_keras_serializable(package="keras_taylor_tests")
class TimesTwo(keras.layers.Layer):
    """A custom layer keras_taylor has never heard of, written with a raw
    TensorFlow op, so that it cannot be traced either."""

    def call(self, x):
        return tf.multiply(x, 2.0)


def _lambda():
    return layers.Lambda(lambda t: t * 2.0, name="lam")


# name -> (make blocker, learnables it holds for 6 channels, reason keyword)
BLOCKERS = {
    "group_norm_spatial": (lambda: layers.GroupNormalization(2, axis=1, name="blk"), 16, "other than the channels"),
    "layer_norm_spatial": (lambda: layers.LayerNormalization(axis=(1, 2, 3), name="blk"), 768, "not the channel axis"),
    "reshape_mixing": (lambda: layers.Reshape((8, 6, 8), name="blk"), 0, "mixes the channel"),
    "permute_channels": (lambda: layers.Permute((3, 2, 1), name="blk"), 0, "moves the channel"),
    "custom_layer": (lambda: TimesTwo(name="blk"), 0, "could not be traced"),
    "lambda": (lambda: layers.Lambda(lambda t: t * 2.0, name="blk"), 0, "lambda"),
    "softmax_activation": (lambda: layers.Activation("softmax", name="blk"), 0, "softmax"),
    "softmax_layer": (lambda: layers.Softmax(name="blk"), 0, "across the channels"),
    "unit_norm_spatial": (lambda: layers.UnitNormalization(axis=(1, 2, 3), name="blk"), 0, "not the channel axis"),
}


@pytest.mark.parametrize("kind", sorted(BLOCKERS))
def test_blocker_is_reported_and_respected(kind):
    make, blocker_params, keyword = BLOCKERS[kind]
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
    x = make()(x)
    x = layers.Conv2D(5, 1, name="b")(x)
    x = layers.BatchNormalization()(x)
    model = keras.Model(inputs, head(x))

    table = kt.analyze(model).set_index("name")
    row = table.loc["a"]
    assert not row["prunable"]
    assert row["blocked_by"] == "blk"
    assert keyword.lower() in row["reason"].lower()
    assert table.loc["b", "prunable"]

    pm = wrap_and_prune(model, {"b": [0, 2]})
    assert not pm.channel_graph.unit_prunable[units_of(pm, "a")].any()
    assert pm.num_prunables == 2
    b_in = 8 if kind in ("reshape_mixing", "permute_channels") else 6
    expected = (
        conv_params(9, 3, 6) + blocker_params
        + conv_params(1, b_in, 3) + bn_params(3) + dense_params(3, 3)
    )
    small = assert_masked_equals_stripped(pm, X, expected)
    assert small.get_layer("a").filters == 6


def test_conv_activation_softmax_blocks_its_own_filters():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, activation="softmax", name="a")(inputs)
    x = layers.Conv2D(4, 3, name="b")(x)
    model = keras.Model(inputs, head(x))
    row = kt.analyze(model).set_index("name").loc["a"]
    assert not row["prunable"] and "softmax" in row["reason"]


def test_softmax_over_spatial_axis_does_not_block():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
    x = layers.Softmax(axis=1)(x)
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"a": [1, 3]})
    expected = conv_params(9, 3, 4) + dense_params(4, 3)
    assert_masked_equals_stripped(pm, X, expected)


def test_conv_feeding_a_model_output_is_blocked():
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
    b = layers.Conv2D(4, 3, padding="same", name="b")(a)
    model = keras.Model(inputs, [a, head(b)])
    row = kt.analyze(model).set_index("name").loc["a"]
    assert not row["prunable"]
    assert row["blocked_by"] == "a"
    assert "model output" in row["reason"]
    pm = wrap_and_prune(model, {"b": [0, 1]})
    expected = conv_params(9, 3, 6) + conv_params(9, 6, 2) + dense_params(2, 3)
    assert_masked_equals_stripped(pm, X, expected)


def test_output_through_passthrough_still_blocks():
    # The output is the ReLU of `a`, not `a` itself: still the same channels.
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
    r = layers.ReLU(name="r")(layers.BatchNormalization()(a))
    b = layers.Conv2D(4, 3, padding="same", name="b")(r)
    model = keras.Model(inputs, [head(b), r])
    row = kt.analyze(model).set_index("name").loc["a"]
    assert not row["prunable"] and row["blocked_by"] == "r"


def test_blocker_on_one_branch_blocks_the_coupled_group():
    # a and b are added; only b's branch reaches a blocking LayerNormalization.
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(6, 1, name="a")(inputs)
    b = layers.Conv2D(6, 1, name="b")(inputs)
    s = layers.Add()([a, b])
    n = layers.LayerNormalization(axis=(1, 2, 3), name="ln")(b)
    c = layers.Conv2D(4, 1, name="c")(layers.Concatenate()([s, n]))
    model = keras.Model(inputs, head(c))
    table = kt.analyze(model).set_index("name")
    assert table.loc["a", "blocked_by"] == "ln"
    assert table.loc["b", "blocked_by"] == "ln"
    assert table.loc["c", "prunable"]


def test_blocked_lambda_layer_is_copied_and_still_works():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
    x = layers.Conv2D(5, 3, padding="same", name="b")(x)
    x = _lambda()(x)
    x = layers.Conv2D(4, 1, name="c")(x)
    model = keras.Model(inputs, head(x))
    table = kt.analyze(model).set_index("name")
    assert table.loc["b", "blocked_by"] == "lam"
    assert table.loc["a", "prunable"]
    pm = wrap_and_prune(model, {"a": [0, 5], "c": [1]})
    expected = (
        conv_params(9, 3, 4) + conv_params(9, 4, 5) + conv_params(1, 5, 3)
        + dense_params(3, 3)
    )
    assert_masked_equals_stripped(pm, X, expected)


def test_channels_first_conv_blocks():
    inputs = keras.Input((3, 8, 8))
    x = layers.Conv2D(6, 3, data_format="channels_first", name="a")(inputs)
    x = layers.Conv2D(4, 3, data_format="channels_first", name="b")(x)
    x = layers.GlobalAveragePooling2D(data_format="channels_first")(x)
    model = keras.Model(inputs, layers.Dense(2)(x))
    table = kt.analyze(model).set_index("name")
    assert not table["prunable"].any()
    assert "channels_first" in table.loc["a", "reason"]
    with pytest.raises(kt.NothingPrunableError, match="channels_first"):
        kt.TaylorPrunableModel(model)


def test_unknown_layer_not_guessed_even_if_elementwise():
    # TimesTwo is channel-wise, but keras_taylor cannot know: it must block,
    # and the registry must not change as a side effect of analysis.
    from keras_taylor import handlers

    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, name="a")(inputs)
    x = TimesTwo(name="t2")(x)
    model = keras.Model(inputs, head(layers.Conv2D(4, 3, name="b")(x)))
    kt.analyze(model)
    assert not handlers.is_registered(model.get_layer("t2"))
    assert kt.analyze(model).set_index("name").loc["a", "blocked_by"] == "t2"
    assert np.isfinite(kt.max_reduction(model))


def test_residual_with_the_model_input_is_blocked():
    inputs = keras.Input((8, 8, 3), name="image")
    a = layers.Conv2D(3, 3, padding="same", name="a")(inputs)
    x = layers.Add()([inputs, a])
    model = keras.Model(inputs, head(layers.Conv2D(4, 3, name="b")(x)))
    row = kt.analyze(model).set_index("name").loc["a"]
    assert not row["prunable"]
    assert row["blocked_by"] == "image" and "model input" in row["reason"]


@keras.saving.register_keras_serializable(package="keras_taylor_tests")
def _custom_activation(x):
    return x - keras.ops.mean(x, axis=-1, keepdims=True)


@pytest.mark.parametrize(
    "where, activation, keyword",
    [
        ("layer", _custom_activation, "not a keras element-wise"),
        pytest.param("layer", "sparsemax", "across the channels", marks=pytest.mark.skipif(
            not keras_has_activation("sparsemax"), reason="this Keras has no sparsemax")),
        ("conv", _custom_activation, "not a keras element-wise"),
        ("conv", "log_softmax", "across the channels"),
        ("depthwise", "softmax", "across the channels"),
    ],
)
def test_activations_that_may_mix_channels_block(where, activation, keyword):
    inputs = keras.Input((8, 8, 3))
    if where == "layer":
        x = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
        x = layers.Activation(activation, name="blk")(x)
    elif where == "conv":
        x = layers.Conv2D(6, 3, padding="same", activation=activation, name="a")(inputs)
    else:
        x = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
        x = layers.DepthwiseConv2D(3, activation=activation, name="blk")(x)
    x = layers.Conv2D(4, 1, name="b")(x)
    model = keras.Model(inputs, head(x))
    row = kt.analyze(model).set_index("name").loc["a"]
    assert not row["prunable"]
    assert row["blocked_by"] == ("a" if where == "conv" else "blk")
    assert keyword in row["reason"].lower()
    pm = wrap_and_prune(model, {"b": [1]})
    assert_masked_equals_stripped(pm, X)
