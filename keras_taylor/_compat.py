"""Guards for private Keras access that differs across the supported Keras 3 releases.

Supported: TensorFlow 2.18-2.21 with Keras 3.5-3.15 (see README). Each function
stands in for one private access and says which public API it replaces.
(Issue 25 gathers every private access in this module; these guards join it.)
"""

def unscale_loss_for_distribution(loss):
    """The loss value Keras's own train step gives its loss tracker.

    Public stand-in: none (Keras's TensorFlow `train_step` does this
    internally). Newer Keras releases (3.15 among them) divide the loss by the
    number of replicas before the gradient
    (`keras.src.losses.loss.scale_loss_for_distribution`) and multiply it back
    for the tracker with `keras.src.losses.loss.unscale_loss_for_distribution`;
    Keras 3.5 does neither, so the loss is tracked as it is.
    """
    from keras.src.losses import loss as loss_module

    unscale = getattr(loss_module, "unscale_loss_for_distribution", None)
    return loss if unscale is None else unscale(loss)


def batch_norm_renorm(layer):
    """Whether a `BatchNormalization` layer uses batch renormalization.

    Public stand-in: `layer.renorm`, which newer Keras releases have; Keras 3.5
    has no renormalization (and no such attribute), so False there.
    """
    return bool(getattr(layer, "renorm", False))


def reset_keras_global_seed(value):
    """Keras's global random state from `value`, TensorFlow's left alone.

    Public stand-in: `keras.utils.set_random_seed(value)`, which also calls
    `tf.random.set_seed` (and so makes TensorFlow trace every function anew).
    The unseeded `keras.random` calls draw from a global SeedGenerator that is
    made afresh, from Python's (reseeded) generator, once it is dropped. Newer
    Keras also keeps the seed itself (`rng_utils.GLOBAL_RANDOM_SEED`); Keras
    3.5 has only the generator, stored under "global_seed_generator".
    """
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    seed_key = getattr(rng_utils, "GLOBAL_RANDOM_SEED", None)
    if seed_key is not None:
        global_state.set_global_attribute(seed_key, value)
    generator_key = getattr(seed_generator, "GLOBAL_SEED_GENERATOR", "global_seed_generator")
    global_state.set_global_attribute(generator_key, None)


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
