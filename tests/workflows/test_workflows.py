"""Real training workflows (issue 27): each case ends with a usable model or a clear error.

Infinite datasets, custom losses and train_steps, the callback beside
ModelCheckpoint/EarlyStopping, steps_per_execution, metric direction,
non-finite values, class_weight, unreachable goals and thresholds, frozen
layers. The model passed in stays unchanged in every case.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

import keras

import keras_taylor as kt
from keras_taylor import cli
from keras_taylor.compression.stop import StopReason

from helpers import compiled, small_cnn, toy_data


def snapshot(model):
    return json.dumps(model.get_config(), sort_keys=True, default=str), [np.array(w) for w in model.get_weights()]


def assert_unchanged(model, before):
    config, weights = snapshot(model)
    assert config == before[0]
    for a, b in zip(weights, before[1]):
        np.testing.assert_array_equal(a, b)


def finite(model):
    return all(np.isfinite(w).all() for w in model.get_weights())


QUICK = dict(goal=0.2, increment=0.2, fine_tune_epochs=0, recalibration_batches=0, verbose=0)


# ------------------------------------------------------- 1. infinite datasets
def test_infinite_dataset_without_steps_is_refused_not_hung():
    x, y = toy_data(32)
    model = compiled(small_cnn())
    before = snapshot(model)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(kt.InvalidArgumentError, match="ds is an infinite dataset.*steps_per_epoch"):
        kt.compress(model, ds.repeat(), verbose=0)
    with pytest.raises(kt.InvalidArgumentError, match="validation_data is an infinite dataset.*validation_steps"):
        kt.compress(model, ds, validation_data=ds.repeat(), verbose=0)
    with pytest.raises(kt.InvalidArgumentError, match="steps_per_epoch must be a positive int"):
        kt.compress(model, ds.repeat(), steps_per_epoch=0, verbose=0)
    assert_unchanged(model, before)


def test_infinite_datasets_with_step_bounds_compress():
    x, y = toy_data(32)
    model = compiled(small_cnn())
    before = snapshot(model)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    pruned, info = kt.compress(
        model, ds.repeat(), steps_per_epoch=3, validation_data=ds.repeat(), validation_steps=2,
        goal=0.2, increment=0.1, fine_tune_epochs=1, verbose=0,
    )
    assert info.stop_reason == StopReason.GOAL_REACHED
    per_iteration = info.training_history.groupby("iteration").step.max()
    assert (per_iteration == 3).all()
    assert_unchanged(model, before)


# ----------------------------------------- 2. custom losses, metrics, optimizer
def focal_loss(y_true, y_pred):  # a plain function, never registered with Keras
    y_true = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), 3)
    p = keras.ops.clip(y_pred, 1e-6, 1.0)
    return -keras.ops.sum(y_true * (1 - p) ** 2 * keras.ops.log(p), axis=-1)


class HalfMAE(keras.metrics.Mean):  # an unregistered Metric subclass
    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(keras.ops.max(y_pred, axis=-1) * 0.5)


class Warmup(keras.optimizers.schedules.LearningRateSchedule):  # an unregistered schedule
    def __call__(self, step):
        return 1e-2 * keras.ops.minimum(1.0, (keras.ops.cast(step, "float32") + 1) / 10)


def test_custom_loss_metric_and_optimizer_objects_carry_over():
    x, y = toy_data(32)
    model = small_cnn()
    model.compile(keras.optimizers.Adam(Warmup()), focal_loss, metrics=[HalfMAE(name="half"), "accuracy"])
    before = snapshot(model)
    pruned, info = kt.compress(model, (x, y), validation_data=(x, y), metric="accuracy", **QUICK)
    assert info.stop_reason == StopReason.GOAL_REACHED
    assert pruned.compiled and pruned.loss is focal_loss
    assert isinstance(pruned.optimizer.learning_rate_schedule if hasattr(pruned.optimizer, "learning_rate_schedule") else pruned.optimizer._learning_rate, Warmup)
    assert "half" in pruned.evaluate(x, y, verbose=0, return_dict=True)
    # strip_pruning keeps its docs' promise: compiled like the prunable model
    pm = kt.TaylorPrunableModel(small_cnn(), criterion="l1")
    pm.compile("adam", lambda t, p: keras.ops.mean((p - 0.5) ** 2), metrics=[HalfMAE(name="half")])
    small = kt.strip_pruning(pm)
    assert small.compiled and small.loss is pm.loss
    assert_unchanged(model, before)


# ------------------------------------------------------ 3. custom train_step
class CustomStep(keras.Model):
    """Keras's 'customize what happens in fit()' pattern, built functionally."""

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = focal_loss(y, self(x, training=True))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": keras.ops.mean(loss)}


