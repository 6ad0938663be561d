"""Accuracy at equal latency: compress with the learnables, MACs and latency goals, compared at one LiteRT time.

The CIFARNet twin (ResNet-20 on the real CIFAR-10 subset, the suite's
cached baseline) is compressed three ways, with the same data, seeds and
fine-tuning (`kt.compress`, one fine-tuning epoch per iteration over the
same training images, the test split as validation, no threshold):

* latency: `cost="latency"`, `goal=kt.Speedup(2.0)` on LiteRT (batch 1,
  one thread), in `increment` = goal / 5 (the timed check may add
  iterations), with compress's timed check of the goal;
* MACs and learnables: the goal fraction whose compress path without
  fine-tuning (seed 0, as many iterations as the latency runs took) times
  like the latency runs' models, found by bisection; then compress in the
  same increments for two iterations more, so each run passes that time.

The model after every iteration of every run is kept (stripped after its
fine-tuning), and all of them and the baseline are timed together at the
end (round robin, fastest of 15 samples in CPU time). Each run's accuracy
is then read at one latency, the slowest of the latency runs' final models,
by linear interpolation between the two iterations whose times bracket it:
the three ways are compared at measured, not predicted, latency, and at the
same latency, which their final models only approach. Every run gets
one fine-tuning epoch per iteration, and the MACs and learnables runs are
planned to reach that latency in as many iterations as the latency runs
took (the table lists the iterations). The latency goal should give the
best accuracy: it removes the channel groups that cost the most time
per unit of Taylor importance, where the other two remove learnables or
MACs that may cost little time.

With `--model mobilenetv2`, the same on keras.applications' MobileNetV2
(32x32 input, trained from scratch on the same data), into its own section
of docs/benchmarks.md; with `--model mobilenetv2-64`, MobileNetV2 alpha 0.5
on the images enlarged to 64x64 (about the same MACs, a 2x2 last feature map
instead of 1x1: the 32x32 one reaches only 31% on this data).

    python -m benchmarks.equal_latency [--quick] [--seeds 3] [--speedup 2.0] [--model resnet20|mobilenetv2|mobilenetv2-64]
"""

import time

from benchmarks import _common, _workloads  # noqa: F401  (_workloads first: offline data)

ITERATIONS = 5
EXTRA = 2  # increments past the matched goal: with fine-tuning, a MACs path ran up to 10% slower than without
COSTS = ("latency", "macs", "learnables")


def settings(quick):
    return {"train_subset": 1024 if quick else 4000, "runs": 7 if quick else 15,
            "bisection_steps": 4 if quick else 6}


def path_recorder():
    """A Keras callback that keeps the stripped model at the end of each fine-tuning `fit`."""
    import keras

    import keras_taylor as kt

    class PathRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.models = []

        def on_train_end(self, logs=None):
            self.models.append(kt.strip_pruning(self.model))

    return PathRecorder()


def run_compress(base, w, train, cost, goal, seed, iterations, fine_tune_epochs=1, validation=None, extra=0):
    """`(pruned model, PruningInfo, models after each iteration)`; `extra` iterations past a fraction `goal`."""
    import keras_taylor as kt

    fraction = goal if isinstance(goal, float) else 1 - 1 / goal.factor
    if extra:
        goal = min(0.99, fraction * (iterations + extra) / iterations)
    recorder = path_recorder()
    start = time.perf_counter()
    pruned, info = kt.compress(
        _workloads.fresh_copy(base, w), train, goal=goal, cost=cost, increment=fraction / iterations,
        fine_tune_epochs=fine_tune_epochs, batch_size=w.batch, validation_data=validation,
        metric="accuracy" if validation is not None else None, output="last-iteration", seed=seed, verbose=0,
        callbacks=[recorder] if fine_tune_epochs else None)
    if fine_tune_epochs:
        name = cost if isinstance(cost, str) else "latency"
        print(f"[equal_latency] {name} seed {seed}: {len(info.pruning_history) - 1} iterations, "
              f"{100 * info.learnables_reduction:.1f}% fewer learnables, {time.perf_counter() - start:.0f} s",
              flush=True)
    return pruned, info, recorder.models


