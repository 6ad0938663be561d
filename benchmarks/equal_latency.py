"""Accuracy at equal latency: compress with the learnables, MACs and latency goals to the same LiteRT time.

The CIFARNet twin (ResNet-20 on the real CIFAR-10 subset, the suite's
cached baseline) is compressed three ways, with the same data, seeds and
fine-tuning budget (`kt.compress`, one fine-tuning epoch per iteration over
the same training images, the test split as validation, no threshold; the
latency runs in `increment` = goal / 5, which the timed check may lengthen,
the others in as many iterations as the latency runs took on average):

* latency: `cost="latency"`, `goal=kt.Speedup(2.0)` on LiteRT (batch 1,
  one thread), with compress's timed check of the goal;
* MACs and learnables: the goal fraction whose compress path without
  fine-tuning (same iterations, seed 0) gives a model that times like the
  latency runs' models on LiteRT, found by bisection; then compress to it.

Every final model and the baseline are timed together at the end (round
robin, fastest of 15 samples in CPU time), so the three ways are compared at
measured, not predicted, latency; accuracy is the test split's. The
latency goal should give the best accuracy: it removes the channel groups
that cost the most time per unit of Taylor importance, where the other
two remove learnables or MACs that may cost little time.

    python -m benchmarks.equal_latency [--quick] [--seeds 3] [--speedup 2.0]
"""

import time

from benchmarks import _common, _workloads  # noqa: F401  (_workloads first: offline data)

ITERATIONS = 5
COSTS = ("latency", "macs", "learnables")


def settings(quick):
    return {"train_subset": 1024 if quick else 4000, "runs": 7 if quick else 15,
            "bisection_steps": 4 if quick else 6}


def run_compress(base, w, train, cost, goal, seed, iterations, fine_tune_epochs=1, validation=None):
    import keras_taylor as kt

    fraction = goal if isinstance(goal, float) else 1 - 1 / goal.factor
    start = time.perf_counter()
    pruned, info = kt.compress(
        _workloads.fresh_copy(base, w), train, goal=goal, cost=cost, increment=fraction / iterations,
        fine_tune_epochs=fine_tune_epochs, batch_size=w.batch, validation_data=validation,
        metric="accuracy" if validation is not None else None, output="last-iteration", seed=seed, verbose=0)
    if fine_tune_epochs:
        name = cost if isinstance(cost, str) else "latency"
        print(f"[equal_latency] {name} seed {seed}: {len(info.pruning_history) - 1} iterations, "
              f"{100 * info.learnables_reduction:.1f}% fewer learnables, {time.perf_counter() - start:.0f} s",
              flush=True)
    return pruned, info


def litert_ms(models, s):
    import numpy as np

    from keras_taylor import profile as kt_profile

    return 1000 * np.asarray(kt_profile.time_models(models, "litert", 1, 1, runs=s["runs"]))


def matching_goal(base, w, train, cost, target_ms, iterations, s):
    """The `cost` goal fraction whose compress path (no fine-tuning) times `target_ms`, by bisection."""
    low, high = 0.05, 0.95
    for _ in range(s["bisection_steps"]):
        middle = (low + high) / 2
        probe, _ = run_compress(base, w, train, cost, middle, 0, iterations, fine_tune_epochs=0)
        if litert_ms([probe], s)[0] > target_ms:
            low = middle
        else:
            high = middle
    goal = round((low + high) / 2, 3)
    print(f"[equal_latency] {cost}: goal {goal:.3f} times like the latency runs ({target_ms:.3f} ms)", flush=True)
    return goal


