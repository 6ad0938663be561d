"""What pruning buys at inference: parameters, FLOPs, file size, CPU latency.

For the CIFARNet twin (ResNet-20, 32x32x3), ResNet50 and MobileNetV2
(`keras.applications`, weights=None, 224x224x3): 30% and 50% of the prunable
filter groups are removed (`update_prunables` with the L1 criterion,
normalised per layer: no data needed, and it spreads the cuts over the layers
as a trained network's Taylor scores do; raw global L1 on random weights cuts
whole residual branches to one filter), the model is stripped, and original and stripped models are measured in one run:
parameters, FLOPs (`kt.analyze`'s `multiply_accumulates`), `.keras` file size, and CPU latency
at batch 1 and batch 32, in Keras (a `tf.function` forward pass) and after
TFLite conversion (`kt.latency`'s `TFLiteConverter.from_concrete_functions` of the traced forward pass, timed with
`tf.lite.Interpreter`, 2 threads). The Keras runtime also times every model
after `kt.fold_batch_norm` (TFLite's converter folds batch normalization by
itself). Models are timed interleaved (round robin), medians reported.
Target: measured speedup >= 0.8 x FLOPs ratio. Half-width twins of ResNet-20
and MobileNetV2 split each runtime's latency into a fixed and a
FLOPs-proportional part (`latency_split`), which also says up to which FLOPs
ratio the target is reachable on that runtime at all (`target_reach`).

    python -m benchmarks.inference [--quick]
"""

import argparse
import math
import statistics
import time

from benchmarks import _common, _workloads  # noqa: F401

FRACTIONS = (0.3, 0.5)
REFERENCE = "half width (reference)"
TARGET = 0.8  # measured speedup / FLOPs ratio the issue asks for


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


def half_width(name):
    """The unpruned network with half the channels in every layer, or None.

    Same layers and op count as the original, about 4x fewer FLOPs: with the
    original it separates each runtime's fixed per-call cost from the cost
    that follows the arithmetic (`latency_split`).
    """
    import keras

    from keras_taylor import reference_models

    if name.startswith("CIFARNet"):
        return reference_models.resnet20(widths=(8, 16, 32))
    if name == "MobileNetV2":
        return keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), alpha=0.5)
    return None


def flops_ratio_of(results, name, variant):
    """FLOPs of `name`'s original over those of its `variant`."""
    rows = results[name]
    return rows["original"]["flops"] / rows[variant]["flops"]


def latency_split(results, kinds):
    """Latency = fixed + FLOPs-proportional part, read off original and half width.

    Both run the same ops, so `original = fixed + work` and `half = fixed +
    work / r` (r: their FLOPs ratio) give the two parts. A pruned variant of
    FLOPs ratio q would then take `fixed + work / q` if its kernels were as
    efficient as the original's: its speedup ceiling on that runtime.
    Returns (model, variant, kind, fixed share of the original's latency,
    speedup, ceiling) rows.
    """
    out = []
    for name, rows in results.items():
        if REFERENCE not in rows:
            continue
        o, h = rows["original"], rows[REFERENCE]
        r = flops_ratio_of(results, name, REFERENCE)
        for kind in kinds:
            work = (o[kind] - h[kind]) / (1 - 1 / r)
            fixed = o[kind] - work
            for k, v in rows.items():
                if k in ("original", REFERENCE):
                    continue
                q = flops_ratio_of(results, name, k)
                out.append((name, k, kind, fixed / o[kind], o[kind] / v[kind], o[kind] / (fixed + work / q)))
    return out


def target_reach(fixed_share, target=TARGET):
    """Largest FLOPs ratio at which speedup >= `target` x FLOPs ratio is possible.

    Even a model whose arithmetic shrinks exactly with its FLOPs takes
    `fixed + work / q` on a runtime with that fixed share, so its speedup is
    `1 / (f + (1 - f) / q)`; that is >= target x q only while
    `f (q - 1) <= 1 / target - 1`. Returns inf when the runtime has no fixed part.
    """
    if fixed_share <= 0:
        return math.inf
    return 1 + (1 / target - 1) / fixed_share


