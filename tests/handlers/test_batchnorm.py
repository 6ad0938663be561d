"""FusedBatchNormalization: the prunable model's training-speed twin of Keras BN."""

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_taylor as kt
from keras_taylor.batchnorm import FusedBatchNormalization

from helpers import NEEDS_RENORM

L = keras.layers


def _pair(input_shape, **config):
    """A Keras BN and a fused one with the same config and (non-trivial) weights."""
    plain = L.BatchNormalization(**config)
    plain.build(input_shape)
    rng = np.random.default_rng(0)
    plain.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in plain.get_weights()])
    fused = FusedBatchNormalization.from_config(plain.get_config())
    fused.build(input_shape)
    fused.set_weights(plain.get_weights())
    return plain, fused


def _train_call(layer, x):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * tf.sin(y))  # a loss that weighs outputs unevenly
    grads = tape.gradient(loss, [x] + layer.trainable_weights)
    return [y.numpy()] + [g.numpy() for g in grads] + [w.numpy() for w in layer.non_trainable_weights]


@pytest.mark.parametrize(
    "shape, config",
    [
        ((16, 5, 5, 3), {}),
        ((16, 7, 4), {"momentum": 0.9}),  # Conv1D activations
        ((16, 4), {"epsilon": 1e-3}),  # Dense activations
        ((8, 3, 3, 2, 4), {}),  # Conv3D activations
        ((16, 5, 5, 3), {"center": False, "scale": False}),
        ((1, 1, 1, 3), {}),  # one value per channel: variance 0
    ],
)
def test_fused_training_step_equals_keras_batch_norm(shape, config):
    plain, fused = _pair(shape, **config)
    x = np.random.default_rng(1).normal(2.0, 3.0, size=shape).astype("float32")
    for got, want in zip(_train_call(fused, x), _train_call(plain, x)):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize(
    "config, training, dtype",
    [
        ({}, False, "float32"),  # inference
        ({"axis": 1}, True, "float32"),  # channels first
        ({"epsilon": 1e-6}, True, "float32"),  # below the fused kernel's limit
        pytest.param({"renorm": True}, True, "float32", marks=NEEDS_RENORM),
        ({}, True, "float64"),
    ],
)
def test_calls_the_fused_kernel_cannot_take_run_the_keras_code(monkeypatch, config, training, dtype):
    shape = (8, 3, 3, 4)
    plain = L.BatchNormalization(dtype=dtype, **config)
    plain.build(shape)
    fused = FusedBatchNormalization.from_config(plain.get_config())
    fused.build(shape)
    fused.set_weights(plain.get_weights())

    def fail(*args, **kwargs):
        raise AssertionError("fused kernel used")

    monkeypatch.setattr(tf.compat.v1.nn, "fused_batch_norm", fail)
    x = np.random.default_rng(2).normal(size=shape).astype(dtype)
    np.testing.assert_array_equal(fused(x, training=training).numpy(), plain(x, training=training).numpy())


def _bn_model():
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(6, 3, padding="same", name="c1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(4, 3, name="c2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    outputs = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def test_prunable_model_trains_fused_and_strips_back_to_keras_layers(tmp_path):
    model = _bn_model()
    pm = kt.TaylorPrunableModel(model)
    bn_types = {type(layer) for layer in pm.net.layers if isinstance(layer, L.BatchNormalization)}
    assert bn_types == {FusedBatchNormalization}
    assert {type(layer) for layer in model.layers if isinstance(layer, L.BatchNormalization)} == {L.BatchNormalization}
    report = kt.analyze(pm)
    assert "FusedBatchNormalization" not in set(report["type"])
    pm.compile(keras.optimizers.SGD(0.1), "mse")
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(32, 6, 6, 2)).astype("float32"), rng.normal(size=(32, 2)).astype("float32")
    pm.fit(x, y, batch_size=8, epochs=1, verbose=0)
    pm.update_prunables(max_to_prune=2)
    stripped = kt.strip_pruning(pm)
    assert {type(layer) for layer in stripped.layers if isinstance(layer, L.BatchNormalization)} == {L.BatchNormalization}
    np.testing.assert_allclose(stripped.predict(x, verbose=0), pm.predict(x, verbose=0), atol=1e-5)
    # A saved prunable model loads with its fused layers and masks.
    path = tmp_path / "pm.keras"
    pm.save(path)
    loaded = keras.models.load_model(path)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in loaded.net.layers)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), pm.predict(x, verbose=0), atol=1e-5)


def test_fine_tuning_the_prunable_model_follows_the_keras_model():
    # Same start, same batches: the fused prunable model and the plain Keras
    # model must train alike (scores gathering does not touch the weights).
    keras.utils.set_random_seed(4)
    model = _bn_model()
    pm = kt.TaylorPrunableModel(model)
    plain = keras.models.clone_model(model)
    plain.set_weights(model.get_weights())
    for m in (pm, plain):
        m.compile(keras.optimizers.SGD(0.05), "mse")
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(64, 6, 6, 2)).astype("float32"), rng.normal(size=(64, 2)).astype("float32")
    for m in (pm, plain):
        m.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for got, want in zip(kt.strip_pruning(pm).get_weights(), plain.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
