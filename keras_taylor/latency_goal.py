"""`prune_to_latency`: a latency goal met by measurement, not only by prediction.

A latency profile is fitted on variants spread over the whole range of
widths. Where the runtime's time is not linear in its terms (MobileNetV2 on
LiteRT: the time per MAC is highest at 40-75% of the MACs), the model errs
where the pruner's choice lands, and one-sidedly: the groups whose cost it
overrates go first, so the chosen model runs slower than predicted
(`Speedup(2.0)` measured 1.53x, docs/benchmarks.md). Closing the loop, as
a user would by hand: strip the chosen model, time it beside the prunable
model's unpruned form (so the speedup is a ratio of two timings made
together), refit the profile with both timings counted heavily, and choose
again from the same starting point. Each round costs one stripping and one
conversion and timing of two models; the profile keeps the new timings
(and its cache entry too), so the next goal on the same model starts from
a better fit.
"""

import dataclasses

import numpy as np

from keras_taylor import goals
from keras_taylor.errors import InvalidArgumentError, PruningStateError
from keras_taylor.surgery import strip_pruning

#: How many times a calibration timing counts in the refit, against 1 for
#: each of the profile's own variants: enough to make the fit right near
#: the pruner's choice, not so much that one noisy timing decides alone.
CALIBRATION_WEIGHT = 4.0

#: How many times at most `compress` and `TaylorPruningCallback` time a
#: latency goal their prediction says is reached (then the prediction decides).
MAX_TIMED_CHECKS = 3


@dataclasses.dataclass
class LatencyRound:
    """One round of `prune_to_latency`: what was predicted, and what was measured.

    Attributes:
        groups_pruned: channel groups the round's choice removes.
        predicted_ms: the profile's prediction for it, before the refit.
        measured_ms, unpruned_ms: its time and the unpruned model's, timed
            together (ms per call); `speedup` is their ratio.

    Example:

    >>> from keras_taylor.latency_goal import LatencyRound
    >>> LatencyRound(groups_pruned=3, predicted_ms=1.0, measured_ms=1.25, unpruned_ms=2.5).speedup
    2.0
    """

    groups_pruned: int
    predicted_ms: float
    measured_ms: float
    unpruned_ms: float

    @property
    def speedup(self):
        return self.unpruned_ms / self.measured_ms


def _stripped(pm, alive):
    before = pm.alive
    try:
        pm.set_unit_alive(alive)
        return strip_pruning(pm)
    finally:
        pm.set_unit_alive(before)


def time_and_refit(profile, models, cases, timer=None):
    """Milliseconds per call of `models`, timed together; `profile` refitted with them.

    `cases`: what each model is, `(channel_graph, alive)`, one per model.
    """
    seconds = (timer or profile.timer)(models, profile.runtime, profile.threads, profile.batch_size)
    ms = 1000.0 * np.asarray(seconds, dtype=np.float64)
    profile.add_samples(cases, ms, CALIBRATION_WEIGHT)
    return [float(v) for v in ms]


def time_against_unpruned(profile, unpruned, pm, timer=None):
    """`(unpruned ms, pm's ms)`: `unpruned` (the model `profile` was made from) and `pm` stripped, timed together."""
    full = np.ones(profile.channel_graph.num_units, bool)
    cases = [(profile.channel_graph, full), (pm.channel_graph, pm.alive)]
    return time_and_refit(profile, [unpruned, strip_pruning(pm)], cases, timer)


def time_with_unpruned(pm, profile, alive=None, timer=None):
    """`(unpruned ms, ms with `alive`)` of `pm` stripped both ways, timed together; the profile refitted with both.

    `alive`: the channel groups kept (default `pm.alive`).
    """
    alive = pm.alive if alive is None else alive
    full = np.ones_like(alive)
    models = [_stripped(pm, full), _stripped(pm, alive)]
    return time_and_refit(profile, models, [(pm.channel_graph, full), (pm.channel_graph, alive)], timer)


def goal_met(goal, unpruned_ms, ms):
    """Whether `ms` meets `goal` (a `kt.Speedup` or `kt.LatencyBudget`) against `unpruned_ms`."""
    return ms <= goal.target(unpruned_ms, ms) * (1.0 + 1e-9)


def prune_to_latency(pm, goal, profile=None, rounds=2, round_to=None, timer=None):
    """Prunes `pm` to a latency goal, measured on the runtime, choosing again while it is missed.

    `pm.update_prunables(None, cost=profile, goal=goal)` chooses by the
    profile's prediction; this times what it chose (beside the unpruned
    model), refits the profile where it erred, and chooses again from the
    same starting point, up to `rounds` more times, until the measured
    latency meets the goal. Scores are kept until the end; the last choice
    is applied.

    Args:
        pm: a scored `TaylorPrunableModel`.
        goal: `kt.Speedup(factor)` (against `pm` with every channel group
            alive) or `kt.LatencyBudget(ms=...)`.
        profile: a `kt.latency_profile` of `pm` (default
            `pm.latency_profile`); it keeps the new timings.
        rounds: how many times at most to choose again (0: choose once,
            measure once).
        round_to: as for `update_prunables`.
        timer: as for `kt.latency_profile` (default: the profile's own).

    Returns:
        A list of `LatencyRound`, one per choice; the last one is applied.

    Example:

    >>> import keras, numpy as np, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    >>> outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    >>> pm = kt.TaylorPrunableModel(keras.Model(inputs, outputs))
    >>> fake = lambda models, *args: [1e-4 + 1e-7 * m.count_params() for m in models]
    >>> pm.latency_profile = kt.latency_profile(pm, timer=fake, cache_dir=False)
    >>> pm.update_score(np.ones((4, 8, 8, 3)), np.zeros((4, 2)), loss="mse")
    >>> history = kt.prune_to_latency(pm, kt.Speedup(1.5), timer=fake)
    >>> history[-1].speedup >= 1.5
    True
    """
    profile = profile if profile is not None else getattr(pm, "latency_profile", None)
    if not hasattr(profile, "add_samples"):
        raise PruningStateError("prune_to_latency needs a latency profile: pass profile=kt.latency_profile(pm) "
                                "or set pm.latency_profile")
    if not isinstance(goal, (goals.Speedup, goals.LatencyBudget)):
        raise InvalidArgumentError(f"goal must be kt.Speedup(...) or kt.LatencyBudget(ms=...), got {goal!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise InvalidArgumentError(f"rounds must be an int >= 0, got {rounds!r}")
    start, history = pm.alive, []
    for _ in range(rounds + 1):
        chosen = pm.planned_prunables(None, cost=profile, goal=goal, round_to=round_to)
        alive = start.copy()
        alive[chosen] = False
        predicted = float(profile.predict_ms(alive, pm.channel_graph))
        unpruned_ms, ms = time_with_unpruned(pm, profile, alive, timer)
        history.append(LatencyRound(len(chosen), predicted, ms, unpruned_ms))
        if goal_met(goal, unpruned_ms, ms):
            break
    pm.set_unit_alive(alive)
    pm.reset_scores()
    return history
