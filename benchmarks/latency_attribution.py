"""Latency attribution: does the latency profile rank channel groups by time the way the runtime does?

Cost-aware selection (`cost="latency"`) removes first the channel groups
with the least Taylor importance per millisecond they save, so it is only as
good as the profile's split of time between groups. This checks that split
directly, where the prediction table (`benchmarks.latency_model`) checks
only whole-model totals: for each model, the prunable groups are sorted by
the layer that creates them, and the two layers whose groups the profile
says save the most and the least time per MAC are picked ("dear" and
"cheap"). Two cuts of the unpruned model remove the same MACs, one from
each (half the dear layer's groups; as many of the cheap layers' groups as
match those MACs, each layer keeping at least one). Both cuts and the
unpruned model are stripped and timed together on LiteRT (batch 1, one
thread, fastest of `--runs` samples in CPU time), and the time each cut saves
is compared with what the profile predicted. If the profile's dear/cheap
ratio is well above the measured one, a latency goal prunes the dear layer
harder than the runtime warrants: how much harder is counted too, as the
dear layer's groups that a `kt.Speedup(2.0)` plan removes with
`cost="latency"` and with `cost="macs"` (L1 scores of the model as built).

    python -m benchmarks.latency_attribution [--quick] [--models ResNet-20,MobileNetV2] [--runs 25]
"""

import collections

from benchmarks import _common
from benchmarks.latency_model import build


def groups_by_layer(pm):
    """{creating layer name: prunable group indices}."""
    graph = pm.channel_graph
    out = collections.defaultdict(list)
    for unit in graph.prunable_units:
        layers = graph.unit_layers.get(int(unit), [])
        if layers:
            out[layers[0]].append(int(unit))
    return out


def dear_and_cheap(pm, prof, min_groups=8):
    """The layers whose groups save the most and the least predicted ms per MAC; the ratio per layer."""
    import numpy as np

    full = np.ones(pm.channel_graph.num_units, bool)
    ms = prof.cost_table(pm.channel_graph).savings(full)
    macs = pm.cost_table("macs").savings(full)
    per_layer = {}
    for layer, groups in groups_by_layer(pm).items():
        groups = np.asarray(groups)
        if len(groups) >= min_groups and (macs[groups] > 0).all():
            per_layer[layer] = float(np.median(ms[groups] / macs[groups]))
    ranked = sorted(per_layer, key=per_layer.get)
    return ranked[-1], ranked[0], per_layer


