"""Pruning inside training: train_step scores, the callback, kt.compress."""

import math

import numpy as np
import pytest

import keras
import tensorflow as tf
import keras_taylor as kt

from keras_taylor.compression import loop, phases
from keras_taylor.compression.stop import StopReason

from helpers import compiled, small_cnn, toy_data

L = keras.layers


# --------------------------------------------------------------- train_step
def test_fit_scores_equal_update_score_when_weights_do_not_move():
    x, y = toy_data(32)
    model = small_cnn()
    pm = kt.TaylorPrunableModel(model)
    pm.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    pm.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    ref = kt.TaylorPrunableModel(model)
    ref.update_score(x, y, loss="sparse_categorical_crossentropy", training=True)
    assert pm.score_count.numpy() == ref.score_count.numpy() == 32
    prunable = pm.channel_graph.unit_prunable
    np.testing.assert_allclose(pm.scores[prunable], ref.scores[prunable], rtol=1e-4, atol=1e-9)
    assert np.all(pm.scores[prunable] >= 0) and pm.scores[prunable].max() > 0


def test_fit_trains_weights_and_gathers_scores_in_one_pass():
    x, y = toy_data()
    pm = kt.TaylorPrunableModel(small_cnn())
    compiled(pm)
    before = [w.copy() for w in pm.get_weights()]
    pm.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, pm.get_weights()))
    assert pm.score_count.numpy() == 64


def test_l1_model_trains_without_gathering():
    x, y = toy_data()
    pm = compiled(kt.TaylorPrunableModel(small_cnn(), criterion="l1"))
    pm.fit(x, y, batch_size=16, verbose=0)
    assert pm.score_count.numpy() == 0
    assert pm.update_prunables(2) == 2


