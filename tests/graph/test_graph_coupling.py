"""Coupled channels: one group, one mask, sliced everywhere it flows.

Each test builds a tiny model with random weights, removes channels with
`set_unit_alive`, and checks the stripped model against the masked one and
against a parameter count made by hand from the layer shapes.
"""

import numpy as np
import pytest

import keras
from keras import layers

from helpers import (
    assert_masked_equals_stripped,
    assert_pruning_changes_output,
    bn_params,
    conv_params,
    dense_params,
    depthwise_params,
    head,
    rand,
    separable_params,
    tiny_cnn,
    tiny_cnn_params,
    units_of,
    wrap_and_prune,
)

X2 = rand((2, 8, 8, 3))
X1 = rand((2, 16, 3))


def _bn(x):
    return layers.BatchNormalization()(x)


# ------------------------------------------------------------ plain chains


@pytest.mark.parametrize("rank", [1, 2])
def test_conv_chain(rank):
    shape, x = ((16, 3), X1) if rank == 1 else ((8, 8, 3), X2)
    k = 3 if rank == 1 else 9
    model = tiny_cnn(shape, filters=(4, 6))
    pm = wrap_and_prune(model, {"c0": [1], "c1": [0, 2, 5]})
    assert pm.num_prunables == 2 + 2
    assert_pruning_changes_output(model, pm, x)
    small = assert_masked_equals_stripped(
        pm, x, tiny_cnn_params(3, (3, 3), kernel=k)
    )
    assert small.get_layer("c0").filters == 3
    assert small.get_layer("c1").filters == 3


# ------------------------------------------------------------ residual merges


@pytest.mark.parametrize(
    "merge", [layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum]
)
def test_residual_merge_couples_both_branches(merge):
    inputs = keras.Input((8, 8, 3))
    a = layers.ReLU()(_bn(layers.Conv2D(6, 3, padding="same", name="a")(inputs)))
    b = _bn(layers.Conv2D(6, 3, padding="same", name="b")(a))
    x = merge()([a, b])
    x = _bn(layers.Conv2D(4, 3, padding="same", name="c")(x))
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"a": [1, 4], "c": [2]})
    np.testing.assert_array_equal(units_of(pm, "a"), units_of(pm, "b"))
    expected = (
        conv_params(9, 3, 4) + bn_params(4)
        + conv_params(9, 4, 4) + bn_params(4)
        + conv_params(9, 4, 3) + bn_params(3)
        + dense_params(3, 3)
    )
    assert_pruning_changes_output(model, pm, X2)
    small = assert_masked_equals_stripped(pm, X2, expected)
    assert small.get_layer("b").filters == 4


def test_three_way_add_and_merge_of_merges():
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(5, 1, name="a")(inputs)
    b = layers.Conv2D(5, 1, name="b")(inputs)
    c = layers.Conv2D(5, 1, name="c")(inputs)
    s = layers.Add()([a, b, c])
    d = layers.Conv2D(5, 1, name="d")(s)
    t = layers.Maximum()([s, _bn(d)])
    model = keras.Model(inputs, head(t))
    pm = wrap_and_prune(model, {"c": [0, 3]})
    for name in "abd":
        np.testing.assert_array_equal(units_of(pm, name), units_of(pm, "c"))
    expected = 3 * conv_params(1, 3, 3) + conv_params(1, 3, 3) + bn_params(3)
    assert_masked_equals_stripped(pm, X2, expected + dense_params(3, 3))


# ------------------------------------------------------------ concatenate


def test_concatenate_offsets_prune_both_halves():
    inputs = keras.Input((8, 8, 3))
    a = layers.ReLU()(_bn(layers.Conv2D(4, 3, padding="same", name="a")(inputs)))
    b = layers.Conv2D(5, 3, padding="same", name="b")(inputs)
    x = layers.Concatenate()([a, b])
    x = _bn(x)
    x = layers.Conv2D(4, 3, padding="same", name="c")(x)
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"a": [1], "b": [0, 3]})
    assert len(set(units_of(pm, "a")) & set(units_of(pm, "b"))) == 0
    expected = (
        conv_params(9, 3, 3) + bn_params(3)
        + conv_params(9, 3, 3)
        + bn_params(6)
        + conv_params(9, 6, 4)
        + dense_params(4, 3)
    )
    assert_pruning_changes_output(model, pm, X2)
    assert_masked_equals_stripped(pm, X2, expected)


