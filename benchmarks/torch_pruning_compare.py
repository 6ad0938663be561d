"""keras-taylor vs Torch-Pruning 1.6 (DepGraph + TaylorImportance), side by side.

The PyTorch twin has the CIFARNet twin's exact architecture (ResNet-20,
projection shortcuts, BN eps 1e-3, TensorFlow's asymmetric "same" padding on
strided convolutions) and starts from the very same trained baseline: the
Keras baseline's weights are copied into it and its test accuracy is checked
against the Keras one. Both then run the same iterative loop on the same data
(the real CIFAR-10 subset): score, prune about `increment` of the original
learnables, fine-tune one epoch
over a fixed subset of the training images (SGD
momentum 0.9 at lr 0.01, batch 128, no augmentation), validate on the
test split, until `goal`.

* keras-taylor: `kt.compress(..., increment, fine_tune_epochs=1,
  output="last-iteration", recalibration_batches=0)` (like the PyTorch
  side, no batch-norm re-estimation between pruning and fine-tuning), run with its default scoring (Taylor scores
  gathered by `train_step` during fine-tuning; before the first step,
  training batches until the choice settles) and, unless
  `--kt-scoring default` or `--quick`, again with `score_batches=S` fresh
  batches, as Torch-Pruning scores; each keras-taylor run has its own
  Torch-Pruning run interleaved with it.
* Torch-Pruning: `tp.pruner.MetaPruner(model, example_inputs,
  importance=tp.importance.TaylorImportance(), global_pruning=True,
  pruning_ratio=0.95, iterative_steps=200, max_pruning_ratio=0.95)` on its
  DependencyGraph; per iteration, gradients of the loss on the same S
  batches are accumulated, then `pruner.step()` is called with the next
  step's global channel ratio set so that the learnables reach the same
  reduction as keras-taylor's (one or two steps; see `step_to`).

Reported: accuracy at equal learnables reduction, and the wall time of each
pruning iteration (scoring + pruning + surgery + validation, i.e. everything
but the fine-tuning epoch; the first iteration also carries each side's
setup: data conversion, wrapping or DependencyGraph build, baseline
validation) and of the fine-tuning epoch, in one run with the
two loops' iterations interleaved (this VM's speed drifts over minutes).
Before the loops, the same run times one plain training epoch of the
unpruned baseline in each framework (`framework_floor`): the share of the
time ratio that no pruning tool can change.

Every comparison is repeated with `--seeds` data orders (3 by default),
each seed in a fresh process: one fine-tuning epoch moves test accuracy by
a point or more from one data order to the next, so accuracy is compared on
the seeds' means.

    python -m benchmarks.torch_pruning_compare [--quick] [--seeds N]
"""

import argparse
import time

from benchmarks import _common, _workloads  # noqa: F401  (_workloads first: offline data)


def settings(quick):
    return {"goal": 0.2 if quick else 0.5, "increment": 0.1, "score_batches": 2 if quick else 10,
            "fine_tune_epochs": 1, "lr": 0.01, "train_subset": 1024 if quick else 4096, "seeds": 1 if quick else 3}


# ----------------------------------------------------------------- the twin
def torch_resnet20(input_shape, num_classes=10, widths=(16, 32, 64), units=3):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SamePad(nn.Module):
        """TensorFlow "same" padding for a 3x3 stride-2 conv on even sizes."""

        def forward(self, x):
            return F.pad(x, (0, 1, 0, 1))

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.1)

    class Unit(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.pad = SamePad() if stride == 2 else nn.Identity()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, padding=0 if stride == 2 else 1, bias=False)
            self.bn1 = bn(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, padding=1, bias=False)
            self.bn2 = bn(c_out)
            self.skip = None
            if stride != 1 or c_in != c_out:
                self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), bn(c_out))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(self.pad(x))))
            y = self.bn2(self.conv2(y))
            s = x if self.skip is None else self.skip(x)
            return torch.relu(s + y)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(input_shape[-1], widths[0], 3, padding=1, bias=False)
            self.bn = bn(widths[0])
            layers, c = [], widths[0]
            for s, width in enumerate(widths):
                for u in range(units):
                    layers.append(Unit(c, width, 2 if (s > 0 and u == 0) else 1))
                    c = width
            self.units = nn.Sequential(*layers)
            self.fc = nn.Linear(c, num_classes)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x)))
            x = self.units(x)
            return self.fc(x.mean(dim=(2, 3)))

    return Net()


