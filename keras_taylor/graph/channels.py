"""Channel groups: which channels of a model must be kept or removed together.

`ChannelGraph` gives every channel of every tensor an integer element id.
Layers that create channels (conv filters) create elements; pass-through
layers forward them; merges (Add, Multiply, ...) union them; concatenation
joins them; blockers mark them. Elements unioned together form one *channel
group*: the set of channels that are kept or removed together. This is a
per-channel union-find, so coupling through concatenation offsets, depth
multipliers or flattening needs no special case. Each layer's part is
answered by its handler (`keras_taylor.handlers`).
"""

import collections
import dataclasses

import numpy as np

from keras_taylor import handlers, pruner
from keras_taylor.graph import trace
from keras_taylor.masking import ChannelMask


@dataclasses.dataclass
class Options:
    """Which layer kinds start pruning (see `TaylorPrunableModel`)."""

    prune_dense: bool = False
    prune_separable: bool = True
    prune_frozen: bool = True


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


def _frozen_with_weights(layer):
    return not layer.trainable and bool(layer.weights) and not isinstance(layer, ChannelMask)


@dataclasses.dataclass
class Keep:
    """Channel indices kept at each input and output of one node."""

    inputs: list
    outputs: list


class ChannelGraph:
    """The channel groups of a flat graph, with blockers and members.

    Built once per model (`TaylorPrunableModel` carries it over to the copy
    with masks, see `carried_to`) and handed to everything that needs it.
    Attribute names say "unit" for a channel group (kept for compatibility).

    Attributes:
        flat: the `FlatGraph`.
        num_units: number of channel groups.
        unit_prunable: bool array, the channel group may be removed.
        unit_reasons: channel group -> list of (layer name, reason) that block it.
        tensor_units: tensor id -> channel group of each channel.
        layer_units: layer name -> channel group of each output channel it creates.
        mask_points: node index -> channel group of each channel (ChannelMask nodes).
        layout: the `pruner.ChannelLayout` the pruning decision reads.
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
        self._keep_one = []
        elems = {}
        for tid, name in zip(flat.inputs, flat.input_names):
            channels = flat.tensors[tid].shape[-1] or 0
            elems[tid] = self._fixed(channels, name, "it is a model input")
        calls = collections.Counter(id(node.layer) for node in flat.nodes)
        for node in flat.nodes:
            handler = _handler(node)
            ins = [elems[t] for t in node.inputs]
            if calls[id(node.layer)] > 1:
                self._bind_shared(node, ins)
            outs = handler.propagate(self, node, ins)
            for tid, out in zip(node.outputs, outs):
                elems[tid] = np.asarray(out, dtype=np.int64)
            if not self.options.prune_frozen and _frozen_with_weights(node.layer):
                for touched in ins + [elems[t] for t in node.outputs]:
                    self.block(touched, node, "it is frozen (trainable=False) and prune_frozen=False")
        for tid, name in zip(flat.outputs, flat.output_names):
            self.block(
                elems[tid], name, f"it is a model output ('{name}')", raw=True
            )
        self._finalize(elems)

    # ----------------------------------------------------- handler interface
    # What a handler's `propagate(ctx, node, ins)` may call on `ctx`.
    def source(self, node, n, role):
        """Channel ids for the `n` output channels `node`'s layer creates.

        `role` is `handlers.SOURCE` (a criterion may remove them) or
        `handlers.PASSIVE`. A shared layer gets the same ids at every call.
        """
        key = id(node.layer)
        if key not in self._layer_elems:
            self._layer_elems[key] = (node.name, self._new(n, role))
            self._layer_roles[node.name] = role
        return self._layer_elems[key][1]

    def fixed(self, node, n, reason):
        """`n` new channel ids that can never be removed, blocked with `reason`."""
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
        """Couples channel `a[i]` with `b[i]`: they are kept or removed together."""
        if len(a) != len(b):
            raise ValueError(f"cannot couple {len(a)} with {len(b)} channels")
        self._uf.union(a, b)

    def block(self, elems, node, reason, raw=False):
        """Keeps the channels `elems` (and all coupled to them), naming `node` and `reason`.

        `raw`: `node` is already a name (model inputs and outputs).
        """
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

    def keep_one(self, elems):
        """At least one of `elems` must stay (a split section must not go empty)."""
        if len(elems):
            self._keep_one.append(np.asarray(elems))

    def mask_point(self, node, elems):
        """Records that `node` (a ChannelMask) masks the channels `elems`."""
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
        self.unit_layers = {}
        for name, units in self.layer_units.items():
            for u in np.unique(units[self.unit_prunable[units]]):
                self.unit_layers.setdefault(int(u), []).append(name)
        self.layout = pruner.ChannelLayout(
            self.num_units,
            list(self.layer_units.values()) + [self.element_unit[e] for e in self._keep_one],
            self.unit_prunable,
        )

    # ------------------------------------------------------------ queries
    @property
    def prunable_units(self):
        return np.flatnonzero(self.unit_prunable)

    def remove(self, order, alive, limit=None):
        """Removes channel groups in `order` while every layer keeps one channel.

        Returns the new alive array and the list of removed groups.
        """
        return self.layout.remove_in_order(order, alive, limit)

    def keep(self, node, alive):
        """The `Keep` of `node` when channel groups with `alive[g]` False are removed."""
        pick = lambda t: np.flatnonzero(alive[self.tensor_units[t]])  # noqa: E731
        return Keep([pick(t) for t in node.inputs], [pick(t) for t in node.outputs])

    def touches_prunable(self, nodes):
        """True when a channel group that may be pruned flows into or out of one of `nodes`."""
        prunable = self.unit_prunable
        return any(
            prunable[self.tensor_units[t]].any() for node in nodes for t in node.inputs + node.outputs
        )

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

    def source_blockers(self):
        """{layer: [(blocking layer, reason), ...]} for every layer that creates
        channels a criterion could remove (an empty list: nothing blocks it).

        The one listing of blockers that errors, `analyze` and the zoo
        benchmark report.
        """
        return {
            name: self.blockers_of(name)
            for name, role in self.layer_roles.items()
            if role == handlers.SOURCE
        }

    def carried_to(self, flat, tensor_map):
        """This graph on `flat`, a replay of `self.flat` with ChannelMasks added.

        `replay` only copies layers and inserts masks, which pass channels on,
        so every channel group stays what it was: nothing is read or unioned
        again, only tensor ids and mask points are renamed.

        Args:
            flat: the `FlatGraph` of the replayed model.
            tensor_map: `self.flat` tensor id -> the replayed symbolic tensor
                (as filled by `replay(..., tensor_map=...)`).
        """
        new_id = {id(t): tid for tid, t in flat.tensors.items()}
        units = {new_id[id(t)]: self.tensor_units[old] for old, t in tensor_map.items() if id(t) in new_id}
        masks = {}
        for node in flat.nodes:
            if isinstance(node.layer, ChannelMask):
                units[node.outputs[0]] = units[node.inputs[0]]
                masks[node.index] = units[node.inputs[0]]
            missing = [t for t in node.outputs if t not in units]
            if missing:
                raise ValueError(f"layer '{node.name}' is not a replay of {self.flat.name}")
        carried = object.__new__(ChannelGraph)
        carried.__dict__.update(self.__dict__)
        carried.flat, carried.tensor_units, carried.mask_points = flat, units, masks
        return carried


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


def _handler(node):
    """The node's handler; an untraced layer blocks with why it was not traced."""
    handler = handlers.get_handler(node.layer)
    if handler is handlers.UNKNOWN and node.opaque_reason:
        reason = trace.opaque_reason(node.layer, node.opaque_reason)
        return handlers.Blocker(reason.replace("{", "{{").replace("}", "}}"))
    return handler
