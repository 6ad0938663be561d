"""The keras-taylor command line."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import keras
from keras_taylor import cli

L = keras.layers


def tiny_model(compiled=True):
    inputs = keras.Input((12, 12, 1))
    x = L.Conv2D(8, 3, activation="relu", name="c1")(inputs)
    x = L.Conv2D(8, 3, activation="relu", name="c2")(x)
    model = keras.Model(inputs, L.Dense(3, activation="softmax", name="head")(L.GlobalAveragePooling2D()(x)))
    if compiled:
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def run_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "keras_taylor", *args], capture_output=True, text=True, env=env, timeout=600)


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "demo" in capsys.readouterr().out
    for command in ("demo", "analyze", "compress"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "usage: keras-taylor " + command in capsys.readouterr().out


def test_analyze_prints_table_blockers_and_max_reduction(tmp_path, capsys):
    inputs = keras.Input((12, 12, 1))
    x = L.Conv2D(8, 3, name="free")(inputs)
    y = L.Conv2D(4, 3, name="blocked")(x)
    y = L.GroupNormalization(2, name="gn")(y)
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(y)))
    path = tmp_path / "m.keras"
    model.save(path)
    assert cli.main(["analyze", str(path), "--csv", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "blocked" in out and "gn" in out and "GroupNormalization" in out
    assert "Maximum reduction" in out
    table = pd.read_csv(tmp_path / "t.csv")
    assert table.set_index("name").loc["free", "prunable"]


def test_errors_are_one_line_with_nonzero_exit(tmp_path, capsys):
    not_a_model = tmp_path / "junk.keras"
    not_a_model.write_text("not a zip")
    assert cli.main(["analyze", str(not_a_model)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not be loaded" in err and "Traceback" not in err
    assert cli.main(["analyze", str(tmp_path / "missing.keras")]) == 2
    assert "does not exist" in capsys.readouterr().err
    path = tmp_path / "m.keras"
    tiny_model().save(path)
    assert cli.main(["compress", str(path), "--data", str(tmp_path / "nothing.npz"), "--out", str(tmp_path / "o.keras")]) == 2
    assert "neither an .npz" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 12, 12, 1)))
    assert cli.main(["compress", str(path), "--data", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o.keras")]) == 2
    assert "x_train" in capsys.readouterr().err
    np.savez(tmp_path / "ok.npz", x_train=np.zeros((8, 12, 12, 1)), y_train=np.zeros(8))
    assert cli.main(["compress", str(path), "--data", str(tmp_path / "ok.npz"), "--goal", "2", "--out", str(tmp_path / "o.keras")]) == 2
    assert "goal" in capsys.readouterr().err
    args = ["compress", str(path), "--data", str(tmp_path / "ok.npz"), "--rebuild-threshold", "-1", "--out", str(tmp_path / "o.keras")]
    assert cli.main(args) == 2
    assert "rebuild_threshold" in capsys.readouterr().err


def test_compress_npz_writes_model_history_and_plot(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((96, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 3, 96)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_val=x[:32], y_val=y[:32])
    tiny_model().save(tmp_path / "m.keras")
    out = tmp_path / "out" / "small.keras"
    assert cli.main([
        "compress", str(tmp_path / "m.keras"), "--data", str(tmp_path / "d.npz"), "--goal", "0.3",
        "--increment", "0.1", "--threshold", "0.0", "--metric", "accuracy", "--out", str(out),
    ]) == 0
    small = keras.models.load_model(out, safe_mode=True)
    assert small.count_params() < tiny_model().count_params()
    history = pd.read_csv(tmp_path / "out" / "small.pruning_history.csv")
    assert history.learnables_reduction.iloc[-1] >= 0.3
    assert (tmp_path / "out" / "small.png").stat().st_size > 1000


def test_compress_image_folder_with_uncompiled_model(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("a", "b", "c"):
        folder = tmp_path / "images" / label
        folder.mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(folder / f"{i}.png")
    tiny_model(compiled=False).save(tmp_path / "m.keras")
    assert cli.main([
        "compress", str(tmp_path / "m.keras"), "--data", str(tmp_path / "images"),
        "--loss", "sparse_categorical_crossentropy", "--goal", "0.2", "--increment", "0.1",
        "--batch-size", "8", "--out", str(tmp_path / "small.keras"),
    ]) == 0
    assert keras.models.load_model(tmp_path / "small.keras").count_params() < tiny_model().count_params()


def test_demo_quick_runs_offline_and_writes_outputs(tmp_path):
    result = run_cli("demo", "--quick", "--out", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Before / after" in result.stdout and "fewer" in result.stdout
    files = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"digits_cnn_pruned.keras", "pruning.png", "pruning_history.csv"} <= files
    assert keras.models.load_model(tmp_path / "demo" / "digits_cnn_pruned.keras", safe_mode=True)