def copy_keras_weights(keras_model, net, units=3, stages=3):
    """Copies the Keras ResNet-20's weights into the PyTorch twin."""
    import numpy as np
    import torch

    def conv(name, module):
        k = keras_model.get_layer(name).get_weights()[0]
        module.weight.data = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))

    def bn(name, module):
        g, b, m, v = keras_model.get_layer(name).get_weights()
        for t, a in ((module.weight, g), (module.bias, b)):
            t.data = torch.from_numpy(a.copy())
        module.running_mean.data = torch.from_numpy(m.copy())
        module.running_var.data = torch.from_numpy(v.copy())

    conv("convInp", net.conv)
    bn("BNInp", net.bn)
    i = 0
    for s in range(1, stages + 1):
        for u in range(1, units + 1):
            unit = net.units[i]
            conv(f"S{s}U{u}_conv1", unit.conv1)
            bn(f"S{s}U{u}_BN1", unit.bn1)
            conv(f"S{s}U{u}_conv2", unit.conv2)
            bn(f"S{s}U{u}_BN2", unit.bn2)
            if unit.skip is not None:
                conv(f"skipConv{s}", unit.skip[0])
                bn(f"skipBN{s}", unit.skip[1])
            i += 1
    w, b = keras_model.get_layer("fcFinal").get_weights()
    net.fc.weight.data = torch.from_numpy(np.ascontiguousarray(w.T))
    net.fc.bias.data = torch.from_numpy(b.copy())
    return net


def nchw(x):
    """A PyTorch NCHW tensor of a Keras NHWC image array."""
    import torch

    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def torch_accuracy(net, x, y, batch=256):
    import torch

    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = net(nchw(x[i:i + batch]))
            correct += int((out.argmax(1).numpy() == y[i:i + batch]).sum())
    return correct / len(x)


def torch_learnables(net):
    return int(sum(p.numel() for p in net.parameters() if p.requires_grad))


# --------------------------------------------------------------- the runs
def step_to(pruner, net, original, target):
    """Global `pruner.step()` calls until the learnables fall by `target`.

    MetaPruner's global ratio is a cumulative fraction of channels, not of
    learnables; each call sets the next step's channel ratio from a
    learnables ~ (1 - ratio)^2 estimate, corrected by what the last step
    achieved, so one or two steps usually land on the target.
    """
    steps = 0
    goal = 1 - target
    while torch_learnables(net) > original * goal + 0.5 and pruner.current_step < pruner.iterative_steps:
        kept = torch_learnables(net) / original
        done = pruner.per_step_pruning_ratio[pruner.current_step]
        ratio = min(0.95, done + max(0.002, kept ** 0.5 - goal ** 0.5))
        pruner.per_step_pruning_ratio[pruner.current_step + 1] = ratio
        pruner.step()
        steps += 1
    return steps


def torch_train_epoch(net, opt, loss_fn, xt, yt, batch):
    """One shuffled epoch of plain PyTorch training."""
    import torch

    net.train()
    perm = torch.randperm(len(xt))
    for i in range(0, len(perm), batch):
        idx = perm[i:i + batch]
        opt.zero_grad()
        loss_fn(net(xt[idx]), yt[idx]).backward()
        opt.step()


