"""TaylorPrunableModel: counts, learnables, scores, pruning, save/load."""

import numpy as np
import pytest

import keras
from keras import layers

import keras_taylor as kt

from helpers import (
    alive_channels,
    assert_masked_equals_stripped,
    assert_outputs_close,
    conv_params,
    dense_params,
    prune_channels,
    rand,
    randomize_weights,
    tiny_cnn,
    tiny_cnn_params,
    units_of,
)

X = rand((4, 8, 8, 3))
Y = rand((4, 3), 1)


def _pm(filters=(4, 6), **kwargs):
    model = randomize_weights(tiny_cnn(filters=filters))
    return model, kt.TaylorPrunableModel(model, **kwargs)


def _gap_dense(filters=4):
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(filters, 3, padding="same", name="a")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    return randomize_weights(keras.Model(inputs, layers.Dense(1, name="d")(x)))


# ------------------------------------------------------------ counts


def test_num_prunables_and_learnables_dataframe():
    _, pm = _pm()
    assert pm.num_prunables == (4 - 1) + (6 - 1)
    prune_channels(pm, "c0", [0, 1])
    prune_channels(pm, "c1", [5])
    assert pm.num_prunables == (2 - 1) + (5 - 1)

    table = pm.learnables
    assert list(table.columns) == ["layer", "parameter", "shape", "size"]
    assert "ChannelMask" not in " ".join(map(str, table["layer"]))
    # Trainable weights only: the two BN moving statistics are state.
    trainable = tiny_cnn_params(3, (2, 5)) - 2 * (2 + 5)
    assert int(table["size"].sum()) == trainable
    kernel = table[(table["layer"] == "c1") & (table["parameter"] == "kernel")]
    assert tuple(kernel["shape"].iloc[0]) == (3, 3, 2, 5)
    assert int(kernel["size"].iloc[0]) == 9 * 2 * 5
    assert_masked_equals_stripped(pm, X, tiny_cnn_params(3, (2, 5)))


def test_update_prunables_never_removes_a_layers_last_channel():
    _, pm = _pm(filters=(2, 3), criterion="random", seed=0)
    assert pm.update_prunables(max_to_prune=100) == 1 + 2
    assert alive_channels(pm, "c0") == 1 and alive_channels(pm, "c1") == 1
    assert pm.num_prunables == 0
    assert pm.update_prunables(max_to_prune=5) == 0
    assert_masked_equals_stripped(pm, X, tiny_cnn_params(3, (1, 1)))


def test_coupled_group_respects_every_member_layer():
    # a and b are added: each unit is a channel of both, so of their two
    # units only one may go; c loses two of its three.
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(2, 1, name="a")(inputs)
    b = layers.Conv2D(2, 1, name="b")(inputs)
    x = layers.Conv2D(3, 1, name="c")(layers.Add()([a, b]))
    model = randomize_weights(
        keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(x)))
    )
    pm = kt.TaylorPrunableModel(model, criterion="l1")
    assert pm.update_prunables(max_to_prune=10) == 1 + 2
    expected = 2 * conv_params(1, 3, 1) + conv_params(1, 1, 1) + dense_params(1, 2)
    assert_masked_equals_stripped(pm, X, expected)


# ------------------------------------------------------------ taylor scores


def test_taylor_score_matches_hand_computation():
    model = _gap_dense()
    pm = kt.TaylorPrunableModel(model, normalize=False)
    y = rand((4, 1), 3)
    pm.update_score(X, y, loss="mse")
    pm.update_score(X[:2], y[:2], loss="mse")
    # Mask sits on the Dense input g (B, 4); per-sample gradient of the mse
    # of sample b with respect to g[b] is 2 (pred_b - y_b) w.
    feats = keras.Model(model.input, model.layers[-2].output)
    w = model.get_layer("d").get_weights()[0][:, 0]

    def per_sample(xb, yb):
        g = np.asarray(feats(xb))
        pred = np.asarray(model(xb))
        return np.abs(g * (2 * (pred - yb)) * w)

    expected = np.concatenate([per_sample(X, y), per_sample(X[:2], y[:2])]).mean(0)
    np.testing.assert_allclose(pm.scores[units_of(pm, "a")], expected, rtol=1e-4)
    assert float(pm.score_count.numpy()) == 6


