"""Deploy: the pruned CIFARNet twin as a LiteRT float32 and int8 file.

The CIFARNet twin (ResNet-20) on the real CIFAR-10 subset: the suite's
cached 20-epoch baseline when there is one, else a brief baseline (4 epochs;
quick: 2 epochs on 2000 images), then `kt.compress` to 50% fewer learnables
(goal 0.5, increment 0.1, one fine-tuning epoch per step on a training
subset). Baseline and pruned model are each exported with `kt.export_litert`
as float32 and int8 (full-integer post-training quantization calibrated on
200 training images): file size, accuracy on the test split and the share of
test images whose top class matches the Keras model's. Then all six forms
(Keras, LiteRT float32, LiteRT int8, for both models) are timed round robin in
one run: LiteRT on 1 interpreter thread with XNNPACK, Keras a `tf.function`
on TensorFlow's threads, batch 1 (`keras_taylor.latency`).

    python -m benchmarks.export [--quick] [--no-docs]
"""

import dataclasses
import os
import statistics
import tempfile
import time

from benchmarks import _common, _workloads  # noqa: F401  (_workloads first: offline data)

GOAL = 0.5
RUNS = 100


def settings(quick):
    return {
        "fine_tune_subset": 1024 if quick else 4000,
        "max_iterations": 2 if quick else None,
        "runs": 10 if quick else RUNS,
    }


def workload(quick):
    """The suite's cached baseline if it is there; a brief one otherwise."""
    full = _workloads.resnet20_cifar()
    if _workloads.is_cached(full):
        return full
    if quick:
        return dataclasses.replace(full, n_train=2000, n_test=1000, epochs=2)
    return dataclasses.replace(full, epochs=4)


