"""kt.analyze and kt.max_reduction against hand-computed numbers."""

import numpy as np
import pandas as pd
import pytest

import keras
from keras import layers

import keras_taylor as kt

from helpers import prune_channels, randomize_weights, tiny_cnn

REQUIRED = [
    "name", "type", "output_shape", "num_learnables", "learnables_reduction",
    "num_pruned_filters", "prunable", "blocked_by", "reason",
]


def test_analyze_plain_model_columns_and_values():
    model = tiny_cnn(filters=(4, 6))
    table = kt.analyze(model)
    assert set(REQUIRED) <= set(table.columns)
    assert list(table["name"]) == [l.name for l in model.layers[1:]]
    t = table.set_index("name")
    assert t.loc["c0", "type"] == "Conv2D"
    assert tuple(t.loc["c0", "output_shape"]) == (None, 8, 8, 4)
    assert t.loc["c0", "num_learnables"] == 27 * 4 + 4
    assert t.loc["c1", "num_learnables"] == 9 * 4 * 6 + 6
    # BatchNorm learnables are gamma and beta, not the moving statistics.
    bn = table[table["type"] == "BatchNormalization"].iloc[0]
    assert bn["num_learnables"] == 2 * 4
    assert (table["learnables_reduction"] == 0).all()
    assert (table["num_pruned_filters"] == 0).all()
    assert bool(t.loc["c0", "prunable"]) and bool(t.loc["c1", "prunable"])
    assert not bool(t.loc["head", "prunable"])
    assert t["blocked_by"].isna().all()
    # Multiply-accumulates per sample: positions x filters x kernel x inputs.
    assert t.loc["c0", "multiply_accumulates"] == 64 * 4 * 9 * 3
    assert t.loc["c1", "multiply_accumulates"] == 64 * 6 * 9 * 4
    assert t.loc["head", "multiply_accumulates"] == 6 * 3
    assert table["multiply_accumulates"].sum() == kt.TaylorPrunableModel(model).multiply_accumulates


def test_analyze_prunable_model_after_pruning():
    model = randomize_weights(tiny_cnn(filters=(4, 6)))
    pm = kt.TaylorPrunableModel(model)
    prune_channels(pm, "c0", [0, 1, 2])
    prune_channels(pm, "c1", [5])
    t = kt.analyze(pm).set_index("name")
    assert "ChannelMask" not in set(t["type"])
    assert t.loc["c0", "num_pruned_filters"] == 3
    assert t.loc["c1", "num_pruned_filters"] == 1
    assert tuple(t.loc["c0", "output_shape"]) == (None, 8, 8, 1)
    assert t.loc["c0", "num_learnables"] == 27 * 1 + 1
    assert t.loc["c0", "learnables_reduction"] == pytest.approx(1 - 28 / 112)
    # c1 loses 3 of 4 input channels and 1 of 6 filters.
    assert t.loc["c1", "num_learnables"] == 9 * 1 * 5 + 5
    assert t.loc["c1", "learnables_reduction"] == pytest.approx(1 - 50 / 222)
    assert t.loc["head", "num_learnables"] == 5 * 3 + 3
    assert t.loc["head", "num_pruned_filters"] == 0
    assert t.loc["c0", "multiply_accumulates"] == 64 * 1 * 9 * 3
    assert t.loc["c1", "multiply_accumulates"] == 64 * 5 * 9 * 1
    assert t.loc["head", "multiply_accumulates"] == 5 * 3
    assert t["multiply_accumulates"].sum() == pm.multiply_accumulates


def test_max_reduction_by_hand():
    # 3 -> c0(4) -> BN -> c1(6) -> BN -> GAP -> Dense(3); learnables:
    # c0 112, bn 8, c1 222, bn 12, dense 21 = 375. Keeping one channel per
    # layer: c0 28, bn 2, c1 10, bn 2, dense 6 = 48.
    model = tiny_cnn(filters=(4, 6))
    assert kt.max_reduction(model) == pytest.approx(1 - 48 / 375)
    pm = kt.TaylorPrunableModel(model)
    assert kt.max_reduction(pm) == pytest.approx(1 - 48 / 375)


