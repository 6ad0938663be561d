"""The phases of one `compress` iteration, in the order the loop runs them.

score → prune (the loop) → rebuild or restart → recalibrate → fine-tune →
record → judge → checkpoint; `baseline` judges the unpruned model once
before them. Each phase takes the `CompressionRun` (`loop.py`) and reads
its options and state there. `evaluate` and `meets` are the seams a test
replaces to script validation results.
"""

import math

import numpy as np

from keras_taylor import workflow_checks
from keras_taylor._verbosity import fit_verbose
from keras_taylor.compression.goal import fewer, history_column, measure, steps_left
from keras_taylor.compression.monitor import FineTuneMonitor
from keras_taylor.compression.seeding import iteration_seed
from keras_taylor.compression.settle import score_until_settled
from keras_taylor.compression.stop import StopReason
from keras_taylor.errors import InvalidArgumentError
from keras_taylor.rebuild import SCORE, TEST
from keras_taylor.recalibration import RecalibrateBeforeValidation, recalibrate_batch_norm
from keras_taylor.surgery import strip_pruning

_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "mape", "msle", "hinge", "crossentropy")


def lower_is_better(metric):
    name = metric.lower()
    return any(token in name for token in _LOWER_IS_BETTER)


def evaluate(model, val, metric):
    """`(loss, metric)` of `model` on `val`."""
    results = model.evaluate(val, verbose=0, return_dict=True)
    if metric not in results:
        available = sorted(results)
        raise InvalidArgumentError(
            f"metric {metric!r} is not computed by the compiled model; "
            f"available: {available}. Compile the model with it, e.g. "
            f"metrics=[{metric!r}]."
        )
    return float(results["loss"]), float(results[metric])


def meets(value, threshold, minimize):
    """Whether a validation `value` is on the good side of `threshold`."""
    if value is None or not math.isfinite(value):
        return False
    return value <= threshold if minimize else value >= threshold


def batches(dataset, limit):
    """`(x, y, ...)` tuples of `dataset`, at most `limit` of them."""
    for i, batch in enumerate(dataset):
        if limit is not None and i >= limit:
            break
        yield tuple(batch) if isinstance(batch, (tuple, list)) else (batch, None)


def baseline(run):
    """Validates the unpruned model; a threshold it already misses stops the run."""
    target = run.options.target
    if run.val is None:
        return
    loss, value = run.planner.timed(TEST, evaluate, run.pm, run.val, target.metric)
    if target.validation_threshold is not None and not meets(value, target.validation_threshold, run.minimize):
        run.say(f"The unpruned model already misses the threshold ({target.metric} {value:.4g}).")
        run.state.stop_reason = StopReason.BASELINE_MISSES
    run.state.val_rows.append(dict(iteration=0, step=0, loss=loss, metric=value, is_final=True))


def score(run, step, prune_args=None):
    """Gathers the scores the next step needs; False when they are non-finite.

    Args:
        run: the `CompressionRun`.
        step: the fraction of the model's learnables the step removes.
        prune_args: the step's arguments of `pm.update_prunables`.
    """
    pm, scoring = run.pm, run.options.scoring
    if not scoring.criterion.uses_gradients:
        return True
    if scoring.score_batches is not None or run.state.need_fresh_scores or float(pm.score_count.numpy()) <= 0:
        pm.reset_scores()
        # Without score_batches, later iterations score during fine-tuning,
        # so this pass is a one-off and no part of an iteration's cost.
        one_off = scoring.score_batches is None and run.options.fine_tuning.fine_tune_epochs > 0

        def score_batch(x, y, *rest):
            weight = rest[0] if rest else None
            if one_off:
                pm.update_score(x, y, sample_weight=weight)
            else:
                run.planner.timed(SCORE, pm.update_score, x, y, sample_weight=weight)

        if scoring.score_batches is None:
            # One pass at most: steps_per_epoch batches of a dataset that never ends.
            score_until_settled(
                pm, batches(run.train, run.options.fine_tuning.steps_per_epoch), step, score_batch, prune_args
            )
        else:
            for batch in batches(run.train, scoring.score_batches):
                score_batch(*batch)
    if not workflow_checks.scores_finite(pm):
        run.say("The Taylor scores are non-finite (NaN or Inf gradients): not pruning by them.")
        return False
    return True


