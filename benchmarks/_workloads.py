"""Workloads shared by the benchmarks: offline data, baselines, caching.

Importing this module points Keras at the offline data (`KERAS_HOME` with a
`datasets` link to `../shared/data`, and `KERAS_TAYLOR_CIFAR10_NPZ` at the real
CIFAR-10 subset) and must therefore happen before `import keras`.

Baselines are trained once per configuration and cached under
`benchmarks/.cache/` (gitignored), keyed by a hash of the configuration, so
reruns are cheap. Quick mode (`--quick`) reuses the full-mode baseline when it is
cached and otherwise trains a small one (a subset, 2 epochs), and prunes and
fine-tunes on subsets: its numbers are a smoke test, not results.

Baseline recipe (both workloads): SGD with momentum 0.9, batch 128, cosine
learning-rate decay from `lr`, decoupled weight decay 5e-4 (ResNet-20 only),
inputs standardised per channel with the training-set statistics, and per
epoch a fresh NumPy augmentation (random horizontal flip and a random crop of
the image padded by `pad` pixels) for the ResNet-20 workloads. The
augmentation is done in NumPy so the PyTorch twin can see the very same data.
Fine-tuning (in `kt.compress` and in the criteria benchmark) uses SGD with
momentum 0.9 at a tenth of the initial rate and no augmentation.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import time

import numpy as np

from benchmarks import _common

SHARED_DATA = _common.REPO.parent / "shared" / "data"
CACHE = _common.REPO / "benchmarks" / ".cache"
CIFAR_NPZ = SHARED_DATA / "extra" / "cifar10-real-subset.npz"


def _setup_offline_data():
    home = os.environ.get("KERAS_HOME")
    if not home or not (pathlib.Path(home) / "datasets" / "mnist.npz").exists():
        home = CACHE / "keras_home"
        home.mkdir(parents=True, exist_ok=True)
        link = home / "datasets"
        if not link.exists() and SHARED_DATA.exists():
            link.symlink_to(SHARED_DATA.resolve())
        os.environ["KERAS_HOME"] = str(home)
    if "KERAS_TAYLOR_CIFAR10_NPZ" not in os.environ and CIFAR_NPZ.exists():
        os.environ["KERAS_TAYLOR_CIFAR10_NPZ"] = str(CIFAR_NPZ)


_setup_offline_data()


ADDED_FIELDS = ("alpha", "upscale")  # Workload fields newer than the cached baselines


@dataclasses.dataclass(frozen=True)
class Workload:
    """A model + dataset + baseline recipe; `key()` names its cache entry."""

    name: str          # "resnet20-cifar10", ...
    model: str         # "resnet20" or "digits_cnn"
    dataset: str       # keras_taylor.datasets name
    input_shape: tuple
    n_train: int       # first n of the (fixed-seed shuffled) training split; 0 = all
    n_test: int        # first n of the test split; 0 = all
    epochs: int
    lr: float = 0.1
    weight_decay: float = 5e-4
    pad: int = 4       # random-crop padding; 0 = no augmentation
    batch: int = 128
    seed: int = 0
    alpha: float = 1.0  # MobileNetV2's width multiplier
    upscale: int = 1   # images enlarged this many times (nearest neighbour) before the model sees them

    def key(self):
        # fields added after baselines were cached stay out of the key at their defaults, so those stay valid
        added = {f.name: f.default for f in dataclasses.fields(self) if f.name in ADDED_FIELDS}
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k not in added or v != added[k]}
        blob = json.dumps(fields, sort_keys=True)
        return f"{self.name}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"

    def describe(self):
        aug = f"flip + {self.pad}-pixel crop" if self.pad else "none"
        width = f" alpha {self.alpha}" if self.alpha != 1.0 else ""
        scaled = f", images enlarged {self.upscale}x (nearest neighbour)" if self.upscale != 1 else ""
        return (
            f"{self.model}{width} on {self.dataset} ({self._count(self.n_train, 'y_train')} training / "
            f"{self._count(self.n_test, 'y_test')} test images{self._source()}{scaled}, "
            f"input {'x'.join(map(str, self.input_shape))}), "
            f"baseline {self.epochs} epochs, SGD momentum 0.9, lr {self.lr} cosine, "
            f"weight decay {self.weight_decay}, batch {self.batch}, augmentation {aug}"
        )


    def _cifar_subset(self):
        path = os.environ.get("KERAS_TAYLOR_CIFAR10_NPZ") if self.dataset == "cifar10" else None
        return pathlib.Path(path) if path and pathlib.Path(path).exists() else None

    def _source(self):
        """Names the CIFAR-10 subset file: 'all' images of it are not all of CIFAR-10."""
        subset = self._cifar_subset()
        return f" of the real CIFAR-10 subset {subset.name} (CIFAR-10 itself has 50000 / 10000)" if subset else ""

    def _count(self, n, key):
        if n:
            return str(n)
        subset = self._cifar_subset()
        if subset is None:
            return "all"
        with np.load(subset) as f:
            return f"all {len(f[key])}"


def _choose(quick, full, small):
    """Quick mode reuses the full baseline when it is cached, else a small one."""
    if quick and not is_cached(full):
        return small
    return full


def resnet20_cifar(quick=False):
    return _choose(
        quick,
        Workload("resnet20-cifar10", "resnet20", "cifar10", (32, 32, 3), n_train=0, n_test=0, epochs=20),
        Workload("resnet20-cifar10", "resnet20", "cifar10", (32, 32, 3), n_train=2000, n_test=1000, epochs=2),
    )


def mobilenetv2_cifar(quick=False):
    """keras.applications' MobileNetV2 (alpha 1.0, 32x32 input, trained from scratch) on the CIFAR-10 subset."""
    return _choose(
        quick,
        Workload("mobilenetv2-cifar10", "mobilenetv2", "cifar10", (32, 32, 3), n_train=0, n_test=0, epochs=20),
        Workload("mobilenetv2-cifar10", "mobilenetv2", "cifar10", (32, 32, 3), n_train=2000, n_test=1000, epochs=2),
    )