def test_concatenate_then_add_couples_across_offsets():
    # Add(Concat([a, b]), c): c's first 3 channels couple to a, rest to b.
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(3, 3, padding="same", name="a")(inputs)
    b = layers.Conv2D(4, 3, padding="same", name="b")(inputs)
    c = layers.Conv2D(7, 3, padding="same", name="c")(inputs)
    x = layers.Add()([layers.Concatenate()([a, b]), c])
    model = keras.Model(inputs, head(_bn(x)))
    pm = wrap_and_prune(model, {"a": [2], "b": [1, 3]})
    units_c = units_of(pm, "c")
    np.testing.assert_array_equal(units_c[:3], units_of(pm, "a"))
    np.testing.assert_array_equal(units_c[3:], units_of(pm, "b"))
    expected = (
        conv_params(9, 3, 2) + conv_params(9, 3, 2) + conv_params(9, 3, 4)
        + bn_params(4) + dense_params(4, 3)
    )
    assert_masked_equals_stripped(pm, X2, expected)


def test_concatenate_on_spatial_axis_couples_channels():
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = layers.Conv2D(4, 3, padding="same", name="b")(inputs)
    x = layers.Concatenate(axis=1)([a, b])
    model = keras.Model(inputs, head(_bn(x)))
    pm = wrap_and_prune(model, {"a": [0]})
    np.testing.assert_array_equal(units_of(pm, "a"), units_of(pm, "b"))
    expected = 2 * conv_params(9, 3, 3) + bn_params(3) + dense_params(3, 3)
    assert_masked_equals_stripped(pm, X2, expected)


# ------------------------------------------------------------ depthwise


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv(rank, multiplier):
    shape, x = ((16, 3), X1) if rank == 1 else ((8, 8, 3), X2)
    k = 3 if rank == 1 else 9
    conv = layers.Conv1D if rank == 1 else layers.Conv2D
    dw = layers.DepthwiseConv1D if rank == 1 else layers.DepthwiseConv2D
    inputs = keras.Input(shape)
    x_ = _bn(conv(6, 3, padding="same", name="a")(inputs))
    x_ = dw(3, depth_multiplier=multiplier, padding="same", name="dw")(x_)
    x_ = layers.ReLU()(_bn(x_))
    x_ = conv(4, 1, name="c")(x_)
    model = keras.Model(inputs, head(x_))
    pm = wrap_and_prune(model, {"a": [0, 2, 5], "c": [1]})
    expected = (
        conv_params(k, 3, 3) + bn_params(3)
        + depthwise_params(k, 3, multiplier) + bn_params(3 * multiplier)
        + conv_params(1, 3 * multiplier, 3)
        + dense_params(3, 3)
    )
    assert_pruning_changes_output(model, pm, x)
    small = assert_masked_equals_stripped(pm, x, expected)
    assert small.get_layer("dw").output.shape[-1] == 3 * multiplier


# ------------------------------------------------------------ separable


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_separable_conv(rank, multiplier):
    shape, x = ((16, 3), X1) if rank == 1 else ((8, 8, 3), X2)
    k = 3 if rank == 1 else 9
    conv = layers.Conv1D if rank == 1 else layers.Conv2D
    sep = layers.SeparableConv1D if rank == 1 else layers.SeparableConv2D
    inputs = keras.Input(shape)
    x_ = layers.ReLU()(_bn(conv(6, 3, padding="same", name="a")(inputs)))
    x_ = sep(5, 3, depth_multiplier=multiplier, padding="same", name="s")(x_)
    x_ = _bn(x_)
    model = keras.Model(inputs, head(x_))
    pm = wrap_and_prune(model, {"a": [1, 2], "s": [0, 3]})
    expected = (
        conv_params(k, 3, 4) + bn_params(4)
        + separable_params(k, 4, 3, multiplier) + bn_params(3)
        + dense_params(3, 3)
    )
    assert_pruning_changes_output(model, pm, x)
    small = assert_masked_equals_stripped(pm, x, expected)
    assert small.get_layer("s").filters == 3


