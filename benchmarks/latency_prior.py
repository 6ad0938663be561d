"""How hard a latency profile pulls each layer's rate toward its kind's: plans of each pull, timed together.

For ResNet-20 (32x32x3), MobileNetV2 (96x96x3) and ResNet50 (64x64x3),
weights=None, on one runtime (default: the Keras runtime, a `tf.function`,
batch 32, one intra-op thread; or LiteRT, batch 1, one thread): the
profile's variants and per-cluster cuts are timed once
(`kt.latency_profile`), then fitted with each pull on those same timings:
`--priors`, the `prior` of `attribution.fit_rates` (a layer call pulled
with prior over its share of the MACs, the rule since it was brought in;
default 0.01), and `--constant` pulls, one strength for every layer call
whatever its share (the rule before: 0.02 on LiteRT, 0.5 on the Keras
runtime). Each fit makes its own L1-scored plans at 30, 50 and 70% less
predicted latency (`round_to=8`), and the unpruned model and every plan of
every fit are timed round robin in one run. Reported per plan: the speedup
its profile predicted and the speedup measured against the unpruned model
in that same run, so drift between the profile's timings and the check
cancels.

    python -m benchmarks.latency_prior [--quick] [--runtime keras|litert] [--priors 0.005 0.01]
        [--constant 0.02 0.5] [--runs 15]
"""

import contextlib
import time

from benchmarks import _common
from benchmarks.latency_model import BATCH, THREADS, build

GOALS = (0.3, 0.5, 0.7)


@contextlib.contextmanager
def constant_pull():
    """The pull of the rule before the per-share one: every layer call's share taken as 1."""
    import numpy as np

    from keras_taylor import attribution

    share = attribution.macs_share
    attribution.macs_share = lambda row_macs: np.ones(row_macs.shape[1])
    try:
        yield
    finally:
        attribution.macs_share = share


def plans(model, prof, pulls, runtime):
    """`[(pull label, goal, predicted speedup, stripped model)]`, each pull's fit on `prof`'s timings.

    `pulls`: `(prior, constant)` pairs."""
    import numpy as np

    import keras_taylor as kt
    from keras_taylor import profile as kt_profile

    graph = prof.channel_graph
    sets, labels = kt_profile.variant_sets(graph, kt_profile.DEFAULT_SAMPLES, kt_profile.DEFAULT_SEED, True)
    ms = prof.samples.measured_ms.to_numpy()
    out = []
    for prior, constant in pulls:
        with constant_pull() if constant else contextlib.nullcontext():
            coefficients, table, scales = kt_profile.fit_timings(graph, sets, labels, ms, True, prior)
        label = f"{prior:g} constant" if constant else f"{prior:g} / share"
        fitted = kt_profile.LatencyProfile(coefficients, table, prof.key, runtime, prof.threads, prof.batch_size,
                                           graph, scales=scales, tile=prof.channel_tile)
        pm = kt.TaylorPrunableModel(model, criterion="l1")
        pm.latency_profile = fitted
        full = np.ones(pm.channel_graph.num_units, bool)
        for goal in GOALS:
            pm.set_unit_alive(full)
            pm.update_prunables(None, cost="latency", goal=goal, round_to=8)
            predicted = fitted.predict_ms(full, pm.channel_graph) / fitted.predict_ms(pm.alive, pm.channel_graph)
            out.append((label, goal, predicted, kt.strip_pruning(pm)))
    return out


def one(name, runtime, pulls, runs):
    import keras
    import numpy as np

    import keras_taylor as kt
    from keras_taylor import profile as kt_profile

    keras.utils.set_random_seed(0)
    model = build(name, 64, 96)
    batch, threads = BATCH[runtime], THREADS[runtime]
    timer = lambda models, *args: kt_profile.time_models(models, *args, runs=runs)  # noqa: E731
    prof = kt.latency_profile(model, runtime=runtime, threads=threads, batch_size=batch, cache_dir=False,
                              timer=timer)
    cases = plans(model, prof, pulls, runtime)
    ms = 1000 * np.asarray(kt_profile.time_models([model] + [c[3] for c in cases], runtime, threads, batch,
                                                  runs=runs))
    rows = []
    for (pull, goal, predicted, _), t in zip(cases, ms[1:]):
        measured = ms[0] / t
        rows.append([name, f"{runtime} b{batch}", pull, f"{int(100 * goal)}% less", f"{predicted:.2f}x",
                     f"{measured:.2f}x", f"{100 * (predicted / measured - 1):+.1f}%"])
        print(" | ".join(rows[-1]), flush=True)
    return rows


HEADER = ["model", "runtime", "pull", "plan", "predicted speedup", "measured speedup", "error"]


def main():
    p = _common.parser(__doc__)
    p.add_argument("--runtime", default="keras", choices=sorted(BATCH))
    p.add_argument("--models", default="ResNet-20,MobileNetV2,ResNet50")
    p.add_argument("--priors", type=float, nargs="+", default=[0.01], help="pulls over each layer's share")
    p.add_argument("--constant", type=float, nargs="*", default=[0.02, 0.5], help="pulls alike for every layer")
    p.add_argument("--runs", type=int, default=15)
    args = p.parse_args()
    if args.runtime == "keras":
        from keras_taylor import latency

        latency.keras_threads(THREADS["keras"])  # before TensorFlow starts: one op at a time, on one thread
    start = time.perf_counter()
    load_before = _common.uptime()
    rows = []
    for name in (["ResNet-20"] if args.quick else args.models.split(",")):
        rows += one(name, args.runtime, [(p, False) for p in args.priors] + [(p, True) for p in args.constant],
                    args.runs)
    load_after = _common.uptime()
    text = _common.markdown_table(HEADER, rows)
    print(text)
    if not args.no_docs:
        _common.write_section(f"latency_prior_{args.runtime}", "\n".join([
            f"## How hard the latency profile pulls layer rates toward their kind ({args.runtime})",
            "",
            *_common.provenance(load=(load_before, load_after)),
            __doc__.split("\n\n")[1].replace("\n", " "),
            "",
            text,
        ]))
    print(f"latency_prior finished in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
