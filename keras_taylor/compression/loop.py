"""`CompressionRun`: the loop behind `kt.compress`.

Pruned filters are masked first; when `rebuild_threshold` says so (by
default, when the measured cost of a rebuild is below the fine-tuning time
it is predicted to save: `keras_taylor.rebuild`), the model is stripped and
wrapped again, so fine-tuning runs on the physically smaller network.
Rebuilding makes Keras trace its train, test and scoring functions anew
(6-10 s for a ResNet-20 on two CPU cores, about a whole fine-tuning epoch
on a few thousand images), while a masked model computes exactly what the
stripped one does.
"""

import warnings

import pandas as pd

import keras
from keras_taylor import checkpoint, costs, importance, latency_goal, report, workflow_checks
from keras_taylor import data as data_utils
from keras_taylor.compile_settings import compile_with
from keras_taylor.compression import phases, seeding
from keras_taylor.compression.goal import fewer, goal_fraction, history_column, measure, next_step, prune_arguments
from keras_taylor.compression.info import PruningInfo
from keras_taylor.compression.state import CompressState
from keras_taylor.compression.stop import StopReason
from keras_taylor.model import TaylorPrunableModel
from keras_taylor.profile import latency_profile
from keras_taylor.rebuild import RebuildPlanner
from keras_taylor.surgery import strip_pruning


