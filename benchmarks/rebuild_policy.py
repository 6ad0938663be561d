"""What `rebuild_threshold` buys: kt.compress with masked vs rebuilt iterations.

The CIFARNet twin on the real CIFAR-10 subset, the loop of the Torch-Pruning
comparison (score on `score_batches` batches of 128, about 10% of the
learnables per iteration, one fine-tuning epoch over a fixed subset, validate
on the test split) run with `rebuild_threshold` 0 (rebuild after every step,
MATLAB's way), 0.25, 1 (masked until the end) and "auto" (the default: rebuild
when the measured tracing cost is below the predicted saving). Each setting
runs twice, in the order A B C D D C B A, so the VM's drift over minutes falls
on all of them alike; reported: mean wall time of the whole `compress` call,
the iterations that fine-tuned a rebuilt model, and the accuracy reached. A masked model computes what the stripped one does, up
to float rounding, but fine-tuning amplifies rounding, so the filters chosen
and the accuracies differ between settings by about a point (and not between
the two runs of one setting).

    python -m benchmarks.rebuild_policy [--quick] [--no-docs]
"""

import time

from benchmarks import _common, _workloads

THRESHOLDS = (0.0, 0.25, 1.0, "auto")


def settings(quick):
    return {"goal": 0.2 if quick else 0.5, "increment": 0.1, "score_batches": 2 if quick else 10,
            "train_subset": 1024 if quick else 4096}


def _label(threshold):
    return threshold if isinstance(threshold, str) else f"{threshold:g}"


def run_once(base, w, data, s, threshold):
    import keras

    import keras_taylor as kt

    (xt, yt), (xs, ys) = data
    keras.utils.set_random_seed(w.seed)
    model = _workloads.fresh_copy(base, w)
    start = time.perf_counter()
    _, info = kt.compress(
        model, (xt, yt), goal=s["goal"], increment=s["increment"], fine_tune_epochs=1,
        score_batches=s["score_batches"], validation_data=(xs, ys), metric="accuracy",
        output="last-iteration", batch_size=w.batch, rebuild_threshold=threshold, verbose=0,
    )
    seconds = time.perf_counter() - start
    vh = info.validation_history
    last = int(info.pruning_history.iteration.max())
    return {"seconds": seconds, "iterations": last, "reduction": info.learnables_reduction,
            "rebuilt": list(info.rebuilt_iterations),
            "accuracy": float(vh[(vh.iteration == last) & vh.is_final].metric.iloc[-1])}


def main(argv=None):
    args = _common.parser(__doc__).parse_args(argv)
    start = time.perf_counter()
    s = settings(args.quick)
    w, base, _, data = _workloads.cifar_fine_tuning(args.quick, s["train_subset"])
    runs = {t: [] for t in THRESHOLDS}
    for threshold in THRESHOLDS + THRESHOLDS[::-1]:
        r = run_once(base, w, data, s, threshold)
        runs[threshold].append(r)
        print(f"rebuild_threshold={threshold}: {r['seconds']:.1f} s, {r['iterations']} iterations, "
              f"rebuilt at {r['rebuilt'] or 'none'}, "
              f"{100 * r['reduction']:.1f}% fewer learnables, accuracy {100 * r['accuracy']:.2f}%", flush=True)
    mean = {t: sum(r["seconds"] for r in rs) / len(rs) for t, rs in runs.items()}
    rows = []
    for t, rs in runs.items():
        rows.append([_label(t), f"{mean[t]:.1f}", " / ".join(f"{r['seconds']:.1f}" for r in rs),
                     " / ".join(",".join(map(str, r["rebuilt"])) or "none" for r in rs),
                     f"{mean[t] / mean[0.0]:.2f}", f"{100 * rs[0]['reduction']:.1f}",
                     " / ".join(f"{100 * r['accuracy']:.2f}" for r in rs)])
    table = _common.markdown_table(
        ["rebuild_threshold", "mean s", "runs s", "rebuilt at iterations (runs)", "time / threshold 0",
         "reduction %", "accuracy % (runs)"], rows)
    print()
    print(table)
    if not args.no_docs:
        lines = [
            "## kt.compress: masked iterations vs rebuilds (`rebuild_threshold`)",
            "",
            *_workloads.header(args.quick),
            f"CIFARNet twin, real CIFAR-10 subset: `kt.compress(goal={s['goal']}, increment={s['increment']}, "
            f"fine_tune_epochs=1, score_batches={s['score_batches']}, output=\"last-iteration\")`, fine-tuning "
            f"on {s['train_subset']} training images, validation on the test split. Each setting ran twice, "
            "in the order " + ", ".join(_label(t) for t in THRESHOLDS + THRESHOLDS[::-1]) + ", so drift "
            "falls on all alike. 0 rebuilds (and re-traces) after every pruning step; 1 keeps one masked "
            "model to the end; auto (the default) rebuilds when the tracing cost it measured is below the "
            "fine-tuning time it predicts a rebuild saves over the iterations left.",
            "",
            table,
        ]
        _common.write_section("rebuild_policy", "\n".join(lines))
    _workloads.save_summary("rebuild_policy", {"rows": [
        {"benchmark": "rebuild_policy", "what": "compress time, rebuild_threshold auto (default) / 0.25 / 1 vs 0",
         "result": f"{mean['auto'] / mean[0.0]:.2f} / {mean[0.25] / mean[0.0]:.2f} / {mean[1.0] / mean[0.0]:.2f}",
         "target": "", "met": ""},
    ], "seconds": time.perf_counter() - start})
    print(f"rebuild_policy finished in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