def mobilenetv2_cifar_64(quick=False):
    """MobileNetV2 alpha 0.5 on the CIFAR-10 subset enlarged to 64x64: about the MACs of alpha 1.0 at
    32x32, but its last feature map is 2x2, not 1x1, so it has room to learn the data."""
    full = Workload("mobilenetv2-cifar10-64", "mobilenetv2", "cifar10", (64, 64, 3), n_train=0, n_test=0,
                    epochs=20, pad=8, alpha=0.5, upscale=2)
    small = dataclasses.replace(full, n_train=2000, n_test=1000, epochs=2)
    return _choose(quick, full, small)


WORKLOADS = {"resnet20": resnet20_cifar, "mobilenetv2": mobilenetv2_cifar, "mobilenetv2-64": mobilenetv2_cifar_64}


def resnet20_fashion(quick=False):
    return _choose(
        quick,
        Workload("resnet20-fashion", "resnet20", "fashion_mnist", (28, 28, 1), n_train=6000, n_test=2000,
                 epochs=5, pad=2),
        Workload("resnet20-fashion", "resnet20", "fashion_mnist", (28, 28, 1), n_train=2000, n_test=1000,
                 epochs=2, pad=2),
    )


def digits_mnist(quick=False):
    return _choose(
        quick,
        Workload("digits-mnist", "digits_cnn", "mnist", (28, 28, 1), n_train=10000, n_test=10000,
                 epochs=3, lr=0.01, weight_decay=0.0, pad=0),
        Workload("digits-mnist", "digits_cnn", "mnist", (28, 28, 1), n_train=3000, n_test=2000,
                 epochs=2, lr=0.01, weight_decay=0.0, pad=0),
    )


def _paths(w):
    path = CACHE / "baselines" / f"{w.key()}.weights.h5"
    return path, CACHE / "baselines" / f"{w.key()}.json"


def is_cached(w):
    return all(p.exists() for p in _paths(w))


def subset(data, n, seed=0):
    """The first `n` of a fixed permutation of `(x, y)` (all if n is falsy)."""
    import numpy as np

    x, y = data
    if not n or n >= len(x):
        return x, y
    order = np.random.default_rng(seed + 1).permutation(len(x))[:n]
    return x[order], y[order]


_DATA = {}


def load_data(w):
    """Standardised float32 `(x_train, y_train), (x_test, y_test)` for `w`."""
    import numpy as np

    from keras_taylor import datasets

    cache_key = (w.dataset, w.n_train, w.n_test, w.seed, w.upscale)
    if cache_key in _DATA:
        return _DATA[cache_key]
    (xt, yt), (xs, ys) = datasets.load(w.dataset)
    if w.n_train and w.n_train < len(xt):
        order = np.random.default_rng(w.seed).permutation(len(xt))[: w.n_train]
        xt, yt = xt[order], yt[order]
    if w.n_test and w.n_test < len(xs):
        xs, ys = xs[: w.n_test], ys[: w.n_test]
    if w.upscale != 1:
        xt, xs = (np.repeat(np.repeat(x, w.upscale, axis=1), w.upscale, axis=2) for x in (xt, xs))
    mean = xt.mean(axis=(0, 1, 2), keepdims=True)
    std = xt.std(axis=(0, 1, 2), keepdims=True) + 1e-6
    out = ((xt - mean) / std).astype("float32"), yt.astype("int64"), \
        ((xs - mean) / std).astype("float32"), ys.astype("int64")
    _DATA[cache_key] = ((out[0], out[1]), (out[2], out[3]))
    return _DATA[cache_key]


