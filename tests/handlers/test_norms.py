"""Normalisations across the channels: exact over the kept channels.

LayerNormalization, RMSNormalization and UnitNormalization take their
statistics over the channel axis; the prunable model computes them over the
kept channels only. GroupNormalization loses whole normalisation groups.
Each test asserts stripped == masked exactly.
"""

import numpy as np
import pytest

import keras
from keras import layers

import keras_taylor as kt
from helpers import (
    assert_masked_equals_stripped,
    assert_pruning_changes_output,
    head,
    rand,
    units_of,
    wrap_and_prune,
)

X = rand((2, 8, 8, 3))


def convnext_like(norm=lambda: layers.LayerNormalization(epsilon=1e-6)):
    """Stem -> norm -> [depthwise -> norm -> expand -> GELU -> project] + skip -> norm -> down."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 2, strides=2, name="stem")(inputs)
    x = norm()(x)
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    y = norm()(y)
    y = layers.Dense(16, name="expand")(y)
    y = layers.Activation("gelu")(y)
    y = layers.Dense(8, name="project")(y)
    x = layers.Add()([x, y])
    x = norm()(x)
    x = layers.Conv2D(6, 2, strides=2, name="down")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = norm()(x)
    return keras.Model(inputs, layers.Dense(3, name="head")(x))


@pytest.mark.parametrize(
    "norm",
    [
        lambda: layers.LayerNormalization(epsilon=1e-6),
        lambda: layers.LayerNormalization(rms_scaling=True),
        lambda: layers.LayerNormalization(center=False, scale=False),
        pytest.param(
            lambda: layers.RMSNormalization(),
            marks=pytest.mark.skipif(not hasattr(layers, "RMSNormalization"), reason="this Keras has no RMSNormalization"),
        ),
        lambda: layers.UnitNormalization(),
    ],
    ids=["layer_norm", "rms_scaling", "no_affine", "rms_norm", "unit_norm"],
)
def test_norm_over_kept_channels(norm):
    model = convnext_like(norm)
    pm = wrap_and_prune(model, {"stem": [1, 4, 6], "down": [2]})
    assert pm.num_prunables == (8 - 1) + (6 - 1) - 4
    assert_pruning_changes_output(model, pm, X)
    small = assert_masked_equals_stripped(pm, X)
    assert small.get_layer("stem").filters == 5
    assert small.get_layer("expand").kernel.shape == (5, 16)
    assert small.get_layer("project").kernel.shape == (16, 5)


def test_layer_norm_trains_over_kept_channels():
    """The masked layer's statistics follow the masks through training too."""
    model = convnext_like()
    pm = wrap_and_prune(model, {"stem": [0, 7]})
    pm.compile(optimizer="sgd", loss="mse")
    pm.fit(X, np.zeros((2, 3), "float32"), epochs=1, verbose=0)
    assert_masked_equals_stripped(pm, X)


def test_layer_norm_over_other_axes_blocks():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, name="c")(inputs)
    x = layers.LayerNormalization(axis=[1, 2, 3])(x)
    model = keras.Model(inputs, head(x))
    with pytest.raises(kt.errors.NothingPrunableError, match="not the channel axis"):
        kt.TaylorPrunableModel(model)


@pytest.mark.parametrize("groups", [4, -1, 1])
def test_group_norm_prunes_whole_groups(groups):
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="c0")(inputs)
    x = layers.GroupNormalization(groups=groups)(x)
    x = layers.Activation("silu")(x)
    x = layers.Conv2D(4, 3, name="c1")(x)
    model = keras.Model(inputs, head(x))
    size = 8 if groups == 1 else (1 if groups == -1 else 2)
    pm = wrap_and_prune(model, {"c0": [2]})
    units = units_of(pm, "c0")
    assert len(set(units.tolist())) == 8 // size
    if groups == 1:  # one group: its channels are the layer's last
        assert pm.num_prunables == 4 - 1  # c1 only
        return
    assert_pruning_changes_output(model, pm, X)
    small = assert_masked_equals_stripped(pm, X)
    assert small.get_layer("c0").filters == 8 - size
    norm = [l for l in small.layers if isinstance(l, layers.GroupNormalization)][0]
    assert norm.groups == (7 if groups == -1 else 3)  # Keras stores -1 as C


def test_masked_norm_saves_and_loads(tmp_path):
    model = convnext_like()
    pm = wrap_and_prune(model, {"stem": [3]})
    path = tmp_path / "pm.keras"
    pm.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(X)), keras.ops.convert_to_numpy(pm(X)), atol=1e-5
    )


@pytest.mark.slow
def test_convnext_tiny_prunes_with_defaults():
    model = keras.applications.ConvNeXtTiny(
        weights=None, input_shape=(32, 32, 3), classifier_activation=None
    )
    assert kt.max_reduction(model) >= 0.2
    pm = kt.TaylorPrunableModel(model, criterion="l1")
    before = model.count_params()
    pm.update_prunables(max_to_prune=int(0.5 * pm.num_prunables))
    x = (np.random.default_rng(0).random((2, 32, 32, 3)) * 255).astype("float32")
    small = assert_masked_equals_stripped(pm, x)
    assert small.count_params() <= 0.8 * before


class Clamped(layers.LayerNormalization):
    def call(self, x):
        return keras.ops.clip(super().call(x), -1.0, 1.0)


class Named(layers.LayerNormalization):
    pass


@pytest.mark.parametrize("cls", [Clamped, Named])
def test_layer_norm_subclass_blocks(cls):
    """Only LayerNormalization itself is trained over the kept channels."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, name="c")(inputs)
    x = cls(name="sub")(x)
    x = layers.Conv2D(4, 3, name="d")(x)
    table = kt.analyze(keras.Model(inputs, head(x))).set_index("name")
    assert not table.loc["c", "prunable"]
    assert "subclass of LayerNormalization" in table.loc["c", "reason"]


def test_unit_norm_subclass_keeping_its_call_is_exact():
    class Unit(layers.UnitNormalization):
        pass

    model = convnext_like(lambda: Unit())
    pm = wrap_and_prune(model, {"stem": [2, 5]})
    assert_masked_equals_stripped(pm, X)


def test_taylor_scores_through_masked_norms():
    model = convnext_like()
    pm = wrap_and_prune(model, {})
    pm.update_score(X, np.zeros((2, 3), "float32"), loss="mse")
    assert pm.update_prunables(max_to_prune=3) == 3
    assert_masked_equals_stripped(pm, X)
