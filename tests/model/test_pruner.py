"""The pruning decision on its own: NumPy arrays in, channel groups out."""

import numpy as np
import pytest

import keras_taylor as kt
from keras_taylor import pruner, scoring


def layout(layer_groups, num_groups=None, removable=None):
    layer_groups = [np.asarray(g) for g in layer_groups]
    n = num_groups if num_groups is not None else int(max(g.max() for g in layer_groups)) + 1
    removable = np.ones(n, bool) if removable is None else np.asarray(removable)
    return pruner.ChannelLayout(n, layer_groups, removable)


def test_lowest_scores_go_first_with_ties_in_group_order():
    lay = layout([[0, 1, 2, 3, 4]])
    scores = np.array([0.5, 0.1, 0.1, 0.9, 0.0])
    assert pruner.plan(scores, np.ones(5, bool), lay, limit=3).tolist() == [4, 1, 2]


def test_never_a_layers_last_channel():
    lay = layout([[0, 1], [2]])
    chosen = pruner.plan(np.zeros(3), np.ones(3, bool), lay)
    assert chosen.tolist() == [0]
    alive = np.ones(3, bool)
    alive[chosen] = False
    assert lay.channels_left(alive).tolist() == [1, 1]


def test_a_group_spanning_layers_needs_every_layer_to_keep_one():
    # Group 0 holds both channels of layer 1 (a depthwise repeat): it may not
    # go, though it scores lowest; the others may.
    lay = layout([[0, 1, 2], [0, 0]])
    assert pruner.plan(np.array([0.0, 1.0, 2.0]), np.ones(3, bool), lay).tolist() == [1, 2]


def test_blocked_and_dead_groups_are_never_chosen():
    lay = layout([[0, 1, 2, 3]], removable=[True, False, True, True])
    alive = np.array([True, True, False, True])
    assert pruner.plan(np.zeros(4), alive, lay).tolist() == [0, 3]
    assert lay.num_removable(alive) == 2


def test_goal_in_a_cost_vector_stops_at_the_fewest_groups():
    lay = layout([[0, 1, 2, 3, 4]])
    cost = pruner.CostVector([1.0, 2.0, 3.0, 4.0, 5.0], base=10.0)
    scores = np.arange(5.0)
    # Removing 0, 1, 2 saves 6 >= 5; 0, 1 saves only 3.
    assert pruner.plan(scores, np.ones(5, bool), lay, cost=cost, reduce_by=5.0).tolist() == [0, 1, 2]
    # The limit caps the goal.
    assert pruner.plan(scores, np.ones(5, bool), lay, limit=2, cost=cost, reduce_by=5.0).tolist() == [0, 1]


def test_an_exact_cost_function_works_like_a_vector():
    lay = layout([[0, 1, 2, 3]])
    per_group = np.array([4.0, 3.0, 2.0, 1.0])
    vector = pruner.CostVector(per_group)
    function = pruner.CostFunction(lambda alive: per_group[alive].sum())
    scores = np.array([3.0, 2.0, 1.0, 0.0])
    a = pruner.plan(scores, np.ones(4, bool), lay, cost=vector, reduce_by=2.5)
    b = pruner.plan(scores, np.ones(4, bool), lay, cost=function, reduce_by=2.5)
    assert a.tolist() == b.tolist() == [3, 2]


def test_an_unreachable_goal_removes_all_it_may():
    lay = layout([[0, 1, 2]])
    cost = pruner.CostVector([1.0, 1.0, 1.0])
    assert len(pruner.plan(np.zeros(3), np.ones(3, bool), lay, cost=cost, reduce_by=100.0)) == 2


def test_cost_and_goal_come_together():
    with pytest.raises(ValueError, match="together"):
        pruner.plan(np.zeros(2), np.ones(2, bool), layout([[0, 1]]), cost=pruner.CostVector([1, 1]))


def test_layout_checks_the_removable_shape():
    with pytest.raises(ValueError, match="removable"):
        pruner.ChannelLayout(3, [np.arange(3)], np.ones(2, bool))


def test_normalisation_is_per_first_layer():
    scores = np.array([3.0, 4.0, 10.0, 0.0])
    out = pruner.normalize_per_layer(scores, {0: "a", 1: "a", 2: "b"}, [0, 1, 2, 3])
    np.testing.assert_allclose(out, [0.6, 0.8, 1.0, 0.0])


def test_mean_normalisation_leaves_each_layer_averaging_one_whatever_its_width():
    scores = np.array([1.0, 3.0, 5.0, 5.0, 5.0, 5.0])
    primary = {0: "narrow", 1: "narrow", 2: "wide", 3: "wide", 4: "wide", 5: "wide"}
    out = pruner.normalize_per_layer(scores, primary, range(6), "mean")
    np.testing.assert_allclose(out, [0.5, 1.5, 1.0, 1.0, 1.0, 1.0])
    l2 = pruner.normalize_per_layer(scores, primary, range(6), "l2")
    assert l2[2] < l2[1]  # L2 ranks the wide layer's equal channels lower


def test_a_normalize_argument_names_its_norm_or_is_refused():
    assert [scoring.as_normalizer(v) for v in (False, None, True, "l2", "mean")] == [None, None, "l2", "l2", "mean"]
    with pytest.raises(kt.errors.InvalidArgumentError, match="normalize"):
        scoring.as_normalizer("max")


def test_plan_changes_nothing_it_is_given():
    lay = layout([[0, 1, 2]])
    alive, scores = np.ones(3, bool), np.array([2.0, 1.0, 0.0])
    pruner.plan(scores, alive, lay, limit=1)
    assert alive.all() and scores.tolist() == [2.0, 1.0, 0.0]
