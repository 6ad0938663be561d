"""Reading a Keras model into a flat list of layer calls, and replaying it.

`read_model` flattens a functional or Sequential model (nested sub-models,
shared layers, and custom layers or subclassed models opened by tracing,
see `trace.py`, included) into a `FlatGraph`: `LayerNode`s in execution
order, each naming its input and output tensors by integer id.

`keras_taylor.graph.replay` rebuilds a flat graph with new layers (copies,
masked or sliced), asking a `Rebuild` how to make each one.
"""

import dataclasses

import keras

from keras_taylor import _compat
from keras_taylor.errors import UnsupportedModelError
from keras_taylor.graph import trace


@dataclasses.dataclass
class LayerNode:
    """One call of a layer (or keras op) in the flattened graph."""

    index: int
    layer: object
    name: str
    keras_node: object
    inputs: list
    outputs: list
    input_shapes: list
    output_shapes: list
    config: dict
    opaque_reason: str = None  # why a layer with no handler was not traced


@dataclasses.dataclass
class SubModelCall:
    """A call of a nested model: its nodes are `nodes[start:end]` of the flat graph."""

    model: object
    keras_node: object
    inputs: list
    outputs: list
    start: int
    end: int


@dataclasses.dataclass
class FlatGraph:
    """A model read by `read_model`: its layer calls in execution order."""

    name: str
    inputs: list
    outputs: list
    inputs_struct: object
    outputs_struct: object
    tensors: dict  # tensor id -> KerasTensor (the first one seen)
    nodes: list
    input_names: list
    output_names: list
    calls: list = dataclasses.field(default_factory=list)  # SubModelCall, outermost first


def _as_functional(model, where):
    if isinstance(model, keras.Sequential):
        functional = _compat.functional_of_sequential(model)
        if functional is None:
            raise UnsupportedModelError(
                f"{where}: Sequential model '{model.name}' is not built. Give "
                "it an `keras.Input(shape=...)` first, or call "
                "`model.build(input_shape)`."
            )
        return functional
    if isinstance(model, _compat.Functional):
        return model
    if isinstance(model, keras.Model):
        return trace.trace_model(model, where)
    raise UnsupportedModelError(
        f"{where}: expected a keras.Model, got {type(model).__name__}."
    )


def check_readable(model, where="model"):
    """Raises `UnsupportedModelError` now if `read_model` could not read `model`.

    Cheaper than reading it: only the model's kind and build state are
    checked (and a subclassed model's call traced).
    """
    _as_functional(model, where)


def config_or_empty(op):
    """`op.get_config()`, or `{}` for the ops and odd layers that have none."""
    try:
        return op.get_config()
    except Exception:  # Ops and odd layers may have no config.
        return {}