def litert_ms(models, s):
    import numpy as np

    from keras_taylor import profile as kt_profile

    return 1000 * np.asarray(kt_profile.time_models(models, "litert", 1, 1, runs=s["runs"]))


def matching_goal(base, w, train, cost, target_ms, iterations, s):
    """The `cost` goal fraction whose compress path (no fine-tuning) times `target_ms`, by bisection."""
    low, high = 0.05, 0.95
    for _ in range(s["bisection_steps"]):
        middle = (low + high) / 2
        probe, _, _ = run_compress(base, w, train, cost, middle, 0, iterations, fine_tune_epochs=0)
        if litert_ms([probe], s)[0] > target_ms:
            low = middle
        else:
            high = middle
    goal = round((low + high) / 2, 3)
    print(f"[equal_latency] {cost}: goal {goal:.3f} times like the latency runs ({target_ms:.3f} ms)", flush=True)
    return goal


def accuracy_at(ms, accuracy, target_ms):
    """Accuracy along a path of (ms, accuracy) points at `target_ms`, linearly interpolated; None if never reached."""
    for k in range(1, len(ms)):
        if ms[k] <= target_ms:
            if ms[k - 1] <= ms[k]:  # timing noise: no bracket to interpolate in
                return accuracy[k]
            t = (ms[k - 1] - target_ms) / (ms[k - 1] - ms[k])
            return accuracy[k - 1] + min(1.0, max(0.0, t)) * (accuracy[k] - accuracy[k - 1])
    return None


def compress_all(base, w, train, test, speedup, seeds, s):
    """`(runs, goals)`: runs[cost] is a list of `(info, path models)`, one per seed."""
    import numpy as np

    import keras_taylor as kt

    profile = kt.latency_profile(base, runtime="litert")
    runs = {c: [] for c in COSTS}
    for seed in range(seeds):
        runs["latency"].append(run_compress(base, w, train, profile, kt.Speedup(speedup), seed, ITERATIONS,
                                            validation=test)[1:])
    # the same fine-tuning: as many iterations (one epoch each) as the latency runs took
    iterations = int(round(np.mean([len(info.pruning_history) - 1 for info, _ in runs["latency"]])))
    target = float(np.mean(litert_ms([path[-1] for _, path in runs["latency"]], s)))
    goals = {c: matching_goal(base, w, train, c, target, iterations, s) for c in COSTS[1:]}
    for cost in COSTS[1:]:
        for seed in range(seeds):
            runs[cost].append(run_compress(base, w, train, cost, goals[cost], seed, iterations,
                                           validation=test, extra=EXTRA)[1:])
    return runs, goals


def run(quick, seeds, speedup, model="resnet20"):
    import numpy as np

    s = settings(quick)
    w, base, meta, (train, test) = _workloads.cifar_fine_tuning(quick, s["train_subset"], _workloads.WORKLOADS[model])
    runs, goals = compress_all(base, w, train, test, speedup, seeds, s)
    paths = [path for c in COSTS for _, path in runs[c]]
    ms = litert_ms([base] + [m for path in paths for m in path], s)
    base_ms, xs, ys = float(ms[0]), *test
    timed, k = [], 1
    for path in paths:
        timed.append((ms[k:k + len(path)], [_workloads.evaluate(m, xs, ys) for m in path]))
        k += len(path)
    at_ms = max(path_ms[-1] for path_ms, _ in timed[:seeds])  # the slowest final latency-goal model
    rows = []
    for i, cost in enumerate(COSTS):
        mine = timed[i * seeds:(i + 1) * seeds]
        rows.append(dict(
            cost=cost, goal=f"Speedup({speedup})" if cost == "latency" else f"{goals[cost]:.3f}",
            at_ms=at_ms, base_ms=base_ms,
            accuracy_at=[accuracy_at([base_ms, *p_ms], [meta["accuracy"], *acc], at_ms) for p_ms, acc in mine],
            final_accuracy=[acc[-1] for _, acc in mine], final_ms=[float(p_ms[-1]) for p_ms, _ in mine],
            iterations=[len(info.pruning_history) - 1 for info, _ in runs[cost]],
            learnables=[info.learnables_reduction for info, _ in runs[cost]]))
        for p_ms, acc in mine:
            print(f"[equal_latency] {cost} path: ms {np.round(p_ms, 3).tolist()}, "
                  f"accuracy {np.round(100 * np.asarray(acc), 2).tolist()}", flush=True)
    return rows, w, meta, s


