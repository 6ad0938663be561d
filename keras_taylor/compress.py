"""`compress`: score, prune, fine-tune and validate until a goal or a limit.

The Keras counterpart of MATLAB's `compressNetworkUsingTaylorPruning`. Pruned
filters are masked first; when `rebuild_threshold` says so (by default, when
the measured cost of a rebuild is below the fine-tuning time it is predicted
to save: `keras_taylor.rebuild`), the model is stripped and wrapped again, so
fine-tuning runs on the physically smaller network. Rebuilding makes Keras
trace its train, test and scoring functions anew (6-10 s for a ResNet-20
on two CPU cores, about a whole fine-tuning epoch on a few thousand images),
while a masked model computes exactly what the stripped one does.
"""

import dataclasses
import math
import random
import warnings

import numpy as np
import pandas as pd
import tensorflow as tf

import keras
from keras import ops
from keras_taylor import _compat, checkpoint, goals, importance, report
from keras_taylor import data as data_utils
from keras_taylor import workflow_checks
from keras_taylor.compile_settings import compile_settings, compile_with
from keras_taylor.errors import InvalidArgumentError, PruningStateError
from keras_taylor.graph.flat import check_readable
from keras_taylor.model import TaylorPrunableModel
from keras_taylor.profile import latency_profile
from keras_taylor.recalibration import RecalibrateBeforeValidation, recalibrate_batch_norm
from keras_taylor.rebuild import SCORE, TEST, RebuildPlanner, check_threshold
from keras_taylor.surgery import strip_pruning
from keras_taylor._verbosity import fit_verbose
from keras_taylor import _compat

OUTPUTS = ("best-validation", "last-iteration")
_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "mape", "msle", "hinge", "crossentropy")

GOAL_REACHED = "Learnables reduction goal reached."
COST_GOAL_REACHED = "Goal reached."
THRESHOLD_REACHED = "Validation metric threshold reached."
NOTHING_PRUNABLE = "No more prunable filters."
NON_FINITE = "Non-finite loss, weights or scores during fine-tuning."
BASELINE_MISSES = "The unpruned model already misses the validation threshold."
MAX_ITERATIONS = "Maximum number of iterations reached."

# Scoring without score_batches stops when the groups the next step would
# prune agree this well between n and 2n batches (first compared at 4 and 8:
# on the CIFARNet twin, 2-4 batches still disagree with a full pass on a
# third of the choice; 16 of 32 batches matched it exactly).
SETTLE_FIRST_CHECK = 4
SETTLE_AGREEMENT = 0.8


@dataclasses.dataclass
class PruningInfo:
    """What `compress` did.

    Attributes:
        pruning_history: DataFrame (iteration, num_learnables,
            learnables_reduction); iteration 0 is the unpruned model.
        validation_history: DataFrame (iteration, step, loss, metric,
            is_final): step 0 is right after pruning, then each fine-tuning
            epoch; `is_final` marks the value the iteration is judged by.
        training_history: DataFrame of every fine-tuning step's logs.
        pruned_layers: names of the layers whose learnables decreased.
        stop_reason: why pruning stopped.
        metric: name of the validation metric.
        threshold: the validation threshold, or None.
        returned_iteration: the iteration whose model was returned.
        rebuilt_iterations: iterations whose fine-tuning ran on a model
            rebuilt physically smaller (see `rebuild_threshold`).

    Example (the object `kt.compress` returns):

    >>> import keras, numpy as np, keras_taylor as kt
    >>> inputs = keras.Input((6, 6, 1))
    >>> x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    >>> model.compile("adam", "mse")
    >>> data = (np.random.rand(32, 6, 6, 1), np.random.rand(32, 2))
    >>> _, info = kt.compress(model, data, goal=0.4, increment=0.2, verbose=0)
    >>> list(info.pruning_history.columns)
    ['iteration', 'num_learnables', 'learnables_reduction']
    >>> info.learnables_reduction >= 0.4
    True
    """

    pruning_history: pd.DataFrame
    validation_history: pd.DataFrame
    training_history: pd.DataFrame
    pruned_layers: list
    stop_reason: str
    metric: str
    threshold: float = None
    returned_iteration: int = 0
    rebuilt_iterations: list = dataclasses.field(default_factory=list)

    @property
    def learnables_reduction(self):
        rows = self.pruning_history
        return float(rows.loc[rows.iteration == self.returned_iteration, "learnables_reduction"].iloc[0])

    def plot(self, path=None):
        """Learnables and validation metric per iteration (matplotlib).

        Args:
            path: if given, the figure is saved there (PNG, ...).

        Returns:
            The matplotlib Figure.
        """
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
        ph = self.pruning_history
        ax1.plot(ph.iteration, ph.num_learnables, "o-")
        ax1.set_xlabel("pruning iteration")
        ax1.set_ylabel("learnable parameters")
        ax1.set_title("Learnables")
        vh = self.validation_history
        if len(vh):
            offsets = vh.groupby("iteration").cumcount() / vh.groupby("iteration").step.transform("size")
            ax2.plot(vh.iteration + offsets, vh.metric, ".-", alpha=0.6, label="during fine-tuning")
            final = vh[vh.is_final]
            ax2.plot(final.iteration + offsets[vh.is_final], final.metric, "o", label="kept epoch of each iteration")
            if self.threshold is not None:
                ax2.axhline(self.threshold, color="r", ls="--", label="threshold")
            ax2.legend(fontsize=8)
        ax2.set_xlabel("pruning iteration")
        ax2.set_ylabel(self.metric)
        ax2.set_title("Validation")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig


