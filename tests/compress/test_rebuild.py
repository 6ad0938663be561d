"""When kt.compress rebuilds: multiply-accumulate counts and the "auto" planner."""

import numpy as np
import pytest

import keras
import keras_taylor as kt
from keras_taylor import accounting, rebuild
from keras_taylor.graph import ChannelGraph, Options, read_model
from keras_taylor.rebuild import SCORE, TEST, TRAIN, RebuildPlanner

from helpers import small_cnn, toy_data

from keras_taylor.compression import loop
L = keras.layers


# ------------------------------------------------------- multiply-accumulates
def macs_of(model):
    graph = ChannelGraph(read_model(model, "model"), Options(prune_dense=True, prune_separable=True))
    return accounting.total_multiply_accumulates(graph, np.ones(graph.num_units, dtype=bool))


def single(layer, shape):
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize(
    "layer, shape, expected",
    [
        # kernel elements x output positions
        (L.Conv2D(8, 3, padding="same"), (10, 10, 4), 3 * 3 * 4 * 8 * 10 * 10),
        (L.Conv2D(8, 3, strides=2), (11, 11, 4), 3 * 3 * 4 * 8 * 5 * 5),
        (L.Conv2D(8, 3, groups=2), (6, 6, 4), 3 * 3 * 2 * 8 * 4 * 4),
        (L.Conv1D(6, 5), (20, 3), 5 * 3 * 6 * 16),
        (L.Dense(7), (5,), 5 * 7),
        (L.Dense(7), (9, 5), 9 * 5 * 7),  # applied at each of 9 positions
        (L.DepthwiseConv2D(3, depth_multiplier=2), (7, 7, 4), 3 * 3 * 4 * 2 * 5 * 5),
        (L.SeparableConv2D(8, 3, depth_multiplier=2), (7, 7, 4), (3 * 3 * 4 * 2 + 4 * 2 * 8) * 5 * 5),
        # a transposed convolution scatters from every input position
        (L.Conv2DTranspose(8, 3, strides=2), (5, 5, 4), 3 * 3 * 8 * 4 * 5 * 5),
    ],
)
def test_multiply_accumulates_of_one_layer(layer, shape, expected):
    assert macs_of(single(layer, shape)) == expected


def test_a_shared_layer_works_at_each_call_and_norms_count_nothing():
    inputs = keras.Input((6, 6, 3))
    conv = L.Conv2D(4, 1)
    x = L.BatchNormalization()(conv(inputs))
    y = conv(inputs)
    model = keras.Model(inputs, L.Add()([x, y]))
    assert macs_of(model) == 2 * (3 * 4 * 36)


def test_masked_count_equals_the_stripped_models_count():
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, weights=None, classes=5)
    pm = kt.TaylorPrunableModel(base, criterion="l1", normalize=True)
    full = pm.original_multiply_accumulates
    assert pm.multiply_accumulates == full
    pm.update_prunables(None, learnables_reduction=0.4)
    masked = pm.multiply_accumulates
    assert 0 < masked < full
    assert macs_of(kt.strip_pruning(pm)) == masked


# ---------------------------------------------------------------- planner
class FakePrunable:
    def __init__(self, macs, learnables_reduction=0.0):
        self.original_multiply_accumulates = macs
        self.multiply_accumulates = macs
        self.learnables_reduction = learnables_reduction


def run_iteration(planner, trace, train_step, steps=10, test=1.0, first=False):
    """Records one iteration: validation, `steps` train steps, validation.

    With `first`, the first train step carries `trace` and the first
    validation a quarter of it more.
    """
    planner.record(TEST, test + (trace / 4 if first else 0.0))
    for i in range(steps):
        planner.record(TRAIN, train_step + (trace if first and i == 0 else 0.0))
    planner.record(TEST, test)
    planner.iteration_done()


def test_a_numeric_threshold_follows_the_masked_share_alone():
    planner = RebuildPlanner(0.25)
    pm = FakePrunable(1000)
    planner.built(pm)
    pm.learnables_reduction = 0.2
    assert not planner.should_rebuild(pm, 1, 5)
    pm.learnables_reduction = 0.25
    assert planner.should_rebuild(pm, 1, 5)
    assert RebuildPlanner(0.0).should_rebuild(FakePrunable(1, 0.0), 1, 1)


