"""Latency attribution: does the latency profile split time between channel groups the way the runtime does?

Cost-aware selection (`cost="latency"`) removes first the channel groups
with the least Taylor importance per millisecond they save, so it is only as
good as the profile's split of time between groups. The prediction table
(`benchmarks.latency_model`) checks whole-model totals; this checks the
split, for two profiles of each model: `attribute=False` (one time per MAC
for each layer kind, fitted on whole-model variants) and `attribute=True`
(a measured scale per layer, the default).

Timed together on LiteRT (batch 1, one thread, fastest of `--runs` samples
in CPU time): the unpruned model, one cut per cluster of channel groups
(a fifth of its groups left, as `keras_taylor.attribution.cuts`), and each
profile's `kt.Speedup(1.5)` and `kt.Speedup(2.0)` plans with
`cost="latency"` (L1 scores of the model as built). Reported per profile:

- how well the predicted saving of each cluster's cut follows the measured
  one: Spearman's rank correlation of the savings per MAC, and the median
  and worst error of the savings (clusters saving at least 2% of the time;
  the per-layer profile was fitted on cuts like these, timed in another run,
  so for it this is a check against fresh timings, not held-out widths);
- the plans, which no profile has seen: measured speedup against the goal.

    python -m benchmarks.latency_attribution [--quick] [--models ResNet-20,MobileNetV2] [--runs 25]
"""

from benchmarks import _common
from benchmarks.latency_model import build

SPEEDUPS = (1.5, 2.0)
MIN_SHARE = 0.02  # a cut saving less than this share of the time is within a few noise widths


def plans(model, prof):
    """`{factor: alive}`: the Speedup(factor) plan of `prof` with cost="latency", L1 scores."""
    import numpy as np

    import keras_taylor as kt

    pm = kt.TaylorPrunableModel(model, criterion="l1")
    pm.latency_profile = prof
    out = {}
    for factor in SPEEDUPS:
        alive = np.ones(pm.channel_graph.num_units, bool)
        alive[pm.planned_prunables(None, cost="latency", goal=kt.Speedup(factor))] = False
        out[factor] = alive
    return out


def stripped(pm, alive_sets):
    import keras_taylor as kt

    models = []
    for alive in alive_sets:
        pm.set_unit_alive(alive)
        models.append(kt.strip_pruning(pm))
    return models


def measure(name, args):
    import time

    import numpy as np

    import keras_taylor as kt
    from keras_taylor import attribution
    from keras_taylor import profile as kt_profile

    model = build(name, 64, args.mobilenet_size)
    profiles, build_s = {}, {}
    for label, attribute in (("per kind", False), ("per layer", True)):
        start = time.perf_counter()
        profiles[label] = kt.latency_profile(model, runtime="litert", samples=4 if args.quick else 8,
                                             attribute=attribute)
        build_s[label] = None if profiles[label].from_cache else time.perf_counter() - start
    pm = kt.TaylorPrunableModel(model)
    graph = pm.channel_graph
    full = np.ones(graph.num_units, bool)
    cuts = attribution.cuts(graph)
    planned = {label: plans(model, prof) for label, prof in profiles.items()}
    alive_sets = [full] + [a for _, a in cuts] + [a for label in profiles for a in planned[label].values()]
    ms = 1000 * np.asarray(kt_profile.time_models(stripped(pm, alive_sets), "litert", 1, 1, runs=args.runs))
    macs = pm.cost_table("macs")
    measured_cut = ms[0] - ms[1:1 + len(cuts)]
    cut_macs = np.array([macs.total(full) - macs.total(a) for _, a in cuts])
    rows = []
    plan_ms = iter(ms[1 + len(cuts):])
    for label, prof in profiles.items():
        predicted = np.array([prof.predict_ms(full, graph) - prof.predict_ms(a, graph) for _, a in cuts])
        big = measured_cut >= MIN_SHARE * ms[0]
        error = np.abs(predicted[big] / measured_cut[big] - 1)
        row = dict(model=name, profile=label, variants=len(prof.samples), build_s=build_s[label], ms=float(ms[0]),
                   clusters=len(cuts), big=int(big.sum()),
                   spearman=spearman(predicted / cut_macs, measured_cut / cut_macs),
                   median_error=float(np.median(error)), worst_error=float(error.max()),
                   worst_cluster=[n for (n, _), b in zip(cuts, big) if b][int(np.argmax(error))])
        for factor in SPEEDUPS:
            row[f"speedup_{factor}"] = float(ms[0] / next(plan_ms))
        print(f"[latency_attribution] {row}", flush=True)
        for (cluster, _), p, m, mm in zip(cuts, predicted, measured_cut, cut_macs):
            print(f"    {label:9s} {cluster:28s} {mm / 1e6:7.3f} MMACs saves {p:.4f} predicted, {m:.4f} measured ms",
                  flush=True)
        rows.append(row)
    return rows


def spearman(a, b):
    import pandas as pd

    return float(pd.Series(a).corr(pd.Series(b), method="spearman"))


def table(rows):
    return _common.markdown_table(
        ["model", "profile (variants timed, build s)", "unpruned ms", "clusters (saving >= 2%)",
         "rank correlation of saving per MAC", "saving error: median / worst (cluster)"]
        + [f"Speedup({f}) plan: measured" for f in SPEEDUPS],
        [[r["model"], f"{r['profile']} ({r['variants']}, {'cached' if r['build_s'] is None else round(r['build_s'])})",
          f"{r['ms']:.3f}", f"{r['clusters']} ({r['big']})", f"{r['spearman']:.2f}",
          f"{100 * r['median_error']:.0f}% / {100 * r['worst_error']:.0f}% ({r['worst_cluster']})"]
         + [f"{r[f'speedup_{f}']:.2f}x" for f in SPEEDUPS] for r in rows])


def main():
    p = _common.parser(__doc__)
    p.add_argument("--models", default="ResNet-20,MobileNetV2")
    p.add_argument("--runs", type=int, default=25)
    p.add_argument("--mobilenet-size", type=int, default=96)
    args = p.parse_args()
    rows = [row for name in args.models.split(",") for row in measure(name, args)]
    print(table(rows))
    if not args.no_docs:
        lines = [
            "## Latency attribution: the profile's split of time between channel groups", "",
            *_common.provenance("quick" if args.quick else "full"),
            "Models with `weights=None` (ResNet-20 32x32, MobileNetV2 "
            f"{args.mobilenet_size}x{args.mobilenet_size}), each with two `kt.latency_profile(model, "
            "runtime=\"litert\")` (cached when present): `attribute=False`, one time per MAC per layer kind, and "
            "`attribute=True`, a measured scale per layer (the default). Timed together on LiteRT (batch 1, one "
            f"thread, fastest of {args.runs} samples, CPU time): the unpruned model, one cut per cluster of channel "
            "groups (half its groups gone) and each profile's Speedup(1.5) and Speedup(2.0) plans with "
            "`cost=\"latency\"` (L1 scores). Rank correlation: Spearman's, between predicted and measured saving "
            "per MAC of the cuts; saving error over the cuts that save at least 2% of the time.", "",
            table(rows),
        ]
        _common.write_section("latency_attribution", "\n".join(lines))


if __name__ == "__main__":
    main()