def misses_beyond_reach(ratios, split):
    """The misses of `ratios` whose FLOPs ratio lies beyond their runtime's `target_reach`."""
    reach = {(a, b, c): target_reach(d) for a, b, c, d, _, _ in split}
    return [x for x in ratios if x[5] < TARGET and x[4] > reach.get(x[:3], math.inf)]


def beyond_sentence(ratios, beyond):
    """' Of the N below 0.8, M lie beyond ...': the verdict's note on its misses ('' without misses)."""
    misses = sum(x[5] < TARGET for x in ratios)
    if not misses:
        return ""
    if not beyond:
        return f" Of the {misses} below {TARGET}, none lies beyond its runtime's reach."
    cells = "; ".join(f"{a} {b} {c.replace('_b', ' batch ')} (FLOPs ratio {e:.2f})" for a, b, c, _, e, _ in beyond)
    verb = "lies beyond its" if len(beyond) == 1 else "lie beyond their"
    return (f" Of the {misses} below {TARGET}, {len(beyond)} {verb} runtime's reach "
            f"(table 'Where the time goes'): {cells}.")


def reference_range(results):
    """'x-y of their FLOPs ratio in the Keras runtime': speedup / FLOPs ratio of the half-width twins."""
    shares = [rows["original"][kind] / rows[REFERENCE][kind] / flops_ratio_of(results, name, REFERENCE)
              for name, rows in results.items() if REFERENCE in rows
              for kind in ("keras_b1", "keras_b32")]
    if not shares:
        return "nothing here (no half-width twin was measured)"
    return f"{min(shares):.2f}-{max(shares):.2f} of their FLOPs ratio in the Keras runtime"


def file_size(model):
    from keras_taylor import export

    return export.keras_file_bytes(model)


def interleaved(runners, repeats):
    """Median seconds per call of each runner, samples timed round robin (`keras_taylor.latency`)."""
    from keras_taylor import latency

    times, _ = latency.time_interleaved(runners, repeats)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(name, s):
    import keras
    import numpy as np

    import keras_taylor as kt
    from keras_taylor import latency

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
    reference = half_width(name)
    if reference is not None:
        # Not pruned: the same layers at half width, to show how far this
        # runtime's speed follows FLOPs at these channel counts.
        variants[REFERENCE] = reference
        pruned_counts[REFERENCE] = "-"
    rows = {k: {"params": m.count_params(), "flops": _common.flops(m), "size": file_size(m),
                "pruned": pruned_counts.get(k, "0")} for k, m in variants.items()}
    flats = {k: latency.convert(m) for k, m in variants.items()}
    for k in variants:
        rows[k]["tflite_size"] = len(flats[k])
    folded = {k: kt.fold_batch_norm(m) for k, m in variants.items()}
    shape = original.input_shape[1:]
    rng = np.random.default_rng(0)
    for batch in (1, 32):
        x = rng.random((batch, *shape), dtype=np.float32)
        runners = {(k, "keras"): latency.keras_runner(m, x) for k, m in variants.items()}
        runners.update({(k, "keras_folded"): latency.keras_runner(m, x) for k, m in folded.items()})
        for (k, kind), v in interleaved(runners, s["repeats"][batch]).items():
            rows[k][f"{kind}_b{batch}"] = v
        del runners
        tfl = {k: latency.litert_runner(flats[k], x, threads=2) for k in variants}
        for k, v in interleaved(tfl, s["repeats"][batch]).items():
            rows[k][f"tflite_b{batch}"] = v
        del tfl
        print(f"[{name}] batch {batch}: " + ", ".join(
            f"{k} keras {1000 * r[f'keras_b{batch}']:.1f} ms / folded {1000 * r[f'keras_folded_b{batch}']:.1f} ms"
            f" / tflite {1000 * r[f'tflite_b{batch}']:.1f} ms"
            for k, r in rows.items()), flush=True)
    return rows


TARGET_KINDS = ("keras_b1", "keras_b32", "tflite_b1", "tflite_b32")
FOLDED_KINDS = ("keras_folded_b1", "keras_folded_b32")


def speedup_ratios(results, kinds):
    """(model, variant, kind, speedup, FLOPs ratio, speedup / FLOPs ratio) of pruned variants."""
    out = []
    for name, rows in results.items():
        o = rows["original"]
        for k, r in rows.items():
            if k in ("original", REFERENCE):
                continue
            flops_ratio = flops_ratio_of(results, name, k)
            for kind in kinds:
                speedup = o[kind] / r[kind]
                out.append((name, k, kind, speedup, flops_ratio, speedup / flops_ratio))
    return out


