"""Replaying a `FlatGraph`: a new functional model, layer by layer.

`replay` asks a `Rebuild` how to make each layer (its class, config,
weights, call arguments). Every layer is copied, never reused: the copies
are trained and pruned, and the model passed in must not change. A nested
model the `Rebuild` leaves whole (`Rebuild.keeps_whole`) is copied as one
object of its own class, so a keras-hub backbone nothing in which changes
stays a keras-hub backbone, and saves and loads as it did.
"""

import keras
from keras import tree

from keras_taylor import _compat
from keras_taylor.errors import UnsupportedModelError
from keras_taylor.graph.flat import config_or_empty, read_model


def _copy_operation(op, config=None, name=None, cls=None):
    """A fresh `cls` (`op`'s class by default) with `config` (`op`'s by default).

    A layer left as it was (its own class and config) whose config does not
    make it again (a bug of the layer's, e.g. keras-hub 0.32's
    `HierarchicalTransformerEncoder`) is made again by its constructor, from
    the arguments Keras recorded when it was built, so a layer keras-taylor
    never changes cannot stop the model from being wrapped. Never the
    object itself: the copies are trained and pruned, and the model passed
    in must not change.
    """
    given = config
    config = dict(config_or_empty(op) if config is None else config)
    if name is not None and "name" in config:
        config["name"] = name
    try:
        # The op is a live object of the caller's own model, not an
        # untrusted file, so Lambda layers may be re-created.
        with _compat.safe_mode_scope(False):
            return (cls or type(op)).from_config(config)
    except Exception as exc:
        if not isinstance(op, keras.layers.Layer):
            return op  # stateless keras op without a usable config: reuse it
        own = given is None or (cls in (None, type(op)) and given == config_or_empty(op))
        made = _construct_again(op, name) if own else None
        if made is None:
            raise UnsupportedModelError(
                f"layer '{op.name}' ({type(op).__name__}) cannot be re-created "
                f"from its config: {exc}. Give it a working get_config() and "
                "register it with keras.saving.register_keras_serializable()."
            ) from exc
        return made


def _construct_again(layer, name):
    """`layer`'s class called with the arguments it was constructed with, or None."""
    arguments = _compat.constructor_arguments(layer)
    if arguments is None:
        return None
    arguments["name"] = name or layer.name
    try:
        return type(layer)(**arguments)
    except Exception:
        return None


def _copy_layer(op, config, name, cls):
    """`_copy_operation`, then (for layers Keras does not define) saved without build shapes."""
    made = _copy_operation(op, config, name, cls)
    if isinstance(made, keras.layers.Layer) and not type(made).__module__.startswith(("keras.", "keras_taylor.")):
        _compat.build_when_called(made)
    return made


class Rebuild:
    """How `replay` makes each layer; subclasses change config and weights."""

    def config(self, node):
        return node.config

    def weights(self, node):
        return node.layer.get_weights()

    def layer_class(self, node):
        """The class of the copy (one with the same config and weights)."""
        return type(node.layer)

    def arguments(self, node, args, kwargs):
        """The `(args, kwargs)` the copy is called with (tensors filled in)."""
        return args, kwargs

    def skip(self, node):
        """True to drop `node` (it must have one input and one output)."""
        return False

    def keeps_whole(self, nodes):
        """True when a nested model whose layer calls are `nodes` may be copied whole.

        Only where this replay changes none of them (no class, config,
        weight or argument, no mask at their inputs): the copy is then the
        nested model's own kind (a keras-hub backbone stays one), and saves
        and loads as the nested model did.
        """
        return False

    def wrap_input(self, node, k, value):
        return value


def _kept_calls(flat, rebuild):
    """`{start: SubModelCall}` of the outermost nested calls `replay` copies whole."""
    calls_of = {}
    for node in flat.nodes:
        calls_of[id(node.layer)] = calls_of.get(id(node.layer), 0) + 1
    kept, covered = {}, -1
    for call in flat.calls:
        nodes = flat.nodes[call.start:call.end]
        if call.start < covered or not nodes:
            continue
        inside = {}
        for node in nodes:
            inside[id(node.layer)] = inside.get(id(node.layer), 0) + 1
        if any(calls_of[key] != count for key, count in inside.items()):
            continue  # a layer also called outside: one copy must serve both
        if rebuild.keeps_whole(nodes):
            kept[call.start] = call
            covered = call.end
    return kept


