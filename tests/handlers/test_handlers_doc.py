"""The public handler API: docs/handlers.md's examples run, lookup follows classes."""

import re

import keras
import tensorflow as tf
import numpy as np
import pytest

import keras_taylor as kt
from keras_taylor import handlers

from helpers import REPO

DOC = REPO / "docs" / "handlers.md"


def _examples():
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_its_worked_examples():
    assert len(_examples()) == 3


@pytest.mark.parametrize("index", [0, 1, 2])
def test_docs_example_runs(index):
    exec(compile(_examples()[index], f"{DOC.name} example {index + 1}", "exec"), {})


def _head(x):
    return keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D()(x))


def test_a_subclass_of_a_known_layer_is_handled_as_its_parent():
    class MyConv(keras.layers.Conv2D):
        pass

    inputs = keras.Input((8, 8, 3))
    x = MyConv(6, 3, name="mine")(inputs)
    model = keras.Model(inputs, _head(keras.layers.Conv2D(4, 3)(x)))
    assert handlers.get_handler(model.get_layer("mine")) is handlers.get_handler(
        keras.layers.Conv2D(1, 1)
    )
    assert kt.analyze(model).set_index("name").loc["mine", "prunable"]


def test_registering_a_subclass_overrides_its_parent():
    class OddConv(keras.layers.Conv2D):
        pass

    blocker = kt.handlers.Blocker("{type} is odd")
    kt.register_layer(OddConv, blocker)
    assert handlers.get_handler(OddConv(2, 1)) is blocker
    assert handlers.get_handler(keras.layers.Conv2D(2, 1)) is not blocker


def test_an_unknown_layer_blocks_and_says_how_to_teach_it():
    class Mystery(keras.layers.Layer):
        def call(self, x):
            return tf.identity(x)  # a raw TensorFlow op: it cannot be traced

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, name="a")(inputs)
    x = Mystery(name="m")(x)
    model = keras.Model(inputs, _head(keras.layers.Conv2D(4, 3)(x)))
    row = kt.analyze(model).set_index("name").loc["a"]
    assert row["blocked_by"] == "m"
    assert "kt.register_layer(Mystery" in row["reason"]


def test_register_layer_rejects_what_is_not_a_handler_or_class():
    with pytest.raises(kt.InvalidArgumentError, match="Handler instance"):
        kt.register_layer(keras.layers.Layer, "pass")
    with pytest.raises(kt.InvalidArgumentError, match="must be classes"):
        kt.register_layer("Conv2D", kt.handlers.PassThrough())


def test_the_graph_carried_to_the_masked_copy_equals_one_built_on_it():
    # The graph is built once per wrap; carrying it over must give what
    # building it again on the masked copy would.
    from keras_taylor.graph import ChannelGraph

    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(6, 3, padding="same")(inputs)
    b = keras.layers.Conv2D(6, 3, padding="same")(a)
    x = keras.layers.Add()([a, b])
    x = keras.layers.Concatenate()([x, keras.layers.Conv2D(4, 1)(x)])
    pm = kt.TaylorPrunableModel(keras.Model(inputs, _head(x)))
    carried = pm.channel_graph
    fresh = ChannelGraph(carried.flat, carried.options)
    assert fresh.num_units == carried.num_units
    np.testing.assert_array_equal(fresh.unit_prunable, carried.unit_prunable)
    assert fresh.tensor_units.keys() == carried.tensor_units.keys()
    for tid, units in fresh.tensor_units.items():
        np.testing.assert_array_equal(units, carried.tensor_units[tid])
    assert fresh.mask_points.keys() == carried.mask_points.keys()
    for index, units in fresh.mask_points.items():
        np.testing.assert_array_equal(units, carried.mask_points[index])
    assert fresh.unit_layers == carried.unit_layers


def test_wrapping_reads_and_analyses_the_model_once(monkeypatch):
    from keras_taylor.graph import channels, masks

    built, read = [], []
    original_init, original_read = channels.ChannelGraph.__init__, masks.read_model

    def counting_init(self, *args, **kwargs):
        built.append(1)
        original_init(self, *args, **kwargs)

    def counting_read(*args, **kwargs):
        read.append(1)
        return original_read(*args, **kwargs)

    monkeypatch.setattr(channels.ChannelGraph, "__init__", counting_init)
    monkeypatch.setattr(masks, "read_model", counting_read)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3)(inputs)
    kt.TaylorPrunableModel(keras.Model(inputs, _head(x)))
    # One channel graph; the model read once, its masked copy once (for the
    # new layers, not analysed again).
    assert len(built) == 1 and len(read) == 2
