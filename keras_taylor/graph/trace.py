"""Opening custom layers and subclassed models by tracing their `call`.

A layer keras-taylor has no handler for (a keras-hub block, your own block
written with sublayers and `keras.ops`) can often be read anyway: its
`call`, run on fresh `keras.Input`s, records its sublayer calls and ops as
nodes, and those nodes form a small functional model that `read_model`
walks like a nested model. The sublayers are the layer's own objects, so
the traced graph shares their weights; `replay` then rebuilds the inner
layers in place of the block.

Tracing is refused (the layer stays opaque and blocks the channels that
reach it) whenever replaying the traced graph could compute something else:
`call` fails on symbolic tensors (raw TensorFlow ops, Python decisions on
tensor values), it returns something other than tensors, its outputs do not
depend on its inputs, it uses weights of its own directly, it freezes an
unknown dimension (`ops.shape(x)[0]` is None while tracing) into an op, or it
takes another path when training.
"""

import inspect

import keras
from keras import tree

from keras_taylor import _compat, handlers
from keras_taylor.errors import UnsupportedModelError


class TraceFailure(Exception):
    """Why a layer's `call` cannot be read as a graph (the message)."""


def wants_tracing(layer):
    """True for layers `read_model` should open: `Trace()` or no handler.

    Keras's own layers without a handler (LSTM, MultiHeadAttention, ...)
    stay opaque unless registered with `kt.handlers.Trace()`: keras-taylor
    keeps them as they are rather than rebuilding them from their insides.
    """
    if isinstance(handlers.get_handler(layer), handlers.Trace):
        return True
    if handlers.is_registered(layer) or not isinstance(layer, keras.layers.Layer):
        return False
    return type(layer).__module__.split(".")[0] not in ("keras", "tf_keras")


def is_forced(layer):
    """True when the layer's class is registered with `kt.handlers.Trace()`."""
    return isinstance(handlers.get_handler(layer), handlers.Trace)


def opaque_reason(layer, why):
    """The blocker reason of a layer whose tracing failed."""
    kind = type(layer).__name__
    return (
        f"{kind} '{layer.name}' has no handler and could not be traced: {why}; "
        f"its channels are kept (teach it with kt.register_layer({kind}, handler); "
        "see docs/handlers.md)"
    )


def trace_node(layer, keras_node):
    """`(functional, inner inputs)` of `layer.call` with `keras_node`'s arguments.

    `inner inputs[k]` stands for `keras_node.input_tensors[k]`.

    Raises:
        TraceFailure: naming why the call cannot be read as a graph.
    """
    fresh, inner_inputs = {}, []
    for tensor in keras_node.input_tensors:
        if id(tensor) not in fresh:
            fresh[id(tensor)] = keras.Input(
                batch_shape=tensor.shape, dtype=tensor.dtype, sparse=tensor.sparse
            )
        inner_inputs.append(fresh[id(tensor)])
    args, kwargs = keras_node.arguments.fill_in(fresh)
    functional = _trace(layer, list(fresh.values()), args, kwargs, len(keras_node.outputs))
    return functional, inner_inputs


def trace_model(model, where):
    """A functional model computing what the built subclassed `model` computes.

    Raises:
        UnsupportedModelError: when `model` is not built or cannot be traced.
    """
    kind = type(model).__name__
    shape = _compat.built_input_shape(model)
    if shape is None:
        raise UnsupportedModelError(
            f"{where}: '{model.name}' is a subclassed keras.Model ({kind}) that "
            "is not built with one input shape, so its call() cannot be traced. "
            "Call it on a batch of data or model.build(input_shape) first."
        )
    dtype = getattr(model, "input_dtype", None) or "float32"
    inputs = keras.Input(batch_shape=(None,) + tuple(shape)[1:], dtype=dtype, name=f"{model.name}_input")
    try:
        return _trace(model, [inputs], (inputs,), {}, None)
    except TraceFailure as failure:
        raise UnsupportedModelError(
            f"{where}: '{model.name}' is a subclassed keras.Model ({kind}) whose "
            f"call() cannot be traced: {failure}. Write call() with layers and "
            "keras.ops only, or rebuild the model with the functional API "
            "(keras.Model(inputs, outputs)) or as a keras.Sequential."
        ) from None


def _run_call(layer, args, kwargs):
    try:
        return layer.call(*args, **kwargs)
    except Exception as exc:  # anything that does not run on symbolic tensors
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise TraceFailure(
            f"its call() does not run on symbolic Keras tensors "
            f"({type(exc).__name__}: {first_line})"
        ) from None


def _trace(layer, inputs, args, kwargs, num_outputs):
    with _compat.call_nodes_restored(layer):
        return _trace_call(layer, inputs, args, kwargs, num_outputs)