def augment(x, rng, pad):
    """Random horizontal flip and random crop after zero padding (NumPy)."""
    import numpy as np

    if not pad:
        return x
    n, h, w, _ = x.shape
    flip = rng.random(n) < 0.5
    x = np.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    out = np.empty_like(x)
    for i in range(n):
        out[i] = padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return out


def build(w):
    import keras

    from keras_taylor import reference_models

    if w.model != "mobilenetv2":
        return getattr(reference_models, w.model)(input_shape=w.input_shape)
    model = keras.applications.MobileNetV2(input_shape=w.input_shape, alpha=w.alpha, weights=None, classes=10)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            # Keras's 0.999 is for ImageNet-long training: after a few thousand
            # steps the moving statistics would still be mostly their initial values.
            layer.momentum = 0.99
    return model


def compile_for_fine_tuning(model, w):
    import keras

    model.compile(
        keras.optimizers.SGD(w.lr / 10, momentum=0.9),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def evaluate(model, x, y, batch=256):
    """Test accuracy (fraction)."""
    import numpy as np

    correct = 0
    for i in range(0, len(x), batch):
        pred = model.predict_on_batch(x[i:i + batch])
        correct += int((np.argmax(pred, axis=-1) == y[i:i + batch]).sum())
    return correct / len(x)


def baseline(w, verbose=True):
    """The trained baseline of `w` (cached) and a dict with its accuracy."""
    import keras
    import numpy as np

    (xt, yt), (xs, ys) = load_data(w)
    path, meta_path = _paths(w)
    keras.utils.set_random_seed(w.seed)
    model = build(w)
    if path.exists() and meta_path.exists():
        model.load_weights(path)
        meta = json.loads(meta_path.read_text())
        meta["cached"] = True
        if verbose:
            print(f"[{w.name}] cached baseline {path.name}: accuracy {100 * meta['accuracy']:.2f}%", flush=True)
        return compile_for_fine_tuning(model, w), meta
    steps = w.epochs * int(np.ceil(len(xt) / w.batch))
    schedule = keras.optimizers.schedules.CosineDecay(w.lr, steps)
    model.compile(
        keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=w.weight_decay or None),
        "sparse_categorical_crossentropy", metrics=["accuracy"],
    )
    rng = np.random.default_rng(w.seed)
    start = time.perf_counter()
    for epoch in range(w.epochs):
        model.fit(augment(xt, rng, w.pad), yt, batch_size=w.batch, epochs=1, verbose=0, shuffle=True)
        if verbose and (epoch + 1) % max(1, w.epochs // 5) == 0:
            print(f"[{w.name}] baseline epoch {epoch + 1}/{w.epochs}: test accuracy "
                  f"{100 * evaluate(model, xs, ys):.2f}% ({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start
    meta = {"accuracy": evaluate(model, xs, ys), "train_seconds": seconds, "workload": dataclasses.asdict(w)}
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(path)
    meta_path.write_text(json.dumps(meta, indent=1))
    meta["cached"] = False
    if verbose:
        print(f"[{w.name}] baseline trained in {seconds:.0f} s: accuracy {100 * meta['accuracy']:.2f}%", flush=True)
    return compile_for_fine_tuning(model, w), meta


def cifar_fine_tuning(quick, train_subset, workload=resnet20_cifar):
    """A CIFAR-10 workload (default the CIFARNet twin), its baseline and meta, and `(train subset, test split)`."""
    w = workload(quick)
    base, meta = baseline(w)
    (xt, yt), val = load_data(w)
    return w, base, meta, (subset((xt, yt), train_subset), val)


def fresh_copy(model, w):
    """An independent compiled copy of a baseline (same weights)."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return compile_for_fine_tuning(copy, w)


def learnables(model):
    """Trainable parameters (MATLAB's learnables: no BN moving statistics)."""
    import numpy as np

    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def save_summary(name, rows):
    """Stores this benchmark's summary rows for `benchmarks.run`."""
    path = CACHE / "summaries" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))


def header(quick):
    return _common.provenance("quick" if quick else "full")