def test_gather_scores_off_trains_alike_without_scores_and_switches_back():
    x, y = toy_data()
    model = small_cnn()
    trained = {}
    for gather in (True, False):
        keras.utils.set_random_seed(3)
        pm = kt.TaylorPrunableModel(model)
        pm.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
        alive = pm.alive
        alive[pm.channel_graph.prunable_units[0]] = False
        pm.set_unit_alive(alive)  # a mask that multiplies
        pm.gather_scores = gather
        pm.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
        assert (pm.score_count.numpy() > 0) == gather
        trained[gather] = pm
    # The score arithmetic never touches the weights: both train alike.
    for a, b in zip(trained[True].net.get_weights(), trained[False].net.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    pm = trained[False]
    pm.gather_scores = True  # a traced step is replaced, not reused
    pm.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert pm.score_count.numpy() == 64
    pm.update_score(x[:8], y[:8])  # update_score scores whatever the setting
    pm.gather_scores = False
    assert pm.score_count.numpy() == 72


@pytest.mark.parametrize("score_batches, gathers", [(None, True), (2, False)])
def test_compress_fine_tunes_without_gathering_when_fresh_scores_replace_them(score_batches, gathers):
    x, y = toy_data()
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            seen.append((self.model.gather_scores, float(self.model.score_count.numpy())))

    kt.compress(compiled(small_cnn()), (x, y), goal=0.3, increment=0.15, score_batches=score_batches,
                batch_size=16, callbacks=[Probe()], verbose=0, rebuild_threshold=0)
    assert len(seen) == 2
    assert all(flag == gathers and (count > 0) == gathers for flag, count in seen), seen


def test_seeded_compress_repeats_and_sets_tensorflow_seed_once(monkeypatch):
    import tensorflow as tf

    calls = []
    set_seed = tf.random.set_seed
    monkeypatch.setattr(tf.random, "set_seed", lambda value: (calls.append(value), set_seed(value)))
    x, y = toy_data()
    model = compiled(small_cnn())
    runs = []
    for before in (10, 11):
        keras.utils.set_random_seed(before)  # a run must not depend on the state before it
        calls.clear()
        pruned, info = kt.compress(model, (x, y), goal=0.4, increment=0.1, batch_size=16, seed=3,
                                   verbose=0, rebuild_threshold=0.25)
        # Each tf.random.set_seed empties TensorFlow's kernel cache, and every
        # traced step would be rebuilt on its next call.
        assert len(calls) == 1 and len(info.pruning_history) == 5, (calls, info.pruning_history)
        runs.append((pruned, info))
    (a, info_a), (b, info_b) = runs
    np.testing.assert_array_equal(info_a.pruning_history.values, info_b.pruning_history.values)
    np.testing.assert_allclose(info_a.training_history["loss"], info_b.training_history["loss"], rtol=1e-5)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- callback
def test_callback_prunes_every_n_steps_within_start_stop():
    x, y = toy_data(64)
    pm = compiled(kt.TaylorPrunableModel(small_cnn()))
    cb = kt.TaylorPruningCallback(frequency=2, amount=1, start_step=2, stop_step=7, verbose=0)
    history = pm.fit(x, y, batch_size=8, epochs=1, callbacks=[cb], verbose=0)
    assert [step for step, _, _ in cb.events] == [2, 4, 6]
    assert int((~pm.alive & pm.channel_graph.unit_prunable).sum()) == 3
    assert history.history["num_learnables"][-1] == pm.num_learnables
    assert math.isclose(history.history["learnables_reduction"][-1], pm.learnables_reduction)


def test_callback_epoch_frequency_fraction_amount_and_goal():
    x, y = toy_data(64)
    pm = compiled(kt.TaylorPrunableModel(small_cnn(filters=16)))
    start = pm.num_prunables
    cb = kt.TaylorPruningCallback(frequency="epoch", amount=0.25, goal=0.3, verbose=0)
    history = pm.fit(x, y, batch_size=16, epochs=6, callbacks=[cb], verbose=0)
    per_event = round(0.25 * start)
    assert all(n == per_event for _, n, _ in cb.events)
    assert cb.done_reason == "learnables reduction goal reached"
    # once the goal is met, no further event
    reductions = [r for _, _, r in cb.events]
    assert reductions[-1] >= 0.3 and all(r < 0.3 for r in reductions[:-1])
    assert len(history.history["learnables_reduction"]) == 6


def test_callback_re_estimates_batch_norm_statistics_after_each_event():
    x, y = toy_data(64)
    stats = {}
    for recalibrate in (False, True):
        keras.utils.set_random_seed(2)
        pm = compiled(kt.TaylorPrunableModel(small_cnn(filters=16)))
        cb = kt.TaylorPruningCallback(frequency="epoch", amount=4, verbose=0,
                                      recalibration_data=(x, y) if recalibrate else None, recalibration_batches=3)
        pm.fit(x, y, batch_size=16, epochs=2, callbacks=[cb], verbose=0)
        assert len(cb.events) == 2
        bn = next(layer for layer in pm.net.layers if layer.name.startswith("bn1"))
        stats[recalibrate] = bn.moving_mean.numpy().copy()
        # The last event came after the last step: re-estimating again from
        # the same batches leaves a recalibrated model's statistics alone.
        kt.recalibrate_batch_norm(pm, (x, y), batches=3)
        again = bn.moving_mean.numpy()
        if recalibrate:
            np.testing.assert_allclose(stats[True], again, rtol=1e-5, atol=1e-6)
        else:
            assert not np.allclose(stats[False], again, rtol=1e-3, atol=1e-4)


def test_callback_works_with_early_stopping_checkpoint_and_silence(tmp_path, capsys):
    x, y = toy_data(64)
    pm = compiled(kt.TaylorPrunableModel(small_cnn()))
    path = tmp_path / "ckpt.keras"
    callbacks = [
        kt.TaylorPruningCallback(frequency="epoch", amount=1, verbose=0),
        keras.callbacks.EarlyStopping(monitor="num_learnables", patience=0, mode="max"),
        keras.callbacks.ModelCheckpoint(str(path), monitor="learnables_reduction", mode="max", save_best_only=True),
    ]
    pm.fit(x, y, batch_size=16, epochs=5, callbacks=callbacks, verbose=0)
    assert capsys.readouterr().out == ""
    # EarlyStopping on "num_learnables" (mode max) stops after the first decrease
    assert len(pm.history.history["loss"]) == 2
    restored = keras.models.load_model(path)
    assert isinstance(restored, kt.TaylorPrunableModel)
    np.testing.assert_array_equal(restored.alive, pm.alive)


def test_callback_rejects_plain_model_and_bad_arguments():
    x, y = toy_data(16)
    model = compiled(small_cnn())
    with pytest.raises(TypeError, match="TaylorPrunableModel"):
        model.fit(x, y, callbacks=[kt.TaylorPruningCallback()], verbose=0)
    for kwargs, word in [
        (dict(frequency=0), "frequency"),
        (dict(amount=0), "amount"),
        (dict(amount=1.5), "amount"),
        (dict(goal=1.0), "goal"),
        (dict(start_step=5, stop_step=5), "start_step"),
        (dict(recalibration_batches=0), "recalibration_batches"),
        (dict(recalibration_batches=True), "recalibration_batches"),
        (dict(recalibration_data="images"), "recalibration_data"),
        (dict(recalibration_data=(x[:0], y[:0])), "recalibration_data holds no samples"),
    ]:
        with pytest.raises(ValueError, match=word):
            kt.TaylorPruningCallback(**kwargs)


# ----------------------------------------------------------------- compress
def test_compress_reaches_goal_and_records_history(capsys):
    x, y = toy_data(96)
    model = compiled(small_cnn(filters=12))
    before = [w.copy() for w in model.get_weights()]
    pruned, info = kt.compress(model, (x, y), goal=0.3, increment=0.1, batch_size=32, validation_data=(x, y), metric="accuracy")
    out = capsys.readouterr().out
    assert info.stop_reason == StopReason.GOAL_REACHED
    assert info.learnables_reduction >= 0.3
    assert "fewer learnable parameters" in out and "Iteration 1:" in out
    ph = info.pruning_history
    assert list(ph.columns) == ["iteration", "num_learnables", "learnables_reduction"]
    assert ph.num_learnables.is_monotonic_decreasing and ph.iteration.tolist() == list(range(len(ph)))
    vh = info.validation_history
    assert list(vh.columns) == ["iteration", "step", "loss", "metric", "is_final"]
    assert vh.groupby("iteration").is_final.sum().eq(1).all()
    assert {"iteration", "epoch", "step", "loss", "accuracy"} <= set(info.training_history.columns)
    learnables = sum(int(np.prod(w.shape)) for w in pruned.trainable_weights)
    assert learnables == ph.num_learnables.iloc[-1]
    assert pruned.compiled and "c1" in info.pruned_layers
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert not any("taylor" in type(layer).__module__ for layer in pruned.layers)
    fig = info.plot()
    assert len(fig.axes) == 2


def test_compress_threshold_returns_most_compressed_passing_model(monkeypatch):
    x, y = toy_data(96)
    model = compiled(small_cnn(filters=12))
    values = iter([0.9, 0.85, 0.8, 0.6, 0.5])  # baseline, iteration 1, 2, 3, ...

    def fake_evaluate(pm, val, metric):
        return 0.1, next(values)

    monkeypatch.setattr(phases, "evaluate", fake_evaluate)
    pruned, info = kt.compress(
        model, (x, y), goal=0.9, increment=0.05, fine_tune_epochs=0, batch_size=32,
        validation_data=(x, y), validation_threshold=0.75, metric="accuracy", verbose=0,
    )
    assert info.stop_reason == StopReason.THRESHOLD_REACHED
    assert info.returned_iteration == 2
    ph = info.pruning_history
    expected = ph.loc[ph.iteration == 2, "num_learnables"].iloc[0]
    assert sum(int(np.prod(w.shape)) for w in pruned.trainable_weights) == expected


def test_compress_returns_the_passing_iteration_as_it_was_after_its_fine_tuning(monkeypatch, tmp_path):
    # Without a checkpoint the passing model is stripped only when the run
    # ends, from a snapshot; with one it is stripped at once. Both must give
    # the model of iteration 2 after its own fine-tuning, although iteration 3
    # went on training (and, masked, pruning) the same model before failing.
    x, y = toy_data(96)

    def run(checkpoint_dir):
        keras.utils.set_random_seed(0)
        model = compiled(small_cnn(filters=12))
        verdicts = iter([True, True, True, False])  # baseline, iteration 1, 2, 3
        monkeypatch.setattr(phases, "meets", lambda value, threshold, minimize: next(verdicts))
        return kt.compress(
            model, (x, y), goal=0.9, increment=0.05, fine_tune_epochs=1, batch_size=32, seed=3,
            validation_data=(x, y), validation_threshold=0.75, metric="accuracy", verbose=0,
            checkpoint_dir=checkpoint_dir, output="last-iteration",
        )

    deferred, info = run(None)
    eager, eager_info = run(str(tmp_path / "ckpt"))
    assert info.returned_iteration == eager_info.returned_iteration == 2
    assert info.pruning_history.num_learnables.iloc[-1] < info.pruning_history.num_learnables.iloc[2]
    assert [w.shape for w in deferred.weights] == [w.shape for w in eager.weights]
    for a, b in zip(deferred.get_weights(), eager.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_compress_first_iteration_failing_returns_the_original(monkeypatch):
    x, y = toy_data(64)
    model = compiled(small_cnn())
    values = iter([0.2, 0.5])  # a loss: rises above the 0.3 threshold at once
    monkeypatch.setattr(phases, "evaluate", lambda pm, val, metric: (0.0, next(values)))
    pruned, info = kt.compress(model, (x, y), goal=0.5, fine_tune_epochs=0, validation_data=(x, y), validation_threshold=0.3, verbose=0)
    assert info.stop_reason == StopReason.THRESHOLD_REACHED
    assert info.returned_iteration == 0 and info.learnables_reduction == 0
    assert pruned is not model and pruned.count_params() == model.count_params()
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_compress_stops_when_nothing_is_prunable():
    x, y = toy_data(32)
    inputs = keras.Input((8, 8, 1))
    h = L.Conv2D(2, 3, name="c")(inputs)
    model = compiled(keras.Model(inputs, L.Dense(3, activation="softmax")(L.GlobalAveragePooling2D()(h))))
    pruned, info = kt.compress(model, (x, y), goal=0.9, increment=0.5, fine_tune_epochs=0, verbose=0)
    assert info.stop_reason == StopReason.NOTHING_PRUNABLE
    assert pruned.get_layer("c").filters == 1


def test_compress_stops_on_non_finite_loss_and_keeps_last_good_model():
    x, _ = toy_data(64)
    model = small_cnn(filters=12)
    model.compile("adam", "mse")
    targets = np.zeros((64, 3), "float32")
    # A corrupt label makes the loss NaN; in the 4th batch, past those that
    # compress reads for NaN up front (tests/workflows/test_workflows.py has those).
    targets[60] = np.nan
    ds = tf.data.Dataset.from_tensor_slices((x, targets)).batch(16)
    pruned, info = kt.compress(model, ds, goal=0.5, increment=0.1, verbose=0)
    assert info.stop_reason == StopReason.NON_FINITE
    assert info.returned_iteration == 0
    assert all(np.isfinite(w).all() for w in pruned.get_weights())


def test_compress_accepts_tf_data_and_loss_threshold():
    import tensorflow as tf

    x, y = toy_data(64)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = compiled(small_cnn())
    pruned, info = kt.compress(model, ds, goal=0.2, increment=0.1, validation_data=ds, validation_threshold=100.0, verbose=0)
    assert info.metric == "loss" and info.stop_reason == StopReason.GOAL_REACHED
    assert phases.lower_is_better("val_loss") and not phases.lower_is_better("accuracy")


def _compress_counting_rebuilds(monkeypatch, rebuild_threshold, **kwargs):
    wraps = []
    real = loop.TaylorPrunableModel

    def counting(*args, **kw):
        wraps.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(loop, "TaylorPrunableModel", counting)
    x, y = toy_data(96)
    keras.utils.set_random_seed(3)
    model = small_cnn(filters=12)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy", metrics=["accuracy"])
    pruned, info = kt.compress(
        model, (x, y), goal=0.4, increment=0.1, batch_size=32, validation_data=(x, y), metric="accuracy",
        seed=5, verbose=0, rebuild_threshold=rebuild_threshold, **kwargs,
    )
    return pruned, info, len(wraps) - 1  # the first wrap is not a rebuild


def test_compress_rebuilds_once_the_masked_share_reaches_the_threshold(monkeypatch):
    _, info, rebuilds = _compress_counting_rebuilds(monkeypatch, 0.0)
    iterations = int(info.pruning_history.iteration.max())
    assert iterations >= 3 and rebuilds == iterations  # MATLAB's way: after every step
    _, info, rebuilds = _compress_counting_rebuilds(monkeypatch, 1.0)
    assert rebuilds == 0
    _, info, rebuilds = _compress_counting_rebuilds(monkeypatch, 0.25)
    ph = info.pruning_history
    # Kept masked while under a quarter of the learnables were masked, then rebuilt.
    assert 1 <= rebuilds < int(ph.iteration.max())


def test_compress_traces_each_step_of_every_new_model_once(monkeypatch):
    # Keras creates metric and optimizer variables while tracing a model's
    # first step, which makes tf.function trace it again; compress builds
    # them beforehand. The wrapped steps run in Python only while tracing.
    traces = {"train_step": 0, "test_step": 0}
    for name in traces:
        original = getattr(kt.TaylorPrunableModel, name)

        def counting(self, data, _original=original, _name=name):
            traces[_name] += 1
            return _original(self, data)

        monkeypatch.setattr(kt.TaylorPrunableModel, name, counting)
    _, info, rebuilds = _compress_counting_rebuilds(monkeypatch, 0.0)
    iterations = int(info.pruning_history.iteration.max())
    assert rebuilds == iterations >= 3
    # Every iteration fine-tunes a rebuilt model; the first model only validates.
    assert traces == {"train_step": iterations, "test_step": iterations + 1}


def test_masked_and_rebuilt_fine_tuning_compute_the_same():
    # Dropout-free model: a masked filter contributes exact zeros, so fine-tuning
    # the masked model must follow the stripped one up to float rounding.
    results = {}
    for threshold in (0.0, 1.0):
        x, y = toy_data(96)
        keras.utils.set_random_seed(3)
        model = small_cnn(filters=12)
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy", metrics=["accuracy"])
        results[threshold] = kt.compress(
            model, (x, y), goal=0.4, increment=0.1, batch_size=32, validation_data=(x, y), metric="accuracy",
            fine_tune_epochs=2, seed=5, verbose=0, rebuild_threshold=threshold,
        )
    (rebuilt, info_r), (masked, info_m) = results[0.0], results[1.0]
    assert info_r.pruning_history.equals(info_m.pruning_history)
    np.testing.assert_allclose(info_r.validation_history.loss, info_m.validation_history.loss, rtol=1e-4, atol=1e-5)
    assert [w.shape for w in rebuilt.get_weights()] == [w.shape for w in masked.get_weights()]
    for a, b in zip(rebuilt.get_weights(), masked.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(goal=0), "goal"),
        (dict(goal=1.2), "goal"),
        (dict(increment=0), "increment"),
        (dict(fine_tune_epochs=-1), "fine_tune_epochs"),
        (dict(output="best"), "output"),
        (dict(validation_threshold=0.5), "validation_data"),
        (dict(score_batches=0), "score_batches"),
        (dict(rebuild_threshold=-0.1), "rebuild_threshold"),
        (dict(rebuild_threshold=1.5), "rebuild_threshold"),
        (dict(rebuild_threshold=True), "rebuild_threshold"),
    ],
)
def test_compress_argument_errors(kwargs, word):
    x, y = toy_data(16)
    with pytest.raises(ValueError, match=word):
        kt.compress(compiled(small_cnn()), (x, y), verbose=0, **kwargs)


def test_compress_data_and_compile_errors():
    x, y = toy_data(16)
    with pytest.raises(ValueError, match="not compiled"):
        kt.compress(small_cnn(), (x, y), verbose=0)
    with pytest.raises(ValueError, match="no samples"):
        kt.compress(compiled(small_cnn()), (x[:0], y[:0]), verbose=0)
    with pytest.raises(ValueError, match="expects"):
        kt.compress(compiled(small_cnn()), (x[..., 0], y), verbose=0)
    with pytest.raises(ValueError, match="different numbers"):
        kt.compress(compiled(small_cnn()), (x, y[:3]), verbose=0)
    with pytest.raises(ValueError, match="available"):
        kt.compress(compiled(small_cnn()), (x, y), validation_data=(x, y), metric="auc", verbose=0)
