"""`kt.prune_to_latency`: a latency goal checked by timing, with the profile refitted where it erred."""

import keras
import numpy as np
import pytest

import keras_taylor as kt
from helpers import assert_masked_equals_stripped, inputs_like, randomize_weights


def _model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(24, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(16, 1, activation="relu")(x)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    return randomize_weights(keras.Model(inputs, outputs))


class ConcaveTimer:
    """0.2 ms plus a time that falls more slowly than the MACs (MACs ** 0.6).

    A linear latency model fitted over the whole range of widths predicts
    too little time for a half-pruned model (the chord of a concave curve
    lies below it), so a speedup chosen by prediction falls short when timed.
    """

    def __init__(self):
        self.models = 0

    def __call__(self, models, runtime, threads, batch_size):
        self.models += len(models)
        return [2e-4 + 1e-6 * float(kt.analyze(m).multiply_accumulates.sum()) ** 0.6 for m in models]


class DriftedTimer:
    """Linear in the MACs, with a fixed part the profile was not built with (`fixed` seconds)."""

    def __init__(self, fixed):
        self.fixed = fixed

    def __call__(self, models, runtime, threads, batch_size):
        return [self.fixed + 1e-9 * float(kt.analyze(m).multiply_accumulates.sum()) for m in models]


@pytest.fixture()
def pm():
    model = _model()
    pm = kt.TaylorPrunableModel(model)
    x = inputs_like(model, batch=4)
    pm.update_score(x, np.zeros((4, 3)), loss="mse")
    # the per-kind fit alone: its straight line through a concave curve is what the loop must correct
    # (tile given: the fake runtime times whole models only)
    pm.latency_profile = kt.latency_profile(pm, samples=6, cache_dir=False, timer=ConcaveTimer(),
                                            attribute=False, tile=8)
    return pm


def test_prediction_alone_misses_and_measuring_again_meets_the_goal(pm):
    scores = pm.score_sum.numpy(), pm.score_count.numpy()
    once = kt.prune_to_latency(pm, kt.Speedup(2.0), rounds=0, timer=ConcaveTimer())
    assert len(once) == 1 and once[0].speedup < 2.0  # the prediction said 2x

    def restart(profile):
        pm.set_unit_alive(np.ones(pm.channel_graph.num_units, bool))
        pm.score_sum.assign(scores[0])
        pm.score_count.assign(scores[1])
        pm.latency_profile = profile

    # the profile keeps what it learnt: the same goal is now met at once
    restart(pm.latency_profile)
    assert kt.prune_to_latency(pm, kt.Speedup(2.0), rounds=0, timer=ConcaveTimer())[0].speedup >= 2.0

    restart(kt.latency_profile(pm, samples=6, cache_dir=False, timer=ConcaveTimer(), attribute=False, tile=8))
    timer = ConcaveTimer()
    history = kt.prune_to_latency(pm, kt.Speedup(2.0), rounds=3, timer=timer)
    assert len(history) > 1 and history[-1].speedup >= 2.0
    assert timer.models == 2 * len(history)  # the unpruned and the chosen model, each round
    assert history[-1].groups_pruned == int((~pm.alive).sum())  # the last choice is the one applied
    assert float(pm.score_count.numpy().max()) == 0.0  # scores spent, as after update_prunables
    assert_masked_equals_stripped(pm, inputs_like(pm.net, batch=2))


def test_a_latency_budget_is_met_by_measurement(pm):
    history = kt.prune_to_latency(pm, kt.LatencyBudget(ms=0.5), rounds=3, timer=ConcaveTimer())
    assert history[-1].measured_ms <= 0.5


def test_the_timings_refit_the_profile_and_its_cache_entry(tmp_path):
    model = _model()
    pm = kt.TaylorPrunableModel(model)
    pm.update_score(inputs_like(model, batch=4), np.zeros((4, 3)), loss="mse")
    profile = kt.latency_profile(pm, samples=6, cache_dir=tmp_path, timer=ConcaveTimer(), tile=1)
    history = kt.prune_to_latency(pm, kt.Speedup(2.0), profile=profile, rounds=1, timer=ConcaveTimer())
    assert (profile.samples.variant == "timed check").sum() == 2 * len(history)
    assert (profile.samples.weight[profile.samples.variant == "timed check"] > 1).all()
    again = kt.latency_profile(_model(), samples=6, cache_dir=tmp_path, timer=ConcaveTimer(), tile=1)
    assert again.from_cache and len(again.samples) == len(profile.samples)
    assert again.coefficients == pytest.approx(profile.coefficients)


def test_bad_arguments_are_named(pm):
    with pytest.raises(kt.InvalidArgumentError, match="goal"):
        kt.prune_to_latency(pm, 0.5)
    with pytest.raises(kt.InvalidArgumentError, match="rounds"):
        kt.prune_to_latency(pm, kt.Speedup(2.0), rounds=-1)
    pm.latency_profile = None
    with pytest.raises(kt.PruningStateError, match="latency profile"):
        kt.prune_to_latency(pm, kt.Speedup(2.0))


def _compress_to_double_speed(**kwargs):
    """compress to `kt.Speedup(2.0)` with a profile fitted to a timer with no fixed part, then
    timed (by the profile's `timer`) on a runtime with one: the prediction overrates every saving."""
    model = _model()
    model.compile("sgd", "mse")
    x = inputs_like(model, batch=16)
    profile = kt.latency_profile(model, samples=6, cache_dir=False, timer=DriftedTimer(0.0), tile=1)
    unpruned_seconds = DriftedTimer(0.0)([model], "litert", 1, 1)[0]
    runtime = profile.timer = DriftedTimer(0.3 * unpruned_seconds)
    pruned, info = kt.compress(model, (x, np.zeros((16, 3), "float32")), goal=kt.Speedup(2.0), cost=profile,
                               increment=0.1, fine_tune_epochs=0, batch_size=8, recalibration_batches=0,
                               criterion="l1", **kwargs)
    timed = runtime([model, pruned], "litert", 1, 1)
    return timed[0] / timed[1], info


def test_compress_checks_a_latency_goal_by_timing_and_prunes_on_when_it_misses(capsys, monkeypatch):
    from keras_taylor import latency_goal

    speedup, info = _compress_to_double_speed(verbose=1)
    out = capsys.readouterr().out
    assert speedup >= 2.0
    assert "the goal is not met yet, pruning on." in out and "Timed on litert" in out
    assert info.stop_reason == "Goal reached."

    monkeypatch.setattr(latency_goal, "MAX_TIMED_CHECKS", 0)  # the prediction alone decides
    speedup, _ = _compress_to_double_speed(verbose=0)
    assert speedup < 2.0


def test_the_callback_checks_a_latency_goal_by_timing(monkeypatch):
    from keras_taylor import latency_goal

    def fit_to_double_speed():
        model = _model()
        profile = kt.latency_profile(model, samples=6, cache_dir=False, timer=DriftedTimer(0.0), tile=1)
        runtime = profile.timer = DriftedTimer(0.3 * DriftedTimer(0.0)([model], "litert", 1, 1)[0])
        pm = kt.TaylorPrunableModel(model, criterion="l1")
        pm.latency_profile = profile
        pm.compile("sgd", "mse")
        cb = kt.TaylorPruningCallback(frequency=1, amount=1, goal=kt.Speedup(2.0), cost="latency", verbose=0)
        x = inputs_like(model, batch=8)
        pm.fit(x, np.zeros((8, 3)), batch_size=4, epochs=20, callbacks=[cb], verbose=0)
        timed = runtime([model, kt.strip_pruning(pm)], "litert", 1, 1)
        return cb, timed[0] / timed[1]

    cb, speedup = fit_to_double_speed()
    assert cb.done_reason == "goal reached" and speedup >= 2.0 and cb._timed_checks >= 2

    monkeypatch.setattr(latency_goal, "MAX_TIMED_CHECKS", 0)
    cb, speedup = fit_to_double_speed()
    assert cb.done_reason == "goal reached" and speedup < 2.0
