"""Latency model: predicted vs measured LiteRT latency of stripped models pruned for latency.

For ResNet-20 (32x32x3) and MobileNetV2 (weights=None, 96x96x3), batch 1,
one interpreter thread: `kt.latency_profile` (timed here, no cache), then
L1-scored pruning with `cost="latency"` to 30% and 60% less predicted
latency (`round_to` as given), and the unpruned and pruned stripped models
timed round robin in one run. The machine load (`uptime`) is printed, since
other work shares these CPUs.

    python -m benchmarks.latency_model [--quick] [--round-to N]
"""

import os
import time

from benchmarks import _common

GOALS = (0.3, 0.6)


def models(quick):
    import keras

    from keras_taylor import reference_models

    yield "ResNet-20", reference_models.resnet20()
    if not quick:
        yield "MobileNetV2", keras.applications.MobileNetV2(input_shape=(96, 96, 3), weights=None)


def one(name, model, round_to, samples, runs):
    import numpy as np

    import keras_taylor as kt
    from keras_taylor import profile as kt_profile

    start = time.perf_counter()
    prof = kt.latency_profile(model, samples=samples, cache_dir=False)
    built = time.perf_counter() - start
    fit_error = np.abs(prof.samples.predicted_ms / prof.samples.measured_ms - 1).max()
    pm = kt.TaylorPrunableModel(model, criterion="l1")
    pm.latency_profile = prof
    pruned = [model]
    predicted = [prof.predict_ms(pm.alive, pm.channel_graph)]
    for goal in GOALS:
        pm.set_unit_alive(np.ones(pm.channel_graph.num_units, bool))
        pm.update_prunables(None, cost="latency", goal=goal, round_to=round_to)
        predicted.append(prof.predict_ms(pm.alive, pm.channel_graph))
        pruned.append(kt.strip_pruning(pm))
    measured = [1000 * s for s in kt_profile.time_models(pruned, "litert", 1, 1, runs=runs)]
    rows = []
    for label, p, m in zip(["unpruned"] + [f"{int(100 * g)}% less" for g in GOALS], predicted, measured):
        rows.append([name, label, f"{p:.3f}", f"{m:.3f}", f"{100 * (p / m - 1):+.1f}%",
                     f"{predicted[0] / p:.2f}x", f"{measured[0] / m:.2f}x"])
    print(f"{name}: profile built in {built:.0f} s from {samples} variants; "
          f"worst fit error on them {100 * fit_error:.1f}%; fixed {prof.fixed_ms:.3f} ms")
    return rows


def main():
    p = _common.parser(__doc__)
    p.add_argument("--round-to", type=int, default=None)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--runs", type=int, default=15)
    args = p.parse_args()
    print("load before:", os.popen("uptime").read().strip())
    rows = []
    for name, model in models(args.quick):
        rows += one(name, model, args.round_to, args.samples, args.runs)
    print("load after:", os.popen("uptime").read().strip())
    print(_common.markdown_table(
        ["model", "pruned (predicted latency)", "predicted ms", "measured ms", "error", "predicted speedup", "measured speedup"], rows))


if __name__ == "__main__":
    main()