def test_taylor_prunes_the_channel_that_does_not_matter():
    model = _gap_dense(filters=5)
    kernel, bias = model.get_layer("d").get_weights()
    kernel[3] = 0.0
    model.get_layer("d").set_weights([kernel, bias])
    pm = kt.TaylorPrunableModel(model)
    pm.update_score(X, rand((4, 1), 2), loss="mse")
    assert pm.update_prunables(max_to_prune=1) == 1
    assert not pm.alive[units_of(pm, "a", [3])].any()
    assert alive_channels(pm, "a") == 4
    small = assert_masked_equals_stripped(pm, X, conv_params(9, 3, 4) + dense_params(4, 1))
    # Removing a channel the output ignores changes nothing at all.
    assert_outputs_close(model(X), small(X))


def test_update_score_with_compiled_loss_and_reset():
    _, pm = _pm()
    pm.compile(loss="mse")
    pm.update_score(X, Y)
    assert float(pm.score_count.numpy()) == 4
    assert np.all(np.isfinite(pm.scores[pm.channel_graph.unit_prunable]))
    assert pm.update_prunables(max_to_prune=3) == 3
    assert float(pm.score_count.numpy()) == 0
    assert float(np.abs(pm.score_sum.numpy()).sum()) == 0
    with pytest.raises(kt.PruningStateError, match="update_score"):
        pm.update_prunables(max_to_prune=1)
    alive = alive_channels(pm, "c0"), alive_channels(pm, "c1")
    assert sum(alive) == 10 - 3
    assert_masked_equals_stripped(pm, X, tiny_cnn_params(3, alive))


def test_update_score_with_explicit_loss_function_of_predictions_only():
    _, pm = _pm()
    pm.update_score(X, loss=lambda y_pred: keras.ops.mean(y_pred ** 2))
    assert float(pm.score_sum.numpy().sum()) > 0


def test_update_score_with_structured_y_for_multi_output():
    inputs = keras.Input((8, 8, 3))
    a = layers.ReLU()(layers.Conv2D(4, 3, name="a")(inputs))
    b = layers.Conv2D(5, 3, name="b")(a)
    o1 = layers.Dense(2, name="o1")(layers.GlobalAveragePooling2D()(a))
    o2 = layers.Dense(1, name="o2")(layers.GlobalAveragePooling2D()(b))
    model = randomize_weights(keras.Model(inputs, {"o1": o1, "o2": o2}))
    pm = kt.TaylorPrunableModel(model)
    pm.compile(loss={"o1": "mse", "o2": "mae"})
    pm.update_score(X, {"o1": rand((4, 2), 4), "o2": rand((4, 1), 5)})
    scores = pm.scores
    assert np.all(scores[units_of(pm, "a")] > 0)
    assert np.all(scores[units_of(pm, "b")] > 0)
    assert pm.update_prunables(max_to_prune=4) == 4
    alive = alive_channels(pm, "a"), alive_channels(pm, "b")
    expected = (
        conv_params(9, 3, alive[0]) + conv_params(9, alive[0], alive[1])
        + dense_params(alive[0], 2) + dense_params(alive[1], 1)
    )
    assert_masked_equals_stripped(pm, X, expected)


def test_fit_gathers_scores_in_train_step():
    _, pm = _pm()
    pm.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    pm.fit(X, Y, batch_size=2, epochs=1, verbose=0)
    assert float(pm.score_count.numpy()) == 4
    assert np.all(pm.scores[pm.channel_graph.unit_prunable] > 0)
    assert pm.update_prunables(max_to_prune=2) == 2
    alive = alive_channels(pm, "c0"), alive_channels(pm, "c1")
    assert_masked_equals_stripped(pm, X, tiny_cnn_params(3, alive))


