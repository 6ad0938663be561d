"""strip_pruning: plain, portable, smaller; the input model is never touched."""

import json
import zipfile

import numpy as np

import keras
from keras import layers

import keras_taylor as kt

from helpers import (
    assert_masked_equals_stripped,
    assert_outputs_close,
    has_keras_taylor_layers,
    prune_channels,
    rand,
    randomize_weights,
    tiny_cnn,
    tiny_cnn_params,
)

X = rand((4, 8, 8, 3))
Y = rand((4, 3), 1)


def _snapshot(model):
    return (
        json.dumps(model.get_config(), sort_keys=True, default=str),
        [w.numpy().copy() for w in model.weights],
        [w.name for w in model.weights],
    )


def _assert_same(a, b):
    assert a[0] == b[0], "model config changed"
    assert a[2] == b[2], "model weights changed names"
    for u, v in zip(a[1], b[1]):
        np.testing.assert_array_equal(u, v)


def test_unpruned_strip_is_the_original_model():
    model = randomize_weights(tiny_cnn())
    pm = kt.TaylorPrunableModel(model)
    small = assert_masked_equals_stripped(pm, X, model.count_params())
    assert_outputs_close(model(X, training=False), small(X, training=False))
    assert [l.name for l in small.layers] == [l.name for l in model.layers]


def test_stripped_saves_and_loads_without_custom_objects(tmp_path):
    model = randomize_weights(tiny_cnn())
    pm = kt.TaylorPrunableModel(model)
    prune_channels(pm, "c0", [1, 3])
    prune_channels(pm, "c1", [0])
    small = assert_masked_equals_stripped(pm, X, tiny_cnn_params(3, (2, 5)))
    assert type(small) is type(model) and not isinstance(small, kt.TaylorPrunableModel)
    assert not has_keras_taylor_layers(small)
    path = tmp_path / "small.keras"
    small.save(path)
    with zipfile.ZipFile(path) as archive:
        assert "keras_taylor" not in archive.read("config.json").decode()
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    assert loaded.count_params() == tiny_cnn_params(3, (2, 5))
    assert_outputs_close(pm(X, training=False), loaded(X, training=False))


def test_strip_keeps_compilation_and_does_not_change_the_prunable_model():
    model = randomize_weights(tiny_cnn())
    pm = kt.TaylorPrunableModel(model)
    pm.compile(optimizer="sgd", loss="mse")
    prune_channels(pm, "c1", [1, 2])
    alive = pm.alive.copy()
    before = pm(X, training=False)
    first = kt.strip_pruning(pm)
    second = kt.strip_pruning(pm)
    np.testing.assert_array_equal(pm.alive, alive)
    assert_outputs_close(before, pm(X, training=False))
    assert_outputs_close(first(X), second(X))
    assert first.compiled
    assert np.isfinite(first.evaluate(X, Y, verbose=0))


def test_input_model_is_never_mutated():
    model = randomize_weights(tiny_cnn())
    before = _snapshot(model)
    out_before = np.asarray(model(X, training=False))
    n_layers = len(model.layers)

    pm = kt.TaylorPrunableModel(model)
    kt.analyze(model)
    kt.max_reduction(model)
    pm.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    pm.fit(X, Y, batch_size=2, epochs=1, verbose=0)
    pm.update_prunables(max_to_prune=3)
    small = kt.strip_pruning(pm)
    small.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    small.fit(X, Y, batch_size=4, epochs=1, verbose=0)

    _assert_same(before, _snapshot(model))
    assert len(model.layers) == n_layers
    np.testing.assert_array_equal(out_before, np.asarray(model(X, training=False)))
    # The wrapped copy trained; the original did not share its variables.
    assert not any(
        w1 is w2 for w1 in model.weights for w2 in pm.weights
    )


def test_strip_of_nested_model_flattens_it():
    inner_in = keras.Input((8, 8, 4))
    inner = keras.Model(
        inner_in, layers.Conv2D(5, 3, padding="same", name="ic")(inner_in), name="inner"
    )
    inputs = keras.Input((8, 8, 3))
    x = inner(layers.Conv2D(4, 3, padding="same", name="a")(inputs))
    model = randomize_weights(
        keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(x)))
    )
    pm = kt.TaylorPrunableModel(model)
    prune_channels(pm, "a", [0])
    prune_channels(pm, "ic", [1, 2])
    small = assert_masked_equals_stripped(
        pm, X, (27 * 3 + 3) + (9 * 3 * 3 + 3) + (3 * 2 + 2)
    )
    assert small.get_layer("ic").filters == 3