def folding_gains(results):
    """Original latency / folded latency of each unpruned original, per batch."""
    return {name: {b: rows["original"][f"keras_b{b}"] / rows["original"][f"keras_folded_b{b}"]
                   for b in (1, 32)} for name, rows in results.items()}


def write_docs(results, s, quick):
    from keras_taylor import latency

    table_rows = []
    for name, rows in results.items():
        o = rows["original"]
        for k, r in rows.items():
            flops_ratio = flops_ratio_of(results, name, k)
            cells = [name, k, r["pruned"], f"{r['params']:,}", f"{r['flops'] / 1e6:.1f}",
                     f"{flops_ratio:.2f}", f"{r['size'] / 1e6:.2f}", f"{r['tflite_size'] / 1e6:.2f}"]
            for kind in TARGET_KINDS[:2] + FOLDED_KINDS + TARGET_KINDS[2:]:
                ms = 1000 * r[kind]
                cells.append(f"{ms:.2f} ({o[kind] / r[kind]:.2f}x)" if ms < 10 else f"{ms:.1f} ({o[kind] / r[kind]:.2f}x)")
            table_rows.append(cells)
    ratios = speedup_ratios(results, TARGET_KINDS)
    folded_ratios = speedup_ratios(results, FOLDED_KINDS)
    met = sum(x[5] >= TARGET for x in ratios)
    worst = min(ratios, key=lambda x: x[5])
    folded_met = sum(x[5] >= TARGET for x in folded_ratios)
    split = latency_split(results, TARGET_KINDS + FOLDED_KINDS)
    beyond = misses_beyond_reach(ratios, split)
    gains = folding_gains(results)
    lines = [
        "## What pruning buys at inference",
        "",
        *_workloads.header(quick),
        "Random weights; 30% / 50% of the prunable filter groups removed (L1 criterion normalised per "
        "layer, so every layer loses a share), then "
        "`kt.strip_pruning`. FLOPs = 2 x multiply-accumulates of conv/dense layers per image. "
        "Latency: median wall time of one forward pass on this 2-core CPU, original and stripped "
        f"models interleaved in one run (each sample times as many back-to-back calls as fill about "
        f"{1000 * latency.SAMPLE_SECONDS:.0f} ms, so sub-millisecond runs are not one thread wake-up away from doubling); Keras = a `tf.function` of `model(x, training=False)`; TFLite "
        "= `TFLiteConverter.from_concrete_functions` of the traced forward pass (default float32, no optimisations) run by "
        "`tf.lite.Interpreter(num_threads=2)`; Keras folded = the same `tf.function` on "
        "`kt.fold_batch_norm(model)`, batch normalization merged into the convolutions (speedups in "
        f"those columns are against the folded original). Repeats: {s['repeats'][1]} at batch 1, "
        f"{s['repeats'][32]} at batch 32. Speedup in parentheses = original latency / this latency. "
        f"The '{REFERENCE}' rows are not pruned: ResNet-20 built with widths 8/16/32 and MobileNetV2 with "
        "`alpha=0.5` (the same layers with half the channels, 3-4x fewer FLOPs), which show how far each "
        "runtime's speed follows FLOPs at these channel counts; they are not counted against the target.",
        "",
        _common.markdown_table(
            ["model", "filters removed", "groups pruned", "parameters", "MFLOPs", "FLOPs ratio",
             ".keras MB", ".tflite MB", "Keras b1 ms", "Keras b32 ms", "Keras folded b1 ms",
             "Keras folded b32 ms", "TFLite b1 ms", "TFLite b32 ms"],
            table_rows),
        "",
        "Folding alone (original model, Keras runtime): " + "; ".join(
            f"{name} {g[1]:.2f}x at batch 1, {g[32]:.2f}x at batch 32" for name, g in gains.items()) + ".",
        "",
        f"Speedup / FLOPs ratio >= {TARGET} in {met} of {len(ratios)} measurements; lowest: {worst[0]} {worst[1]} "
        f"{worst[2]}: speedup {worst[3]:.2f}x for a FLOPs ratio of {worst[4]:.2f} ({worst[5]:.2f})."
        + beyond_sentence(ratios, beyond),
        "",
        _common.markdown_table(
            ["model", "removed", "runtime", "speedup", "FLOPs ratio", "speedup / FLOPs ratio"],
            [[a, b, c.replace("_b", " batch ").replace("_", " "), f"{d:.2f}", f"{e:.2f}", f"{f:.2f}"]
             for a, b, c, d, e, f in ratios + folded_ratios]),
        "",
        f"The target counts the {len(ratios)} Keras and TFLite measurements of the stripped models as "
        f"they are; with `kt.fold_batch_norm` the Keras runtime reaches >= {TARGET} in {folded_met} of "
        f"{len(folded_ratios)}.",
        "",
        "Where the time goes: the original and its half-width twin run the same ops, so their two "
        "latencies split each runtime's time into a fixed part f (per-op dispatch, memory traffic that "
        "does not shrink with the channels) and a part that follows the FLOPs (`latency_split`). The "
        "ceiling is the speedup a network of the pruned model's FLOPs would get if all of its "
        "arithmetic sped up in proportion; pruned / ceiling near 1 means the stripped model is as fast "
        "as its FLOPs allow on that runtime. The same split bounds the target: if a model took exactly "
        f"f + (1 - f) / q of the original's time, a speedup of {TARGET} x its FLOPs ratio q would need "
        f"f (q - 1) <= {1 / TARGET - 1:.2f}, that is q <= 1 + {1 / TARGET - 1:.2f} / f (the reach column, "
        "`target_reach`). Stripped models have run somewhat faster than that (speedup / ceiling above 1), "
        "so a cell just beyond its reach can still pass; well beyond it no model of those FLOPs does: "
        "the half-width twins, the same layers designed narrow, read " + reference_range(results) + ".",
        "",
        _common.markdown_table(
            ["model", "removed", "runtime", "fixed share of the original's latency", "speedup",
             "ceiling", "speedup / ceiling", "FLOPs ratio", f"{TARGET} x target reachable up to FLOPs ratio"],
            [[a, b, c.replace("_b", " batch ").replace("_", " "), f"{100 * d:.0f}%", f"{e:.2f}", f"{f:.2f}",
              f"{e / f:.2f}", f"{flops_ratio_of(results, a, b):.2f}", f"{target_reach(d):.2f}"]
             for a, b, c, d, e, f in split]),
    ]
    _common.write_section("inference", "\n".join(lines))
    return met, len(ratios), worst, (folded_met, len(folded_ratios)), beyond


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
        met, total, worst, (folded_met, folded_total), beyond = write_docs(results, s, args.quick)
        reach_note = f"; {len(beyond)} of the {total - met} misses beyond the runtime's reach" if met < total else ""
        summary.append({"benchmark": "inference", "what": "speedup / FLOPs ratio (Keras and TFLite, b1 and b32)",
                        "result": f">= {TARGET} in {met}/{total}; lowest {worst[5]:.2f} ({worst[0]} {worst[1]} "
                                  f"{worst[2]}){reach_note}",
                        "target": f">= {TARGET}", "met": "yes" if met == total else "no"})
        gains = folding_gains(results)
        summary.append({"benchmark": "inference", "what": "kt.fold_batch_norm, Keras runtime",
                        "result": f"speedup / FLOPs ratio >= {TARGET} in {folded_met}/{folded_total}; folding alone "
                                  + ", ".join(f"{n} {g[1]:.2f}x b1 / {g[32]:.2f}x b32" for n, g in gains.items()),
                        "target": "", "met": ""})
    for name, rows in results.items():
        o, h = rows["original"], rows["50%"]
        summary.append({"benchmark": "inference", "what": f"{name}, 50% filters removed",
                        "result": f"FLOPs ratio {flops_ratio_of(results, name, '50%'):.2f}, speedup Keras b32 "
                                  f"{o['keras_b32'] / h['keras_b32']:.2f}x, TFLite b1 {o['tflite_b1'] / h['tflite_b1']:.2f}x",
                        "target": "", "met": ""})
    _workloads.save_summary("inference", {"rows": summary, "seconds": time.perf_counter() - start})
    print(f"inference finished in {time.perf_counter() - start:.0f} s")
    return results


if __name__ == "__main__":
    main()
