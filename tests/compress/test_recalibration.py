"""kt.recalibrate_batch_norm and its use in kt.compress."""

import importlib

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_taylor as kt
from helpers import NEEDS_RENORM, assert_masked_equals_stripped, prune_channels, randomize_weights, tiny_cnn

L = keras.layers
from keras_taylor.compression import phases


def conv_bn_dropout_bn(rate=0.5):
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(3, 3, name="conv")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.Dropout(rate, name="drop")(x)
    x = L.BatchNormalization(name="bn2")(x)
    return keras.Model(inputs, L.GlobalAveragePooling2D()(x))


def images(n=48, seed=0, shift=3.0):
    return np.random.default_rng(seed).normal(shift, 2.0, (n, 6, 6, 2)).astype("float32")


def stats(model, name):
    layer = model.get_layer(name)
    return layer.moving_mean.numpy().copy(), layer.moving_variance.numpy().copy()


def test_statistics_become_the_average_over_the_batches_used():
    model = conv_bn_dropout_bn()
    x = images()
    names = kt.recalibrate_batch_norm(model, x, batches=3, batch_size=8, seed=4)
    assert names == ["bn1", "bn2"]
    # The first 3 batches of 8 of the array shuffled with the seed.
    picked = x[np.random.default_rng(4).permutation(len(x))][:24]
    conv = keras.ops.convert_to_numpy(model.get_layer("conv")(picked)).reshape(3, -1, 3)
    mean, variance = stats(model, "bn1")
    np.testing.assert_allclose(mean, conv.mean(axis=1).mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(variance, conv.var(axis=1).mean(axis=0), rtol=1e-4, atol=1e-5)


def test_other_layers_run_in_inference_mode_and_the_model_is_left_as_it_was():
    model = conv_bn_dropout_bn(rate=0.5)
    trainable = [w.numpy().copy() for w in model.trainable_weights]
    kt.recalibrate_batch_norm(model, images(), batches=4)
    # bn2 reads bn1's normalised output: unit variance with dropout off,
    # about twice that if dropout had been active.
    np.testing.assert_allclose(stats(model, "bn2")[1], 1.0, atol=0.05)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(trainable, model.trainable_weights))
    bn = model.get_layer("bn1")
    assert bn.momentum == 0.99 and "call" not in vars(bn)
    # Training mode behaves as before: one step moves the statistics by 1%.
    before = stats(model, "bn1")[0]
    batch = images(8, seed=9, shift=-5.0)
    model(batch, training=True)
    conv_mean = keras.ops.convert_to_numpy(model.get_layer("conv")(batch)).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(stats(model, "bn1")[0], 0.99 * before + 0.01 * conv_mean, rtol=1e-4, atol=1e-5)


@NEEDS_RENORM
def test_frozen_and_renormalising_layers_keep_their_statistics():
    inputs = keras.Input((6, 6, 2))
    x = L.BatchNormalization(name="frozen")(inputs)
    x = L.BatchNormalization(name="renorm", renorm=True)(x)
    x = L.BatchNormalization(name="free")(x)
    model = keras.Model(inputs, x)
    model.get_layer("frozen").trainable = False
    names = kt.recalibrate_batch_norm(model, images(), batches=2)
    assert names == ["free"]
    for name in ("frozen", "renorm"):
        mean, variance = stats(model, name)
        assert np.all(mean == 0) and np.all(variance == 1)


def test_accepts_datasets_of_x_or_pairs_and_array_tuples():
    x = images(32)
    y = np.zeros(32)
    initial = conv_bn_dropout_bn().get_weights()

    def fresh():
        model = conv_bn_dropout_bn()
        model.set_weights(initial)
        return model

    expected = None
    for data in (
        tf.data.Dataset.from_tensor_slices(x).batch(16),
        tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
        tf.data.Dataset.from_tensor_slices((x, y, y)).batch(16),
    ):
        model = fresh()
        kt.recalibrate_batch_norm(model, data, batches=5)  # only 2 batches there
        got = stats(model, "bn1")
        if expected is None:
            expected = got
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
    array_model, tuple_model = fresh(), fresh()
    kt.recalibrate_batch_norm(array_model, x, batches=2, batch_size=16)
    kt.recalibrate_batch_norm(tuple_model, (x, y), batches=2, batch_size=16)
    np.testing.assert_allclose(stats(array_model, "bn1")[0], stats(tuple_model, "bn1")[0], rtol=1e-5)
    np.testing.assert_allclose(stats(array_model, "bn1")[0], expected[0], rtol=1e-4)


