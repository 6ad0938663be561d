"""How long `strip_pruning` takes, relative to `keras.models.clone_model`.

For ResNet50, EfficientNetB0 and DenseNet121 (random weights, default
224x224 input), 30% of the prunable filter groups are pruned (criterion
"l1", so no data is needed; the criterion does not change the work strip
does), then `kt.strip_pruning(pm)` and `keras.models.clone_model(model)` of
the original model are timed in the same process, alternating (ABBA order)
after one untimed warm-up of each. The table gives medians and the ratio of
the medians; the target is strip / clone <= 2.

    python -m benchmarks.strip_speed [--repeats 5] [--models ResNet50 ...]
        [--no-write]

Writes (or replaces) the "Strip speed" section of docs/benchmarks.md.
"""

import argparse
import gc
import re
import statistics
import time

from benchmarks import _common

MODELS = ("ResNet50", "EfficientNetB0", "DenseNet121")
FRACTION = 0.3
SECTION = "## Strip speed"


def _timed(fn):
    """(wall seconds, process CPU seconds) of `fn()`."""
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    del result
    return elapsed


def measure(name, repeats):
    import keras
    import numpy as np

    import keras_taylor as kt

    model = getattr(keras.applications, name)(weights=None)
    pm = kt.TaylorPrunableModel(model, criterion="l1")
    prunable = pm.num_prunables
    pruned = pm.update_prunables(max_to_prune=int(np.ceil(FRACTION * prunable)))

    strip = lambda: kt.strip_pruning(pm)  # noqa: E731
    clone = lambda: keras.models.clone_model(model)  # noqa: E731
    small = strip()
    params = (model.count_params(), small.count_params())
    del small
    _timed(clone)  # warm-up
    times = {"strip": [], "clone": []}
    for i in range(repeats):
        order = ("strip", "clone") if i % 2 == 0 else ("clone", "strip")
        for which in order:
            times[which].append(_timed(strip if which == "strip" else clone))
    wall = {k: [t[0] for t in v] for k, v in times.items()}
    cpu = {k: [t[1] for t in v] for k, v in times.items()}
    strip_median = statistics.median(wall["strip"])
    clone_median = statistics.median(wall["clone"])
    return {
        "model": name,
        "input": "x".join(str(d) for d in model.input_shape[1:3]),
        "layers": len(model.layers),
        "pruned": f"{pruned} / {prunable}",
        "params": f"{params[0]:,} -> {params[1]:,}",
        "strip": strip_median,
        "clone": clone_median,
        "strip_min": min(wall["strip"]),
        "clone_min": min(wall["clone"]),
        "ratio": strip_median / clone_median,
        "cpu_ratio": statistics.median(cpu["strip"]) / statistics.median(cpu["clone"]),
    }


HEADER = [
    "model", "input", "layers", "groups pruned / prunable", "parameters",
    "strip median s", "clone median s", "strip min s", "clone min s",
    "strip / clone (wall medians)", "strip / clone (CPU-time medians)",
]


def row(r):
    return [
        r["model"], r["input"], r["layers"], r["pruned"], r["params"],
        f"{r['strip']:.2f}", f"{r['clone']:.2f}", f"{r['strip_min']:.2f}",
        f"{r['clone_min']:.2f}", f"**{r['ratio']:.2f}**", f"{r['cpu_ratio']:.2f}",
    ]


def section(results, repeats):
    worst = max(r["ratio"] for r in results)
    verdict = "meets" if worst <= 2 else "misses"
    return "\n".join([
        SECTION,
        "",
        f"Command: `{_common.command()}` (from the repository root)  ",
        f"Date: {_common.now()}  ",
        f"Machine: {_common.machine()}  ",
        f"Code: {_common.code_version()}",
        "",
        "`kt.strip_pruning(pm)` versus `keras.models.clone_model(model)` of the "
        "original model, random weights, default input size, 30% of the "
        "prunable filter groups pruned (criterion `l1`). Both are timed in the "
        f"same process, alternating (ABBA), {repeats} times each after one "
        "untimed warm-up; the ratios are of the medians (wall clock, and "
        "process CPU time as a check less sensitive to other load). Timings on "
        "this shared 2-core machine are noisy; the ratio, measured side by "
        "side, is the number to read.",
        "",
        _common.markdown_table(HEADER, [row(r) for r in results]),
        "",
        f"Worst ratio {worst:.2f}: {verdict} the target strip / clone <= 2.",
        "",
    ])


def write_section(text, path=None):
    path = path or _common.DOCS / "benchmarks.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(
        rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL
    )
    if pattern.search(old):
        new = pattern.sub(lambda _: text + "\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new.rstrip("\n") + "\n")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--no-write", action="store_true",
                        help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    import keras

    results = []
    for name in args.models:
        keras.backend.clear_session()
        r = measure(name, args.repeats)
        print(
            f"{name}: strip {r['strip']:.2f}s clone {r['clone']:.2f}s "
            f"ratio {r['ratio']:.2f} (CPU-time ratio {r['cpu_ratio']:.2f})",
            flush=True,
        )
        results.append(r)
    text = section(results, args.repeats)
    print()
    print(text)
    if not args.no_write:
        print(f"written to {write_section(text)}")


if __name__ == "__main__":
    main()
