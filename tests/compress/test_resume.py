"""kt.compress(checkpoint_dir=...): killed runs resume and end where uninterrupted ones do."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import keras
import keras_taylor as kt

L = keras.layers
HERE = os.path.dirname(os.path.abspath(__file__))

# A numeric rebuild_threshold: "auto" chooses by measured times, which a
# resumed run measures anew.
ARGS = dict(goal=0.3, increment=0.15, fine_tune_epochs=1, batch_size=16, seed=7, metric="accuracy", rebuild_threshold=0.25)


def make_files(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(12, 3, padding="same", name="c1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU()(x)
    x = L.Dropout(0.2)(x)
    x = L.Conv2D(12, 3, padding="same", activation="relu", name="c2")(x)
    outputs = L.Dense(3, activation="softmax", name="head")(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 96)
    x = rng.normal(size=(96, 8, 8, 1)).astype("float32") * 0.1
    x[np.arange(96), y, y, 0] += 3.0
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    return tmp_path / "model.keras", tmp_path / "data.npz"


def load(model_path, data_path):
    model = keras.models.load_model(model_path)
    with np.load(data_path) as d:
        return model, (d["x"], d["y"])


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np, keras, keras_taylor as kt

    class Slow(keras.callbacks.Callback):
        # Long enough iterations that the kill lands inside one.
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(0.25)

    model = keras.models.load_model(sys.argv[1])
    with np.load(sys.argv[2]) as d:
        data = (d["x"], d["y"])
    kt.compress(model, data, validation_data=data, checkpoint_dir=sys.argv[3], callbacks=[Slow()],
                verbose=0, **{ARGS})
    print("FINISHED")
    """
).replace("{ARGS}", repr(ARGS))


@pytest.mark.xfail(
    tuple(int(p) for p in keras.__version__.split(".")[:2]) < (3, 15), strict=False,
    reason="Keras 3.5 and 3.12: after certain other tests ran in the same process (e.g. the doctests of "
           "tests/test_docs.py), the resumed run's weights differ from the uninterrupted one's; it passes "
           "alone. Open: issue 28's report.",
)
def test_killed_compress_resumes_to_the_uninterrupted_result(tmp_path):
    model_path, data_path = make_files(tmp_path)
    ckpt = tmp_path / "ckpt"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=HERE)
    child = subprocess.Popen(
        [sys.executable, str(script), str(model_path), str(data_path), str(ckpt)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        deadline = time.time() + 240
        while not (ckpt / "state.json").exists():
            assert child.poll() is None, child.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "no checkpoint written"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    state = json.loads((ckpt / "state.json").read_text())["state"]
    assert state["stop_reason"] is None and state["iteration"] >= 1

    model, data = load(model_path, data_path)
    resumed, info = kt.compress(model, data, validation_data=data, checkpoint_dir=ckpt, verbose=0, **ARGS)

    model, data = load(model_path, data_path)
    reference, ref_info = kt.compress(model, data, validation_data=data, verbose=0, **ARGS)

    assert info.stop_reason == ref_info.stop_reason
    assert info.returned_iteration == ref_info.returned_iteration > state["iteration"]
    np.testing.assert_array_equal(info.pruning_history.values, ref_info.pruning_history.values)
    np.testing.assert_allclose(
        info.validation_history[["loss", "metric"]].values,
        ref_info.validation_history[["loss", "metric"]].values, rtol=1e-4, atol=1e-5,
    )
    assert len(info.training_history) == len(ref_info.training_history)
    assert [w.shape for w in resumed.weights] == [w.shape for w in reference.weights]
    for a, b in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # Only the files of the last state are left behind.
    names = sorted(p.name for p in ckpt.iterdir())
    assert len(names) == 2 and names[0].startswith("best_") and names[1] == "state.json"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A compress run that completed with a checkpoint."""
    tmp_path = tmp_path_factory.mktemp("resume")
    model_path, data_path = make_files(tmp_path)
    model, data = load(model_path, data_path)
    args = dict(ARGS, fine_tune_epochs=0, max_iterations=2)
    pruned, info = kt.compress(model, data, checkpoint_dir=tmp_path / "ckpt", verbose=0, **args)
    return tmp_path, model_path, data_path, args, pruned, info


def test_finished_checkpoint_returns_the_result_without_work(finished, capsys):
    tmp_path, model_path, data_path, args, pruned, info = finished
    model, data = load(model_path, data_path)
    again, info2 = kt.compress(model, data, checkpoint_dir=tmp_path / "ckpt", verbose=1, **args)
    out = capsys.readouterr().out
    assert "Resuming" in out and "Iteration" not in out
    assert info2.stop_reason == info.stop_reason == "Maximum number of iterations reached."
    np.testing.assert_array_equal(info2.pruning_history.values, info.pruning_history.values)
    for a, b in zip(again.get_weights(), pruned.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert again.compiled


@pytest.mark.parametrize(
    "change, word",
    [
        (dict(goal=0.6), "goal: 0.3 then, 0.6 now"),
        (dict(seed=8), "seed"),
        (dict(criterion="l1"), "criterion"),
    ],
)
def test_other_arguments_are_refused(finished, change, word):
    tmp_path, model_path, data_path, args, _, _ = finished
    model, data = load(model_path, data_path)
    before = (tmp_path / "ckpt" / "state.json").read_text()
    with pytest.raises(kt.CheckpointError, match=word):
        kt.compress(model, data, checkpoint_dir=tmp_path / "ckpt", verbose=0, **dict(args, **change))
    assert (tmp_path / "ckpt" / "state.json").read_text() == before


def test_other_model_or_data_is_refused(finished):
    tmp_path, model_path, data_path, args, _, _ = finished
    model, data = load(model_path, data_path)
    weights = model.get_weights()
    model.set_weights([w + 1 for w in weights])
    with pytest.raises(kt.CheckpointError, match="model weights differ"):
        kt.compress(model, data, checkpoint_dir=tmp_path / "ckpt", verbose=0, **args)
    model.set_weights(weights)
    with pytest.raises(kt.CheckpointError, match="ds differ"):
        kt.compress(model, (data[0] + 1, data[1]), checkpoint_dir=tmp_path / "ckpt", verbose=0, **args)


def test_corrupt_checkpoints_are_refused(finished, tmp_path):
    src, model_path, data_path, args, _, _ = finished
    model, data = load(model_path, data_path)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "state.json").write_text("{not json")
    with pytest.raises(kt.CheckpointError, match="corrupt.*state.json"):
        kt.compress(model, data, checkpoint_dir=ckpt, verbose=0, **args)
    saved = json.loads((src / "ckpt" / "state.json").read_text())
    saved["files"]["best"] = "best_0099.keras"
    (ckpt / "state.json").write_text(json.dumps(saved))
    with pytest.raises(kt.CheckpointError, match="best_0099.keras.*missing"):
        kt.compress(model, data, checkpoint_dir=ckpt, verbose=0, **args)
    (ckpt / "best_0099.keras").write_text("not a zip")
    with pytest.raises(kt.CheckpointError, match="best_0099.keras.*cannot be loaded"):
        kt.compress(model, data, checkpoint_dir=ckpt, verbose=0, **args)
    assert isinstance(kt.CheckpointError("x"), ValueError)
