"""Test setup: quiet TensorFlow, offline Keras datasets from ../shared/data."""

import os
import pathlib
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# helpers.py names the same folder (SHARED_DATA); it cannot be imported
# here, before KERAS_HOME is set, since it imports Keras.
SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"

if "KERAS_HOME" not in os.environ and SHARED_DATA.is_dir():
    home = pathlib.Path(tempfile.mkdtemp(prefix="keras_home_"))
    (home / "datasets").symlink_to(SHARED_DATA.resolve())
    os.environ["KERAS_HOME"] = str(home)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield
    # Without the gc.collect() of free_memory=True: it costs ~0.1 s a test
    # and the interpreter collects on its own.
    keras.backend.clear_session(free_memory=False)
