"""Importance criteria: how much each channel group matters.

A criterion gives one score per channel group of a `TaylorPrunableModel`;
the pruner removes the lowest-scored groups first. Pass one wherever
`criterion=` is accepted (`TaylorPrunableModel`, `kt.compress`, the
callback's model), as an object or by name:

* `Taylor()` (`"taylor"`, Molchanov et al. 2017): for each sample, the
  first-order change of the loss when a channel is zeroed, gathered from the
  gradients of the training step itself.
* `L1()` (`"l1"`, Li et al. 2017): the sum of the absolute kernel weights
  that make the group's channels. Needs no data.
* `Random()` (`"random"`): a baseline, drawn from the model's seeded stream.

Write your own by subclassing `Criterion` (see its docstring).

Example:

>>> import keras, keras_taylor as kt
>>> inputs = keras.Input((8, 8, 3))
>>> x = keras.layers.Conv2D(4, 3)(inputs)
>>> outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
>>> pm = kt.TaylorPrunableModel(keras.Model(inputs, outputs), criterion=kt.importance.L1())
>>> pm.update_prunables(max_to_prune=2)
2
"""

import numpy as np

import keras

from keras_taylor import handlers, scoring
from keras_taylor.errors import InvalidArgumentError, PruningStateError


__all__ = ["Criterion", "L1", "Random", "Taylor"]


class Criterion:
    """Base class of importance criteria. Subclass it for your own.

    The contract:

    * `scores(model)` returns a float NumPy array with one score per channel
      group of `model` (a `TaylorPrunableModel`; `model.channel_graph`
      describes the groups, `model.channel_graph.layer_units[name]` the group
      of each output channel of layer `name`). Higher means more important.
      Only groups that are alive and prunable are read.
    * `uses_gradients`: True when the scores are gathered from the loss
      gradients of the training step (then `fit` and `update_score` gather
      them); False when `scores` computes them from the model as it is.
    * `ready(model)`: False while there is nothing to score from yet.
    * `get_config()`: the arguments to re-create it (checkpoints and saved
      models store it); register the class with
      `keras.saving.register_keras_serializable()`.

    Example:

    >>> import keras, numpy as np, keras_taylor as kt
    >>> class Smallest(kt.importance.Criterion):
    ...     '''Keeps the groups with the largest index (a toy criterion).'''
    ...     def scores(self, model):
    ...         return np.arange(model.channel_graph.num_units, dtype=float)
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3)(inputs)
    >>> outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    >>> pm = kt.TaylorPrunableModel(keras.Model(inputs, outputs), criterion=Smallest())
    >>> pm.update_prunables(max_to_prune=1)
    1
    """

    #: Scores come from the training step's loss gradients.
    uses_gradients = False
    #: The name `get` knows it by (built-in criteria only).
    name = None

    def scores(self, model):
        """One score per channel group of `model` (float array)."""
        raise NotImplementedError(f"{type(self).__name__} must implement scores(model)")

    def ready(self, model):
        """Whether `scores(model)` has something to score from."""
        return True

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}()"


@keras.saving.register_keras_serializable(package="keras_taylor")
class Taylor(Criterion):
    """First-order Taylor importance (Molchanov et al. 2017), gathered while training.

    Example:

    >>> import keras, numpy as np, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3)(inputs)
    >>> outputs = keras.layers.Dense(1)(keras.layers.Flatten()(x))
    >>> pm = kt.TaylorPrunableModel(keras.Model(inputs, outputs), criterion=kt.importance.Taylor())
    >>> pm.update_score(np.ones((2, 8, 8, 3)), np.zeros((2, 1)), loss="mse")
    >>> int(np.isfinite(pm.scores).sum())  # one score per prunable channel group
    4
    """

    uses_gradients = True
    name = "taylor"

    def ready(self, model):
        return float(model.score_count.numpy()) > 0

    def scores(self, model):
        if not self.ready(model):
            raise PruningStateError(
                "No Taylor scores have been accumulated: call "
                "update_score() or fit() before update_prunables()."
            )
        return model.score_sum.numpy().astype(np.float64) / float(model.score_count.numpy())


@keras.saving.register_keras_serializable(package="keras_taylor")
class L1(Criterion):
    """The L1 norm of the kernel slices that make each channel group (Li et al. 2017).

    Example:

    >>> import keras, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3)(inputs)
    >>> outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    >>> pm = kt.TaylorPrunableModel(keras.Model(inputs, outputs), criterion="l1")
    >>> type(pm.criterion).__name__
    'L1'
    """

    name = "l1"

    def scores(self, model):
        graph = model.channel_graph
        kernels = {}
        for node in graph.flat.nodes:
            if node.name in graph.layer_units:
                picked = handlers.get_handler(node.layer).filter_weights(node.layer)
                if picked is not None:
                    kernels[node.name] = picked
        return scoring.l1_scores(graph, kernels, graph.num_units)


@keras.saving.register_keras_serializable(package="keras_taylor")
class Random(Criterion):
    """Random scores, from the model's stream (`TaylorPrunableModel(seed=...)`)."""

    name = "random"

    def scores(self, model):
        return model.rng.random(model.channel_graph.num_units)


#: The names criteria go by, in the one place strings are mapped to classes.
BY_NAME = {cls.name: cls for cls in (Taylor, L1, Random)}


def get(criterion):
    """The `Criterion` for `criterion`: a name, a `Criterion`, or its config.

    Raises:
        InvalidArgumentError: for anything else, naming the criteria known.
    """
    if isinstance(criterion, Criterion):
        return criterion
    if isinstance(criterion, str) and criterion in BY_NAME:
        return BY_NAME[criterion]()
    if isinstance(criterion, dict):
        return keras.saving.deserialize_keras_object(criterion)
    raise InvalidArgumentError(
        f"criterion must be one of {tuple(BY_NAME)} or a "
        f"keras_taylor.importance.Criterion, got {criterion!r}"
    )


def serialize(criterion):
    """A built-in criterion's name, or any other criterion's Keras config."""
    criterion = get(criterion)
    if criterion.name in BY_NAME and type(criterion) is BY_NAME[criterion.name] and not criterion.get_config():
        return criterion.name
    return keras.saving.serialize_keras_object(criterion)
