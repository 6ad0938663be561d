"""Compiling a new model with another model's own loss, metric and optimizer objects.

`get_compile_config()` followed by `compile_from_config()` serialises the
settings and looks them up again by name, which fails for what a user wrote
in Python without registering it (a focal-loss function, a `Loss` subclass,
a lambda, a learning-rate schedule class): Keras answers "Could not locate
function ..." or refuses to deserialise a lambda. The objects themselves are
at hand, so they are reused: losses and metric functions are stateless; metric
and optimizer objects hold state (counts, slots, the step), so each new model
gets a fresh copy of them.
"""

import warnings

import keras
from keras import tree

from keras_taylor import _compat
from keras_taylor.errors import InvalidArgumentError

_SETTINGS = ("loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly", "steps_per_execution", "jit_compile")


def compile_settings(model):
    """The arguments `model.compile` was called with, as objects; None if not compiled."""
    if not getattr(model, "compiled", False):
        return None
    config = _compat.compile_arguments(model)
    return None if config is None else dict(config)


def compile_with(new, settings, name="model"):
    """Compiles `new` with `settings` (from `compile_settings`), fresh state.

    Raises:
        InvalidArgumentError: the optimizer cannot be copied (its
            `get_config()` and `from_config()` do not round-trip); names it.
    """
    kwargs = {key: settings.get(key) for key in _SETTINGS if key in settings}
    kwargs["optimizer"] = fresh_optimizer(settings.get("optimizer"), name)
    kwargs["metrics"] = _fresh_metrics(settings.get("metrics"))
    kwargs["weighted_metrics"] = _fresh_metrics(settings.get("weighted_metrics"))
    new.compile(**kwargs)
    if new.built and new.optimizer is not None:
        new.optimizer.build(new.trainable_variables)
    return new


def fresh_optimizer(optimizer, name="model"):
    """A copy of `optimizer` with its settings and no state (no slots, step 0)."""
    if optimizer is None or isinstance(optimizer, str):
        return optimizer
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    try:
        schedule = _compat.learning_rate_schedule(optimizer)
        if schedule is not None:
            # A schedule is stateless and may be a class Keras cannot
            # serialise or look up by name: the object itself is reused.
            config = _compat.config_without_schedule(optimizer)
            config["learning_rate"] = schedule
        else:
            config = optimizer.get_config()
        return type(optimizer).from_config(config)
    except Exception as exc:
        raise InvalidArgumentError(
            f"the optimizer of {name} ({type(optimizer).__name__}) cannot be copied for the "
            f"pruned model: its get_config()/from_config() fail ({' '.join(str(exc).split())[:200]}). "
            "Give it a get_config() that from_config() accepts, or compile with a built-in optimizer."
        ) from None


def _fresh_metrics(metrics):
    if metrics is None:
        return None
    return tree.map_structure(_fresh_metric, metrics)


def _fresh_metric(metric):
    if not isinstance(metric, keras.metrics.Metric):
        return metric  # a name or a function: no state to share
    try:
        return type(metric).from_config(metric.get_config())
    except Exception as exc:
        warnings.warn(
            f"metric '{metric.name}' ({type(metric).__name__}) cannot be copied "
            f"({' '.join(str(exc).split())[:120]}); the new model shares the object, so the "
            "two models' values of it mix if both are evaluated at once.",
            stacklevel=3,
        )
        return metric
