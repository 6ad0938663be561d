"""Where a channel mask multiplies: in the consumers' kernels, or on the activations."""

import numpy as np
import pytest

import keras
from keras import layers

import keras_taylor as kt
from keras_taylor import masking
from helpers import (
    assert_masked_equals_stripped,
    assert_outputs_close,
    conv_params,
    dense_params,
    bn_params,
    prune_channels,
    rand,
    randomize_weights,
)

X = rand((4, 8, 8, 3), seed=1)
Y = rand((4, 2), seed=2)


def _conv_chain():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="c0")(inputs)
    x = layers.BatchNormalization(name="bn0")(x)
    x = layers.Conv2D(5, 3, name="c1")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(2, name="out")(x))


def _chain_params(c0, c1):
    return conv_params((3, 3), 3, c0) + bn_params(c0) + conv_params((3, 3), c0, c1) + dense_params(c1, 2)


def _mask_before(pm, layer_name):
    """The ChannelMask whose output `layer_name` reads."""
    node = next(n for n in pm._flat.nodes if n.layer.name == layer_name)
    producer = {t: n for n in pm._flat.nodes for t in n.outputs}[node.inputs[0]]
    assert isinstance(producer.layer, masking.ChannelMask)
    return producer.layer


def _wrapped(model, seed=0):
    randomize_weights(model, seed)
    return kt.TaylorPrunableModel(model)


def test_conv_consumers_carry_the_mask_in_their_kernel():
    pm = _wrapped(_conv_chain())
    prune_channels(pm, "c0", [1, 3])
    prune_channels(pm, "c1", [0])
    assert isinstance(pm.net.get_layer("c1"), masking.MaskedKernelConv2D)
    assert _mask_before(pm, "c1").absorbed
    # Dense reads its mask's channels with a matmul: that mask still multiplies.
    assert not _mask_before(pm, "out").absorbed
    # The mask variable is not one of the convolution's weights.
    assert len(pm.net.get_layer("c1").get_weights()) == 2
    assert_masked_equals_stripped(pm, X, _chain_params(4, 4))

    kernel = pm.net.get_layer("c1").get_weights()[0]
    pm.compile(keras.optimizers.SGD(0.1), "mse")
    pm.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    after = pm.net.get_layer("c1").get_weights()[0]
    # Pruned input channels get no gradient; the kept ones train.
    np.testing.assert_array_equal(after[:, :, [1, 3], :], kernel[:, :, [1, 3], :])
    assert not np.allclose(after[:, :, [0, 2, 4, 5], :], kernel[:, :, [0, 2, 4, 5], :])
    assert_masked_equals_stripped(pm, X, _chain_params(4, 4))


def _depthwise_as_grouped_conv():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="c0")(inputs)
    x = layers.Conv2D(4, 3, groups=4, name="grouped")(x)  # one input channel per filter
    return keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(x))), "c0", "grouped"


def _shared():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="c0")(inputs)
    shared = layers.Conv2D(4, 3, padding="same", name="shared")
    x = shared(layers.ReLU()(shared(x)))
    return keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(x))), "c0", "shared"


def _conv_and_dense():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="c0")(inputs)
    a = layers.Conv2D(3, 1, name="conv_reader")(x)
    b = layers.Dense(3, name="dense_reader")(x)
    x = layers.Add()([a, b])
    return keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(x))), "c0", "conv_reader"


@pytest.mark.parametrize("build", [_depthwise_as_grouped_conv, _shared, _conv_and_dense], ids=lambda f: f.__name__.strip("_"))
def test_masks_that_cannot_move_into_a_kernel_keep_their_multiply(build):
    model, source, reader = build()
    pm = _wrapped(model)
    mask = _mask_before(pm, reader)
    assert not mask.absorbed
    assert getattr(pm.net.get_layer(reader), "_input_mask", None) is None  # a grouped depthwise conv is copied as DepthwiseConv2D
    before = keras.ops.convert_to_numpy(pm(X, training=False))
    prune_channels(pm, source, [0, 2])
    after = keras.ops.convert_to_numpy(pm(X, training=False))
    assert not np.allclose(before, after)
    assert_outputs_close(after, kt.strip_pruning(pm)(X, training=False))


def test_taylor_scores_do_not_depend_on_where_the_mask_multiplies(monkeypatch):
    kernel_masked = _wrapped(_conv_chain())
    monkeypatch.setattr("keras_taylor.model.bind_kernel_masks", lambda flat: None)
    activation_masked = kt.TaylorPrunableModel(_conv_chain())
    activation_masked.set_weights(kernel_masked.get_weights())
    assert not _mask_before(activation_masked, "c1").absorbed
    for pm in (kernel_masked, activation_masked):
        prune_channels(pm, "c0", [2])
        pm.compile(keras.optimizers.SGD(0.05), "mse")
        pm.update_score(X, Y)
        pm.fit(X, Y, batch_size=2, epochs=1, verbose=0, shuffle=False)  # gathers in train_step too
    np.testing.assert_allclose(
        kernel_masked.score_sum.numpy(), activation_masked.score_sum.numpy(), rtol=1e-4, atol=1e-7
    )
    for a, b in zip(kernel_masked.get_weights(), activation_masked.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_net_rebuilt_from_its_config_masks_on_its_own():
    pm = _wrapped(_conv_chain())
    prune_channels(pm, "c0", [0, 4])
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(pm.net))
    copy.set_weights(pm.net.get_weights())
    # Nothing bound the copy's masks to its convolutions, so they multiply.
    assert not any(layer.absorbed for layer in copy.layers if isinstance(layer, masking.ChannelMask))
    assert_outputs_close(pm(X, training=False), copy(X, training=False))
    # Wrapping it binds them again.
    rewrapped = kt.TaylorPrunableModel(copy)
    assert _mask_before(rewrapped, "c1").absorbed
    assert_outputs_close(pm(X, training=False), rewrapped(X, training=False))