def test_separable_not_a_source_when_disabled():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
    x = layers.SeparableConv2D(5, 3, padding="same", name="s")(x)
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"a": [0]}, prune_separable=False)
    assert pm.num_prunables == 4  # a: 6 - 1 pruned - 1 kept
    assert not pm.channel_graph.unit_prunable[units_of(pm, "s")].any()
    expected = conv_params(9, 3, 5) + separable_params(9, 5, 5) + dense_params(5, 3)
    assert_masked_equals_stripped(pm, X2, expected)


# ------------------------------------------------------------ grouped conv


@pytest.mark.parametrize("filters", [6, 12])
def test_grouped_conv_with_groups_equal_channels_is_depthwise(filters):
    inputs = keras.Input((8, 8, 3))
    x = _bn(layers.Conv2D(6, 3, padding="same", name="a")(inputs))
    x = layers.Conv2D(filters, 3, groups=6, padding="same", name="g")(x)
    x = layers.ReLU()(_bn(x))
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"a": [1, 4]})
    per = filters // 6
    expected = (
        conv_params(9, 3, 4) + bn_params(4)
        + conv_params(9, 4, 4 * per, groups=4) + bn_params(4 * per)
        + dense_params(4 * per, 3)
    )
    assert_pruning_changes_output(model, pm, X2)
    small = assert_masked_equals_stripped(pm, X2, expected)
    # copied as the DepthwiseConv2D it is (graph.depthwise)
    assert isinstance(small.get_layer("g"), layers.DepthwiseConv2D)
    assert small.get_layer("g").depth_multiplier == per


def test_grouped_conv_with_few_groups_blocks_its_input():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="a")(inputs)
    x = layers.Conv2D(8, 3, groups=2, padding="same", name="g")(x)
    x = _bn(layers.Conv2D(5, 3, padding="same", name="c")(x))
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"c": [1, 2]})
    graph = pm.channel_graph
    assert pm.num_prunables == 5 - 2 - 1
    assert not graph.unit_prunable[units_of(pm, "a")].any()
    assert not graph.unit_prunable[units_of(pm, "g")].any()
    assert any("grouped" in why for _, why in graph.blockers_of("g"))
    assert any("grouped" in why for _, why in graph.blockers_of("a"))
    expected = (
        conv_params(9, 3, 8) + conv_params(9, 8, 8, groups=2)
        + conv_params(9, 8, 3) + bn_params(3) + dense_params(3, 3)
    )
    assert_masked_equals_stripped(pm, X2, expected)


# ------------------------------------------------------------ per-channel


def _between(layer_fn, name_prefix="a"):
    inputs = keras.Input((8, 8, 3))
    x = _bn(layers.Conv2D(6, 3, padding="same", name="a")(inputs))
    x = layer_fn(x)
    x = layers.Conv2D(4, 3, padding="same", name="c")(x)
    return keras.Model(inputs, head(x))


PER_CHANNEL = {
    "relu": (lambda: layers.ReLU(), 0),
    "activation": (lambda: layers.Activation("swish"), 0),
    "prelu_full": (lambda: layers.PReLU(), 8 * 8),
    "prelu_shared": (lambda: layers.PReLU(shared_axes=[1, 2]), 1),
    "leaky_relu": (lambda: layers.LeakyReLU(0.2), 0),
    "elu": (lambda: layers.ELU(), 0),
    "dropout": (lambda: layers.Dropout(0.5), 0),
    "spatial_dropout": (lambda: layers.SpatialDropout2D(0.5), 0),
    "batchnorm": (lambda: layers.BatchNormalization(), 4),
    "batchnorm_no_scale": (lambda: layers.BatchNormalization(scale=False), 3),
}


