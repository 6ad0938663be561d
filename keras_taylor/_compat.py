"""Every access to Keras internals, in one place.

keras_taylor reads a model's graph, traces training steps and re-creates
layers in ways Keras 3 has no public API for, across the supported releases
(TensorFlow 2.18-2.21 with Keras 3.5-3.15, see README). Each function here wraps one
such access and says which public API it stands in for, so a Keras upgrade
that moves something breaks here, in one small function, and nowhere else.
Nothing in this module imports keras_taylor.
"""

import contextlib
import importlib

import keras

# ---------------------------------------------------------------- models

try:  # keras.Model(inputs, outputs) returns a Functional, which is not public.
    from keras.src.models.functional import Functional
except ImportError:  # pragma: no cover
    Functional = keras.Model


def functional_of_sequential(model):
    """The functional graph a built `keras.Sequential` keeps (None if unbuilt).

    Public stand-in: none; `model.inputs`/`outputs` exist but not the nodes.
    """
    return getattr(model, "_functional", None)


def nodes_by_depth(functional):
    """{depth: [Node]} of a functional model (Keras's own execution order).

    Public stand-in: none (`model.operations` has no call nodes).
    """
    return functional._nodes_by_depth


def structures(functional):
    """The (inputs, outputs) nesting structures a functional model was built with.

    Public stand-in: `model.inputs`/`model.outputs`, which are flattened.
    """
    return functional._inputs_struct, functional._outputs_struct


def producer(tensor):
    """The operation that made a symbolic tensor, or None for a raw input.

    Public stand-in: none; `KerasTensor` keeps it in `_keras_history`.
    """
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history else None


def safe_mode_scope(safe_mode):
    """Context in which `from_config` may (or may not) re-create Lambda layers.

    Public stand-in: `keras.config.enable_unsafe_deserialization()`, which is
    global and permanent; this one is scoped.
    """
    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return SafeModeScope(safe_mode)


def all_sublayers(model):
    """Every layer inside `model`, nested ones included, not `model` itself.

    Public stand-in: walking `model.layers` by hand, which misses layers held
    by custom layers. Anything that is not a Keras layer holds none.
    """
    flatten = getattr(model, "_flatten_layers", None)
    return [] if flatten is None else list(flatten(include_self=False, recursive=True))


def built_input_shape(model):
    """The one input shape a built subclassed model was built or called with.

    None when it is not built, or was built with several inputs or a nested
    structure. Public stand-in: none; Keras keeps the shapes it built a
    layer with in `_build_shapes_dict` (to rebuild it when loading).
    """
    shapes = getattr(model, "_build_shapes_dict", None)
    if not getattr(model, "built", False) or not shapes or len(shapes) != 1:
        return None
    shape = next(iter(shapes.values()))
    if not isinstance(shape, (tuple, list)) or not all(d is None or isinstance(d, int) for d in shape):
        return None
    return tuple(shape)


@contextlib.contextmanager
def call_nodes_restored(layer):
    """Context after which `layer` and its sublayers hold only the call nodes they had.

    Tracing calls them on fresh symbolic inputs, which records new nodes on
    each; the functional graph built from those keeps its own references, so
    they are dropped from the layers afterwards: the user's layers are left
    as they were. Public stand-in: none (`_inbound_nodes`/`_outbound_nodes`).
    """
    layers = [layer] + all_sublayers(layer)
    counts = [
        (op, len(getattr(op, "_inbound_nodes", [])), len(getattr(op, "_outbound_nodes", [])))
        for op in layers
    ]
    try:
        yield
    finally:
        for op, inbound, outbound in counts:
            if hasattr(op, "_inbound_nodes"):
                del op._inbound_nodes[inbound:]
            if hasattr(op, "_outbound_nodes"):
                del op._outbound_nodes[outbound:]


# ---------------------------------------------------------------- layers

def created_trainable_weights(layer):
    """The weights `layer` was built to train, even while it is frozen.

    Public stand-in: `layer.trainable_weights`, which is empty when
    `layer.trainable` is False.
    """
    variables = getattr(layer, "_trainable_variables", None)
    return layer.trainable_weights if variables is None else variables


def raw_kernel(layer):
    """A convolution's kernel variable, not a (masked or quantized) view of it.

    Public stand-in: `layer.kernel`, which a subclass may compute.
    """
    return layer._kernel


