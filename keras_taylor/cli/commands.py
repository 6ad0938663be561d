"""The commands of `keras-taylor`: demo, analyze, compress, export.

Each `run_*` takes the parsed arguments and returns the exit status; heavy
imports happen inside them, so the parser in `keras_taylor.cli` starts fast.
"""

import os
import pathlib
import time


class CommandError(Exception):
    """A user-facing error: printed as one line."""


def _load_model(path):
    import zipfile

    path = pathlib.Path(path)
    if not path.is_file():
        raise CommandError(f"model file '{path}' does not exist")
    if path.suffix != ".keras":
        raise CommandError(f"'{path}' is not a .keras file (keras-taylor reads models saved in Keras 3's .keras format)")
    if not zipfile.is_zipfile(path):
        raise CommandError(
            f"'{path}' could not be loaded as a Keras model: it is not a valid .keras file "
            "(a .keras file is a zip archive written by model.save)"
        )
    import keras

    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as exc:
        first = " ".join(str(exc).split())[:300]
        raise CommandError(f"'{path}' could not be loaded as a Keras model: {first}") from None


def _learnables(model):
    return sum(int(w.numpy().size) for w in model.trainable_weights)


def _print_table(title, frame):
    import pandas as pd

    print(f"\n{title}")
    with pd.option_context("display.max_rows", 500, "display.width", 200, "display.max_colwidth", 60):
        print(frame.to_string(index=False))


# --------------------------------------------------------------------- demo
def run_demo(args):
    import keras

    import keras_taylor as kt
    from keras_taylor import datasets, reference_models

    if not 0 < args.goal < 1:
        raise CommandError(f"--goal must be in (0, 1), got {args.goal}")
    keras.utils.set_random_seed(args.seed)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    print(f"Loading the {args.dataset} dataset ({_dataset_source(args.dataset)})...")
    try:
        (x_train, y_train), (x_test, y_test) = datasets.load(args.dataset)
    except Exception as exc:
        raise CommandError(f"could not load dataset '{args.dataset}': {' '.join(str(exc).split())[:200]}") from None
    if args.quick:
        x_train, y_train = x_train[:2000], y_train[:2000]
        x_test, y_test = x_test[:1000], y_test[:1000]
    # The stopping rule reads a validation set split off the training data;
    # the test set is only used to report accuracy.
    (x_train, y_train), (x_val, y_val) = _split_validation(x_train, y_train, DEMO_VALIDATION_SHARE, args.seed)
    num_classes = int(y_train.max()) + 1
    if args.dataset == "cifar10":
        model = reference_models.resnet20(x_train.shape[1:], num_classes)
        epochs, lr = 8, 2e-3
    else:
        model = reference_models.digits_cnn(x_train.shape[1:], num_classes)
        epochs, lr = (40, 3e-3) if args.dataset == "digits" else (2, 2e-3)
    if args.epochs is not None:
        epochs = args.epochs
    elif args.quick:
        epochs = max(1, epochs // 4)
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    print(
        f"Training {model.name} on {len(x_train)} images for {epochs} epochs "
        f"({len(x_val)} validation images held out of the training set, {len(x_test)} test images)..."
    )
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0)
    baseline = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    baseline_val = model.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
    before = _learnables(model)
    print(f"Baseline: {before} learnables, validation accuracy {100 * baseline_val:.2f}%, test accuracy {100 * baseline:.2f}%")
    print(f"Maximum reduction by filter pruning: {100 * kt.max_reduction(model):.1f}% of learnables")

    threshold = baseline_val - args.max_drop
    print(
        f"\nCompressing: goal {100 * args.goal:.0f}% fewer learnables, validation accuracy floor "
        f"{100 * threshold:.2f}% (baseline validation accuracy - {100 * args.max_drop:.1f} points)"
    )
    pruned, info = kt.compress(
        model, (x_train, y_train), goal=args.goal, increment=0.1, fine_tune_epochs=2 if args.dataset == "digits" else 1,
        validation_data=(x_val, y_val), validation_threshold=threshold, metric="accuracy",
        batch_size=64, verbose=args.verbose,
    )
    accuracy = pruned.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    after = _learnables(pruned)

    _print_table("Per-layer sizes, original -> compressed:", kt.compare(model, pruned).round(3))
    _print_table("Pruning history:", info.pruning_history)
    summary = [
        ("learnables", before, after),
        ("parameters", model.count_params(), pruned.count_params()),
        ("test accuracy %", round(100 * baseline, 2), round(100 * accuracy, 2)),
    ]
    print("\nBefore / after:")
    for name, a, b in summary:
        print(f"  {name:16s} {a:>10} -> {b}")
    print(f"  stop reason: {info.stop_reason}")
    model_path = out / f"{model.name}_pruned.keras"
    plot_path = out / "pruning.png"
    kt.save_model(pruned, model_path, include_optimizer=args.keep_optimizer)
    info.plot(plot_path)
    info.pruning_history.to_csv(out / "pruning_history.csv", index=False)
    info.validation_history.to_csv(out / "validation_history.csv", index=False)
    print(f"\nWrote {model_path}, {plot_path} and the history CSVs in {out}/ ({time.time() - start:.0f} s)")
    return 0


