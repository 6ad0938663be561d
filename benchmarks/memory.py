"""Peak memory of `fit` with Taylor-score gathering vs plain `fit`.

Each measurement runs in a fresh subprocess (so one run's allocator state
cannot hide the other's peak) that builds the CIFARNet twin
(`keras_taylor.reference_models.resnet20`), makes the same random CIFAR-shaped
data from the same seed, and trains one epoch at batch 128: either the plain
`keras.Model` or a `TaylorPrunableModel` of it. The peak is the process's
resident-set high-water mark (`resource.getrusage`, `VmHWM`), which tracemalloc
cannot see for TensorFlow's native allocations. Prints the ratio of the peaks
(target <= 1.2) and of the growth during `fit` alone.

    python -m benchmarks.memory [--quick]
"""

import argparse
import json
import os
import subprocess
import sys

from benchmarks import _common


def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def worker(kind, steps, batch):
    """Runs one fit in this process and prints its memory figures as JSON."""
    import resource

    import numpy as np

    import keras
    import keras_taylor as kt
    from keras_taylor import reference_models

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((steps * batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, steps * batch)
    model = reference_models.resnet20()
    if kind == "taylor":
        model = kt.TaylorPrunableModel(model)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy")
    before = _rss_kib("VmRSS")
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    if kind == "taylor":
        assert model.score_count.numpy() > 0, "no scores were gathered"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"kind": kind, "before_fit_kib": before, "peak_kib": peak}))


def run(kind, steps, batch):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--worker", kind, "--steps", str(steps), "--batch", str(batch)],
        capture_output=True, text=True, env=env, cwd=_common.REPO, timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(steps, batch=128, repeats=1):
    """Largest peak of `repeats` fresh runs of each kind, alternated."""
    results = {"plain": [], "taylor": []}
    for _ in range(repeats):
        for kind in ("plain", "taylor"):
            results[kind].append(run(kind, steps, batch))
    best = {k: max(v, key=lambda r: r["peak_kib"]) for k, v in results.items()}
    growth = {k: r["peak_kib"] - r["before_fit_kib"] for k, r in best.items()}
    return {
        "plain_peak_mib": best["plain"]["peak_kib"] / 1024,
        "taylor_peak_mib": best["taylor"]["peak_kib"] / 1024,
        "ratio": best["taylor"]["peak_kib"] / best["plain"]["peak_kib"],
        "plain_growth_mib": growth["plain"] / 1024,
        "taylor_growth_mib": growth["taylor"] / 1024,
        "growth_ratio": growth["taylor"] / max(growth["plain"], 1),
        "steps": steps,
        "batch": batch,
        "repeats": repeats,
    }


def write_docs(result, quick):
    section = "\n".join([
        "## Peak memory of `fit` with score gathering",
        "",
        f"Command: `{_common.command()}`  ",
        f"Date: {_common.now()}, code {_common.code_version()}  ",
        f"Machine: {_common.machine()}",
        "",
        "CIFARNet twin (`reference_models.resnet20`, 32x32x3, batch 128, SGD with momentum), one epoch of "
        f"{result['steps']} steps on the same random data: peak resident memory (RSS high-water mark) of a fresh "
        "process running plain `keras.Model.fit`, and of one running `TaylorPrunableModel.fit` (masks plus "
        "Taylor-score gathering in `train_step`). \"Growth in fit\" is the peak minus the RSS just before `fit` "
        "(TensorFlow itself, the model and the data are in both). Target: peak ratio <= 1.2.",
        "",
        _common.markdown_table(
            ["", "plain fit", "TaylorPrunableModel fit", "ratio"],
            [
                ["peak RSS (MiB)", f"{result['plain_peak_mib']:.0f}", f"{result['taylor_peak_mib']:.0f}", f"{result['ratio']:.3f}"],
                ["growth in fit (MiB)", f"{result['plain_growth_mib']:.0f}", f"{result['taylor_growth_mib']:.0f}", f"{result['growth_ratio']:.3f}"],
            ],
        ),
        "",
        f"Mode: {'quick' if quick else 'full'}; largest peak of {result['repeats']} fresh process(es) of each kind.",
    ])
    _common.write_section("memory", section)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--worker", choices=["plain", "taylor"], help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.steps, args.batch)
        return None
    result = measure(steps=args.steps or (6 if args.quick else 20), batch=args.batch, repeats=1 if args.quick else 2)
    print(f"plain fit peak RSS   {result['plain_peak_mib']:.0f} MiB (growth in fit {result['plain_growth_mib']:.0f} MiB)")
    print(f"Taylor fit peak RSS  {result['taylor_peak_mib']:.0f} MiB (growth in fit {result['taylor_growth_mib']:.0f} MiB)")
    print(f"ratio                {result['ratio']:.3f}  (target <= 1.2; growth ratio {result['growth_ratio']:.3f})")
    if not args.no_docs:
        write_docs(result, args.quick)
    return result


if __name__ == "__main__":
    main()