def test_auto_waits_for_measurements():
    planner = RebuildPlanner("auto")
    pm = FakePrunable(1000)
    planner.built(pm)
    pm.multiply_accumulates = 100  # a huge saving, but nothing measured yet
    assert not planner.should_rebuild(pm, 1, 10)
    assert planner.decisions[-1][2] is None


@pytest.mark.parametrize(
    "trace, left, macs_after, expected",
    [
        # an iteration: 10 train steps and 2 validations of 1 s, 12 s in all;
        # time predicted to fall as the square root of the arithmetic
        (10.0, 1, 900, False),  # saving 1 x 12 s x (1 - 0.9 ** 0.5) = 0.6 s < 10 s of tracing
        (10.0, 10, 900, False),  # 6.2 s < 10 s
        (10.0, 20, 900, True),  # 12.3 s > 10 s
        (10.0, 2, 250, True),  # 2 x 12 s x 50% = 12 s > 10 s
        (10.0, 2, 500, False),  # 7.0 s: proportional gains (1 - 0.5) would have rebuilt
        (30.0, 2, 250, False),
    ],
)
def test_auto_rebuilds_when_the_predicted_saving_exceeds_the_measured_cost(trace, left, macs_after, expected):
    planner = RebuildPlanner("auto")
    pm = FakePrunable(1000)
    planner.built(pm)
    # First iteration on a new model: each function's first call carries its tracing.
    run_iteration(planner, trace=trace * 0.8, train_step=1.0, first=True)  # train gets 0.8, test 0.2 of it
    run_iteration(planner, trace=0, train_step=1.0)
    pm.multiply_accumulates = macs_after
    assert planner.should_rebuild(pm, 3, left) is expected
    _, rebuilt, saving, cost = planner.decisions[-1]
    assert cost == pytest.approx(trace)
    assert saving == pytest.approx(left * 12.0 * (1 - (macs_after / 1000) ** 0.5))


def test_auto_counts_the_surgery_and_only_functions_an_iteration_calls():
    planner = RebuildPlanner("auto")
    pm = FakePrunable(1000)
    planner.built(pm, surgery_seconds=2.0)
    planner.record(SCORE, 50.0)  # a one-off function, traced expensively, then never called again
    planner.record(SCORE, 0.1)
    run_iteration(planner, trace=4.0, train_step=1.0, first=True)
    run_iteration(planner, trace=0, train_step=1.0)
    pm.multiply_accumulates = 500
    planner.should_rebuild(pm, 3, 1)
    assert planner.decisions[-1][3] == pytest.approx(4.0 + 4.0 / 4 + 2.0)  # train and test tracing, surgery


def rebuilt_once(macs_after):
    """An "auto" planner that measured one iteration at 1000 MACs and chose to rebuild."""
    planner = RebuildPlanner("auto")
    pm = FakePrunable(1000)
    planner.built(pm)
    run_iteration(planner, trace=1.0, train_step=1.0, first=True)
    pm.multiply_accumulates = macs_after
    assert planner.should_rebuild(pm, 2, 10)
    return planner


def test_the_gain_seen_after_a_rebuild_calibrates_the_next_prediction():
    planner = rebuilt_once(250)
    assert planner.gain_exponent == rebuild.PRIOR_GAIN_EXPONENT == 0.5
    # The rebuilt model has a quarter of the arithmetic and runs in a quarter
    # of the time: better than the prior assumed.
    small = FakePrunable(250)
    planner.built(small, surgery_seconds=0.5)
    run_iteration(planner, trace=1.0, train_step=0.25, test=0.25, first=True)
    assert planner.gain_exponent == pytest.approx(1.0)
    small.multiply_accumulates = 125
    planner.should_rebuild(small, 3, 10)
    _, _, saving, _ = planner.decisions[-1]
    assert saving == pytest.approx(10 * 3.0 * (1 - 0.5))


def test_a_rebuild_that_gained_nothing_leaves_the_floor_exponent():
    planner = rebuilt_once(500)
    planner.built(FakePrunable(500))
    run_iteration(planner, trace=1.0, train_step=1.1, first=True)  # slower: noise
    assert planner.gain_exponent == rebuild.MIN_GAIN_EXPONENT


