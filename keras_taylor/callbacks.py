"""`TaylorPruningCallback`: pruning on a schedule inside `model.fit`."""

import numbers
import warnings

import keras

from keras_taylor import goals, latency_goal, workflow_checks
from keras_taylor import _compat
from keras_taylor.errors import InvalidArgumentError, PruningStateError, UnsupportedModelError
from keras_taylor.model import TaylorPrunableModel
from keras_taylor.profile import latency_profile
from keras_taylor.recalibration import check_data, check_positive_int, recalibrate_batch_norm


class TaylorPruningCallback(keras.callbacks.Callback):
    """Prunes a `TaylorPrunableModel` on a schedule while it trains.

    Taylor scores are gathered by the model's own training step; at each
    pruning event this callback masks the lowest-scored filter groups and
    resets the scores. It adds `num_learnables` and `learnables_reduction` to
    the logs, so they show in the progress bar, in `History` and, for
    callbacks listed after this one (TensorBoard, EarlyStopping,
    ModelCheckpoint), in theirs.

    Every event happens after a training step and before the validation that
    follows it: `frequency="epoch"` prunes after the epoch's last training
    step, before Keras validates. So each epoch's `val_*` scores, its
    `num_learnables` and the model that `ModelCheckpoint(save_best_only=True)`
    saves or `EarlyStopping(restore_best_weights=True)` restores are one and
    the same model (the masks are weights, so they are saved and restored
    with it). Where an epoch's length is unknown (a dataset of unknown
    cardinality, in its first epoch), the event waits for the start of the
    next epoch instead, so it is trained and validated before it is logged.

    Steps are the optimizer's training steps: with
    `compile(steps_per_execution=k)` Keras calls back once every k steps, and
    the events due within those k steps happen together at the call
    (`frequency=4` with k=5 still prunes 5 events' worth in 20 steps).

    The callback refuses to prune by non-finite Taylor scores (NaN or Inf
    gradients): it warns, stops pruning and sets `done_reason`.
    `recalibration_data` is checked for NaN/Inf in its first batches when
    the callback is made.

    Args:
        frequency: `"epoch"` to prune at the end of every epoch, or a positive
            int to prune every that many training steps.
        amount: channel groups (filter groups) removed per event: an int,
            or a float in (0, 1) for that fraction of the groups prunable
            when training began. It counts groups, not learnables: groups
            differ in size, so `amount=0.05` removes 5% of the groups, which
            may be more or less than 5% of the learnables (`kt.compress`'s
            `increment` and this callback's `goal` count learnables).
        start_step: no pruning before this global training step.
        stop_step: no pruning from this global step on (None: no limit).
        goal: stop pruning once this fraction of the unpruned model's
            `cost` is gone (None: no goal), or, for `cost="macs"` or
            `"latency"`, `kt.Speedup(2.0)`; for latency also
            `kt.LatencyBudget(ms=3)`, which is checked by timing the
            model on the runtime once the prediction says it is reached
            (pruning goes on where the timing misses, as in `kt.compress`).
        cost: what the goal counts and how groups are ranked:
            `"learnables"` (default; lowest score first), `"macs"` or
            `"latency"` (lowest score per unit of cost saved first). Latency
            is predicted by `model.latency_profile`, or, when that is None,
            by a `kt.latency_profile(model)` (LiteRT, one thread, batch 1,
            cached on disk) made when training begins; a profile object may
            also be passed as `cost`.
        round_to: keep every pruned layer's channel count a multiple of this
            (see `TaylorPrunableModel.update_prunables`).
        ranking: None (the cost's own order, as above), `"importance"` or
            `"importance_per_cost"` (see `TaylorPrunableModel.update_prunables`).
        recalibration_data: optional training data (a `tf.data.Dataset`,
            an array `x` or a tuple `(x, y)`). After each event that prunes,
            the moving statistics of every `BatchNormalization` layer are
            re-estimated from `recalibration_batches` of its batches
            (`kt.recalibrate_batch_norm`). Training moves them only slowly
            (momentum 0.99), so without it the validation that follows an
            event, and a model stripped right after the last one, use the
            unpruned network's statistics.
        recalibration_batches: batches of `recalibration_data` per event.
        verbose: 1 prints one line per epoch in which something was pruned.

    Example:

    >>> import keras, numpy as np, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 1))
    >>> x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    >>> outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    >>> pm = kt.TaylorPrunableModel(keras.Model(inputs, outputs))
    >>> pm.compile("adam", "mse")
    >>> cb = kt.TaylorPruningCallback(frequency=2, amount=1, verbose=0)
    >>> history = pm.fit(np.ones((16, 8, 8, 1)), np.ones((16, 2)), batch_size=4,
    ...                  callbacks=[cb], verbose=0)
    >>> [pruned for step, pruned, reduction in cb.events]
    [1, 1]
    >>> pm.num_prunables
    5
    """

    def __init__(
        self,
        frequency="epoch",
        amount=8,
        start_step=0,
        stop_step=None,
        goal=None,
        recalibration_data=None,
        recalibration_batches=10,
        verbose=1,
        cost="learnables",
        round_to=None,
        ranking=None,
    ):
        super().__init__()
        if frequency != "epoch" and not (
            isinstance(frequency, numbers.Integral) and frequency > 0
        ):
            raise InvalidArgumentError(
                f"frequency must be 'epoch' or a positive int, got {frequency!r}"
            )
        if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or (
            isinstance(amount, numbers.Integral) and amount < 1
        ) or (not isinstance(amount, numbers.Integral) and not 0 < amount < 1):
            raise InvalidArgumentError(
                "amount must be a positive int or a float in (0, 1), got "
                f"{amount!r}"
            )
        self.cost = goals.check_cost(cost)
        self.round_to = goals.check_round_to(round_to)
        self.ranking = ranking
        goals.check_ranking(ranking, self.cost)
        if goal is not None:
            goals.check_overall_goal(goal, self.cost)
        if start_step < 0 or (stop_step is not None and stop_step <= start_step):
            raise InvalidArgumentError(
                f"need 0 <= start_step < stop_step, got {start_step!r}, {stop_step!r}"
            )
        check_positive_int(recalibration_batches, "recalibration_batches")
        if recalibration_data is not None:
            # Checked now, not at the first pruning event hours into fit.
            check_data(recalibration_data, "recalibration_data")
            workflow_checks.check_finite_data(recalibration_data, "recalibration_data")
        self.recalibration_data = recalibration_data
        self.recalibration_batches = int(recalibration_batches)
        self.frequency = frequency
        self.amount = amount
        self.start_step = int(start_step)
        self.stop_step = stop_step
        self.goal = goal
        self.verbose = verbose
        self.events = []  # (step, groups pruned, learnables_reduction)
        self.done_reason = None
        # a latency goal missed when timed: the predicted target is scaled by this
        self._latency_scale, self._timed_checks = 1.0, 0

    def on_train_begin(self, logs=None):
        if not isinstance(self.model, TaylorPrunableModel):
            raise UnsupportedModelError(
                "TaylorPruningCallback needs a keras_taylor.TaylorPrunableModel, "
                f"got {type(self.model).__name__} '{self.model.name}'."
            )
        if self.model.criterion.uses_gradients and not self.model.gather_scores:
            raise PruningStateError(
                f"TaylorPruningCallback prunes by the Taylor scores that fit gathers, but "
                f"'{self.model.name}' has gather_scores=False: set it to True."
            )
        self._step = int(self.model.optimizer.iterations.numpy())
        if isinstance(self.amount, numbers.Integral):
            self._per_event = int(self.amount)
        else:
            self._per_event = max(1, int(round(self.amount * self.model.num_prunables)))
        if self.cost == "latency" and self.model.latency_profile is None:
            self.model.latency_profile = latency_profile(self.model)
        self._epoch_pruned = 0
        self._epoch_start = self._step
        self._pending = False
        self._refresh()

    def _refresh(self):
        self._stats = {
            "num_learnables": float(self.model.num_learnables),
            "learnables_reduction": float(self.model.learnables_reduction),
        }
        if self.cost != "learnables":
            name = "latency" if not isinstance(self.cost, str) else self.cost
            self._stats[f"{name}_reduction"] = float(self.model.cost_reduction(self.cost))

    def _goal_reached(self):
        if self.goal is None:
            return False
        return self._predicted_goal_reached() and self._met_when_timed()

    def _predicted_goal_reached(self):
        removed = self.model.cost_reduction(self.cost)
        if isinstance(self.goal, goals.Speedup):
            return removed >= 1 - self._latency_scale / self.goal.factor - 1e-9
        if isinstance(self.goal, goals.LatencyBudget):
            return self.model.cost_table(self.cost).total(self.model.alive) <= self._latency_scale * self.goal.ms
        return removed >= self.goal

    def _met_when_timed(self):
        """Times a latency goal the prediction says is reached; on a miss, aims the prediction lower.

        As `compress` does (`latency_goal.MAX_TIMED_CHECKS` times at most):
        the model is stripped and timed beside its unpruned form, the
        profile refitted with both; where the timing misses, the predicted
        target shrinks by the factor it missed by, and pruning goes on.
        """
        profile = self.model.latency_profile if self.cost == "latency" else (
            None if isinstance(self.cost, str) else self.cost)
        timed_goal = isinstance(self.goal, (goals.Speedup, goals.LatencyBudget))
        if profile is None or not timed_goal or self._timed_checks >= latency_goal.MAX_TIMED_CHECKS:
            return True
        self._timed_checks += 1
        unpruned_ms, ms = latency_goal.time_with_unpruned(self.model, profile)
        met = latency_goal.goal_met(self.goal, unpruned_ms, ms)
        if self.verbose:
            _compat.print_msg(f"\nTaylorPruningCallback: timed on {profile.runtime}, {ms:.3g} ms, "
                              f"{unpruned_ms / ms:.2f}x faster than unpruned"
                              + ("." if met else "; the goal is not met yet, pruning on."))
        if not met:
            self._latency_scale *= self.goal.target(unpruned_ms, ms) / ms
        return met

    def _due(self, step):
        if self.done_reason is not None or step < self.start_step:
            return False
        return self.stop_step is None or step < self.stop_step

    def _prune(self, events=1):
        if self._goal_reached():
            self.done_reason = "learnables reduction goal reached" if self.cost == "learnables" else "goal reached"
            return
        if self.model.criterion.uses_gradients and float(self.model.score_count.numpy()) <= 0:
            return  # nothing scored since the last event
        if self.model.criterion.uses_gradients and not workflow_checks.scores_finite(self.model):
            self.done_reason = "non-finite Taylor scores (NaN or Inf gradients): pruning stopped"
            warnings.warn(
                f"TaylorPruningCallback: the Taylor scores of '{self.model.name}' are non-finite at "
                f"step {self._step} (the loss or its gradients became NaN or Inf), so nothing is pruned "
                "by them; pruning stops.",
                stacklevel=2,
            )
            return
        pruned = self.model.update_prunables(self._per_event * events, cost=self.cost, round_to=self.round_to,
                                                ranking=self.ranking)
        if pruned == 0:
            self.done_reason = "no prunable filters left"
            return
        if self.recalibration_data is not None:
            recalibrate_batch_norm(self.model, self.recalibration_data, batches=self.recalibration_batches)
        self._refresh()
        self._epoch_pruned += pruned
        self.events.append((self._step, pruned, self._stats["learnables_reduction"]))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._step
        if self._pending:
            # The previous epoch's length was unknown, so its event could not
            # come before its validation; it comes before this epoch's steps.
            self._pending = False
            self._prune()

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution > 1 Keras calls back once per several steps.
        steps = (self.params or {}).get("steps")
        done = _compat.steps_done_in_epoch(self.model, batch, steps)
        before, self._step = self._step, self._epoch_start + done
        if self.frequency == "epoch":
            if steps is not None and done >= steps and self._due(self._step):
                # Before Keras validates the epoch: the scores logged for it
                # are then the pruned model's.
                self._prune()
        else:
            due = [s for s in range((before // self.frequency + 1) * self.frequency, self._step + 1, self.frequency)
                   if self._due(s)]
            if due:
                self._prune(events=len(due))
        if logs is not None:
            logs.update(self._stats)

    def on_epoch_end(self, epoch, logs=None):
        steps = (self.params or {}).get("steps")
        if self.frequency == "epoch" and steps is None and self._due(self._step):
            self._pending = True
        if logs is not None:
            logs.update(self._stats)
        if self.verbose and self._epoch_pruned:
            _compat.print_msg(
                f"\nEpoch {epoch + 1}: TaylorPruningCallback pruned "
                f"{self._epoch_pruned} filter groups; learnables "
                f"{int(self._stats['num_learnables'])} "
                f"({100 * self._stats['learnables_reduction']:.1f}% fewer)."
            )
        self._epoch_pruned = 0

    def on_train_end(self, logs=None):
        # EarlyStopping(restore_best_weights=True) may have put back an
        # earlier epoch's weights and masks.
        self._refresh()