DEMO_VALIDATION_SHARE = 0.15


def _split_validation(x, y, share, seed):
    """((x_train, y_train), (x_val, y_val)): a shuffled `share` of x held out."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(x))
    cut = max(1, int(round(len(x) * share)))
    val, train = order[:cut], order[cut:]
    return (x[train], y[train]), (x[val], y[val])


def _dataset_source(name):
    """Where the demo's dataset comes from, in words: offline only when it is."""
    from keras_taylor import datasets

    if name == "digits":
        return "bundled with scikit-learn, offline"
    if name == "cifar10" and os.environ.get(datasets.CIFAR10_NPZ_ENV):
        return f"offline, from {os.environ[datasets.CIFAR10_NPZ_ENV]}"
    return "Keras's loader: read from its cache in ~/.keras/datasets, or downloaded once"


# ------------------------------------------------------------------ analyze
def run_analyze(args):
    import keras_taylor as kt

    model = _load_model(args.model)
    table = kt.analyze(model, prune_dense=args.prune_dense)
    _print_table(
        f"Model '{model.name}': {int(table.num_learnables.sum())} learnables",
        table[["name", "type", "output_shape", "num_learnables", "num_filters", "prunable"]],
    )
    unprunable = table[table.reason.notna()]
    if len(unprunable):
        _print_table(
            "Layers that cannot be pruned, and why:",
            unprunable[["name", "type", "blocked_by", "reason"]].fillna({"blocked_by": "-"}),
        )
    candidates = int(table.prunable.sum()) + len(unprunable)
    print(
        f"\nPrunable layers: {int(table.prunable.sum())} of {candidates} candidate layers "
        f"(convolutions{', Dense' if args.prune_dense else ' and Dense layers (Dense needs --prune-dense)'})"
    )
    print(f"Maximum reduction (one channel left per layer): {100 * kt.max_reduction(model, prune_dense=args.prune_dense):.1f}% of learnables")
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"Wrote {args.csv}")
    return 0


# ----------------------------------------------------------------- compress
def _load_data(path, model, batch_size, val_split, seed=0):
    import numpy as np

    path = pathlib.Path(path)
    if path.is_dir():
        import keras

        size = tuple(model.inputs[0].shape[1:3])
        channels = model.inputs[0].shape[-1]
        mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels)
        if mode is None or None in size:
            raise CommandError(f"model input {model.inputs[0].shape} does not look like an image input")
        kwargs = dict(image_size=size, color_mode=mode, batch_size=batch_size, seed=seed)
        if val_split:
            train, val = keras.utils.image_dataset_from_directory(path, validation_split=val_split, subset="both", **kwargs)
        else:
            train, val = keras.utils.image_dataset_from_directory(path, **kwargs), None
        return train, val
    if path.suffix == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as f:
            if "x_train" not in f or "y_train" not in f:
                raise CommandError(f"'{path}' must hold arrays x_train and y_train (found: {', '.join(f.files)})")
            train = (f["x_train"], f["y_train"])
            val = (f["x_val"], f["y_val"]) if "x_val" in f and "y_val" in f else None
        _check_finite(path, dict(x_train=train[0], y_train=train[1], **(dict(x_val=val[0], y_val=val[1]) if val else {})))
        return train, val
    raise CommandError(f"--data '{path}' is neither an .npz file nor an image folder")


