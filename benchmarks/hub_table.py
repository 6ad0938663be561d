"""The keras-hub table: the models of tests/hub/hub_models.py, pruned, stripped and reloaded.

For each model (keras-hub 0.32, built from its preset's config, random
weights, the small input side of its table entry): wrap it in
`kt.TaylorPrunableModel` with default settings, score 2 random batches of 2
images (Taylor criterion, the mean square of every output as the loss),
prune 25% of the learnables (`update_prunables(None,
learnables_reduction=0.25)`, or as much as can go), strip, compare masked
and stripped outputs, save the stripped model and reload it with
`keras.saving.load_model(..., safe_mode=True)`.

    python -m benchmarks.hub_table [--only NAME ...] [--out FILE]

Prints the markdown section (also written to FILE when given); docs/zoo.md
holds the last one.
"""

import argparse
import pathlib
import sys
import tempfile
import time

from benchmarks import _common

HEADER = [
    "model", "input", "max reduction", "parameters before", "parameters after",
    "accounted reduction", "masked vs stripped rel diff", "reloads (safe_mode)", "seconds",
]


def _hub_models():
    sys.path.insert(0, str(_common.REPO / "tests" / "hub"))
    import hub_models

    return hub_models


def squared_outputs(y_pred):
    import keras

    return sum(keras.ops.mean(keras.ops.square(t)) for t in keras.tree.flatten(y_pred))


def measure(entry, folder):
    """One row's numbers for the `HubModel` `entry`."""
    import keras
    import numpy as np

    import keras_taylor as kt

    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    model = entry.build(entry.size)
    before = model.count_params()
    pm = kt.TaylorPrunableModel(model)
    rng = np.random.default_rng(0)
    images = lambda: rng.normal(size=(2, entry.size, entry.size, 3)).astype("float32")  # noqa: E731
    for _ in range(2):
        pm.update_score(images(), loss=squared_outputs)
    pm.update_prunables(None, learnables_reduction=0.25)
    small = kt.strip_pruning(pm)
    x = images()
    masked = [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(pm(x, training=False))]
    stripped = [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(small(x, training=False))]
    diff = max(float(np.abs(a - b).max()) / max(1.0, float(np.abs(a).max())) for a, b in zip(masked, stripped))
    path = pathlib.Path(folder) / f"{entry.name}.keras"
    small.save(path)
    try:
        keras.saving.load_model(path, safe_mode=True)
        reloads = "yes"
    except Exception as exc:
        reloads = f"no ({type(exc).__name__}: {str(exc).split('Exception encountered:')[-1].strip()[:90]})"
    after = small.count_params()
    return [
        entry.name, f"{entry.size}x{entry.size}", f"{kt.max_reduction(pm):.1%}", f"{before:,}",
        f"{after:,} (-{1 - after / before:.1%})", f"{pm.learnables_reduction:.1%}", f"{diff:.1e}",
        reloads, f"{time.perf_counter() - start:.0f}",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="these table entries only")
    parser.add_argument("--out", help="markdown file to write")
    args = parser.parse_args(argv)
    import keras

    entries = [m for m in _hub_models().MODELS if not args.only or m.name in args.only]
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for entry in entries:
            rows.append(measure(entry, folder))
            print(" | ".join(rows[-1]), flush=True)
            keras.backend.clear_session()
    text = "\n".join([
        f"Command: `{_common.command()}` (took {(time.perf_counter() - start) / 60:.1f} min)  ",
        f"Date: {_common.now()}  ",
        f"Machine: {_common.machine()}  ",
        f"Code: {_common.code_version()}",
        "",
        _common.markdown_table(HEADER, rows),
        "",
    ])
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