def run(quick, seeds, speedup):
    import numpy as np

    import keras_taylor as kt

    s = settings(quick)
    w, base, meta, (train, test) = _workloads.cifar_fine_tuning(quick, s["train_subset"])
    profile = kt.latency_profile(base, runtime="litert")
    runs = {c: [] for c in COSTS}
    for seed in range(seeds):
        runs["latency"].append(run_compress(base, w, train, profile, kt.Speedup(speedup), seed, ITERATIONS,
                                            validation=test))
    # the same fine-tuning budget: as many iterations (one epoch each) as the latency runs took
    iterations = int(round(np.mean([len(info.pruning_history) - 1 for _, info in runs["latency"]])))
    target = float(np.mean(litert_ms([m for m, _ in runs["latency"]], s)))
    goals = {c: matching_goal(base, w, train, c, target, iterations, s) for c in COSTS[1:]}
    for cost in COSTS[1:]:
        for seed in range(seeds):
            runs[cost].append(run_compress(base, w, train, cost, goals[cost], seed, iterations, validation=test))
    ms = litert_ms([base] + [m for c in COSTS for m, _ in runs[c]], s)
    xs, ys = test
    rows, k = [], 1
    for cost in COSTS:
        accuracy = [_workloads.evaluate(m, xs, ys) for m, _ in runs[cost]]
        times = ms[k:k + seeds]
        k += seeds
        rows.append(dict(cost=cost, goal=f"Speedup({speedup})" if cost == "latency" else f"{goals[cost]:.3f}",
                         accuracy=accuracy, ms=times.tolist(), base_ms=float(ms[0]),
                         iterations=[len(info.pruning_history) - 1 for _, info in runs[cost]],
                         learnables=[info.learnables_reduction for _, info in runs[cost]]))
        print(f"[equal_latency] {cost}: accuracy {np.round(100 * np.asarray(accuracy), 2).tolist()}, "
              f"ms {np.round(times, 3).tolist()} (baseline {ms[0]:.3f})", flush=True)
    return rows, w, meta, s


def table(rows):
    import numpy as np

    out = []
    for r in rows:
        acc = 100 * np.asarray(r["accuracy"])
        out.append([r["cost"], r["goal"], f"{acc.mean():.2f} ({acc.min():.2f}-{acc.max():.2f})",
                    f"{np.mean(r['ms']):.3f} ({min(r['ms']):.3f}-{max(r['ms']):.3f})",
                    f"{r['base_ms'] / np.mean(r['ms']):.2f}x", f"{100 * np.mean(r['learnables']):.1f}%",
                    ", ".join(map(str, r["iterations"]))])
    return _common.markdown_table(["goal's cost", "goal", "test accuracy % (range)", "LiteRT ms (range)",
                                   "speedup", "fewer learnables", "iterations (per seed)"], out)


def write_docs(rows, w, meta, s, quick, seeds, speedup):
    import numpy as np

    best = max(rows, key=lambda r: np.mean(r["accuracy"]))["cost"]
    lines = [
        "## Accuracy at equal latency: learnables, MACs and latency goals", "",
        *_workloads.header(quick),
        f"Workload: {w.describe()}; baseline test accuracy {100 * meta['accuracy']:.2f}%. Each way: "
        f"`kt.compress(goal, increment=goal/iterations, fine_tune_epochs=1, output=\"last-iteration\", "
        f"seed=k)` on {s['train_subset']} training images, seeds 0-{seeds - 1}, the test split as validation; "
        f"the latency runs with {ITERATIONS} planned iterations, the others with as many as those took. "
        f"Latency: `cost=\"latency\", goal=kt.Speedup({speedup})` (LiteRT, batch 1, one thread, timed check). "
        "MACs and learnables: the goal fraction whose compress path without fine-tuning gives a model that "
        "times like the latency runs' models, by bisection. All final models and the baseline timed together at the end "
        f"(fastest of {s['runs']} samples, CPU time). Mean over seeds (range).", "",
        table(rows), "",
        f"**Best mean accuracy at (about) equal measured latency: the {best} goal.**",
    ]
    _common.write_section("equal_latency", "\n".join(lines))


def main():
    p = _common.parser(__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--speedup", type=float, default=2.0)
    args = p.parse_args()
    seeds = 1 if args.quick else args.seeds
    rows, w, meta, s = run(args.quick, seeds, args.speedup)
    print(table(rows))
    if not args.no_docs:
        write_docs(rows, w, meta, s, args.quick, seeds, args.speedup)


if __name__ == "__main__":
    main()