@pytest.mark.parametrize("value", ["auto", 0, 0.25, 1, 1.0])
def test_valid_thresholds(value):
    assert rebuild.check_threshold(value)


@pytest.mark.parametrize("value", ["Auto", -0.1, 1.5, True, None, "0.5"])
def test_invalid_thresholds_name_the_argument(value):
    x, y = toy_data(32)
    model = small_cnn()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(kt.InvalidArgumentError, match="rebuild_threshold"):
        kt.compress(model, (x, y), rebuild_threshold=value, verbose=0)


# ------------------------------------------------------- inside kt.compress
def compress_with_planner(monkeypatch, trace_scale, **kwargs):
    """kt.compress with "auto", its measured first calls scaled by `trace_scale`."""

    class Scaled(RebuildPlanner):
        def built(self, pm, surgery_seconds=0.0):
            super().built(pm, surgery_seconds * trace_scale)

        def record(self, kind, seconds):
            first = kind not in self._builds[-1]["first"]
            super().record(kind, seconds * trace_scale if first else seconds)

    made = []

    def planner(threshold):
        made.append(Scaled(threshold))
        return made[-1]

    monkeypatch.setattr(loop, "RebuildPlanner", planner)
    x, y = toy_data(96)
    keras.utils.set_random_seed(3)
    model = small_cnn(filters=12)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy", metrics=["accuracy"])
    before = [w.copy() for w in model.get_weights()]
    pruned, info = kt.compress(
        model, (x, y), goal=0.5, increment=0.1, batch_size=32, validation_data=(x, y), metric="accuracy",
        seed=5, verbose=0, **{"score_batches": 2, **kwargs},
    )
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    return pruned, info, made[0]


def test_compress_rebuilds_when_tracing_is_cheap(monkeypatch):
    # First calls and surgery measured as free: every step that removes
    # arithmetic is worth a rebuild once the planner has seen an iteration.
    pruned, info, planner = compress_with_planner(monkeypatch, trace_scale=0.0)
    iterations = int(info.pruning_history.iteration.max())
    assert iterations >= 3
    assert info.rebuilt_iterations == list(range(2, iterations + 1))
    assert [d[1] for d in planner.decisions] == [False] + [True] * (iterations - 1)
    assert info.learnables_reduction >= 0.5
    # What an iteration calls: 96 samples in batches of 32, 2 score batches,
    # validation before fine-tuning and after its epoch.
    assert planner._last_counts == {TRAIN: 3, SCORE: 2, TEST: 2}


def test_compress_stays_masked_when_tracing_is_dear(monkeypatch):
    pruned, info, planner = compress_with_planner(monkeypatch, trace_scale=1e6)
    assert info.rebuilt_iterations == []
    assert not any(d[1] for d in planner.decisions)
    assert info.learnables_reduction >= 0.5


def test_rebuilt_iterations_follow_a_numeric_threshold():
    results = {}
    for threshold in (0.0, 1.0):
        x, y = toy_data(64)
        keras.utils.set_random_seed(3)
        model = small_cnn(filters=12)
        model.compile("sgd", "sparse_categorical_crossentropy")
        _, info = kt.compress(model, (x, y), goal=0.3, increment=0.1, batch_size=32, verbose=0, rebuild_threshold=threshold)
        results[threshold] = info
    iterations = int(results[0.0].pruning_history.iteration.max())
    assert results[0.0].rebuilt_iterations == list(range(1, iterations + 1))
    assert results[1.0].rebuilt_iterations == []


@pytest.mark.parametrize(
    "kwargs, counts",
    [
        # Scores gathered while fine-tuning: the first iteration's scoring
        # pass is a one-off, not an iteration's cost.
        (dict(score_batches=None), {TRAIN: 3, TEST: 2}),
        # No fine-tuning: every iteration scores all 3 batches anew.
        (dict(score_batches=None, fine_tune_epochs=0), {SCORE: 3, TEST: 1}),
    ],
)
def test_compress_times_what_recurs_in_an_iteration(monkeypatch, kwargs, counts):
    _, _, planner = compress_with_planner(monkeypatch, trace_scale=1.0, **kwargs)
    assert planner._last_counts == counts
