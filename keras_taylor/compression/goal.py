"""The goal of a `compress` run in the cost it counts: learnables, MACs or latency.

`compress` compares every cost as a fraction of the unpruned model's, so a
`kt.Speedup` or `kt.LatencyBudget` becomes the fraction to remove once the
unpruned cost is known.
"""

import math

import numpy as np

from keras_taylor import goals


def measure(pm, cost, unpruned=False):
    """`pm`'s cost (learnables, MACs or predicted ms), as pruned or unpruned."""
    if cost == "learnables":
        return pm.original_learnables if unpruned else pm.num_learnables
    alive = np.ones(pm.channel_graph.num_units, bool) if unpruned else pm.alive
    return pm.cost_table(cost).total(alive)


def goal_fraction(goal, original_cost):
    """`goal` as the fraction of the original cost to remove."""
    if isinstance(goal, (goals.Speedup, goals.LatencyBudget)):
        return min(1.0, max(0.0, 1 - goal.target(original_cost, original_cost) / original_cost))
    return goal


def next_step(reduction, increment, goal):
    """The reduction (of the original cost) this iteration adds: up to the next multiple of `increment`.

    Each iteration aims at the next multiple of `increment` (never past
    `goal`), not at `increment` more than wherever the last one landed:
    rounding (whole channel groups, `round_to`) overshoots each step a
    little, and steps of "`increment` more" would carry every overshoot
    forward (ResNet-20 at increment 0.1, round_to=8: 13.0%, 24.6%, 35.8%,
    47.7%, 58.1% fewer MACs instead of about 10%, 20%, ...). A multiple
    less than a quarter `increment` away is skipped, and so is one less
    than a quarter `increment` short of the goal, so no step is a sliver
    (but the last, when the goal is that close).

    >>> round(next_step(0.13, 0.1, 0.7), 3)
    0.07
    >>> round(next_step(0.18, 0.1, 0.7), 3)  # 0.2 is too close: aim at 0.3
    0.12
    >>> round(next_step(0.4, 0.1, 0.52), 3)  # 0.5 is too close to the goal: aim at it
    0.12
    """
    mark = math.ceil((reduction + increment / 4) / increment - 1e-9) * increment
    if goal - mark < increment / 4:
        mark = goal
    return mark - reduction


def steps_left(reduction, increment, goal, limit=10000):
    """How many iterations `next_step` takes from `reduction` to `goal`, each landing on its mark.

    >>> steps_left(0.18, 0.1, 0.7)  # 0.3, 0.4, 0.5, 0.6, 0.7
    5
    """
    count = 0
    while reduction < goal - 1e-9 and count < limit:
        reduction += next_step(reduction, increment, goal)
        count += 1
    return count


def history_column(cost):
    """The `pruning_history` column of the goal's cost ("macs_reduction", ...), None for learnables."""
    if cost == "learnables":
        return None
    return f"{goals.cost_kind(cost)}_reduction"


def fewer(cost):
    """How a line of output says that less of the cost is left: "fewer MACs", "lower predicted latency"."""
    kind = goals.cost_kind(cost)
    return {"learnables": "fewer learnables", "macs": "fewer MACs"}.get(kind, "lower predicted latency")


def prune_arguments(cost, step, round_to, ranking=None):
    """The keyword arguments of `pm.update_prunables` for one step of `step`."""
    if cost == "learnables":
        return dict(learnables_reduction=step, round_to=round_to, ranking=ranking)
    return dict(cost=cost, goal=step, round_to=round_to, ranking=ranking)