def test_a_model_without_batch_norm_is_left_alone():
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, L.Conv2D(2, 3)(inputs))
    assert kt.recalibrate_batch_norm(model, images(), batches=2) == []


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(batches=0), "batches"),
        (dict(batches=True), "batches"),
        (dict(batches=2.5), "batches"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_argument_errors_name_the_argument(kwargs, word):
    with pytest.raises(kt.InvalidArgumentError, match=word):
        kt.recalibrate_batch_norm(conv_bn_dropout_bn(), images(), **kwargs)


def test_bad_data_raises_and_keeps_the_statistics():
    model = conv_bn_dropout_bn()
    kt.recalibrate_batch_norm(model, images(), batches=2)
    before = stats(model, "bn1")
    with pytest.raises(kt.InvalidArgumentError, match="data"):
        kt.recalibrate_batch_norm(model, "images")
    with pytest.raises(kt.InvalidArgumentError, match="no samples"):
        kt.recalibrate_batch_norm(model, images()[:0])
    with pytest.raises(kt.InvalidArgumentError, match="model"):
        kt.recalibrate_batch_norm(object(), images())
    # Batches that break the model half-way leave the statistics as they were.
    good = images(16)
    bad = np.zeros((16, 5, 5, 3), "float32")
    broken = tf.data.Dataset.from_tensors(good).concatenate(tf.data.Dataset.from_tensors(bad))
    with pytest.raises(Exception):
        kt.recalibrate_batch_norm(model, broken, batches=2)
    np.testing.assert_array_equal(stats(model, "bn1")[0], before[0])
    np.testing.assert_array_equal(stats(model, "bn1")[1], before[1])
    assert model.get_layer("bn1").momentum == 0.99


def test_recalibrated_masked_model_equals_the_recalibrated_stripped_one():
    model = tiny_cnn(filters=(6, 5, 4))
    randomize_weights(model)
    x = np.random.default_rng(1).normal(size=(40, 8, 8, 3)).astype("float32")
    pm = kt.TaylorPrunableModel(model)
    prune_channels(pm, "c0", [1, 4])
    prune_channels(pm, "c1", [0])
    stripped = kt.strip_pruning(pm)
    kt.recalibrate_batch_norm(pm, x, batches=3, batch_size=8)
    kt.recalibrate_batch_norm(stripped, x, batches=3, batch_size=8)
    # Masked channels normalise zeros; the stripped model lacks them.
    assert_masked_equals_stripped(pm, x[:4], stripped=stripped)
    assert_masked_equals_stripped(pm, x[:4])


# ------------------------------------------------------------ in kt.compress
def bn_cnn():
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(10, 3, padding="same", name="c1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(10, 3, padding="same", name="c2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU()(x)
    outputs = L.Dense(3, activation="softmax")(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    randomize_weights(model)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    return model


def test_compress_recalibrates_after_each_pruning_step_and_leaves_the_input_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 64)
    model = bn_cnn()
    before = [w.copy() for w in model.get_weights()]
    results = {}
    for batches in (0, 4):
        results[batches] = kt.compress(
            model, (x, y), goal=0.3, increment=0.3, fine_tune_epochs=0, score_batches=2,
            recalibration_batches=batches, batch_size=32, seed=0, verbose=0,
        )
    (plain, info_plain), (recalibrated, _) = results[0], results[4]
    assert "c1" in info_plain.pruned_layers
    assert [w.shape for w in plain.weights] == [w.shape for w in recalibrated.weights]
    original_mean = model.get_layer("bn1").moving_mean.numpy()
    # Off: the kept channels keep the unpruned model's statistics.
    kept = plain.get_layer("bn1").moving_mean.numpy()
    assert len(kept) < 10 and np.isin(kept, original_mean).all()
    # On: the average over both batches of 32, i.e. over all 64 images.
    conv = keras.ops.convert_to_numpy(recalibrated.get_layer("c1")(x))
    np.testing.assert_allclose(
        recalibrated.get_layer("bn1").moving_mean.numpy(), conv.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5
    )
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("value", [-1, 1.5, True, "10"])
def test_compress_rejects_bad_recalibration_batches(value):
    x = np.zeros((8, 8, 8, 1), "float32")
    with pytest.raises(kt.InvalidArgumentError, match="recalibration_batches"):
        kt.compress(bn_cnn(), (x, np.zeros(8)), recalibration_batches=value, verbose=0)


def test_compress_validates_fine_tuned_models_with_recalibrated_statistics(monkeypatch):
    # Each fine-tuning validation (and the end of a fit without validation)
    # is preceded by a re-estimate, so the kept model's statistics match its
    # weights: re-estimating the returned model again changes nothing.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 64)
    calls = []
    real = phases.recalibrate_batch_norm

    def counting(model, data, batches=10, **kwargs):
        calls.append(type(model).__name__)
        return real(model, data, batches=batches, **kwargs)

    monkeypatch.setattr(phases, "recalibrate_batch_norm", counting)
    recalibration = importlib.import_module("keras_taylor.recalibration")
    monkeypatch.setattr(recalibration, "recalibrate_batch_norm", counting)
    for validation in ((x, y), None):
        calls.clear()
        pruned, info = kt.compress(
            bn_cnn(), (x, y), goal=0.4, increment=0.2, fine_tune_epochs=2, score_batches=2,
            recalibration_batches=2, batch_size=64, seed=0, verbose=0, validation_data=validation,
            rebuild_threshold=1.0,
        )
        iterations = int(info.pruning_history.iteration.max())
        # After each pruning step, then before each of 2 validations or once at the end.
        assert len(calls) == iterations * (3 if validation else 2)
        # The last re-estimate used the final weights over all 64 images (one batch).
        conv = keras.ops.convert_to_numpy(pruned.get_layer("c1")(x))
        np.testing.assert_allclose(pruned.get_layer("bn1").moving_mean.numpy(), conv.mean(axis=(0, 1, 2)),
                                   rtol=1e-4, atol=1e-5)
