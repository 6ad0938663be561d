"""Helpers shared by the benchmarks: paths, machine description, markdown."""

import datetime
import os
import pathlib
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def flops(model):
    """FLOPs per sample: 2 x the multiply-accumulates `kt.analyze` counts.

    Convolution and Dense work; batch normalisation, activations, additions
    and pooling are not counted (a few percent of a CNN's work, scaling with
    the same channel counts).
    """
    import keras_taylor as kt

    return 2 * int(kt.analyze(model)["multiply_accumulates"].sum())


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine():
    """One line: cores, CPU, GPU use, library versions."""
    import keras
    import numpy as np
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    device = f"{len(gpus)} GPU(s)" if gpus else "CPU only, no GPU"
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), {device}; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, NumPy {np.__version__}"
    )


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def code_version():
    """`git describe --always --dirty` of the repository, if it is one."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO,
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    described = out.stdout.strip()
    return f"git {described}" if out.returncode == 0 and described else "unknown"


def command():
    """The command line that is running, as `python -m benchmarks.x ...`."""
    module = sys.modules["__main__"].__spec__
    name = module.name if module is not None else sys.argv[0]
    return " ".join(["python -m", name] + sys.argv[1:])


def uptime():
    """`uptime`'s line: the machine's load, printed beside timings, since other work shares these CPUs."""
    return os.popen("uptime").read().strip()


def provenance(mode=None, load=None):
    """The lines under a section's title that say where its numbers came from: the command, the date,
    the code (and `mode`, quick or full), the machine (and `load`: `uptime` before and after a timing run)."""
    date = f"Date: {now()}, code {code_version()}" + (f", mode {mode}" if mode else "") + "  "
    where = f"Machine: {machine()}" + (f"; load before: `{load[0]}`; after: `{load[1]}`" if load else "")
    return [f"Command: `{command()}` (from the repository root)  ", date, where, ""]


def parser(doc):
    """An argument parser with the options every benchmark takes: --quick, --no-docs."""
    import argparse

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    return p


def markdown_table(header, rows):
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for row in rows:
        cells = [str(c).replace("|", "\\|").replace("\n", " ") for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def applications():
    """Every model constructor in `keras.applications` (capitalised names)."""
    import keras

    return sorted(
        name
        for name in dir(keras.applications)
        if name[:1].isupper() and callable(getattr(keras.applications, name))
    )


#: Smallest input side each architecture accepts (Keras refuses one less).
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}


def min_size(name):
    return MIN_SIZE.get(name, 32)


BENCHMARKS_MD = DOCS / "benchmarks.md"
_HEADER = """# Benchmarks

Every figure here was measured on this project's machine by the committed code, with the command
shown above its table. Timings on this 2-core machine are noisy: compare the ratios measured side by
side in one run, not absolute seconds across runs.
"""


def write_section(name, text, path=BENCHMARKS_MD):
    """Replaces (or appends) the section `name` of docs/benchmarks.md."""
    begin, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    path.parent.mkdir(parents=True, exist_ok=True)
    current = path.read_text() if path.exists() else _HEADER
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        tail = rest.split(end, 1)[1]
        current = head + block + tail
    else:
        current = _insert_new(current, block)
    path.write_text(current)


def _insert_new(current, block):
    """Appends `block`, but before any trailing section written without markers.

    (`strip_speed.py` replaces its "## " section up to the next "## " heading;
    a marked section after it would lose its begin marker.)
    """
    lines = current.rstrip().split("\n")
    last_end = max((i for i, line in enumerate(lines) if line.startswith("<!-- /section:")), default=-1)
    for i in range(last_end + 1, len(lines)):
        if lines[i].startswith("## ") and not (i > 0 and lines[i - 1].startswith("<!-- section:")):
            return "\n".join(lines[:i]).rstrip() + "\n\n" + block + "\n\n" + "\n".join(lines[i:]) + "\n"
    return current.rstrip() + "\n\n" + block + "\n"
