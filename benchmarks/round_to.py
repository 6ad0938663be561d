"""What `round_to` buys on LiteRT: MobileNetV2 pruned to the same MACs goal with round_to=1, 8 and 16.

One MobileNetV2 (`weights=None`, 96x96x3 input, 10 classes: timing needs no
trained weights) is scored once (Taylor scores of one batch of random
images and labels); for each MACs goal, fresh `TaylorPrunableModel`s of it
get those same scores and prune with `update_prunables(cost="macs",
goal=g, round_to=r)`, the only difference being `r`. Each is stripped,
batch norm folded and converted to LiteRT float32; all the files (and the
unpruned model's) are then timed round robin in one run on the interpreter
(XNNPACK, 1 thread, batch 1), so load changes fall on all alike.

With `--runtime keras`, the same models run as a `tf.function` on the
Keras/TensorFlow runtime instead, batch 32, one intra-op thread, timed by
the process's CPU time (`kt.latency_profile`'s clock for one thread):
TensorFlow's CPU convolutions (oneDNN) and LiteRT's (XNNPACK) tile
channels differently, so what alignment buys depends on the runtime.

    python -m benchmarks.round_to [--quick] [--goals 0.3 0.5] [--runs 30] [--runtime keras]
"""

import argparse
import os
import time

from benchmarks import _common, _workloads  # noqa: F401  (_workloads first: offline data)

ROUND_TOS = (1, 8, 16)
INPUT_SHAPE = (96, 96, 3)


def scored_model(seed=0):
    """MobileNetV2 (weights=None) and the Taylor scores of one random batch, as arrays."""
    import keras
    import numpy as np

    import keras_taylor as kt

    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(input_shape=INPUT_SHAPE, weights=None, classes=10)
    pm = kt.TaylorPrunableModel(model)
    rng = np.random.default_rng(seed)
    x = rng.random((8, *INPUT_SHAPE), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 10, 8), 10)
    pm.update_score(x, y, loss="categorical_crossentropy")
    return model, pm.score_sum.numpy(), pm.score_count.numpy()


def pruned(model, scores, goal, round_to):
    """`model` pruned to `goal` fewer MACs from `scores` with `round_to`, stripped and folded."""
    import keras_taylor as kt

    pm = kt.TaylorPrunableModel(model)
    pm.score_sum.assign(scores[0])
    pm.score_count.assign(scores[1])
    pm.update_prunables(None, cost="macs", goal=goal, round_to=round_to)
    reached = pm.cost_reduction("macs")
    return kt.fold_batch_norm(kt.strip_pruning(pm)), reached


def widths_off_grid(model, multiple):
    """Prunable layers (conv, depthwise kept as they follow) whose channel count is not a multiple of `multiple`."""
    import keras

    counts = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    return sum(c % multiple != 0 for c in counts), len(counts)


RUNTIMES = {"litert": ("LiteRT float32", 1), "keras": ("Keras tf.function", 32)}  # name in the docs, batch


def measure(goals, runs, runtime="litert"):
    """Per model: MACs, MACs reduction, off-grid widths, latency on `runtime` (all timed round robin)."""
    import numpy as np

    import keras_taylor as kt
    from keras_taylor import latency

    batch = RUNTIMES[runtime][1]
    threads = 1 if runtime == "litert" else latency.keras_threads(1)

    model, score_sum, score_count = scored_model()
    models = {"unpruned": (kt.fold_batch_norm(model), 0.0)}
    for goal in goals:
        for r in ROUND_TOS:
            models[f"{goal:g} / round_to={r}"] = pruned(model, (score_sum, score_count), goal, r)
    x = np.random.default_rng(0).random((batch, *INPUT_SHAPE), dtype=np.float32)
    runners, rows = {}, {}
    for name, (m, reached) in models.items():
        runners[name] = latency.runner_for(m, runtime, x, threads)
        macs = float(kt.analyze(m).multiply_accumulates.sum())
        rows[name] = {"macs": macs, "reduction": reached, "off8": widths_off_grid(m, 8)}
        print(f"[round_to] {name}: {macs / 1e6:.1f} M MACs ({100 * reached:.1f}% fewer)", flush=True)
    load_before = os.getloadavg()[0]
    clock = time.perf_counter if runtime == "litert" else time.process_time  # one TF thread: its CPU time
    times, _ = latency.time_interleaved(runners, runs, clock=clock)
    load = (load_before, os.getloadavg()[0])
    for name, samples in times.items():
        rows[name]["ms"] = 1000 * float(np.median(samples))
        rows[name]["iqr_ms"] = 1000 * float(np.subtract(*np.percentile(samples, [75, 25])))
    return rows, load


