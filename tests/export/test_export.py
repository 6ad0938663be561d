"""kt.measure_latency, kt.export_litert and `keras-taylor export` on tiny models.

No timing is asserted: only that the measurements exist and are shaped right.
"""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras

import keras_taylor as kt
from keras_taylor import cli, export, latency

L = keras.layers


def small_cnn():
    """Conv-BN-ReLU twice, then a softmax head: something to fold and quantize."""
    inputs = keras.Input((10, 10, 3))
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(8, 3, name="c2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU()(x)
    outputs = L.Dense(4, activation="softmax", name="head")(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs, name="small_cnn")
    # Non-trivial batch-norm statistics, so folding has something to fold.
    rng = np.random.default_rng(0)
    for bn in (model.get_layer("bn1"), model.get_layer("bn2")):
        bn.set_weights([1 + 0.2 * rng.standard_normal(8), 0.1 * rng.standard_normal(8),
                        0.1 * rng.standard_normal(8), 0.5 + rng.random(8)])
    return model


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 10, 10, 3), dtype=np.float32), rng.integers(0, 4, n)


def weights_of(model):
    return [w.copy() for w in model.get_weights()]


def litert_outputs(path, x):
    with open(path, "rb") as f:
        flat = f.read()
    return export._litert_predict(flat, x)


# ----------------------------------------------------------------- export
@pytest.mark.parametrize("precision, tolerance", [("float32", 1e-5), ("float16", 2e-2), ("int8", 6e-2)])
def test_export_round_trip_matches_keras(tmp_path, precision, tolerance):
    model = small_cnn()
    before, layers = weights_of(model), [layer.name for layer in model.layers]
    x, y = data()
    path = tmp_path / f"m_{precision}.tflite"
    report = kt.export_litert(model, path, precision=precision, representative_data=x,
                              validation_data=(x, y), latency_runs=2)
    expected = model.predict_on_batch(x)
    got = litert_outputs(path, x)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= tolerance * np.max(np.abs(expected))
    assert np.mean(got.argmax(-1) == expected.argmax(-1)) >= (0.9 if precision == "int8" else 0.99)
    # The model passed in is not changed (folding works on a copy).
    assert [layer.name for layer in model.layers] == layers
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert report.path == str(path) and report.precision == precision


def test_int8_file_is_integer_and_smaller(tmp_path):
    model = small_cnn()
    x, y = data()
    report = kt.export_litert(model, tmp_path / "q.tflite", precision="int8", representative_data=(x, y),
                              latency_runs=0)
    frame = report.to_frame().set_index("model")
    assert frame.loc["litert int8", "file_mb"] < frame.loc["litert float32", "file_mb"]
    interpreter = latency.interpreter((tmp_path / "q.tflite").read_bytes(), 1)
    # Float in and out (a drop-in file), int8 tensors inside.
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    assert sum(d["dtype"] == np.int8 for d in interpreter.get_tensor_details()) >= 6


def test_report_columns_and_rows(tmp_path):
    model = small_cnn()
    x, y = data()
    report = kt.export_litert(model, tmp_path / "h.tflite", precision="float16", validation_data=(x, y),
                              latency_runs=2)
    frame = report.to_frame()
    assert list(frame.columns) == ["model", "runtime", "file_mb", "latency_ms", "latency_iqr_ms", "accuracy",
                                   "agreement"]
    assert list(frame["model"]) == ["keras", "litert float32", "litert float16"]
    assert list(frame["runtime"]) == ["keras", "litert", "litert"]
    assert (frame["latency_ms"] > 0).all() and (frame["file_mb"] > 0).all()
    accuracy = float(np.mean(model.predict_on_batch(x).argmax(-1) == y))
    assert frame.loc[0, "accuracy"] == pytest.approx(accuracy)
    assert frame.loc[0, "agreement"] == 1.0
    assert "litert float16" in str(report)


def test_report_without_validation_or_timing_and_custom_metric(tmp_path):
    model = small_cnn()
    x, y = data()
    frame = kt.export_litert(model, tmp_path / "a.tflite", latency_runs=0).to_frame()
    assert frame["accuracy"].isna().all() and frame["latency_ms"].isna().all()

    def mean_confidence(y_true, y_pred):
        return float(y_pred.max(-1).mean())

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    frame = kt.export_litert(model, tmp_path / "b.tflite", validation_data=ds, metric=mean_confidence,
                             latency_runs=0).to_frame()
    assert "mean_confidence" in frame.columns
    assert frame["mean_confidence"].between(0.25, 1).all()


