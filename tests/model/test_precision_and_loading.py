"""Mixed precision, and safe `.keras` loading of prunable and stripped models."""

import json
import pathlib
import re
import zipfile

import numpy as np
import pytest

import keras
from keras import layers

import keras_taylor as kt

from helpers import assert_outputs_close, prune_channels, rand, randomize_weights, tiny_cnn

PACKAGE = pathlib.Path(kt.__file__).parent


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_scores_prune_and_strip(mixed_float16):
    model = randomize_weights(tiny_cnn(filters=(6, 8)))
    assert model.layers[1].compute_dtype == "float16"
    x, y = rand((16, 8, 8, 3)), rand((16, 3), 1)
    pm = kt.TaylorPrunableModel(model)
    # SGD(0) keeps the weights still, so fit's scores (gathered through the
    # LossScaleOptimizer's scaled loss) must equal update_score's.
    pm.compile(keras.optimizers.SGD(0.0), "mse")
    assert isinstance(pm.optimizer, keras.optimizers.LossScaleOptimizer)
    pm.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    ref = kt.TaylorPrunableModel(model)
    ref.update_score(x, y, loss="mse", training=True)
    assert pm.score_sum.dtype == "float32" and pm.score_count.numpy() == 16
    prunable = pm.channel_graph.unit_prunable
    assert np.all(np.isfinite(pm.scores[prunable])) and pm.scores[prunable].max() > 0
    np.testing.assert_allclose(pm.scores[prunable], ref.scores[prunable], rtol=2e-2, atol=1e-6)

    assert pm.update_prunables(max_to_prune=5) == 5
    small = kt.strip_pruning(pm)
    assert small.count_params() < model.count_params()
    assert {layer.dtype_policy.name for layer in small.layers[1:]} == {"mixed_float16"}
    masked, stripped = pm(x, training=False), small(x, training=False)
    assert stripped.dtype == "float16"
    assert_outputs_close(masked, stripped, rel=2e-3)
    # The stripped model trains (loss scaling included) and keeps its policy
    # through a save/load.
    small.compile(keras.optimizers.Adam(1e-3), "mse")
    small.fit(x, y, batch_size=8, verbose=0)
    assert all(np.isfinite(w).all() for w in small.get_weights())


def test_stripped_mixed_precision_model_round_trips(mixed_float16, tmp_path):
    pm = kt.TaylorPrunableModel(randomize_weights(tiny_cnn()), criterion="l1")
    pm.update_prunables(max_to_prune=3)
    kt.strip_pruning(pm).save(tmp_path / "small.keras")
    keras.mixed_precision.set_global_policy("float32")
    loaded = keras.models.load_model(tmp_path / "small.keras", safe_mode=True)
    assert {layer.dtype_policy.name for layer in loaded.layers[1:]} == {"mixed_float16"}


def _nested_multi_io_model():
    inner_in = keras.Input((8, 8, 4))
    h = layers.Conv2D(6, 3, padding="same", name="inner_conv")(inner_in)
    h = layers.BatchNormalization(name="inner_bn")(h)
    block = keras.Model(inner_in, layers.ReLU(name="inner_relu")(h), name="block")
    a, b = keras.Input((8, 8, 3), name="a"), keras.Input((8, 8, 1), name="b")
    x = layers.Concatenate(name="cat")([layers.Conv2D(3, 3, padding="same", name="ca")(a), b])
    x = block(x)
    s = layers.Reshape((1, 1, 6), name="se_reshape")(layers.GlobalAveragePooling2D(name="se_gap")(x))
    s = layers.Conv2D(6, 1, activation="sigmoid", name="se_conv")(s)
    x = layers.Multiply(name="se_mul")([x, s])
    out1 = layers.Dense(2, name="out1")(layers.Flatten(name="flat")(x))
    out2 = layers.Dense(3, name="out2")(layers.GlobalMaxPooling2D(name="gmp")(x))
    return keras.Model({"a": a, "b": b}, [out1, out2], name="multi")


def _config_json(path):
    with zipfile.ZipFile(path) as z:
        return z.read("config.json").decode()


def test_prunable_and_stripped_models_load_in_safe_mode(tmp_path):
    model = randomize_weights(_nested_multi_io_model())
    x = {"a": rand((2, 8, 8, 3)), "b": rand((2, 8, 8, 1), 1)}
    pm = kt.TaylorPrunableModel(model)
    prune_channels(pm, "inner_conv", [0, 4])
    prune_channels(pm, "ca", [1])
    pm.update_score(x, loss=lambda y_pred: sum(keras.ops.mean(p**2) for p in y_pred))

    pm.save(tmp_path / "prunable.keras")
    loaded = keras.models.load_model(tmp_path / "prunable.keras", safe_mode=True)
    assert isinstance(loaded, kt.TaylorPrunableModel)
    np.testing.assert_array_equal(loaded.alive, pm.alive)
    np.testing.assert_allclose(loaded.score_sum.numpy(), pm.score_sum.numpy())
    assert_outputs_close(pm(x, training=False), loaded(x, training=False))

    small = kt.strip_pruning(pm)
    small.save(tmp_path / "small.keras")
    again = keras.models.load_model(tmp_path / "small.keras", safe_mode=True)
    assert again.get_layer("inner_conv").filters == 4
    assert_outputs_close(pm(x, training=False), again(x, training=False))
    # From the reloaded prunable model, too.
    assert_outputs_close(small(x, training=False), kt.strip_pruning(loaded)(x, training=False))

    for name in ("prunable.keras", "small.keras"):
        config = _config_json(tmp_path / name)
        assert not re.search("lambda", config, re.IGNORECASE), name
        json.loads(config)  # plain JSON, nothing pickled
    assert "keras_taylor" not in _config_json(tmp_path / "small.keras")


def test_package_uses_no_lambda_layers_or_pickle():
    for path in PACKAGE.glob("*.py"):
        source = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle)\b", source, re.M), path.name
        assert not re.search(r"layers\.Lambda\(|allow_pickle\s*=\s*True", source), path.name