def table(rows, goals, runtime="litert"):
    out = []
    base = rows["unpruned"]
    for name, r in rows.items():
        goal = name.split(" / ")[0]
        ref = rows.get(f"{goal} / round_to=1")
        off, total = r["off8"]
        out.append([
            name, f"{r['macs'] / 1e6:.1f}", f"{100 * r['reduction']:.1f}", f"{off}/{total}",
            f"{r['ms']:.2f} (IQR {r['iqr_ms']:.2f})", f"{base['ms'] / r['ms']:.2f}",
            f"{ref['ms'] / r['ms']:.2f}" if ref else "",
        ])
    return _common.markdown_table(
        ["model (MACs goal / round_to)", "MACs (M)", "fewer MACs %", "conv widths not a multiple of 8",
         f"{RUNTIMES[runtime][0]} ms, median", "speedup vs unpruned", "speedup vs round_to=1"], out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--goals", type=float, nargs="+", default=None, help="MACs goals (default 0.3 0.5)")
    parser.add_argument("--runs", type=int, default=None, help="timed samples per model (default 30; 5 quick)")
    parser.add_argument("--runtime", choices=sorted(RUNTIMES), default="litert",
                        help="litert (1 thread, batch 1; default) or keras (tf.function, 1 thread, batch 32)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    goals = args.goals or ([0.5] if args.quick else [0.3, 0.5])
    runs = args.runs or (5 if args.quick else 30)
    rows, load = measure(goals, runs, args.runtime)
    text = table(rows, goals, args.runtime)
    name = "round_to" if args.runtime == "litert" else f"round_to_{args.runtime}"
    print(text)
    if not args.no_docs:
        _common.write_section(name, "\n".join([
            f"## round_to on {RUNTIMES[args.runtime][0].split()[0]}: MobileNetV2 at the same MACs goal",
            "",
            *_workloads.header(args.quick),
            "MobileNetV2 (`weights=None`, 96x96x3, 10 classes), Taylor scores of one batch of 8 random images "
            "gathered once; for each MACs goal, the same scores pruned with `update_prunables(cost=\"macs\", "
            "goal=g, round_to=r)` for r = 1, 8, 16 (one step, no fine-tuning: latency does not depend on the "
            "weights), stripped, batch norm folded and timed round robin in one run: "
            + ("converted to LiteRT float32, interpreter with XNNPACK, 1 thread, batch 1, "
               if args.runtime == "litert" else
               "a `tf.function` of the Keras model, one intra-op thread, batch 32, CPU time of the process, ")
            + f"{runs} samples each. Machine load (1-minute average) {load[0]:.1f} before timing, "
            f"{load[1]:.1f} after.",
            "",
            text,
        ]))
    best = {g: max(ROUND_TOS, key=lambda r: rows[f"{g:g} / round_to=1"]["ms"] / rows[f"{g:g} / round_to={r}"]["ms"])
            for g in goals}
    speedups = {g: rows[f"{g:g} / round_to=1"]["ms"] / rows[f"{g:g} / round_to=8"]["ms"] for g in goals}
    _workloads.save_summary(name, {"rows": [{
        "benchmark": name, "what": f"MobileNetV2 {RUNTIMES[args.runtime][0]} latency, round_to=1 / round_to=8 at equal MACs goal",
        "result": ", ".join(f"{g:g}: {s:.2f}x (fastest: round_to={best[g]})" for g, s in speedups.items()),
        "target": "> 1", "met": "yes" if all(s > 1 for s in speedups.values()) else "no"}],
        "seconds": time.perf_counter() - start})
    print(f"round_to finished in {time.perf_counter() - start:.0f} s")
    return rows


if __name__ == "__main__":
    main()