def test_normalize_scales_taylor_scores_to_unit_norm_per_layer():
    model = randomize_weights(tiny_cnn(filters=(4, 6)))
    normed = kt.TaylorPrunableModel(model, normalize=True)
    raw = kt.TaylorPrunableModel(model)
    for pm in (normed, raw):
        pm.update_score(X, Y, loss="mse")
    assert normed.get_config()["normalize"] and not raw.get_config()["normalize"]
    for layer in ("c0", "c1"):
        scaled = normed.scores[units_of(normed, layer)]
        plain = raw.scores[units_of(raw, layer)]
        np.testing.assert_allclose(np.linalg.norm(scaled), 1.0, rtol=1e-6)
        np.testing.assert_allclose(scaled, plain / np.linalg.norm(plain), rtol=1e-6)


def test_normalize_mean_divides_each_layers_scores_by_their_mean_and_survives_the_config():
    model = randomize_weights(tiny_cnn(filters=(4, 6)))
    normed = kt.TaylorPrunableModel(model, normalize="mean")
    raw = kt.TaylorPrunableModel(model)
    for pm in (normed, raw):
        pm.update_score(X, Y, loss="mse")
    for layer in ("c0", "c1"):
        plain = raw.scores[units_of(raw, layer)]
        np.testing.assert_allclose(normed.scores[units_of(normed, layer)], plain / plain.mean(), rtol=1e-6)
    assert normed.get_config()["normalize"] == "mean"
    with pytest.raises(kt.errors.InvalidArgumentError, match="normalize"):
        kt.TaylorPrunableModel(model, normalize="median")


def test_spatial_reduction_sum_scales_by_positions():
    model = randomize_weights(tiny_cnn(filters=(4, 6)))
    mean = kt.TaylorPrunableModel(model, spatial_reduction="mean", normalize=False)
    total = kt.TaylorPrunableModel(model, spatial_reduction="sum", normalize=False)
    for pm in (mean, total):
        pm.update_score(X, Y, loss="mse")
    # c0 enters c1 on an 8x8 map; c1 enters the Dense after pooling.
    np.testing.assert_allclose(
        total.scores[units_of(total, "c0")],
        64 * mean.scores[units_of(mean, "c0")], rtol=1e-4,
    )
    np.testing.assert_allclose(
        total.scores[units_of(total, "c1")],
        mean.scores[units_of(mean, "c1")], rtol=1e-4,
    )


# ------------------------------------------------------------ baselines


def _l1_model(scale_a):
    """Filter j of a has L1 norm proportional to (j + 1) * scale_a, of b
    to (j + 1)."""
    model = tiny_cnn(filters=(4, 6))
    randomize_weights(model)
    for name, scale in (("c0", scale_a), ("c1", 1.0)):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        steps = (np.arange(kernel.shape[-1]) + 1.0) * scale
        layer.set_weights([np.ones_like(kernel) * steps, bias])
    return model


def test_l1_criterion_without_and_with_normalisation():
    plain = kt.TaylorPrunableModel(_l1_model(1000.0), criterion="l1", normalize=False)
    assert plain.update_prunables(max_to_prune=3) == 3
    assert alive_channels(plain, "c0") == 4
    assert not plain.alive[units_of(plain, "c1", [0, 1, 2])].any()
    assert_masked_equals_stripped(plain, X, tiny_cnn_params(3, (4, 3)))

    # Normalised per layer: c0 -> [1..4] / sqrt(30), c1 -> [1..6] / sqrt(91);
    # the three lowest are c1[0] (.105), c0[0] (.183), c1[1] (.210).
    normed = kt.TaylorPrunableModel(_l1_model(1000.0), criterion="l1", normalize=True)
    assert normed.update_prunables(max_to_prune=3) == 3
    assert not normed.alive[units_of(normed, "c0", [0])].any()
    assert not normed.alive[units_of(normed, "c1", [0, 1])].any()
    assert alive_channels(normed, "c0") == 3 and alive_channels(normed, "c1") == 4
    assert_masked_equals_stripped(normed, X, tiny_cnn_params(3, (3, 4)))