def lower_is_better(metric):
    name = metric.lower()
    return any(token in name for token in _LOWER_IS_BETTER)


class _FineTuneMonitor(keras.callbacks.Callback):
    """Records step logs, validates per epoch, keeps the best weights."""

    def __init__(self, iteration, metric, minimize, keep_best):
        super().__init__()
        self.iteration = iteration
        self.metric = metric
        self.minimize = minimize
        self.keep_best = keep_best
        self.steps = []
        self.validations = []
        self.best = None
        self.best_index = None
        self.best_weights = None
        self.non_finite = False
        self._epoch = 0
        self._step = 0
        self._epoch_start = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = self._step

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution > 1 Keras calls back once per several steps.
        steps = (self.params or {}).get("steps")
        self._step = self._epoch_start + _compat.steps_done_in_epoch(self.model, batch, steps)
        logs = dict(logs or {})
        self.steps.append(dict(iteration=self.iteration, epoch=self._epoch + 1, step=self._step, **logs))
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.non_finite = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if "val_loss" not in logs:
            return
        value = float(logs.get(f"val_{self.metric}", logs["val_loss"]))
        self.validations.append((self._step, float(logs["val_loss"]), value))
        better = self.best is None or (value < self.best if self.minimize else value > self.best)
        if better and math.isfinite(value):
            self.best, self.best_index = value, len(self.validations) - 1
            if self.keep_best:
                self.best_weights = self.model.get_weights()


def _check_args(goal, increment, fine_tune_epochs, score_batches, output, validation_data, validation_threshold, max_iterations, rebuild_threshold, recalibration_batches):
    if not isinstance(goal, (goals.Speedup, goals.LatencyBudget)) and not (isinstance(goal, (int, float)) and 0 < goal < 1):
        raise InvalidArgumentError(f"goal must be a fraction in (0, 1), got {goal!r}")
    if not (isinstance(increment, (int, float)) and 0 < increment <= 1):
        raise InvalidArgumentError(f"increment must be a fraction in (0, 1], got {increment!r}")
    if not (isinstance(fine_tune_epochs, int) and fine_tune_epochs >= 0):
        raise InvalidArgumentError(f"fine_tune_epochs must be an int >= 0, got {fine_tune_epochs!r}")
    if score_batches is not None and not (isinstance(score_batches, int) and score_batches > 0):
        raise InvalidArgumentError(f"score_batches must be a positive int or None, got {score_batches!r}")
    if output not in OUTPUTS:
        raise InvalidArgumentError(f"output must be one of {OUTPUTS}, got {output!r}")
    if validation_threshold is not None and validation_data is None:
        raise InvalidArgumentError("validation_threshold needs validation_data")
    if max_iterations is not None and not (isinstance(max_iterations, int) and max_iterations > 0):
        raise InvalidArgumentError(f"max_iterations must be a positive int, got {max_iterations!r}")
    if not check_threshold(rebuild_threshold):
        raise InvalidArgumentError(f"rebuild_threshold must be 'auto' or a fraction in [0, 1], got {rebuild_threshold!r}")
    if isinstance(recalibration_batches, bool) or not (isinstance(recalibration_batches, int) and recalibration_batches >= 0):
        raise InvalidArgumentError(f"recalibration_batches must be an int >= 0, got {recalibration_batches!r}")