@pytest.mark.parametrize("kind", sorted(PER_CHANNEL))
def test_per_channel_layers_pass_and_slice(kind):
    make, weights_per_channel = PER_CHANNEL[kind]
    model = _between(lambda x: make()(x))
    pm = wrap_and_prune(model, {"a": [0, 3], "c": [2]})
    expected = (
        conv_params(9, 3, 4) + bn_params(4) + 4 * weights_per_channel
        + conv_params(9, 4, 3) + dense_params(3, 3)
    )
    assert_pruning_changes_output(model, pm, X2)
    assert_masked_equals_stripped(pm, X2, expected)


SPATIAL = {
    "max_pool": (lambda: layers.MaxPooling2D(), 4),
    "avg_pool": (lambda: layers.AveragePooling2D(2), 4),
    "zero_padding": (lambda: layers.ZeroPadding2D(1), 10),
    "cropping": (lambda: layers.Cropping2D(1), 6),
    "upsampling": (lambda: layers.UpSampling2D(), 16),
}


@pytest.mark.parametrize("kind", sorted(SPATIAL))
def test_spatial_layers_pass_through(kind):
    make, side = SPATIAL[kind]
    inputs = keras.Input((8, 8, 3))
    x = layers.ReLU()(_bn(layers.Conv2D(6, 3, padding="same", name="a")(inputs)))
    x = make()(x)
    assert x.shape[1] == side
    x = layers.Flatten()(x)
    model = keras.Model(inputs, layers.Dense(3)(x))
    pm = wrap_and_prune(model, {"a": [1, 2, 5]})
    expected = conv_params(9, 3, 3) + bn_params(3) + dense_params(side * side * 3, 3)
    assert_pruning_changes_output(model, pm, X2)
    assert_masked_equals_stripped(pm, X2, expected)


@pytest.mark.parametrize(
    "pool", [layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D]
)
def test_global_pool_then_dense_slices_rows(pool):
    inputs = keras.Input((8, 8, 3))
    x = layers.ReLU()(_bn(layers.Conv2D(6, 3, padding="same", name="a")(inputs)))
    model = keras.Model(inputs, layers.Dense(3)(pool()(x)))
    pm = wrap_and_prune(model, {"a": [0, 4]})
    expected = conv_params(9, 3, 4) + bn_params(4) + dense_params(4, 3)
    assert_masked_equals_stripped(pm, X2, expected)


@pytest.mark.parametrize("rank", [1, 2])
def test_flatten_then_dense_slices_rows_at_every_position(rank):
    shape, x = ((16, 3), X1) if rank == 1 else ((8, 8, 3), X2)
    conv = layers.Conv1D if rank == 1 else layers.Conv2D
    pool = layers.MaxPooling1D if rank == 1 else layers.MaxPooling2D
    inputs = keras.Input(shape)
    x_ = layers.ReLU()(_bn(conv(4, 3, padding="same", name="a")(inputs)))
    x_ = layers.Flatten()(pool()(x_))
    positions = 8 if rank == 1 else 16
    model = keras.Model(inputs, layers.Dense(3)(x_))
    pm = wrap_and_prune(model, {"a": [1, 2]})
    k = 3 if rank == 1 else 9
    expected = conv_params(k, 3, 2) + bn_params(2) + dense_params(positions * 2, 3)
    assert_pruning_changes_output(model, pm, x)
    assert_masked_equals_stripped(pm, x, expected)


def test_reshape_merging_spatial_axes_keeps_channels():
    inputs = keras.Input((8, 8, 3))
    x = _bn(layers.Conv2D(6, 3, padding="same", name="a")(inputs))
    x = layers.Reshape((8, 48))(x)  # last axis = 8 positions x 6 channels
    model = keras.Model(inputs, layers.Dense(3)(layers.Flatten()(x)))
    pm = wrap_and_prune(model, {"a": [0, 5]})
    expected = conv_params(9, 3, 4) + bn_params(4) + dense_params(8 * 8 * 4, 3)
    assert_masked_equals_stripped(pm, X2, expected)


def test_permute_keeping_channels_last_passes():
    inputs = keras.Input((8, 8, 3))
    x = _bn(layers.Conv2D(6, 3, padding="same", name="a")(inputs))
    x = layers.Permute((2, 1, 3))(x)
    model = keras.Model(inputs, layers.Dense(3)(layers.Flatten()(x)))
    pm = wrap_and_prune(model, {"a": [1]})
    expected = conv_params(9, 3, 5) + bn_params(5) + dense_params(64 * 5, 3)
    assert_masked_equals_stripped(pm, X2, expected)


