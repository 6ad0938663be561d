"""Every bad input of docs/errors.md, one test per row.

Each row calls the public API with one bad input and checks the error type,
that the message names the argument or layer at fault, and that the model
passed in is unchanged (architecture and every weight). The row ids are the
ids in docs/errors.md's table; `test_docs_table_lists_every_row` keeps the two
in step.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras import layers

import keras_taylor as kt
from keras_taylor import cli

from keras_taylor.compression.stop import StopReason

from helpers import REPO, rand, tiny_cnn

DOC = REPO / "docs" / "errors.md"


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="my_subclassed")
        self.conv = layers.Conv2D(4, 3)
        self.head = layers.Dense(2)

    def call(self, x):
        # A raw TensorFlow op: the call cannot be traced on symbolic tensors.
        return self.head(tf.reduce_mean(self.conv(x), axis=(1, 2)))


def compiled(model):
    model.compile("adam", "mse")
    return model


def data(n=16):
    return rand((n, 8, 8, 3)), rand((n, 3), 1)


def snapshot(model):
    try:
        config = json.dumps(model.get_config(), sort_keys=True, default=str)
    except Exception:  # subclassed models have no config
        config = None
    return config, [np.array(w) for w in model.get_weights()]


def assert_unchanged(model, before):
    config, weights = snapshot(model)
    assert config == before[0], "the model's architecture changed"
    assert len(weights) == len(before[1])
    for a, b in zip(weights, before[1]):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------- the rows
# id -> (model factory, call(model), error class, message regex)


def _subclassed():
    model = Subclassed()
    model(rand((1, 8, 8, 3)))
    return compiled(model)


def _blocked():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, name="conv_a")(inputs)
    x = layers.LayerNormalization(axis=(1, 2, 3), name="gn")(x)
    return compiled(keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling2D()(x))))


def _unbuilt():
    model = keras.Sequential([layers.Conv2D(4, 3), layers.GlobalAveragePooling2D(), layers.Dense(3)], name="not_built")
    return compiled(model)


ROWS = {
    "subclassed-model": (
        _subclassed, lambda m: kt.TaylorPrunableModel(m), kt.UnsupportedModelError, "my_subclassed.*subclassed",
    ),
    "subclassed-model-compress": (
        _subclassed, lambda m: kt.compress(m, data(), verbose=0), kt.UnsupportedModelError, "my_subclassed",
    ),
    "unbuilt-model": (
        _unbuilt, lambda m: kt.TaylorPrunableModel(m), kt.UnsupportedModelError, "not_built.*not built",
    ),
    "unbuilt-model-compress": (
        _unbuilt, lambda m: kt.compress(m, data(), verbose=0), kt.UnsupportedModelError, "not_built",
    ),
    "not-a-model": (
        lambda: None, lambda m: kt.TaylorPrunableModel("model.keras"), kt.UnsupportedModelError, "keras.Model, got str",
    ),
    "nothing-prunable": (
        _blocked, lambda m: kt.TaylorPrunableModel(m), kt.NothingPrunableError, "conv_a.*'gn'",
    ),
    "nothing-prunable-compress": (
        _blocked, lambda m: kt.compress(m, data(), verbose=0), kt.NothingPrunableError, "conv_a",
    ),
    "goal-out-of-range": (
        lambda: compiled(tiny_cnn()), lambda m: kt.compress(m, data(), goal=1.0, verbose=0), kt.InvalidArgumentError, "goal",
    ),
    "increment-out-of-range": (
        lambda: compiled(tiny_cnn()), lambda m: kt.compress(m, data(), increment=-0.1, verbose=0), kt.InvalidArgumentError, "increment",
    ),
    "empty-dataset": (
        lambda: compiled(tiny_cnn()),
        lambda m: kt.compress(m, tf.data.Dataset.from_tensor_slices(data()).take(0).batch(4), verbose=0),
        kt.InvalidArgumentError, "ds is an empty dataset",
    ),
    "empty-arrays": (
        lambda: compiled(tiny_cnn()), lambda m: kt.compress(m, data(0), verbose=0), kt.InvalidArgumentError, "ds holds no samples",
    ),
    "dataset-without-targets": (
        lambda: compiled(tiny_cnn()),
        lambda m: kt.compress(m, tf.data.Dataset.from_tensor_slices(data()[0]).batch(4), verbose=0),
        kt.InvalidArgumentError, r"ds must yield \(x, y\)",
    ),
    "dataset-wrong-shape": (
        lambda: compiled(tiny_cnn()),
        lambda m: kt.compress(m, (rand((16, 9, 9, 3)), rand((16, 3))), verbose=0),
        kt.InvalidArgumentError, r"ds: x batches have shape .* expects",
    ),
    "validation-wrong-structure": (
        lambda: compiled(tiny_cnn()),
        lambda m: kt.compress(m, data(), validation_data=[data()[0], data()[0], data()[1], data()[1]], verbose=0),
        kt.InvalidArgumentError, "validation_data must be",
    ),
    "uncompiled-model": (
        tiny_cnn, lambda m: kt.compress(m, data(), verbose=0), kt.PruningStateError, "not compiled",
    ),
    "update-score-without-loss": (
        tiny_cnn, lambda m: kt.TaylorPrunableModel(m).update_score(*data(2)), kt.PruningStateError, "loss",
    ),
    "unknown-threshold-metric": (
        lambda: compiled(tiny_cnn()),
        lambda m: kt.compress(m, data(), validation_data=data(), validation_threshold=0.5, metric="auc", verbose=0),
        kt.InvalidArgumentError, "metric 'auc'.*available",
    ),
    "max-to-prune-not-positive": (
        tiny_cnn, lambda m: kt.TaylorPrunableModel(m, criterion="l1").update_prunables(max_to_prune=0),
        kt.InvalidArgumentError, "max_to_prune",
    ),
    "strip-plain-model": (
        tiny_cnn, lambda m: kt.strip_pruning(m), kt.UnsupportedModelError, "TaylorPrunableModel",
    ),
    "checkpoint-of-another-call": (
        lambda: compiled(tiny_cnn()), None, kt.CheckpointError, "goal",
    ),
    "callback-without-gathering": (
        tiny_cnn, lambda m: _fit_with_callback_not_gathering(m), kt.PruningStateError, "gather_scores=False",
    ),
    "gather-scores-not-bool": (
        tiny_cnn, lambda m: setattr(kt.TaylorPrunableModel(m), "gather_scores", "no"), kt.InvalidArgumentError,
        "gather_scores must be True or False",
    ),
    "non-finite-data": (
        lambda: compiled(tiny_cnn()),
        lambda m: kt.compress(m, (np.where(np.arange(16)[:, None, None, None] == 3, np.nan, data()[0]), data()[1]), verbose=0),
        kt.InvalidArgumentError, "ds: x holds 192 non-finite",
    ),
    "infinite-dataset": (
        lambda: compiled(tiny_cnn()),
        lambda m: kt.compress(m, tf.data.Dataset.from_tensor_slices(data()).batch(4).repeat(), verbose=0),
        kt.InvalidArgumentError, "ds is an infinite dataset.*steps_per_epoch",
    ),
    "custom-train-step": (
        lambda: _custom_step(), lambda m: kt.compress(m, data(), verbose=0), kt.UnsupportedModelError,
        "my_custom.*overrides train_step",
    ),
    "compiled-without-loss": (
        lambda: _compiled_without_loss(), lambda m: kt.compress(m, data(), verbose=0), kt.PruningStateError,
        "compiled without a loss",
    ),
    "misspelled-metric": (
        lambda: compiled(tiny_cnn()), lambda m: kt.compress(m, data(), metric="val_loss", verbose=0),
        kt.InvalidArgumentError, "Drop the 'val_' prefix: metric='loss'",
    ),
    "bad-seed": (
        lambda: compiled(tiny_cnn()), lambda m: kt.compress(m, data(), seed=-1, verbose=0), kt.InvalidArgumentError, "seed",
    ),
}


class _CustomStep(keras.Model):
    def train_step(self, data):
        return super().train_step(data)


def _custom_step():
    inner = tiny_cnn()
    model = _CustomStep(inner.inputs, inner.outputs, name="my_custom")
    model.compile("adam")
    return model


def _compiled_without_loss():
    model = tiny_cnn()
    model.compile("adam")
    return model


def _fit_with_callback_not_gathering(model):
    pm = kt.TaylorPrunableModel(model)
    pm.compile("adam", "mse")
    pm.gather_scores = False
    pm.fit(*data(), batch_size=8, callbacks=[kt.TaylorPruningCallback(frequency=1, verbose=0)], verbose=0)


@pytest.mark.parametrize("row", sorted(ROWS))
def test_bad_input_is_answered_and_model_unchanged(row, tmp_path):
    factory, call, error, pattern = ROWS[row]
    model = factory()
    before = snapshot(model) if model is not None else None
    if row == "checkpoint-of-another-call":
        kt.compress(model, data(), goal=0.2, fine_tune_epochs=0, max_iterations=1, checkpoint_dir=tmp_path, verbose=0)
        before = snapshot(model)

        def call(m):
            return kt.compress(m, data(), goal=0.3, fine_tune_epochs=0, max_iterations=1, checkpoint_dir=tmp_path, verbose=0)

    with pytest.raises(error, match=pattern) as info:
        call(model)
    assert isinstance(info.value, (ValueError, TypeError))
    assert isinstance(info.value, kt.KerasTaylorError)
    if model is not None:
        assert_unchanged(model, before)


def test_non_finite_data_stops_with_a_reason_and_returns_the_last_good_model():
    model = compiled(tiny_cnn())
    before = snapshot(model)
    x, y = data(32)
    # Past the first batches that compress reads up front (those are the
    # `non-finite-data` row): found while scoring or fine-tuning.
    x[30, 2, 2, 0] = np.nan
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    pruned, info = kt.compress(model, ds, goal=0.5, increment=0.1, verbose=0)
    assert info.stop_reason == StopReason.NON_FINITE
    assert info.returned_iteration == 0
    assert all(np.isfinite(w).all() for w in pruned.get_weights())
    assert_unchanged(model, before)
    # (a non-finite loss from good data: tests/compress/test_training.py::
    # test_compress_stops_on_non_finite_loss_and_keeps_last_good_model)


def test_other_backend_is_an_import_error():
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", "import keras_taylor"], capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "TensorFlow backend" in out.stderr and "jax" in out.stderr


def test_keras_file_that_is_not_a_model(tmp_path, capsys):
    junk = tmp_path / "junk.keras"
    junk.write_text("not a zip")
    assert cli.main(["analyze", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "could not be loaded as a Keras model" in err and "Traceback" not in err
    # Keras's own loader says so with a ValueError, too.
    with pytest.raises(ValueError):
        keras.models.load_model(junk, safe_mode=True)


def test_docs_table_lists_every_row():
    text = DOC.read_text()
    for row in ROWS:
        assert f"`{row}`" in text, f"docs/errors.md has no row {row}"
    for name in (
        "test_non_finite_data_stops_with_a_reason_and_returns_the_last_good_model",
        "test_other_backend_is_an_import_error",
        "test_keras_file_that_is_not_a_model",
    ):
        assert name in text
