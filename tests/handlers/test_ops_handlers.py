"""keras.ops calls in model code: each op family, exact masked == stripped.

Every test puts an op between a conv `a` (whose channels are pruned) and
what reads them, prunes some of `a`'s channels and checks the stripped model
against the masked one.
"""

import pytest

import keras
from keras import layers, ops

import keras_taylor as kt
from helpers import (
    assert_masked_equals_stripped,
    assert_pruning_changes_output,
    head,
    rand,
    wrap_and_prune,
)

X = rand((2, 8, 8, 3))


def _around(op, filters=8, shape=(8, 8, 3)):
    """Input -> conv a -> op -> conv b -> head."""
    inputs = keras.Input(shape)
    x = layers.Conv2D(filters, 3, padding="same", name="a")(inputs)
    x = op(x)
    conv = layers.Conv2D if len(x.shape) == 4 else layers.Conv1D
    x = conv(4, 1, name="b")(x)
    return keras.Model(inputs, head(x))


def _prune_a(model, channels=(1, 4, 6), x=X):
    pm = wrap_and_prune(model, {"a": list(channels)})
    assert_pruning_changes_output(model, pm, x)
    return pm, assert_masked_equals_stripped(pm, x)


@pytest.mark.parametrize(
    "op",
    [ops.relu, ops.sigmoid, ops.silu, ops.gelu, ops.tanh, ops.exp, ops.square,
     lambda x: ops.clip(x, -0.5, 0.5), lambda x: ops.leaky_relu(x, 0.1)],
    ids=["relu", "sigmoid", "silu", "gelu", "tanh", "exp", "square", "clip", "leaky_relu"],
)
def test_elementwise_op_passes_channels(op):
    _, small = _prune_a(_around(op))
    assert small.get_layer("a").filters == 5


@pytest.mark.parametrize(
    "op",
    [
        lambda x: ops.pad(x, [[0, 0], [1, 1], [2, 0], [0, 0]]),
        lambda x: ops.mean(x, axis=[1, 2], keepdims=True),
        lambda x: ops.max(x, axis=1),
        lambda x: ops.max_pool(x, 2, 2),
        lambda x: ops.average_pool(x, 2, 1, padding="same"),
    ],
    ids=["pad", "mean", "max", "max_pool", "average_pool"],
)
def test_spatial_op_passes_channels(op):
    _, small = _prune_a(_around(op))
    assert small.get_layer("a").filters == 5


@pytest.mark.parametrize(
    "op, reason",
    [
        (lambda x: ops.mean(x, axis=-1, keepdims=True), "reduces over the channel"),
        (lambda x: ops.pad(x, [[0, 0], [0, 0], [0, 0], [1, 0]]), "pads the channel"),
        (lambda x: ops.transpose(x, (0, 3, 1, 2)), "moves the channel"),
        (lambda x: x[..., 3], "slice of step 1"),
        (lambda x: x[..., 1:7:2], "slice of step 1"),
        (lambda x: ops.cumsum(x, axis=-1), "not a layer type"),
    ],
    ids=["mean_channels", "pad_channels", "transpose_channels", "pick_channel", "step_2", "unknown_op"],
)
def test_channel_mixing_op_blocks(op, reason):
    model = _around(op)
    row = kt.analyze(model).set_index("name").loc["a"]
    assert not row["prunable"]
    assert reason in row["reason"]


@pytest.mark.parametrize("sections", [[3], 2], ids=["offsets", "halves"])
def test_split_on_channels_takes_channels_by_offset(sections):
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="a")(inputs)
    left, right = ops.split(x, sections, axis=-1)
    left = layers.Conv2D(4, 1, name="b1")(left)
    right = layers.Conv2D(4, 1, name="b2")(ops.relu(right))
    model = keras.Model(inputs, head(layers.Concatenate()([left, right])))
    _, small = _prune_a(model, (0, 2, 5))
    width = 3 if sections == [3] else 4
    assert small.get_layer("b1").kernel.shape[-2] == width - 2
    assert small.get_layer("b2").kernel.shape[-2] == 8 - width - 1


def test_split_on_another_axis_keeps_all_channels():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="a")(inputs)
    top, bottom = ops.split(x, 2, axis=1)
    model = keras.Model(inputs, head(layers.Add()([top, ops.sigmoid(bottom)])))
    _prune_a(model)


@pytest.mark.parametrize(
    "op",
    [lambda x: x[..., 2:7], lambda x: x[:, 1:-1, :, 1:], lambda x: x[:, 2]],
    ids=["channels", "spatial_and_channels", "row"],
)
def test_getitem_slices_by_offset(op):
    _prune_a(_around(op))


@pytest.mark.parametrize(
    "op",
    [
        lambda x: ops.reshape(x, (-1, 64, 8)),
        lambda x: ops.reshape(x, (-1, 8, 64)),
        lambda x: ops.transpose(x, (0, 2, 1, 3)),
    ],
    ids=["reshape_keeps_channels", "reshape_merges_row", "transpose_spatial"],
)
def test_reshape_and_transpose_keeping_channels_last(op):
    _prune_a(_around(op))


@pytest.mark.skipif(not hasattr(ops, "depth_to_space"), reason="this Keras has no ops.depth_to_space")
def test_depth_to_space_couples_blocks_of_channels():
    pm, small = _prune_a(_around(lambda x: ops.depth_to_space(x, 2)), channels=(1,))
    # channel 1 of the 2 output channels is input channels 1, 3, 5, 7.
    assert small.get_layer("a").filters == 4
    assert pm.channel_graph.layer_units["a"].tolist().count(pm.channel_graph.layer_units["a"][1]) == 4


@pytest.mark.skipif(not hasattr(ops, "space_to_depth"), reason="this Keras has no ops.space_to_depth")
def test_space_to_depth_repeats_channels():
    _, small = _prune_a(_around(lambda x: ops.space_to_depth(x, 2)))
    assert small.get_layer("b").kernel.shape[-2] == 4 * 5


def test_split_sections_never_go_empty():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="a")(inputs)
    left, right = ops.split(x, [2], axis=-1)
    left = layers.Conv2D(4, 1, name="b1")(left)
    right = layers.Conv2D(4, 1, name="b2")(right[..., 1:])
    model = keras.Model(inputs, head(layers.Concatenate()([left, right])))
    pm = kt.TaylorPrunableModel(model, criterion="l1")
    # a keeps one of channels 0-1 (left) and one of 3-7 (the slice of right).
    assert pm.num_prunables == (8 - 2) + (4 - 1) * 2
    pm.update_prunables(max_to_prune=pm.num_prunables)
    small = assert_masked_equals_stripped(pm, X)
    assert small.get_layer("b1").kernel.shape[-2] == 1
    assert small.get_layer("b2").kernel.shape[-2] == 1
