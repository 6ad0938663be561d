"""End to end on a model we did not write: keras-hub's MobileNetV3 small on the CIFAR-10 subset.

The model is `keras_hub.models.MobileNetImageClassifier` around a
`MobileNetBackbone` built from the real `mobilenetv3_small_100` preset's
architecture (keras-hub's own timm converter gives the config; no download),
at 32x32 input, 10 classes, trained here from scratch: its convolutions sit
inside keras-hub's custom block layers (`DepthwiseConvBlock`,
`InvertedResidualBlock`, `SqueezeAndExcite2D`), which keras-taylor opens by
tracing. The training split of the real CIFAR-10 subset is cut into training
and validation images; `kt.compress` prunes toward 60% fewer learnables
with a floor of the baseline's validation accuracy minus 5 points, and the
test split is scored once at the end.

keras-hub writes the depthwise convolutions as `Conv2D(groups=channels)`,
which TensorFlow trains about ten times slower on the CPU than
`DepthwiseConv2D`. The prunable model keras-taylor makes copies them as
depthwise layers (`keras_taylor.graph.depthwise`), so compress is not
slowed; the baseline is trained the same way (on keras-taylor's exact,
unpruned copy of the keras-hub model) and its weights are written back into
the keras-hub model, which is what `kt.compress` is given.

    python -m benchmarks.hub_compress [--quick] [--no-docs]
"""

import time

from benchmarks import _common, _workloads  # noqa: F401  (_workloads first: offline data)

FLOOR_POINTS = 5.0
GOAL = 0.6
VALIDATION_IMAGES = 1000


def settings(quick):
    return {"epochs": 2 if quick else 12, "train": 2000 if quick else 0, "max_iterations": 2 if quick else None,
            "fine_tune_epochs": 1 if quick else 2, "lr": 2e-3}


def build(num_classes=10, image_shape=(32, 32, 3)):
    """The keras-hub classifier with the mobilenetv3_small_100 architecture."""
    import keras_hub
    from keras_hub.src.utils.timm import convert_mobilenet

    config = convert_mobilenet.convert_backbone_config({"architecture": "mobilenetv3_small_100"})
    backbone = keras_hub.models.MobileNetBackbone(**config, image_shape=image_shape)
    return keras_hub.models.MobileNetImageClassifier(backbone, num_classes=num_classes)


def data(s):
    """Standardised (train, validation, test) arrays."""
    w = _workloads.resnet20_cifar()
    (xt, yt), test = _workloads.load_data(w)
    xv, yv = xt[:VALIDATION_IMAGES], yt[:VALIDATION_IMAGES]
    xt, yt = _workloads.subset((xt[VALIDATION_IMAGES:], yt[VALIDATION_IMAGES:]), s["train"])
    return (xt, yt[:, 0] if yt.ndim > 1 else yt), (xv, yv.reshape(-1)), (test[0], test[1].reshape(-1))