def custom_step_model():
    inner = small_cnn()
    return CustomStep(inner.inputs, inner.outputs, name="custom_step")


@pytest.mark.parametrize("with_loss", [False, True])
def test_custom_train_step_is_refused_naming_it(with_loss):
    x, y = toy_data(16)
    model = custom_step_model()
    model.compile("adam", focal_loss if with_loss else None)
    before = snapshot(model)
    with pytest.raises(kt.UnsupportedModelError, match="overrides train_step") as info:
        kt.compress(model, (x, y), verbose=0)
    assert "compile() the model" not in str(info.value)
    assert "keras.Model(model.inputs, model.outputs)" in str(info.value)
    assert_unchanged(model, before)


def test_custom_train_step_worked_example_of_the_docs():
    x, y = toy_data(16)
    model = custom_step_model()
    model.compile("adam")
    inner = keras.Model(model.inputs, model.outputs)
    inner.compile("adam", loss=focal_loss)
    pruned, info = kt.compress(inner, (x, y), **QUICK)
    again = CustomStep(pruned.inputs, pruned.outputs)
    again.compile("adam")
    again.fit(x, y, epochs=1, verbose=0)
    assert again.count_params() < model.count_params()


def test_model_compiled_without_a_loss_is_refused_plainly():
    x, y = toy_data(16)
    model = small_cnn()
    model.compile("adam")
    with pytest.raises(kt.PruningStateError, match="compiled without a loss"):
        kt.compress(model, (x, y), verbose=0)
    pm = kt.TaylorPrunableModel(small_cnn())
    pm.compile("adam")
    with pytest.raises(kt.PruningStateError, match="compiled without a loss") as info:
        pm.update_score(x[:4], y[:4])
    assert "compile() the model" not in str(info.value)


