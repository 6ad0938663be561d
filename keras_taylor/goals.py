"""Pruning goals over learnables, MACs or latency, checked and turned into what `pruner.plan` takes.

A goal is said one of three ways:

* a float in (0, 1]: remove this fraction of the unpruned model's cost now
  (as MATLAB's LearnablesReductionIncrement, in any of the three costs);
* `kt.Speedup(2.0)`: prune until the cost is half the unpruned model's
  (MACs or latency);
* `kt.LatencyBudget(ms=3)`: prune until the predicted latency is at most
  3 ms (latency only).
"""

import numpy as np

from keras_taylor import accounting, costs, pruner
from keras_taylor.errors import InvalidArgumentError, PruningStateError

Speedup = costs.Speedup
LatencyBudget = costs.LatencyBudget


def check_cost(cost):
    """`cost` as one of `costs.COSTS`, or the latency profile it is."""
    if hasattr(cost, "cost_table"):
        return cost
    if cost not in costs.COSTS:
        raise InvalidArgumentError(
            f"cost must be one of {costs.COSTS} or a latency profile (kt.latency_profile), got {cost!r}")
    return cost


def cost_kind(cost):
    """The name of a checked `cost`: itself, or `"latency"` for a latency profile."""
    return cost if isinstance(cost, str) else "latency"


RANKINGS = ("importance", "importance_per_cost")


def check_ranking(ranking, cost):
    """How channel groups are ranked: `ranking`, or by default the cost's own way.

    None means "importance" (lowest score first, MATLAB's order) for
    learnables and "importance_per_cost" (HALP's knapsack) for MACs and
    latency.
    """
    if ranking is None:
        return "importance" if cost == "learnables" else "importance_per_cost"
    if ranking not in RANKINGS:
        raise InvalidArgumentError(f"ranking must be None or one of {RANKINGS}, got {ranking!r}")
    return ranking


def check_round_to(round_to):
    if round_to is None:
        return None
    if isinstance(round_to, bool) or not isinstance(round_to, (int, np.integer)) or round_to < 1:
        raise InvalidArgumentError(f"round_to must be a positive integer or None, got {round_to!r}")
    return int(round_to)


def check_goal(goal, cost):
    """Checks `goal` against `cost` (a name or a profile); returns it."""
    kind = cost_kind(cost)
    if isinstance(goal, costs.Speedup):
        if kind == "learnables":
            raise InvalidArgumentError("goal=Speedup(...) needs cost='macs' or cost='latency', not 'learnables'")
        return goal
    if isinstance(goal, costs.LatencyBudget):
        if kind != "latency":
            raise InvalidArgumentError(f"goal=LatencyBudget(...) needs cost='latency', got cost={kind!r}")
        return goal
    if isinstance(goal, bool) or not isinstance(goal, (int, float, np.floating)) or not 0 < goal <= 1:
        raise InvalidArgumentError(
            f"goal must be a fraction in (0, 1], kt.Speedup(factor) or kt.LatencyBudget(ms=...), got {goal!r}")
    return float(goal)


def check_overall_goal(goal, cost):
    """Checks the goal of a whole run (`compress`, the callback) against `cost`.

    Stricter than `check_goal`: a fraction must be below 1, since a run that
    removes every channel has nothing to hand back.
    """
    if isinstance(goal, (costs.Speedup, costs.LatencyBudget)):
        return check_goal(goal, cost)
    if isinstance(goal, bool) or not isinstance(goal, (int, float, np.floating)) or not 0 < goal < 1:
        raise InvalidArgumentError(
            f"goal must be a fraction in (0, 1), kt.Speedup(factor) or kt.LatencyBudget(ms=...), got {goal!r}")
    return float(goal)


def cost_table(cost, channel_graph, tables, profile=None):
    """The `costs.LayerCosts` of `cost` ("macs", "latency", "learnables" or a profile)."""
    if not isinstance(cost, str):
        profile, cost = cost, "latency"
    if cost == "latency":
        if profile is None:
            raise PruningStateError(
                "cost='latency' needs a latency profile: set pm.latency_profile = kt.latency_profile(pm, "
                "runtime='litert') or pass cost=kt.latency_profile(...)")
        return profile.cost_table(channel_graph)
    return tables[cost]


def plan_goal(table, exact, alive, goal):
    """`dict(cost=..., reduce_by=...)` for `pruner.plan`, or `{}` without a goal.

    `exact`: a cost that counts the whole model exactly (learnables), or
    None to measure with `table`.
    """
    if goal is None:
        return {}
    measure = exact or table
    full = np.ones_like(np.asarray(alive, dtype=bool))
    original, current = measure.total(full), measure.total(alive)
    if isinstance(goal, (costs.Speedup, costs.LatencyBudget)):
        reduce_by = max(0.0, current - goal.target(original, current))
    else:
        reduce_by = goal * original
    return dict(cost=measure, reduce_by=reduce_by)


def learnables_measure(channel_graph):
    return pruner.CostFunction(lambda alive: accounting.total_learnables(channel_graph, alive))