def compressed(base, w, s):
    import keras

    import keras_taylor as kt

    (xt, yt), _ = _workloads.load_data(w)
    xt, yt = _workloads.subset((xt, yt), s["fine_tune_subset"])
    keras.utils.set_random_seed(w.seed)
    start = time.perf_counter()
    pruned, info = kt.compress(
        _workloads.fresh_copy(base, w), (xt, yt), goal=GOAL, increment=0.1, fine_tune_epochs=1,
        batch_size=w.batch, max_iterations=s["max_iterations"], recalibration_batches=10, verbose=0)
    print(f"[export] compressed to {100 * info.learnables_reduction:.1f}% fewer learnables in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return pruned, info


def exported(models, w, folder):
    """{(model, form): row} with file size, accuracy and agreement; the LiteRT files."""
    import keras_taylor as kt

    (xt, _), (xs, ys) = _workloads.load_data(w)
    rows, files = {}, {}
    for name, model in models.items():
        for precision in ("float32", "int8"):
            path = os.path.join(folder, f"{name}_{precision}.tflite")
            report = kt.export_litert(model, path, precision=precision, representative_data=xt,
                                      validation_data=(xs, ys), latency_runs=0)
            for row in report.rows:
                rows[(name, row["model"])] = row
            files[(name, f"litert {precision}")] = path
    return rows, files


def timed(models, files, runs):
    """LatencyResult of every form, all timed round robin at batch 1 in one run."""
    import numpy as np

    from keras_taylor import latency

    shape = next(iter(models.values())).input_shape[1:]
    x = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
    runners = {(name, "keras"): latency.keras_runner(m, x) for name, m in models.items()}
    for key, path in files.items():
        with open(path, "rb") as f:
            runners[key] = latency.litert_runner(f.read(), x, threads=1)
    load_before = os.getloadavg()[0]
    times, calls = latency.time_interleaved(runners, runs)
    load_after = os.getloadavg()[0]
    threads = latency.keras_threads(None)
    results = {k: latency.LatencyResult.from_samples(
        v, runtime=k[1].split()[0], calls_per_run=calls[k], batch_size=1,
        threads=threads if k[1] == "keras" else 1) for k, v in times.items()}
    return results, (load_before, load_after)


def table_rows(rows, timings, params):
    """Markdown cells: one row per (model, form), ratios against baseline LiteRT float32."""
    ref = timings[("baseline", "litert float32")].median
    out = []
    for (name, form), row in rows.items():
        t = timings[(name, form)]
        float_acc = rows[(name, "litert float32")]["accuracy"] if form == "litert int8" else None
        drop = "" if float_acc is None else f"{100 * (row['accuracy'] - float_acc):+.2f}"
        out.append([name, f"{params[name]:,}", form, f"{row['file_mb']:.3f}",
                    f"{1000 * t.median:.3f}", f"{1000 * t.iqr:.3f}", f"{ref / t.median:.2f}x",
                    f"{100 * row['accuracy']:.2f}", drop, f"{100 * row['agreement']:.1f}"])
    return out


def write_docs(w, meta, info, rows, timings, load, params, s, quick):
    int8, f32 = rows[("pruned", "litert int8")], rows[("pruned", "litert float32")]
    t = {k: v.median for k, v in timings.items()}
    lines = [
        "## Deploy: the pruned CIFARNet twin as a LiteRT int8 file",
        "",
        *_workloads.header(quick),
        f"Workload: {w.describe()} (baseline {'from the cache' if meta['cached'] else 'trained here'}"
        f", {100 * meta['accuracy']:.2f}% test accuracy). `kt.compress(goal={GOAL}, increment=0.1, "
        f"fine_tune_epochs=1, recalibration_batches=10)` on {s['fine_tune_subset']} training images: "
        f"{100 * info.learnables_reduction:.1f}% fewer learnables, stop: {info.stop_reason} "
        "Each model is exported by `kt.export_litert` (batch normalization folded, "
        "`tf.lite.TFLiteConverter` with builtin ops only) as float32 and as int8 (full-integer "
        "post-training quantization, 200 calibration images drawn from the training split, float32 "
        "input and output). Accuracy: the test split through the LiteRT interpreter; agreement: share "
        "of test images whose top class is the Keras model's. Latency: batch 1, median of "
        f"{s['runs']} samples (IQR beside it), all six forms timed round robin in one run; LiteRT = "
        "`tf.lite.Interpreter(num_threads=1)` with its default XNNPACK delegate, Keras = a `tf.function` "
        f"on TensorFlow's threads. Load average {load[0]:.2f} before timing, {load[1]:.2f} after "
        "(other processes shared the 2 cores): compare the ratios, not the milliseconds.",
        "",
        _common.markdown_table(
            ["model", "parameters", "form", "file MB", "latency ms", "IQR ms",
             "speedup vs baseline LiteRT float32", "test accuracy %", "int8 - float32 (points)",
             "agreement with Keras %"],
            table_rows(rows, timings, params)),
        "",
        f"The pruned int8 file: {int8['file_mb']:.3f} MB against {f32['file_mb']:.3f} MB in float32 "
        f"({f32['file_mb'] / int8['file_mb']:.1f}x smaller) and "
        f"{rows[('baseline', 'litert float32')]['file_mb']:.3f} MB for the unpruned float32 file; "
        f"{t[('pruned', 'litert float32')] / t[('pruned', 'litert int8')]:.2f}x faster than its float32 "
        f"file and {t[('baseline', 'litert float32')] / t[('pruned', 'litert int8')]:.2f}x faster than the "
        f"unpruned float32 file on one thread; accuracy {100 * int8['accuracy']:.2f}% against "
        f"{100 * f32['accuracy']:.2f}% in float32 ({100 * (int8['accuracy'] - f32['accuracy']):+.2f} points).",
    ]
    _common.write_section("export", "\n".join(lines))


def main(argv=None):
    args = _common.parser(__doc__).parse_args(argv)
    start = time.perf_counter()
    s = settings(args.quick)
    w = workload(args.quick)
    base, meta = _workloads.baseline(w)
    pruned, info = compressed(base, w, s)
    models = {"baseline": base, "pruned": pruned}
    params = {k: m.count_params() for k, m in models.items()}
    with tempfile.TemporaryDirectory() as folder:
        rows, files = exported(models, w, folder)
        timings, load = timed(models, files, s["runs"])
    for row in table_rows(rows, timings, params):
        print(" | ".join(row), flush=True)
    if not args.no_docs:
        write_docs(w, meta, info, rows, timings, load, params, s, args.quick)
    int8, f32 = rows[("pruned", "litert int8")], rows[("pruned", "litert float32")]
    speedup = timings[("baseline", "litert float32")].median / timings[("pruned", "litert int8")].median
    _workloads.save_summary("export", {"rows": [{
        "benchmark": "export", "what": "pruned CIFARNet twin, LiteRT int8 vs float32 (1 thread, batch 1)",
        "result": f"{int8['file_mb']:.2f} MB (float32 {f32['file_mb']:.2f}), {speedup:.2f}x faster than the "
                  f"unpruned float32 file, accuracy {100 * (int8['accuracy'] - f32['accuracy']):+.2f} points",
        "target": "", "met": ""}], "seconds": time.perf_counter() - start})
    print(f"export finished in {time.perf_counter() - start:.0f} s (load {statistics.mean(load):.2f})")
    return rows, timings


if __name__ == "__main__":
    main()
