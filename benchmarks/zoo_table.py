"""The zoo table: every `keras.applications` architecture, pruned and stripped.

For each architecture (random weights, the smallest input size it accepts,
logits as outputs): wrap it in `kt.TaylorPrunableModel` with default
settings (ConvNeXt included: its LayerNormalizations are masked exactly), score one
random batch of 2 with the Taylor criterion, prune 30% of the prunable filter
groups, strip, and compare the masked and stripped outputs in inference mode.
Each architecture runs in its own subprocess, so memory is returned and one
failure cannot stop the others.

    python -m benchmarks.zoo_table [--only NAME ...] [--out docs/zoo.md]
        [--no-write] [--timeout SECONDS]

Prints one line per architecture and writes the markdown table to
docs/zoo.md (with `--only`, only when `--out` is given).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import traceback

from benchmarks import _common

FRACTION = 0.3
MARK = "@@ZOO@@ "

# What was found when a case failed its float32 check, printed under it so a
# rerun of the table keeps the explanation.
KNOWN_CAUSES = {
    "EfficientNetV2L": """Not a pruning error: this random-weight network is numerically chaotic in
float32. On the *original, unpruned* model, changing every input pixel by one
ulp (`np.nextafter`) moves the logits by about 0.7 of their scale, and batch
size 1 vs 2 by about 0.07, so float32 round-off of the sliced convolutions is
amplified the same way (the per-layer difference grows smoothly from ~1e-4 in
block 5m; no layer jumps). These figures came from one-off diagnostic scripts
outside the repository, on 2026-11-22; the committed check is the slow zoo
test, which runs the same flow with `keras.config.set_floatx("float64")`,
where masked and stripped agree to about 1e-7:

    python -m pytest tests/graph/test_zoo.py -m slow -k EfficientNetV2L""",
}


# --------------------------------------------------------------- one model
def _blockers(pm):
    """Distinct layers that block at least one group holding filters."""
    import numpy as np

    graph = pm.channel_graph
    types = {node.name: type(node.layer).__name__ for node in graph.flat.nodes}
    sources = graph.source_blockers()
    units = set()
    for name in sources:
        units.update(int(u) for u in np.unique(graph.layer_units[name]))
    blocked = sorted(u for u in units if graph.unit_blocked[u])
    layers = {}
    for pairs in sources.values():
        for layer, reason in pairs:
            if layer in layers:
                continue
            if reason.startswith("it is a model output"):
                layers[layer] = "model output"
            elif reason.startswith("it is a model input"):
                layers[layer] = "model input"
            else:
                layers[layer] = types.get(layer, layer)
    kinds = {}
    for kind in layers.values():
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "blocked_groups": len(blocked),
        "source_groups": len(units),
        "blocking_layers": len(layers),
        "kinds": kinds,
    }


def run_one(name):
    import keras
    import numpy as np

    import keras_taylor as kt

    timer = {}
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    size = _common.min_size(name)
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(size, size, 3), classifier_activation=None
    )
    params_before = model.count_params()
    t = time.perf_counter()
    pm = kt.TaylorPrunableModel(model)
    timer["wrap"] = time.perf_counter() - t

    rng = np.random.default_rng(0)
    x = (rng.random((2, size, size, 3)) * 255).astype("float32")
    classes = model.output_shape[-1]
    y = keras.utils.to_categorical(rng.integers(0, classes, 2), classes)
    pm.update_score(x, y, loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    prunable = pm.num_prunables
    pruned = pm.update_prunables(max_to_prune=int(np.ceil(FRACTION * prunable)))

    t = time.perf_counter()
    small = kt.strip_pruning(pm)
    timer["strip"] = time.perf_counter() - t
    masked = keras.ops.convert_to_numpy(pm(x, training=False))
    stripped = keras.ops.convert_to_numpy(small(x, training=False))
    scale = max(1.0, float(np.abs(masked).max()))
    diff = float(np.abs(masked - stripped).max()) / scale
    result = {
        "name": name,
        "size": size,
        "prunable": prunable,
        "pruned": pruned,
        "groups": int(pm.channel_graph.num_units),
        "prunable_groups": int(pm.channel_graph.unit_prunable.sum()),
        "blockers": _blockers(pm),
        "max_reduction": float(kt.max_reduction(pm)),
        "params_before": params_before,
        "params_after": small.count_params(),
        "rel_diff": diff,
        "finite": bool(np.isfinite(masked).all()),
        "ok": bool(diff <= 1e-5 and small.count_params() < params_before),
    }
    timer["total"] = time.perf_counter() - start
    result["seconds"] = timer
    return result


def worker(name):
    try:
        result = run_one(name)
    except Exception as exc:
        result = {
            "name": name,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc().strip().splitlines()[-12:],
        }
    print(MARK + json.dumps(result), flush=True)


# ---------------------------------------------------------------- driver
def run_subprocess(name, timeout):
    cmd = [sys.executable, "-m", "benchmarks.zoo_table", "--worker", name]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=_common.REPO, capture_output=True, text=True, timeout=timeout,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timed out after {timeout} s", "traceback": []}
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
    return {
        "name": name,
        "error": f"worker exited with code {proc.returncode} after "
        f"{time.perf_counter() - start:.0f} s and no result",
        "traceback": tail,
    }


def _blocker_cell(b):
    if not b["blocking_layers"]:
        return "0"
    kinds = ", ".join(
        f"{kind} x{n}" if n > 1 else kind for kind, n in sorted(b["kinds"].items())
    )
    return f"{b['blocking_layers']} ({kinds}); {b['blocked_groups']} groups"


HEADER = [
    "architecture", "input", "prunable filters", "channel groups (prunable)",
    "blockers: layers (kinds); filter groups blocked", "max reduction",
    "parameters before", "parameters after 30%", "masked vs stripped rel diff",
    "seconds wrap / strip / total",
]


def row(r):
    if "error" in r:
        return [r["name"], _common.min_size(r["name"]), "FAIL", r["error"][:80]] + [""] * 6
    s = r["seconds"]
    before, after = r["params_before"], r["params_after"]
    return [
        r["name"],
        f"{r['size']}x{r['size']}",
        f"{r['prunable']:,}",
        f"{r['groups']:,} ({r['prunable_groups']:,})",
        _blocker_cell(r["blockers"]),
        f"{r['max_reduction']:.2%}",
        f"{before:,}",
        f"{after:,} (-{1 - after / before:.1%})",
        f"{r['rel_diff']:.1e}",
        f"{s['wrap']:.1f} / {s['strip']:.1f} / {s['total']:.1f}",
    ]


def document(results, wall):
    ok = [r for r in results if r.get("ok")]
    failed = [r for r in results if "error" in r]
    bad = [r for r in results if "error" not in r and not r.get("ok")]
    lines = [
        "# The zoo: every keras.applications architecture",
        "",
        f"Command: `{_common.command()}` (from the repository root; "
        f"took {wall / 60:.1f} min)  ",
        f"Date: {_common.now()}  ",
        f"Machine: {_common.machine()}  ",
        f"Code: {_common.code_version()}",
        "",
        "Each architecture is built with random weights (`weights=None`), logits "
        "as outputs (`classifier_activation=None`) and the smallest input size "
        "Keras accepts (32x32; 75x75 for InceptionV3 and InceptionResNetV2; "
        "71x71 for Xception). It is wrapped in `kt.TaylorPrunableModel` "
        "with default settings (ConvNeXt included: its LayerNormalizations "
        "normalise over the kept channels only), scored on one random batch of 2 images "
        "(Taylor criterion, categorical cross-entropy on random labels), "
        "30% of its prunable filter groups are pruned with `update_prunables`, "
        "and `kt.strip_pruning` makes the smaller model. The same checks run "
        "as `tests/graph/test_zoo.py` (CI runs one architecture per family; "
        "`pytest tests/graph/test_zoo.py -m slow` runs the rest).",
        "",
        "Columns:",
        "- **prunable filters**: `pm.num_prunables` before pruning (filter groups "
        "that can be removed while every layer keeps one channel).",
        "- **channel groups (prunable)**: all groups of coupled channels in the "
        "graph (`pm.channel_graph.num_units`, including inputs and the outputs "
        "of blocking layers), and how many of them hold prunable filters.",
        "- **blockers**: distinct layers that stop at least one group holding "
        "filters, by kind, and how many such groups they stop.",
        "- **max reduction**: `kt.max_reduction(pm)`, the largest fraction of "
        "learnables filter pruning can remove (one channel kept per layer).",
        "- **parameters**: `count_params()` of the original and of the stripped "
        "model after pruning 30% of the prunable filter groups.",
        "- **masked vs stripped rel diff**: max |pm(x) - stripped(x)| / "
        "max(1, max |pm(x)|) on the scored batch, inference mode "
        "(must be <= 1e-5).",
        "- **seconds**: wall time of wrapping, of `strip_pruning`, and of the "
        "whole case (build, wrap, score, prune, strip, compare) on this "
        "shared machine.",
        "",
        f"**{len(ok)} of {len(results)} architectures pass** "
        f"(fewer parameters and masked == stripped within 1e-5).",
        "",
        _common.markdown_table(HEADER, [row(r) for r in results]),
        "",
    ]
    if failed or bad:
        lines += ["## Failures", ""]
        for r in failed:
            lines += [f"### {r['name']}", "", f"`{r['error']}`", "", "```"]
            lines += r.get("traceback", []) + ["```", ""]
        for r in bad:
            lines += [
                f"### {r['name']}",
                "",
                f"rel diff {r['rel_diff']:.2e}, parameters {r['params_before']:,} "
                f"-> {r['params_after']:,}",
                "",
            ]
            if r["name"] in KNOWN_CAUSES:
                lines += [KNOWN_CAUSES[r["name"]], ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="+", help="these architectures only")
    parser.add_argument("--out", help="markdown file to write (default docs/zoo.md)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds allowed per architecture")
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker)

    names = args.only or _common.applications()
    results = []
    start = time.perf_counter()
    for name in names:
        r = run_subprocess(name, args.timeout)
        results.append(r)
        if "error" in r:
            print(f"{name}: FAIL {r['error']}", flush=True)
            print("    " + "\n    ".join(r.get("traceback", [])), flush=True)
        else:
            print(" | ".join(str(c) for c in row(r)), flush=True)
    wall = time.perf_counter() - start
    text = document(results, wall)
    print()
    print(text)
    out = args.out or (None if args.only else str(_common.DOCS / "zoo.md"))
    if out and not args.no_write:
        path = _common.pathlib.Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"written to {path}")
    return 1 if any("error" in r or not r.get("ok") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
