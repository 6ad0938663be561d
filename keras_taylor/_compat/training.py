"""Private access to training: compiled loss and metrics, optimizers, replicas, steps.

Part of `keras_taylor._compat` (see its docstring). Nothing here imports keras_taylor.
"""

import keras


def compute_loss(model, x, y, y_pred, sample_weight, training):
    """The compiled loss of `model`, as its own train step computes it.

    Public stand-in: `model.compute_loss`, which Keras's train step wraps.
    """
    return model._compute_loss(
        x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
    )


def has_compiled_loss(model):
    """Whether `model.compile` was given a loss. Public stand-in: none."""
    return getattr(model, "_compile_loss", None) is not None


def track_loss(model, loss, batch):
    """Records `loss` in the `loss` metric as Keras's own train step does.

    Public stand-in: none; the tracker and the unscaling under a
    distribution strategy are Keras internals.
    """
    from keras.src.losses import loss as loss_module

    # Newer Keras (3.15 among them) divides the loss by the number of replicas
    # before the gradient and multiplies it back for the tracker; Keras 3.5
    # does neither, so there the loss is tracked as it is.
    unscale = getattr(loss_module, "unscale_loss_for_distribution", None)
    model._loss_tracker.update_state(loss if unscale is None else unscale(loss), sample_weight=batch)


def compiled_metric_and_loss(model):
    """The compiled metrics and loss containers (None when not compiled).

    Public stand-in: none; they are built lazily at the first step.
    """
    return getattr(model, "_compile_metrics", None), getattr(model, "_compile_loss", None)


def leaf_metrics(metric):
    """The metrics inside one of `model.metrics` (Keras groups the compiled
    ones in a container); a plain metric is its own leaf.

    Public stand-in: none; the containers are Keras internals.
    """
    from keras.src.trainers.compile_utils import CompileMetrics, MetricsList

    return metric.metrics if isinstance(metric, (CompileMetrics, MetricsList)) else [metric]


def metric_direction(metric):
    """'up', 'down' or None: what Keras knows of which way a metric improves.

    Public stand-in: none; `EarlyStopping` reads the same private attribute.
    """
    return getattr(metric, "_direction", None)


def compile_arguments(model):
    """The arguments `model.compile` was called with, as the objects given
    (None if unknown).

    Public stand-in: `model.get_compile_config()`, which serialises them, so
    an unregistered loss or schedule cannot come back from it.
    """
    return getattr(getattr(model, "_compile_config", None), "config", None)


def learning_rate_schedule(optimizer):
    """The optimizer's learning-rate schedule object, or None for a number.

    Public stand-in: `optimizer.learning_rate`, which evaluates the schedule.
    """
    value = getattr(optimizer, "_learning_rate", None)
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule) or (
        callable(value) and not isinstance(value, keras.Variable)
    ):
        return value
    return None


def config_without_schedule(optimizer):
    """`optimizer.get_config()` with a plain learning rate in place of its schedule.

    Public stand-in: `get_config`, which serialises the schedule and fails on
    one Keras cannot look up by name; read on a shallow copy holding a 0.0
    tensor (Keras 3.5's `get_config` has no branch for a Python float).
    """
    proxy = object.__new__(type(optimizer))
    proxy.__dict__.update(optimizer.__dict__)
    object.__setattr__(proxy, "_learning_rate", keras.ops.convert_to_tensor(0.0))
    return proxy.get_config()


def assign_add_summed_over_replicas(variable, delta):
    """Adds `delta` to a `keras.Variable(aggregation="sum")` from every replica.

    Public stand-in: `variable.assign_add(delta)` with Keras's "sum"
    aggregation. Newer Keras passes the aggregation to the `tf.Variable`, and
    its own `assign_add` in a replica context assigns (value + delta), which
    SUM aggregation would add up once per replica, so the `tf.Variable`'s
    `assign_add` is used. Keras 3.5 creates the `tf.Variable` without an
    aggregation: each replica then updates its own copy, so the deltas are
    summed across replicas first.
    """
    import tensorflow as tf

    target = variable.value
    context = tf.distribute.get_replica_context()
    if (
        context is not None
        and context.num_replicas_in_sync > 1
        and getattr(target, "aggregation", None) != tf.VariableAggregation.SUM
    ):
        delta = context.all_reduce(tf.distribute.ReduceOp.SUM, delta)
    target.assign_add(delta)


def replicas_dividing_the_loss():
    """The factor by which Keras's train step divided the loss per replica.

    Public stand-in: none (inside Keras's `Trainer._compute_loss`). Newer
    Keras divides each replica's loss by the number of replicas
    (`keras.src.losses.loss.scale_loss_for_distribution`), so gradients sum
    to the global mean over replicas; Keras 3.5 does not divide (1).
    """
    import tensorflow as tf
    from keras.src.losses import loss as loss_module

    if getattr(loss_module, "scale_loss_for_distribution", None) is None:
        return 1
    return tf.distribute.get_strategy().num_replicas_in_sync


def steps_done_in_epoch(model, batch, steps_in_epoch=None):
    """How many training steps of the epoch have run when
    `on_train_batch_end(batch)` is called.

    Public stand-in: `batch + 1`. Keras (3.6 on) passes the last step a call
    covers, so that holds with `compile(steps_per_execution=k)` too; Keras 3.5
    passes the call's first step, so its k-step calls end k - 1 steps later
    (fewer in an epoch's last, shorter call).
    """
    from keras.src.trainers import epoch_iterator

    if hasattr(epoch_iterator.EpochIterator, "__next__"):
        return int(batch) + 1
    done = int(batch) + int(getattr(model, "steps_per_execution", 1) or 1)
    return done if steps_in_epoch is None else min(done, int(steps_in_epoch))
