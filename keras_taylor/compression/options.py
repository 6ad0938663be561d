"""The options of `kt.compress`, grouped the way users think of them.

What to reach (`Target`), how to fine-tune (`FineTuning`), how channel
groups are scored (`Scoring`), where to checkpoint (`Checkpointing`). Each
option is documented once, here; `compress`'s own docstring lists them from
these classes. A new option is a field in its group, a keyword of
`compress` and, if a resumed run must match it, an entry in the checkpoint
fingerprint (`loop.fingerprint`).
"""

import dataclasses

import numpy as np

from keras_taylor import goals, scoring
from keras_taylor.errors import InvalidArgumentError
from keras_taylor.rebuild import check_threshold

OUTPUTS = ("best-validation", "last-iteration")


@dataclasses.dataclass
class Target:
    """What to reach, and when to stop trying.

    Attributes:
        goal: fraction of the original `cost` to remove, in (0, 1); with
            `cost="macs"` or `"latency"` also `kt.Speedup(2.0)` ("2x
            faster"), with `cost="latency"` also `kt.LatencyBudget(ms=3)`
            ("at most 3 ms"). A latency goal reached by the profile's
            prediction is then checked by timing the pruned model beside
            the unpruned one on the runtime (at most 3 times); where the
            timing misses, the profile is refitted and pruning goes on.
        increment: fraction of the original `cost` removed per iteration
            (a share of the learnables with the default cost, like
            `goal`; the callback's `amount` counts channel groups instead).
            Each iteration aims at the next multiple of `increment` (up to
            `goal`), so what rounding to whole channels overshoots is not
            carried forward.
        max_iterations: optional cap on pruning iterations.
        validation_threshold: the value of `metric` that stops pruning.
        metric: validation metric name (one of the compiled metrics, e.g.
            `"accuracy"`, without a `val_` prefix), default `"loss"`. Checked
            before any training, with or without `validation_data`. Whether
            lower or higher is better comes from the metric object Keras
            builds (as for Keras's `EarlyStopping`), or from `mode`.
        mode: `"auto"` (the direction Keras knows for `metric`), `"min"` or
            `"max"`: whether a lower or a higher `metric` is better.
        output: `"best-validation"` (in each iteration, the fine-tuning epoch
            with the best validation metric) or `"last-iteration"`.
        cost: what `goal` counts: `"learnables"` (default, MATLAB's;
            groups go lowest score first), `"macs"` or `"latency"` (groups
            go lowest score per unit of cost saved first), or a
            `kt.latency_profile(...)` (any runtime, threads, batch size).
        runtime: for `cost="latency"`: `"litert"` (one interpreter thread,
            batch 1) or `"keras"`; the profile is measured once and cached.
        round_to: keep every pruned layer's channel count a multiple of
            this (see `TaylorPrunableModel.update_prunables`).
        ranking: None (default: the cost's own order, as above),
            `"importance"` (lowest score first whatever the cost) or
            `"importance_per_cost"` (see `TaylorPrunableModel.update_prunables`).
    """

    goal: float = 0.3
    increment: float = 0.05
    max_iterations: int = None
    validation_threshold: float = None
    metric: str = None
    mode: str = "auto"
    output: str = "best-validation"
    cost: object = "learnables"
    runtime: str = "litert"
    round_to: int = None
    ranking: str = None

    def check(self, validation_data):
        goals.check_overall_goal(self.goal, goals.check_cost(self.cost))
        goals.check_ranking(self.ranking, self.cost)
        if not (isinstance(self.increment, (int, float)) and 0 < self.increment <= 1):
            raise InvalidArgumentError(f"increment must be a fraction in (0, 1], got {self.increment!r}")
        if self.output not in OUTPUTS:
            raise InvalidArgumentError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.validation_threshold is not None and validation_data is None:
            raise InvalidArgumentError("validation_threshold needs validation_data")
        if self.max_iterations is not None and not (isinstance(self.max_iterations, int) and self.max_iterations > 0):
            raise InvalidArgumentError(f"max_iterations must be a positive int, got {self.max_iterations!r}")


@dataclasses.dataclass
class FineTuning:
    """How the model is fine-tuned after each pruning step.

    Attributes:
        fine_tune_epochs: epochs of fine-tuning after each pruning step.
        steps_per_epoch: batches per fine-tuning epoch, as for `fit`; also
            the most batches scored before the first step. Required for a
            dataset that never ends (`ds.repeat()`).
        validation_steps: batches of `validation_data` per validation (the
            same first batches each time). Required for an infinite one.
        callbacks: extra Keras callbacks for the fine-tuning `fit` calls.
            `info.training_history` counts training steps (not callback
            calls, which `compile(steps_per_execution=k)` makes every k
            steps).
        class_weight: optional dict `{class index: weight}` passed to the
            fine-tuning `fit` calls.
        recalibration_batches: after each pruning step, batches of `ds` over
            which the moving statistics of the `BatchNormalization` layers
            are re-estimated (`recalibrate_batch_norm`), so validation and
            fine-tuning start from statistics of the pruned network, not the
            stale ones of the unpruned network; again before each
            validation during fine-tuning (or at the end of a fit without
            validation data). 0 turns it off (MATLAB's behaviour).
        rebuild_threshold: `"auto"` or a fraction in [0, 1]. Pruned filters
            are masked at first: a masked model computes what the stripped
            one does but costs the full model's time per step, while
            stripping and wrapping again (a rebuild) makes Keras trace its
            functions anew (seconds to tens of seconds). `"auto"` measures
            both as the run goes (tracing, and the time per iteration at the
            built width) and rebuilds when the fine-tuning time it predicts a
            rebuild saves over the iterations left exceeds that cost; its
            choices follow timings, so use a number for runs that repeat
            bit for bit. A number rebuilds once pruned filters hold that
            fraction of the learnables of the model being fine-tuned: 0
            after every pruning step (MATLAB's behaviour), 1 never during
            the loop. The returned model is stripped either way.
    """

    fine_tune_epochs: int = 1
    steps_per_epoch: int = None
    validation_steps: int = None
    callbacks: list = None
    class_weight: dict = None
    recalibration_batches: int = 10
    rebuild_threshold: object = "auto"

    def check(self):
        if not (isinstance(self.fine_tune_epochs, int) and self.fine_tune_epochs >= 0):
            raise InvalidArgumentError(f"fine_tune_epochs must be an int >= 0, got {self.fine_tune_epochs!r}")
        if not check_threshold(self.rebuild_threshold):
            raise InvalidArgumentError(
                f"rebuild_threshold must be 'auto' or a fraction in [0, 1], got {self.rebuild_threshold!r}"
            )
        batches = self.recalibration_batches
        if isinstance(batches, bool) or not (isinstance(batches, int) and batches >= 0):
            raise InvalidArgumentError(f"recalibration_batches must be an int >= 0, got {batches!r}")


