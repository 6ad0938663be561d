"""Errors: ValueError/TypeError subclasses that name the layer or argument."""

import numpy as np
import pytest

import keras
import tensorflow as tf
from keras import layers

import keras_taylor as kt
from keras_taylor import errors

from helpers import rand, tiny_cnn


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="my_subclassed")
        self.conv = layers.Conv2D(4, 3)

    def call(self, x):
        return tf.nn.relu(self.conv(x))  # a raw TensorFlow op: cannot be traced


def test_every_error_is_a_value_or_type_error():
    for cls in (
        errors.UnsupportedModelError, errors.NothingPrunableError,
        errors.PruningStateError, errors.InvalidArgumentError,
    ):
        assert issubclass(cls, (ValueError, TypeError))
        assert issubclass(cls, errors.KerasTaylorError)


def test_subclassed_model():
    model = Subclassed()
    model(rand((1, 8, 8, 3)))
    with pytest.raises(kt.UnsupportedModelError, match="my_subclassed") as info:
        kt.TaylorPrunableModel(model)
    assert isinstance(info.value, TypeError)
    assert "subclassed" in str(info.value)
    with pytest.raises(kt.UnsupportedModelError, match="my_subclassed"):
        kt.analyze(model)


def test_unbuilt_sequential():
    model = keras.Sequential([layers.Conv2D(4, 3), layers.Flatten()], name="not_built")
    with pytest.raises(kt.UnsupportedModelError, match="not_built") as info:
        kt.TaylorPrunableModel(model)
    assert "not built" in str(info.value)


def test_not_a_model():
    with pytest.raises(kt.UnsupportedModelError, match="keras.Model"):
        kt.TaylorPrunableModel(layers.Dense(2))


def test_nothing_prunable_lists_each_candidate_and_its_blocker():
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(4, 3, name="conv_a")(inputs)
    a = layers.LayerNormalization(axis=(1, 2, 3), name="gn")(a)
    b = layers.Conv2D(4, 3, name="conv_b")(a)
    b = layers.UnitNormalization(axis=(1, 2, 3), name="ln")(b)
    model = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(b)))
    with pytest.raises(kt.NothingPrunableError) as info:
        kt.TaylorPrunableModel(model)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    for name in ("conv_a", "gn", "conv_b", "ln"):
        assert name in message
    assert set(info.value.blockers) == {"conv_a", "conv_b"}
    assert info.value.blockers["conv_a"][0][0] == "gn"


def test_nothing_prunable_without_any_conv():
    inputs = keras.Input((5,))
    model = keras.Model(inputs, layers.Dense(2)(layers.Dense(4)(inputs)))
    with pytest.raises(kt.NothingPrunableError, match="Conv"):
        kt.TaylorPrunableModel(model)


def test_nothing_prunable_when_conv_is_the_output():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, layers.Conv2D(4, 3, name="only")(inputs))
    with pytest.raises(kt.NothingPrunableError, match="only.*model output"):
        kt.TaylorPrunableModel(model)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3", None])
def test_max_to_prune_must_be_a_positive_int(bad):
    pm = kt.TaylorPrunableModel(tiny_cnn(), criterion="random")
    with pytest.raises(kt.InvalidArgumentError, match="max_to_prune"):
        pm.update_prunables(max_to_prune=bad)
    assert pm.alive.all()


def test_update_prunables_before_any_score():
    pm = kt.TaylorPrunableModel(tiny_cnn())
    with pytest.raises(kt.PruningStateError, match="update_score"):
        pm.update_prunables(max_to_prune=2)
    assert pm.alive.all()


def test_update_score_without_loss():
    pm = kt.TaylorPrunableModel(tiny_cnn())
    with pytest.raises(kt.PruningStateError, match="loss"):
        pm.update_score(rand((2, 8, 8, 3)), rand((2, 3)))


def test_strip_pruning_of_a_plain_model():
    model = tiny_cnn()
    with pytest.raises(kt.UnsupportedModelError, match=model.name) as info:
        kt.strip_pruning(model)
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"criterion": "l2"}, "criterion"),
        ({"spatial_reduction": "max"}, "spatial_reduction"),
    ],
)
def test_bad_constructor_arguments(kwargs, word):
    with pytest.raises(kt.InvalidArgumentError, match=word):
        kt.TaylorPrunableModel(tiny_cnn(), **kwargs)


def test_set_unit_alive_checks_shape_and_prunability():
    pm = kt.TaylorPrunableModel(tiny_cnn())
    with pytest.raises(kt.InvalidArgumentError, match="alive"):
        pm.set_unit_alive(np.ones(3, dtype=bool))
    alive = np.ones(pm.channel_graph.num_units, dtype=bool)
    alive[~pm.channel_graph.unit_prunable] = False
    with pytest.raises(kt.InvalidArgumentError, match="not prunable"):
        pm.set_unit_alive(alive)