class _Reader:
    """One pass over a functional model and the sub-models it calls."""

    def __init__(self, where):
        self.where = where
        self.tensors, self.keys = {}, {}
        self.nodes, self.names_taken, self.layer_names = [], set(), {}
        self.calls = []

    def tensor_id(self, scope, tensor):
        key = (scope, id(tensor))
        if key not in self.keys:
            self.keys[key] = len(self.keys)
            self.tensors[self.keys[key]] = tensor
        return self.keys[key]

    def unique_name(self, layer, scope_name):
        if id(layer) in self.layer_names:
            return self.layer_names[id(layer)]
        base = getattr(layer, "name", type(layer).__name__)
        name = base
        if name in self.names_taken and scope_name:
            name = f"{scope_name}_{base}"
        suffix = 1
        while name in self.names_taken:
            suffix += 1
            name = f"{base}_{suffix}"
        self.names_taken.add(name)
        self.layer_names[id(layer)] = name
        return name

    def walk(self, fn, scope, scope_name):
        by_depth = _compat.nodes_by_depth(fn)
        for depth in sorted(by_depth, reverse=True):
            for node in by_depth[depth]:
                op = node.operation
                if node.is_input or op is None:
                    continue
                if any((scope, id(t)) not in self.keys for t in node.input_tensors):
                    continue  # not connected to this model's inputs
                in_ids = [self.keys[(scope, id(t))] for t in node.input_tensors]
                if isinstance(op, (keras.Sequential, _compat.Functional)):
                    self.walk_into(op, node, scope, in_ids)
                elif isinstance(op, keras.Model) or trace.wants_tracing(op):
                    self.walk_traced(op, node, scope, scope_name, in_ids)
                else:
                    self.add_node(op, node, scope, scope_name, in_ids)

    def walk_into(self, model, node, scope, in_ids):
        """Reads a nested model in place of the node that calls it."""
        inner = _as_functional(model, f"{self.where} > {model.name}")
        inner_scope = scope + (len(self.keys), id(model))
        for inner_in, tid in zip(inner.inputs, in_ids):
            self.keys[(inner_scope, id(inner_in))] = tid
        call = SubModelCall(model, node, list(in_ids), [], len(self.nodes), None)
        self.calls.append(call)
        self.walk(inner, inner_scope, model.name)
        for inner_out, outer_out in zip(inner.outputs, node.outputs):
            self.keys[(scope, id(outer_out))] = self.keys[(inner_scope, id(inner_out))]
        call.outputs = [self.keys[(scope, id(t))] for t in node.outputs]
        call.end = len(self.nodes)

    def walk_traced(self, op, node, scope, scope_name, in_ids):
        """Reads a custom layer (or subclassed model) through its traced call.

        A layer that cannot be traced stays one opaque node, with the reason.
        """
        try:
            inner, inner_inputs = trace.trace_node(op, node)
        except trace.TraceFailure as failure:
            if isinstance(op, keras.Model) or trace.is_forced(op):
                raise UnsupportedModelError(
                    f"{self.where} > {op.name}: {type(op).__name__} cannot be "
                    f"traced: {failure}."
                ) from None
            self.add_node(op, node, scope, scope_name, in_ids, str(failure))
            return
        inner_scope = scope + (len(self.keys), id(op))
        for inner_in, tid in zip(inner_inputs, in_ids):
            self.keys[(inner_scope, id(inner_in))] = tid
        self.walk(inner, inner_scope, op.name)
        for inner_out, outer_out in zip(inner.outputs, node.outputs):
            self.keys[(scope, id(outer_out))] = self.keys[(inner_scope, id(inner_out))]

    def add_node(self, op, node, scope, scope_name, in_ids, opaque_reason=None):
        op = trace.stand_in(op, node)
        out_ids = [self.tensor_id(scope, t) for t in node.outputs]
        self.nodes.append(
            LayerNode(
                index=len(self.nodes),
                layer=op,
                name=self.unique_name(op, scope_name),
                keras_node=node,
                inputs=in_ids,
                outputs=out_ids,
                input_shapes=[tuple(t.shape) for t in node.input_tensors],
                output_shapes=[tuple(t.shape) for t in node.outputs],
                config=config_or_empty(op),
                opaque_reason=opaque_reason,
            )
        )


def read_model(model, where="model"):
    """Flattens `model` into a `FlatGraph`. Never modifies `model`.

    Args:
        model: a built functional, Sequential or (traceable) subclassed
            `keras.Model`.
        where: how errors name the model.

    Raises:
        UnsupportedModelError: for an unbuilt or untraceable subclassed
            model, or an output that does not depend on the inputs.
    """
    functional = _as_functional(model, where)
    reader = _Reader(where)
    for tensor in functional.inputs:
        reader.names_taken.add(_compat.producer(tensor).name)
    input_ids = [reader.tensor_id((), t) for t in functional.inputs]
    reader.walk(functional, (), "")
    missing = [t for t in functional.outputs if ((), id(t)) not in reader.keys]
    if missing:
        raise UnsupportedModelError(
            f"{where}: output {missing[0].name} is not connected to the inputs."
        )
    inputs_struct, outputs_struct = _compat.structures(functional)
    return FlatGraph(
        name=model.name,
        inputs=input_ids,
        outputs=[reader.keys[((), id(t))] for t in functional.outputs],
        inputs_struct=inputs_struct,
        outputs_struct=outputs_struct,
        tensors=reader.tensors,
        nodes=reader.nodes,
        input_names=[_compat.producer(t).name for t in functional.inputs],
        output_names=[_producer_name(t) for t in functional.outputs],
        calls=reader.calls,
    )


def _producer_name(tensor):
    operation = _compat.producer(tensor)
    return operation.name if operation is not None else str(tensor.name)
