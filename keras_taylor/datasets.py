"""Offline image datasets as float32 NHWC arrays scaled to [0, 1].

* ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1797 real
  images, shipped inside the package: no download ever).
* ``"mnist"``, ``"fashion_mnist"``: Keras's own loaders (which read
  `$KERAS_HOME/datasets/` before trying to download).
* ``"cifar10"``: Keras's loader, or a local `.npz` with x_train, y_train,
  x_test, y_test when the environment variable `KERAS_TAYLOR_CIFAR10_NPZ`
  names one.
"""

import os

import numpy as np

NAMES = ("digits", "mnist", "fashion_mnist", "cifar10")
CIFAR10_NPZ_ENV = "KERAS_TAYLOR_CIFAR10_NPZ"


def load(name, test_fraction=0.25, seed=0):
    """Returns `(x_train, y_train), (x_test, y_test)`.

    Args:
        name: one of `NAMES`.
        test_fraction: held-out share for "digits" (which has no split).
        seed: shuffling seed for the "digits" split.
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = (bunch.images.astype("float32") / 16.0)[..., None]
        y = bunch.target.astype("int64")
        order = np.random.default_rng(seed).permutation(len(x))
        cut = int(len(x) * (1 - test_fraction))
        return (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])
    if name in ("mnist", "fashion_mnist"):
        import keras

        (xt, yt), (xs, ys) = getattr(keras.datasets, name).load_data()
        return (_scale(xt)[..., None], yt.astype("int64")), (_scale(xs)[..., None], ys.astype("int64"))
    if name == "cifar10":
        path = os.environ.get(CIFAR10_NPZ_ENV)
        if path:
            with np.load(path) as f:
                xt, yt, xs, ys = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
        else:
            import keras

            (xt, yt), (xs, ys) = keras.datasets.cifar10.load_data()
        return (_scale(xt), yt.reshape(-1).astype("int64")), (_scale(xs), ys.reshape(-1).astype("int64"))
    raise ValueError(f"dataset must be one of {NAMES}, got {name!r}")


def _scale(x):
    return (x.astype("float32") / 255.0)