def test_random_criterion_is_seeded():
    model = randomize_weights(tiny_cnn(filters=(4, 6)))
    runs = []
    for _ in range(2):
        pm = kt.TaylorPrunableModel(model, criterion="random", seed=7)
        assert pm.update_prunables(max_to_prune=4) == 4
        runs.append(pm.alive.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    alive = alive_channels(pm, "c0"), alive_channels(pm, "c1")
    assert_masked_equals_stripped(pm, X, tiny_cnn_params(3, alive))


# ------------------------------------------------------------ save / load


def test_save_and_load_keeps_masks_scores_and_outputs(tmp_path):
    _, pm = _pm()
    prune_channels(pm, "c0", [2])
    prune_channels(pm, "c1", [0, 4])
    pm.update_score(X, Y, loss="mse")
    path = str(tmp_path / "prunable.keras")
    pm.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, kt.TaylorPrunableModel)
    np.testing.assert_array_equal(loaded.alive, pm.alive)
    np.testing.assert_allclose(loaded.score_sum.numpy(), pm.score_sum.numpy())
    assert float(loaded.score_count.numpy()) == 4
    for name, layer in pm._mask_layers.items():
        np.testing.assert_array_equal(
            loaded._mask_layers[name].mask.numpy(), layer.mask.numpy()
        )
    assert_outputs_close(pm(X, training=False), loaded(X, training=False))
    assert_masked_equals_stripped(loaded, X, tiny_cnn_params(3, (3, 4)))
    # Pruning continues from the loaded scores exactly as from the original.
    assert loaded.update_prunables(2) == pm.update_prunables(2) == 2
    np.testing.assert_array_equal(loaded.alive, pm.alive)


def _tiny_scored_model():
    import keras
    import keras_taylor as kt

    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(3, 1)(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    return kt.TaylorPrunableModel(keras.Model(inputs, outputs))


def test_channel_mask_skips_multiply_only_when_all_kept():
    import numpy as np
    import tensorflow as tf
    from keras_taylor.masking import ChannelMask

    layer = ChannelMask(3)
    layer.build((None, 3))
    x = tf.constant([[2.0, 3.0, 4.0]])
    run = tf.function(lambda t: layer(t))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [[1.0, 1.0, 1.0]])
    layer.mask.assign([1.0, 0.0, 1.0])
    np.testing.assert_array_equal(run(x).numpy(), [[2.0, 0.0, 4.0]])  # the same traced graph, other branch
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [[1.0, 0.0, 1.0]])


def test_compiled_update_score_matches_eager_and_follows_the_loss():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((8, 6, 6, 2), dtype=np.float32)
    y = rng.random((8, 2), dtype=np.float32)
    compiled, eager = _tiny_scored_model(), _tiny_scored_model()
    eager.compile(run_eagerly=True)
    for pm in (compiled, eager):
        pm.update_score(x, y, loss="mse")
        pm.update_score(x[:5], y[:5], loss="mse")  # another batch size reuses the function
    np.testing.assert_allclose(compiled.score_sum.numpy(), eager.score_sum.numpy(), rtol=1e-5, atol=1e-7)
    assert compiled.score_count.numpy() == 13
    mse = compiled.score_sum.numpy().copy()
    compiled.reset_scores()
    compiled.update_score(x, y, loss="mae")  # a new loss must not reuse the mse graph
    eager.reset_scores()
    eager.update_score(x, y, loss="mae")
    np.testing.assert_allclose(compiled.score_sum.numpy(), eager.score_sum.numpy(), rtol=1e-5, atol=1e-7)
    assert not np.allclose(compiled.score_sum.numpy(), mse * 8 / 13)