def _trace_call(layer, inputs, args, kwargs, num_outputs):
    structured = _run_call(layer, args, kwargs)
    outputs = tree.flatten(structured)
    if not outputs or not all(isinstance(t, keras.KerasTensor) for t in outputs):
        raise TraceFailure("its call() returns something other than Keras tensors")
    if num_outputs is not None and len(outputs) != num_outputs:
        raise TraceFailure(
            f"its call() returns {len(outputs)} tensors where the model's call had {num_outputs}"
        )
    try:
        functional = keras.Model(
            inputs[0] if len(inputs) == 1 else inputs, structured, name=f"{layer.name}_traced"
        )
    except Exception as exc:
        raise TraceFailure(f"its outputs are not computed from its inputs alone ({exc})") from None
    _check_weights(layer, functional)
    _check_training_path(layer, functional, args, kwargs)
    return functional


def _check_weights(layer, functional):
    """Refuses weights the traced graph would use outside a sublayer's call."""
    in_sublayers = {id(w) for sub in _compat.all_sublayers(layer) for w in sub.weights}
    own = [w for w in layer.weights if id(w) not in in_sublayers]
    if own:
        raise TraceFailure(f"it uses its own weight '{own[0].name}' directly, not through a sublayer")
    for nodes in _compat.nodes_by_depth(functional).values():
        for node in nodes:
            _check_arguments(node)


#: Arguments of keras.ops that are shapes: a None in one was an unknown
#: dimension (the batch size) read while tracing, frozen into the graph.
_SHAPE_ARGUMENTS = ("newshape", "new_shape", "shape", "reps", "target_shape")


def _batch_reshape_target(op, node):
    """`newshape[1:]` of `ops.reshape(x, (x's batch size, ...))`, else None.

    Traced, `ops.shape(x)[0]` is None; `keras.layers.Reshape(newshape[1:])`
    keeps the batch size instead, which is what the code meant.
    """
    newshape = getattr(op, "newshape", None)
    if type(op).__name__ != "Reshape" or not isinstance(newshape, (tuple, list)):
        return None
    tensors = node.input_tensors
    rest = tuple(newshape[1:])
    if newshape[:1] != type(newshape)([None]) or any(d is None for d in rest):
        return None
    if len(tensors) != 1 or not tensors[0].shape or tensors[0].shape[0] is not None:
        return None
    return rest


def stand_in(op, node):
    """The layer to read in place of `op` at `node`, when it needs one.

    An `ops.reshape` whose new shape took the (unknown) batch size from
    `ops.shape(x)[0]` while tracing becomes a `keras.layers.Reshape`.
    """
    target = _batch_reshape_target(op, node)
    if target is None:
        return op
    return keras.layers.Reshape(target, name=op.name)


def _frozen_unknown_dimension(node):
    op = node.operation
    if isinstance(op, keras.layers.Layer) or _batch_reshape_target(op, node) is not None:
        return None
    config = dict(getattr(op, "__dict__", {}), **node.arguments.kwargs)
    for key in _SHAPE_ARGUMENTS:
        value = config.get(key)
        if isinstance(value, (tuple, list)) and any(d is None for d in value):
            return f"{key}={tuple(value)}"
    return None


def _check_arguments(node):
    frozen = _frozen_unknown_dimension(node)
    if frozen is not None:
        raise TraceFailure(
            f"it gives {type(node.operation).__name__} the shape of a symbolic "
            f"tensor with unknown dimensions ({frozen}), which would stay None "
            "when replayed"
        )
    flat_args = tree.flatten((node.arguments.args, node.arguments.kwargs))
    variables = [a for a in flat_args if isinstance(a, keras.Variable)]
    if variables:
        raise TraceFailure(
            f"it passes the weight '{variables[0].name}' to "
            f"{type(node.operation).__name__} directly"
        )


def _structure(functional):
    return sorted(
        str(id(op)) if isinstance(op, keras.layers.Layer) else type(op).__name__
        for op in functional.operations
    )


def _check_training_path(layer, functional, args, kwargs):
    """Refuses a call whose Python code takes another path when training.

    The traced graph is replayed in training too (fine-tuning), where each
    sublayer gets `training` from the outer call; a `call` deciding in
    Python on `training` would then compute something else.
    """
    if "training" not in inspect.signature(layer.call).parameters:
        return
    if isinstance(kwargs.get("training"), bool):
        return  # the model fixed it; replay passes the same value
    try:
        training_outputs = tree.flatten(_run_call(layer, args, dict(kwargs, training=True)))
        inputs = functional.inputs
        training = keras.Model(inputs, training_outputs)
    except Exception:
        raise TraceFailure("its call() cannot be traced with training=True") from None
    if _structure(training) != _structure(functional):
        raise TraceFailure("its call() takes another path when training=True")
