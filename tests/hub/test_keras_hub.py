"""keras-hub models, built from their real preset configs, pruned, stripped and reloaded.

For every model of `hub_models.MODELS`: wrap it (`kt.TaylorPrunableModel`),
score a few random batches, prune at least `min_reduction` of its
learnables, strip it, and check that the stripped model computes what the
masked one does, saves and reloads with `safe_mode=True` (keras-hub's classes
are registered by importing keras_hub, as for the original), and that the
reduction keras-taylor accounts is the real `count_params` one within 2
points. Skipped where keras-hub is not installed (`pip install -e ".[hub]"`;
keras-hub 0.32 needs Keras >= 3.15, so the oldest-pair CI run has none).
"""

import pytest

import keras

import keras_taylor as kt

hub_models = pytest.importorskip("hub_models", reason="keras-hub is not installed")

from helpers import assert_masked_equals_stripped, assert_outputs_close, rand  # noqa: E402

BATCHES = 2  # scoring batches of random images


def _param(entry):
    marks = (pytest.mark.slow,) if entry.slow else ()
    return pytest.param(entry, marks=marks, id=entry.name)


def squared_outputs(y_pred):
    """A loss of the outputs alone (every output of a detector or segmenter counts)."""
    return sum(keras.ops.mean(keras.ops.square(t)) for t in keras.tree.flatten(y_pred))


def images(size, batch=2, seed=0):
    return rand((batch, size, size, 3), seed)


def prune_and_check(entry, tmp_path):
    """The whole check for one `HubModel`; returns the numbers the zoo table prints."""
    model = entry.build(entry.size)
    before = model.count_params()
    reference = model(images(entry.size), training=False)
    pm = kt.TaylorPrunableModel(model, **entry.wrap_options)
    for seed in range(BATCHES):
        pm.update_score(images(entry.size, seed=seed), loss=squared_outputs)
    pm.update_prunables(None, learnables_reduction=0.25)
    assert pm.learnables_reduction >= entry.min_reduction
    x = images(entry.size, seed=7)
    small = assert_masked_equals_stripped(pm, x)
    real = 1.0 - small.count_params() / before
    assert abs(real - pm.learnables_reduction) <= 0.02, (real, pm.learnables_reduction)
    path = tmp_path / f"{entry.name}.keras"
    small.save(path)
    blocking = sorted({type(layer).__name__ for layer in small.layers} & set(entry.unloadable))
    if blocking:  # a keras-hub bug; see HubModel.unloadable
        with pytest.raises(Exception, match="Unrecognized keyword arguments"):
            keras.saving.load_model(path, safe_mode=True)
    else:
        loaded = keras.saving.load_model(path, safe_mode=True)
        assert_outputs_close(small(x, training=False), loaded(x, training=False), what="reloaded vs stripped")
    # the user's model is untouched: same outputs as before wrapping
    assert_outputs_close(reference, model(images(entry.size), training=False), what="original after pruning")
    return {"before": before, "after": small.count_params(), "accounted": pm.learnables_reduction,
            "real": real, "reloads": not blocking}


@pytest.mark.parametrize("entry", [_param(m) for m in hub_models.MODELS])
def test_prune_strip_reload(entry, tmp_path):
    prune_and_check(entry, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("entry", [_param(m) for m in hub_models.MODELS if m.preset])
def test_preset_parameter_counts(entry):
    """The configs are the presets': keras-hub's metadata states the same count."""
    preset, params, size, part = entry.preset
    model = entry.build(size)
    counted = (model.backbone if part == "backbone" else model).count_params()
    assert counted == params, f"{preset}: built {counted}, metadata says {params}"
