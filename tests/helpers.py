"""Shared model builders and assertions for keras_taylor tests.

Every pruning test should go through `assert_masked_equals_stripped`, which
checks the one contract that catches almost every slicing bug: the stripped
model computes exactly what the masked model computes.

Parameter counts used as expectations must be computed by hand from layer
shapes with `conv_params`, `dense_params`, ... (never with keras_taylor's own
accounting), so that a wrong slice in keras_taylor cannot also fix the
expectation.
"""

import pathlib

import numpy as np
import pytest

import keras
from keras import layers, tree

import keras_taylor as kt

# ------------------------------------------------------------ locations

REPO = pathlib.Path(__file__).resolve().parents[1]
# conftest.py points Keras's dataset cache here (KERAS_HOME) before Keras loads.
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data_path(*parts):
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real dataset {path} is not available on this machine")
    return path


# ------------------------------------------------------------ hand counts


def conv_params(kernel, cin, cout, bias=True, groups=1):
    """Conv1D/2D parameters; `kernel` is an int (1D) or a tuple."""
    size = int(np.prod(kernel))
    return size * (cin // groups) * cout + (cout if bias else 0)


def dense_params(nin, nout, bias=True):
    return nin * nout + (nout if bias else 0)


def bn_params(c, center=True, scale=True):
    """gamma, beta and the two moving statistics."""
    return c * (2 + int(center) + int(scale))


def depthwise_params(kernel, c, multiplier=1, bias=True):
    size = int(np.prod(kernel))
    return size * c * multiplier + (c * multiplier if bias else 0)


def separable_params(kernel, cin, cout, multiplier=1, bias=True):
    size = int(np.prod(kernel))
    return size * cin * multiplier + cin * multiplier * cout + (cout if bias else 0)


# ------------------------------------------------------------ weights / data


def randomize_weights(model, seed=0):
    """Non-trivial weights everywhere (in place), so a wrongly kept or
    dropped channel changes the output.

    Batch-norm betas and moving means get large offsets: a channel whose conv
    output is masked but whose BN shift is not would then leak a constant.
    """
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        values = []
        for w in layer.weights:
            shape = tuple(w.shape)
            name = w.name
            if "variance" in name:
                v = rng.uniform(0.5, 2.0, shape)
            elif "gamma" in name or name == "scale":
                v = rng.uniform(0.5, 1.5, shape)
            elif "mask" in name or w.dtype not in ("float32", "float64"):
                v = np.asarray(w.numpy())
            else:
                v = rng.normal(0.0, 0.5, shape)
            values.append(np.asarray(v, dtype=w.dtype))
        if values:
            layer.set_weights(values)
    return model


def _all_layers(model):
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_all_layers(layer))
        else:
            out.append(layer)
    return out


def rand(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def inputs_like(model, batch=2, seed=0):
    """Random inputs for `model`, in the structure its inputs are in."""
    arrays = [
        rand((batch,) + tuple(t.shape[1:]), seed + i)
        for i, t in enumerate(model.inputs)
    ]
    return arrays[0] if len(arrays) == 1 else arrays


# ------------------------------------------------------------ pruning


def units_of(pm, layer_name, channels=None):
    """The channel groups of `layer_name`'s output channels (all or some)."""
    units = np.asarray(pm.channel_graph.layer_units[layer_name])
    return units if channels is None else units[np.asarray(channels)]


def prune_channels(pm, layer_name, channels):
    """Masks the groups of `channels` of `layer_name` (with what they
    couple to), by `set_unit_alive`."""
    alive = pm.alive.copy()
    alive[units_of(pm, layer_name, channels)] = False
    pm.set_unit_alive(alive)
    return pm


def alive_channels(pm, layer_name):
    return int(pm.alive[units_of(pm, layer_name)].sum())


def wrap_and_prune(model, prune, seed=0, **kwargs):
    """Randomises `model`, wraps it and prunes `{layer: [channels]}`."""
    randomize_weights(model, seed)
    pm = kt.TaylorPrunableModel(model, **kwargs)
    for layer_name, channels in prune.items():
        prune_channels(pm, layer_name, channels)
    return pm


# ------------------------------------------------------------ assertions


def _flat_numpy(outputs):
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in tree.flatten(outputs)]


