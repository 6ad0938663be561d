"""What pruning buys at inference: parameters, FLOPs, file size, CPU latency.

For the CIFARNet twin (ResNet-20, 32x32x3), ResNet50 and MobileNetV2
(`keras.applications`, weights=None, 224x224x3): 30% and 50% of the prunable
filter groups are removed (`update_prunables` with the L1 criterion,
normalised per layer: no data needed, and it spreads the cuts over the layers
as a trained network's Taylor scores do; raw global L1 on random weights cuts
whole residual branches to one filter), the model is stripped, and original and stripped models are measured in one run:
parameters, FLOPs (`benchmarks/_flops.py`), `.keras` file size, and CPU latency
at batch 1 and batch 32, in Keras (a `tf.function` forward pass) and after
TFLite conversion (`tf.lite.TFLiteConverter.from_keras_model`, timed with
`tf.lite.Interpreter`, 2 threads). Models are timed interleaved (round
robin), medians reported. Target: measured speedup >= 0.8 x FLOPs ratio.

    python -m benchmarks.inference [--quick]
"""

import argparse
import os
import statistics
import tempfile
import time

from benchmarks import _common, _workloads  # noqa: F401

FRACTIONS = (0.3, 0.5)
REFERENCE = "half width (reference)"


def settings(quick):
    return {
        "models": ("CIFARNet twin (ResNet-20)",) if quick
        else ("CIFARNet twin (ResNet-20)", "ResNet50", "MobileNetV2"),
        "repeats": {1: 5 if quick else 15, 32: 2 if quick else 5},
    }


def build(name):
    import keras

    from keras_taylor import reference_models

    if name.startswith("CIFARNet"):
        return reference_models.resnet20()
    return getattr(keras.applications, name)(weights=None, input_shape=(224, 224, 3))


def file_size(model):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.keras")
        model.save(path)
        return os.path.getsize(path)


def keras_runner(model, x):
    import tensorflow as tf

    fn = tf.function(lambda t: model(t, training=False))
    t = tf.constant(x)
    fn(t)
    fn(t)
    return lambda: fn(t).numpy()


def tflite_convert(model):
    """TFLite flatbuffer of `model` (the converter's chatter silenced)."""
    import contextlib
    import io

    import tensorflow as tf

    with contextlib.redirect_stdout(io.StringIO()):
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def tflite_runner(flat, x):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=flat, num_threads=2)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x.shape))
    interpreter.allocate_tensors()
    out = interpreter.get_output_details()[0]["index"]

    def run():
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    run()
    run()
    return run


def interleaved(runners, repeats):
    """Median seconds of each runner, timed round robin."""
    times = {k: [] for k in runners}
    for _ in range(repeats):
        for k, fn in runners.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(name, s):
    import keras
    import numpy as np

    import keras_taylor as kt
    from benchmarks import _flops
    from keras_taylor import reference_models

    keras.utils.set_random_seed(0)
    original = build(name)
    variants = {"original": original}
    pruned_counts = {}
    for fraction in FRACTIONS:
        pm = kt.TaylorPrunableModel(original, criterion="l1", normalize=True)
        prunable = pm.num_prunables
        count = pm.update_prunables(max_to_prune=int(round(fraction * prunable)))
        variants[f"{int(100 * fraction)}%"] = kt.strip_pruning(pm)
        pruned_counts[f"{int(100 * fraction)}%"] = f"{count}/{prunable}"
        del pm
    if name.startswith("CIFARNet"):
        # Not pruned: the same network at half width, to show how far this
        # runtime's speed follows FLOPs at these small channel counts.
        variants[REFERENCE] = reference_models.resnet20(widths=(8, 16, 32))
        pruned_counts[REFERENCE] = "-"
    rows = {k: {"params": m.count_params(), "flops": _flops.flops(m), "size": file_size(m),
                "pruned": pruned_counts.get(k, "0")} for k, m in variants.items()}
    flats = {k: tflite_convert(m) for k, m in variants.items()}
    for k in variants:
        rows[k]["tflite_size"] = len(flats[k])
    shape = original.input_shape[1:]
    rng = np.random.default_rng(0)
    for batch in (1, 32):
        x = rng.random((batch, *shape), dtype=np.float32)
        runners = {k: keras_runner(m, x) for k, m in variants.items()}
        for k, v in interleaved(runners, s["repeats"][batch]).items():
            rows[k][f"keras_b{batch}"] = v
        del runners
        tfl = {k: tflite_runner(flats[k], x) for k in variants}
        for k, v in interleaved(tfl, s["repeats"][batch]).items():
            rows[k][f"tflite_b{batch}"] = v
        del tfl
        print(f"[{name}] batch {batch}: " + ", ".join(
            f"{k} keras {1000 * r[f'keras_b{batch}']:.1f} ms / tflite {1000 * r[f'tflite_b{batch}']:.1f} ms"
            for k, r in rows.items()), flush=True)
    return rows


