"""Checks that keep real training workflows from hanging or corrupting a model.

Infinite datasets without step bounds, non-finite inputs, weights and
scores, a custom `train_step` that pruning would bypass, and the direction
of the validation metric: each is found before any training where it can be,
and answered with an error that names the argument at fault.
"""

import numpy as np
import tensorflow as tf

import keras
from keras import tree

from keras_taylor import _compat
from keras_taylor.errors import InvalidArgumentError, PruningStateError, UnsupportedModelError

# Batches of a dataset read for NaN/Inf before training; arrays are read whole.
FIRST_BATCHES = 2
MODES = ("auto", "min", "max")

# Keras metric classes that carry no `_direction` although their better side
# is plain: counts of errors fall, counts of hits rise.
_DIRECTION_OF_CLASS = {
    "FalsePositives": "down", "FalseNegatives": "down",
    "TruePositives": "up", "TrueNegatives": "up",
}

CUSTOM_STEP_HELP = (
    "Prune the functional model inside it instead: inner = keras.Model(model.inputs, model.outputs); "
    "inner.compile(optimizer, loss=<the loss your train_step minimises>, metrics=...); "
    "pruned, info = kt.compress(inner, ...); then put the pruned layers back in your class with "
    "YourModel(pruned.inputs, pruned.outputs) (worked example: docs/errors.md, 'A model with its own train_step')."
)


def is_infinite(data):
    return isinstance(data, tf.data.Dataset) and int(data.cardinality()) == int(tf.data.INFINITE_CARDINALITY)


def check_steps(value, name):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0):
        raise InvalidArgumentError(f"{name} must be a positive int or None, got {value!r}")


def check_bounded(data, name, steps, steps_name):
    """Refuses a dataset that never ends unless `steps_name` bounds its reading."""
    check_steps(steps, steps_name)
    if steps is None and is_infinite(data):
        raise InvalidArgumentError(
            f"{name} is an infinite dataset (it repeats forever), so one pass over it never ends: "
            f"give {steps_name}=<batches per pass>, as for Model.fit, or take() a finite part of it."
        )


def check_finite_data(data, name, batches=FIRST_BATCHES):
    """Raises if the first `batches` of `data` (all of it, for arrays) hold NaN or Inf.

    `data`: a `tf.data.Dataset`, or arrays `(x, y[, sample_weight])` or `x`.
    """
    if isinstance(data, tf.data.Dataset):
        for i, batch in enumerate(data.take(batches)):
            _check_structure(batch, f"{name} (batch {i + 1})")
        return
    _check_structure(data, name)


def _check_structure(data, name):
    parts = data if isinstance(data, (tuple, list)) and len(data) in (2, 3) else (data,)
    labels = ("x", "y", "sample_weight") if len(parts) > 1 else ("x",)
    for label, part in zip(labels, parts):
        for array in tree.flatten(part):
            if array is None:
                continue
            if isinstance(array, tf.Tensor) and not array.dtype.is_floating:
                continue
            values = np.asarray(array)
            if values.dtype.kind in "fc" and not np.isfinite(values).all():
                count = int((~np.isfinite(values)).sum())
                raise InvalidArgumentError(
                    f"{name}: {label} holds {count} non-finite value(s) (NaN or Inf); training on them "
                    "would make the weights non-finite. Clean or drop those samples first."
                )


def non_finite_weights(model):
    """Names of the layers of `model` with a NaN/Inf weight (batch-norm statistics included)."""
    bad = []
    for layer in leaf_layers(model):
        for weight in layer.weights:
            if weight.dtype.startswith("float") and not np.isfinite(np.asarray(weight.numpy())).all():
                bad.append(layer.name)
                break
    return bad


