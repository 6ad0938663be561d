"""Model structure: Sequential, several inputs and outputs, nested
sub-models, shared layers and shared sub-models."""

import numpy as np
import pytest

import keras
from keras import layers

import keras_taylor as kt

from helpers import (
    assert_masked_equals_stripped,
    assert_pruning_changes_output,
    bn_params,
    conv_params,
    dense_params,
    head,
    rand,
    units_of,
    wrap_and_prune,
)

X = rand((2, 8, 8, 3))


def test_sequential_model():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.Conv2D(5, 3, name="c0"),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Conv2D(4, 3, name="c1"),
            layers.Flatten(),
            layers.Dense(2),
        ]
    )
    pm = wrap_and_prune(model, {"c0": [0, 4], "c1": [3]})
    expected = (
        conv_params(9, 3, 3) + bn_params(3) + conv_params(9, 3, 3)
        + dense_params(4 * 4 * 3, 2)
    )
    assert_pruning_changes_output(model, pm, X)
    assert_masked_equals_stripped(pm, X, expected)


def test_multi_input_model():
    a_in = keras.Input((8, 8, 3), name="img")
    b_in = keras.Input((16, 2), name="seq")
    a = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(4, 3, name="a")(a_in)))
    b = layers.Conv1D(5, 3, name="b")(b_in)
    feats = layers.Concatenate()(
        [layers.GlobalAveragePooling2D()(a), layers.GlobalMaxPooling1D()(b)]
    )
    model = keras.Model({"img": a_in, "seq": b_in}, layers.Dense(2)(feats))
    x = {"img": X, "seq": rand((2, 16, 2), 1)}
    pm = wrap_and_prune(model, {"a": [1], "b": [0, 2, 4]})
    expected = (
        conv_params(9, 3, 3) + bn_params(3) + conv_params(3, 2, 2)
        + dense_params(5, 2)
    )
    assert_pruning_changes_output(model, pm, x)
    assert_masked_equals_stripped(pm, x, expected)


def test_multi_output_model_list_and_dict():
    inputs = keras.Input((8, 8, 3))
    a = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(6, 3, name="a")(inputs)))
    b = layers.Conv2D(4, 3, name="b")(a)
    gap = layers.GlobalAveragePooling2D()
    out1 = layers.Dense(2, name="o1")(gap(a))
    out2 = layers.Dense(3, name="o2")(layers.Flatten()(b))
    expected = (
        conv_params(9, 3, 4) + bn_params(4) + conv_params(9, 4, 3)
        + dense_params(4, 2) + dense_params(4 * 4 * 3, 3)
    )
    for outputs in ([out1, out2], {"o1": out1, "o2": out2}):
        model = keras.Model(inputs, outputs)
        pm = wrap_and_prune(model, {"a": [0, 5], "b": [2]})
        out = pm(X)
        assert type(out) is type(outputs)
        assert_masked_equals_stripped(pm, X, expected)


def test_functional_inside_functional():
    inner_in = keras.Input((8, 8, 4))
    y = layers.Conv2D(5, 3, padding="same", name="inner_conv")(inner_in)
    y = layers.ReLU()(layers.BatchNormalization(name="inner_bn")(y))
    inner = keras.Model(inner_in, y, name="block")

    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    x = inner(x)
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"a": [3], "inner_conv": [0, 1]})
    expected = (
        conv_params(9, 3, 3) + conv_params(9, 3, 3) + bn_params(3)
        + dense_params(3, 3)
    )
    assert_pruning_changes_output(model, pm, X)
    assert_masked_equals_stripped(pm, X, expected)


def test_sequential_inside_functional():
    inner = keras.Sequential(
        [
            keras.Input((8, 8, 4)),
            layers.Conv2D(5, 3, padding="same", name="s_conv"),
            layers.BatchNormalization(),
            layers.ReLU(),
        ],
        name="seq_block",
    )
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    x = inner(x)
    x = layers.Add()([x, layers.Conv2D(5, 1, name="skip")(inputs)])
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"a": [0], "s_conv": [4]})
    np.testing.assert_array_equal(units_of(pm, "s_conv"), units_of(pm, "skip"))
    expected = (
        conv_params(9, 3, 3) + conv_params(9, 3, 4) + bn_params(4)
        + conv_params(1, 3, 4) + dense_params(4, 3)
    )
    assert_masked_equals_stripped(pm, X, expected)


