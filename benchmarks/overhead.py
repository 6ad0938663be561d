"""Step-time overhead of gathering Taylor scores inside `fit`.

Times `TaylorPrunableModel.fit` (masks + score gathering in `train_step`)
against plain `keras.Model.fit` of the same ResNet-20 (CIFAR shapes, batch
128), alternating the two in one run, and prints the ratio of median step
times. Target: <= 1.10.

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
    from keras_taylor import reference_models

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((steps * batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, steps * batch)
    plain = reference_models.resnet20()
    pm = kt.TaylorPrunableModel(plain)
    for model in (plain, pm):
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy")
        model.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, epochs=1, verbose=0)  # trace
    times = {"plain": [], "taylor": []}
    for _ in range(rounds):
        for name, model in (("plain", plain), ("taylor", pm)):
            timer = _step_timer()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[timer], shuffle=False)
            times[name].extend(timer.times[1:])  # the first step waits on the iterator
    assert pm.score_count.numpy() > 0
    medians = {k: float(np.median(v)) for k, v in times.items()}
    return {
        "plain_step_s": medians["plain"],
        "taylor_step_s": medians["taylor"],
        "ratio": medians["taylor"] / medians["plain"],
        "steps_each": len(times["plain"]),
    }


def write_docs(result, quick):
    section = "\n".join([
        "## Score-gathering overhead in `fit`",
        "",
        f"Command: `{_common.command()}`  ",
        f"Date: {_common.now()}, code {_common.code_version()}  ",
        f"Machine: {_common.machine()}",
        "",
        "ResNet-20 (CIFAR shapes 32x32x3, batch 128, SGD with momentum): median step time of "
        "`TaylorPrunableModel.fit` (masks plus Taylor-score gathering in `train_step`) against plain "
        "`keras.Model.fit` of the same network, alternated in one run. Target: ratio <= 1.10.",
        "",
        _common.markdown_table(
            ["plain fit step (ms)", "TaylorPrunableModel fit step (ms)", "ratio", "steps timed each", "mode"],
            [[f"{1000 * result['plain_step_s']:.1f}", f"{1000 * result['taylor_step_s']:.1f}",
              f"{result['ratio']:.3f}", result["steps_each"], "quick" if quick else "full"]],
        ),
    ])
    _common.write_section("overhead", section)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    result = measure(rounds=2 if args.quick else 5, steps=10 if args.quick else 20)
    print(f"plain fit step   {1000 * result['plain_step_s']:.1f} ms")
    print(f"Taylor fit step  {1000 * result['taylor_step_s']:.1f} ms")
    print(f"ratio            {result['ratio']:.3f}  (target <= 1.10)")
    if not args.no_docs:
        write_docs(result, args.quick)
    return result


if __name__ == "__main__":
    main()