def assert_outputs_close(a, b, rel=1e-5, what="outputs"):
    fa, fb = _flat_numpy(a), _flat_numpy(b)
    assert len(fa) == len(fb), f"{what}: {len(fa)} vs {len(fb)} outputs"
    for i, (u, v) in enumerate(zip(fa, fb)):
        assert u.shape == v.shape, f"{what}[{i}]: shape {u.shape} vs {v.shape}"
        scale = max(1.0, float(np.max(np.abs(u))) if u.size else 1.0)
        diff = float(np.max(np.abs(u - v))) if u.size else 0.0
        assert diff <= rel * scale, (
            f"{what}[{i}]: max abs diff {diff:.3g} > {rel:g} * {scale:.3g}"
        )


def has_keras_taylor_layers(model):
    return any(
        type(layer).__module__.startswith("keras_taylor")
        for layer in _all_layers(model)
    )


def assert_masked_equals_stripped(pm, x, expected_params=None, stripped=None):
    """Strips `pm` and asserts `stripped(x) == pm(x)` in inference mode.

    Also asserts the stripped model holds no keras_taylor layer, and, when
    `expected_params` is given (a hand count), that
    `stripped.count_params()` equals it. Returns the stripped model.
    """
    if stripped is None:
        stripped = kt.strip_pruning(pm)
    assert not has_keras_taylor_layers(stripped), "keras_taylor layer left"
    masked = pm(x, training=False)
    small = stripped(x, training=False)
    assert_outputs_close(masked, small, what="stripped vs masked")
    if expected_params is not None:
        assert stripped.count_params() == expected_params, (
            f"stripped model has {stripped.count_params()} parameters, "
            f"hand count says {expected_params}"
        )
    return stripped


def assert_pruning_changes_output(model, pm, x):
    """Sanity check that the test really removed something that mattered."""
    before = _flat_numpy(model(x, training=False))
    after = _flat_numpy(pm(x, training=False))
    assert any(
        not np.allclose(a, b, atol=1e-6) for a, b in zip(before, after)
    ), "pruning did not change the output: the test prunes nothing"


# ------------------------------------------------------------ builders


def head(x, units=3):
    """GAP -> Dense: the usual unblocked way to end a test model."""
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D()(x)
    elif len(x.shape) == 3:
        x = layers.GlobalAveragePooling1D()(x)
    return layers.Dense(units, name="head")(x)


def conv_bn_relu(x, filters, kernel=3, name=None, **kwargs):
    conv = layers.Conv2D if len(x.shape) == 4 else layers.Conv1D
    x = conv(filters, kernel, padding="same", name=name, **kwargs)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def tiny_cnn(input_shape=(8, 8, 3), filters=(4, 6), classes=3):
    """Input -> [Conv-BN-ReLU] * n -> GAP -> Dense, convs named c0, c1..."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, f in enumerate(filters):
        x = conv_bn_relu(x, f, name=f"c{i}")
    return keras.Model(inputs, head(x, classes))


def tiny_cnn_params(cin, filters, classes=3, kernel=9):
    """Hand count of `tiny_cnn` with `filters` alive per conv (3x3)."""
    total, prev = 0, cin
    for f in filters:
        total += kernel * prev * f + f + bn_params(f)
        prev = f
    return total + dense_params(prev, classes)


#: Features some supported Keras releases lack (Keras 3.5: no batch
#: renormalization, no "sparsemax" activation); their tests skip there.
def keras_has_renorm():
    import inspect

    return "renorm" in inspect.signature(keras.layers.BatchNormalization).parameters


def keras_has_activation(name):
    try:
        keras.activations.get(name)
    except ValueError:
        return False
    return True


NEEDS_RENORM = pytest.mark.skipif(not keras_has_renorm(), reason="this Keras has no batch renormalization")


# ------------------------------------------------------------ compress workload


def small_cnn(filters=8, classes=3, activation="softmax"):
    """Conv-BN-ReLU, Conv-ReLU, GAP, Dense on 8x8x1 (convs c1, c2; BN bn1; head)."""
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(filters, 3, padding="same", name="c1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(filters, 3, padding="same", name="c2")(x)
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes, activation=activation, name="head")(x))


def toy_data(n=64, classes=3, seed=0):
    """`(x, y)` for `small_cnn`: class k lights pixel (k, k), so there is something to learn."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32") * 0.1
    x[np.arange(n), y, y, 0] += 3.0
    return x, y


def compiled(model, lr=1e-2, loss="sparse_categorical_crossentropy", **kwargs):
    """`model` compiled with Adam(lr), `loss` and (by default) accuracy."""
    kwargs.setdefault("metrics", ["accuracy"])
    model.compile(keras.optimizers.Adam(lr), loss, **kwargs)
    return model
