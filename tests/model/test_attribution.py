"""Per-layer attribution of a latency profile: cuts per cluster of channel groups and a scale per layer."""

import keras
import numpy as np
import pytest

import keras_taylor as kt
from keras_taylor import accounting, attribution
from helpers import randomize_weights


def _chain():
    """Three 3x3 convolutions of 16 filters: one kind, so the per-kind fit cannot tell them apart."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="first")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="dear")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last")(x)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    return randomize_weights(keras.Model(inputs, outputs))


class DearLayerTimer:
    """0.2 ms plus 1 ns per MAC, except the layer `dear`, whose MACs take 5 ns each."""

    def __call__(self, models, *args):
        return [self.ms(kt.TaylorPrunableModel(m).channel_graph) / 1000 for m in models]

    @staticmethod
    def ms(graph, alive=None):
        macs = accounting.layer_cost_tables(graph)[0]["macs"]
        alive = np.ones(graph.num_units, bool) if alive is None else alive
        rate = np.array([5e-6 if name == "dear" else 1e-6 for name in macs.names])
        return 0.2 + float(macs.per_row(alive) @ rate)


def _saving_errors(profile, graph):
    """Per cluster: predicted / true ms saved by removing 8 of its groups, minus 1."""
    full = np.ones(graph.num_units, bool)
    errors = {}
    for name, groups in attribution.clusters(graph).items():
        alive = full.copy()
        alive[groups[:8]] = False
        true = DearLayerTimer.ms(graph) - DearLayerTimer.ms(graph, alive)
        errors[name] = (profile.predict_ms(full, graph) - profile.predict_ms(alive, graph)) / true - 1
    return errors


def test_a_cut_keeps_a_fifth_of_a_wide_cluster_rounded_to_8():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(40, 3, name="wide")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1, name="out")(x))
    graph = kt.TaylorPrunableModel(model).channel_graph
    (name, alive), = attribution.cuts(graph)
    assert name == "wide" and graph.layout.channels_left(alive).tolist() == [8, 4]  # 40 -> 8, a fifth; out whole


def test_cuts_narrow_one_cluster_each_aligned_to_8():
    graph = kt.TaylorPrunableModel(_chain()).channel_graph
    cut = attribution.cuts(graph)
    assert [name for name, _ in cut] == ["first", "dear", "last"]
    full = np.ones(graph.num_units, bool)
    for name, alive in cut:
        left = graph.layout.channels_left(alive)
        changed = left != graph.layout.channels_left(full)
        assert changed.sum() == 1 and left[changed][0] == 8  # one layer, 16 -> 8 (a fifth, rounded up to 8)


def test_fit_rates_recovers_each_layers_time_per_mac():
    rng = np.random.default_rng(0)
    kinds = np.array(["conv", "conv", "conv", "pointwise", "conv"], dtype=object)
    row_macs = rng.uniform(1e5, 1e6, (12, 5))
    row_macs[:, 4] = 5e5  # a layer no variant narrows
    truth = np.array([2e-6, 2e-6, 9e-6, 1e-6, 2e-6])  # the third conv is dear
    ms = 0.3 + row_macs @ truth
    fixed, kind_rate, rates, shared = attribution.fit_rates(row_macs, kinds, np.zeros((12, 0)), ms, prior=1e-6)
    assert rates[:4] == pytest.approx(truth[:4], rel=2e-2)
    assert rates[4] == kind_rate["conv"]  # unmoved: its kind's rate, the rest of its time is in the fixed part
    assert fixed + row_macs @ rates == pytest.approx(ms, rel=1e-3)
    # a strong pull: every conv shares one rate, and the dear layer is no longer told apart
    _, _, pulled, _ = attribution.fit_rates(row_macs, kinds, np.zeros((12, 0)), ms, prior=10.0)
    assert pulled[2] / pulled[0] < 1.5


def test_the_profile_splits_time_between_layers_as_the_runtime_does():
    model = _chain()
    graph = kt.TaylorPrunableModel(model).channel_graph
    per_kind = kt.latency_profile(model, samples=6, cache_dir=False, timer=DearLayerTimer(), tile=8,
                                 attribute=False)
    attributed = kt.latency_profile(model, samples=6, cache_dir=False, timer=DearLayerTimer(), tile=8)
    # one time per MAC for all three: the dear layer's channels look as cheap as the others'
    assert max(abs(e) for e in _saving_errors(per_kind, graph).values()) > 0.3
    assert all(abs(e) < 0.1 for e in _saving_errors(attributed, graph).values())
    layers = attributed.layers.set_index("name")
    assert layers.scale["dear"] > 2 * layers.scale["last"]
    assert (attributed.samples.variant.str.startswith("cut ")).sum() == 3


def test_scales_are_cached_and_a_speedup_plan_measures_as_asked(tmp_path):
    model = _chain()
    profile = kt.latency_profile(model, samples=6, cache_dir=tmp_path, timer=DearLayerTimer(), tile=8)
    again = kt.latency_profile(_chain(), samples=6, cache_dir=tmp_path, timer=DearLayerTimer(), tile=8)
    assert again.from_cache and again.scales == pytest.approx(profile.scales)
    per_kind = kt.latency_profile(model, samples=6, cache_dir=False, timer=DearLayerTimer(), tile=8,
                                 attribute=False)

    def true_speedup(prof):
        pm = kt.TaylorPrunableModel(model, criterion="l1")
        pm.latency_profile = prof
        alive = np.ones(pm.channel_graph.num_units, bool)
        alive[pm.planned_prunables(None, cost="latency", goal=kt.Speedup(1.5))] = False
        return DearLayerTimer.ms(pm.channel_graph) / DearLayerTimer.ms(pm.channel_graph, alive)

    assert abs(true_speedup(again) / 1.5 - 1) < 0.05
    assert abs(true_speedup(again) / 1.5 - 1) < abs(true_speedup(per_kind) / 1.5 - 1)


def test_attribute_must_be_a_bool():
    with pytest.raises(kt.InvalidArgumentError, match="attribute"):
        kt.latency_profile(_chain(), attribute="yes", cache_dir=False, timer=DearLayerTimer(), tile=8)


def test_a_layer_holding_little_of_the_time_is_held_at_its_kinds_rate():
    # What a small layer's cut saves is about the size of the timing noise; a large one's stands above it.
    rng = np.random.default_rng(1)
    kinds = np.array(["conv"] * 6, dtype=object)
    row_macs = np.column_stack([rng.uniform(2e6, 1e7, 40)] + [rng.uniform(2e4, 1e5, 40) for _ in range(5)])
    truth = np.array([3e-6, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6])  # the large layer is dear, the small ones alike
    ms = (0.3 + row_macs @ truth) * (1 + 0.01 * rng.standard_normal(40))  # 1% timing noise
    assert attribution.macs_share(row_macs)[0] > 10 * attribution.macs_share(row_macs)[1:].max()
    _, kind_rate, rates, _ = attribution.fit_rates(row_macs, kinds, np.zeros((40, 0)), ms)
    assert rates[0] / np.median(rates[1:]) > 2  # the large layer's own rate is measured
    assert np.all(np.abs(rates[1:] / kind_rate["conv"] - 1) < 0.1)  # the small ones' noise is not