# ----------------------------------------- 4. callback beside ModelCheckpoint
class Recorder(keras.callbacks.Callback):
    """At each epoch end: the logged val_loss, and that of the model as it is."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y, self.rows = x, y, []

    def on_epoch_end(self, epoch, logs=None):
        predictions = self.model(self.x, training=False)
        loss = float(keras.losses.sparse_categorical_crossentropy(self.y, predictions).numpy().mean())
        self.rows.append((logs["val_loss"], loss, logs["num_learnables"], self.model.num_learnables))


def test_callback_scores_belong_to_the_model_saved_and_restored(tmp_path):
    x, y = toy_data(64)
    keras.utils.set_random_seed(0)
    pm = compiled(kt.TaylorPrunableModel(small_cnn(filters=12)), metrics=[])
    path = tmp_path / "best.keras"
    recorder = Recorder(x[:32], y[:32])
    callbacks = [
        kt.TaylorPruningCallback(frequency="epoch", amount=3, verbose=0),
        keras.callbacks.ModelCheckpoint(str(path), monitor="val_loss", save_best_only=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True),
        recorder,
    ]
    pm.fit(x, y, batch_size=16, epochs=3, validation_data=(x[:32], y[:32]), callbacks=callbacks, verbose=0)
    for logged, actual, logged_count, count in recorder.rows:
        assert logged == pytest.approx(actual, rel=1e-4, abs=1e-5)
        assert logged_count == count
    best = min(row[0] for row in recorder.rows)
    saved = keras.models.load_model(path)
    assert saved.evaluate(x[:32], y[:32], verbose=0) == pytest.approx(best, rel=1e-4, abs=1e-5)
    assert pm.evaluate(x[:32], y[:32], verbose=0) == pytest.approx(best, rel=1e-4, abs=1e-5)


# --------------------------------------------------- 5. steps_per_execution
def test_callback_schedule_counts_training_steps_with_steps_per_execution():
    x, y = toy_data(80)
    pm = compiled(kt.TaylorPrunableModel(small_cnn(filters=12)), steps_per_execution=5)
    cb = kt.TaylorPruningCallback(frequency=4, amount=1, verbose=0)
    pm.fit(x, y, batch_size=4, epochs=1, callbacks=[cb], verbose=0)  # 20 steps, 4 calls
    # events due at steps 4, 8, 12, 16, 20; the two in steps 16-20 come together at step 20
    assert [(step, n) for step, n, _ in cb.events] == [(5, 1), (10, 1), (15, 1), (20, 2)]
    pm = compiled(kt.TaylorPrunableModel(small_cnn(filters=12)), steps_per_execution=5)
    cb = kt.TaylorPruningCallback(frequency=4, amount=1, start_step=5, stop_step=17, verbose=0)
    pm.fit(x, y, batch_size=4, epochs=1, callbacks=[cb], verbose=0)
    assert [(step, n) for step, n, _ in cb.events] == [(10, 1), (15, 1), (20, 1)]  # due at 8, 12, 16


def test_compress_training_history_counts_steps_with_steps_per_execution():
    x, y = toy_data(32)
    model = compiled(small_cnn(), steps_per_execution=2)
    _, info = kt.compress(model, (x, y), batch_size=4, goal=0.1, increment=0.1, fine_tune_epochs=1, verbose=0)
    assert info.training_history.step.max() == 8  # 32 samples in batches of 4
    assert list(info.training_history.step) == [2, 4, 6, 8]


# ------------------------------------------------------- 6. metric direction
@pytest.mark.parametrize("metric", ["kl_divergence", "poisson", "log_cosh", "false_positives"])
def test_metric_direction_comes_from_keras(metric):
    x, y = toy_data(32)
    objects = {"log_cosh": keras.metrics.LogCoshError(), "false_positives": keras.metrics.FalsePositives()}
    model = small_cnn(activation="sigmoid")
    model.compile("adam", "mse", metrics=[objects.get(metric, metric)])
    name = {"log_cosh": "logcosh"}.get(metric, metric)
    target = np.eye(3, dtype="float32")[y]
    # Lower is better for every one of them: a threshold far above is always met.
    _, info = kt.compress(model, (x, target), validation_data=(x, target), validation_threshold=1e9, metric=name, **QUICK)
    assert info.stop_reason == StopReason.GOAL_REACHED and info.learnables_reduction > 0


def test_metric_mode_misspelling_and_val_prefix():
    x, y = toy_data(32)
    model = compiled(small_cnn())
    before = snapshot(model)
    _, info = kt.compress(
        model, (x, y), validation_data=(x, y), validation_threshold=1e9, metric="loss", mode="max", **QUICK
    )
    assert info.stop_reason == StopReason.BASELINE_MISSES
    with pytest.raises(kt.InvalidArgumentError, match="metric 'acuracy'.*available"):
        kt.compress(model, (x, y), metric="acuracy", verbose=0)  # no validation data
    with pytest.raises(kt.InvalidArgumentError, match="Drop the 'val_' prefix: metric='accuracy'"):
        kt.compress(model, (x, y), validation_data=(x, y), metric="val_accuracy", verbose=0)
    with pytest.raises(kt.InvalidArgumentError, match="mode must be one of"):
        kt.compress(model, (x, y), metric="accuracy", mode="up", verbose=0)
    assert_unchanged(model, before)


# ---------------------------------------------------------- 7. non-finite
def test_non_finite_inputs_are_refused_naming_the_argument(tmp_path, capsys):
    x, y = toy_data(32)
    bad = x.copy()
    bad[3, 2, 2, 0] = np.nan
    model = compiled(small_cnn())
    before = snapshot(model)
    ds = tf.data.Dataset.from_tensor_slices((bad, y)).batch(8)
    with pytest.raises(kt.InvalidArgumentError, match=r"ds \(batch 1\): x holds 1 non-finite"):
        kt.compress(model, ds, verbose=0)
    with pytest.raises(kt.InvalidArgumentError, match="validation_data: x holds"):
        kt.compress(model, (x, y), validation_data=(bad, y), verbose=0)
    with pytest.raises(kt.InvalidArgumentError, match="ds: y holds"):
        kt.compress(model, (x, np.where(np.arange(32) == 5, np.inf, y)), verbose=0)
    pm = kt.TaylorPrunableModel(small_cnn())
    with pytest.raises(kt.InvalidArgumentError, match="update_score: x holds"):
        pm.update_score(bad[:8], y[:8], loss="sparse_categorical_crossentropy")
    with pytest.raises(kt.InvalidArgumentError, match="recalibration_data: x holds"):
        kt.TaylorPruningCallback(recalibration_data=(bad, y))
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x_train=bad, y_train=y)
    code = cli.main(["compress", str(tmp_path / "m.keras"), "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "o.keras")])
    assert code == 2 and "x_train holds 1 non-finite" in capsys.readouterr().err
    assert_unchanged(model, before)


class PoisonBatchNorm(keras.callbacks.Callback):
    """Makes the moving variance NaN at the end of the `at`-th fine-tuning."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0

    def on_train_end(self, logs=None):
        self.calls += 1
        if self.calls == self.at:
            bn = next(layer for layer in self.model.net.layers if layer.name == "bn1")
            bn.moving_variance.assign(np.full(bn.moving_variance.shape, np.nan, "float32"))


