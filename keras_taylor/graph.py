"""Reading a Keras model into a channel-flow graph, and replaying it.

`read_model` flattens a functional or Sequential model (nested sub-models
and shared layers included) into a list of `LayerNode`s in execution order.

`ChannelGraph` then gives every channel of every tensor an integer element id.
Layers that create channels (conv filters) create elements; pass-through
layers forward them; merges (Add, Multiply, ...) union them; concatenation
joins them; blockers mark them. Elements unioned together form one *channel
group* (a "unit"): the set of filters that must be removed together. This is
a per-channel union-find, so coupling through concatenation offsets, depth
multipliers or flattening needs no special case.

`replay` rebuilds the flat graph with new layers (copies, masked or sliced).
"""

import collections
import dataclasses

import numpy as np

import keras
from keras import tree

from keras_taylor import handlers
from keras_taylor.errors import UnsupportedModelError

try:  # Functional is not public API; it is what keras.Model(inputs, outputs) is.
    from keras.src.models.functional import Functional
except ImportError:  # pragma: no cover
    Functional = keras.Model

try:
    from keras.src.saving.serialization_lib import SafeModeScope
except ImportError:  # pragma: no cover
    import contextlib

    def SafeModeScope(safe_mode):  # noqa: N802
        return contextlib.nullcontext()


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


@dataclasses.dataclass
class FlatGraph:
    name: str
    inputs: list
    outputs: list
    inputs_struct: object
    outputs_struct: object
    tensors: dict  # tensor id -> KerasTensor (the first one seen)
    nodes: list
    input_names: list
    output_names: list


def _as_functional(model, where):
    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise UnsupportedModelError(
                f"{where}: Sequential model '{model.name}' is not built. Give "
                "it an `keras.Input(shape=...)` first, or call "
                "`model.build(input_shape)`."
            )
        return functional
    if isinstance(model, Functional):
        return model
    if isinstance(model, keras.Model):
        raise UnsupportedModelError(
            f"{where}: '{model.name}' is a subclassed keras.Model "
            f"({type(model).__name__}); its call() is Python code whose "
            "channel flow cannot be read. Rebuild it with the functional API "
            "(keras.Model(inputs, outputs)) or as a keras.Sequential."
        )
    raise UnsupportedModelError(
        f"{where}: expected a keras.Model, got {type(model).__name__}."
    )


def _safe_config(op):
    try:
        return op.get_config()
    except Exception:  # Ops and odd layers may have no config.
        return {}


def read_model(model, where="model"):
    """Flattens `model` into a `FlatGraph`. Never modifies `model`."""
    functional = _as_functional(model, where)
    tensors, keys = {}, {}
    nodes, names_taken, layer_names = [], set(), {}

    def tensor_id(scope, kt):
        key = (scope, id(kt))
        if key not in keys:
            keys[key] = len(keys)
            tensors[keys[key]] = kt
        return keys[key]

    def unique_name(layer, scope_name):
        if id(layer) in layer_names:
            return layer_names[id(layer)]
        base = getattr(layer, "name", type(layer).__name__)
        name = base
        if name in names_taken and scope_name:
            name = f"{scope_name}_{base}"
        suffix = 1
        while name in names_taken:
            suffix += 1
            name = f"{base}_{suffix}"
        names_taken.add(name)
        layer_names[id(layer)] = name
        return name

    for kt in functional.inputs:
        names_taken.add(kt._keras_history.operation.name)

    def walk(fn, scope, scope_name):
        by_depth = fn._nodes_by_depth
        for depth in sorted(by_depth, reverse=True):
            for node in by_depth[depth]:
                op = node.operation
                if node.is_input or op is None:
                    continue
                if any((scope, id(kt)) not in keys for kt in node.input_tensors):
                    continue  # not connected to this model's inputs
                in_ids = [keys[(scope, id(kt))] for kt in node.input_tensors]
                if isinstance(op, keras.Model):
                    inner = _as_functional(op, f"{where} > {op.name}")
                    inner_scope = scope + (len(keys), id(op))
                    for inner_in, tid in zip(inner.inputs, in_ids):
                        keys[(inner_scope, id(inner_in))] = tid
                    walk(inner, inner_scope, op.name)
                    for inner_out, outer_out in zip(inner.outputs, node.outputs):
                        keys[(scope, id(outer_out))] = keys[
                            (inner_scope, id(inner_out))
                        ]
                    continue
                out_ids = [tensor_id(scope, kt) for kt in node.outputs]
                nodes.append(
                    LayerNode(
                        index=len(nodes),
                        layer=op,
                        name=unique_name(op, scope_name),
                        keras_node=node,
                        inputs=in_ids,
                        outputs=out_ids,
                        input_shapes=[tuple(kt.shape) for kt in node.input_tensors],
                        output_shapes=[tuple(kt.shape) for kt in node.outputs],
                        config=_safe_config(op),
                    )
                )

    input_ids = [tensor_id((), kt) for kt in functional.inputs]
    walk(functional, (), "")
    missing = [kt for kt in functional.outputs if ((), id(kt)) not in keys]
    if missing:
        raise UnsupportedModelError(
            f"{where}: output {missing[0].name} is not connected to the inputs."
        )
    output_ids = [keys[((), id(kt))] for kt in functional.outputs]
    return FlatGraph(
        name=model.name,
        inputs=input_ids,
        outputs=output_ids,
        inputs_struct=functional._inputs_struct,
        outputs_struct=functional._outputs_struct,
        tensors=tensors,
        nodes=nodes,
        input_names=[kt._keras_history.operation.name for kt in functional.inputs],
        output_names=[_producer_name(kt) for kt in functional.outputs],
    )


