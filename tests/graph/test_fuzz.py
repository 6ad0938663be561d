"""Random architectures: masked == stripped, and an independent parameter count.

A hypothesis strategy draws a *spec* (plain tuples, so a failing example can
be pasted into `@example`): inputs, a list of ops (convolutions, BN,
activations, residual sums, concatenations, depthwise and separable convs,
pooling, padding, squeeze-excitation broadcasts, nested sub-models) and the
outputs (GlobalPool/Flatten -> Dense heads, or raw feature maps).

`build` turns a spec into a Keras model and a list of primitive records. The
test then follows the channels through those records with its OWN small
union-find (no keras_taylor code), which gives

* which filters are coupled and which groups are blocked (compared with the
  channel graph's groups, one-to-one), and
* the parameter count of the stripped model, from the surviving channels.

The default run draws 30 models with a fixed seed; the `slow` run draws
several hundred fresh ones.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import keras
from keras import layers

import keras_taylor as kt

from helpers import assert_masked_equals_stripped, assert_outputs_close, randomize_weights

# ------------------------------------------------------------------ spec

UNARY = (
    "conv", "padconv", "bn", "act", "dw", "sep", "pool", "pad", "crop", "up", "se", "res",
    "prelu", "dense", "gconv", "stride", "attn",
)
MERGES = ("add", "subtract", "multiply", "average", "maximum")


def _recent(draw, shapes):
    """Index of a recent tensor (shrinks towards the newest)."""
    back = draw(st.integers(0, min(len(shapes) - 1, 4)))
    return len(shapes) - 1 - back


def _apply_shape(op, shapes):
    """Output shape (spatial, channels) of `op`; mirrors `build`."""
    kind = op[0]
    spatial, c = shapes[op[1]] if kind != "concat" else shapes[op[1][0]]
    if kind in ("conv", "padconv", "dense", "gconv"):
        return spatial, op[2]
    if kind == "stride":
        return tuple((s + 1) // 2 for s in spatial), op[2]
    if kind == "shared":
        return spatial, op[3]
    if kind == "cat1":
        return (spatial[0] + shapes[op[2]][0][0],) + spatial[1:], c
    if kind == "sep":
        return spatial, op[2]
    if kind == "dw":
        return spatial, c * op[2]
    if kind == "pool":
        return tuple(s // 2 for s in spatial), c
    if kind == "pad":
        return tuple(s + 2 for s in spatial), c
    if kind == "crop":
        return tuple(s - 2 for s in spatial), c
    if kind == "up":
        return tuple(s * 2 for s in spatial), c
    if kind == "concat":
        return spatial, sum(shapes[t][1] for t in op[1])
    if kind == "sub":
        inner = [shapes[op[1]]]
        for inner_op in op[2]:
            inner.append(_apply_shape(inner_op, inner))
        return inner[-1]
    return spatial, c  # bn, act, se, res, merges


def _draw_ops(draw, shapes, count, nested):
    ops, convs = [], []  # convs: (output tensor, input channels, filters) to share
    for _ in range(count):
        kinds = list(UNARY)
        if not nested:
            kinds.append("sub")
        t = _recent(draw, shapes)
        spatial, c = shapes[t]
        same = [i for i, s in enumerate(shapes) if s == shapes[t] and i != t]
        joinable = [i for i, s in enumerate(shapes) if s[0] == spatial]
        if same:
            kinds.append("merge")
        along = [i for i, s in enumerate(shapes) if s[0][1:] == spatial[1:] and s[1] == c]
        kinds.append("cat1")  # along always holds t
        if any(conv_c == c for _, conv_c, _ in convs):
            kinds.append("shared")
        kinds.append("concat")  # joinable always holds t: Concatenate([x, x]) too
        kind = draw(st.sampled_from(kinds))
        if kind == "pool" and min(spatial) < 2 or kind == "crop" and min(spatial) < 3:
            kind = "bn"
        if kind in ("up", "pad") and max(spatial) > 5:
            kind = "act"
        if kind == "conv":
            op = (
                "conv", t, draw(st.integers(1, 6)), draw(st.sampled_from([1, 3])),
                draw(st.booleans()), draw(st.sampled_from([None, "relu", "sigmoid"])),
            )
        elif kind == "padconv":
            op = ("padconv", t, draw(st.integers(1, 6)))
        elif kind == "bn":
            op = ("bn", t, draw(st.booleans()), draw(st.booleans()))
        elif kind == "act":
            op = ("act", t, draw(st.sampled_from(["relu", "tanh", "swish"])))
        elif kind == "dw":
            op = ("dw", t, draw(st.integers(1, 2)), draw(st.booleans()))
        elif kind == "sep":
            op = ("sep", t, draw(st.integers(1, 6)), draw(st.integers(1, 2)))
        elif kind in ("pool", "pad", "crop", "up"):
            op = (kind, t, draw(st.sampled_from(["max", "avg"]))) if kind == "pool" else (kind, t)
        elif kind == "prelu":
            op = ("prelu", t, draw(st.booleans()))
        elif kind == "dense":
            op = ("dense", t, draw(st.integers(1, 5)))
        elif kind == "gconv":
            groups = draw(st.sampled_from([g for g in (1, 2, 3, c) if c % g == 0]))
            op = ("gconv", t, groups * draw(st.integers(1, 2)), groups)
        elif kind == "stride":
            op = ("stride", t, draw(st.integers(1, 5)))
        elif kind == "attn":
            op = ("attn", t)
        elif kind == "cat1":
            op = ("cat1", t, draw(st.sampled_from(along)))
        elif kind == "shared":
            produced, _, filters = draw(st.sampled_from([v for v in convs if v[1] == c]))
            op = ("shared", t, produced, filters)  # calls the conv that made tensor `produced`
        elif kind == "se":
            op = ("se", t, draw(st.integers(1, 3)), draw(st.booleans()))
        elif kind == "res":
            op = ("res", t, draw(st.booleans()))
        elif kind == "merge":
            op = ("merge", t, draw(st.sampled_from(same)), draw(st.sampled_from(MERGES)))
        elif kind == "concat":
            others = draw(st.lists(st.sampled_from(joinable), min_size=1, max_size=2))
            op = ("concat", [t] + others)
        else:  # sub
            inner = [shapes[t]]
            op = ("sub", t, _draw_ops(draw, inner, draw(st.integers(1, 3)), nested=True))
        if op[0] == "merge":
            shapes.append(shapes[t])
        else:
            shapes.append(_apply_shape(op, shapes))
        if op[0] == "conv":
            convs.append((len(shapes) - 1, c, op[2]))
        ops.append(op)
    return ops


@st.composite
def model_specs(draw, max_ops=10):
    rank = draw(st.sampled_from([1, 2]))
    size = draw(st.sampled_from([4, 5, 6]))
    channels = draw(st.lists(st.integers(1, 4), min_size=1, max_size=2))
    shapes = [((size,) * rank, c) for c in channels]
    # A first conv on the newest input, so most models have something to prune.
    ops = [("conv", len(shapes) - 1, draw(st.integers(2, 6)), 3, True, "relu")]
    shapes.append(_apply_shape(ops[0], shapes))
    ops += _draw_ops(draw, shapes, draw(st.integers(2, max_ops)), nested=False)
    # Raw feature-map outputs block their groups: rarer than pooled heads.
    heads = ["gap_dense", "gap_dense", "flat_dense", "raw"]
    outputs = [(len(shapes) - 1, draw(st.sampled_from(heads)), draw(st.integers(1, 3)))]
    for _ in range(draw(st.integers(0, 2))):
        t = _recent(draw, shapes)
        if t >= len(channels):
            outputs.append((t, draw(st.sampled_from(heads)), draw(st.integers(1, 3))))
    return {"rank": rank, "size": size, "inputs": channels, "ops": ops, "outputs": outputs}


# ------------------------------------------------------------------ build


class Built:
    """A model from a spec, and the primitive records it was made of.

    A record is `(kind, input tensor ids, output tensor id, info)`; kinds:
    conv/dense/sep (make channels), dw, bn, pass (per-channel), merge
    (couples same-index channels), concat, flatten, alias (sub-model edges).
    """

    def __init__(self, spec):
        self.rank = spec["rank"]
        self.records = []
        self.tensors = []  # tensor id -> KerasTensor
        self.fixed = set()  # model input tensor ids
        self._named = {}
        self._n = 0
        inputs = []
        for c in spec["inputs"]:
            kt_in = keras.Input((spec["size"],) * self.rank + (c,), name=self._name("in"))
            inputs.append(kt_in)
            self.fixed.add(self._add(kt_in))
        local = list(range(len(inputs)))
        self._run(spec["ops"], local)
        outs, self.output_ids = [], []
        for t, head, units in spec["outputs"]:
            gid = local[t]
            if head == "raw":
                outs.append(self.tensors[gid])
                self.output_ids.append(gid)
                continue
            if head == "gap_dense":
                pooled = self._layer("pass", gid, self._gap())
            else:
                pooled = self._flatten(gid)
            out = self._layer("dense", pooled, layers.Dense(units, name=self._name("head")))
            outs.append(self.tensors[out])
            self.output_ids.append(out)
        self.model = keras.Model(inputs if len(inputs) > 1 else inputs[0], outs if len(outs) > 1 else outs[0])

    # -- helpers
    def _name(self, kind):
        self._n += 1
        return f"{kind}{self._n}"

    def _add(self, kt_tensor):
        self.tensors.append(kt_tensor)
        return len(self.tensors) - 1

    def _layer(self, kind, ins, layer, **info):
        ins = [ins] if isinstance(ins, int) else list(ins)
        args = [self.tensors[i] for i in ins]
        out = self._add(layer(args if len(args) > 1 or kind in ("merge", "concat") else args[0]))
        self.records.append((kind, ins, out, dict(info, name=layer.name)))
        self._named[layer.name] = layer
        return out

    def _cls(self, one_d, two_d):
        return one_d if self.rank == 1 else two_d

    def _gap(self):
        return self._cls(layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D)(name=self._name("gap"))

    def _flatten(self, gid):
        shape = self.tensors[gid].shape
        out = self._layer("pass", gid, layers.Flatten(name=self._name("flatten")))
        kind, ins, out, info = self.records.pop()
        self.records.append(("flatten", ins, out, dict(info, repeat=int(np.prod(shape[1:-1])))))
        return out

    def _conv(self, gid, filters, kernel, bias=True, activation=None, padding="same"):
        conv = self._cls(layers.Conv1D, layers.Conv2D)(
            filters, kernel, padding=padding, use_bias=bias, activation=activation, name=self._name("conv")
        )
        return self._layer("conv", gid, conv, k=kernel**self.rank, bias=bias)

    # -- ops
    def _run(self, ops, local):
        made = {}  # local tensor index -> record of the conv that made it
        for op in ops:
            local.append(self._op(op, local, made))
            if op[0] == "conv":
                made[len(local) - 1] = self.records[-1]

    def _op(self, op, local, made):
        kind, rank = op[0], self.rank
        if kind == "concat":
            return self._layer("concat", [local[t] for t in op[1]], layers.Concatenate(name=self._name("cat")))
        g = local[op[1]]
        if kind == "conv":
            return self._conv(g, op[2], op[3], op[4], op[5])
        if kind == "shared":
            rec = made[op[2]]
            layer = self._named[rec[3]["name"]]
            out = self._add(layer(self.tensors[g]))
            self.records.append(("shared", [g], out, dict(rec[3], first=rec)))
            return out
        if kind == "prelu":
            axes = list(range(1, rank + 1)) if op[2] else None
            prelu = layers.PReLU(shared_axes=axes, name=self._name("prelu"))
            return self._layer("prelu", g, prelu, shared=op[2])
        if kind == "dense":
            return self._layer("dense", g, layers.Dense(op[2], name=self._name("pwdense")))
        if kind == "gconv":
            conv = self._cls(layers.Conv1D, layers.Conv2D)(
                op[2], 3, padding="same", groups=op[3], name=self._name("gconv")
            )
            c = self.tensors[g].shape[-1]
            kind = "dwconv" if op[3] == c and op[3] > 1 else ("conv" if op[3] == 1 else "gconv")
            return self._layer(kind, g, conv, k=3**rank, bias=True, groups=op[3], m=op[2] // op[3])
        if kind == "stride":
            conv = self._cls(layers.Conv1D, layers.Conv2D)(
                op[2], 3, strides=2, padding="same", name=self._name("sconv")
            )
            return self._layer("conv", g, conv, k=3**rank, bias=True)
        if kind == "attn":
            a = self._conv(g, 1, 1, activation="sigmoid")
            return self._layer("merge", [g, a], layers.Multiply(name=self._name("attn_mul")))
        if kind == "cat1":
            return self._layer("merge", [g, local[op[2]]], layers.Concatenate(axis=1, name=self._name("cat1_")))
        if kind == "padconv":
            pad = self._cls(layers.ZeroPadding1D, layers.ZeroPadding2D)(1, name=self._name("pad"))
            return self._conv(self._layer("pass", g, pad), op[2], 3, padding="valid")
        if kind == "bn":
            bn = layers.BatchNormalization(center=op[2], scale=op[3], name=self._name("bn"))
            return self._layer("bn", g, bn, per_channel=int(op[2]) + int(op[3]) + 2, learn=int(op[2]) + int(op[3]))
        if kind == "act":
            act = layers.ReLU(name=self._name("relu")) if op[2] == "relu" else layers.Activation(op[2], name=self._name("act"))
            return self._layer("pass", g, act)
        if kind == "dw":
            dw = self._cls(layers.DepthwiseConv1D, layers.DepthwiseConv2D)(
                3, padding="same", depth_multiplier=op[2], use_bias=op[3], name=self._name("dw")
            )
            return self._layer("dw", g, dw, k=3**rank, m=op[2], bias=op[3])
        if kind == "sep":
            sep = self._cls(layers.SeparableConv1D, layers.SeparableConv2D)(
                op[2], 3, padding="same", depth_multiplier=op[3], name=self._name("sep")
            )
            return self._layer("sep", g, sep, k=3**rank, m=op[3])
        if kind == "pool":
            if op[2] == "max":
                pool = self._cls(layers.MaxPooling1D, layers.MaxPooling2D)(2, name=self._name("maxpool"))
            else:
                pool = self._cls(layers.AveragePooling1D, layers.AveragePooling2D)(2, name=self._name("avgpool"))
            return self._layer("pass", g, pool)
        if kind == "pad":
            return self._layer("pass", g, self._cls(layers.ZeroPadding1D, layers.ZeroPadding2D)(1, name=self._name("pad")))
        if kind == "crop":
            return self._layer("pass", g, self._cls(layers.Cropping1D, layers.Cropping2D)(1, name=self._name("crop")))
        if kind == "up":
            return self._layer("pass", g, self._cls(layers.UpSampling1D, layers.UpSampling2D)(2, name=self._name("up")))
        if kind == "se":
            c = self.tensors[g].shape[-1]
            s = self._layer("pass", g, self._gap())
            if op[3]:  # Dense variant: GAP -> Dense -> Dense -> Reshape
                s = self._layer("dense", s, layers.Dense(op[2], activation="relu", name=self._name("sed")))
                s = self._layer("dense", s, layers.Dense(c, activation="sigmoid", name=self._name("sed")))
                s = self._layer("pass", s, layers.Reshape((1,) * rank + (c,), name=self._name("reshape")))
            else:
                s = self._layer("pass", s, layers.Reshape((1,) * rank + (c,), name=self._name("reshape")))
                s = self._conv(s, op[2], 1, activation="relu")
                s = self._conv(s, c, 1, activation="sigmoid")
            return self._layer("merge", [g, s], layers.Multiply(name=self._name("se_mul")))
        if kind == "res":
            c = self.tensors[g].shape[-1]
            y = self._conv(g, c, 3)
            if op[2]:
                y = self._layer("bn", y, layers.BatchNormalization(name=self._name("bn")), per_channel=4, learn=2)
            return self._layer("merge", [g, y], layers.Add(name=self._name("res_add")))
        if kind == "merge":
            cls = {"add": layers.Add, "subtract": layers.Subtract, "multiply": layers.Multiply,
                   "average": layers.Average, "maximum": layers.Maximum}[op[3]]
            return self._layer("merge", [g, local[op[2]]], cls(name=self._name(op[3])))
        if kind == "sub":
            inner_in = keras.Input(tuple(self.tensors[g].shape[1:]), name=self._name("sub_in"))
            inner_gid = self._add(inner_in)
            self.records.append(("alias", [g], inner_gid, {}))
            inner_local = [inner_gid]
            self._run(op[2], inner_local)
            sub = keras.Model(inner_in, self.tensors[inner_local[-1]], name=self._name("sub"))
            out = self._add(sub(self.tensors[g]))
            self.records.append(("alias", [inner_local[-1]], out, {}))
            return out
        raise AssertionError(kind)


# ------------------------------------------------ independent channel model


class Channels:
    """Follows every channel through the records of the reachable graph.

    Each channel of each tensor is a label; conv/sep/dense outputs make new
    labels, merges union them (same index), concat joins, flatten tiles and
    depthwise repeats them. A group (union of labels) is prunable when it
    holds a conv/sep filter and no model input or output channel.
    """

    def __init__(self, built):
        self.built = built
        producer = {rec[2]: rec for rec in built.records}
        reach, todo = set(), list(built.output_ids)
        while todo:
            tid = todo.pop()
            rec = producer.get(tid)
            if rec is not None and id(rec) not in reach:
                reach.add(id(rec))
                todo.extend(rec[1])
        self.records = [r for r in built.records if id(r) in reach]
        self.parent = []
        self.labels = {}
        self.layer_labels = {}  # layer name -> labels of its new channels
        self.source_labels = set()
        self.blocked_labels = set()
        self.calls = {}  # layer name -> (input labels, output labels) of its first call
        for tid in built.fixed:
            self.labels[tid] = self._new(built.tensors[tid].shape[-1])
        for kind, ins, out, info in self.records:
            first = self.labels[ins[0]]
            if kind in ("conv", "shared") and info["name"] in self.calls:
                # A layer called again: same filters, and its inputs couple
                # (one kernel is sliced for every call).
                in_labels, out_labels = self.calls[info["name"]]
                for a, b in zip(in_labels, first):
                    self._union(a, b)
                self.labels[out] = out_labels
            elif kind == "gconv":  # whole groups only: a blocker
                self.blocked_labels.update(first)
                new = self._new(built.tensors[out].shape[-1])
                self.blocked_labels.update(new)
                self.layer_labels[info["name"]] = new
                self.labels[out] = new
            elif kind == "dwconv":  # groups == channels: a depthwise conv
                self.labels[out] = np.repeat(first, info["m"])
            elif kind in ("conv", "sep", "dense", "shared"):
                new = self._new(built.tensors[out].shape[-1])
                self.calls[info["name"]] = (first, new)
                self.layer_labels[info["name"]] = new
                if kind != "dense":
                    self.source_labels.update(new)
                self.labels[out] = new
            elif kind == "dw":
                self.labels[out] = np.repeat(first, info["m"])
            elif kind == "merge":
                # a one-channel input broadcasts and couples nothing
                full = [self.labels[i] for i in ins if len(self.labels[i]) == built.tensors[out].shape[-1]]
                for other in full[1:]:
                    for a, b in zip(full[0], other):
                        self._union(a, b)
                self.labels[out] = full[0]
            elif kind == "concat":
                self.labels[out] = np.concatenate([self.labels[i] for i in ins])
            elif kind == "flatten":
                self.labels[out] = np.tile(first, info["repeat"])
            else:  # bn, pass, alias
                self.labels[out] = first
        blocked = {self._find(a) for a in self.blocked_labels}
        for tid in list(built.fixed) + list(built.output_ids):
            blocked.update(self._find(a) for a in self.labels[tid])
        sources = {self._find(a) for a in self.source_labels}
        self.prunable_groups = sources - blocked

    def _new(self, n):
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return np.arange(start, start + n)

    def _find(self, a):
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def _union(self, a, b):
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def counts(self, alive_group):
        """(parameters, learnables) when groups with alive_group[g] False go."""
        def n(tid):
            return sum(bool(alive_group(self._find(a))) for a in self.labels[tid])

        params = learn = 0
        counted = set()
        for kind, ins, out, info in self.records:
            n_in, n_out = n(ins[0]), n(out)
            name = info.get("name")
            if name is not None and name in counted:
                continue  # a shared layer's weights count once
            counted.add(name)
            if kind in ("conv", "shared"):
                p = l = info["k"] * n_in * n_out + (n_out if info["bias"] else 0)
            elif kind == "gconv":
                p = l = info["k"] * (n_in // info["groups"]) * n_out + n_out
            elif kind == "dwconv":
                p = l = info["k"] * n_out + n_out
            elif kind == "prelu":
                spatial = int(np.prod(self.built.tensors[out].shape[1:-1]))
                p = l = n_in if info["shared"] else spatial * n_in
            elif kind == "dense":
                p = l = n_in * n_out + n_out
            elif kind == "sep":
                p = l = info["k"] * n_in * info["m"] + n_in * info["m"] * n_out + n_out
            elif kind == "dw":
                p = l = info["k"] * n_in * info["m"] + (n_in * info["m"] if info["bias"] else 0)
            elif kind == "bn":
                p, l = info["per_channel"] * n_in, info["learn"] * n_in
            else:
                p = l = 0
            params += p
            learn += l
        return params, learn


# ------------------------------------------------------------------ check


def _inputs(model, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=(3,) + tuple(t.shape[1:])).astype("float32") for t in model.inputs]
    return arrays[0] if len(arrays) == 1 else arrays


def check_spec(spec, seed=0, share=0.5, mode="subset"):
    """Builds, wraps, prunes, strips `spec` and checks it against `Channels`."""
    built = Built(spec)
    model = randomize_weights(built.model, seed)
    channels = Channels(built)
    x = _inputs(model, seed)
    full_params, full_learn = channels.counts(lambda g: True)
    assert model.count_params() == full_params, "the test's own count is wrong"

    if not channels.prunable_groups:
        with pytest.raises(kt.NothingPrunableError):
            kt.TaylorPrunableModel(model)
        return None
    before = [w.copy() for w in model.get_weights()]
    pm = kt.TaylorPrunableModel(model)
    graph = pm.channel_graph
    assert_outputs_close(model(x, training=False), pm(x, training=False), what="wrapped vs original")

    # The channel graph's groups are exactly the test's groups.
    group_to_unit, unit_to_group = {}, {}
    for name, labels in channels.layer_labels.items():
        units = graph.layer_units[name]
        assert len(units) == len(labels), name
        for label, unit in zip(labels, units):
            g = channels._find(label)
            assert group_to_unit.setdefault(g, int(unit)) == unit, f"{name}: one group, two units"
            assert unit_to_group.setdefault(int(unit), g) == g, f"{name}: one unit, two groups"
            assert bool(graph.unit_prunable[unit]) == (g in channels.prunable_groups), (
                f"{name}: unit {unit} prunable={graph.unit_prunable[unit]}, expected the opposite"
            )

    rng = np.random.default_rng(seed)
    if mode == "taylor":
        def loss(y_pred):
            return sum(keras.ops.mean(keras.ops.square(o)) for o in keras.tree.flatten(y_pred))

        pm.update_score(x, loss=loss)
        scores = pm.scores[graph.unit_prunable]
        assert np.all(np.isfinite(scores)) and np.all(scores >= 0)
        pm.update_prunables(max_to_prune=max(1, int(share * len(graph.prunable_units))))
    else:
        candidates = rng.permutation(graph.prunable_units)
        candidates = candidates[: int(np.ceil(share * len(candidates)))]
        alive, _ = graph.remove(candidates, pm.alive)
        pm.set_unit_alive(alive)

    alive = pm.alive
    alive_group = {g: bool(alive[u]) for g, u in group_to_unit.items()}
    for name, labels in channels.layer_labels.items():
        assert any(alive_group[channels._find(a)] for a in labels), f"{name} lost every channel"
    params, learn = channels.counts(lambda g: alive_group.get(g, True))
    assert pm.num_learnables == learn, f"pm.num_learnables {pm.num_learnables} != {learn}"
    stripped = assert_masked_equals_stripped(pm, x, expected_params=params)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "model mutated"
    return stripped


# Specs that once failed, run on every default run.
SHARED_FIRST_CALL_DANGLING = {  # a shared conv whose first call feeds no output
    "rank": 1, "size": 4, "inputs": [1],
    "ops": [
        ("conv", 0, 2, 3, True, "relu"), ("conv", 1, 1, 1, False, None), ("pool", 1, "max"),
        ("shared", 3, 2, 1), ("shared", 3, 2, 1), ("merge", 5, 4, "add"), ("pool", 6, "max"),
        ("padconv", 7, 1), ("pad", 8), ("padconv", 9, 1), ("pad", 10),
    ],
    "outputs": [(11, "gap_dense", 1)],
}


def _run(spec, seed, share, mode):
    check_spec(spec, seed=seed, share=share, mode=mode)
    keras.backend.clear_session(free_memory=False)


_common = dict(
    spec=model_specs(),
    seed=st.integers(0, 2**16),
    share=st.sampled_from([0.2, 0.5, 0.9, 1.0]),
    mode=st.sampled_from(["subset", "taylor"]),
)


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(**_common)
@example(spec=SHARED_FIRST_CALL_DANGLING, seed=0, share=0.2, mode="subset")
def test_random_architectures(spec, seed, share, mode):
    _run(spec, seed, share, mode)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(**_common)
def test_random_architectures_many(spec, seed, share, mode):
    _run(spec, seed, share, mode)
