"""The `keras-taylor` command line: its parser and `main` (the commands: `commands.py`).

Errors are printed as one line (no traceback) with exit status 2.
TensorFlow is imported only by the commands that need it (not by `--help` or
`--version`), and its C++ start-up logs are off unless TF_CPP_MIN_LOG_LEVEL
is set.
"""

import argparse
import os
import sys

from keras_taylor.cli.commands import (
    CommandError,
    run_analyze,
    run_compress,
    run_demo,
    run_export,
)

# TensorFlow's C++ start-up logs (oneDNN, CPU features, absl) stay quiet
# unless the user asks for them by setting TF_CPP_MIN_LOG_LEVEL.
_USER_TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly():
    """Imports TensorFlow and Keras with the process's stderr silenced.

    TensorFlow 2.21 prints its oneDNN and absl notices from C++ whatever
    TF_CPP_MIN_LOG_LEVEL says, so file descriptor 2 points at a temporary
    file during the import; what was written there is shown if the import
    fails. Left alone when the user set TF_CPP_MIN_LOG_LEVEL.
    """
    if "tensorflow" in sys.modules or _USER_TF_LOG_LEVEL:
        import keras  # noqa: F401

        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)

VERBOSE_HELP = (
    "0 silent; 1 (default) a line per pruning iteration, and progress bars while fine-tuning when the "
    "output is a terminal, one line per epoch otherwise; 2 one line per epoch always"
)
KEEP_OPTIMIZER_HELP = (
    "also save the optimizer state and compile configuration (to resume training); by default the "
    ".keras file holds the layers and weights only, for deployment"
)


def _rebuild_threshold(text):
    """'auto' or a number; compress itself checks the range."""
    return text if text == "auto" else float(text)


def _number(text, what):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None


def _goal(text):
    """`--goal`: ("fraction", 0.3), ("speedup", 2.0) from "2x", or ("ms", 3.0) from "3ms".

    Kept as a tuple so that parsing needs no TensorFlow; `run_compress`
    turns it into a float, `kt.Speedup` or `kt.LatencyBudget`.
    """
    spelled = text.strip().lower()
    if spelled.endswith("ms"):
        ms = _number(spelled[:-2], "a latency budget such as '3ms'")
        if not ms > 0:
            raise argparse.ArgumentTypeError(f"a latency budget must be above 0 ms, got {text!r}")
        return ("ms", ms)
    if spelled.endswith("x"):
        factor = _number(spelled[:-1], "a speedup such as '2x'")
        if not factor > 1:
            raise argparse.ArgumentTypeError(f"a speedup must be above 1x, got {text!r}")
        return ("speedup", factor)
    fraction = _number(spelled, "--goal (a fraction such as 0.3, a speedup such as '2x' or a budget such as '3ms')")
    if not 0 < fraction < 1:
        raise argparse.ArgumentTypeError(
            f"a fraction goal must be in (0, 1), got {text!r} (write '2x' for a speedup, '3ms' for a latency budget)")
    return ("fraction", fraction)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def check_cost_arguments(args):
    """The message of the first `compress` cost option that does not fit the others, or None."""
    kind = args.goal[0]
    if kind == "speedup" and args.cost == "learnables":
        return f"--goal {args.goal[1]:g}x needs --cost macs or --cost latency (a speedup in learnables means nothing)"
    if kind == "ms" and args.cost != "latency":
        return f"--goal {args.goal[1]:g}ms needs --cost latency, got --cost {args.cost}"
    if args.cost != "latency":
        given = [flag for flag, value in (("--runtime", args.runtime), ("--threads", args.threads),
                                          ("--latency-batch-size", args.latency_batch_size)) if value is not None]
        if given:
            return f"{', '.join(given)} only apply with --cost latency, got --cost {args.cost}"
    return None