def framework_floor(base, w, data, s, rounds):
    """Seconds of one plain training epoch, Keras `fit` vs a PyTorch loop.

    No pruning at all: the unpruned baseline trained on the same images with
    the same optimiser and batch, one warm-up epoch each (Keras traces its
    train function in it), then `rounds` timed epochs, interleaved. Their
    ratio is the part of the comparison that belongs to the frameworks, not
    to either pruning tool.
    """
    import numpy as np
    import torch

    (xt, yt), _ = data
    model = _workloads.fresh_copy(base, w)
    net = copy_keras_weights(base, torch_resnet20(w.input_shape))
    opt = torch.optim.SGD(net.parameters(), lr=s["lr"], momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    txt = nchw(xt)
    tyt = torch.from_numpy(yt)
    times = {"keras": [], "torch": []}
    for r in range(rounds + 1):
        t = time.perf_counter()
        model.fit(xt, yt, batch_size=w.batch, epochs=1, shuffle=True, verbose=0)
        keras_s = time.perf_counter() - t
        t = time.perf_counter()
        torch_train_epoch(net, opt, loss_fn, txt, tyt, w.batch)
        torch_s = time.perf_counter() - t
        if r:  # round 0 warms up
            times["keras"].append(keras_s)
            times["torch"].append(torch_s)
    floor = {k: float(np.median(v)) for k, v in times.items()}
    floor["rounds"] = rounds
    print(f"[framework floor] plain training epoch: Keras fit {floor['keras']:.1f} s, "
          f"PyTorch loop {floor['torch']:.1f} s (ratio {floor['keras'] / floor['torch']:.2f})", flush=True)
    return floor


class TorchSide:
    """Torch-Pruning's loop, one iteration at a time (see `run`)."""

    def __init__(self, base, w, data, s, seed):
        import numpy as np
        import torch
        import torch_pruning as tp

        (xt, yt), (self.xs, self.ys) = data
        self.w, self.s = w, s
        torch.manual_seed(seed)
        self.net = copy_keras_weights(base, torch_resnet20(w.input_shape))
        # Timed like the start of kt.compress, which turns the arrays into
        # a dataset, wraps the model and validates the baseline inside
        # its iteration 1: the same work here goes into Torch-Pruning's.
        start = time.perf_counter()
        self.base_acc = torch_accuracy(self.net, self.xs, self.ys)
        self.original = torch_learnables(self.net)
        example = torch.randn(1, w.input_shape[-1], *w.input_shape[:2])
        self.xt = nchw(xt)
        self.yt = torch.from_numpy(yt)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.pruner = tp.pruner.MetaPruner(
            self.net, example, importance=tp.importance.TaylorImportance(), global_pruning=True,
            pruning_ratio=0.95, iterative_steps=200, max_pruning_ratio=0.95, ignored_layers=[self.net.fc],
            iterative_pruning_ratio_scheduler=lambda ratio, steps: [0.0] * (steps + 1),
        )
        self.setup_s = time.perf_counter() - start
        self.order = np.random.default_rng(seed).permutation(len(xt))
        self.rows = []

    def iteration(self, target):
        import torch

        net, w, s, loss_fn = self.net, self.w, self.s, self.loss_fn
        t0 = time.perf_counter()
        net.train()
        net.zero_grad()
        for b in range(s["score_batches"]):
            idx = torch.from_numpy(self.order[b * w.batch:(b + 1) * w.batch])
            loss_fn(net(self.xt[idx]), self.yt[idx]).backward()
        steps = step_to(self.pruner, net, self.original, target)
        acc0 = torch_accuracy(net, self.xs, self.ys)
        prune_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        opt = torch.optim.SGD(net.parameters(), lr=s["lr"], momentum=0.9)
        for _ in range(s["fine_tune_epochs"]):
            torch_train_epoch(net, opt, loss_fn, self.xt, self.yt, w.batch)
        fit_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        acc = torch_accuracy(net, self.xs, self.ys)
        prune_s += time.perf_counter() - t2
        if not self.rows:
            prune_s += self.setup_s
        learn = torch_learnables(net)
        it = len(self.rows) + 1
        self.rows.append({"iteration": it, "reduction": 1 - learn / self.original, "accuracy": acc,
                          "accuracy_before_ft": acc0, "prune_s": prune_s, "fit_s": fit_s, "tp_steps": steps})
        print(f"[torch-pruning] iteration {it}: {100 * (1 - learn / self.original):.1f}% fewer learnables, "
              f"acc {100 * acc:.2f}% (before fine-tuning {100 * acc0:.2f}%), "
              f"prune {prune_s:.1f} s, fine-tune {fit_s:.1f} s", flush=True)


def run_isolated(quick, score_batches, seed):
    """`run` in this (fresh) process: loads the cached baseline and data itself."""
    import torch

    torch.set_num_threads(2)
    s = settings(quick)
    w, base, _, data = _workloads.cifar_fine_tuning(quick, s["train_subset"])
    return run(base, w, data, s, score_batches, seed)


def in_fresh_process(fn, *args):
    """`fn(*args)` in a new Python process.

    A second keras-taylor run in a process that already ran one (with its
    models, traced functions and Torch-Pruning's modules still allocated)
    ran up to 2x slower than the same run alone; each comparison gets a
    process of its own, so neither inherits the other's state.
    """
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def scoring_name(score_batches):
    return "default scoring" if score_batches is None else f"score_batches={score_batches}"


def scoring_label(score_batches):
    if score_batches is None:
        return ("scores gathered during fine-tuning, and before the first step on training batches until "
                "the choice settles (kt default, `score_batches=None`)")
    return f"fresh scores on {score_batches} batches before each step, as Torch-Pruning (`score_batches={score_batches}`)"


def run(base, w, data, s, score_batches, seed):
    """Both loops, their iterations interleaved, for one seed.

    This VM's speed drifts by tens of percent over minutes, so the two are
    timed side by side: after each keras-taylor iteration (from a callback at
    the end of its fine-tuning, outside its clock), Torch-Pruning runs its own
    iteration to the reduction keras-taylor just reached. Torch-Pruning
    always scores on `s["score_batches"]` fresh batches (it has no score
    gathering inside training); keras-taylor scores as `score_batches` says.
    `seed` sets both sides' data order (keras-taylor's `compress(seed=)`,
    Torch-Pruning's `torch.manual_seed` and score batches).
    """
    import keras
    import numpy as np

    import keras_taylor as kt

    (xt, yt), (xs, ys) = data
    k_learn = _workloads.learnables(base)
    keras.utils.set_random_seed(w.seed)
    model = _workloads.fresh_copy(base, w)
    torch_side = TorchSide(base, w, data, s, seed)
    marks = {"begin": [], "end": [], "resume": []}

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            marks["begin"].append(time.perf_counter())

        def on_train_end(self, logs=None):
            marks["end"].append(time.perf_counter())
            torch_side.iteration(1 - self.model.num_learnables / k_learn)
            marks["resume"].append(time.perf_counter())

    start = time.perf_counter()
    pruned, info = kt.compress(
        model, (xt, yt), goal=s["goal"], increment=s["increment"], fine_tune_epochs=s["fine_tune_epochs"],
        score_batches=score_batches, validation_data=(xs, ys), metric="accuracy",
        output="last-iteration", batch_size=w.batch, callbacks=[Clock()], verbose=0, seed=seed,
        # Like for like: the PyTorch side fine-tunes with the batch-norm
        # statistics it has, without re-estimating them after each step.
        recalibration_batches=0,
    )
    ph = info.pruning_history
    vh = info.validation_history
    rows = []
    prev = start
    for i, it in enumerate(ph.iteration[ph.iteration > 0]):
        acc = float(vh[(vh.iteration == it) & vh.is_final].metric.iloc[-1])
        acc0 = float(vh[(vh.iteration == it) & (vh.step == 0)].metric.iloc[0])
        rows.append({"iteration": int(it), "reduction": float(ph.learnables_reduction[ph.iteration == it].iloc[0]),
                     "accuracy": acc, "accuracy_before_ft": acc0,
                     "prune_s": marks["begin"][i] - prev,  # scoring, pruning, any rebuild, validation
                     "fit_s": marks["end"][i] - marks["begin"][i]})
        prev = marks["resume"][i]
        print(f"[keras-taylor] iteration {it}: {100 * rows[-1]['reduction']:.1f}% fewer learnables, "
              f"acc {100 * acc:.2f}% (before fine-tuning {100 * acc0:.2f}%), prune {rows[-1]['prune_s']:.1f} s, fine-tune {rows[-1]['fit_s']:.1f} s", flush=True)
    t_rows = torch_side.rows
    diffs = [k["accuracy"] - t["accuracy"] for k, t in zip(rows, t_rows)]
    result = {
        "score_batches": score_batches, "seed": seed, "keras": rows, "torch": t_rows, "rebuilt": list(info.rebuilt_iterations),
        "torch_base_acc": torch_side.base_acc, "torch_learnables": torch_side.original,
        "keras_learnables": k_learn, "tp_setup_s": torch_side.setup_s,
        "kt_wins": sum(d >= 0 for d in diffs), "mean_diff": 100 * float(np.mean(diffs)),
        "medians": {
            "kt_prune": float(np.median([r["prune_s"] for r in rows])),
            "tp_prune": float(np.median([r["prune_s"] for r in t_rows])),
            "kt_iter": float(np.median([r["prune_s"] + r["fit_s"] for r in rows])),
            "tp_iter": float(np.median([r["prune_s"] + r["fit_s"] for r in t_rows])),
            "kt_total": float(sum(r["prune_s"] + r["fit_s"] for r in rows)),
            "tp_total": float(sum(r["prune_s"] + r["fit_s"] for r in t_rows)),
        },
    }
    m = result["medians"]
    print(f"[{scoring_label(score_batches)}, seed {seed}] accuracy: keras-taylor >= Torch-Pruning at {result['kt_wins']}/{len(diffs)} "
          f"reductions, mean diff {result['mean_diff']:+.2f} points; prune step kt {m['kt_prune']:.2f} s vs TP "
          f"{m['tp_prune']:.2f} s; iteration kt {m['kt_iter']:.1f} s vs TP {m['tp_iter']:.1f} s; all iterations kt "
          f"{m['kt_total']:.1f} s vs TP {m['tp_total']:.1f} s (ratio {m['kt_total'] / m['tp_total']:.2f})", flush=True)
    return result


def combine(runs):
    """One scoring mode's seeds merged: per-iteration means and ranges, times over all seeds.

    Accuracy is compared on the seeds' mean at each iteration (a single
    fine-tuning epoch moves the test accuracy by a point or more from one
    data order to the next); time on the sum of all iterations of all seeds.
    """
    import numpy as np

    n = min(len(r["keras"]) for r in runs)
    per_iteration = []
    for i in range(n):
        k = [r["keras"][i] for r in runs]
        t = [r["torch"][i] for r in runs]
        row = {"iteration": i + 1}
        for side, items in (("kt", k), ("tp", t)):
            acc = [x["accuracy"] for x in items]
            row.update({
                f"{side}_reduction": float(np.mean([x["reduction"] for x in items])),
                f"{side}_accuracy": float(np.mean(acc)), f"{side}_min": min(acc), f"{side}_max": max(acc),
                f"{side}_before_ft": float(np.mean([x["accuracy_before_ft"] for x in items])),
                f"{side}_prune_s": float(np.median([x["prune_s"] for x in items])),
                f"{side}_fit_s": float(np.median([x["fit_s"] for x in items])),
            })
        per_iteration.append(row)
    pairs = [(r["keras"][i]["accuracy"], r["torch"][i]["accuracy"]) for r in runs for i in range(n)]
    every = {side: [x for r in runs for x in r[side][:n]] for side in ("keras", "torch")}
    first = runs[0]
    return {
        "score_batches": first["score_batches"], "seeds": [r["seed"] for r in runs], "iterations": per_iteration,
        "rebuilt": [r["rebuilt"] for r in runs], "torch_base_acc": first["torch_base_acc"],
        "torch_learnables": first["torch_learnables"], "keras_learnables": first["keras_learnables"],
        "tp_setup_s": float(np.median([r["tp_setup_s"] for r in runs])),
        "kt_wins": sum(row["kt_accuracy"] >= row["tp_accuracy"] for row in per_iteration),
        "pair_wins": sum(a >= b for a, b in pairs), "pairs": len(pairs),
        "mean_diff": 100 * float(np.mean([a - b for a, b in pairs])),
        "medians": {
            "kt_prune": float(np.median([x["prune_s"] for x in every["keras"]])),
            "tp_prune": float(np.median([x["prune_s"] for x in every["torch"]])),
            "kt_iter": float(np.median([x["prune_s"] + x["fit_s"] for x in every["keras"]])),
            "tp_iter": float(np.median([x["prune_s"] + x["fit_s"] for x in every["torch"]])),
            "kt_total": float(sum(x["prune_s"] + x["fit_s"] for x in every["keras"])),
            "tp_total": float(sum(x["prune_s"] + x["fit_s"] for x in every["torch"])),
        },
    }


def _accuracy_cell(row, side):
    spread = f" ({100 * row[side + '_min']:.2f}-{100 * row[side + '_max']:.2f})" if row[side + "_min"] != row[side + "_max"] else ""
    return f"**{100 * row[side + '_accuracy']:.2f}**{spread}"


def comparison_lines(r):
    rows = [[row["iteration"], f"{100 * row['kt_reduction']:.1f}", f"{100 * row['tp_reduction']:.1f}",
             f"{100 * row['kt_before_ft']:.2f}", f"{100 * row['tp_before_ft']:.2f}",
             _accuracy_cell(row, "kt"), _accuracy_cell(row, "tp"),
             f"{row['kt_prune_s']:.2f}", f"{row['tp_prune_s']:.2f}", f"{row['kt_fit_s']:.1f}", f"{row['tp_fit_s']:.1f}"]
            for row in r["iterations"]]
    m = r["medians"]
    seeds = len(r["seeds"])
    return [
        f"keras-taylor with {scoring_label(r['score_batches'])}; "
        + (f"{seeds} seeds (data order of fine-tuning and scoring, both sides), means with the range over seeds:"
           if seeds > 1 else "one seed:"),
        "",
        _common.markdown_table(
            ["iteration", "kt reduction %", "TP reduction %", "kt accuracy before fine-tuning %",
             "TP accuracy before fine-tuning %", "kt accuracy %", "TP accuracy %",
             "kt prune step s", "TP prune step s", "kt fine-tune epoch s", "TP fine-tune epoch s"], rows),
        "",
        f"Medians over all iterations{' of all seeds' if seeds > 1 else ''}: prune step keras-taylor {m['kt_prune']:.2f} s "
        f"vs Torch-Pruning {m['tp_prune']:.2f} s "
        f"(ratio kt/TP {m['kt_prune'] / m['tp_prune']:.2f}); whole iteration {m['kt_iter']:.1f} s vs "
        f"{m['tp_iter']:.1f} s (ratio {m['kt_iter'] / m['tp_iter']:.2f}); **all iterations together "
        f"{m['kt_total']:.1f} s vs {m['tp_total']:.1f} s (ratio {m['kt_total'] / m['tp_total']:.2f})**. "
        f"Accuracy: keras-taylor's {'mean ' if seeds > 1 else ''}equal or better at {r['kt_wins']}/{len(rows)} "
        f"reductions" + (f", in {r['pair_wins']}/{r['pairs']} single (seed, iteration) pairs" if seeds > 1 else "")
        + f" (mean difference {r['mean_diff']:+.2f} points).",
        "",
    ]


def _rebuilt_text(per_seed):
    texts = [",".join(map(str, rebuilt)) or "none" for rebuilt in per_seed]
    return texts[0] if len(set(texts)) == 1 else "; ".join(f"seed {i}: {t}" for i, t in enumerate(texts))


def write_docs(res, quick):
    s = settings(quick)
    first = res["runs"][0]
    floor = res["floor"]
    floor_ratio = floor["keras"] / floor["torch"]
    lines = [
        "## keras-taylor vs Torch-Pruning 1.6 (TaylorImportance + DependencyGraph)",
        "",
        *_workloads.header(quick),
        f"PyTorch {res['torch_version']}, torch-pruning {res['tp_version']} (CPU, 2 threads). "
        "ResNet-20 twin in PyTorch, same architecture and the same trained baseline (the Keras "
        f"baseline's weights copied in: Keras test accuracy {100 * res['keras_base_acc']:.2f}%, "
        f"PyTorch twin {100 * first['torch_base_acc']:.2f}%; learnables {first['keras_learnables']:,} vs "
        f"{first['torch_learnables']:,}), same data (real CIFAR-10 subset, test split as validation), "
        f"same loop: prune about "
        f"{100 * s['increment']:.0f}% of the original learnables per iteration (Torch-Pruning: global "
        "`pruner.step()` calls until it reaches keras-taylor's reduction), fine-tune one epoch over "
        f"{s['train_subset']} training images (SGD momentum 0.9, lr {s['lr']}, batch 128), validate; up to {100 * s['goal']:.0f}%. "
        f"Torch-Pruning scores on {s['score_batches']} fresh training batches of 128 before each step (its "
        "TaylorImportance reads the accumulated gradients; it has no score gathering inside training). "
        "keras-taylor ran " + (
            "once per scoring mode: its default, where `train_step` gathers the Taylor scores during "
            "fine-tuning at no extra cost (MATLAB's loop; before the first step, training batches until the "
            f"choice settles), and with {s['score_batches']} fresh batches like Torch-Pruning; each keras-taylor run "
            "has its own Torch-Pruning run interleaved with it"
            if len(res["runs"]) > 1 else f"with {scoring_label(first['score_batches'])}"
        ) + ". "
        "The two loops of a comparison run in one fresh process with their iterations interleaved "
        "(keras-taylor's iteration i, then Torch-Pruning's), so both see the same machine state; "
        f"each seed is a comparison of its own ({len(first['seeds'])} per scoring mode). "
        "'Prune step' = scoring + pruning + surgery + validation (keras-taylor keeps pruned filters "
        "masked and rebuilds the smaller model, which Keras traces anew, only when its default "
        "`rebuild_threshold=\"auto\"` predicts that the fine-tuning time saved over the iterations left "
        "exceeds the tracing cost it measured; rebuilt at iterations "
        + " / ".join(f"{_rebuilt_text(r['rebuilt'])} ({scoring_name(r['score_batches'])})" for r in res["runs"])
        + "; those iterations carry the tracing); fine-tuning is "
        "timed apart (mostly each framework's training speed; keras-taylor's includes its fused batch norm). "
        "Each side's first iteration includes its setup: for keras-taylor, `compress` turning "
        "the arrays into datasets, wrapping the model and validating the baseline; for Torch-Pruning the same "
        f"(arrays to tensors, baseline accuracy, DependencyGraph build: {first['tp_setup_s']:.2f} s)."
        + (" Quick mode: a smoke run (fewer images and iterations)." if quick else ""),
        "",
    ]
    for r in res["runs"]:
        lines += comparison_lines(r)
    lines += [
        "Framework floor, measured in the same run before the loops: one plain training epoch of the "
        "unpruned baseline on the same images (no pruning tool involved; a warm-up epoch each, then "
        f"{floor['rounds']} timed epoch{'s' if floor['rounds'] > 1 else ''} interleaved, median) takes {floor['keras']:.1f} s "
        f"with Keras `fit` and {floor['torch']:.1f} s with the PyTorch loop (ratio {floor_ratio:.2f}). "
        "Divided by it, the all-iterations ratios leave "
        + " and ".join(f"{r['medians']['kt_total'] / r['medians']['tp_total'] / floor_ratio:.2f} "
                       f"({scoring_name(r['score_batches'])})" for r in res["runs"])
        + " as keras-taylor's own share: the fused batch-norm kernel its prunable model trains with "
        "(`kt.FusedBatchNormalization`; the floor's plain Keras model uses Keras's own, slower layer) set "
        "against masked fine-tuning at the width of the last rebuild, Keras re-tracing after each rebuild, "
        "and scoring.",
    ]
    _common.write_section("torch_pruning", "\n".join(lines))


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"--seeds must be at least 1, got {value}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--seeds", type=_positive_int, default=None,
                        help="comparisons per scoring mode, each with its own data order (default 3; 1 with --quick)")
    parser.add_argument(
        "--kt-scoring", choices=("default", "both"), default="both",
        help="keras-taylor runs: its default scoring only, or also with Torch-Pruning's fresh score batches "
             "(the suite runs 'default' to stay in its time budget; --quick always runs 'default')")
    args = parser.parse_args(argv)
    import torch
    from importlib import metadata

    torch.set_num_threads(2)
    start = time.perf_counter()
    s = settings(args.quick)
    w, base, meta, data = _workloads.cifar_fine_tuning(args.quick, s["train_subset"])
    floor = framework_floor(base, w, data, s, rounds=1 if args.quick else 3)
    scorings = [None] if args.quick or args.kt_scoring == "default" else [None, s["score_batches"]]
    from benchmarks import torch_pruning_compare as this  # importable by name in the child, even under -m

    seeds = args.seeds or s["seeds"]
    runs = [combine([in_fresh_process(this.run_isolated, args.quick, score_batches, seed) for seed in range(seeds)])
            for score_batches in scorings]
    res = {
        "runs": runs, "floor": floor, "keras_base_acc": meta["accuracy"],
        "torch_version": torch.__version__, "tp_version": metadata.version("torch-pruning"),
    }
    if not args.no_docs:
        write_docs(res, args.quick)
    rows = []
    for r in runs:
        m, n = r["medians"], len(r["iterations"])
        label = scoring_name(r["score_batches"])
        rows += [
            {"benchmark": "torch_pruning_compare", "what": f"accuracy at equal reduction ({label})",
             "result": f"kt >= TP at {r['kt_wins']}/{n} (mean of {len(r['seeds'])} seeds; single pairs "
                       f"{r['pair_wins']}/{r['pairs']}; mean {r['mean_diff']:+.2f} pts)",
             "target": "equal or better everywhere", "met": "yes" if r["kt_wins"] == n else "no"},
            {"benchmark": "torch_pruning_compare",
             "what": f"time per pruning iteration, median excl. / incl. fine-tuning; all iterations ({label})",
             "result": f"kt/TP {m['kt_prune'] / m['tp_prune']:.2f} / {m['kt_iter'] / m['tp_iter']:.2f}; "
                       f"{m['kt_total'] / m['tp_total']:.2f}",
             "target": "no slower (<= 1)", "met": "yes" if m["kt_total"] <= m["tp_total"] else "no"},
        ]
    rows.append({"benchmark": "torch_pruning_compare", "what": "framework floor: plain training epoch, no pruning",
                 "result": f"Keras fit / PyTorch loop {floor['keras'] / floor['torch']:.2f}", "target": "", "met": ""})
    _workloads.save_summary("torch_pruning_compare", {"rows": rows, "seconds": time.perf_counter() - start})
    print(f"torch_pruning_compare finished in {time.perf_counter() - start:.0f} s")
    return res


if __name__ == "__main__":
    main()
