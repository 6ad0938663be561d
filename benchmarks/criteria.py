"""Taylor vs L1-norm vs random filter selection, with and without fine-tuning.

For ResNet-20 on the real CIFAR-10 subset and MATLAB's digits CNN on MNIST:
from the trained (cached) baseline, each criterion ranks the channel groups
once (Taylor: package-default scores from `score_batches` training batches;
L1: filter weight norms, L2-normalised per layer; random: a seeded
permutation), then the lowest-ranked groups are pruned one-shot until the
learnables fall by 10/30/50/70%. Accuracy is measured (a) right after
pruning, (b) once the batch-norm statistics are re-estimated (no weights
trained) and (c) after the same short fine-tuning of (b) (one epoch over a
subset of the training images, SGD momentum 0.9 at a tenth of the baseline's
rate), statistics re-estimated again. Every seed draws its own score
batches, random ranking and fine-tuning images; the verdicts compare means
over seeds, with the standard error of Taylor's margin over random beside
them. Writes a table and docs/criteria.png.

    python -m benchmarks.criteria [--quick] [--seeds N]
"""

import argparse
import json
import re
import time

from benchmarks import _common, _workloads  # noqa: F401  (_workloads first: offline data)

CRITERIA = ("taylor", "l1", "random")
# Raw L1 norms ranked globally compare filters of different fan-in (a 3x3x1
# first-layer filter has 9 weights, the next layer's 180), so the first layer
# goes first and the baseline is a strawman. Normalised per layer, as
# Torch-Pruning's global MagnitudeImportance does, it is the strong L1.
# Random stays a uniform ranking over groups (normalising random numbers per
# layer would favour pruning the wide layers).
CRITERION_OPTIONS = {"l1": {"normalize": True}, "random": {"normalize": False}}
REDUCTIONS = (0.1, 0.3, 0.5, 0.7)
# Seeds per workload in a full run. Without fine-tuning, the digits CNN's
# large cuts leave collapsed networks whose accuracy swings by tens of points
# from one random ranking to the next (10-44% at 70%); with 3 seeds the 70%
# cell ranked Taylor below random, with 10 above (2026-12-01,
# docs/benchmarks.md). Its seeds cost about 80 s each, ResNet-20's about 390 s.
FULL_SEEDS = {"resnet20-cifar10": 3, "digits-mnist": 10}


def settings(quick):
    return {"score_batches": 2 if quick else 10, "fine_tune_epochs": 1,
            "fine_tune_images": 512 if quick else 2048, "recalibration_batches": 2 if quick else 10}