def test_int8_calibrates_from_tf_data(tmp_path):
    model = small_cnn()
    x, y = data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    report = kt.export_litert(model, tmp_path / "q.tflite", precision="int8", representative_data=ds,
                              representative_samples=24, validation_data=(x, y), latency_runs=0)
    assert report.to_frame().set_index("model").loc["litert int8", "agreement"] >= 0.9


def test_prunable_model_is_stripped_first(tmp_path):
    model = small_cnn()
    pm = kt.TaylorPrunableModel(model, criterion="l1")
    pm.update_prunables(max_to_prune=4)
    x, _ = data()
    kt.export_litert(pm, tmp_path / "p.tflite", latency_runs=0)
    got = litert_outputs(tmp_path / "p.tflite", x)
    np.testing.assert_allclose(got, pm.predict_on_batch(x), atol=1e-5)
    assert latency.interpreter((tmp_path / "p.tflite").read_bytes(), 1).get_input_details()[0]["shape"][-1] == 3


def test_fold_batch_norm_false_still_round_trips(tmp_path):
    model = small_cnn()
    x, _ = data()
    kt.export_litert(model, tmp_path / "n.tflite", fold_batch_norm=False, latency_runs=0)
    np.testing.assert_allclose(litert_outputs(tmp_path / "n.tflite", x), model.predict_on_batch(x), atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"precision": "int8"}, "representative_data"),
    ({"precision": "int4"}, "precision"),
    ({"path": "model.keras"}, "path"),
    ({"threads": 0}, "threads"),
    ({"batch_size": 1.5}, "batch_size"),
    ({"latency_runs": -1}, "latency_runs"),
    ({"precision": "int8", "representative_data": np.zeros((4, 5, 5, 3), "float32")}, "representative_data"),
    ({"precision": "int8", "representative_data": "x.npy"}, "representative_data"),
    ({"validation_data": "val"}, "validation_data"),
    ({"metric": "mae"}, "metric"),
])
def test_export_argument_errors_name_the_argument(tmp_path, kwargs, match):
    model = small_cnn()
    before = weights_of(model)
    kwargs = dict({"path": str(tmp_path / "m.tflite")}, **kwargs)
    with pytest.raises(kt.InvalidArgumentError, match=match):
        kt.export_litert(model, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_model_that_cannot_convert_is_a_clear_error(tmp_path):
    inputs = keras.Input((4,))
    outputs = L.Lambda(lambda t: tf.linalg.inv(tf.reshape(t, (-1, 2, 2))), output_shape=(2, 2), name="inverse")(inputs)
    model = keras.Model(inputs, outputs, name="has_inverse")
    with pytest.raises(kt.UnsupportedModelError, match="has_inverse.*LiteRT float32.*MatrixInverse"):
        kt.export_litert(model, tmp_path / "m.tflite", latency_runs=0)
    assert not (tmp_path / "m.tflite").exists()


def test_multi_input_models_and_non_models_are_refused(tmp_path):
    a, b = keras.Input((3,)), keras.Input((3,))
    two = keras.Model([a, b], L.Add()([a, b]), name="two_inputs")
    with pytest.raises(kt.UnsupportedModelError, match="two_inputs.*2 inputs"):
        kt.export_litert(two, tmp_path / "m.tflite")
    with pytest.raises(kt.UnsupportedModelError, match="keras.Model"):
        kt.measure_latency("not a model", runtime="keras")


# ---------------------------------------------------------------- latency
@pytest.mark.parametrize("runtime, batch_size", [("litert", 1), ("keras", 3)])
def test_measure_latency_result_fields(runtime, batch_size):
    model = small_cnn()
    result = kt.measure_latency(model, runtime=runtime, batch_size=batch_size, runs=4, sample_seconds=0.001)
    assert isinstance(result, latency.LatencyResult)
    assert result.runtime == runtime and result.runs == 4 and result.batch_size == batch_size
    assert result.calls_per_run >= 1
    assert result.q1 <= result.median <= result.q3 and result.iqr >= 0 and result.median > 0
    assert result.threads == (1 if runtime == "litert" else tf.config.threading.get_intra_op_parallelism_threads())
    assert runtime in str(result)


def test_measure_latency_of_a_litert_file(tmp_path):
    x, _ = data()
    kt.export_litert(small_cnn(), tmp_path / "q.tflite", precision="int8", representative_data=x, latency_runs=0)
    by_path = kt.measure_latency(str(tmp_path / "q.tflite"), threads=2, runs=2, sample_seconds=0.001)
    by_bytes = kt.measure_latency((tmp_path / "q.tflite").read_bytes(), runs=2, sample_seconds=0.001)
    assert by_path.threads == 2 and by_bytes.threads == 1 and by_path.runtime == "litert"


@pytest.mark.parametrize("kwargs, match", [
    ({"runtime": "onnx"}, "runtime"),
    ({"batch_size": 0}, "batch_size"),
    ({"runs": 0}, "runs"),
    ({"warmup": -1}, "warmup"),
    ({"threads": 0}, "threads"),
    ({"threads": True}, "threads"),
    ({"sample_seconds": -1}, "sample_seconds"),
    ({"runtime": "keras", "threads": 10_000}, "threads"),
])
def test_measure_latency_argument_errors(kwargs, match):
    with pytest.raises(kt.InvalidArgumentError, match=match):
        kt.measure_latency(small_cnn(), **kwargs)


def test_flatbuffer_on_keras_runtime_is_an_error():
    with pytest.raises(kt.InvalidArgumentError, match="runtime='litert'"):
        kt.measure_latency(b"\x00" * 16, runtime="keras")


def test_time_interleaved_gives_every_runner_its_samples():
    calls = {"a": 0, "b": 0}

    def bump(key):
        def run():
            calls[key] += 1
        return run

    times, per_sample = latency.time_interleaved({"a": bump("a"), "b": bump("b")}, runs=3, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    assert calls["a"] == 1 + 1 + 3 * per_sample["a"]  # warm-up, the sizing call, the samples


# -------------------------------------------------------------------- CLI
def test_cli_export_prints_the_comparison(tmp_path, capsys):
    model = small_cnn()
    model_path = tmp_path / "m.keras"
    model.save(model_path)
    x, y = data()
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_val=x[:32], y_val=y[:32])
    out = tmp_path / "m.tflite"
    code = cli.main(["export", str(model_path), "--precision", "int8", "--data", str(tmp_path / "d.npz"),
                     "--out", str(out), "--csv", str(tmp_path / "t.csv")])
    assert code == 0 and out.is_file()
    printed = capsys.readouterr().out
    assert "litert int8" in printed and "accuracy" in printed and "latency_ms" in printed
    assert list(pd.read_csv(tmp_path / "t.csv")["model"]) == ["keras", "litert float32", "litert int8"]


def test_cli_export_int8_without_data_is_one_line(tmp_path, capsys):
    small_cnn().save(tmp_path / "m.keras")
    code = cli.main(["export", str(tmp_path / "m.keras"), "--precision", "int8", "--out", str(tmp_path / "m.tflite")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--data" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("fold", [True, False])
def test_fold_batch_norm_argument_decides_folding(tmp_path, monkeypatch, fold):
    from keras_taylor import folding

    calls = []
    real = folding.fold_batch_norm
    monkeypatch.setattr(folding, "fold_batch_norm", lambda m: calls.append(m.name) or real(m))
    kt.export_litert(small_cnn(), tmp_path / "f.tflite", fold_batch_norm=fold, latency_runs=0)
    assert calls == (["small_cnn"] if fold else [])


def test_cli_export_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: keras-taylor export" in out and "--precision" in out


def test_keras_file_size_leaves_out_optimizer_state():
    model = small_cnn()
    plain = export.keras_file_bytes(model)
    model.compile(keras.optimizers.SGD(momentum=0.9), "sparse_categorical_crossentropy")
    x, y = data(8)
    model.fit(x, y, verbose=0)
    assert export.keras_file_bytes(model) == pytest.approx(plain, rel=0.02)