# ------------------------------------------------------------ rescaling


RESCALE = {
    "rescaling_scalar": lambda: layers.Rescaling(1.0 / 3.0, offset=-0.5),
    "rescaling_per_channel": lambda: layers.Rescaling(
        scale=np.linspace(0.5, 2.0, 6).astype("float32"),
        offset=np.linspace(-1.0, 1.0, 6).astype("float32"),
    ),
    "rescaling_per_channel_list": lambda: layers.Rescaling(
        scale=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0], offset=[1.0, -1.0, 2.0, -2.0, 3.0, -3.0]
    ),
    "normalization": lambda: layers.Normalization(
        mean=np.linspace(-1.0, 1.0, 6), variance=np.linspace(0.5, 3.0, 6)
    ),
}


@pytest.mark.parametrize("kind", sorted(RESCALE))
def test_rescaling_and_normalization_slice_per_channel_values(kind):
    model = _between(lambda x: RESCALE[kind]()(x))
    pm = wrap_and_prune(model, {"a": [0, 3]})
    expected = (
        conv_params(9, 3, 4) + bn_params(4) + conv_params(9, 4, 4) + dense_params(4, 3)
    )
    stripped = assert_masked_equals_stripped(pm, X2, expected)
    if kind == "normalization":
        norm = [l for l in stripped.layers if isinstance(l, layers.Normalization)][0]
        assert np.asarray(norm.mean).shape[-1] == 4


def test_normalization_adapted():
    norm = layers.Normalization()
    norm.adapt(rand((20, 6), 5) * 3 + 1)
    model = _between(norm)
    pm = wrap_and_prune(model, {"a": [1, 2]})
    adapted = 4 + 4 + 1  # mean, variance (per channel) and the sample count
    expected = (
        conv_params(9, 3, 4) + bn_params(4) + adapted
        + conv_params(9, 4, 4) + dense_params(4, 3)
    )
    assert_masked_equals_stripped(pm, X2, expected)


# ------------------------------------------------------------ squeeze-excite


@pytest.mark.parametrize("via", ["conv", "dense", "keepdims"])
def test_squeeze_excitation_broadcast(via):
    inputs = keras.Input((8, 8, 3))
    x = layers.ReLU()(_bn(layers.Conv2D(8, 3, padding="same", name="a")(inputs)))
    if via == "conv":
        s = layers.GlobalAveragePooling2D()(x)
        s = layers.Reshape((1, 1, 8))(s)
        s = layers.Conv2D(3, 1, activation="relu", name="se_r")(s)
        s = layers.Conv2D(8, 1, activation="sigmoid", name="se_e")(s)
    elif via == "keepdims":
        s = layers.GlobalAveragePooling2D(keepdims=True)(x)
        s = layers.Conv2D(3, 1, activation="relu", name="se_r")(s)
        s = layers.Conv2D(8, 1, activation="sigmoid", name="se_e")(s)
    else:
        s = layers.GlobalAveragePooling2D()(x)
        s = layers.Dense(3, activation="relu", name="se_r")(s)
        s = layers.Dense(8, activation="sigmoid", name="se_e")(s)
        s = layers.Reshape((1, 1, 8))(s)
    x = layers.Multiply()([x, s])
    x = layers.Conv2D(4, 1, name="c")(x)
    model = keras.Model(inputs, head(x))
    prune = {"a": [1, 5, 6]}
    if via != "dense":
        prune["se_r"] = [0]
    pm = wrap_and_prune(model, prune)
    np.testing.assert_array_equal(units_of(pm, "a"), units_of(pm, "se_e"))
    r = 3 if via == "dense" else 2
    size = (lambda i, o: dense_params(i, o)) if via == "dense" else (
        lambda i, o: conv_params(1, i, o)
    )
    expected = (
        conv_params(9, 3, 5) + bn_params(5)
        + size(5, r) + size(r, 5)
        + conv_params(1, 5, 4) + dense_params(4, 3)
    )
    assert_pruning_changes_output(model, pm, X2)
    assert_masked_equals_stripped(pm, X2, expected)