def _clone_whole(model):
    """A copy of the nested `model` (its own class, config and weights), or None."""
    try:
        clone = _copy_layer(model, None, model.name, None)
    except UnsupportedModelError:
        return None
    if clone is model or not isinstance(clone, keras.Model):
        return None
    try:
        clone.set_weights(model.get_weights())
    except Exception:
        return None
    stack = [clone]
    while stack:
        for layer in stack.pop().layers:
            if isinstance(layer, keras.Model):
                stack.append(layer)
            elif not type(layer).__module__.startswith(("keras.", "keras_taylor.")):
                _compat.build_when_called(layer)
    return clone


def _inner_tensors(flat, call, clone):
    """`{tensor id of flat: the clone's own tensor}` for the calls inside `call`, or None.

    What `ChannelGraph.carried_to` needs to find the nested layers again in
    the model `replay` makes; None when the clone's layer calls do not line
    up with the original's (then the call is replayed layer by layer).
    """
    try:
        inner = read_model(clone)
    except Exception:
        return None
    old = flat.nodes[call.start:call.end]
    if len(old) != len(inner.nodes):
        return None
    mapping = {}
    for a, b in zip(old, inner.nodes):
        if getattr(a.layer, "name", None) != getattr(b.layer, "name", None) or a.output_shapes != b.output_shapes:
            return None
        for tid, tensor in zip(a.outputs, b.keras_node.outputs):
            mapping[tid] = tensor
    return mapping


def _call_whole(flat, call, values, made, inner_map):
    """Calls a copy of `call`'s nested model on the replayed inputs; False if it cannot."""
    key = id(call.model)
    clone = made.get(key) or _clone_whole(call.model)
    if clone is None:
        return False
    if inner_map is not None:
        mapping = _inner_tensors(flat, call, clone)
        if mapping is None:
            return False
        inner_map.update(mapping)
    made[key] = clone
    tensor_dict = {
        id(symbolic): values[tid] for symbolic, tid in zip(call.keras_node.input_tensors, call.inputs)
    }
    args, kwargs = call.keras_node.arguments.fill_in(tensor_dict)
    for tid, out in zip(call.outputs, tree.flatten(clone(*args, **kwargs))):
        values[tid] = out
    return True


def _replay_node(node, rebuild, values, made):
    """Makes (or reuses) `node`'s layer and calls it on the replayed inputs."""
    ins = [rebuild.wrap_input(node, k, values[t]) for k, t in enumerate(node.inputs)]
    if rebuild.skip(node):
        values[node.outputs[0]] = ins[0]
        return
    key = id(node.layer)
    first_call = key not in made
    if first_call:
        made[key] = _copy_layer(node.layer, rebuild.config(node), node.name, rebuild.layer_class(node))
    layer = made[key]
    tensor_dict = {id(symbolic): value for symbolic, value in zip(node.keras_node.input_tensors, ins)}
    args, kwargs = rebuild.arguments(node, *node.keras_node.arguments.fill_in(tensor_dict))
    for tid, out in zip(node.outputs, tree.flatten(layer(*args, **kwargs))):
        values[tid] = out
    if first_call and isinstance(layer, keras.layers.Layer) and layer.weights:
        layer.set_weights(rebuild.weights(node))


def replay(flat, rebuild, name=None, tensor_map=None):
    """Builds a new functional model from `flat`, layer by layer.

    Args:
        flat: the `FlatGraph` to rebuild.
        rebuild: a `Rebuild` saying how each layer is made.
        name: the new model's name (`flat.name` by default).
        tensor_map: an optional dict, filled with `flat`'s tensor ids mapped
            to the new model's symbolic tensors, so a caller can carry what
            it knows about `flat` over to the new model without reading it.
    """
    values, made, new_inputs = {}, {}, []
    inner_map = None if tensor_map is None else {}
    for tid, input_name in zip(flat.inputs, flat.input_names):
        symbolic = flat.tensors[tid]
        tensor = keras.Input(batch_shape=symbolic.shape, dtype=symbolic.dtype, name=input_name)
        values[tid] = tensor
        new_inputs.append(tensor)
    kept = _kept_calls(flat, rebuild)
    index = 0
    while index < len(flat.nodes):
        call = kept.get(index)
        if call is not None and _call_whole(flat, call, values, made, inner_map):
            index = call.end
            continue
        node = flat.nodes[index]
        index += 1
        _replay_node(node, rebuild, values, made)
    if tensor_map is not None:
        tensor_map.update(values)
        tensor_map.update(inner_map)  # inside a nested copy: its own tensors
    outputs = [values[t] for t in flat.outputs]
    return keras.Model(
        tree.pack_sequence_as(flat.inputs_struct, new_inputs),
        tree.pack_sequence_as(flat.outputs_struct, outputs),
        name=name or flat.name,
    )