def write_docs(results, s, quick):
    table_rows, ratios = [], []
    for name, rows in results.items():
        o = rows["original"]
        for k, r in rows.items():
            flops_ratio = o["flops"] / r["flops"]
            cells = [name, k, r["pruned"], f"{r['params']:,}", f"{r['flops'] / 1e6:.1f}",
                     f"{flops_ratio:.2f}", f"{r['size'] / 1e6:.2f}", f"{r['tflite_size'] / 1e6:.2f}"]
            for kind in ("keras_b1", "keras_b32", "tflite_b1", "tflite_b32"):
                speedup = o[kind] / r[kind]
                cells.append(f"{1000 * r[kind]:.1f} ({speedup:.2f}x)")
                if k not in ("original", REFERENCE):
                    ratios.append((name, k, kind, speedup, flops_ratio, speedup / flops_ratio))
            table_rows.append(cells)
    met = sum(x[5] >= 0.8 for x in ratios)
    worst = min(ratios, key=lambda x: x[5])
    lines = [
        "## What pruning buys at inference",
        "",
        *_workloads.header(quick),
        "Random weights; 30% / 50% of the prunable filter groups removed (L1 criterion normalised per "
        "layer, so every layer loses a share), then "
        "`kt.strip_pruning`. FLOPs = 2 x multiply-accumulates of conv/dense layers per image. "
        "Latency: median wall time of one forward pass on this 2-core CPU, original and stripped "
        "models interleaved in one run; Keras = a `tf.function` of `model(x, training=False)`; TFLite "
        "= `TFLiteConverter.from_keras_model` (default float32, no optimisations) run by "
        f"`tf.lite.Interpreter(num_threads=2)`. Repeats: {s['repeats'][1]} at batch 1, "
        f"{s['repeats'][32]} at batch 32. Speedup in parentheses = original latency / this latency. "
        f"The '{REFERENCE}' row is not pruned: ResNet-20 built with widths 8/16/32 (about 4x fewer FLOPs), "
        "the ceiling of what thinner layers buy on this runtime; it is not counted against the target.",
        "",
        _common.markdown_table(
            ["model", "filters removed", "groups pruned", "parameters", "MFLOPs", "FLOPs ratio",
             ".keras MB", ".tflite MB", "Keras b1 ms", "Keras b32 ms", "TFLite b1 ms", "TFLite b32 ms"],
            table_rows),
        "",
        f"Speedup / FLOPs ratio >= 0.8 in {met} of {len(ratios)} measurements; lowest: {worst[0]} {worst[1]} "
        f"{worst[2]}: speedup {worst[3]:.2f}x for a FLOPs ratio of {worst[4]:.2f} ({worst[5]:.2f}).",
        "",
        _common.markdown_table(
            ["model", "removed", "runtime", "speedup", "FLOPs ratio", "speedup / FLOPs ratio"],
            [[a, b, c.replace("_b", " batch "), f"{d:.2f}", f"{e:.2f}", f"{f:.2f}"] for a, b, c, d, e, f in ratios]),
    ]
    _common.write_section("inference", "\n".join(lines))
    return met, len(ratios), worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--models", nargs="+")
    args = parser.parse_args(argv)
    import keras

    s = settings(args.quick)
    start = time.perf_counter()
    results = {}
    for name in args.models or s["models"]:
        keras.backend.clear_session()
        results[name] = measure(name, s)
    summary = []
    if not args.no_docs:
        met, total, worst = write_docs(results, s, args.quick)
        summary.append({"benchmark": "inference", "what": "speedup / FLOPs ratio (Keras and TFLite, b1 and b32)",
                        "result": f">= 0.8 in {met}/{total}; lowest {worst[5]:.2f} ({worst[0]} {worst[1]} {worst[2]})",
                        "target": ">= 0.8", "met": "yes" if met == total else "no"})
    for name, rows in results.items():
        o, h = rows["original"], rows["50%"]
        summary.append({"benchmark": "inference", "what": f"{name}, 50% filters removed",
                        "result": f"FLOPs ratio {o['flops'] / h['flops']:.2f}, speedup Keras b32 "
                                  f"{o['keras_b32'] / h['keras_b32']:.2f}x, TFLite b1 {o['tflite_b1'] / h['tflite_b1']:.2f}x",
                        "target": "", "met": ""})
    _workloads.save_summary("inference", {"rows": summary, "seconds": time.perf_counter() - start})
    print(f"inference finished in {time.perf_counter() - start:.0f} s")
    return results


if __name__ == "__main__":
    main()