class CompressionRun:
    """One `compress` call: resume or start, iterate until a `StopReason`, finish.

    Args:
        model: the compiled model to compress (not modified).
        ds: the training data as the user gave it.
        validation_data: the validation data as the user gave it.
        train: `ds` as a dataset (its element spec builds each wrap).
        val: `validation_data` as a dataset, or None.
        options: a checked `CompressOptions`, criterion resolved, metric set.
        settings: the compile settings of `model`.
        say: prints a line when `verbose`.
    """

    def __init__(self, model, ds, validation_data, train, val, options, settings, say):
        self.model, self.ds, self.validation_data = model, ds, validation_data
        self.train, self.val = train, val
        self.options, self.settings, self.say = options, settings, say
        self.ckpt, self.state = None, None
        if options.checkpointing.checkpoint_dir is not None:
            self.ckpt = checkpoint.CompressCheckpoint(options.checkpointing.checkpoint_dir, self.fingerprint())
            saved = self.ckpt.load()
            self.state = None if saved is None else CompressState.from_json(saved)
        self.planner = RebuildPlanner(options.fine_tuning.rebuild_threshold)
        self.pm, self.fresh_optimizer, self.minimize = None, None, True
        target = options.target
        # Measured (or read from the cache) once, before the first wrap.
        self.profile = latency_profile(model, runtime=target.runtime) if target.cost == "latency" else None
        self.goal = target.goal  # a fraction once the unpruned cost is known
        self.best_model, self.best_state = None, None
        self.unpruned, self.timed_checks = model, 0  # for a latency goal checked by timing

    def run(self):
        """Returns `(pruned_model, info)`, as `compress` does."""
        seeding.seed_tensorflow(self.options.checkpointing.seed)
        if self.state is None:
            self.start()
        else:
            self.resume()
        while self.state.stop_reason is None:
            self.state.stop_reason = self.iterate()
        if self.ckpt is not None:
            self.ckpt.save(self.state.to_json())  # finished: a further call returns this result at once
        return self.finish()

    def fingerprint(self):
        """What a resumed call must repeat: every option, the model and the data."""
        o = self.options
        target, tuning, scoring = o.target, o.fine_tuning, o.scoring
        class_weight = tuning.class_weight
        return dict(
            goal=target.goal, increment=target.increment, fine_tune_epochs=tuning.fine_tune_epochs,
            score_batches=scoring.score_batches, validation_threshold=target.validation_threshold,
            metric=target.metric, output=target.output, criterion=importance.serialize(scoring.criterion),
            normalize=scoring.normalize, prune_dense=scoring.prune_dense, batch_size=o.batch_size,
            max_iterations=target.max_iterations, seed=o.checkpointing.seed, rebuild_threshold=tuning.rebuild_threshold,
            recalibration_batches=tuning.recalibration_batches, ds=checkpoint.data_fingerprint(self.ds),
            steps_per_epoch=tuning.steps_per_epoch, validation_steps=tuning.validation_steps, mode=target.mode,
            prune_frozen=bool(scoring.prune_frozen),
            class_weight=None if class_weight is None else {str(k): float(v) for k, v in class_weight.items()},
            validation_data=checkpoint.data_fingerprint(self.validation_data),
            **checkpoint.model_fingerprint(self.model),
        ) | self._cost_fingerprint()

    def _cost_fingerprint(self):
        target = self.options.target
        if (target.cost == "learnables" and target.round_to is None and target.ranking is None
                and isinstance(target.goal, (int, float))):
            return {}  # so checkpoints of learnables goals from before these options still resume
        cost = target.cost if isinstance(target.cost, str) else f"profile:{target.cost.key}"
        ranking = {} if target.ranking is None else dict(ranking=target.ranking)  # older checkpoints resume
        return dict(cost=cost, round_to=target.round_to, goal=repr(target.goal)) | ranking

    def wrap(self, model, iteration, started=None):
        """Makes `self.pm` the prunable, compiled `model`; keeps its optimizer's fresh state.

        `started`: clock reading when the surgery for this model began.
        """
        planner, scoring = self.planner, self.options.scoring
        started = planner.clock() if started is None else started
        pm = TaylorPrunableModel(
            model, criterion=scoring.criterion, normalize=scoring.normalize, prune_dense=scoring.prune_dense,
            seed=seeding.iteration_seed(self.options.checkpointing.seed, iteration), prune_frozen=scoring.prune_frozen,
        )
        compile_with(pm, self.settings, f"model '{self.model.name}'")
        # Fresh scores are taken before every step, so fine-tuning need not
        # gather any.
        pm.gather_scores = scoring.criterion.uses_gradients and scoring.score_batches is None
        pm.latency_profile = self.profile
        # Built now, so a masked iteration can restart fine-tuning from this
        # state exactly as a rebuilt model starts from a fresh optimizer, and
        # so Keras traces each step of the new model once, not twice.
        pm.build_compiled_state(self.train.element_spec)
        self.pm, self.fresh_optimizer = pm, [v.numpy() for v in pm.optimizer.variables]
        planner.built(pm, planner.clock() - started)

    def _resolve_metric(self):
        target = self.options.target
        data = self.val if self.val is not None else self.train
        self.minimize = workflow_checks.resolve_metric(self.pm, data, target.metric, target.mode, self.val is not None)

    def start(self):
        """Wraps the unpruned model, checks the metric and goal, validates the baseline."""
        seeding.reseed(self.options.checkpointing.seed, 0)
        self.wrap(self.model, 0)
        self._resolve_metric()
        cost = self.options.target.cost
        if cost == "learnables":
            self._say_unreachable_goal()
        original_cost = None if cost == "learnables" else measure(self.pm, cost)
        self.state = CompressState.start(self.pm.original_learnables, original_cost, history_column(cost))
        self.goal = goal_fraction(self.options.target.goal, self._original_cost())
        if self._timed_profile() is not None:
            # the profile's variants are stripped models: so is what the pruned ones are timed against
            self.unpruned = strip_pruning(self.pm)
        phases.baseline(self)

    def resume(self):
        """Loads the models and scores a checkpoint names, to go on after its iteration."""
        state, ckpt = self.state, self.ckpt
        if state.best_iteration:
            self.best_model = ckpt.load_model("best")
        if state.stop_reason is None:
            self.wrap(ckpt.load_model("current"), state.iteration)
            self._resolve_metric()
            scores = ckpt.load_arrays("scores")
            if "unit_alive" in scores:
                self.pm.set_unit_alive(scores["unit_alive"] > 0.5)
            self.pm.score_sum.assign(scores["score_sum"])
            self.pm.score_count.assign(scores["score_count"])
        self.goal = goal_fraction(self.options.target.goal, self._original_cost())
        self.say(f"Resuming from {self.options.checkpointing.checkpoint_dir} after iteration {state.iteration}.")

    def _original_cost(self):
        state = self.state
        return state.original if state.original_cost is None else state.original_cost

    def iterate(self):
        """One pruning iteration; returns the `StopReason` that ends the run, or None."""
        state, target, seed = self.state, self.options.target, self.options.checkpointing.seed
        if target.max_iterations is not None and state.iteration >= target.max_iterations:
            return StopReason.MAX_ITERATIONS
        cost, original_cost = target.cost, self._original_cost()
        reduction = 1 - measure(self.pm, cost) / original_cost
        if reduction >= self.goal - 1e-9:
            if self._goal_met_when_timed():
                return StopReason.GOAL_REACHED if cost == "learnables" else StopReason.COST_GOAL_REACHED
            original_cost = self._original_cost()
            reduction = 1 - measure(self.pm, cost) / original_cost
        iteration = state.iteration + 1
        # Every random choice of an iteration follows from (seed, iteration),
        # so a resumed run repeats what the interrupted one would have done.
        seeding.reseed(seed, iteration)
        seeding.reseed_layers(self.pm.net, seed, iteration)
        self.train = data_utils.as_dataset(
            self.ds, self.options.batch_size, shuffle=True, name="ds", seed=seeding.iteration_seed(seed, iteration)
        )
        step = next_step(reduction, target.increment, self.goal) * original_cost / measure(self.pm, cost, unpruned=True)
        step = min(1.0, step)
        prune_args = prune_arguments(cost, step, target.round_to, target.ranking)
        if not phases.score(self, step, prune_args):
            return StopReason.NON_FINITE
        pruned = self.pm.update_prunables(None, **prune_args)
        if pruned == 0:
            return StopReason.NOTHING_PRUNABLE
        phases.rebuild_or_restart(self, iteration, reduction)
        state.need_fresh_scores = False
        monitor = phases.fine_tune(self, iteration, phases.recalibrate(self))
        reduction = phases.record(self, iteration)
        reason = phases.judge(self, iteration, monitor, pruned, reduction)
        if reason is None:
            state.best_iteration = iteration
            phases.checkpoint(self)
        return reason

    def _timed_profile(self):
        """The latency profile a `kt.Speedup` / `kt.LatencyBudget` goal is timed with, or None."""
        target = self.options.target
        if not isinstance(target.goal, (costs.Speedup, costs.LatencyBudget)):
            return None
        return self.profile if isinstance(target.cost, str) else target.cost

    def _goal_met_when_timed(self):
        """False when a latency goal, reached by prediction, is missed when the model is timed.

        The pruned model is timed beside the unpruned one and the profile
        refitted with both (`latency_goal.time_against_unpruned`); on a miss
        the goal, as a fraction of the predicted cost, is moved by the factor
        the timing missed by, so the run prunes on. At most
        `latency_goal.MAX_TIMED_CHECKS` timings: then the prediction decides.
        """
        profile, goal = self._timed_profile(), self.options.target.goal
        if profile is None or self.timed_checks >= latency_goal.MAX_TIMED_CHECKS:
            return True
        self.timed_checks += 1
        unpruned_ms, ms = latency_goal.time_against_unpruned(profile, self.unpruned, self.pm)
        met = latency_goal.goal_met(goal, unpruned_ms, ms)
        self.say(f"Timed on {profile.runtime}: {ms:.3g} ms, {unpruned_ms / ms:.2f}x faster than the unpruned "
                 f"model ({unpruned_ms:.3g} ms)" + ("." if met else "; the goal is not met yet, pruning on."))
        if met:
            return True
        cost = self.options.target.cost
        self.state.original_cost = float(profile.predict_ms())  # refitted: the unpruned model's new prediction
        required = measure(self.pm, cost) * goal.target(unpruned_ms, ms) / ms
        self.goal = min(1.0, 1.0 - required / self.state.original_cost)
        return False

    def finish(self):
        """The model of the best iteration, stripped and compiled, and the `PruningInfo`."""
        state, model = self.state, self.model
        best_model, best_iteration = self.best_model, state.best_iteration
        if self.best_state is not None:
            best_pm, weights = self.best_state
            best_pm.set_weights(weights)  # masks and unit_alive too
            best_model = strip_pruning(best_pm)
        if best_model is None:
            best_model, best_iteration = _copy_compiled(model, self.settings), 0
        else:
            compile_with(best_model, self.settings, f"model '{model.name}'")
        pruned_layers = _pruned_layers(model, best_model)
        cost = self.options.target.cost
        column = history_column(cost)
        columns = ["iteration", "num_learnables", "learnables_reduction"] + ([column] if column else [])
        info = PruningInfo(
            pruning_history=pd.DataFrame(state.pruning_rows, columns=columns),
            validation_history=pd.DataFrame(state.val_rows, columns=["iteration", "step", "loss", "metric", "is_final"]),
            training_history=pd.DataFrame(state.train_rows),
            pruned_layers=pruned_layers,
            stop_reason=state.stop_reason,
            metric=self.options.target.metric,
            threshold=self.options.target.validation_threshold,
            returned_iteration=best_iteration,
            rebuilt_iterations=list(state.rebuilt_iterations),
            cost_column=column,
        )
        self.say(info.stop_reason)
        self.say(f"Compressed network has {100 * info.learnables_reduction:.1f}% fewer learnable parameters.")
        if column is not None:
            self.say(f"Compressed network has {100 * info.cost_reduction:.1f}% {fewer(cost)} "
                     f"({100 * self.goal:.1f}% asked for).")
        if pruned_layers:
            self.say(f"Pruning compressed {len(pruned_layers)} layers: " + ",".join(f'"{n}"' for n in pruned_layers))
        return best_model, info

    def _say_unreachable_goal(self):
        """Warns at the start when the goal lies beyond what filter pruning can remove."""
        goal = self.options.target.goal
        reachable = report.max_reduction(self.pm)
        if goal > reachable + 1e-9:
            message = (
                f"goal {goal:g} is above the most filter pruning can remove from this model "
                f"({reachable:.1%} of its learnables, one channel left per layer): compress will stop "
                "with 'No more prunable filters.' before reaching it."
            )
            # Points at the caller of kt.compress: compress -> compress_with ->
            # run -> start -> here.
            warnings.warn(message, stacklevel=6)
            self.say(message)


def _copy_compiled(model, settings):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return compile_with(copy, settings, f"model '{model.name}'")


def _pruned_layers(original, pruned):
    names = []
    before = {layer.name: layer.count_params() for layer in workflow_checks.leaf_layers(original)}
    for layer in workflow_checks.leaf_layers(pruned):
        if layer.name in before and layer.count_params() < before[layer.name]:
            names.append(layer.name)
    return names
