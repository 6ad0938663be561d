"""Builds the tutorial notebooks from the cell sources below, and runs them.

    python tutorials/_build.py            # write and execute all (full run, keeps outputs)
    python tutorials/_build.py 2          # only tutorial 2
    python tutorials/_build.py --clean    # only clean the committed outputs (see clean_outputs)
    KERAS_TAYLOR_TUTORIAL_QUICK=1 ...     # quick mode (smaller data, fewer epochs)

The notebooks are committed with the outputs of a full run. CI re-executes
them in quick mode (tests/docs/test_tutorials.py).
"""

import os
import pathlib
import re
import sys

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent

INSTALL = '''# On Colab (or anywhere keras-taylor is not installed yet), install it from the repository.
# KERAS_TAYLOR_SOURCE may name a local checkout or another pip source.
# A TensorFlow already installed (Colab's) is kept: keras-taylor supports TensorFlow 2.18-2.21.
import importlib, importlib.metadata, importlib.util, os, subprocess, sys
if importlib.util.find_spec("keras_taylor") is None:
    source = os.environ.get("KERAS_TAYLOR_SOURCE", "git+https://github.com/keras-taylor/keras-taylor")
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    if importlib.util.find_spec("tensorflow") is None:
        subprocess.check_call(pip + [source])
    else:  # keep TensorFlow and Keras as they are; install keras-taylor's other requirements
        subprocess.check_call(pip + ["--no-deps", source])
        importlib.invalidate_caches()
        needs = [r.split(";")[0] for r in importlib.metadata.requires("keras-taylor") or [] if "extra ==" not in r]
        subprocess.check_call(pip + [r for r in needs if not r.startswith(("tensorflow", "keras"))])'''

SETUP = '''import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# CI sets KERAS_TAYLOR_TUTORIAL_QUICK=1 to run every cell on a little data.
QUICK = os.environ.get("KERAS_TAYLOR_TUTORIAL_QUICK") == "1"

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
import keras
import keras_taylor as kt
from keras_taylor import datasets, reference_models

keras.utils.set_random_seed(0)
print("keras", keras.__version__, "| keras-taylor", kt.__version__, "| quick mode" if QUICK else "")'''


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text):
    return nbformat.v4.new_code_cell(text.strip())


TUTORIALS = {}

TUTORIALS["01_custom_pruning_loop_mnist.ipynb"] = [
    md("""
# 1. A custom Taylor-pruning loop on MNIST

The Keras version of MATLAB's *Prune Image Classification Network Using Taylor Scores*: wrap a trained
network in a `TaylorPrunableModel`, alternate fine-tuning (which gathers Taylor scores for free) with
`update_prunables`, look at the per-layer effect with `kt.analyze`, and `kt.strip_pruning` to get a
physically smaller plain Keras model.
"""),
    code(INSTALL),
    code(SETUP),
    md("## Data and a trained network\n\nMNIST through Keras's own loader, and MATLAB's digits CNN (three conv-BN-ReLU blocks of 20 filters, then a fully connected layer)."),
    code('''(x_train, y_train), (x_test, y_test) = datasets.load("mnist")
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:1000], y_test[:1000]
model = reference_models.digits_cnn()
model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=128, epochs=1 if QUICK else 3, verbose=0)
baseline = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
print(f"baseline test accuracy: {100 * baseline:.2f}%, learnables: {sum(w.numpy().size for w in model.trainable_weights)}")'''),
    md("## Wrap it\n\n`TaylorPrunableModel` copies the network (yours is never modified) and puts a mask where each group of coupled filters enters a layer that consumes it. `num_prunables` counts the filters that can still go; `learnables` lists the parameters."),
    code('''pm = kt.TaylorPrunableModel(model)
pm.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
print("prunable filters:", pm.num_prunables)
pm.learnables'''),
    md("""
## The pruning loop

Each pruning iteration fine-tunes on a few mini-batches with `train_on_batch`: the model's training step
accumulates the Taylor score of every filter group in the same forward and backward pass. Then
`update_prunables` masks the `max_to_prune` filters with the lowest scores across the whole network
(never a layer's last filter) and resets the scores. (`pm.update_score(x, y, loss=...)` gathers scores
without training, if you prefer.)
"""),
    code('''max_pruning_iterations = 4 if QUICK else 8
max_to_prune = 4
batches_per_iteration = 10 if QUICK else 40
batch_size = 128
rng = np.random.default_rng(0)
history = []
for iteration in range(max_pruning_iterations):
    for _ in range(batches_per_iteration):
        idx = rng.integers(0, len(x_train), batch_size)
        pm.train_on_batch(x_train[idx], y_train[idx])
    pruned = pm.update_prunables(max_to_prune=max_to_prune)
    accuracy = pm.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    history.append(dict(iteration=iteration + 1, pruned=pruned, num_prunables=pm.num_prunables,
                        num_learnables=pm.num_learnables, accuracy=accuracy))
history = pd.DataFrame(history)
history'''),
    code('''fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].plot(history.iteration, history.num_learnables, "o-"); ax[0].set(xlabel="pruning iteration", ylabel="learnables")
ax[1].plot(history.iteration, 100 * history.accuracy, "o-"); ax[1].axhline(100 * baseline, ls="--", c="gray", label="unpruned")
ax[1].set(xlabel="pruning iteration", ylabel="test accuracy (%)"); ax[1].legend()
plt.tight_layout()'''),
    md("## What was pruned\n\n`kt.analyze` gives one row a layer, like MATLAB's `analyzeNetwork` table: learnables, reduction against the original, pruned filters, and for blocked layers which layer blocked them and why. Note the fully connected layer: it loses the rows of every pruned `conv3` channel at each of the 24×24 positions."),
    code('''kt.analyze(pm)[["name", "type", "output_shape", "num_learnables", "learnables_reduction", "num_pruned_filters", "prunable"]]'''),
    md("## Strip\n\n`strip_pruning` rebuilds the network with fewer filters and sliced weights. Its outputs equal the masked model's to float32 round-off, and it is a plain Keras model: it saves and loads as `.keras` without custom objects."),
    code('''small = kt.strip_pruning(pm)
diff = np.abs(small.predict(x_test[:256], verbose=0) - pm.predict(x_test[:256], verbose=0)).max()
small_acc = small.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
print(f"max |stripped - masked| = {diff:.2e}")
print(f"parameters {model.count_params()} -> {small.count_params()} ({100 * (1 - small.count_params() / model.count_params()):.1f}% fewer)")
print(f"test accuracy {100 * baseline:.2f}% -> {100 * small_acc:.2f}%")
small.save("digits_pruned.keras")
kt.compare(model, small)'''),
]