@dataclasses.dataclass
class Scoring:
    """How channel groups are scored, and which of them may be pruned.

    Attributes:
        criterion: a `kt.importance.Criterion` or its name: `"taylor"`,
            `"l1"` or `"random"`.
        score_batches: batches of `ds` used to gather fresh Taylor scores
            before each pruning step. None: the scores gathered during the
            previous fine-tuning (free); before the first step (every step
            if `fine_tune_epochs=0`), batches of `ds` until the groups that
            step would prune agree (Jaccard >= 0.8) with those chosen on half
            as many batches (compared at 4/8, 8/16, ...; at most one pass).
            With a number, fine-tuning gathers no scores of its own
            (`TaylorPrunableModel.gather_scores` off), since each step
            replaces them.
        normalize: False (raw scores), `"l2"` (or True) or `"mean"`:
            normalise scores per layer (`TaylorPrunableModel(normalize=...)`).
        prune_dense: also prune Dense units.
        prune_frozen: True (default) prunes layers with `trainable=False`
            too (they are counted in the learnables); False leaves every
            channel group touching a frozen layer alone, so a frozen backbone
            keeps its exact weights (`TaylorPrunableModel(prune_frozen=...)`).
    """

    criterion: object = "taylor"
    score_batches: int = None
    normalize: object = False
    prune_dense: bool = False
    prune_frozen: bool = True

    def check(self):
        if self.score_batches is not None and not (isinstance(self.score_batches, int) and self.score_batches > 0):
            raise InvalidArgumentError(f"score_batches must be a positive int or None, got {self.score_batches!r}")
        scoring.as_normalizer(self.normalize)


@dataclasses.dataclass
class Checkpointing:
    """Where a run keeps its state, and the seed that makes it repeat.

    Attributes:
        checkpoint_dir: optional directory. After every completed iteration
            the state (current and best model, histories, scores, stop
            bookkeeping, a fingerprint of the arguments, model and data) is
            written there atomically. Calling `compress` again with the same
            arguments resumes after the last completed iteration (or returns
            the finished result); different arguments, model or data, or a
            corrupt checkpoint, raise `CheckpointError`.
        seed: optional int. Seeds Keras, NumPy and Python, every layer's
            own random stream (Dropout, augmentation) and the shuffling of
            array data afresh at each iteration from `(seed, iteration)`, and
            TensorFlow's global seed once, so runs repeat and a resumed run
            ends where an uninterrupted one does. (TensorFlow's own unseeded
            random ops, which Keras layers do not use, are not reseeded per
            iteration: that would make TensorFlow rebuild every traced
            function each iteration.)
    """

    checkpoint_dir: str = None
    seed: int = None

    def check(self):
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise InvalidArgumentError(f"seed must be a non-negative int or None, got {seed!r}")


@dataclasses.dataclass
class CompressOptions:
    """Every option of one `compress` call, by group (see `compress_with`).

    Attributes:
        target: a `Target`: what to reach.
        fine_tuning: a `FineTuning`: how to fine-tune.
        scoring: a `Scoring`: how to score.
        checkpointing: a `Checkpointing`: where to checkpoint, and the seed.
        batch_size: batch size for NumPy inputs.
        verbose: 0 silent; 1 a line per pruning iteration, and Keras's
            progress bars while fine-tuning when the output is a terminal or
            a notebook, one line per epoch otherwise (so redirected logs hold
            no carriage returns); 2 a line per iteration and one line per
            fine-tuning epoch.
    """

    target: Target = dataclasses.field(default_factory=Target)
    fine_tuning: FineTuning = dataclasses.field(default_factory=FineTuning)
    scoring: Scoring = dataclasses.field(default_factory=Scoring)
    checkpointing: Checkpointing = dataclasses.field(default_factory=Checkpointing)
    batch_size: int = 32
    verbose: int = 1

    def check(self, validation_data):
        """Raises `InvalidArgumentError` naming the first invalid option."""
        self.target.check(validation_data)
        self.fine_tuning.check()
        self.scoring.check()
        self.checkpointing.check()


def attributes_section(cls):
    """The lines of `cls`'s docstring under "Attributes:", as written there."""
    lines = cls.__doc__.splitlines()
    start = lines.index("    Attributes:") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(lines[start:end])
