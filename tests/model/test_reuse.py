"""Layers keras-taylor never changes: copied even when their config is broken, saved so they reload.

Custom layers written like keras-hub 0.32's: one whose `get_config` returns
a key its `__init__` refuses (`HierarchicalTransformerEncoder`), one whose
`build` adds a tuple to its input shape (`SpatialPyramidPooling`), which
fails when a `.keras` file hands it the JSON list of its build shape.
"""

import numpy as np

import keras
from keras import layers, ops

import keras_taylor as kt

from helpers import assert_masked_equals_stripped, assert_outputs_close, compiled, head, rand, randomize_weights


@keras.saving.register_keras_serializable(package="test_reuse")
class BrokenConfigScale(layers.Layer):
    """Per-channel scale whose config cannot make it again (an extra key)."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.scale * self.factor

    def get_config(self):
        return dict(super().get_config(), factor=self.factor, internal_state="not an argument")


@keras.saving.register_keras_serializable(package="test_reuse")
class TupleShapeProjection(layers.Layer):
    """Builds a sublayer from `input_shape[:-1] + (c,)`, as keras-hub's SpatialPyramidPooling does."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.projection = layers.Dense(self.units)
        self.projection.build(input_shape[:-1] + (input_shape[-1],))

    def call(self, x):
        return ops.relu(self.projection(x))

    def get_config(self):
        return dict(super().get_config(), units=self.units)


def model_with(custom):
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="c0")(inputs)
    x = custom(x)  # opaque: blocks c0's channels
    x = layers.Conv2D(6, 3, padding="same", name="c1")(x)
    x = layers.ReLU()(x)
    return randomize_weights(keras.Model(inputs, head(x)))


def test_layer_with_a_broken_config_is_copied_by_its_constructor():
    model = model_with(BrokenConfigScale(3.0, name="scale"))
    original = [w.copy() for w in model.get_weights()]
    pm = kt.TaylorPrunableModel(model)
    copy = pm.net.get_layer("scale")
    assert copy is not model.get_layer("scale") and copy.factor == 3.0
    assert copy.scale is not model.get_layer("scale").scale
    alive = pm.alive.copy()
    alive[pm.channel_graph.layer_units["c1"][:2]] = False
    pm.set_unit_alive(alive)
    x = rand((2, 8, 8, 3))
    small = assert_masked_equals_stripped(pm, x)
    assert small.get_layer("c1").filters == 4
    # training the prunable model leaves the model passed in as it was
    compiled(pm, loss="mse", metrics=None).fit(x, np.ones((2, 3)), epochs=1, verbose=0)
    for before, after in zip(original, model.get_weights()):
        np.testing.assert_array_equal(before, after)


@keras.saving.register_keras_serializable(package="test_reuse")
class HubStyleNet(keras.Model):
    """A functional model that reloads through its constructor, as keras-hub's models do."""

    def __init__(self, units=8, **kwargs):
        inputs = keras.Input((8, 8, 3))
        x = layers.Conv2D(8, 3, padding="same", name="c0")(inputs)
        x = TupleShapeProjection(units, name="projection")(x)
        x = layers.Conv2D(6, 3, padding="same", name="c1")(x)
        super().__init__(inputs, head(layers.ReLU()(x)), **kwargs)
        self.units = units

    def get_config(self):
        return {"units": self.units, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def test_stripped_model_with_a_tuple_shape_layer_reloads_in_safe_mode(tmp_path):
    model = randomize_weights(HubStyleNet(8))
    model.save(tmp_path / "original.keras")
    keras.saving.load_model(tmp_path / "original.keras", safe_mode=True)  # the original reloads
    pm = kt.TaylorPrunableModel(model)
    alive = pm.alive.copy()
    alive[pm.channel_graph.layer_units["c1"][:3]] = False
    pm.set_unit_alive(alive)
    x = rand((2, 8, 8, 3))
    small = assert_masked_equals_stripped(pm, x)
    small.save(tmp_path / "small.keras")
    loaded = keras.saving.load_model(tmp_path / "small.keras", safe_mode=True)
    assert_outputs_close(small(x, training=False), loaded(x, training=False))
    assert loaded.get_layer("c1").filters == 3


@keras.saving.register_keras_serializable(package="test_reuse")
class HubStyleBackbone(keras.Model):
    """A backbone made again by its constructor when loaded (keras-hub's pattern), holding a
    layer whose own config is broken: it loads only as this class, not as a plain functional model."""

    def __init__(self, filters=4, **kwargs):
        inputs = keras.Input((8, 8, 3))
        x = layers.Conv2D(filters, 3, padding="same", name="stem")(inputs)
        super().__init__(inputs, BrokenConfigScale(2.0, name="scale")(x), **kwargs)
        self.filters = filters

    def get_config(self):
        return {"filters": self.filters, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def test_untouched_nested_backbone_stays_nested_and_reloads(tmp_path):
    backbone = HubStyleBackbone(4, name="backbone")
    inputs = keras.Input((8, 8, 3))
    x = layers.ReLU()(layers.Conv2D(8, 3, padding="same", name="c1")(backbone(inputs)))
    model = randomize_weights(keras.Model(inputs, head(x)))
    before = [w.copy() for w in model.get_weights()]
    pm = kt.TaylorPrunableModel(model)
    copy = pm.net.get_layer("backbone")
    assert type(copy) is HubStyleBackbone and copy is not backbone
    alive = pm.alive.copy()
    alive[pm.channel_graph.layer_units["c1"][:3]] = False
    pm.set_unit_alive(alive)
    x = rand((2, 8, 8, 3))
    small = assert_masked_equals_stripped(pm, x)
    assert type(small.get_layer("backbone")) is HubStyleBackbone
    assert small.get_layer("c1").filters == 5
    small.save(tmp_path / "small.keras")
    loaded = keras.saving.load_model(tmp_path / "small.keras", safe_mode=True)
    assert_outputs_close(small(x, training=False), loaded(x, training=False))
    compiled(pm, loss="mse", metrics=None).fit(x, np.ones((2, 3)), epochs=1, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