def _build_parser():
    from keras_taylor import __version__

    parser = argparse.ArgumentParser(
        prog="keras-taylor",
        description="Structured Taylor filter pruning for Keras 3 models.",
    )
    parser.add_argument("--version", action="version", version=f"keras-taylor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_demo, _add_analyze, _add_compress, _add_export):
        add(sub)
    parser.commands = sub.choices  # name -> sub-parser, for errors found after parsing
    return parser


def _add_demo(sub):
    demo = sub.add_parser(
        "demo",
        help="train a small CNN on an offline dataset and compress it",
        description=(
            "Trains a small CNN on a real image dataset, compresses it with "
            "kt.compress, prints the per-layer table, the pruning history and "
            "the size/accuracy before and after, and writes the stripped "
            ".keras model and a PNG plot. The accuracy floor is checked on a "
            "validation set held out of the training images (15%); the test "
            "images are used only for the accuracy reported. The default "
            "dataset (scikit-learn's 8x8 handwritten digits) ships inside a "
            "package: no download."
        ),
    )
    demo.add_argument("--dataset", default="digits", choices=["digits", "mnist", "fashion_mnist", "cifar10"])
    demo.add_argument("--goal", type=float, default=0.5, help="fraction of learnables to remove (default 0.5)")
    demo.add_argument("--max-drop", type=float, default=0.02, help="accepted accuracy drop, as a fraction (default 0.02)")
    demo.add_argument("--epochs", type=int, default=None, help="training epochs of the baseline")
    demo.add_argument("--out", default="keras-taylor-demo", help="output folder (default ./keras-taylor-demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="fewer epochs and samples (for smoke tests)")
    demo.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help=VERBOSE_HELP)
    demo.add_argument("--keep-optimizer", action="store_true", help=KEEP_OPTIMIZER_HELP)


def _add_analyze(sub):
    analyze = sub.add_parser(
        "analyze",
        help="per-layer table, blockers and maximum reduction of a .keras model",
        description=(
            "Prints the per-layer pruning table of a saved model, every candidate layer "
            "(convolution, Dense) that cannot be pruned with the reason, and the maximum "
            "reduction pruning can reach."
        ),
    )
    analyze.add_argument("model", help="path to a .keras model")
    analyze.add_argument("--prune-dense", action="store_true", help="count Dense units as prunable")
    analyze.add_argument("--csv", help="also write the table to this CSV file")


def _add_compress(sub):
    compress = sub.add_parser(
        "compress",
        help="compress a .keras model on your data",
        description=(
            "Iteratively prunes and fine-tunes MODEL on DATA until the goal or "
            "the validation threshold. DATA is an .npz with x_train, y_train "
            "(and optionally x_val, y_val), or an image folder in the layout "
            "keras.utils.image_dataset_from_directory reads (one sub-folder "
            "per class)."
        ),
    )
    compress.add_argument("model", help="path to a .keras model (compiled, or give --loss)")
    compress.add_argument("--data", required=True, help=".npz file or image folder")
    compress.add_argument(
        "--goal", type=_goal, default=("fraction", 0.3),
        help="what to reach: a fraction of the --cost to remove (default 0.3), a speedup such as '2x' "
             "(--cost macs or latency) or a latency budget such as '3ms' (--cost latency)",
    )
    compress.add_argument(
        "--cost", default="learnables", choices=["learnables", "macs", "latency"],
        help="what --goal and --increment count: learnables (default), multiply-accumulates, or latency "
             "predicted by a profile measured once on --runtime (cached on disk)",
    )
    compress.add_argument(
        "--round-to", type=_positive_int, default=None, metavar="N",
        help="keep every pruned layer's channel count a multiple of N (e.g. 8 for XNNPACK)",
    )
    compress.add_argument(
        "--ranking", default=None, choices=["importance", "importance_per_cost"],
        help="which channel groups go first (default: importance for learnables, importance per unit of "
             "cost saved for macs and latency)",
    )
    compress.add_argument(
        "--runtime", default=None, choices=["litert", "keras"],
        help="--cost latency: the runtime the model ships on (default litert, the LiteRT interpreter)",
    )
    compress.add_argument(
        "--threads", type=_positive_int, default=None,
        help="--cost latency: LiteRT interpreter threads (default 1) or TensorFlow's intra-op threads for "
             "--runtime keras (default: as they are)",
    )
    compress.add_argument(
        "--latency-batch-size", type=_positive_int, default=None, metavar="N",
        help="--cost latency: samples per call the latency is measured at (default 1)",
    )
    compress.add_argument(
        "--increment", type=float, default=0.05,
        help="fraction of the original --cost removed per iteration (default 0.05)",
    )
    compress.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per iteration")
    compress.add_argument("--threshold", type=float, default=None, help="validation threshold of --metric")
    compress.add_argument("--metric", default=None, help="validation metric (default: loss)")
    compress.add_argument("--loss", default=None, help="loss, if the model was saved uncompiled")
    compress.add_argument("--optimizer", default="adam", help="optimizer, if the model was saved uncompiled")
    compress.add_argument("--batch-size", type=int, default=32)
    compress.add_argument("--criterion", default="taylor", choices=["taylor", "l1", "random"])
    compress.add_argument(
        "--rebuild-threshold", type=_rebuild_threshold, default="auto",
        help="'auto' (rebuild smaller when measured tracing costs less than the fine-tuning it saves) or the "
             "masked share of the learnables at which the model is rebuilt smaller (0: every iteration)",
    )
    compress.add_argument(
        "--recalibration-batches", type=int, default=10,
        help="batches over which batch-norm statistics are re-estimated after each pruning step (0: off)",
    )
    compress.add_argument("--val-split", type=float, default=0.1, help="validation share of an image folder without x_val")
    compress.add_argument("--out", required=True, help="output .keras path")
    compress.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help=VERBOSE_HELP)
    compress.add_argument("--keep-optimizer", action="store_true", help=KEEP_OPTIMIZER_HELP)


def _add_export(sub):
    export = sub.add_parser(
        "export",
        help="export a .keras model to LiteRT (float32, float16, int8) and compare it",
        description=(
            "Folds batch normalization, converts MODEL to a LiteRT .tflite file "
            "(int8: full-integer quantization calibrated on x_train of DATA, or "
            "x_val without it) and prints file size, latency and accuracy on "
            "x_val/y_val next to the Keras model's."
        ),
    )
    export.add_argument("model", help="path to a .keras model")
    export.add_argument("--precision", default="float32", choices=["float32", "float16", "int8"])
    export.add_argument("--data", help=".npz with x_val, y_val (accuracy) and x_train (int8 calibration)")
    export.add_argument("--out", required=True, help="output .tflite path")
    export.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads (default 1)")
    export.add_argument("--batch-size", type=int, default=1, help="batch of the latency measurement (default 1)")
    export.add_argument("--no-fold", action="store_true", help="do not fold batch normalization first")
    export.add_argument("--csv", help="also write the table to this CSV file")


def main(argv=None):
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "compress":
        problem = check_cost_arguments(args)
        if problem:
            parser.commands["compress"].error(problem)  # exits 2 with compress's usage line
    try:
        _import_tensorflow_quietly()
        return {"demo": run_demo, "analyze": run_analyze, "compress": run_compress, "export": run_export}[args.command](args)
    except CommandError as exc:
        print(f"keras-taylor {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as exc:
        message = " ".join(str(exc).split())
        print(f"keras-taylor {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-taylor {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