def keras_op_classes(*names, module="numpy"):
    """The classes of `keras.ops` operations (`Add`, `Multiply`, `Relu`, ...).

    Public stand-in: none; `keras.ops.add` is a function whose call in a
    functional model leaves a node of one of these classes. `module` is the
    `keras.src.ops` module that defines them: "numpy", "nn", "math" or "core".
    Names this Keras version lacks are left out.
    """
    ops_module = importlib.import_module(f"keras.src.ops.{module}")
    return [getattr(ops_module, n) for n in names if hasattr(ops_module, n)]


def _application_layer_class(module, name):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def application_layer_classes():
    """{name: class} of layers defined inside keras.applications (None if gone).

    Public stand-in: none; `keras.applications` does not export the layers
    its models use: ConvNeXt's per-channel `LayerScale` and
    InceptionResNetV2's scaled residual sum `CustomScaleLayer`.
    """
    return {
        "LayerScale": _application_layer_class("keras.src.applications.convnext", "LayerScale"),
        "CustomScaleLayer": _application_layer_class(
            "keras.src.applications.inception_resnet_v2", "CustomScaleLayer"
        ),
    }


def batch_norm_renorm(layer):
    """Whether a `BatchNormalization` layer uses batch renormalization.

    Public stand-in: `layer.renorm`, which newer Keras releases have; Keras 3.5
    has no renormalization (and no such attribute), so False there.
    """
    return bool(getattr(layer, "renorm", False))


# -------------------------------------------------------------- training

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


# ------------------------------------------------------------ printing, seeds

def print_msg(*args, **kwargs):
    """Keras's progress printing (goes where `fit`'s progress bar goes).

    Public stand-in: `print`, which ignores `keras.config.disable_interactive_logging`.
    """
    from keras.src.utils import io_utils

    return io_utils.print_msg(*args, **kwargs)


def reset_global_seed(value):
    """The global part of `keras.utils.set_random_seed(value)`, without TF's.

    `set_random_seed` also calls `tf.random.set_seed`, which resets every
    TensorFlow random op; this sets only Keras's global seed and drops the
    global SeedGenerator so the next unseeded call makes it afresh.
    """
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    # Keras 3.5 keeps no seed (only the generator, under its literal key).
    seed_key = getattr(rng_utils, "GLOBAL_RANDOM_SEED", None)
    if seed_key is not None:
        global_state.set_global_attribute(seed_key, value)
    generator_key = getattr(seed_generator, "GLOBAL_SEED_GENERATOR", "global_seed_generator")
    global_state.set_global_attribute(generator_key, None)


def seed_generators(layer):
    """The `SeedGenerator`s a layer (Dropout, ...) draws from. Public stand-in: none."""
    return getattr(layer, "_seed_generators", ())


def constructor_arguments(layer):
    """The keyword arguments `layer` was constructed with, or None.

    Keras records them (`_auto_config`) when they are all plain values
    (str, int, float, bool, None); `get_config` starts from them. A layer
    whose own `get_config` returns keys its `__init__` refuses (keras-hub
    0.32's `HierarchicalTransformerEncoder`) can still be made again by its
    constructor from these. Public stand-in: none.
    """
    recorded = getattr(layer, "_auto_config", None)
    return None if recorded is None else dict(recorded.config)


def build_when_called(layer):
    """Saves `layer` without a build config: loading builds it when the model calls it.

    A `.keras` file stores each layer's build shapes as JSON lists, and
    loading calls `layer.build(list)` before the model calls the layer on
    tensors with tuple shapes. Custom layers whose `build` adds a tuple to
    the shape (keras-hub 0.32's `SpatialPyramidPooling`: `input_shape[:-1] +
    (c,)`) then fail to load, though the same layer inside its keras-hub
    model loads (that model's `from_config` runs its constructor). In a
    functional model every layer is called when it loads, which builds it
    with the tuple shapes of that call, so the build config is not needed.
    Only for layers that keep Keras's own `get_build_config` and
    `build_from_config` (nothing but the input shapes). Public stand-in:
    none (the override is set on this one object, the class is untouched).
    """
    cls = type(layer)
    if (
        getattr(cls, "get_build_config", None) is keras.layers.Layer.get_build_config
        and getattr(cls, "build_from_config", None) is keras.layers.Layer.build_from_config
    ):
        object.__setattr__(layer, "get_build_config", lambda: None)