def run_workload(w, quick, options=None, seeds=(0,)):
    """Rows (seed, criterion, target, reduction, oneshot, recalibrated, finetuned) for `w`.

    Each seed draws its own Taylor score batches, random ranking, batch-norm
    recalibration batches, fine-tuning images and their order; L1 needs no
    data, so only its recalibration and fine-tuning vary.
    """
    import keras
    import numpy as np

    import keras_taylor as kt

    options = dict(options or {})
    s = settings(quick)
    base, meta = _workloads.baseline(w)
    (xt, yt), (xs, ys) = _workloads.load_data(w)
    base_learn = _workloads.learnables(base)

    def recalibrate(model, draw):
        kt.recalibrate_batch_norm(model, (xt, yt), batches=s["recalibration_batches"],
                                  batch_size=w.batch, seed=w.seed + draw)

    rows = []
    for seed in seeds:
        xf, yf = _workloads.subset((xt, yt), s["fine_tune_images"], seed=w.seed + seed)
        for criterion in CRITERIA:
            start = time.perf_counter()
            pm = kt.TaylorPrunableModel(
                _workloads.fresh_copy(base, w), criterion=criterion, seed=w.seed + seed,
                **{**options, **CRITERION_OPTIONS.get(criterion, {})})
            if criterion == "taylor":
                order = np.random.default_rng(w.seed + seed).permutation(len(xt))
                for b in range(s["score_batches"]):
                    idx = order[b * w.batch:(b + 1) * w.batch]
                    pm.update_score(xt[idx], yt[idx], loss="sparse_categorical_crossentropy")
                saved = pm.score_sum.numpy(), pm.score_count.numpy()
            full = np.ones(pm.channel_graph.num_units, dtype=bool)
            for target in REDUCTIONS:
                pm.set_unit_alive(full)
                if criterion == "taylor":
                    pm.score_sum.assign(saved[0])
                    pm.score_count.assign(saved[1])
                pm.update_prunables(None, learnables_reduction=target)
                small = _workloads.compile_for_fine_tuning(kt.strip_pruning(pm), w)
                reduction = 1 - _workloads.learnables(small) / base_learn
                acc0 = _workloads.evaluate(small, xs, ys)
                recalibrate(small, seed)
                acc_bn = _workloads.evaluate(small, xs, ys)
                keras.utils.set_random_seed(w.seed + seed)
                small.fit(xf, yf, batch_size=w.batch, epochs=s["fine_tune_epochs"], verbose=0, shuffle=True)
                # As kt.compress does before validating a fine-tuned model.
                recalibrate(small, seed + 1)
                acc1 = _workloads.evaluate(small, xs, ys)
                rows.append({"workload": w.name, "seed": seed, "criterion": criterion, "target": target,
                             "reduction": reduction, "oneshot": acc0, "recalibrated": acc_bn, "finetuned": acc1})
                print(f"[{w.name}] seed {seed} {criterion:6s} {100 * reduction:5.1f}% fewer learnables: "
                      f"one-shot {100 * acc0:6.2f}%  BN re-estimated {100 * acc_bn:6.2f}%  "
                      f"fine-tuned {100 * acc1:6.2f}%", flush=True)
            print(f"[{w.name}] seed {seed} {criterion} done in {time.perf_counter() - start:.0f} s", flush=True)
    return rows, meta


PHASES = ("oneshot", "recalibrated", "finetuned")
PHASE_TITLES = {"oneshot": "no fine-tuning", "recalibrated": "no fine-tuning, BN statistics re-estimated",
                "finetuned": "after fine-tuning"}


def aggregate(rows):
    """One row per (workload, criterion, target): means and ranges over seeds."""
    groups = {}
    for r in rows:
        groups.setdefault((r["workload"], r["criterion"], r["target"]), []).append(r)
    out = []
    for (wl, criterion, target), rs in groups.items():
        row = {"workload": wl, "criterion": criterion, "target": target, "seeds": len(rs),
               "reduction": sum(r["reduction"] for r in rs) / len(rs)}
        for phase in PHASES:
            values = [r[phase] for r in rs]
            row[phase] = sum(values) / len(values)
            row[phase + "_range"] = (min(values), max(values))
        out.append(row)
    return out


def seeds_per_workload(rows):
    """Workload name -> the sorted seeds its rows hold, in the rows' workload order."""
    seeds = {}
    for r in rows:
        seeds.setdefault(r["workload"], set()).add(r["seed"])
    return {wl: sorted(s) for wl, s in seeds.items()}


def verdicts(rows):
    """Where Taylor's mean over seeds beats random (all) and L1 (at 50/70%)."""
    out = []
    by = {(r["workload"], r["criterion"], r["target"]): r for r in aggregate(rows)}
    single = {(r["workload"], r["criterion"], r["target"], r["seed"]): r for r in rows}
    large = [t for t in REDUCTIONS if t >= 0.5]
    for wl, seeds in seeds_per_workload(rows).items():
        for phase in PHASES:
            beats_random = [by[wl, "taylor", t][phase] > by[wl, "random", t][phase] for t in REDUCTIONS]
            beats_l1_large = [by[wl, "taylor", t][phase] >= by[wl, "l1", t][phase] for t in large]
            pairs = [single[wl, "taylor", t, s][phase] >= single[wl, "l1", t, s][phase] for t in large for s in seeds]
            margin = [by[wl, "taylor", t][phase] - by[wl, "l1", t][phase] for t in large]
            closest = min(REDUCTIONS, key=lambda t: by[wl, "taylor", t][phase] - by[wl, "random", t][phase])
            out.append({"workload": wl, "phase": phase, "met": all(beats_random) and all(beats_l1_large),
                        "beats_random": f"{sum(beats_random)}/{len(beats_random)}",
                        "beats_l1_large": f"{sum(beats_l1_large)}/{len(beats_l1_large)}",
                        "l1_pairs": f"{sum(pairs)}/{len(pairs)}",
                        "l1_margin": " / ".join(f"{100 * m:+.2f}" for m in margin),
                        "random_closest": _margin_with_error(rows, wl, phase, closest)})
    return out