def compile_model(model, lr, steps=None):
    import keras

    rate = keras.optimizers.schedules.CosineDecay(lr, steps) if steps else lr
    # keras-hub's classifier ends in a Dense without softmax: logits. XLA off:
    # compiling it again after every rebuild costs more than it saves here.
    model.compile(keras.optimizers.Adam(rate), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
    return model


def write_back(trained, model, check):
    """Copies the weights of `trained` (keras-taylor's depthwise copy) into keras-hub's `model`."""
    import numpy as np

    from keras_taylor.graph import read_model

    ours, theirs = read_model(trained).nodes, read_model(model).nodes
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    done = set()
    for a, b in zip(ours, theirs):
        if id(b.layer) in done or not getattr(b.layer, "weights", None):
            continue
        done.add(id(b.layer))
        arrays = a.layer.get_weights()
        b.layer.set_weights([np.reshape(v, w.shape) for v, w in zip(arrays, b.layer.weights)])
    difference = np.max(np.abs(np.asarray(trained(check, training=False)) - np.asarray(model(check, training=False))))
    assert difference < 1e-4, f"write-back changed the outputs by {difference}"


def train_baseline(train, validation, s):
    import keras
    import numpy as np

    import keras_taylor as kt

    keras.utils.set_random_seed(0)
    model = build()
    trained = kt.strip_pruning(kt.TaylorPrunableModel(model))  # exact, with DepthwiseConv2D
    steps = s["epochs"] * int(np.ceil(len(train[0]) / 128))
    compile_model(trained, s["lr"], steps)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(s["epochs"]):
        trained.fit(_workloads.augment(train[0], rng, 4), train[1], batch_size=128, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    write_back(trained, model, validation[0][:64])
    compile_model(model, s["lr"])
    accuracy = model.evaluate(*validation, verbose=0)[1]
    print(f"[hub] baseline: {s['epochs']} epochs in {seconds:.0f} s, validation accuracy "
          f"{100 * accuracy:.2f}%", flush=True)
    return model, accuracy, seconds


def run(quick):
    import keras_taylor as kt

    s = settings(quick)
    train, validation, test = data(s)
    base, base_val, base_seconds = train_baseline(train, validation, s)
    base_test = base.evaluate(*test, verbose=0)[1]
    compile_model(base, s["lr"] / 10)
    floor = base_val - FLOOR_POINTS / 100
    start = time.perf_counter()
    pruned, info = kt.compress(
        base, train, goal=GOAL, increment=0.05, fine_tune_epochs=s["fine_tune_epochs"],
        validation_data=validation, validation_threshold=floor, metric="accuracy", batch_size=128,
        max_iterations=s["max_iterations"], seed=0, verbose=2)
    seconds = time.perf_counter() - start
    compile_model(pruned, s["lr"] / 10)
    result = {
        "train": len(train[0]), "validation": len(validation[0]), "test": len(test[0]),
        "base_params": base.count_params(), "pruned_params": pruned.count_params(),
        "reduction": info.learnables_reduction, "base_val": base_val, "floor": floor,
        "base_test": base_test, "pruned_test": pruned.evaluate(*test, verbose=0)[1],
        "pruned_val": pruned.evaluate(*validation, verbose=0)[1], "stop": str(info.stop_reason),
        "iterations": len(info.pruning_history), "seconds": seconds, "base_seconds": base_seconds,
    }
    print("[hub]", result, flush=True)
    return result, s


def write_docs(r, s, quick):
    lines = [
        "## End to end on keras-hub: MobileNetV3 small on the CIFAR-10 subset",
        "",
        *_workloads.header(quick),
        f"Model: `keras_hub.models.MobileNetImageClassifier` with the `mobilenetv3_small_100` "
        "architecture (keras-hub 0.32's timm converter config, 32x32 input, 10 classes; its "
        "convolutions live inside keras-hub's custom block layers, opened by tracing), trained "
        f"here from scratch for {s['epochs']} epochs (Adam, cosine from {s['lr']}, flip + crop; trained as "
        "keras-taylor's exact copy with `DepthwiseConv2D` for keras-hub's `Conv2D(groups=channels)`, "
        "ten times faster on this CPU, and the weights written back into the keras-hub model) on "
        f"{r['train']} images of the real CIFAR-10 subset; {r['validation']} held-out training images "
        f"validate, the {r['test']} test images are scored once at the end. `kt.compress(goal={GOAL}, "
        f"increment=0.05, fine_tune_epochs={s['fine_tune_epochs']}, metric=\"accuracy\", validation_threshold=<baseline "
        f"validation - {FLOOR_POINTS:g} points>)`, Adam at a tenth of the rate.",
        "",
        _common.markdown_table(
            ["model", "parameters", "validation accuracy %", "test accuracy %", "time s"],
            [["baseline", f"{r['base_params']:,}", f"{100 * r['base_val']:.2f}", f"{100 * r['base_test']:.2f}",
              f"{r['base_seconds']:.0f} (training)"],
             ["compressed", f"{r['pruned_params']:,}", f"{100 * r['pruned_val']:.2f}",
              f"{100 * r['pruned_test']:.2f}", f"{r['seconds']:.0f} (compress)"]]),
        "",
        f"{100 * r['reduction']:.1f}% fewer learnables ({r['iterations']} iterations; stop: {r['stop']}); "
        f"floor {100 * r['floor']:.2f}% validation accuracy.",
    ]
    _common.write_section("hub_compress", "\n".join(lines))


def main():
    args = _common.parser(__doc__).parse_args()
    result, s = run(args.quick)
    if not args.no_docs:
        write_docs(result, s, args.quick)


if __name__ == "__main__":
    main()
