"""The keras-taylor command line."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import keras
from keras_taylor import cli
from keras_taylor.cli import commands

L = keras.layers


def tiny_model(compiled=True, filters=8):
    inputs = keras.Input((12, 12, 1))
    x = L.Conv2D(filters, 3, activation="relu", name="c1")(inputs)
    x = L.Conv2D(filters, 3, activation="relu", name="c2")(x)
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
    y = L.LayerNormalization(axis=(1, 2, 3), name="gn")(y)
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(y)))
    path = tmp_path / "m.keras"
    model.save(path)
    assert cli.main(["analyze", str(path), "--csv", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "blocked" in out and "gn" in out and "LayerNormalization" in out
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
    with pytest.raises(SystemExit) as exit_info:  # a fraction above 1: argparse's error, with the usage line
        cli.main(["compress", str(path), "--data", str(tmp_path / "ok.npz"), "--goal", "2", "--out", str(tmp_path / "o.keras")])
    assert exit_info.value.code == 2 and "--goal" in capsys.readouterr().err
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
    assert "validation images held out of the training set" in result.stdout
    assert "validation accuracy floor" in result.stdout and "offline" in result.stdout
    assert "\r" not in result.stdout and "\x1b[" not in result.stdout
    files = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"digits_cnn_pruned.keras", "pruning.png", "pruning_history.csv"} <= files
    assert keras.models.load_model(tmp_path / "demo" / "digits_cnn_pruned.keras", safe_mode=True)
    assert not keras.models.load_model(tmp_path / "demo" / "digits_cnn_pruned.keras").compiled


def test_analyze_names_every_unprunable_candidate_and_why(tmp_path, capsys):
    inputs = keras.Input((12, 12, 1))
    x = L.Conv2D(8, 3, name="free")(inputs)
    y = L.Conv2D(4, 3, name="blocked")(x)
    y = L.GroupNormalization(2, axis=1, name="gn")(y)  # over a spatial axis: blocks
    model = keras.Model(inputs, L.Dense(2, name="head")(L.Dense(6, name="hidden")(L.GlobalAveragePooling2D()(y))))
    path = tmp_path / "m.keras"
    model.save(path)
    assert cli.main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    section = out.split("Layers that cannot be pruned, and why:")[1].split("Prunable layers")[0]
    rows = {line.split()[0]: line for line in section.strip().splitlines()[1:]}
    assert set(rows) == {"blocked", "hidden", "head"}
    assert "gn" in rows["blocked"] and "GroupNormalization" in rows["blocked"]
    assert "prune_dense=True" in rows["hidden"] and "prune_dense=True" in rows["head"]
    assert "Prunable layers: 1 of 4 candidate layers" in out
    assert cli.main(["analyze", str(path), "--prune-dense"]) == 0
    out = capsys.readouterr().out
    section = out.split("Layers that cannot be pruned, and why:")[1].split("Prunable layers")[0]
    assert "head" in section and "model output" in section and "hidden" not in section
    assert "Prunable layers: 2 of 4 candidate layers" in out


def test_analyze_says_a_file_is_not_a_valid_keras_file(tmp_path, capsys):
    junk = tmp_path / "notamodel.keras"
    junk.write_bytes(b"\x00" * 64)
    assert cli.main(["analyze", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "notamodel.keras" in err and "not a valid .keras file" in err and "File not found" not in err
    other = tmp_path / "model.h5"
    other.write_bytes(b"\x00")
    assert cli.main(["analyze", str(other)]) == 2
    assert "model.h5" in (err := capsys.readouterr().err) and "not a .keras file" in err


def test_cli_start_prints_no_tensorflow_logs(tmp_path):
    tiny_model(compiled=False).save(tmp_path / "m.keras")  # (a compiled, untrained one makes Keras warn on load)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "keras_taylor", "analyze", str(tmp_path / "m.keras")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""
    assert "Maximum reduction" in result.stdout


def test_compress_verbose_levels_and_optimizer_state(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.random((64, 12, 12, 1)).astype("float32")
    np.savez(tmp_path / "d.npz", x_train=x, y_train=rng.integers(0, 3, 64))
    tiny_model().save(tmp_path / "m.keras")
    common = ["compress", str(tmp_path / "m.keras"), "--data", str(tmp_path / "d.npz"), "--goal", "0.1",
              "--increment", "0.1", "--epochs", "2"]
    assert cli.main(common + ["--verbose", "0", "--out", str(tmp_path / "quiet.keras")]) == 0
    out = capsys.readouterr().out
    assert "Epoch" not in out and "Iteration" not in out
    assert not keras.models.load_model(tmp_path / "quiet.keras").compiled
    assert cli.main(common + ["--out", str(tmp_path / "kept.keras"), "--keep-optimizer"]) == 0
    out = capsys.readouterr().out  # not a terminal: one line per epoch, no bars
    assert "Epoch 2/2" in out and "\r" not in out and "\x1b[" not in out
    assert keras.models.load_model(tmp_path / "kept.keras").optimizer is not None
    with pytest.raises(SystemExit):
        cli.main(common + ["--verbose", "3", "--out", str(tmp_path / "x.keras")])
    assert "--verbose" in capsys.readouterr().err


def test_demo_says_offline_only_when_it_is(monkeypatch):
    monkeypatch.delenv("KERAS_TAYLOR_CIFAR10_NPZ", raising=False)
    assert "offline" in commands._dataset_source("digits")
    for name in ("mnist", "fashion_mnist", "cifar10"):
        assert "offline" not in commands._dataset_source(name) and "download" in commands._dataset_source(name)
    monkeypatch.setenv("KERAS_TAYLOR_CIFAR10_NPZ", "/data/c.npz")
    assert "offline" in commands._dataset_source("cifar10") and "/data/c.npz" in commands._dataset_source("cifar10")


def test_demo_split_keeps_validation_apart_from_training():
    x = np.arange(100).reshape(100, 1)
    (xt, yt), (xv, yv) = commands._split_validation(x, x[:, 0], 0.15, seed=0)
    assert len(xv) == 15 and len(xt) == 85
    assert not set(xv[:, 0]) & set(xt[:, 0]) and set(xv[:, 0]) | set(xt[:, 0]) == set(range(100))
    np.testing.assert_array_equal(xt[:, 0], yt)


# ------------------------------------------------------------ cost goals
def test_goal_spellings_become_fractions_speedups_and_budgets():
    assert cli._goal("0.3") == ("fraction", 0.3)
    assert cli._goal("2x") == ("speedup", 2.0) and cli._goal("1.5X") == ("speedup", 1.5)
    assert cli._goal("3ms") == ("ms", 3.0) and cli._goal(" 0.5ms ") == ("ms", 0.5)
    import keras_taylor as kt

    assert commands._goal(("speedup", 2.0)) == kt.Speedup(2.0)
    assert commands._goal(("ms", 3.0)) == kt.LatencyBudget(ms=3.0)
    assert commands._goal(("fraction", 0.3)) == 0.3


@pytest.mark.parametrize("extra, words", [
    (["--goal", "1.2"], "fraction goal must be in (0, 1)"),
    (["--goal", "0.5x", "--cost", "macs"], "speedup must be above 1x"),
    (["--goal", "0ms", "--cost", "latency"], "above 0 ms"),
    (["--goal", "fast"], "--goal"),
    (["--goal", "2x"], "needs --cost macs or --cost latency"),
    (["--goal", "3ms", "--cost", "macs"], "needs --cost latency"),
    (["--cost", "flops"], "invalid choice: 'flops'"),
    (["--round-to", "0"], "positive integer"),
    (["--round-to", "eight"], "positive integer"),
    (["--ranking", "cheapest"], "invalid choice: 'cheapest'"),
    (["--cost", "macs", "--threads", "2"], "--threads only apply with --cost latency"),
    (["--runtime", "keras", "--latency-batch-size", "4"], "--runtime, --latency-batch-size only apply"),
])
def test_bad_cost_options_are_argparse_errors_naming_them(extra, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["compress", "m.keras", "--data", "d.npz", "--out", "o.keras", *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: keras-taylor compress" in err and words in err and "Traceback" not in err


def _tiny_npz(tmp_path, filters=8):
    rng = np.random.default_rng(0)
    x = rng.random((32, 12, 12, 1)).astype("float32")
    np.savez(tmp_path / "d.npz", x_train=x, y_train=rng.integers(0, 3, 32))
    tiny_model(filters=filters).save(tmp_path / "m.keras")
    return ["compress", str(tmp_path / "m.keras"), "--data", str(tmp_path / "d.npz"), "--epochs", "0",
            "--recalibration-batches", "0", "--batch-size", "8"]


def test_compress_reaches_a_macs_speedup_with_round_to(tmp_path, capsys):
    import keras_taylor as kt

    out = tmp_path / "small.keras"
    args = _tiny_npz(tmp_path) + ["--cost", "macs", "--goal", "1.5x", "--round-to", "2", "--increment", "0.2",
                                  "--ranking", "importance"]
    assert cli.main(args + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fewer MACs" in printed
    small = keras.models.load_model(out)
    macs = [kt.analyze(m).multiply_accumulates.sum() for m in (tiny_model(), small)]
    assert macs[0] / macs[1] >= 1.5 - 1e-9
    assert all(layer.filters % 2 == 0 for layer in small.layers if isinstance(layer, L.Conv2D))
    history = pd.read_csv(tmp_path / "small.pruning_history.csv")
    assert history.macs_reduction.iloc[-1] == pytest.approx(1 - macs[1] / macs[0])


def test_compress_latency_goal_profiles_the_runtime_asked_for(tmp_path, monkeypatch, capsys):
    import keras_taylor as kt
    from keras_taylor import profile

    asked = []

    def fake_profile(model, runtime, threads, batch_size):
        asked.append((runtime, threads, batch_size))
        timer = lambda models, *settings: [1e-5 + 1e-8 * int(kt.analyze(m).multiply_accumulates.sum()) for m in models]
        return profile.latency_profile(model, runtime, threads, batch_size, samples=4, cache_dir=False, timer=timer)

    monkeypatch.setattr(kt, "latency_profile", fake_profile)
    # 32 filters a layer: the profile's variants keep multiples of 8 channels, so 8 would leave no width to vary.
    args = _tiny_npz(tmp_path, filters=32) + ["--cost", "latency", "--goal", "0.05", "--runtime", "keras", "--threads", "2",
                                  "--latency-batch-size", "4", "--out", str(tmp_path / "small.keras")]
    assert cli.main(args) == 0
    assert asked == [("keras", 2, 4)]
    assert "lower predicted latency" in capsys.readouterr().out
    history = pd.read_csv(tmp_path / "small.pruning_history.csv")
    assert history.latency_reduction.iloc[-1] >= 0.05 - 1e-9
    assert cli.main(_tiny_npz(tmp_path, filters=32) + ["--cost", "latency", "--goal", "1.1x", "--out", str(tmp_path / "b.keras")]) == 0
    assert asked[-1] == ("litert", 1, 1)  # the defaults: LiteRT, one thread, batch 1