def _margin_with_error(rows, wl, phase, target):
    """'+5.4 ± 4.7 at 70%': Taylor's mean minus random's, with its standard error over seeds."""
    import numpy as np

    def values(criterion):
        return np.array([r[phase] for r in rows
                         if (r["workload"], r["criterion"], r["target"]) == (wl, criterion, target)])

    taylor, random = values("taylor"), values("random")
    text = f"{100 * (taylor.mean() - random.mean()):+.1f}"
    if min(len(taylor), len(random)) > 1:
        error = np.sqrt(taylor.var(ddof=1) / len(taylor) + random.var(ddof=1) / len(random))
        text += f" ± {100 * error:.1f}"
    return f"{text} at {100 * target:.0f}%"


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = aggregate(rows)
    workloads = list(dict.fromkeys(r["workload"] for r in means))
    fig, axes = plt.subplots(len(workloads), len(PHASES), figsize=(5 * len(PHASES), 3.8 * len(workloads)),
                             squeeze=False)
    titles = {**PHASE_TITLES, "recalibrated": "no fine-tuning,\nBN statistics re-estimated",
              "finetuned": "after 1 fine-tuning epoch"}
    for i, wl in enumerate(workloads):
        for j, phase in enumerate(PHASES):
            title = titles[phase]
            ax = axes[i][j]
            for criterion, style in zip(CRITERIA, ("o-", "s--", "^:")):
                pts = [r for r in means if r["workload"] == wl and r["criterion"] == criterion]
                x = [100 * r["reduction"] for r in pts]
                line, = ax.plot(x, [100 * r[phase] for r in pts], style, label=criterion)
                ax.fill_between(x, [100 * r[phase + "_range"][0] for r in pts],
                                [100 * r[phase + "_range"][1] for r in pts], color=line.get_color(), alpha=0.15)
            ax.set_title(f"{wl}: {title}")
            ax.set_xlabel("learnables reduction (%)")
            ax.set_ylabel("test accuracy (%), mean and range over seeds")
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mean_range(r, phase):
    low, high = r[phase + "_range"]
    if r["seeds"] == 1:
        return f"{100 * r[phase]:.2f}"
    return f"{100 * r[phase]:.2f} ({100 * low:.2f}-{100 * high:.2f})"