def test_max_reduction_with_coupling_and_blockers():
    # a(4) + b(4) coupled; c(5) feeds a channel softmax: blocked.
    # Learnables: a 16, b 16, c 25, dense 5*2+2=12 -> 69.
    # Keeping one channel of the a/b group: a 4, b 4, c 1*5+5=10 -> 30.
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(4, 1, name="a")(inputs)
    b = layers.Conv2D(4, 1, name="b")(inputs)
    c = layers.Conv2D(5, 1, name="c")(layers.Add()([a, b]))
    x = layers.Softmax(name="ln")(c)
    model = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(x)))
    assert kt.max_reduction(model) == pytest.approx(1 - 30 / 69)
    t = kt.analyze(model).set_index("name")
    assert t.loc["c", "blocked_by"] == "ln"
    assert "normalises" in t.loc["c", "reason"]
    assert t.loc["a", "prunable"] and t.loc["b", "prunable"]


def test_max_reduction_of_dense_only_when_enabled():
    inputs = keras.Input((5,))
    x = layers.Dense(8, name="d1")(inputs)
    model = keras.Model(inputs, layers.Dense(2, name="d2")(x))
    assert kt.max_reduction(model) == 0.0
    # d1: 48 -> 6, d2: 18 -> 4; total 66 -> 10.
    assert kt.max_reduction(model, prune_dense=True) == pytest.approx(1 - 10 / 66)
    assert np.isfinite(kt.analyze(model, prune_dense=True)["num_learnables"]).all()


def test_analyze_counts_a_shared_layer_at_every_call():
    shared = keras.layers.Conv2D(4, 3, padding="same", name="shared")
    a, b = keras.Input((8, 8, 3)), keras.Input((4, 4, 3))
    pooled = [keras.layers.GlobalAveragePooling2D()(shared(t)) for t in (a, b)]
    model = keras.Model([a, b], keras.layers.Add()(pooled))
    t = kt.analyze(model).set_index("name")
    assert t.loc["shared", "multiply_accumulates"] == (64 + 16) * 4 * 9 * 3


def test_analyze_gives_every_unprunable_candidate_a_reason():
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(4, 1, name="a")(inputs)
    # normalised over the spatial axes too: still blockers now that the
    # channel-axis forms prune exactly
    b = layers.GroupNormalization(2, axis=1, name="gn")(a)
    c = layers.LayerNormalization(axis=(1, 2, 3), name="ln")(a)
    x = layers.GlobalAveragePooling2D()(layers.Add()([b, c]))
    model = keras.Model(inputs, layers.Dense(2, name="head")(layers.Dense(3, name="hidden")(x)))
    t = kt.analyze(model).set_index("name")
    assert t.loc["a", "blocked_by"] in ("gn", "ln")
    # every blocker is named, not only the first one
    assert "also blocked by" in t.loc["a", "reason"]
    assert {"gn", "ln"} <= {t.loc["a", "blocked_by"]} | {w for w in ("gn", "ln") if f"{w}:" in t.loc["a", "reason"]}
    for name in ("hidden", "head"):
        assert "prune_dense=True" in t.loc[name, "reason"] and pd.isna(t.loc[name, "blocked_by"])
    assert pd.isna(t.loc["gn", "reason"])  # not a candidate: creates no channels
    dense = kt.analyze(model, prune_dense=True).set_index("name")
    assert dense.loc["hidden", "prunable"] and pd.isna(dense.loc["hidden", "reason"])
    assert "output" in dense.loc["head", "reason"]


def test_compare_marks_filters_of_layers_that_create_none_as_not_applicable():
    model = tiny_cnn(filters=(4, 6))
    table = kt.compare(model, model).set_index("name")
    bn = table[table["type"] == "BatchNormalization"]
    assert len(bn) and bn["filters_before"].isna().all() and bn["filters_after"].isna().all()
    assert table.loc["c0", "filters_before"] == 4 and table.loc["c0", "filters_after"] == 4
    assert "<NA>" in table.to_string() and " 0 " not in table[["filters_before"]].to_string()
