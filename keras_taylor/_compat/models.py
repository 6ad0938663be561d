"""Private access to functional models: their graph, nodes and loading.

Part of `keras_taylor._compat` (see its docstring). Nothing here imports keras_taylor.
"""

import contextlib

import keras


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