TUTORIALS["02_accuracy_requirement_cifar10.ipynb"] = [
    md("""
# 2. Pruning with an accuracy requirement (CIFAR-10)

The Keras version of MATLAB's *Prune Neural Network with Accuracy Requirement*: compress a ResNet-20
(the "CIFARNet twin", about 273k learnables like MATLAB's network) as far as possible while the
validation accuracy stays above a floor, with one call to `kt.compress`. The floor is checked on a
validation set held out of the training images; the test images are used only for the final report,
so the reported accuracy is not the one the stopping rule picked.

CIFAR-10 comes from `keras.datasets.cifar10`. To use a local copy instead (no download), set the
environment variable `KERAS_TAYLOR_CIFAR10_NPZ` to an `.npz` holding `x_train`, `y_train`, `x_test`,
`y_test` (CI points it at a real CIFAR-10 subset of 8380 training and 1017 test images).
"""),
    code(INSTALL),
    code(SETUP),
    code('''(x_train, y_train), (x_test, y_test) = datasets.load("cifar10")
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:1280], y_train[:1280], x_test[:512], y_test[:512]
# Hold out a validation set for the stopping rule; the test set stays untouched until the end.
order = np.random.default_rng(0).permutation(len(x_train))
held_out = 256 if QUICK else 1000
x_val, y_val = x_train[order[:held_out]], y_train[order[:held_out]]
x_train, y_train = x_train[order[held_out:]], y_train[order[held_out:]]
print(x_train.shape, x_val.shape, x_test.shape)

def augment(x, y):
    import tensorflow as tf
    x = tf.image.random_flip_left_right(x)
    x = tf.image.random_crop(tf.image.resize_with_crop_or_pad(x, 36, 36), tf.shape(x))
    return x, y

import tensorflow as tf
train = (tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=0)
         .batch(128).map(augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2))'''),
    md("## Train the network"),
    code('''model = reference_models.resnet20()
epochs = 1 if QUICK else 15
schedule = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=epochs * len(train))
model.compile(keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
              "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(train, epochs=epochs, verbose=0)
baseline = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
baseline_val = model.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"]
print(f"baseline accuracy: validation {100 * baseline_val:.2f}%, test {100 * baseline:.2f}%; "
      f"learnables {sum(w.numpy().size for w in model.trainable_weights)}")
print(f"filter pruning could remove at most {100 * kt.max_reduction(model):.1f}% of the learnables")'''),
    md("## Compress with an accuracy floor\n\nFine-tuning uses a fresh optimizer with a small constant learning rate. Each iteration removes about 5% of the original learnables, fine-tunes, and validates; `output=\"best-validation\"` keeps the best epoch of each iteration. Pruning stops when the accuracy falls below the floor, and the model returned is the most compressed one that met it."),
    code('''floor = baseline_val - 0.05  # on the validation set
model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy", metrics=["accuracy"])
pruned, info = kt.compress(
    model, train, goal=0.9, increment=0.05, fine_tune_epochs=1,
    validation_data=(x_val, y_val), validation_threshold=floor, metric="accuracy",
    output="best-validation", max_iterations=2 if QUICK else None, verbose=0)
print(info.stop_reason)'''),
    md("## Pruning and validation history"),
    code("info.pruning_history"),
    code("info.validation_history"),
    code("info.plot();"),
    md("## Test the pruned network"),
    code('''accuracy = pruned.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
print(f"test accuracy {100 * baseline:.2f}% -> {100 * accuracy:.2f}% "
      f"(validation floor {100 * floor:.2f}%, from the validation baseline {100 * baseline_val:.2f}%)")
print(f"learnables reduction {100 * info.learnables_reduction:.2f}%; pruned layers: {len(info.pruned_layers)}")
kt.compare(model, pruned).round(3)'''),
]