def _mean_range(values, digits):
    import numpy as np

    if any(v is None for v in values):
        return "not reached"
    v = np.asarray(values)
    return f"{v.mean():.{digits}f} ({v.min():.{digits}f}-{v.max():.{digits}f})"


def table(rows):
    import numpy as np

    out = []
    for r in rows:
        accuracy_at = [None if a is None else 100 * a for a in r["accuracy_at"]]
        out.append([r["cost"], r["goal"], ", ".join(map(str, r["iterations"])),
                    _mean_range(accuracy_at, 2), _mean_range([100 * a for a in r["final_accuracy"]], 2),
                    _mean_range(r["final_ms"], 3), f"{r['base_ms'] / np.mean(r['final_ms']):.2f}x",
                    f"{100 * np.mean(r['learnables']):.1f}%"])
    return _common.markdown_table(
        ["goal's cost", "goal", "iterations (per seed)", f"test accuracy % at {rows[0]['at_ms']:.3f} ms (range)",
         "final model: test accuracy %", "final LiteRT ms", "final speedup", "final: fewer learnables"], out)


def best_cost(rows):
    """The cost with the best mean accuracy at the common latency, among those whose every run reached it."""
    import numpy as np

    reached = [r for r in rows if all(a is not None for a in r["accuracy_at"])]
    return max(reached, key=lambda r: np.mean(r["accuracy_at"]))["cost"] if reached else None


def write_docs(rows, w, meta, s, quick, seeds, speedup, model="resnet20"):
    r0 = rows[0]
    lines = [
        "## Accuracy at equal latency: learnables, MACs and latency goals"
        + ("" if model == "resnet20" else f" ({model})"), "",
        *_workloads.header(quick),
        f"Workload: {w.describe()}; baseline test accuracy {100 * meta['accuracy']:.2f}%. Each way: "
        f"`kt.compress(goal, increment, fine_tune_epochs=1, output=\"last-iteration\", seed=k)` on "
        f"{s['train_subset']} training images, seeds 0-{seeds - 1}, the test split as validation. "
        f"Latency: `cost=\"latency\", goal=kt.Speedup({speedup})` (LiteRT, batch 1, one thread, timed check), "
        f"increment goal/{ITERATIONS}. MACs and learnables: the goal fraction whose compress path without "
        "fine-tuning times like the latency runs' final models (bisection), in the same number of increments "
        "as the latency runs took, plus two increments more. The stripped model after every iteration of every "
        f"run and the baseline ({r0['base_ms']:.3f} ms) timed together at the end (fastest of {s['runs']} "
        "samples, CPU time); each run's test accuracy read at one latency, the slowest latency-goal final model "
        f"({r0['at_ms']:.3f} ms, {r0['base_ms'] / r0['at_ms']:.2f}x), interpolated between the two iterations "
        "that bracket it. Mean over seeds (range).", "",
        table(rows), "",
        f"**Best mean accuracy at {r0['at_ms']:.3f} ms measured: the {best_cost(rows)} goal.**",
    ]
    _common.write_section("equal_latency" + ("" if model == "resnet20" else f"_{model.replace('-', '_')}"), "\n".join(lines))


def main():
    p = _common.parser(__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--speedup", type=float, default=2.0)
    p.add_argument("--model", choices=sorted(_workloads.WORKLOADS), default="resnet20")
    args = p.parse_args()
    seeds = 1 if args.quick else args.seeds
    rows, w, meta, s = run(args.quick, seeds, args.speedup, args.model)
    print(table(rows))
    if not args.no_docs:
        write_docs(rows, w, meta, s, args.quick, seeds, args.speedup, args.model)


if __name__ == "__main__":
    main()
