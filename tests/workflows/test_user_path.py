"""The user path: progress output, the plot legend, deployment saving, a fast start."""

import io
import subprocess
import sys
import types
import zipfile

import numpy as np
import pandas as pd
import pytest

import keras

import keras_taylor as kt
from keras_taylor import _verbosity


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


class ZMQInteractiveShell:  # the name of a Jupyter kernel's shell class
    pass


def test_verbose_levels_map_to_keras_fit(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert _verbosity.fit_verbose(0, _Stream(True)) == 0
    assert _verbosity.fit_verbose(1, _Stream(True)) == 1  # progress bars on a terminal
    assert _verbosity.fit_verbose(1, _Stream(False)) == 2  # one line per epoch in a log
    assert _verbosity.fit_verbose(2, _Stream(True)) == 2
    # A process that only drives notebooks (nbclient) imports ipykernel: still a log.
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert _verbosity.fit_verbose(1, _Stream(False)) == 2
    fake_ipython = types.SimpleNamespace(get_ipython=ZMQInteractiveShell)
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    assert _verbosity.fit_verbose(1, _Stream(False)) == 1  # a notebook redraws bars
    with pytest.raises(ValueError, match="verbose"):
        _verbosity.check(3)


def _tiny_compiled():
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    model.compile("adam", "mse")
    return model


def test_compress_writes_one_line_per_epoch_when_not_a_terminal(capsys):
    # pytest's captured stdout is not a terminal: verbose=1 must not draw bars.
    data = (np.random.rand(64, 6, 6, 1), np.random.rand(64, 2))
    kt.compress(_tiny_compiled(), data, goal=0.2, increment=0.2, fine_tune_epochs=2, batch_size=16, verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b[" not in out
    assert out.count("Epoch 1/2") >= 1 and "loss:" in out
    # one line per epoch: the line after "Epoch k/n" holds that epoch's whole summary
    lines = out.splitlines()
    epoch_lines = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.startswith("Epoch ")]
    assert epoch_lines and all("loss:" in line for line in epoch_lines)


def test_plot_legend_names_the_kept_epoch():
    info = kt.PruningInfo(
        pruning_history=pd.DataFrame({"iteration": [0, 1], "num_learnables": [10, 8], "learnables_reduction": [0.0, 0.2]}),
        validation_history=pd.DataFrame({
            "iteration": [1, 1, 1], "step": [0, 1, 2], "loss": [1.0, 0.8, 0.9],
            "metric": [0.5, 0.7, 0.6], "is_final": [False, True, False],
        }),
        training_history=pd.DataFrame(), pruned_layers=[], stop_reason="", metric="accuracy", threshold=0.4,
    )
    fig = info.plot()
    labels = fig.axes[1].get_legend_handles_labels()[1]
    assert "kept epoch of each iteration" in labels
    assert "end of iteration" not in labels


def test_save_model_leaves_out_the_optimizer_by_default(tmp_path):
    model = _tiny_compiled()
    model.fit(np.random.rand(8, 6, 6, 1), np.random.rand(8, 2), verbose=0)  # Adam's slots filled
    plain = kt.save_model(model, tmp_path / "plain.keras")
    full = kt.save_model(model, tmp_path / "full.keras", include_optimizer=True)

    def stored(path):  # names of the stored variable groups
        with zipfile.ZipFile(path) as archive:
            return archive.read("model.weights.h5")

    assert b"optimizer" not in stored(plain) and b"optimizer" in stored(full)
    assert plain.stat().st_size < full.stat().st_size
    loaded = keras.models.load_model(plain)
    assert not loaded.compiled and loaded.name == model.name
    x = np.random.rand(4, 6, 6, 1).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert keras.models.load_model(full).optimizer is not None
    with pytest.raises(ValueError, match="path must end in .keras"):
        kt.save_model(model, tmp_path / "m.h5")


def test_import_and_help_do_not_start_tensorflow():
    code = (
        "import sys\n"
        "import keras_taylor as kt\n"
        "from keras_taylor import cli\n"
        "for argv in (['--help'], ['--version'], ['demo', '--help']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "print('TF' if 'tensorflow' in sys.modules else 'noTF', kt.__version__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("noTF 0.1.0"), out.stdout[-500:]


def test_public_names_resolve_lazily_to_the_functions():
    import importlib

    importlib.import_module("keras_taylor.compression")  # the package that defines compress
    assert callable(kt.compress) and kt.compress.__name__ == "compress"
    assert kt.analyze.__module__ == "keras_taylor.report"
    assert set(kt.__all__) <= set(dir(kt))
    with pytest.raises(AttributeError, match="no_such_name"):
        kt.no_such_name