TUTORIALS["03_pruning_inside_fit_callback.ipynb"] = [
    md("""
# 3. Pruning inside `model.fit` with `TaylorPruningCallback`

No special loop: wrap the model, add a callback, call `fit`. The training step gathers Taylor scores,
the callback prunes on a schedule, and `num_learnables` / `learnables_reduction` appear in the
progress bar, in `History` and in TensorBoard.
"""),
    code(INSTALL),
    code(SETUP),
    code('''(x_train, y_train), (x_test, y_test) = datasets.load("fashion_mnist")
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:1000], y_test[:1000]
model = reference_models.digits_cnn()
model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=128, epochs=1 if QUICK else 3, verbose=0)
baseline = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
print(f"baseline accuracy {100 * baseline:.2f}%")'''),
    md("## Prune while fine-tuning\n\nEvery 50 steps (after a 50-step warm-up) the callback removes 2 filter groups, until 60% of the learnables are gone. Put it first in the list so the callbacks after it (TensorBoard here) see its log entries."),
    code('''pm = kt.TaylorPrunableModel(model)
pm.compile(keras.optimizers.Adam(5e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
callbacks = [
    kt.TaylorPruningCallback(frequency=10 if QUICK else 50, amount=2, start_step=10 if QUICK else 50, goal=0.6),
    keras.callbacks.TensorBoard(log_dir="logs/taylor_pruning", update_freq="epoch"),
]
history = pm.fit(x_train, y_train, batch_size=128, epochs=2 if QUICK else 8,
                 validation_data=(x_test, y_test), callbacks=callbacks, verbose=2)'''),
    code('''h = pd.DataFrame(history.history)
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].plot(h.index + 1, 100 * h.learnables_reduction, "o-"); ax[0].set(xlabel="epoch", ylabel="learnables removed (%)")
ax[1].plot(h.index + 1, 100 * h.val_accuracy, "o-"); ax[1].axhline(100 * baseline, ls="--", c="gray", label="unpruned")
ax[1].set(xlabel="epoch", ylabel="validation accuracy (%)"); ax[1].legend(); plt.tight_layout()
h[["loss", "accuracy", "val_accuracy", "num_learnables", "learnables_reduction"]]'''),
    md("The TensorBoard logs are in `logs/taylor_pruning` (`%load_ext tensorboard` then `%tensorboard --logdir logs` in Colab).\n\n## Strip"),
    code('''small = kt.strip_pruning(pm)
accuracy = small.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
print(f"parameters {model.count_params()} -> {small.count_params()}, accuracy {100 * baseline:.2f}% -> {100 * accuracy:.2f}%")
print("TensorBoard event files:", sorted(p.name for p in __import__("pathlib").Path("logs/taylor_pruning").rglob("*tfevents*"))[:2])'''),
]