def write_docs(rows, metas, quick, origin=None):
    s = settings(quick)
    seeds_text = ", ".join(f"{len(s)} for {wl}" for wl, s in seeds_per_workload(rows).items())
    table = _common.markdown_table(
        ["workload", "target reduction", "criterion", "actual learnables reduction %",
         "acc. no fine-tuning %", "acc. no fine-tuning, BN re-estimated %", "acc. after fine-tuning %"],
        [[r["workload"], f"{100 * r['target']:.0f}%", r["criterion"], f"{100 * r['reduction']:.1f}",
          *[_mean_range(r, phase) for phase in PHASES]] for r in aggregate(rows)],
    )
    v = _common.markdown_table(
        ["workload", "accuracy", "Taylor > random (10/30/50/70%)",
         "smallest Taylor - random (points ± standard error)", "Taylor >= L1 at 50/70%",
         "Taylor - L1 at 50 / 70% (points)", "single runs Taylor >= L1 at 50/70%"],
        [[x["workload"], PHASE_TITLES[x["phase"]], x["beats_random"], x["random_closest"],
          x["beats_l1_large"], x["l1_margin"], x["l1_pairs"]] for x in verdicts(rows)],
    )
    import inspect

    import keras_taylor as kt

    # Docs are written only with package defaults; say which ranking that is.
    normalized = inspect.signature(kt.TaylorPrunableModel).parameters["normalize"].default
    taylor_ranking = "scores L2-normalised per layer" if normalized else "raw scores, not normalised per layer"
    lines = [
        "## Criteria: Taylor vs L1-norm vs random",
        "",
        *_workloads.header(quick),
        *([f"Measured by an earlier run, rebuilt from its printed output (`--from-log`): {origin}", ""]
          if origin else []),
        "From each trained baseline, a criterion ranks the channel groups once and the lowest-ranked "
        "are pruned one-shot (`update_prunables(None, learnables_reduction=r)`) until the learnables "
        f"fall by r. Taylor: scores from {s['score_batches']} training batches of 128 "
        f"(`update_score`, package defaults: {taylor_ranking}); L1: sum of |filter weights| per group, "
        "L2-normalised per layer; random: a uniform random ranking. Accuracy on the test split (a) right "
        "after pruning, with the unpruned network's batch-norm statistics; (b) after "
        f"`kt.recalibrate_batch_norm` re-estimated them from {s['recalibration_batches']} training batches "
        "of 128 (no weight trained; what `kt.compress` does after each pruning step); (c) after the same "
        f"short fine-tuning of (b) (one epoch over {s['fine_tune_images']} training images, SGD momentum 0.9 "
        "at a tenth of the baseline's rate, batch 128), statistics re-estimated again before testing "
        "(as `kt.compress` does before each validation). "
        f"Repeated over several seeds ({seeds_text}; each draws its own Taylor score batches, random "
        "ranking, recalibration batches, fine-tuning images and order; L1's ranking needs no data): "
        "means, with the range over seeds in parentheses; verdicts compare the means, and the verdict "
        "table gives, for each phase, the reduction where Taylor's lead over random is smallest, with "
        "the standard error of that difference over seeds. Without fine-tuning the large cuts leave "
        "collapsed networks whose accuracy swings by tens of points between random rankings, so the "
        f"cheap digits workload runs {FULL_SEEDS['digits-mnist']} seeds in a full run (with 3, its 70% cell without fine-tuning once ranked "
        "Taylor 22.0% below random 28.8%). One seed moves "
        "fine-tuned accuracy by several points (1017 test images; one image is 0.1 point), so a "
        "single run cannot rank criteria that are a point apart."
        + (" Quick mode: small baselines and subsets, a smoke run." if quick else ""),
        "",
        *[f"- {m}" for m in metas],
        "",
        table,
        "",
        v,
        "",
        "![accuracy vs learnables reduction](criteria.png)",
    ]
    _common.write_section("criteria", "\n".join(lines))


_ROW_LINE = re.compile(
    r"^\[(?P<workload>[\w-]+)\] seed (?P<seed>\d+) (?P<criterion>\w+)\s+(?P<reduction>[\d.]+)% fewer learnables: "
    r"one-shot\s+(?P<oneshot>[\d.]+)%\s+BN re-estimated\s+(?P<recalibrated>[\d.]+)%\s+fine-tuned\s+(?P<finetuned>[\d.]+)%")
_BASELINE_LINE = re.compile(r"^\[(?P<workload>[\w-]+)\] (?:cached )?baseline.*accuracy (?P<accuracy>[\d.]+)%")