def compress(
    model,
    ds,
    goal=0.3,
    increment=0.05,
    fine_tune_epochs=1,
    score_batches=None,
    validation_data=None,
    validation_threshold=None,
    metric=None,
    output="best-validation",
    criterion="taylor",
    normalize=False,
    prune_dense=False,
    batch_size=32,
    max_iterations=None,
    callbacks=None,
    verbose=1,
    seed=None,
    checkpoint_dir=None,
    rebuild_threshold="auto",
    recalibration_batches=10,
    steps_per_epoch=None,
    validation_steps=None,
    class_weight=None,
    mode="auto",
    prune_frozen=True,
    cost="learnables",
    runtime="litert",
    round_to=None,
):
    """Compresses `model` by iterative Taylor pruning and fine-tuning.

    Each iteration gathers importance scores, prunes about `increment` of the
    original learnables, fine-tunes for `fine_tune_epochs` and validates.
    Pruning stops at the `goal`, when the validation metric crosses
    `validation_threshold` (a loss rising above it, an accuracy-like metric
    falling below it), when nothing is prunable, or on non-finite values (a
    loss, weights or batch-norm statistics after fine-tuning, or Taylor
    scores). With a threshold, the model returned is the most compressed one
    that met it (the original model if the first iteration already fails,
    or if the unpruned model already misses it: then nothing is pruned). A
    model with non-finite weights is never returned. A `goal` above what
    filter pruning can reach is said at the start (a `UserWarning`).

    Before any training, `compress` refuses (with an error naming the
    argument): a dataset that never ends without `steps_per_epoch` /
    `validation_steps`; NaN or Inf in the arrays, or in the first 2 batches
    of a dataset; a model whose class overrides `train_step` (see
    docs/errors.md, "A model with its own train_step"); a model compiled
    without a loss; a `metric` the model does not compute.

    Args:
        model: a compiled functional or Sequential `keras.Model`. Its own
            loss, metric and optimizer objects are used for fine-tuning (not a
            config round trip, so plain Python loss functions, `Loss`
            subclasses, lambdas and custom schedules work; optimizer and metric
            state start fresh). Not modified.
        ds: a `tf.data.Dataset` of `(x, y)` batches, or a tuple of NumPy
            arrays `(x, y)` (batched with `batch_size`, shuffled per epoch).
        goal: fraction of the original `cost` to remove, in (0, 1); with
            `cost="macs"` or `"latency"` also `kt.Speedup(2.0)` ("2x
            faster"), with `cost="latency"` also `kt.LatencyBudget(ms=3)`
            ("at most 3 ms").
        increment: fraction of the original `cost` removed per iteration
            (a share of the learnables with the default cost, like
            `goal`; the callback's `amount` counts channel groups instead).
        fine_tune_epochs: epochs of fine-tuning after each pruning step.
        score_batches: batches of `ds` used to gather fresh Taylor scores
            before each pruning step. None: the scores gathered during the
            previous fine-tuning (free); before the first step (every step
            if `fine_tune_epochs=0`), batches of `ds` until the groups that
            step would prune agree (Jaccard >= 0.8) with those chosen on half
            as many batches (compared at 4/8, 8/16, ...; at most one pass).
            With a number, fine-tuning gathers no scores of its own
            (`TaylorPrunableModel.gather_scores` off), since each step
            replaces them.
        validation_data: `(x, y)` arrays or a dataset, evaluated after each
            fine-tuning epoch.
        validation_threshold: the value of `metric` that stops pruning.
        metric: validation metric name (one of the compiled metrics, e.g.
            `"accuracy"`, without a `val_` prefix), default `"loss"`. Checked
            before any training, with or without `validation_data`. Whether
            lower or higher is better comes from the metric object Keras
            builds (as for Keras's `EarlyStopping`), or from `mode`.
        output: `"best-validation"` (in each iteration, the fine-tuning epoch
            with the best validation metric) or `"last-iteration"`.
        criterion: a `kt.importance.Criterion` or its name: `"taylor"`,
            `"l1"` or `"random"`.
        normalize: L2-normalise scores per layer.
        prune_dense: also prune Dense units.
        batch_size: batch size for NumPy inputs.
        max_iterations: optional cap on pruning iterations.
        callbacks: extra Keras callbacks for the fine-tuning `fit` calls.
            `info.training_history` counts training steps (not callback
            calls, which `compile(steps_per_execution=k)` makes every k
            steps).
        verbose: 0 silent; 1 a line per pruning iteration, and Keras's
            progress bars while fine-tuning when the output is a terminal or
            a notebook, one line per epoch otherwise (so redirected logs hold
            no carriage returns); 2 a line per iteration and one line per
            fine-tuning epoch.
        seed: optional int. Seeds Keras, NumPy and Python, every layer's
            own random stream (Dropout, augmentation) and the shuffling of
            array data afresh at each iteration from `(seed, iteration)`, and
            TensorFlow's global seed once, so runs repeat and a resumed run
            ends where an uninterrupted one does. (TensorFlow's own unseeded
            random ops, which Keras layers do not use, are not reseeded per
            iteration: that would make TensorFlow rebuild every traced
            function each iteration.)
        checkpoint_dir: optional directory. After every completed iteration
            the state (current and best model, histories, scores, stop
            bookkeeping, a fingerprint of the arguments, model and data) is
            written there atomically. Calling `compress` again with the same
            arguments resumes after the last completed iteration (or returns
            the finished result); different arguments, model or data, or a
            corrupt checkpoint, raise `CheckpointError`.
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
        steps_per_epoch: batches per fine-tuning epoch, as for `fit`; also
            the most batches scored before the first step. Required for a
            dataset that never ends (`ds.repeat()`).
        validation_steps: batches of `validation_data` per validation (the
            same first batches each time). Required for an infinite one.
        class_weight: optional dict `{class index: weight}` passed to the
            fine-tuning `fit` calls.
        mode: `"auto"` (the direction Keras knows for `metric`), `"min"` or
            `"max"`: whether a lower or a higher `metric` is better.
        prune_frozen: True (default) prunes layers with `trainable=False`
            too (they are counted in the learnables); False leaves every
            channel group touching a frozen layer alone, so a frozen backbone
            keeps its exact weights (`TaylorPrunableModel(prune_frozen=...)`).
        cost: what `goal` counts: `"learnables"` (default, MATLAB's;
            groups go lowest score first), `"macs"` or `"latency"` (groups
            go lowest score per unit of cost saved first), or a
            `kt.latency_profile(...)` (any runtime, threads, batch size).
        runtime: for `cost="latency"`: `"litert"` (one interpreter thread,
            batch 1) or `"keras"`; the profile is measured once and cached.
        round_to: keep every pruned layer's channel count a multiple of
            this (see `TaylorPrunableModel.update_prunables`).
        recalibration_batches: after each pruning step, batches of `ds` over
            which the moving statistics of the `BatchNormalization` layers
            are re-estimated (`recalibrate_batch_norm`), so validation and
            fine-tuning start from statistics of the pruned network, not the
            stale ones of the unpruned network; again before each
            validation during fine-tuning (or at the end of a fit without
            validation data). 0 turns it off (MATLAB's behaviour).

    Returns:
        `(pruned_model, info)`: a plain `keras.Model` compiled like `model`
        (with its own loss, metric and optimizer settings), and a
        `PruningInfo`.

    Example:

    >>> import keras, numpy as np, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 1))
    >>> x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    >>> x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    >>> outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    >>> model = keras.Model(inputs, outputs)
    >>> model.compile("adam", "mse")
    >>> data = (np.random.rand(64, 8, 8, 1), np.random.rand(64, 2))
    >>> pruned, info = kt.compress(model, data, goal=0.3, verbose=0)
    >>> info.stop_reason
    'Learnables reduction goal reached.'
    """
    _check_args(goal, increment, fine_tune_epochs, score_batches, output, validation_data, validation_threshold, max_iterations, rebuild_threshold, recalibration_batches)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise InvalidArgumentError(f"seed must be a non-negative int or None, got {seed!r}")
    # A subclassed or unbuilt model must fail here, with the reason, before
    # the data checks read its (missing) inputs.
    check_readable(model, "model")
    cost, round_to = goals.check_cost(cost), goals.check_round_to(round_to)
    goals.check_goal(goal, cost)
    profile = latency_profile(model, runtime=runtime) if cost == "latency" else None
    criterion = importance.get(criterion)
    workflow_checks.check_train_step(model)
    workflow_checks.check_mode(mode)
    workflow_checks.check_class_weight(class_weight)
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise PruningStateError(
            f"model '{model.name}' is not compiled: compress fine-tunes with the "
            "model's own loss, optimizer and metrics, so call "
            "model.compile(optimizer, loss, metrics) first."
        )
    workflow_checks.check_has_loss(model)
    settings = compile_settings(model)
    train = data_utils.as_dataset(ds, batch_size, shuffle=True, name="ds", seed=_iteration_seed(seed, 1))
    data_utils.check_matches(model, train, "ds")
    val = None
    if validation_data is not None:
        val = data_utils.as_dataset(validation_data, batch_size, shuffle=False, name="validation_data")
        data_utils.check_matches(model, val, "validation_data")
    val = workflow_checks.check_compress_data(ds, train, validation_data, val, steps_per_epoch, validation_steps)
    say = _compat.print_msg if verbose else (lambda *a, **k: None)
    metric = metric or "loss"
    minimize = lower_is_better(metric)

    ckpt, state = None, None
    if checkpoint_dir is not None:
        fingerprint = dict(
            goal=goal, increment=increment, fine_tune_epochs=fine_tune_epochs, score_batches=score_batches,
            validation_threshold=validation_threshold, metric=metric, output=output, criterion=importance.serialize(criterion),
            normalize=normalize, prune_dense=prune_dense, batch_size=batch_size, max_iterations=max_iterations,
            seed=seed, rebuild_threshold=rebuild_threshold, recalibration_batches=recalibration_batches, ds=checkpoint.data_fingerprint(ds),
            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps, mode=mode, prune_frozen=bool(prune_frozen),
            class_weight=None if class_weight is None else {str(k): float(v) for k, v in class_weight.items()},
            validation_data=checkpoint.data_fingerprint(validation_data),
            **checkpoint.model_fingerprint(model),
        )
        if cost != "learnables" or round_to is not None or not isinstance(goal, (int, float)):
            # only then: checkpoints of learnables goals from before these arguments still resume
            fingerprint.update(cost=cost if isinstance(cost, str) else f"profile:{cost.key}", round_to=round_to,
                               goal=repr(goal))
        ckpt = checkpoint.CompressCheckpoint(checkpoint_dir, fingerprint)
        state = ckpt.load()

    planner = RebuildPlanner(rebuild_threshold)

    def wrap(m, iteration, started=None):
        """The prunable, compiled model and its optimizer's fresh state.

        `started`: clock reading when the surgery for this model began.
        """
        started = planner.clock() if started is None else started
        pm = TaylorPrunableModel(
            m, criterion=criterion, normalize=normalize, prune_dense=prune_dense,
            seed=_iteration_seed(seed, iteration), prune_frozen=prune_frozen,
        )
        pm.latency_profile = profile
        compile_with(pm, settings, f"model '{model.name}'")
        # Fresh scores are taken before every step, so fine-tuning need not
        # gather any.
        pm.gather_scores = criterion.uses_gradients and score_batches is None
        # Built now, so a masked iteration can restart fine-tuning from this
        # state exactly as a rebuilt model starts from a fresh optimizer, and
        # so Keras traces each step of the new model once, not twice.
        pm.build_compiled_state(train.element_spec)
        fresh = [v.numpy() for v in pm.optimizer.variables]
        planner.built(pm, planner.clock() - started)
        return pm, fresh

    best_model, best_state = None, None
    minimize = True
    _seed_tensorflow(seed)
    if state is None:
        _reseed(seed, 0)
        pm, fresh_optimizer = wrap(model, 0)
        minimize = workflow_checks.resolve_metric(pm, val if val is not None else train, metric, mode, val is not None)
        if cost == "learnables":
            _say_unreachable_goal(pm, goal, say)
        state = dict(
            iteration=0, original=int(pm.original_learnables), need_fresh_scores=True,
            original_cost=float(_measure(pm, cost)),
            best_iteration=0, stop_reason=None, val_rows=[], train_rows=[],
            pruning_rows=[dict(iteration=0, num_learnables=int(pm.original_learnables), learnables_reduction=0.0)],
            rebuilt_iterations=[],
        )
        if val is not None:
            baseline_loss, baseline_value = planner.timed(TEST, _evaluate, pm, val, metric)
            if validation_threshold is not None and not _meets(baseline_value, validation_threshold, minimize):
                say(f"The unpruned model already misses the threshold ({metric} {baseline_value:.4g}).")
                state["stop_reason"] = BASELINE_MISSES
            state["val_rows"].append(dict(iteration=0, step=0, loss=baseline_loss, metric=baseline_value, is_final=True))
    else:
        if state["best_iteration"]:
            best_model = ckpt.load_model("best")
        if state["stop_reason"] is None:
            pm, fresh_optimizer = wrap(ckpt.load_model("current"), state["iteration"])
            minimize = workflow_checks.resolve_metric(pm, val if val is not None else train, metric, mode, val is not None)
            scores = ckpt.load_arrays("scores")
            if "unit_alive" in scores:
                pm.set_unit_alive(scores["unit_alive"] > 0.5)
            pm.score_sum.assign(scores["score_sum"])
            pm.score_count.assign(scores["score_count"])
        say(f"Resuming from {checkpoint_dir} after iteration {state['iteration']}.")
    original = state["original"]
    original_cost = state.get("original_cost", original)
    goal = _goal_fraction(goal, original_cost)
    pruning_rows, val_rows, train_rows = state["pruning_rows"], state["val_rows"], state["train_rows"]

    while state["stop_reason"] is None:
        iteration = state["iteration"]
        if max_iterations is not None and iteration >= max_iterations:
            state["stop_reason"] = MAX_ITERATIONS
            break
        reduction = 1 - _measure(pm, cost) / original_cost
        if reduction >= goal - 1e-9:
            state["stop_reason"] = GOAL_REACHED if cost == "learnables" else COST_GOAL_REACHED
            break
        iteration += 1
        # Every random choice of an iteration follows from (seed, iteration),
        # so a resumed run repeats what the interrupted one would have done.
        _reseed(seed, iteration)
        _reseed_layers(pm, seed, iteration)
        train = data_utils.as_dataset(ds, batch_size, shuffle=True, name="ds", seed=_iteration_seed(seed, iteration))
        step = min(1.0, min(increment, goal - reduction) * original_cost / _measure(pm, cost, unpruned=True))
        prune_args = _prune_args(cost, step, round_to)
        if criterion.uses_gradients and (score_batches is not None or state["need_fresh_scores"] or float(pm.score_count.numpy()) <= 0):
            pm.reset_scores()
            # Without score_batches, later iterations score during fine-tuning,
            # so this pass is a one-off and no part of an iteration's cost.
            one_off = score_batches is None and fine_tune_epochs > 0

            def score(x, y, *rest):
                weight = rest[0] if rest else None
                if one_off:
                    pm.update_score(x, y, sample_weight=weight)
                else:
                    planner.timed(SCORE, pm.update_score, x, y, sample_weight=weight)

            if score_batches is None:
                # One pass at most: steps_per_epoch batches of a dataset that never ends.
                score_until_settled(pm, _batches(train, steps_per_epoch), step, score, prune_args)
            else:
                for batch in _batches(train, score_batches):
                    score(*batch)
        if criterion.uses_gradients and not workflow_checks.scores_finite(pm):
            say("The Taylor scores are non-finite (NaN or Inf gradients): not pruning by them.")
            state["stop_reason"] = NON_FINITE
            break
        pruned = pm.update_prunables(None, **prune_args)
        if pruned == 0:
            state["stop_reason"] = NOTHING_PRUNABLE
            break
        iterations_left = math.ceil((goal - reduction) / increment - 1e-9)
        if max_iterations is not None:
            iterations_left = min(iterations_left, max_iterations - iteration + 1)
        if planner.should_rebuild(pm, iteration, iterations_left):
            started = planner.clock()
            pm, fresh_optimizer = wrap(strip_pruning(pm), iteration, started)
            state.setdefault("rebuilt_iterations", []).append(iteration)
        else:
            for variable, value in zip(pm.optimizer.variables, fresh_optimizer):
                variable.assign(value)
            pm.reseed(_iteration_seed(seed, iteration))
        state["need_fresh_scores"] = False
        recalibration = []
        if recalibration_batches:
            recalibrate_batch_norm(pm, train, batches=recalibration_batches)
            recalibration = [RecalibrateBeforeValidation(train, recalibration_batches)]
        reduction = 1 - pm.num_learnables / original
        monitor = _FineTuneMonitor(iteration, metric, minimize, output == "best-validation" and val is not None)
        if val is not None:
            loss0, value0 = planner.timed(TEST, _evaluate, pm, val, metric)
            val_rows.append(dict(iteration=iteration, step=0, loss=loss0, metric=value0, is_final=fine_tune_epochs == 0))
        if fine_tune_epochs:
            pm.fit(
                train, epochs=fine_tune_epochs, validation_data=val, shuffle=False,
                steps_per_epoch=steps_per_epoch, class_weight=class_weight,
                callbacks=[monitor] + recalibration + [planner.callback()] + list(callbacks or []), 
                verbose=fit_verbose(verbose),
            )
            train_rows.extend(_jsonable(row) for row in monitor.steps)
            if monitor.best_weights is not None:
                pm.set_weights(monitor.best_weights)
            chosen = monitor.best_index if output == "best-validation" else len(monitor.validations) - 1
            for i, (s, loss, value) in enumerate(monitor.validations):
                val_rows.append(dict(iteration=iteration, step=s, loss=loss, metric=value, is_final=i == chosen))
        planner.iteration_done()
        pruning_rows.append(dict(iteration=iteration, num_learnables=int(pm.num_learnables), learnables_reduction=float(reduction)))
        state["iteration"] = iteration
        corrupt = workflow_checks.non_finite_weights(pm.net)
        if monitor.non_finite or corrupt:
            if corrupt:
                say(f"Non-finite weights after fine-tuning in layers {corrupt}; returning the last good model.")
            state["stop_reason"] = NON_FINITE
            break
        final = [r for r in val_rows if r["iteration"] == iteration and r["is_final"]]
        value = final[-1]["metric"] if final else None
        say(
            f"Iteration {iteration}: {pm.num_learnables} learnables "
            f"({100 * reduction:.1f}% fewer), pruned {pruned} filter groups"
            + (f", validation {metric} {value:.4g}" if value is not None else "")
        )
        if validation_threshold is not None and not _meets(value, validation_threshold, minimize):
            state["stop_reason"] = THRESHOLD_REACHED
            break
        state["best_iteration"] = iteration
        if ckpt is not None:
            best_model, best_state = strip_pruning(pm), None
            ckpt.save(
                state, current=pm.net, best=best_model,
                scores=dict(score_sum=pm.score_sum.numpy(), score_count=pm.score_count.numpy(), unit_alive=pm.unit_alive.numpy()),
            )
        else:
            # Stripped only when the run ends: a strip per iteration would
            # cost about as much as a validation pass, for a model that the
            # next iteration usually replaces.
            best_model, best_state = None, (pm, pm.get_weights())
    if ckpt is not None:
        ckpt.save(state)  # finished: a further call returns this result at once
    best_iteration = state["best_iteration"]
    if best_state is not None:
        best_pm, weights = best_state
        best_pm.set_weights(weights)  # masks and unit_alive too
        best_model = strip_pruning(best_pm)
    if best_model is None:
        best_model, best_iteration = _copy_compiled(model, settings), 0
    else:
        compile_with(best_model, settings, f"model '{model.name}'")
    pruned_layers = _pruned_layers(model, best_model)
    info = PruningInfo(
        pruning_history=pd.DataFrame(pruning_rows, columns=["iteration", "num_learnables", "learnables_reduction"]),
        validation_history=pd.DataFrame(val_rows, columns=["iteration", "step", "loss", "metric", "is_final"]),
        training_history=pd.DataFrame(train_rows),
        pruned_layers=pruned_layers,
        stop_reason=state["stop_reason"],
        metric=metric,
        threshold=validation_threshold,
        returned_iteration=best_iteration,
        rebuilt_iterations=list(state.get("rebuilt_iterations", [])),
    )
    say(info.stop_reason)
    say(f"Compressed network has {100 * info.learnables_reduction:.1f}% fewer learnable parameters.")
    if pruned_layers:
        say(f"Pruning compressed {len(pruned_layers)} layers: " + ",".join(f'"{n}"' for n in pruned_layers))
    return best_model, info