def test_two_levels_of_nesting():
    deep_in = keras.Input((8, 8, 4))
    deep = keras.Model(deep_in, layers.Conv2D(4, 1, name="deep_conv")(deep_in), name="deep")
    mid_in = keras.Input((8, 8, 4))
    mid = keras.Model(mid_in, layers.ReLU()(deep(mid_in)), name="mid")
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    model = keras.Model(inputs, head(mid(x)))
    pm = wrap_and_prune(model, {"a": [1], "deep_conv": [2]})
    expected = conv_params(9, 3, 3) + conv_params(1, 3, 3) + dense_params(3, 3)
    assert_masked_equals_stripped(pm, X, expected)


def test_shared_layer_called_twice_couples_its_inputs():
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
    b = layers.Conv2D(6, 3, padding="same", name="b")(inputs)
    shared = layers.Conv2D(4, 3, padding="same", name="shared")
    x = layers.Concatenate()([shared(a), shared(b)])
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"a": [1, 2], "shared": [3]})
    # One kernel slices the input channels of both calls the same way.
    np.testing.assert_array_equal(units_of(pm, "a"), units_of(pm, "b"))
    expected = 2 * conv_params(9, 3, 4) + conv_params(9, 4, 3) + dense_params(6, 3)
    small = assert_masked_equals_stripped(pm, X, expected)
    assert len([l for l in small.layers if l.name == "shared"]) == 1


def test_shared_sub_model_called_twice():
    inner_in = keras.Input((8, 8, 3))
    y = layers.Conv2D(5, 3, padding="same", name="tower_conv")(inner_in)
    y = layers.ReLU()(layers.BatchNormalization()(y))
    tower = keras.Model(inner_in, y, name="tower")

    left = keras.Input((8, 8, 3), name="left")
    right = keras.Input((8, 8, 3), name="right")
    x = layers.Subtract()([tower(left), tower(right)])
    x = layers.Conv2D(4, 1, name="c")(x)
    model = keras.Model([left, right], head(x))
    x = [X, rand((2, 8, 8, 3), 7)]
    pm = wrap_and_prune(model, {"tower_conv": [0, 3], "c": [1]})
    expected = (
        conv_params(9, 3, 3) + bn_params(3) + conv_params(1, 3, 3) + dense_params(3, 3)
    )
    assert_pruning_changes_output(model, pm, x)
    assert_masked_equals_stripped(pm, x, expected)


def test_layer_names_clash_across_nested_models():
    def block(name):
        i = keras.Input((8, 8, 4))
        return keras.Model(i, layers.Conv2D(4, 1, name="conv")(i), name=name)

    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    x = block("b1")(x)
    x = block("b2")(x)
    model = keras.Model(inputs, head(x))
    pm = kt.TaylorPrunableModel(model)
    names = [n.name for n in pm._flat.nodes]
    assert len(names) == len(set(names))
    table = kt.analyze(model)
    assert table["name"].is_unique
    assert table["prunable"].sum() == 3


SHARED_PER_CHANNEL = {
    "batchnorm": (lambda: layers.BatchNormalization(name="sh"), 4),
    "prelu": (lambda: layers.PReLU(shared_axes=[1, 2], name="sh"), 1),
    "reshape": (lambda: layers.Reshape((64, 6), name="sh"), 0),
}


@pytest.mark.parametrize("kind", sorted(SHARED_PER_CHANNEL))
def test_shared_per_channel_layer_couples_its_call_sites(kind):
    # One BN (or PReLU, Reshape) applied to two unrelated convs: the stripped
    # model has one copy of it, so both convs must lose the same channels.
    make, per_channel = SHARED_PER_CHANNEL[kind]
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
    b = layers.Conv2D(6, 3, padding="same", name="b")(inputs)
    shared = make()
    x = layers.Concatenate()([shared(a), shared(b)])
    x = layers.Conv2D(4, 1, name="c")(layers.Reshape((8, 8, -1))(x))
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"a": [0, 3]})
    np.testing.assert_array_equal(units_of(pm, "a"), units_of(pm, "b"))
    expected = (
        2 * conv_params(9, 3, 4) + 4 * per_channel + conv_params(1, 8, 4)
        + dense_params(4, 3)
    )
    assert_masked_equals_stripped(pm, X, expected)


def test_shared_weightless_layer_on_different_widths():
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = layers.Conv2D(6, 3, padding="same", name="b")(inputs)
    gap = layers.GlobalAveragePooling2D()
    x = layers.Concatenate()([gap(a), gap(b)])
    model = keras.Model(inputs, layers.Dense(2)(x))
    pm = wrap_and_prune(model, {"a": [1], "b": [0, 5]})
    expected = conv_params(9, 3, 3) + conv_params(9, 3, 4) + dense_params(7, 2)
    assert_masked_equals_stripped(pm, X, expected)