def rebuild_or_restart(run, iteration, reduction):
    """Strips and wraps the pruned model when the planner says so; else restarts its optimizer.

    Args:
        run: the `CompressionRun`.
        iteration: the iteration being run.
        reduction: the learnables reduction before this iteration's step.
    """
    target = run.options.target
    iterations_left = steps_left(reduction, target.increment, run.goal)
    if target.max_iterations is not None:
        iterations_left = min(iterations_left, target.max_iterations - iteration + 1)
    if run.planner.should_rebuild(run.pm, iteration, iterations_left):
        started = run.planner.clock()
        run.wrap(strip_pruning(run.pm), iteration, started)
        run.state.rebuilt_iterations.append(iteration)
    else:
        for variable, value in zip(run.pm.optimizer.variables, run.fresh_optimizer):
            variable.assign(value)
        run.pm.reseed(iteration_seed(run.options.checkpointing.seed, iteration))


def recalibrate(run):
    """Re-estimates batch-norm statistics; returns the callbacks that repeat it in fine-tuning."""
    count = run.options.fine_tuning.recalibration_batches
    if not count:
        return []
    recalibrate_batch_norm(run.pm, run.train, batches=count)
    return [RecalibrateBeforeValidation(run.train, count)]


def fine_tune(run, iteration, recalibration):
    """Validates the pruned model, fine-tunes it and records both; returns the monitor."""
    pm, val, state = run.pm, run.val, run.state
    target, tuning = run.options.target, run.options.fine_tuning
    monitor = FineTuneMonitor(iteration, target.metric, run.minimize, target.output == "best-validation" and val is not None)
    if val is not None:
        loss0, value0 = run.planner.timed(TEST, evaluate, pm, val, target.metric)
        state.val_rows.append(dict(iteration=iteration, step=0, loss=loss0, metric=value0, is_final=tuning.fine_tune_epochs == 0))
    if tuning.fine_tune_epochs:
        pm.fit(
            run.train, epochs=tuning.fine_tune_epochs, validation_data=val, shuffle=False,
            steps_per_epoch=tuning.steps_per_epoch, class_weight=tuning.class_weight,
            callbacks=[monitor] + recalibration + [run.planner.callback()] + list(tuning.callbacks or []),
            verbose=fit_verbose(run.options.verbose),
        )
        state.train_rows.extend(_jsonable(row) for row in monitor.steps)
        if monitor.best_weights is not None:
            pm.set_weights(monitor.best_weights)
        chosen = monitor.best_index if target.output == "best-validation" else len(monitor.validations) - 1
        for i, (s, loss, value) in enumerate(monitor.validations):
            state.val_rows.append(dict(iteration=iteration, step=s, loss=loss, metric=value, is_final=i == chosen))
    return monitor


def record(run, iteration):
    """Closes the iteration's bookkeeping; returns the learnables reduction now."""
    run.planner.iteration_done()
    reduction = 1 - run.pm.num_learnables / run.state.original
    row = dict(iteration=iteration, num_learnables=int(run.pm.num_learnables), learnables_reduction=float(reduction))
    column = history_column(run.options.target.cost)
    if column is not None:
        row[column] = float(1 - measure(run.pm, run.options.target.cost) / run.state.original_cost)
    run.state.pruning_rows.append(row)
    run.state.iteration = iteration
    return reduction


def judge(run, iteration, monitor, pruned, reduction):
    """The `StopReason` the fine-tuned model earns, or None if it passes."""
    target = run.options.target
    corrupt = workflow_checks.non_finite_weights(run.pm.net)
    if monitor.non_finite or corrupt:
        if corrupt:
            run.say(f"Non-finite weights after fine-tuning in layers {corrupt}; returning the last good model.")
        return StopReason.NON_FINITE
    final = [r for r in run.state.val_rows if r["iteration"] == iteration and r["is_final"]]
    value = final[-1]["metric"] if final else None
    column = history_column(target.cost)
    cost_text = "" if column is None else (
        f", {100 * run.state.pruning_rows[-1][column]:.1f}% {fewer(target.cost)}")
    run.say(
        f"Iteration {iteration}: {run.pm.num_learnables} learnables "
        f"({100 * reduction:.1f}% fewer{cost_text}), pruned {pruned} filter groups"
        + (f", validation {target.metric} {value:.4g}" if value is not None else "")
    )
    if target.validation_threshold is not None and not meets(value, target.validation_threshold, run.minimize):
        return StopReason.THRESHOLD_REACHED
    return None


def checkpoint(run):
    """Keeps the passing model as the best so far, on disk when checkpointing."""
    pm = run.pm
    if run.ckpt is not None:
        run.best_model, run.best_state = strip_pruning(pm), None
        run.ckpt.save(
            run.state.to_json(), current=pm.net, best=run.best_model,
            scores=dict(score_sum=pm.score_sum.numpy(), score_count=pm.score_count.numpy(), unit_alive=pm.unit_alive.numpy()),
        )
    else:
        # Stripped only when the run ends: a strip per iteration would
        # cost about as much as a validation pass, for a model that the
        # next iteration usually replaces.
        run.best_model, run.best_state = None, (pm, pm.get_weights())


def _jsonable(row):
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
