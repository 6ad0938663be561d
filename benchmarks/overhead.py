"""Step-time overhead of gathering Taylor scores inside `fit`.

Times `TaylorPrunableModel.fit` (masks + score gathering in `train_step`)
against `keras.Model.fit` of the same ResNet-20 (CIFAR shapes, batch 128),
alternating them in one run, and prints the ratio of median step times.
The prunable model trains its batch norms with the fused kernel
(`kt.FusedBatchNormalization`), so the overhead of masks and gathering is
measured against the plain model with the same layers (target <= 1.10), and
the gain a user sees against the plain Keras model as it was given.

    python -m benchmarks.overhead [--quick]
"""

import argparse
import time

from benchmarks import _common


def _step_timer():
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self._t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self._t)

    return StepTimer()


def measure(rounds=5, steps=20, batch=128):
    """Median step seconds of plain and score-gathering fit, and their ratio."""
    import numpy as np

    import keras
    import keras_taylor as kt
    from keras_taylor import handlers, reference_models

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((steps * batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, steps * batch)
    plain = reference_models.resnet20()
    same_layers = keras.models.clone_model(
        plain, clone_function=lambda layer: handlers.training_class(type(layer)).from_config(layer.get_config()))
    same_layers.set_weights(plain.get_weights())
    models = {"keras": plain, "plain": same_layers, "taylor": kt.TaylorPrunableModel(plain),
              "masked": kt.TaylorPrunableModel(plain)}
    for model in models.values():
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy")
        model.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, epochs=1, verbose=0)  # trace
    # The callback workflow: 30% of the groups masked (not stripped) while
    # training goes on, so every mask with a zero multiplies.
    masked = models["masked"]
    masked.update_prunables(max_to_prune=int(0.3 * masked.num_prunables))
    # Alternate short runs and take each round's ratio: this VM's speed drifts
    # by 20-30% over minutes, which a single pooled median would fold in.
    per_round = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            timer = _step_timer()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[timer], shuffle=False)
            per_round[name].append(float(np.median(timer.times[1:])))  # step 1 waits on the iterator
    assert models["taylor"].score_count.numpy() > 0
    plain_t = np.array(per_round["plain"])
    return {
        "keras_step_s": float(np.median(per_round["keras"])),
        "vs_keras": float(np.median(np.array(per_round["taylor"]) / np.array(per_round["keras"]))),
        "plain_step_s": float(np.median(plain_t)),
        "taylor_step_s": float(np.median(per_round["taylor"])),
        "masked_step_s": float(np.median(per_round["masked"])),
        "ratio": float(np.median(np.array(per_round["taylor"]) / plain_t)),
        "masked_ratio": float(np.median(np.array(per_round["masked"]) / plain_t)),
        "rounds": rounds,
        "steps_each": rounds * (steps - 1),
    }


def write_docs(result, quick):
    section = "\n".join([
        "## Score-gathering overhead in `fit`",
        "",
        f"Command: `{_common.command()}`  ",
        f"Date: {_common.now()}, code {_common.code_version()}  ",
        f"Machine: {_common.machine()}",
        "",
        "ResNet-20 (CIFAR shapes 32x32x3, batch 128, SGD with momentum): step time of "
        "`TaylorPrunableModel.fit` (masks plus Taylor-score gathering in `train_step`) against "
        "`keras.Model.fit` of the same network, alternated in one run: short `fit` runs in turn, "
        "each round's median step times divided, and the median of those ratios reported (the VM's "
        "speed drifts over minutes). The prunable model trains its batch norms with TensorFlow's "
        "fused kernel (`kt.FusedBatchNormalization`), so the overhead of masks and gathering is "
        "measured against a plain model with those same layers (target: ratio <= 1.10); the last "
        f"row compares with the plain Keras model as given: {1000 * result['keras_step_s']:.1f} ms "
        "a step.",
        "",
        "Masks read by convolutions are multiplied into those convolutions' kernels "
        "(`MaskedKernelConv2D`), the rest skip their multiply while all their channels are kept, so the "
        "first row is what a freshly wrapped or rebuilt model pays. The second row is the callback "
        "workflow, where pruned channels stay masked inside `fit` (30% of the groups masked here).",
        "",
        _common.markdown_table(
            ["TaylorPrunableModel state", "plain fit step (ms)", "TaylorPrunableModel fit step (ms)",
             "ratio", "rounds (steps timed each)", "mode"],
            [["nothing masked (kt.compress)", f"{1000 * result['plain_step_s']:.1f}",
              f"{1000 * result['taylor_step_s']:.1f}", f"{result['ratio']:.3f}", f"{result['rounds']} ({result['steps_each']})",
              "quick" if quick else "full"],
             ["30% of groups masked (callback)", f"{1000 * result['plain_step_s']:.1f}",
              f"{1000 * result['masked_step_s']:.1f}", f"{result['masked_ratio']:.3f}", f"{result['rounds']} ({result['steps_each']})",
              "quick" if quick else "full"],
             ["nothing masked, against plain Keras (Keras's own batch norm)", f"{1000 * result['keras_step_s']:.1f}",
              f"{1000 * result['taylor_step_s']:.1f}", f"{result['vs_keras']:.3f}",
              f"{result['rounds']} ({result['steps_each']})", "quick" if quick else "full"]],
        ),
    ])
    _common.write_section("overhead", section)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    result = measure(rounds=2 if args.quick else 12, steps=6 if args.quick else 10)
    print(f"keras fit step   {1000 * result['keras_step_s']:.1f} ms (Keras's own batch norm)")
    print(f"plain fit step   {1000 * result['plain_step_s']:.1f} ms (same layers as the prunable model)")
    print(f"Taylor fit step  {1000 * result['taylor_step_s']:.1f} ms")
    print(f"masked fit step  {1000 * result['masked_step_s']:.1f} ms (30% of groups masked)")
    print(f"ratio            {result['ratio']:.3f}  (target <= 1.10)")
    print(f"masked ratio     {result['masked_ratio']:.3f}")
    print(f"vs keras ratio   {result['vs_keras']:.3f}  (prunable model / plain Keras model)")
    if not args.no_docs:
        write_docs(result, args.quick)
    return result


if __name__ == "__main__":
    main()