# ------------------------------------------------------------ keras.ops


def test_keras_ops_arithmetic_in_graph():
    inputs = keras.Input((8, 8, 3))
    a = _bn(layers.Conv2D(6, 3, padding="same", name="a")(inputs))
    b = layers.Conv2D(6, 3, padding="same", name="b")(inputs)
    x = (a + 3.0) * b
    x = keras.ops.maximum(x, 0.0) - a
    x = layers.Conv2D(4, 1, name="c")(x)
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"a": [2, 3], "c": [0]})
    np.testing.assert_array_equal(units_of(pm, "a"), units_of(pm, "b"))
    expected = (
        conv_params(9, 3, 4) + bn_params(4) + conv_params(9, 3, 4)
        + conv_params(1, 4, 3) + dense_params(3, 3)
    )
    assert_pruning_changes_output(model, pm, X2)
    assert_masked_equals_stripped(pm, X2, expected)


def test_unknown_keras_op_blocks():
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
    x = keras.ops.cumsum(a, axis=-1)  # mixes channels: must not be guessed
    x = layers.Conv2D(4, 1, name="c")(x)
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"c": [3]})
    assert not pm.channel_graph.unit_prunable[units_of(pm, "a")].any()
    expected = conv_params(9, 3, 6) + conv_params(1, 6, 3) + dense_params(3, 3)
    assert_masked_equals_stripped(pm, X2, expected)


# ------------------------------------------------------------ dense sources


def test_dense_units_prunable_behind_option():
    inputs = keras.Input((5,))
    x = layers.Dense(6, activation="relu", name="d1")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Dense(4, activation="relu", name="d2")(x)
    model = keras.Model(inputs, layers.Dense(2)(x))
    x_ = rand((3, 5))
    pm = wrap_and_prune(model, {"d1": [0, 2], "d2": [3]}, prune_dense=True)
    expected = dense_params(5, 4) + bn_params(4) + dense_params(4, 3) + dense_params(3, 2)
    assert_masked_equals_stripped(pm, x_, expected)


@pytest.mark.parametrize("per_channel", [True, False])
def test_keras_op_with_constant_array(per_channel):
    # A per-channel constant is not sliced by replay: it must block, while a
    # broadcast (1,) constant must not.
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
    const = np.linspace(0.5, 2.0, 6 if per_channel else 1).astype("float32")
    x = layers.Conv2D(4, 1, name="c")(a * const + const)
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"c": [0]} if per_channel else {"a": [1, 2], "c": [0]})
    assert pm.channel_graph.unit_prunable[units_of(pm, "a")].any() != per_channel
    a_out = 6 if per_channel else 4
    expected = conv_params(9, 3, a_out) + conv_params(1, a_out, 3) + dense_params(3, 3)
    assert_masked_equals_stripped(pm, X2, expected)


def test_conv_transpose_and_conv3d_sources():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2DTranspose(6, 3, strides=2, padding="same", name="t")(inputs)
    x = layers.ReLU()(_bn(x))
    x = layers.Conv2D(4, 3, padding="same", name="c")(x)
    model = keras.Model(inputs, head(x))
    pm = wrap_and_prune(model, {"t": [0, 2], "c": [3]})
    expected = (
        conv_params(9, 3, 4) + bn_params(4) + conv_params(9, 4, 3) + dense_params(3, 3)
    )
    assert_masked_equals_stripped(pm, X2, expected)

    inputs = keras.Input((4, 4, 4, 2))
    x = layers.Conv3D(5, 3, padding="same", name="v")(inputs)
    x = layers.GlobalAveragePooling3D()(layers.MaxPooling3D()(x))
    model = keras.Model(inputs, layers.Dense(2)(x))
    pm = wrap_and_prune(model, {"v": [1, 4]})
    x3 = rand((2, 4, 4, 4, 2))
    assert_masked_equals_stripped(pm, x3, conv_params(27, 2, 3) + dense_params(3, 2))