def score_until_settled(pm, batches, learnables_reduction, score, prune_args=None):
    """Scores batches until more of them would not change the next step.

    After `SETTLE_FIRST_CHECK` batches and then each time their number
    doubles, asks `pm` which channel groups a step removing
    `learnables_reduction` would prune; stops once that choice agrees
    (Jaccard index >= `SETTLE_AGREEMENT`) with the one made on half as many
    batches, or when `batches` run out. A pass over a large dataset before
    the first step would cost about a training epoch, while the choice
    can settle much sooner (on the CIFARNet twin, 16 batches of 128 chose
    what 32 did).

    Args:
        pm: a `TaylorPrunableModel`.
        batches: iterable of `(x, y, ...)` tuples.
        learnables_reduction: the step, as for `pm.update_prunables`.
        score: called with each batch's tuple; accumulates its scores.
        prune_args: the step's arguments of `pm.planned_prunables` when
            they are other than `learnables_reduction` (another cost).

    Returns:
        The number of batches scored.
    """
    count, check, previous = 0, SETTLE_FIRST_CHECK, None
    for batch in batches:
        score(*batch)
        count += 1
        if count < check:
            continue
        plan = prune_args or dict(learnables_reduction=learnables_reduction)
        chosen = set(pm.planned_prunables(None, **plan).tolist())
        if previous is not None and _jaccard(chosen, previous) >= SETTLE_AGREEMENT:
            break
        previous, check = chosen, 2 * check
    return count