def test_non_finite_weights_after_fine_tuning_return_the_last_good_model():
    x, y = toy_data(32)
    model = compiled(small_cnn(filters=12))
    before = snapshot(model)
    pruned, info = kt.compress(
        model, (x, y), goal=0.5, increment=0.1, fine_tune_epochs=1, recalibration_batches=0,
        callbacks=[PoisonBatchNorm(at=2)], verbose=0,
    )
    assert info.stop_reason == StopReason.NON_FINITE
    assert info.returned_iteration == 1 and 0 < info.learnables_reduction < 0.5
    assert finite(pruned)
    assert_unchanged(model, before)


def test_nan_pixel_past_the_checked_batches_never_returns_non_finite_weights():
    x, y = toy_data(32)
    x[30, 4, 4, 0] = np.nan  # in the 4th batch of 8: past the batches checked up front
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model = compiled(small_cnn(filters=12))
    before = snapshot(model)
    pruned, info = kt.compress(model, ds, goal=0.5, increment=0.1, score_batches=1, verbose=0)
    assert info.stop_reason == StopReason.NON_FINITE
    assert info.returned_iteration == 0 and finite(pruned)
    assert_unchanged(model, before)


def test_callback_refuses_to_prune_on_non_finite_scores():
    x, y = toy_data(32)
    pm = kt.TaylorPrunableModel(small_cnn())
    pm.compile("sgd", "mse")
    target = np.eye(3, dtype="float32")[y]
    target[0, 0] = np.nan  # the loss, its gradients and so the scores become NaN
    cb = kt.TaylorPruningCallback(frequency=2, amount=1, verbose=0)
    with pytest.warns(UserWarning, match="non-finite"):
        pm.fit(x, target, batch_size=8, epochs=1, callbacks=[cb], shuffle=False, verbose=0)
    assert cb.events == [] and "non-finite" in cb.done_reason
    assert pm.alive.all()


# ------------------------------------------------------------- 8. the rest
def test_class_weight_passes_through_to_fine_tuning():
    x, y = toy_data(32)
    model = compiled(small_cnn())
    _, info = kt.compress(model, (x, y), goal=0.1, increment=0.1, class_weight={0: 0.0, 1: 0.0, 2: 0.0}, verbose=0)
    assert (info.training_history.loss == 0).all()


def test_goal_above_max_reduction_is_said_at_the_start():
    x, y = toy_data(16)
    model = compiled(small_cnn())
    with pytest.warns(UserWarning, match="goal 0.99 is above the most filter pruning can remove"):
        kt.compress(model, (x, y), goal=0.99, increment=0.5, fine_tune_epochs=0, max_iterations=1, verbose=0)


def test_threshold_the_unpruned_model_misses_stops_before_pruning():
    x, y = toy_data(32)
    model = compiled(small_cnn())
    pruned, info = kt.compress(
        model, (x, y), validation_data=(x, y), validation_threshold=1.01, metric="accuracy", verbose=0
    )
    assert info.stop_reason == StopReason.BASELINE_MISSES
    assert list(info.pruning_history.iteration) == [0] and info.returned_iteration == 0
    assert pruned.count_params() == model.count_params()


def test_frozen_layers_are_left_alone_on_request():
    x, y = toy_data(32)
    model = compiled(small_cnn(filters=12))
    model.get_layer("c1").trainable = False
    model.get_layer("bn1").trainable = False
    compiled(model)
    kept = [np.array(w) for w in model.get_layer("c1").get_weights()]
    pruned, info = kt.compress(model, (x, y), prune_frozen=False, **QUICK)
    assert info.learnables_reduction > 0
    for a, b in zip(pruned.get_layer("c1").get_weights(), kept):
        np.testing.assert_array_equal(a, b)
    default, _ = kt.compress(model, (x, y), **QUICK)  # documented: frozen layers are pruned too
    assert default.get_layer("c1").filters < 12


def _keep_every_batch(*_):
    return True


def test_callback_epoch_of_unknown_length_prunes_before_the_next_epoch_trains():
    x, y = toy_data(64)
    keras.utils.set_random_seed(0)
    pm = compiled(kt.TaylorPrunableModel(small_cnn(filters=12)), metrics=[])
    # filter() hides the cardinality: Keras learns the epoch's length only at its end
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).filter(_keep_every_batch)
    recorder = Recorder(x[:32], y[:32])
    cb = kt.TaylorPruningCallback(frequency="epoch", amount=2, verbose=0)
    pm.fit(ds, epochs=3, validation_data=(x[:32], y[:32]), callbacks=[cb, recorder], shuffle=False, verbose=0)
    assert len(cb.events) >= 1
    for logged, actual, logged_count, count in recorder.rows:
        assert logged == pytest.approx(actual, rel=1e-4, abs=1e-5)
        assert logged_count == count