def _producer_name(kt):
    history = getattr(kt, "_keras_history", None)
    return history.operation.name if history else str(kt.name)


@dataclasses.dataclass
class Options:
    """Which layer kinds start pruning (see `TaylorPrunableModel`)."""

    prune_dense: bool = False
    prune_separable: bool = True


class _UnionFind:
    """Union-find over integer ids, with vectorised find and pairwise union."""

    def __init__(self):
        self.parent = np.zeros(1024, dtype=np.int64)
        self.size = 0

    def add(self, n):
        while self.size + n > len(self.parent):
            self.parent = np.concatenate([self.parent, np.zeros_like(self.parent)])
        ids = np.arange(self.size, self.size + n, dtype=np.int64)
        self.parent[ids] = ids
        self.size += n
        return ids

    def find(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        roots = ids
        while True:
            up = self.parent[roots]
            if np.array_equal(up, roots):
                break
            self.parent[roots] = self.parent[up]  # path halving
            roots = up
        self.parent[ids] = roots
        return roots

    def union(self, a, b):
        # Roots always point to a smaller id, so no cycles form; repeated
        # roots lose all but one write per round, hence the loop.
        while True:
            ra, rb = self.find(a), self.find(b)
            differ = ra != rb
            if not differ.any():
                return
            lo = np.minimum(ra[differ], rb[differ])
            hi = np.maximum(ra[differ], rb[differ])
            self.parent[hi] = lo


@dataclasses.dataclass
class Keep:
    """Channel indices kept at each input and output of one node."""

    inputs: list
    outputs: list


class ChannelGraph:
    """Channel groups ("units") of a flat graph, with blockers and members.

    Attributes:
        flat: the `FlatGraph`.
        num_units: number of channel groups.
        unit_prunable: bool array, the unit may be removed.
        unit_reasons: unit -> list of (layer name, reason) that block it.
        tensor_units: tensor id -> unit of each channel.
        layer_units: layer name -> unit of each output channel it creates.
        mask_points: node index -> unit of each channel (ChannelMask nodes).
    """

    def __init__(self, flat, options=None):
        self.flat = flat
        self.options = options or Options()
        self._uf = _UnionFind()
        self._role = []
        self._blocks = []
        self._bound_inputs = {}
        self._layer_elems = {}
        self._layer_roles = {}
        self._mask_elems = {}
        elems = {}
        for tid, name in zip(flat.inputs, flat.input_names):
            channels = flat.tensors[tid].shape[-1] or 0
            elems[tid] = self._fixed(channels, name, "it is a model input")
        calls = collections.Counter(id(node.layer) for node in flat.nodes)
        for node in flat.nodes:
            handler = handlers.get_handler(node.layer)
            ins = [elems[t] for t in node.inputs]
            if calls[id(node.layer)] > 1:
                self._bind_shared(node, ins)
            outs = handler.propagate(self, node, ins)
            for tid, out in zip(node.outputs, outs):
                elems[tid] = np.asarray(out, dtype=np.int64)
        for tid, name in zip(flat.outputs, flat.output_names):
            self.block(
                elems[tid], name, f"it is a model output ('{name}')", raw=True
            )
        self._finalize(elems)

    # ----------------------------------------------------- handler interface
    def source(self, node, n, role):
        """Elements for the `n` output channels `node`'s layer creates."""
        key = id(node.layer)
        if key not in self._layer_elems:
            self._layer_elems[key] = (node.name, self._new(n, role))
            self._layer_roles[node.name] = role
        return self._layer_elems[key][1]

    def fixed(self, node, n, reason):
        return self._fixed(n, node.name, reason)

    def blocked_source(self, node, n, role, reason):
        """Filters `node` would create if `reason` did not stop them.

        Recorded as the layer's channels so that `analyze` and the
        nothing-prunable error name the layer and its reason.
        """
        key = id(node.layer)
        if key not in self._layer_elems:
            self._layer_elems[key] = (node.name, self._fixed(n, node.name, reason))
            self._layer_roles[node.name] = role
        return self._layer_elems[key][1]

    def union(self, a, b):
        if len(a) != len(b):
            raise ValueError(f"cannot couple {len(a)} with {len(b)} channels")
        self._uf.union(a, b)

    def block(self, elems, node, reason, raw=False):
        if len(elems):
            name = node if raw else node.name
            self._blocks.append((np.asarray(elems), name, reason))

    def bind_input(self, node, k, elems):
        """A shared layer slices one kernel: its call sites' inputs couple."""
        key = (id(node.layer), k)
        if key in self._bound_inputs:
            self.union(self._bound_inputs[key], elems)
        else:
            self._bound_inputs[key] = elems

    def _bind_shared(self, node, ins):
        # `replay` makes a shared layer once, with one config and one set of
        # weights, so every call of it must keep the same input channels.
        for k, elems in enumerate(ins):
            first = self._bound_inputs.get((id(node.layer), k))
            if first is None or len(first) == len(elems):
                self.bind_input(node, k, elems)

    def mask_point(self, node, elems):
        self._mask_elems[node.index] = elems

    # ------------------------------------------------------------- internals
    def _new(self, n, role):
        ids = self._uf.add(n)
        self._role.extend([role] * n)
        return ids

    def _fixed(self, n, layer_name, reason):
        ids = self._new(n, handlers.FIXED)
        self.block(ids, layer_name, reason, raw=True)
        return ids

    def _finalize(self, elems):
        n = self._uf.size
        roots = self._uf.find(np.arange(n))
        unique_roots, first = np.unique(roots, return_index=True)
        order = np.argsort(first, kind="stable")
        unit_of_root = np.empty(n, dtype=np.int64)
        unit_of_root[unique_roots[order]] = np.arange(len(unique_roots))
        self.element_unit = unit_of_root[roots]
        self.num_units = len(unique_roots)
        role = np.asarray(self._role, dtype=object)
        blocked = np.zeros(self.num_units, dtype=bool)
        self.unit_reasons = {}
        for ids, layer, reason in self._blocks:
            for u in np.unique(self.element_unit[ids]):
                blocked[u] = True
                reasons = self.unit_reasons.setdefault(int(u), [])
                if (layer, reason) not in reasons:
                    reasons.append((layer, reason))
        has_source = np.zeros(self.num_units, dtype=bool)
        has_source[self.element_unit[role == handlers.SOURCE]] = True
        self.unit_prunable = has_source & ~blocked
        self.unit_blocked = blocked
        self.tensor_units = {t: self.element_unit[e] for t, e in elems.items()}
        self.layer_units = {
            name: self.element_unit[ids] for name, ids in self._layer_elems.values()
        }
        self.layer_roles = dict(self._layer_roles)
        self.mask_points = {
            i: self.element_unit[e] for i, e in self._mask_elems.items()
        }
        # Which layers lose how many output channels when a unit goes.
        self.unit_layers = {}
        self._unit_channel_counts = {}
        for name, units in self.layer_units.items():
            values, counts = np.unique(units, return_counts=True)
            for u, c in zip(values, counts):
                self._unit_channel_counts.setdefault(int(u), []).append((name, int(c)))
                if self.unit_prunable[u]:
                    self.unit_layers.setdefault(int(u), []).append(name)

    # ------------------------------------------------------------ queries
    @property
    def prunable_units(self):
        return np.flatnonzero(self.unit_prunable)

    def remove(self, order, alive, limit=None):
        """Removes units in `order` while every layer keeps one channel.

        Returns the new alive array and the list of removed units.
        """
        alive = np.array(alive, dtype=bool)
        left = {n: int(alive[u].sum()) for n, u in self.layer_units.items()}
        removed = []
        for u in order:
            if limit is not None and len(removed) >= limit:
                break
            members = self._unit_channel_counts.get(int(u), [])
            if not alive[u] or any(left[name] - c < 1 for name, c in members):
                continue
            for name, c in members:
                left[name] -= c
            alive[u] = False
            removed.append(int(u))
        return alive, removed

    def keep(self, node, alive):
        """The `Keep` of `node` when units with `alive[u]` False are removed."""
        pick = lambda t: np.flatnonzero(alive[self.tensor_units[t]])  # noqa: E731
        return Keep([pick(t) for t in node.inputs], [pick(t) for t in node.outputs])

    def blockers_of(self, layer_name):
        """(layer, reason) pairs that stop `layer_name`'s channels."""
        units = self.layer_units.get(layer_name)
        if units is None:
            return []
        found = []
        for u in np.unique(units):
            for pair in self.unit_reasons.get(int(u), []):
                if pair not in found:
                    found.append(pair)
        return found


def slice_weights(node, keep, arrays):
    """Slices `arrays` (the layer's weights, in order) to the kept channels."""
    handler = handlers.get_handler(node.layer)
    spec = handler.weight_slices(node, keep)
    out = []
    for variable, value in zip(node.layer.weights, arrays):
        for axis, index in spec.get(variable.name, {}).items():
            if value.ndim:
                value = np.take(value, index, axis=axis)
        out.append(value)
    return out


def sliced_shapes(node, keep):
    """Weight shapes after slicing, without touching the values."""
    handler = handlers.get_handler(node.layer)
    spec = handler.weight_slices(node, keep)
    shapes = []
    for variable in node.layer.weights:
        shape = list(variable.shape)
        for axis, index in spec.get(variable.name, {}).items():
            if shape:
                shape[axis] = len(index)
        shapes.append(tuple(shape))
    return shapes


def _copy_operation(op, config=None, name=None, cls=None):
    """A fresh `cls` (`op`'s class by default) with `config` (`op`'s by default)."""
    config = dict(_safe_config(op) if config is None else config)
    if name is not None and "name" in config:
        config["name"] = name
    try:
        # The op is a live object of the caller's own model, not an
        # untrusted file, so Lambda layers may be re-created.
        with SafeModeScope(False):
            return (cls or type(op)).from_config(config)
    except Exception as exc:
        if isinstance(op, keras.layers.Layer):
            raise UnsupportedModelError(
                f"layer '{op.name}' ({type(op).__name__}) cannot be re-created "
                f"from its config: {exc}. Give it a working get_config() and "
                "register it with keras.saving.register_keras_serializable()."
            ) from exc
        return op  # stateless keras op without a usable config: reuse it


class Rebuild:
    """How `replay` makes each layer; subclasses change config and weights."""

    def config(self, node):
        return node.config

    def weights(self, node):
        return node.layer.get_weights()

    def layer_class(self, node):
        """The class of the copy (one with the same config and weights)."""
        return type(node.layer)

    def skip(self, node):
        """True to drop `node` (it must have one input and one output)."""
        return False

    def wrap_input(self, node, k, value):
        return value


def replay(flat, rebuild, name=None):
    """Builds a new functional model from `flat`, layer by layer."""
    values, made = {}, {}
    new_inputs = []
    for tid, input_name in zip(flat.inputs, flat.input_names):
        kt = flat.tensors[tid]
        tensor = keras.Input(batch_shape=kt.shape, dtype=kt.dtype, name=input_name)
        values[tid] = tensor
        new_inputs.append(tensor)
    for node in flat.nodes:
        ins = [
            rebuild.wrap_input(node, k, values[t]) for k, t in enumerate(node.inputs)
        ]
        if rebuild.skip(node):
            values[node.outputs[0]] = ins[0]
            continue
        key = id(node.layer)
        first_call = key not in made
        if first_call:
            made[key] = _copy_operation(node.layer, rebuild.config(node), node.name, rebuild.layer_class(node))
        layer = made[key]
        tensor_dict = {
            id(kt): value
            for kt, value in zip(node.keras_node.input_tensors, ins)
        }
        args, kwargs = node.keras_node.arguments.fill_in(tensor_dict)
        outs = tree.flatten(layer(*args, **kwargs))
        for tid, out in zip(node.outputs, outs):
            values[tid] = out
        if first_call and isinstance(layer, keras.layers.Layer) and layer.weights:
            layer.set_weights(rebuild.weights(node))
    outputs = [values[t] for t in flat.outputs]
    return keras.Model(
        tree.pack_sequence_as(flat.inputs_struct, new_inputs),
        tree.pack_sequence_as(flat.outputs_struct, outputs),
        name=name or flat.name,
    )