def _measure(pm, cost, unpruned=False):
    """`pm`'s cost (learnables, MACs or predicted ms), as pruned or unpruned."""
    if cost == "learnables":
        return pm.original_learnables if unpruned else pm.num_learnables
    alive = np.ones(pm.channel_graph.num_units, bool) if unpruned else pm.alive
    return pm.cost_table(cost).total(alive)


def _goal_fraction(goal, original_cost):
    """`goal` as the fraction of the original cost to remove."""
    if isinstance(goal, (goals.Speedup, goals.LatencyBudget)):
        return min(1.0, max(0.0, 1 - goal.target(original_cost, original_cost) / original_cost))
    return goal


def _prune_args(cost, step, round_to):
    if cost == "learnables":
        return dict(learnables_reduction=step, round_to=round_to)
    return dict(cost=cost, goal=step, round_to=round_to)


def _jaccard(a, b):
    return len(a & b) / len(a | b) if a or b else 1.0


def _iteration_seed(seed, iteration):
    return None if seed is None else int(seed) * 1000 + int(iteration)


def _seed_tensorflow(seed):
    """Once per call: TensorFlow's global seed (array shuffles draw on it).

    Not per iteration: `tf.random.set_seed` also empties TensorFlow's kernel
    cache, so every traced function (train, test and score steps) is
    instantiated and optimised again on its next call; on a ResNet-20 that
    cost 0.6-0.8 s a function, 1.5-2 s an iteration. Keras layers draw from
    their own seed generators (`_reseed_layers`), not from this seed.
    """
    if seed is not None:
        tf.random.set_seed(_iteration_seed(seed, 0) % (2**32))


