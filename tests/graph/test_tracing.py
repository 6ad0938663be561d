"""Custom layers and subclassed models are read by tracing their `call`.

A layer with no handler whose `call` runs on symbolic Keras tensors is read
as the graph of its sublayers and `keras.ops`, pruned through, and replaced
by that graph when stripped. One that cannot be traced faithfully stays
opaque and blocks, with the reason.
"""

import numpy as np
import pytest

import keras
from keras import layers, ops

import keras_taylor as kt
from keras_taylor.graph import ChannelGraph, read_model

from helpers import (
    assert_masked_equals_stripped,
    assert_outputs_close,
    assert_pruning_changes_output,
    head,
    prune_channels,
    rand,
    randomize_weights,
)


class Block(layers.Layer):
    """conv-BN-relu-conv plus a residual, written with sublayers and keras.ops."""

    def __init__(self, filters=6, rate=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.rate = filters, rate
        self.conv1 = layers.Conv2D(filters, 3, padding="same", name="inner_a")
        self.bn = layers.BatchNormalization(name="inner_bn")
        self.conv2 = layers.Conv2D(filters, 1, name="inner_b")
        self.drop = layers.Dropout(rate)

    def call(self, x, training=None):
        y = ops.relu(self.bn(self.conv1(x), training=training))
        return ops.silu(self.drop(self.conv2(y), training=training) + x)

    def get_config(self):
        return dict(super().get_config(), filters=self.filters, rate=self.rate)


class Outer(layers.Layer):
    """Two Blocks in a row: traced blocks inside a traced block."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first, self.second = Block(name="first"), Block(name="second")

    def call(self, x):
        return self.second(self.first(x))


class OwnWeight(layers.Layer):
    """Uses a weight of its own in call: only a handler can slice it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(6, 1)

    def build(self, shape):
        self.conv.build(shape)
        self.gamma = self.add_weight(shape=(6,), initializer="ones")

    def call(self, x):
        return self.conv(x) * self.gamma


class ValueBranch(layers.Layer):
    """Decides in Python on a tensor's value: cannot run on symbolic tensors."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(6, 1)

    def call(self, x):
        if ops.mean(x) > 0:
            return self.conv(x)
        return x

    def compute_output_shape(self, shape):
        return shape  # Keras cannot infer it: call() does not run symbolically


class TrainingBranch(layers.Layer):
    """Takes another path when training, which the traced graph would miss."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(6, 1)

    def call(self, x, training=None):
        y = self.conv(x)
        return y * 0.5 if training else y


class Tokens(layers.Layer):
    """Flattens positions with the batch size read by `ops.shape` (None when traced)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(6, 1, name="tok_conv")
        self.mix = layers.Dense(6, name="tok_mix")

    def call(self, x):
        batch, height, width = ops.shape(x)[0], x.shape[1], x.shape[2]
        tokens = ops.reshape(self.conv(x), (batch, -1, 6))
        return ops.reshape(self.mix(tokens), (batch, height, width, 6))


def _model(block, name="m"):
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", name="stem")(inputs)
    x = block(x)
    return keras.Model(inputs, head(x), name=name)


def _reasons(model):
    graph = ChannelGraph(read_model(model))
    return [why for reasons in graph.unit_reasons.values() for _, why in reasons]


def test_traced_block_prunes_and_strips_exactly():
    block = Block(name="block")
    model = _model(block)
    randomize_weights(model)
    calls = [len(layer._inbound_nodes) for layer in (block, block.conv1, block.bn)]
    names = [node.name for node in read_model(model).nodes]
    # Tracing leaves the model's layers with the call nodes they had.
    assert [len(layer._inbound_nodes) for layer in (block, block.conv1, block.bn)] == calls
    assert {"inner_a", "inner_bn", "inner_b"} <= set(names) and "block" not in names
    pm = kt.TaylorPrunableModel(model)
    prune_channels(pm, "inner_a", [0, 2, 3])
    prune_channels(pm, "stem", [1])  # the residual couples stem and inner_b
    x = rand((2, 8, 8, 3))
    assert_pruning_changes_output(model, pm, x)
    stripped = assert_masked_equals_stripped(pm, x)
    kinds = [type(layer).__name__ for layer in stripped.layers]
    assert "Block" not in kinds and kinds.count("Conv2D") == 3
    assert stripped.get_layer("inner_a").filters == 3
    assert stripped.get_layer("stem").filters == 5


def test_nested_traced_blocks():
    model = _model(Outer(name="outer"))
    randomize_weights(model)
    pm = kt.TaylorPrunableModel(model)
    assert {"inner_a", "second_inner_a"} <= set(pm.channel_graph.layer_units)
    prune_channels(pm, "second_inner_a", [0, 1])
    x = rand((2, 8, 8, 3))
    stripped = assert_masked_equals_stripped(pm, x)
    assert not {"Outer", "Block"} & {type(layer).__name__ for layer in stripped.layers}


def test_reshape_to_the_traced_batch_size_keeps_the_batch_size():
    model = _model(Tokens(name="tokens"))
    randomize_weights(model)
    pm = kt.TaylorPrunableModel(model)
    prune_channels(pm, "tok_conv", [1, 4])
    x = rand((3, 8, 8, 3))
    stripped = assert_masked_equals_stripped(pm, x)
    assert [type(l).__name__ for l in stripped.layers].count("Reshape") == 2
    assert stripped.get_layer("tok_conv").filters == 4


def test_training_mode_inside_a_traced_block():
    """BatchNormalization and Dropout in the block see `training` of the outer call."""
    model = _model(Block(name="block"))
    randomize_weights(model)
    pm = kt.TaylorPrunableModel(model)
    x = rand((4, 8, 8, 3))
    assert_outputs_close(model(x, training=True), pm(x, training=True))  # batch statistics
    assert not np.allclose(pm(x, training=True), pm(x, training=False))
    dropping = kt.strip_pruning(kt.TaylorPrunableModel(_model(Block(name="block", rate=0.5))))
    assert not np.allclose(dropping(x, training=True), dropping(x, training=True))
    np.testing.assert_array_equal(dropping(x, training=False), dropping(x, training=False))


def test_own_weight_stays_opaque_with_the_reason():
    model = _model(OwnWeight(name="scaled"))
    nodes = {node.name: node for node in read_model(model).nodes}
    assert "uses its own weight" in nodes["scaled"].opaque_reason
    reasons = _reasons(model)
    assert any(
        "OwnWeight 'scaled' has no handler and could not be traced" in r
        and "kt.register_layer(OwnWeight, handler)" in r
        for r in reasons
    )


def test_python_branch_on_a_tensor_value_stays_opaque():
    nodes = {node.name: node for node in read_model(_model(ValueBranch(name="vb"))).nodes}
    assert "does not run on symbolic Keras tensors" in nodes["vb"].opaque_reason


def test_python_branch_on_training_stays_opaque():
    nodes = {node.name: node for node in read_model(_model(TrainingBranch(name="tb"))).nodes}
    assert "another path when training" in nodes["tb"].opaque_reason


def test_trace_handler_forces_tracing_and_reports_failure():
    class Forced(ValueBranch):
        pass

    kt.register_layer(Forced, kt.handlers.Trace())
    with pytest.raises(kt.UnsupportedModelError, match="forced.*Forced cannot be traced.*symbolic"):
        read_model(_model(Forced(name="forced")))

    class MyDropout(layers.Dropout):  # a Keras class: traced only when asked
        pass

    assert "mydrop" in [n.name for n in read_model(_model(MyDropout(0.1, name="mydrop"))).nodes]


def test_explicit_handler_overrides_tracing():
    class Closed(Block):
        pass

    kt.register_layer(Closed, kt.handlers.Blocker("closed on purpose"))
    model = _model(Closed(name="closed"))
    assert "closed" in [node.name for node in read_model(model).nodes]
    assert "closed on purpose" in _reasons(model)


def test_hidden_convolutions_name_why_the_layer_was_not_traced():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, head(OwnWeight(name="scaled")(inputs)))
    with pytest.raises(kt.NothingPrunableError) as info:
        kt.TaylorPrunableModel(model)
    message = str(info.value)
    assert "OwnWeight 'scaled' holds 1 convolution" in message
    assert "not traced: it uses its own weight" in message


class Net(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stem = layers.Conv2D(8, 3, padding="same")
        self.bn = layers.BatchNormalization()
        self.block = Block(8)
        self.pool = layers.GlobalAveragePooling2D()
        self.out = layers.Dense(3)

    def call(self, x, training=None):
        x = ops.relu(self.bn(self.stem(x), training=training))
        return self.out(self.pool(self.block(x, training=training)))


def test_subclassed_model_is_traced_pruned_and_stripped():
    model = Net(name="net")
    model.build((None, 8, 8, 3))
    randomize_weights(model)
    before = [w.copy() for w in model.get_weights()]
    x, y = rand((4, 8, 8, 3)), np.array([0, 1, 2, 0])
    expected = model(x, training=False)
    pm = kt.TaylorPrunableModel(model)
    pm.update_score(x, y, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert pm.update_prunables(6) == 6
    stripped = assert_masked_equals_stripped(pm, x)
    assert not isinstance(stripped, Net) and stripped.count_params() < model.count_params()
    assert isinstance(stripped, keras.Model) and stripped.inputs and stripped(x).shape == (4, 3)
    assert_outputs_close(expected, model(x, training=False), rel=0, what="model passed in")
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


class Untraceable(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(4, 3)

    def call(self, x):
        return self.conv(x) if ops.mean(x) > 0 else self.conv(-x)

    def build(self, shape):
        self.conv.build(shape)


def test_untraceable_subclassed_model_is_refused_with_why():
    model = Untraceable(name="odd")
    model(rand((1, 8, 8, 3)))
    with pytest.raises(kt.UnsupportedModelError, match="'odd' is a subclassed.*cannot be traced.*symbolic"):
        kt.TaylorPrunableModel(model)


def test_unbuilt_subclassed_model_is_refused_with_what_to_do():
    with pytest.raises(kt.UnsupportedModelError, match="'net'.*not built.*build"):
        kt.TaylorPrunableModel(Net(name="net"))