def equal_macs_cuts(pm, dear, cheap_layers):
    """Alive masks: half of `dear`'s groups gone, and `cheap_layers`' groups gone up to the same MACs."""
    import numpy as np

    by_layer, macs = groups_by_layer(pm), pm.cost_table("macs")
    full = np.ones(pm.channel_graph.num_units, bool)
    dear_cut = full.copy()
    dear_cut[by_layer[dear][: len(by_layer[dear]) // 2]] = False
    target = macs.total(full) - macs.total(dear_cut)
    cheap_cut = full.copy()
    for layer in cheap_layers:
        for unit in by_layer[layer][:-1]:  # each layer keeps one channel
            if macs.total(full) - macs.total(cheap_cut) >= target:
                return dear_cut, cheap_cut
            cheap_cut[unit] = False
    return dear_cut, cheap_cut


def measure(name, args):
    import numpy as np

    import keras_taylor as kt
    from keras_taylor import profile as kt_profile

    model = build(name, 64, args.mobilenet_size)
    prof = kt.latency_profile(model, runtime="litert", samples=4 if args.quick else 8)
    pm = kt.TaylorPrunableModel(model)
    dear, cheap, per_layer = dear_and_cheap(pm, prof)
    cheap_layers = sorted(per_layer, key=per_layer.get)[:-1]  # the cheapest first, never the dear one
    dear_cut, cheap_cut = equal_macs_cuts(pm, dear, cheap_layers)
    full = np.ones(pm.channel_graph.num_units, bool)
    models = []
    for alive in (full, dear_cut, cheap_cut):
        pm.set_unit_alive(alive)
        models.append(kt.strip_pruning(pm))
    ms = 1000 * np.asarray(kt_profile.time_models(models, "litert", 1, 1, runs=args.runs))
    macs = pm.cost_table("macs")
    row = dict(model=name, dear=dear, cheap=cheap, ms=float(ms[0]), dear_groups=len(groups_by_layer(pm)[dear]),
               **dear_groups_planned(model, prof, dear))
    for label, alive, measured in (("dear", dear_cut, ms[0] - ms[1]), ("cheap", cheap_cut, ms[0] - ms[2])):
        row[f"{label}_macs"] = (macs.total(full) - macs.total(alive)) / 1e6
        row[f"{label}_predicted"] = float(prof.predict_ms(full, pm.channel_graph) - prof.predict_ms(alive, pm.channel_graph))
        row[f"{label}_measured"] = float(measured)
    print(f"[latency_attribution] {row}", flush=True)
    return row


def dear_groups_planned(model, prof, dear):
    """How many of `dear`'s groups a Speedup(2.0) plan removes, by cost ("latency", "macs")."""
    import keras_taylor as kt

    pm = kt.TaylorPrunableModel(model, criterion="l1")
    pm.latency_profile = prof
    dear_groups = set(groups_by_layer(pm)[dear])
    return {f"{cost}_plan": sum(int(u) in dear_groups for u in pm.planned_prunables(None, cost=cost, goal=kt.Speedup(2.0)))
            for cost in ("latency", "macs")}


def table(rows):
    def ratio(r, kind):
        return f"{r[f'dear_{kind}'] / r[f'cheap_{kind}']:.2f}" if r[f"cheap_{kind}"] > 0 else "n/a"

    return _common.markdown_table(
        ["model", "unpruned ms", "dear layer (cut: MMACs)", "cheap layer (cut: MMACs)", "dear cut saves ms: predicted / measured",
         "cheap cut saves ms: predicted / measured", "dear / cheap: predicted", "dear / cheap: measured",
         "dear groups a Speedup(2.0) plan removes: latency / MACs cost"],
        [[r["model"], f"{r['ms']:.3f}", f"{r['dear']} ({r['dear_macs']:.2f})", f"{r['cheap']} ({r['cheap_macs']:.2f})",
          f"{r['dear_predicted']:.4f} / {r['dear_measured']:.4f}", f"{r['cheap_predicted']:.4f} / {r['cheap_measured']:.4f}",
          ratio(r, "predicted"), ratio(r, "measured"),
          f"{r['latency_plan']} / {r['macs_plan']} of {r['dear_groups']}"] for r in rows])


def main():
    p = _common.parser(__doc__)
    p.add_argument("--models", default="ResNet-20,MobileNetV2")
    p.add_argument("--runs", type=int, default=25)
    p.add_argument("--mobilenet-size", type=int, default=96)
    args = p.parse_args()
    rows = [measure(name, args) for name in args.models.split(",")]
    print(table(rows))
    if not args.no_docs:
        lines = [
            "## Latency attribution: the profile's split of time between channel groups", "",
            f"Command: `{_common.command()}` (from the repository root)  ",
            f"Date: {_common.now()}, code {_common.code_version()}, mode {'quick' if args.quick else 'full'}  ",
            f"Machine: {_common.machine()}", "",
            "Models with `weights=None` (ResNet-20 32x32, MobileNetV2 "
            f"{args.mobilenet_size}x{args.mobilenet_size}), `kt.latency_profile(model, runtime=\"litert\")` (cached "
            "when present). The dear and cheap layers: those whose channel groups the profile says save the most "
            "and the least time per MAC (median over a layer's groups, layers with 8 groups or more). Two cuts of "
            "the unpruned model remove the same MACs, half the dear layer's groups or groups of the cheap layers; "
            f"all three stripped models timed together on LiteRT (batch 1, one thread, fastest of {args.runs} "
            "samples, CPU time).", "",
            table(rows),
        ]
        _common.write_section("latency_attribution", "\n".join(lines))


if __name__ == "__main__":
    main()
