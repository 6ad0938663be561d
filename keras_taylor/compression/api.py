"""`compress`: score, prune, fine-tune and validate until a goal or a limit.

The Keras counterpart of MATLAB's `compressNetworkUsingTaylorPruning`. This
module checks the call and prepares the data; `loop.CompressionRun` runs the
phases (`phases.py`).
"""

import dataclasses

from keras_taylor import _compat, goals, importance, workflow_checks
from keras_taylor import data as data_utils
from keras_taylor.compile_settings import compile_settings
from keras_taylor.compression.loop import CompressionRun
from keras_taylor.compression.options import Checkpointing, CompressOptions, FineTuning, Scoring, Target, attributes_section
from keras_taylor.compression.seeding import iteration_seed
from keras_taylor.errors import PruningStateError
from keras_taylor.graph.flat import check_readable


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
    ranking=None,
):
    # The docstring is `_DOC` below, assembled from the option groups'
    # docstrings, so each option is documented in one place.
    options = CompressOptions(
        target=Target(
            goal=goal, increment=increment, max_iterations=max_iterations, validation_threshold=validation_threshold,
            metric=metric, mode=mode, output=output, cost=cost, runtime=runtime, round_to=round_to,
            ranking=ranking,
        ),
        fine_tuning=FineTuning(
            fine_tune_epochs=fine_tune_epochs, steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
            callbacks=callbacks, class_weight=class_weight, recalibration_batches=recalibration_batches,
            rebuild_threshold=rebuild_threshold,
        ),
        scoring=Scoring(
            criterion=criterion, score_batches=score_batches, normalize=normalize, prune_dense=prune_dense,
            prune_frozen=prune_frozen,
        ),
        checkpointing=Checkpointing(checkpoint_dir=checkpoint_dir, seed=seed),
        batch_size=batch_size,
        verbose=verbose,
    )
    return compress_with(model, ds, options, validation_data)


def compress_with(model, ds, options, validation_data=None):
    """`compress` with its options given by group, as a `CompressOptions`.

    Args:
        model: as for `compress`.
        ds: as for `compress`.
        options: a `CompressOptions`; it is not modified.
        validation_data: as for `compress`.

    Returns:
        `(pruned_model, info)`, as `compress` returns them.

    Example:

    >>> import keras, numpy as np
    >>> from keras_taylor.compression import (
    ...     Checkpointing, CompressOptions, FineTuning, Scoring, Target, compress_with)
    >>> inputs = keras.Input((8, 8, 1))
    >>> x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    >>> model.compile("adam", "mse")
    >>> data = (np.random.rand(64, 8, 8, 1), np.random.rand(64, 2))
    >>> options = CompressOptions(
    ...     Target(goal=0.3, increment=0.1), FineTuning(fine_tune_epochs=1),
    ...     Scoring(criterion="l1"), Checkpointing(seed=0), verbose=0)
    >>> pruned, info = compress_with(model, data, options)
    >>> print(info.stop_reason)
    Learnables reduction goal reached.
    """
    options.check(validation_data)
    # A subclassed or unbuilt model must fail here, with the reason, before
    # the data checks read its (missing) inputs.
    check_readable(model, "model")
    scoring = dataclasses.replace(options.scoring, criterion=importance.get(options.scoring.criterion))
    options = dataclasses.replace(options, scoring=scoring)
    target = options.target
    cost, round_to = goals.check_cost(target.cost), goals.check_round_to(target.round_to)
    options = dataclasses.replace(options, target=dataclasses.replace(target, cost=cost, round_to=round_to))
    workflow_checks.check_train_step(model)
    workflow_checks.check_mode(options.target.mode)
    workflow_checks.check_class_weight(options.fine_tuning.class_weight)
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise PruningStateError(
            f"model '{model.name}' is not compiled: compress fine-tunes with the "
            "model's own loss, optimizer and metrics, so call "
            "model.compile(optimizer, loss, metrics) first."
        )
    workflow_checks.check_has_loss(model)
    settings = compile_settings(model)
    seed, tuning = options.checkpointing.seed, options.fine_tuning
    train = data_utils.as_dataset(ds, options.batch_size, shuffle=True, name="ds", seed=iteration_seed(seed, 1))
    data_utils.check_matches(model, train, "ds")
    val = None
    if validation_data is not None:
        val = data_utils.as_dataset(validation_data, options.batch_size, shuffle=False, name="validation_data")
        data_utils.check_matches(model, val, "validation_data")
    val = workflow_checks.check_compress_data(ds, train, validation_data, val, tuning.steps_per_epoch, tuning.validation_steps)
    say = _compat.print_msg if options.verbose else (lambda *a, **k: None)
    options = dataclasses.replace(options, target=dataclasses.replace(options.target, metric=options.target.metric or "loss"))
    return CompressionRun(model, ds, validation_data, train, val, options, settings, say).run()


_DOC = '''Compresses `model` by iterative Taylor pruning and fine-tuning.

    Each iteration gathers importance scores, prunes about `increment` of the
    original cost (each iteration aims at the next multiple of it), fine-tunes for
    `fine_tune_epochs` and validates.
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

    The options below come in groups, documented in `keras_taylor.compression`:
    what to reach (`Target`), how to fine-tune (`FineTuning`), how to score
    (`Scoring`), where to checkpoint (`Checkpointing`); `compress_with`
    takes them as such.

    Args:
        model: a compiled functional or Sequential `keras.Model`. Its own
            loss, metric and optimizer objects are used for fine-tuning (not a
            config round trip, so plain Python loss functions, `Loss`
            subclasses, lambdas and custom schedules work; optimizer and metric
            state start fresh). Not modified.
        ds: a `tf.data.Dataset` of `(x, y)` batches, or a tuple of NumPy
            arrays `(x, y)` (batched with `batch_size`, shuffled per epoch).
        validation_data: `(x, y)` arrays or a dataset, evaluated after each
            fine-tuning epoch.
{general}
{target}
{fine_tuning}
{scoring}
{checkpointing}

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
    >>> print(info.stop_reason)
    Learnables reduction goal reached.
    '''

compress.__doc__ = _DOC.format(
    # batch_size and verbose, as CompressOptions documents them (not its groups)
    general="        batch_size:" + attributes_section(CompressOptions).split("\n        batch_size:", 1)[1],
    target=attributes_section(Target),
    fine_tuning=attributes_section(FineTuning),
    scoring=attributes_section(Scoring),
    checkpointing=attributes_section(Checkpointing),
)
