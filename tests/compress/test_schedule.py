"""compress's schedule: iteration k aims at k x increment, so rounding overshoot is not carried forward."""

import numpy as np
import pytest

import keras_taylor as kt
from helpers import compiled, small_cnn, toy_data
from keras_taylor.compression.goal import next_step, steps_left


@pytest.mark.parametrize("reduction, expected", [
    (0.0, 0.1),     # the first mark
    (0.13, 0.07),   # an overshoot of 3% is taken back from the next step
    (0.18, 0.12),   # 0.2 is under a quarter increment away: aim at 0.3
    (0.174, 0.026),
    (0.075, 0.025),  # exactly a quarter away: still aimed at
    (0.69, 0.01),   # never past the goal
])
def test_next_step_aims_at_the_next_multiple_of_the_increment(reduction, expected):
    assert next_step(reduction, 0.1, 0.7) == pytest.approx(expected)


def test_a_mark_just_short_of_the_goal_is_skipped():
    assert next_step(0.4, 0.1, 0.52) == pytest.approx(0.12)  # not 0.1, then a 2% sliver
    assert next_step(0.4, 0.1, 0.56) == pytest.approx(0.1)


@pytest.mark.parametrize("reduction, goal, expected", [(0.0, 0.7, 7), (0.18, 0.7, 5), (0.09, 0.7, 6), (0.28, 0.5, 2),
                                                       (0.4, 0.52, 1), (0.7, 0.7, 0)])
def test_steps_left_counts_the_marks_still_ahead(reduction, goal, expected):
    assert steps_left(reduction, 0.1, goal) == expected


def _landings(step_rule, overshoot=1.3, increment=0.1, goal=0.7):
    """Where a pruner that always removes `overshoot` x what it is asked lands, iteration by iteration."""
    reduction, out = 0.0, []
    while reduction < goal - 1e-9 and len(out) < 50:
        reduction = min(goal, reduction + overshoot * step_rule(reduction, increment, goal))
        out.append(reduction)
    return out


def test_overshoot_does_not_accumulate():
    marks = _landings(next_step)
    # Each landing lies within one step's overshoot of its mark...
    assert all(abs(r - 0.1 * (k + 1)) <= 0.04 for k, r in enumerate(marks[:5])), marks
    # ...where "increment more each time" drifts a further 3% per iteration.
    drifting = _landings(lambda r, inc, goal: min(inc, goal - r))
    assert drifting[3] == pytest.approx(0.52)


def test_compress_asks_each_iteration_for_the_rest_of_the_way_to_its_mark(monkeypatch):
    asked = []
    original = kt.TaylorPrunableModel.update_prunables

    def spy(self, *args, **kwargs):
        before = 1 - self.cost_table("macs").total(self.alive) / self.cost_table("macs").total(
            np.ones_like(self.alive))
        asked.append((before, kwargs["goal"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(kt.TaylorPrunableModel, "update_prunables", spy)
    x, y = toy_data(64)
    _, info = kt.compress(compiled(small_cnn(filters=16)), (x, y), goal=0.5, increment=0.15, cost="macs",
                          round_to=4, fine_tune_epochs=0, rebuild_threshold=1, batch_size=32, verbose=0)
    assert len(asked) >= 2
    for k, (before, goal) in enumerate(asked):
        mark = before + goal  # the rebuild-free model's unpruned MACs are the original's
        multiples = mark / 0.15
        assert mark == pytest.approx(0.5) or multiples == pytest.approx(round(multiples)), (k, before, goal)
        assert mark - before >= 0.15 / 4 - 1e-9
    history = info.pruning_history.macs_reduction.to_numpy()
    assert history[-1] >= 0.5 - 1e-9