TUTORIALS["04_applications_to_tflite.ipynb"] = [
    md("""
# 4. From a `keras.applications` model to a smaller, faster TFLite file

Take an architecture from `keras.applications` (MobileNetV2 here), train it briefly, prune 40% of its
learnables with `kt.compress`, strip it, convert both versions to TensorFlow Lite and measure file size
and CPU latency.
"""),
    code(INSTALL),
    code(SETUP),
    code('''import time, tempfile, pathlib
import tensorflow as tf
(x_train, y_train), (x_test, y_test) = datasets.load("cifar10")
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:512], y_train[:512], x_test[:256], y_test[:256]
model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=1.0, weights=None, classes=10)
# keras.applications sets BatchNorm momentum to 0.999, tuned for ImageNet-length
# training: after a thousand steps the moving statistics still lag far behind,
# and the model scores chance at inference. 0.9 follows a short run.
for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
        layer.momentum = 0.9
model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=64, epochs=1 if QUICK else 8, verbose=0)
baseline = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
print(f"MobileNetV2: {model.count_params()} parameters, accuracy {100 * baseline:.2f}%")'''),
    md("## What is prunable?\n\nMobileNetV2's residual streams couple the filters of several layers into one group; depthwise convolutions pass channels through; the classifier is the model output. `kt.analyze` shows it per layer, `kt.max_reduction` the ceiling."),
    code('''table = kt.analyze(model)
print(f"{int(table.prunable.sum())} prunable layers; at most {100 * kt.max_reduction(model):.1f}% of the learnables can go")
table[table.num_filters > 0][["name", "type", "num_filters", "prunable", "blocked_by"]].head(12)'''),
    md("## Prune and fine-tune"),
    code('''pruned, info = kt.compress(model, (x_train, y_train), goal=0.4, increment=0.1,
                           fine_tune_epochs=1, batch_size=64, verbose=0)
accuracy = pruned.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
print(info.stop_reason, f"{100 * info.learnables_reduction:.1f}% fewer learnables; accuracy {100 * baseline:.2f}% -> {100 * accuracy:.2f}%")'''),
    md("## Convert to TensorFlow Lite and measure"),
    code('''def to_tflite(m):
    return tf.lite.TFLiteConverter.from_keras_model(m).convert()

def latency_ms(tflite_bytes, runs=20 if QUICK else 200):
    interpreter = tf.lite.Interpreter(model_content=tflite_bytes, num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], x_test[:1].astype(np.float32))
    for _ in range(5):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter(); interpreter.invoke(); times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))

rows = []
for name, m in [("original", model), ("pruned", pruned)]:
    blob = to_tflite(m)
    rows.append(dict(model=name, parameters=m.count_params(), tflite_kb=len(blob) / 1024, latency_ms=None, blob=blob))
# alternate the two measurements so both see the same machine load
lat = {r["model"]: [] for r in rows}
for _ in range(3):
    for r in rows:
        lat[r["model"]].append(latency_ms(r["blob"]))
for r in rows:
    r["latency_ms"] = float(np.median(lat[r["model"]]))
    del r["blob"]
result = pd.DataFrame(rows)
result["speedup"] = result.latency_ms.iloc[0] / result.latency_ms
result'''),
]


#: Lines of committed outputs that say nothing about the tutorial: TensorFlow's
#: C++ start-up notices, SavedModel/converter chatter with temporary paths.
NOISE = [
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] "),
    re.compile(r"^To enable the following instructions: .* rebuild TensorFlow"),
    re.compile(r"^INFO:tensorflow:Assets written to: "),
    re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate"),
]
#: Keras's export dump printed by the TFLite converter (one line per captured
#: variable): from its first line to the end of that output.
EXPORT_DUMP = re.compile(r"^Saved artifact at '.*'\. The following endpoints are available:")
#: Absolute paths of this machine (virtual environment, checkout, temp folders).
LOCAL_PATH = re.compile(r"(?<![\w.])/(?:work|home|root|tmp|usr|opt)/[^\s:'\"]*?site-packages/")


def clean_text(text):
    """`text` without NOISE lines, export dumps and local absolute paths."""
    kept = []
    dump = False
    for line in text.splitlines(keepends=True):
        if EXPORT_DUMP.match(line):
            dump = True
        if dump or any(p.match(line) for p in NOISE):
            continue
        kept.append(LOCAL_PATH.sub("site-packages/", line))
    return "".join(kept)


def clean_outputs(nb):
    """Cleans the stream outputs of `nb` in place; drops those left empty."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            if output.get("output_type") == "stream":
                output["text"] = clean_text(output.get("text", ""))
                if not output["text"].strip():
                    continue
            outputs.append(output)
        cell.outputs = outputs
    return nb


def clean_committed(names):
    """Cleans the committed notebooks' outputs and install cell; runs nothing."""
    for name in names:
        path = HERE / name
        nb = nbformat.read(path, as_version=4)
        clean_outputs(nb)
        first = next(c for c in nb.cells if c.cell_type == "code")
        first.source = INSTALL  # the install cell does not run in the committed run
        nbformat.write(nb, path)
        print("cleaned", path)


def build(names, execute=True):
    for name in names:
        nb = nbformat.v4.new_notebook()
        nb.cells = TUTORIALS[name]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["colab"] = {"provenance": []}
        path = HERE / name
        if execute:
            workdir = HERE / ".run"
            workdir.mkdir(exist_ok=True)
            NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
            clean_outputs(nb)
        nbformat.write(nb, path)
        print("wrote", path)


if __name__ == "__main__":
    wanted = [a for a in sys.argv[1:] if a != "--clean"]
    names = [n for n in TUTORIALS if not wanted or any(n.startswith(f"0{w}") for w in wanted)]
    if "--clean" in sys.argv[1:]:
        clean_committed(names)
    else:
        build(names, execute=os.environ.get("KERAS_TAYLOR_NO_EXECUTE") != "1")
