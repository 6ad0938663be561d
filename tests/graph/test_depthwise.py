"""A grouped convolution with one group per input channel is copied as a depthwise one."""

import pytest

import keras
from keras import layers

import keras_taylor as kt
from helpers import (
    assert_masked_equals_stripped,
    assert_outputs_close,
    depthwise_params,
    rand,
    wrap_and_prune,
)


def _model(rank=2, multiplier=1, **grouped_kwargs):
    shape = (8, 8, 3) if rank == 2 else (12, 3)
    conv = layers.Conv2D if rank == 2 else layers.Conv1D
    pool = layers.GlobalAveragePooling2D if rank == 2 else layers.GlobalAveragePooling1D
    inputs = keras.Input(shape)
    x = conv(6, 3, padding="same", name="c0")(inputs)
    x = conv(6 * multiplier, 3, groups=6, padding="same", activation="relu", name="grouped", **grouped_kwargs)(x)
    x = conv(4, 1, name="c1")(x)
    return keras.Model(inputs, layers.Dense(2)(pool()(x)))


@pytest.mark.parametrize("rank, multiplier", [(2, 1), (2, 2), (1, 1), (1, 3)])
def test_grouped_depthwise_becomes_depthwise_and_strips_exactly(rank, multiplier, tmp_path):
    model = _model(rank, multiplier)
    x = rand((3,) + model.input_shape[1:], seed=1)
    pm = wrap_and_prune(model, {"c0": [1, 4]})
    copied = pm.net.get_layer("grouped")
    assert type(copied) is (layers.DepthwiseConv2D if rank == 2 else layers.DepthwiseConv1D)
    assert copied.depth_multiplier == multiplier

    unpruned = kt.TaylorPrunableModel(model)
    assert_outputs_close(unpruned(x, training=False), model(x, training=False), rel=1e-6)

    window = 9 if rank == 2 else 3
    stripped = assert_masked_equals_stripped(pm, x)
    assert stripped.get_layer("grouped").count_params() == depthwise_params(window, 4, multiplier)
    path = str(tmp_path / "m.keras")
    stripped.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    assert_outputs_close(reloaded(x), stripped(x))


@pytest.mark.parametrize(
    "why, kwargs",
    [("kernel constraint", {"kernel_constraint": keras.constraints.MaxNorm(2.0)})],
)
def test_grouped_conv_kept_where_the_rewrite_would_change_meaning(why, kwargs):
    model = _model(**kwargs)
    pm = wrap_and_prune(model, {"c0": [1]})
    assert type(pm.net.get_layer("grouped")) is not layers.DepthwiseConv2D, why
    # still pruned as a depthwise convolution: fewer groups
    stripped = assert_masked_equals_stripped(pm, rand((2, 8, 8, 3)))
    assert stripped.get_layer("grouped").groups == 5


def test_causal_grouped_conv1d_stays_grouped_and_strips_exactly():
    inputs = keras.Input((16, 4))
    x = layers.Conv1D(8, 1, name="c0")(inputs)
    x = layers.Conv1D(8, 3, groups=8, padding="causal", dilation_rate=2, name="grouped")(x)
    model = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling1D()(x)))
    pm = wrap_and_prune(model, {"c0": [1, 5]})
    assert not isinstance(pm.net.get_layer("grouped"), layers.DepthwiseConv1D)
    stripped = assert_masked_equals_stripped(pm, rand((2, 16, 4)))
    assert stripped.get_layer("grouped").groups == 6


def test_subclass_of_conv2d_is_not_rewritten():
    class Scaled(layers.Conv2D):
        def call(self, inputs):
            return 2.0 * super().call(inputs)

    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", name="c0")(inputs)
    x = Scaled(6, 3, groups=6, name="grouped")(x)
    model = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(x)))
    x = rand((2, 8, 8, 3))
    pm = wrap_and_prune(model, {"c0": [0]})
    assert isinstance(pm.net.get_layer("grouped"), Scaled)
    assert_masked_equals_stripped(pm, x)


def test_model_passed_in_keeps_its_grouped_conv():
    model = _model()
    kt.TaylorPrunableModel(model)
    assert type(model.get_layer("grouped")) is layers.Conv2D
    assert model.get_layer("grouped").groups == 6
