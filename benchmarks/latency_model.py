"""Latency model: predicted vs measured latency of stripped models pruned for latency.

For ResNet-20 (32x32x3), MobileNetV2 and ResNet50 (weights=None, input
96x96x3 and 64x64x3 by default, to keep the run short), on LiteRT (batch 1,
one interpreter thread) and the Keras runtime (a `tf.function`, batch 32,
one intra-op thread, so that the CPU-time clock applies: see
`profile.time_models`): `kt.latency_profile` (timed here, no
cache; per-layer attribution unless `--per-kind`), then L1-scored pruning with `cost="latency"` and `round_to=8` to
10, 30, 50 and 70% less predicted latency, and, on LiteRT, to the goals
`kt.Speedup(1.5)` and `kt.Speedup(2.0)`. The unpruned and all pruned
stripped models of one model and runtime are timed round robin in one run
(the fastest of `--runs` samples each in CPU time, as the profile times its
variants), together with the profile's variants again: the latency model
refitted on those times and its prediction of the pruned models ("error,
refit side by side") is its error without the drift of machine load between
building the profile and checking it.
"speedup error" compares the predicted speedup with the one measured against
the unpruned model in the same round robin: what a `kt.Speedup` goal depends on, and
unmoved by drift between building the profile and checking it.
The machine load (`uptime`) is printed, since other work shares these CPUs.

    python -m benchmarks.latency_model [--quick] [--models ResNet-20,MobileNetV2,ResNet50]
        [--runtimes litert,keras] [--samples 8] [--runs 15] [--per-kind]
"""

import time

from benchmarks import _common

GOALS = (0.1, 0.3, 0.5, 0.7)
SPEEDUPS = (1.5, 2.0)
BATCH = {"litert": 1, "keras": 32}
THREADS = {"litert": 1, "keras": 1}


def build(name, resnet50_size, mobilenet_size):
    import keras

    from keras_taylor import reference_models

    if name == "ResNet-20":
        return reference_models.resnet20()
    if name == "MobileNetV2":
        return keras.applications.MobileNetV2(input_shape=(mobilenet_size,) * 2 + (3,), weights=None)
    return keras.applications.ResNet50(input_shape=(resnet50_size,) * 2 + (3,), weights=None)


def pruned_models(model, prof, runtime):
    """(label, predicted ms, alive groups, stripped model) of the unpruned model and each goal."""
    import numpy as np

    import keras_taylor as kt

    pm = kt.TaylorPrunableModel(model, criterion="l1")
    pm.latency_profile = prof
    full = np.ones(pm.channel_graph.num_units, bool)
    out = [("unpruned", prof.predict_ms(full, pm.channel_graph), full, model)]
    goals = [(f"{int(100 * g)}% less", g) for g in GOALS]
    if runtime == "litert":
        goals += [(f"Speedup({s})", kt.Speedup(s)) for s in SPEEDUPS]
    for label, goal in goals:
        pm.set_unit_alive(full)
        pm.update_prunables(None, cost="latency", goal=goal, round_to=8)
        out.append((label, prof.predict_ms(pm.alive, pm.channel_graph), pm.alive.copy(), kt.strip_pruning(pm)))
    return out, pm.channel_graph


def side_by_side(graph, variants, cases, runtime, threads, batch, samples, runs, attribute):
    """Times the profile's variants and the pruned models in one round robin, refits the
    latency model on the variants' times and predicts the pruned ones: the model's error
    without the drift of machine load between building the profile and checking it."""
    import numpy as np

    from keras_taylor import profile as kt_profile

    models = variants + [c[3] for c in cases]
    ms = 1000 * np.asarray(kt_profile.time_models(models, runtime, threads, batch, runs=runs))
    sets, labels = kt_profile.variant_sets(graph, samples, 0, attribute)
    theta, _, scales = kt_profile.fit_timings(graph, sets, labels, ms[:len(variants)], attribute)
    x = kt_profile.features(graph, [c[2] for c in cases], scales)
    return x @ np.array([theta[k] for k in kt_profile.FEATURES]), ms[len(variants):]


def one(name, model, runtime, samples, runs, attribute=True):
    import numpy as np

    import keras_taylor as kt
    from keras_taylor import profile as kt_profile

    batch, threads = BATCH[runtime], THREADS[runtime]
    calls = []  # the channel tile's probes, then the variants

    def timer(models, *args):
        calls.append(list(models))
        return kt_profile.time_models(models, *args, runs=runs)

    start = time.perf_counter()
    prof = kt.latency_profile(model, runtime=runtime, threads=threads, batch_size=batch,
                              samples=samples, cache_dir=False, timer=timer, attribute=attribute)
    built = time.perf_counter() - start
    fit_error = np.abs(prof.samples.predicted_ms / prof.samples.measured_ms - 1).max()
    cases, graph = pruned_models(model, prof, runtime)
    refit, measured = side_by_side(graph, calls[-1], cases, runtime, threads, batch, samples, runs, attribute)
    where = f"{runtime} b{batch}"
    rows = []
    for (label, p, _, _), m, r in zip(cases, measured, refit):
        rows.append([name, where, label, f"{p:.3f}", f"{m:.3f}", f"{100 * (p / m - 1):+.1f}%",
                     f"{100 * (r / m - 1):+.1f}%", f"{cases[0][1] / p:.2f}x", f"{measured[0] / m:.2f}x",
                     f"{100 * ((cases[0][1] / p) / (measured[0] / m) - 1):+.1f}%"])
    coefficients = ", ".join(f"{k} {v:.3g}" for k, v in prof.coefficients.items())
    print(f"{name} {where}: profile built in {built:.0f} s from {samples} variants; worst fit error on "
          f"them {100 * fit_error:.1f}%; coefficients {coefficients}", flush=True)
    print(prof.samples.round(4).to_string(), flush=True)
    return rows, [name, where, f"{built:.0f}", f"{100 * fit_error:.1f}%", f"{prof.fixed_ms:.3f}", str(prof.channel_tile)]


HEADER = ["model", "runtime", "pruned to", "predicted ms", "measured ms", "error",
          "error, refit side by side", "predicted speedup", "measured speedup", "speedup error"]


def main():
    p = _common.parser(__doc__)
    p.add_argument("--models", default="ResNet-20,MobileNetV2,ResNet50")
    p.add_argument("--runtimes", default="litert,keras")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--resnet50-size", type=int, default=64)
    p.add_argument("--mobilenet-size", type=int, default=96)
    p.add_argument("--per-kind", action="store_true", help="profiles with attribute=False (no per-layer cuts)")
    args = p.parse_args()
    names = ["ResNet-20"] if args.quick else args.models.split(",")
    if "keras" in args.runtimes:
        from keras_taylor import latency

        latency.keras_threads(THREADS["keras"])  # before TensorFlow starts: one op at a time, on one thread
    print(_common.machine(), "|", _common.code_version(), "|", _common.now())
    print("load before:", _common.uptime(), flush=True)
    rows, builds = [], []
    for name in names:
        model = build(name, args.resnet50_size, args.mobilenet_size)
        for runtime in args.runtimes.split(","):
            r, b = one(name, model, runtime, args.samples, args.runs, not args.per_kind)
            rows += r
            builds.append(b)
            print(_common.markdown_table(HEADER, r), flush=True)
    print("load after:", _common.uptime())
    print(_common.markdown_table(HEADER, rows))
    print(_common.markdown_table(["model", "runtime", "profile build s", "worst fit error", "fixed ms", "channel tile"], builds))


if __name__ == "__main__":
    main()