def _check_finite(path, arrays):
    """NaN or Inf in the data would corrupt the weights: refused before any training."""
    import numpy as np

    for name, array in arrays.items():
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            count = int((~np.isfinite(array)).sum())
            raise CommandError(f"--data '{path}': {name} holds {count} non-finite value(s) (NaN or Inf); clean them first")


def run_compress(args):
    import keras_taylor as kt

    model = _load_model(args.model)
    if not getattr(model, "compiled", False) or model.optimizer is None:
        if not args.loss:
            raise CommandError("the model was saved without compile(); give --loss (and --optimizer)")
        metrics = [args.metric] if args.metric and args.metric != "loss" else []
        model.compile(args.optimizer, args.loss, metrics=metrics)
    train, val = _load_data(args.data, model, args.batch_size, args.val_split)
    if args.threshold is not None and val is None:
        raise CommandError("--threshold needs validation data: x_val/y_val in the .npz, or an image folder")
    out = pathlib.Path(args.out)
    if out.suffix != ".keras":
        raise CommandError(f"--out must end in .keras, got '{out}'")
    out.parent.mkdir(parents=True, exist_ok=True)
    pruned, info = kt.compress(
        model, train, goal=_goal(args.goal), cost=_cost(args, model), round_to=args.round_to, ranking=args.ranking,
        increment=args.increment, fine_tune_epochs=args.epochs,
        validation_data=val, validation_threshold=args.threshold, metric=args.metric,
        criterion=args.criterion, batch_size=args.batch_size, rebuild_threshold=args.rebuild_threshold,
        recalibration_batches=args.recalibration_batches, verbose=args.verbose,
    )
    kt.save_model(pruned, out, include_optimizer=args.keep_optimizer)
    stem = out.with_suffix("")
    info.pruning_history.to_csv(f"{stem}.pruning_history.csv", index=False)
    info.validation_history.to_csv(f"{stem}.validation_history.csv", index=False)
    info.training_history.to_csv(f"{stem}.training_history.csv", index=False)
    info.plot(f"{stem}.png")
    print(f"Wrote {out}, {stem}.png and {stem}.*_history.csv")
    return 0


def _goal(parsed):
    """The `goal` of `kt.compress` from the CLI's ("fraction" | "speedup" | "ms", number)."""
    import keras_taylor as kt

    kind, value = parsed
    return {"fraction": lambda: value, "speedup": lambda: kt.Speedup(value), "ms": lambda: kt.LatencyBudget(ms=value)}[kind]()


def _cost(args, model):
    """`--cost` as `kt.compress` takes it: a name, or for latency the profile of the runtime asked for."""
    if args.cost != "latency":
        return args.cost
    import keras_taylor as kt

    runtime = args.runtime or "litert"
    threads = args.threads if args.threads is not None else (1 if runtime == "litert" else None)
    batch_size = args.latency_batch_size or 1
    print(f"Measuring the latency profile of '{model.name}' on {runtime} ({threads or 'default'} thread(s), "
          f"batch {batch_size}; cached on disk for later runs)...")
    return kt.latency_profile(model, runtime=runtime, threads=threads, batch_size=batch_size)


# ------------------------------------------------------------------- export
def run_export(args):
    import numpy as np

    import keras_taylor as kt

    model = _load_model(args.model)
    representative = validation = None
    if args.data:
        path = pathlib.Path(args.data)
        if path.suffix != ".npz" or not path.is_file():
            raise CommandError(f"--data '{path}' is not an .npz file")
        with np.load(path, allow_pickle=False) as f:
            if "x_val" in f and "y_val" in f:
                validation = (f["x_val"], f["y_val"])
            for key in ("x_train", "x_val"):
                if key in f:
                    representative = f[key]
                    break
    if args.precision == "int8" and representative is None:
        raise CommandError("--precision int8 needs --data with x_train (or x_val) to calibrate on")
    report = kt.export_litert(
        model, args.out, precision=args.precision, representative_data=representative,
        validation_data=validation, fold_batch_norm=not args.no_fold, threads=args.threads,
        batch_size=args.batch_size,
    )
    table = report.to_frame()
    _print_table(f"LiteRT {args.precision} export of '{model.name}' (latency: batch {args.batch_size}, "
                 f"LiteRT on {args.threads} thread(s), Keras on TensorFlow's threads):", table.round(4))
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(f"Wrote {report.path}")
    return 0