def leaf_layers(model):
    """The layers of `model`, with nested models opened."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def scores_finite(pm):
    return bool(np.isfinite(pm.score_sum.numpy()).all())


def check_train_step(model):
    """Refuses a model whose class overrides `train_step` (or `compute_loss`).

    Pruning wraps the model's layers in a `TaylorPrunableModel`, whose own
    step gathers the scores, so the user's step would silently never run.
    """
    for method in ("train_step", "compute_loss"):
        mine = getattr(type(model), method, None)
        # Keras's own classes, keras-hub's and ours keep the standard contract.
        if mine is None or getattr(mine, "__module__", "").split(".")[0].startswith("keras"):
            continue
        raise UnsupportedModelError(
            f"model '{model.name}' (class {type(model).__name__}) overrides {method}: compress fine-tunes "
            f"and scores with Keras's standard training step and the compiled loss, so your {method} would "
            f"never run. {CUSTOM_STEP_HELP}"
        )


def check_has_loss(model):
    if not _compat.has_compiled_loss(model):
        raise PruningStateError(
            f"model '{model.name}' was compiled without a loss: compress scores filters by the gradient "
            "of the compiled loss and fine-tunes with it, so compile it with one: "
            "model.compile(optimizer, loss=..., metrics=...)."
        )


def check_mode(mode):
    if mode not in MODES:
        raise InvalidArgumentError(f"mode must be one of {MODES}, got {mode!r}")


def resolve_metric(pm, dataset, metric, mode, needs_direction):
    """Checks that `pm` computes `metric`; returns True if lower is better.

    Runs one evaluation batch of `dataset` so Keras builds its metrics (their
    names depend on outputs and losses). The direction comes from `mode`, or
    from the metric object Keras built (`_direction`, as Keras's own
    EarlyStopping reads it).
    """
    if metric == "loss":
        return mode != "max"
    results = pm.evaluate(dataset, steps=1, verbose=0, return_dict=True)
    if metric not in results:
        hint = ""
        if metric.startswith("val_") and metric[4:] in results:
            hint = (
                f" Drop the 'val_' prefix: metric={metric[4:]!r} (compress computes it on "
                "validation_data itself)."
            )
        raise InvalidArgumentError(
            f"metric {metric!r} is not computed by the compiled model; available: {sorted(results)}."
            + (hint or f" Compile the model with it, e.g. metrics=[{metric!r}].")
        )
    if mode != "auto":
        return mode == "min"
    if metric.endswith("loss"):
        return True
    direction = _keras_direction(pm, metric)
    if direction is None and needs_direction:
        raise InvalidArgumentError(
            f"metric {metric!r}: Keras does not know whether a higher or a lower value is better; "
            "pass mode='max' (accuracy-like) or mode='min' (error-like)."
        )
    return direction != "up"


def _keras_direction(pm, metric):
    for m in pm.metrics:
        for sub in _compat.leaf_metrics(m):
            names = {sub.name}
            names.update(f"{prefix}_{sub.name}" for prefix in getattr(pm, "output_names", None) or [])
            if metric in names or metric.endswith("_" + sub.name):
                return _compat.metric_direction(sub) or _DIRECTION_OF_CLASS.get(type(sub).__name__)
    return None


def check_compress_data(ds, train, validation_data, val, steps_per_epoch, validation_steps):
    """What `compress` reads must end and be finite; returns `val` bounded by `validation_steps`."""
    check_bounded(train, "ds", steps_per_epoch, "steps_per_epoch")
    check_finite_data(ds if not isinstance(ds, tf.data.Dataset) else train, "ds")
    if val is None:
        check_steps(validation_steps, "validation_steps")
        return None
    check_bounded(val, "validation_data", validation_steps, "validation_steps")
    check_finite_data(validation_data if not isinstance(validation_data, tf.data.Dataset) else val, "validation_data")
    # The same first batches at every validation, so the scores compare.
    return val if validation_steps is None else val.take(int(validation_steps))


def check_class_weight(class_weight):
    if class_weight is not None and not isinstance(class_weight, dict):
        raise InvalidArgumentError(
            f"class_weight must be a dict {{class index: weight}} or None, got {type(class_weight).__name__}"
        )
