"""When `compress` rebuilds the model smaller: a fixed share, or measured costs.

A masked model computes what the stripped one does but pays the full width
per step; a rebuild pays once, for stripping and for Keras tracing the new
model's train, test and scoring functions. Which is cheaper depends on the
model, the data per iteration, the iterations left and the hardware, so the
"auto" policy measures both sides as `compress` runs:

- trace cost: the first call of each function after a (re)build minus that
  function's steady time (median of its later calls), plus the strip;
- work per iteration at the built width: the steady time of each function
  times how often the last iteration called it;
- what a rebuild saves: that work times the share of multiply-accumulates
  pruned since the last build, over the iterations left. Narrower layers
  gain less than their arithmetic suggests (per-op overheads), so the time
  is predicted to fall as (multiply-accumulate ratio) ** 0.5 until a
  rebuild shows the gain actually seen, which calibrates the exponent.

It rebuilds when the predicted saving exceeds the cost. Decisions follow
measured times, so two runs can rebuild at different iterations; a masked
model and a rebuilt one agree only to float rounding, which fine-tuning can
amplify. A number as `rebuild_threshold` gives runs that repeat exactly.
"""

import math
import statistics
import time

import keras

AUTO = "auto"
TRAIN, TEST, SCORE = "train", "test", "score"
MIN_GAIN_EXPONENT = 0.1
# Before any rebuild is seen: stripped models measured by
# benchmarks/inference on this project's CPU ran at about
# (MAC ratio) ** 0.3-0.7 of the original's time (ResNet-20 0.5, MobileNetV2
# 0.3, ResNet50 0.7 at batch 32), not in proportion to their arithmetic; an
# exponent of 1 made marginal rebuilds of ResNet-20 that cost more than
# they saved.
PRIOR_GAIN_EXPONENT = 0.5


def check_threshold(value):
    """True when `value` is a valid `rebuild_threshold`."""
    if isinstance(value, str):
        return value == AUTO
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= 1


class RebuildPlanner:
    """Decides after each pruning step whether `compress` rebuilds now.

    Args:
        threshold: `"auto"` (measured costs) or a fraction in [0, 1]: rebuild
            once the masked share of the built model's learnables reaches it.
        clock: a zero-argument function returning seconds (for tests).
    """

    def __init__(self, threshold, clock=time.perf_counter):
        self.threshold = threshold
        self.clock = clock
        self._builds = []  # one dict per built model: calls, first-call times, surgery time
        self._iteration_calls = {}
        self._last_counts = {}
        self._pending_calibration = None
        self.gain_exponent = PRIOR_GAIN_EXPONENT  # predicted time ratio = (MAC ratio) ** gain_exponent
        self.decisions = []  # (iteration, rebuilt, predicted saving s, predicted cost s)

    # ----------------------------------------------------------- recording
    def built(self, pm, surgery_seconds=0.0):
        """`pm` was newly wrapped: its functions will be traced again."""
        macs = pm.original_multiply_accumulates if self.threshold == AUTO else None
        self._builds.append({"macs": macs, "surgery": surgery_seconds, "first": {}, "steady": {}})

    def record(self, kind, seconds):
        """One call of the train step (per batch), test run or scoring batch."""
        build = self._builds[-1]
        if kind not in build["first"]:
            build["first"][kind] = seconds
        else:
            build["steady"].setdefault(kind, []).append(seconds)
        self._iteration_calls[kind] = self._iteration_calls.get(kind, 0) + 1

    def timed(self, kind, fn, *args, **kwargs):
        start = self.clock()
        out = fn(*args, **kwargs)
        self.record(kind, self.clock() - start)
        return out

    def callback(self):
        """A Keras callback that records train batches and test runs of `fit`."""
        return _CallClock(self)

    def iteration_done(self):
        """Closes an iteration's call counts; calibrates after a rebuild."""
        if self._iteration_calls:
            self._last_counts = dict(self._iteration_calls)
        self._iteration_calls = {}
        predicted = self._pending_calibration
        if predicted is None or len(self._builds) < 2:
            return
        before, after = self._work(self._builds[-2]), self._work(self._builds[-1])
        if before and after:
            self._pending_calibration = None
            if predicted < 0.97:  # too small a change to read an exponent from
                observed = min(1.0, after / before)
                exponent = math.log(observed) / math.log(predicted)
                # A floor, so one noisy reading cannot stop all later rebuilds.
                self.gain_exponent = min(1.0, max(MIN_GAIN_EXPONENT, exponent))

    # ------------------------------------------------------------ deciding
    def should_rebuild(self, pm, iteration, iterations_left):
        """Whether to strip and re-wrap `pm` before fine-tuning this iteration.

        Args:
            pm: the `TaylorPrunableModel` just pruned (masked).
            iteration: this iteration's number (for `decisions`).
            iterations_left: iterations expected from this one on, this one
                included (its fine-tuning runs on whatever is chosen now).
        """
        if self.threshold != AUTO:
            return pm.learnables_reduction >= self.threshold - 1e-9
        build = self._builds[-1]
        work, cost = self._work(build), self._rebuild_cost()
        if work is None or cost is None or not build["macs"]:
            self.decisions.append((iteration, False, None, cost))
            return False
        ratio = pm.multiply_accumulates / build["macs"]
        saving = iterations_left * work * (1.0 - ratio ** self.gain_exponent)
        rebuild = saving > cost
        self.decisions.append((iteration, rebuild, saving, cost))
        if rebuild:
            self._pending_calibration = ratio
        return rebuild

    def _steady(self, build, kind):
        times = build["steady"].get(kind)
        return statistics.median(times) if times else None

    def _work(self, build):
        """Seconds an iteration like the last one takes at `build`'s width."""
        if not self._last_counts:
            return None
        steady = {kind: self._steady(build, kind) for kind in self._last_counts}
        if any(v is None for v in steady.values()):
            return None
        return sum(count * steady[kind] for kind, count in self._last_counts.items())

    def _rebuild_cost(self):
        """Tracing of the functions an iteration calls, plus the surgery.

        Read from the newest build whose first and steady calls are both
        known; the surgery time is the newest one measured (the first build
        had no strip, so until a rebuild happens it is an underestimate).
        """
        kinds = list(self._last_counts)
        for build in reversed(self._builds):
            if kinds and all(k in build["first"] and self._steady(build, k) is not None for k in kinds):
                traced = sum(build["first"][k] - self._steady(build, k) for k in kinds)
                return max(0.0, traced) + self._builds[-1]["surgery"]
        return None


class _CallClock(keras.callbacks.Callback):
    def __init__(self, planner):
        super().__init__()
        self.planner = planner
        self._start = self._test_start = None

    def on_train_batch_begin(self, batch, logs=None):
        self._start = self.planner.clock()

    def on_train_batch_end(self, batch, logs=None):
        self.planner.record(TRAIN, self.planner.clock() - self._start)

    def on_test_begin(self, logs=None):
        self._test_start = self.planner.clock()

    def on_test_end(self, logs=None):
        self.planner.record(TEST, self.planner.clock() - self._test_start)