def _reseed(seed, iteration):
    """Python's, NumPy's and Keras's global random state from `(seed, iteration)`."""
    if seed is None:
        return
    value = _iteration_seed(seed, iteration) % (2**32)
    random.seed(value)
    np.random.seed(value)
    # What keras.utils.set_random_seed does besides tf.random.set_seed: the
    # global SeedGenerator (unseeded keras.random calls) is made afresh from
    # Python's now reseeded generator.
    _compat.reset_global_seed(value)


def _reseed_layers(model, seed, iteration):
    """Restarts every layer's own random stream (Dropout, ...) from the seed.

    Those streams live in the layers, so a model kept across iterations would
    carry them on, and a resumed run (which loads the model afresh) would not.
    """
    if seed is None:
        return
    base = _iteration_seed(seed, iteration)
    generators = [g for layer in _all_layers(model.net) for g in _compat.seed_generators(layer)]
    for i, generator in enumerate(generators):
        state = generator.state
        state.assign(ops.cast(ops.convert_to_tensor([(base * 7919 + i) % 2**31, 0]), state.dtype))


def _jsonable(row):
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}


def _meets(value, threshold, minimize):
    if value is None or not math.isfinite(value):
        return False
    return value <= threshold if minimize else value >= threshold


def _evaluate(model, val, metric):
    results = model.evaluate(val, verbose=0, return_dict=True)
    if metric not in results:
        available = sorted(results)
        raise InvalidArgumentError(
            f"metric {metric!r} is not computed by the compiled model; "
            f"available: {available}. Compile the model with it, e.g. "
            f"metrics=[{metric!r}]."
        )
    return float(results["loss"]), float(results[metric])


def _batches(dataset, limit):
    for i, batch in enumerate(dataset):
        if limit is not None and i >= limit:
            break
        yield tuple(batch) if isinstance(batch, (tuple, list)) else (batch, None)


def _copy_compiled(model, settings):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return compile_with(copy, settings, f"model '{model.name}'")


def _say_unreachable_goal(pm, goal, say):
    """Warns at the start when `goal` lies beyond what filter pruning can remove."""
    reachable = report.max_reduction(pm)
    if goal > reachable + 1e-9:
        message = (
            f"goal {goal:g} is above the most filter pruning can remove from this model "
            f"({reachable:.1%} of its learnables, one channel left per layer): compress will stop "
            "with 'No more prunable filters.' before reaching it."
        )
        warnings.warn(message, stacklevel=3)
        say(message)


def _pruned_layers(original, pruned):
    names = []
    before = {layer.name: layer.count_params() for layer in _all_layers(original)}
    for layer in _all_layers(pruned):
        if layer.name in before and layer.count_params() < before[layer.name]:
            names.append(layer.name)
    return names


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer
