"""keras-taylor's MACs goal vs Torch-Pruning's MACs-target loop, at equal MACs.

The setting of `benchmarks.torch_pruning_compare` (the ResNet-20 twin in
PyTorch with the Keras baseline's weights copied in, the real CIFAR-10
subset, one fine-tuning epoch per iteration over the same training images,
SGD momentum 0.9 at lr 0.01, batch 128, test split as validation), with the
goal counted in multiply-accumulates and channel counts kept multiples of 8:

* keras-taylor: `kt.compress(..., cost="macs", goal=max(targets),
  increment=0.1, round_to=8, fine_tune_epochs=1, output="last-iteration")`
  with its defaults: scores gathered during fine-tuning, and after each
  step the batch-norm statistics re-estimated from 10 training batches
  (`recalibration_batches=10`: forward passes only, no weight trained);
  iteration k aims at k tenths fewer MACs than the
  unpruned model's, the channel groups with the least importance per MAC
  saved first.
* Torch-Pruning: its MACs-target loop as in its examples: a global
  `MetaPruner` with `TaylorImportance()`, `round_to=8` and a linear schedule
  of many small steps (`pruning_ratio=0.9`, `iterative_steps=300`); per
  iteration the loss gradients of `score_batches` training batches are
  accumulated, then `pruner.step()` is called until
  `tp.utils.count_ops_and_params` says the MACs fell by as much as
  keras-taylor's just did; then the same fine-tuning epoch.

The two loops run interleaved in one fresh process per seed (the seed sets
both sides' data order). Accuracy is read at the iterations where
keras-taylor's MACs reduction first reaches each target; the MACs reduction
each side actually reached is reported with each side's own counter (their
counts of the unpruned twin are given too).

With `--ranking importance`, keras-taylor ranks channel groups by Taylor
importance alone, as Torch-Pruning's loop does (`kt.compress(...,
ranking="importance")`; the MACs goal then only says when to stop); its
results go to their own section of docs/benchmarks.md. With
`--score-batches N`, keras-taylor scores on N fresh training batches before
each step (`kt.compress(..., score_batches=N)`), as Torch-Pruning's loop
does, instead of gathering scores during the fine-tuning epoch. With
`--normalize l2` or `--normalize mean`, keras-taylor normalises the scores
per layer before ranking them (`kt.compress(..., normalize=...)`);
Torch-Pruning's `TaylorImportance()` divides each group's scores by their
mean by default. With `--recalibration-batches 0`, keras-taylor does not
re-estimate batch-norm statistics after a step, as Torch-Pruning's loop
does not (the setting of this benchmark's runs before 2026-12-07 21:50 UTC).

    python -m benchmarks.torch_pruning_macs [--quick] [--seeds N] [--targets 0.3 0.5 0.7] [--ranking importance]
        [--score-batches 10] [--normalize l2|mean] [--recalibration-batches 0]
"""

import argparse
import time

from benchmarks import _common, _workloads  # noqa: F401  (_workloads first: offline data)
from benchmarks.torch_pruning_compare import (
    copy_keras_weights,
    in_fresh_process,
    nchw,
    torch_accuracy,
    torch_resnet20,
    torch_train_epoch,
)

ROUND_TO = 8
RECALIBRATION_BATCHES = 10  # kt.compress's default: what a user gets


def settings(quick):
    return {"increment": 0.1, "score_batches": 2 if quick else 10, "fine_tune_epochs": 1, "lr": 0.01,
            "train_subset": 1024 if quick else 4096, "seeds": 1 if quick else 2,
            "pruning_ratio": 0.9, "iterative_steps": 300}


def torch_macs(net, example):
    """MACs by Torch-Pruning's counter, in eval mode (a counting pass must not move batch-norm statistics)."""
    import torch
    import torch_pruning as tp

    was_training = net.training
    net.eval()
    with torch.no_grad():
        macs, _ = tp.utils.count_ops_and_params(net, example)
    net.train(was_training)
    return float(macs)


class TorchMacsSide:
    """Torch-Pruning's MACs-target loop, one iteration at a time."""

    def __init__(self, base, w, data, s, seed):
        import numpy as np
        import torch
        import torch_pruning as tp

        (xt, yt), (self.xs, self.ys) = data
        self.w, self.s = w, s
        torch.manual_seed(seed)
        self.net = copy_keras_weights(base, torch_resnet20(w.input_shape))
        self.example = torch.randn(1, w.input_shape[-1], *w.input_shape[:2])
        self.base_acc = torch_accuracy(self.net, self.xs, self.ys)
        self.original = torch_macs(self.net, self.example)
        self.xt, self.yt = nchw(xt), torch.from_numpy(yt)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.pruner = tp.pruner.MetaPruner(
            self.net, self.example, importance=tp.importance.TaylorImportance(), global_pruning=True,
            pruning_ratio=s["pruning_ratio"], iterative_steps=s["iterative_steps"], max_pruning_ratio=0.95,
            round_to=ROUND_TO, ignored_layers=[self.net.fc],
        )
        self.order = np.random.default_rng(seed).permutation(len(xt))
        self.rows = []

    def reduction(self):
        return 1 - torch_macs(self.net, self.example) / self.original

    def iteration(self, target):
        """Scores, steps until the MACs fell by `target`, fine-tunes one epoch, validates."""
        import torch

        net, w, s = self.net, self.w, self.s
        net.train()
        net.zero_grad()
        for b in range(s["score_batches"]):
            idx = torch.from_numpy(self.order[b * w.batch:(b + 1) * w.batch])
            self.loss_fn(net(self.xt[idx]), self.yt[idx]).backward()
        steps = 0
        while self.reduction() < target - 1e-9 and self.pruner.current_step < self.pruner.iterative_steps:
            self.pruner.step()
            steps += 1
        reached = self.reduction()
        opt = torch.optim.SGD(net.parameters(), lr=s["lr"], momentum=0.9)
        t = time.perf_counter()
        for _ in range(s["fine_tune_epochs"]):
            torch_train_epoch(net, opt, self.loss_fn, self.xt, self.yt, w.batch)
        fit_s = time.perf_counter() - t
        acc = torch_accuracy(net, self.xs, self.ys)
        widths = [m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        self.rows.append({"iteration": len(self.rows) + 1, "macs_reduction": reached, "accuracy": acc,
                          "tp_steps": steps, "fit_s": fit_s, "widths": widths})
        print(f"[torch-pruning] iteration {len(self.rows)}: {100 * reached:.1f}% fewer MACs "
              f"(target {100 * target:.1f}%, {steps} steps), acc {100 * acc:.2f}%, widths {sorted(set(widths))}",
              flush=True)


def run(base, w, data, s, targets, seed, variant):
    """Both loops, interleaved, for one seed; the rows of each side."""
    import keras

    import keras_taylor as kt

    (xt, yt), (xs, ys) = data
    keras.utils.set_random_seed(w.seed)
    model = _workloads.fresh_copy(base, w)
    torch_side = TorchMacsSide(base, w, data, s, seed)
    unpruned = kt.TaylorPrunableModel(model)
    kt_macs = float(unpruned.cost_table("macs").total(unpruned.alive))

    class Interleave(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            # Against the unpruned model's MACs: after a rebuild, the model
            # fine-tuned is a smaller one whose own "unpruned" is not the original.
            pm = self.model
            torch_side.iteration(1 - pm.cost_table("macs").total(pm.alive) / kt_macs)

    pruned, info = kt.compress(
        model, (xt, yt), goal=max(targets), cost="macs", round_to=ROUND_TO, increment=s["increment"],
        fine_tune_epochs=s["fine_tune_epochs"], validation_data=(xs, ys), metric="accuracy",
        output="last-iteration", batch_size=w.batch, callbacks=[Interleave()], verbose=0, seed=seed,
        **dict({"recalibration_batches": RECALIBRATION_BATCHES}, **variant),
    )
    ph, vh = info.pruning_history, info.validation_history
    rows = []
    for it in ph.iteration[ph.iteration > 0]:
        acc = float(vh[(vh.iteration == it) & vh.is_final].metric.iloc[-1])
        reduction = float(ph.macs_reduction[ph.iteration == it].iloc[0])
        rows.append({"iteration": int(it), "macs_reduction": reduction, "accuracy": acc})
        print(f"[keras-taylor] iteration {it}: {100 * reduction:.1f}% fewer MACs, acc {100 * acc:.2f}%", flush=True)
    widths = sorted({layer.filters for layer in pruned.layers if isinstance(layer, keras.layers.Conv2D)})
    return {"seed": seed, "keras": rows, "torch": torch_side.rows, "kt_widths": widths,
            "kt_macs": kt_macs, "tp_macs": torch_side.original, "torch_base_acc": torch_side.base_acc}


def run_isolated(quick, targets, seed, variant):
    """`run` in this (fresh) process: loads the cached baseline and data itself."""
    import torch

    torch.set_num_threads(2)
    s = settings(quick)
    w, base, _, data = _workloads.cifar_fine_tuning(quick, s["train_subset"])
    return run(base, w, data, s, targets, seed, variant)


def at_targets(runs, targets):
    """Per target: the iteration where keras-taylor first reached it, both sides' mean reduction and accuracy."""
    import numpy as np

    rows = []
    for target in targets:
        per_seed = []
        for r in runs:
            hit = next((i for i, row in enumerate(r["keras"]) if row["macs_reduction"] >= target - 1e-3), None)
            if hit is not None and hit < len(r["torch"]):
                per_seed.append((r["keras"][hit], r["torch"][hit]))
        if not per_seed:
            continue
        kt_acc = [k["accuracy"] for k, _ in per_seed]
        tp_acc = [t["accuracy"] for _, t in per_seed]
        rows.append({
            "target": target, "iteration": [k["iteration"] for k, _ in per_seed],
            "kt_reduction": float(np.mean([k["macs_reduction"] for k, _ in per_seed])),
            "tp_reduction": float(np.mean([t["macs_reduction"] for _, t in per_seed])),
            "kt_acc": float(np.mean(kt_acc)), "tp_acc": float(np.mean(tp_acc)),
            "kt_range": (min(kt_acc), max(kt_acc)), "tp_range": (min(tp_acc), max(tp_acc)),
        })
    return rows


def _pct_range(mean, span):
    return f"{100 * mean:.2f} ({100 * span[0]:.2f}-{100 * span[1]:.2f})"


def write_docs(res, quick):
    s, runs, rows = settings(quick), res["runs"], res["rows"]
    first = runs[0]
    wins = sum(r["kt_acc"] >= r["tp_acc"] for r in rows)
    table = _common.markdown_table(
        ["fewer MACs target", "iteration (per seed)", "kt MACs reduction %", "TP MACs reduction %",
         "kt accuracy %", "TP accuracy %"],
        [[f"{100 * r['target']:.0f}%", ", ".join(map(str, r["iteration"])), f"{100 * r['kt_reduction']:.1f}",
          f"{100 * r['tp_reduction']:.1f}", _pct_range(r["kt_acc"], r["kt_range"]),
          _pct_range(r["tp_acc"], r["tp_range"])] for r in rows],
    )
    variant = res["variant"]
    ranking, score_batches, normalize = (variant.get(k) for k in ("ranking", "score_batches", "normalize"))
    lines = [
        "## keras-taylor's MACs goal vs Torch-Pruning's MACs-target loop (round_to=8)"
        + (f", keras-taylor with {' and '.join(f'{k}={v!r}' for k, v in variant.items())}" if variant else ""),
        "",
        *_workloads.header(quick),
        f"PyTorch {res['torch_version']}, torch-pruning {res['tp_version']} (CPU, 2 threads); machine load "
        f"(1-minute average) {res['load'][0]:.1f} at the start and {res['load'][1]:.1f} at the end. The setting of "
        "the side-by-side above (ResNet-20 twin with the Keras baseline's weights copied in: Keras test accuracy "
        f"{100 * res['keras_base_acc']:.2f}%, PyTorch twin {100 * first['torch_base_acc']:.2f}%; real CIFAR-10 "
        f"subset; one fine-tuning epoch per iteration over {s['train_subset']} training images, SGD momentum 0.9, "
        f"lr {s['lr']}, batch 128; test split as validation). keras-taylor: `kt.compress(cost=\"macs\", "
        f"goal={max(res['targets'])}, increment={s['increment']}, round_to=8, fine_tune_epochs=1, "
        f"recalibration_batches={variant.get('recalibration_batches', RECALIBRATION_BATCHES)}"
        f"{''.join(f', {k}={v!r}' for k, v in variant.items() if k != 'recalibration_batches')})`, "
        + (f"scores from {score_batches} fresh training batches before each step" if score_batches
           else "default scoring (Taylor scores gathered during fine-tuning)")
        + (f", scores normalised per layer ({normalize})" if normalize else "")
        + (" (channel groups ranked by Taylor importance alone, as Torch-Pruning's)" if ranking == "importance"
           else " (channel groups ranked by importance per MAC saved)") + ". Torch-Pruning: a global `MetaPruner` with "
        f"`TaylorImportance()`, `round_to=8`, `pruning_ratio={s['pruning_ratio']}`, "
        f"`iterative_steps={s['iterative_steps']}` (its linear schedule), scoring on {s['score_batches']} "
        "fresh training batches of 128, then `pruner.step()` until `tp.utils.count_ops_and_params` shows the "
        "MACs reduction keras-taylor just reached, then the same epoch. Both loops interleaved in one process "
        f"per seed; {len(runs)} seed{'s' if len(runs) > 1 else ''} (data order of both sides), so the same "
        "number of fine-tuning epochs has been spent at every row. MACs counted by each side's own counter: "
        f"unpruned twin {first['kt_macs'] / 1e6:.2f} M (keras-taylor, `kt.analyze`) and "
        f"{first['tp_macs'] / 1e6:.2f} M (Torch-Pruning). Accuracy: mean over seeds (range).",
        "",
        table,
        "",
        f"**keras-taylor's mean accuracy is equal or better at {wins}/{len(rows)} MACs targets.** Convolution "
        f"widths left at the end (seed 0): keras-taylor {first['kt_widths']}, Torch-Pruning "
        f"{sorted(set(first['torch'][-1]['widths'])) if first['torch'] else []} (all multiples of 8)."
        + (" Quick mode: a smoke run (a 2-epoch baseline on 2000 images, 1024 fine-tuning images, 2 score "
           "batches)." if quick else ""),
    ]
    _common.write_section(section_name(variant), "\n".join(lines))


def section_name(variant):
    """The docs section of a keras-taylor variant (the names of earlier runs' sections kept)."""
    name = "torch_pruning_macs" + (f"_{variant['ranking']}" if variant.get("ranking") else "")
    name += "_fresh_scores" if variant.get("score_batches") else ""
    name += f"_normalize_{variant['normalize']}" if variant.get("normalize") else ""
    return name + (f"_recalibration_{variant['recalibration_batches']}" if "recalibration_batches" in variant else "")


def main(argv=None):
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 2; 1 with --quick)")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.3, 0.5, 0.7],
                        help="fractions of the MACs to remove (default 0.3 0.5 0.7)")
    parser.add_argument("--ranking", default=None, choices=["importance", "importance_per_cost"],
                        help="keras-taylor's ranking (default: its MACs default, importance per MAC saved)")
    parser.add_argument("--score-batches", type=int, default=None,
                        help="keras-taylor scores on this many fresh batches before each step (default: "
                             "scores gathered during fine-tuning)")
    parser.add_argument("--normalize", default=None, choices=["l2", "mean"],
                        help="keras-taylor normalises scores per layer this way (default: raw scores)")
    parser.add_argument("--recalibration-batches", type=int, default=None,
                        help=f"keras-taylor's batch-norm re-estimation after a step (default: its own, "
                             f"{RECALIBRATION_BATCHES}; 0: none, as Torch-Pruning's loop)")
    args = parser.parse_args(argv)
    variant = {k: v for k, v in (("ranking", args.ranking), ("score_batches", args.score_batches),
                                 ("normalize", args.normalize)) if v}
    if args.recalibration_batches is not None:
        variant["recalibration_batches"] = args.recalibration_batches
    import torch
    from importlib import metadata

    start, load_start = time.perf_counter(), os.getloadavg()[0]
    s = settings(args.quick)
    _, _, meta, _ = _workloads.cifar_fine_tuning(args.quick, s["train_subset"])  # trains the baseline once if needed
    from benchmarks import torch_pruning_macs as this  # importable by name in the child, even under -m

    targets = sorted(args.targets)
    runs = [in_fresh_process(this.run_isolated, args.quick, targets, seed, variant)
            for seed in range(args.seeds or s["seeds"])]
    res = {"runs": runs, "rows": at_targets(runs, targets), "targets": targets, "keras_base_acc": meta["accuracy"],
           "torch_version": torch.__version__, "tp_version": metadata.version("torch-pruning"),
           "load": (load_start, os.getloadavg()[0]), "variant": variant}
    for r in res["rows"]:
        print(f"target {100 * r['target']:.0f}% fewer MACs: kt {100 * r['kt_reduction']:.1f}% reached, acc "
              f"{100 * r['kt_acc']:.2f}% | TP {100 * r['tp_reduction']:.1f}% reached, acc {100 * r['tp_acc']:.2f}%")
    if not args.no_docs:
        write_docs(res, args.quick)
    wins = sum(r["kt_acc"] >= r["tp_acc"] for r in res["rows"])
    _workloads.save_summary(section_name(variant), {"rows": [{
        "benchmark": section_name(variant), "what": "accuracy at equal MACs, round_to=8 (MACs goal vs TP's MACs loop)",
        "result": f"kt >= TP at {wins}/{len(res['rows'])} targets (mean of {len(runs)} seeds)",
        "target": "equal or better everywhere", "met": "yes" if wins == len(res["rows"]) else "no"}],
        "seconds": time.perf_counter() - start})
    print(f"torch_pruning_macs finished in {time.perf_counter() - start:.0f} s")
    return res


if __name__ == "__main__":
    main()