def rows_from_log(text):
    """The rows and baseline accuracies a full run printed (its targets in REDUCTIONS order).

    For rewriting the docs from a finished run's output, e.g. when a run's
    reporting failed after its measurements; figures are the printed ones
    (two decimals of a percent).
    """
    rows, baselines, seen = [], {}, {}
    for line in text.splitlines():
        m = _ROW_LINE.match(line)
        if m:
            key = (m["workload"], int(m["seed"]), m["criterion"])
            index = seen.get(key, 0)
            seen[key] = index + 1
            rows.append({"workload": key[0], "seed": key[1], "criterion": key[2], "target": REDUCTIONS[index],
                         **{k: float(m[k]) / 100 for k in ("reduction", *PHASES)}})
            continue
        m = _BASELINE_LINE.match(line)
        if m:
            baselines[m["workload"]] = float(m["accuracy"]) / 100
    return rows, baselines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--only", choices=("cifar10", "mnist"))
    parser.add_argument("--normalize", choices=("default", "true", "false"), default="default",
                        help="override TaylorPrunableModel's normalize (diagnostics only)")
    parser.add_argument("--spatial", choices=("default", "mean", "sum"), default="default")
    parser.add_argument("--from-log", metavar="FILE",
                        help="measure nothing: rebuild the tables from the output of an earlier full run")
    parser.add_argument("--origin", default=None,
                        help="with --from-log: the run that printed it (code, date), quoted in the docs")
    parser.add_argument("--seeds", type=int, default=None,
                        help="repeats with different data draws, every workload (default: "
                             + ", ".join(f"{n} for {wl}" for wl, n in FULL_SEEDS.items()) + "; quick 1)")
    args = parser.parse_args(argv)
    options = {}
    if args.normalize != "default":
        options["normalize"] = args.normalize == "true"
    if args.spatial != "default":
        options["spatial_reduction"] = args.spatial
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be at least 1")
    start = time.perf_counter()
    workloads = []
    if args.only in (None, "cifar10"):
        workloads.append(_workloads.resnet20_cifar(args.quick))
    if args.only in (None, "mnist"):
        workloads.append(_workloads.digits_mnist(args.quick))
    rows, metas = [], []
    if args.from_log:
        with open(args.from_log) as f:
            rows, baselines = rows_from_log(f.read())
        measured = seeds_per_workload(rows)
        metas = [f"{w.describe()}: baseline accuracy {100 * baselines[w.name]:.2f}%"
                 for w in workloads if w.name in measured]
    else:
        for w in workloads:
            seeds = args.seeds if args.seeds is not None else (1 if args.quick else FULL_SEEDS.get(w.name, 3))
            r, meta = run_workload(w, args.quick, options, seeds=range(seeds))
            rows += r
            metas.append(f"{w.describe()}: baseline accuracy {100 * meta['accuracy']:.2f}%")
            # Kept so that a failure in the reporting below loses no measurement.
            raw = _workloads.CACHE / "criteria_rows.json"
            raw.parent.mkdir(parents=True, exist_ok=True)
            raw.write_text(json.dumps(rows))
    for x in verdicts(rows):
        print(f"{x['workload']} {x['phase']}: Taylor > random {x['beats_random']} "
              f"(smallest margin {x['random_closest']} points), "
              f"Taylor >= L1 at 50/70% {x['beats_l1_large']} (mean difference {x['l1_margin']} points; "
              f"single runs {x['l1_pairs']})")
    if not args.no_docs and not options:
        plot(rows, _common.DOCS / "criteria.png")
        write_docs(rows, metas, args.quick,
                   origin=(args.origin or "run not named") if args.from_log else None)
    n_seeds = {wl: len(s) for wl, s in seeds_per_workload(rows).items()}
    summary = [{"benchmark": "criteria", "what": f"{x['workload']}, {PHASE_TITLES[x['phase']]}",
                "result": f"Taylor > random {x['beats_random']}, Taylor >= L1 at 50/70% {x['beats_l1_large']} "
                          f"(smallest Taylor - random {x['random_closest']}; Taylor - L1 {x['l1_margin']} "
                          f"points; mean of {n_seeds[x['workload']]} seeds)",
                "target": "Taylor > random everywhere, >= L1 at large reductions",
                "met": "yes" if x["met"] else "no"}
               for x in verdicts(rows)]
    if not options and not args.only and not args.no_docs:
        _workloads.save_summary("criteria", {"rows": summary, "seconds": time.perf_counter() - start})
    print(f"criteria finished in {time.perf_counter() - start:.0f} s")
    return rows


if __name__ == "__main__":
    main()
