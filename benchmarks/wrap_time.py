"""Wrap time: `kt.TaylorPrunableModel(model)` here against another checkout.

    python -m benchmarks.wrap_time --before /path/to/old/checkout [--repeats 3]

Each repetition runs one fresh process per checkout, in ABBA order (before,
after, after, before, ...) so neither side always goes first, on ResNet50 and DenseNet121 with random weights;
reports medians of wall-clock and process CPU time and their ratios
(before / after: above 1 means this checkout wraps faster).
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

MODELS = ("ResNet50", "DenseNet121")
CODE = r"""
import json, os, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras, keras_taylor as kt
out = {}
for name in %r:
    model = getattr(keras.applications, name)(weights=None)
    wall, cpu = time.perf_counter(), time.process_time()
    kt.TaylorPrunableModel(model)
    out[name] = (time.perf_counter() - wall, time.process_time() - cpu)
print(json.dumps(out))
""" % (MODELS,)


def _once(root):
    env = dict(os.environ, PYTHONPATH=str(root), TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", CODE], cwd=root, env=env, capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="root of the checkout to compare against")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    roots = {"before": pathlib.Path(args.before).resolve(), "after": pathlib.Path(__file__).resolve().parents[1]}
    runs = {label: [] for label in roots}
    for rep in range(args.repeats):
        order = list(roots.items())
        for label, root in order if rep % 2 == 0 else order[::-1]:
            runs[label].append(_once(root))
            print(label, runs[label][-1], flush=True)
    print("| model | before wall s | after wall s | before / after (wall) | before / after (CPU) |")
    print("| --- | --- | --- | --- | --- |")
    for name in MODELS:
        wall = {k: statistics.median(r[name][0] for r in v) for k, v in runs.items()}
        cpu = {k: statistics.median(r[name][1] for r in v) for k, v in runs.items()}
        print(f"| {name} | {wall['before']:.2f} | {wall['after']:.2f} | "
              f"**{wall['before'] / wall['after']:.2f}** | {cpu['before'] / cpu['after']:.2f} |")


if __name__ == "__main__":
    main()
