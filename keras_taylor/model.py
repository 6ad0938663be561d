"""`TaylorPrunableModel`: a Keras model with maskable, scored channel groups."""

import numpy as np
import pandas as pd

import keras

from keras_taylor import accounting, goals, importance, pruner, scoring, workflow_checks
from keras_taylor.errors import InvalidArgumentError
from keras_taylor.gather import ScoreGathering
from keras_taylor.graph import Options
from keras_taylor.graph.masks import nothing_prunable_error, with_masks  # noqa: F401  (re-exported)
from keras_taylor.masking import ChannelMask, bind_kernel_masks

__all__ = ["TaylorPrunableModel", "nothing_prunable_error"]


@keras.saving.register_keras_serializable(package="keras_taylor")
class TaylorPrunableModel(ScoreGathering, keras.Model):
    """A Keras model whose conv filters can be scored and masked.

    Wraps a built functional or Sequential model (nested sub-models, several
    inputs and outputs included) in a copy whose channel groups (filters
    coupled by residual additions, concatenations, depthwise convolutions,
    squeeze-excitation products, ...) each carry one mask. The model passed in
    is never modified.

    Train it like any Keras model: `fit` gathers Taylor scores in the same
    forward and backward pass that trains the weights. `update_prunables`
    then masks the lowest-scored groups, and `keras_taylor.strip_pruning`
    returns a physically smaller plain model.

    Args:
        model: a built `keras.Model` (functional or Sequential).
        criterion: a `kt.importance.Criterion` (`Taylor()`, `L1()`,
            `Random()` or your own) or its name: `"taylor"` (default),
            `"l1"` or `"random"`.
        normalize: False (default: raw scores), `"l2"` (or True) or
            `"mean"`: divide the scores of each producing layer by their L2
            norm (Molchanov et al. 2017) or their mean (Torch-Pruning's
            default; a layer's width then does not shift its rank) before the
            global ranking. Raw scores of channels a
            residual stream shares add up over every residual block that reads them,
            so for large one-shot cuts of residual networks a raw global
            ranking empties the blocks' inner convolutions first; on plain
            CNNs the raw ranking did better (see docs/benchmarks.md).
        spatial_reduction: `"sum"` (default: the first-order loss change
            of zeroing the channel) or `"mean"` (Molchanov 2017: divided by
            the number of positions, which biases a global ranking against
            high-resolution layers) of activation x gradient over positions.
        prune_dense: also prune `Dense` units (default False; Dense layers are
            always sliced where they consume or are coupled to pruned groups).
        prune_separable: prune the pointwise filters of SeparableConv layers.
        seed: seed of the `Random` criterion's stream (`rng`).
        prune_frozen: True (default) prunes layers with `trainable=False`
            like any other (transfer learning: a frozen backbone is pruned,
            sliced and counted in the learnables, though fit does not train
            it). False leaves every channel group that touches a frozen
            layer holding weights (its filters, its input channels, a frozen
            batch norm's channels) unpruned, so frozen layers keep their
            exact weights.

    Example:

    >>> import keras, numpy as np, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    >>> outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    >>> pm = kt.TaylorPrunableModel(keras.Model(inputs, outputs))
    >>> pm.num_prunables
    7
    >>> pm.update_score(np.ones((4, 8, 8, 3)), np.zeros((4, 2)), loss="mse")
    >>> pm.update_prunables(max_to_prune=2)
    2
    """

    def __init__(
        self,
        model,
        criterion="taylor",
        normalize=False,
        spatial_reduction="sum",
        prune_dense=False,
        prune_separable=True,
        seed=None,
        prune_frozen=True,
        **kwargs,
    ):
        criterion = importance.get(criterion)
        if spatial_reduction not in scoring.SPATIAL_REDUCTIONS:
            raise InvalidArgumentError(
                "spatial_reduction must be one of "
                f"{scoring.SPATIAL_REDUCTIONS}, got {spatial_reduction!r}"
            )
        options = Options(
            prune_dense=bool(prune_dense), prune_separable=bool(prune_separable),
            prune_frozen=bool(prune_frozen),
        )
        model, graph = with_masks(model, options, "model")
        kwargs.setdefault("name", f"{model.name}_prunable")
        super().__init__(**kwargs)
        self.net = model
        self.criterion = criterion
        self.normalize = normalize if scoring.as_normalizer(normalize) else False
        self.spatial_reduction = spatial_reduction
        self.prune_dense = options.prune_dense
        self.prune_frozen = options.prune_frozen
        self.prune_separable = options.prune_separable
        self.reseed(seed)
        self.channel_graph = graph
        flat = graph.flat
        num_units = graph.num_units
        self.unit_alive = self.add_weight(
            name="unit_alive", shape=(num_units,), initializer="ones",
            trainable=False, dtype="float32",
        )
        self.score_sum = self.add_weight(
            name="score_sum", shape=(num_units,), initializer="zeros",
            trainable=False, dtype="float32", aggregation="sum",
        )
        self.score_count = self.add_weight(
            name="score_count", shape=(), initializer="zeros",
            trainable=False, dtype="float32", aggregation="sum",
        )
        self._mask_layers = {}
        mask_units, mask_shapes = {}, {}
        for node in flat.nodes:
            if isinstance(node.layer, ChannelMask):
                self._mask_layers[node.layer.name] = node.layer
                mask_units[node.layer.name] = graph.mask_points[node.index]
                mask_shapes[node.layer.name] = node.input_shapes[0]
        bind_kernel_masks(flat)
        self._tap_layout = scoring.tap_layout(mask_units, mask_shapes, spatial_reduction)
        self._mask_units = mask_units
        self._unit_primary = {u: layers[0] for u, layers in graph.unit_layers.items()}
        self._score_fn = None
        self._finite_checks_left = workflow_checks.FIRST_BATCHES
        self._gather_scores = True
        self.latency_profile = None  # set to kt.latency_profile(...) for cost="latency"
        self.built = True

    # ---------------------------------------------------------------- Keras
    def call(self, inputs, training=None):
        return self.net(inputs, training=training)

    def get_config(self):
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.net),
            "criterion": importance.serialize(self.criterion),
            "normalize": self.normalize,
            "spatial_reduction": self.spatial_reduction,
            "prune_dense": self.prune_dense,
            "prune_separable": self.prune_separable,
            "seed": self.seed,
            "prune_frozen": self.prune_frozen,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(
            config.pop("model"), custom_objects=custom_objects
        )
        return cls(model, **config)

    @property
    def scores(self):
        """Current score of every channel group (NaN for unprunable ones)."""
        scores = self._raw_scores(require=False)
        out = np.full(self.channel_graph.num_units, np.nan)
        prunable = self.channel_graph.unit_prunable
        out[prunable] = scores[prunable]
        return out

    def _raw_scores(self, require=True):
        graph = self.channel_graph
        if not require and not self.criterion.ready(self):
            return np.zeros(graph.num_units)
        scores = np.asarray(self.criterion.scores(self), dtype=np.float64)
        if scores.shape != (graph.num_units,):
            raise InvalidArgumentError(
                f"criterion {self.criterion!r} returned scores of shape "
                f"{scores.shape}; expected one per channel group ({graph.num_units},)"
            )
        if self.normalize:
            scores = pruner.normalize_per_layer(
                scores, self._unit_primary, graph.prunable_units, scoring.as_normalizer(self.normalize)
            )
        return scores

    @property
    def _flat(self):
        """The flat graph of `net` (kept for code written before `channel_graph.flat`)."""
        return self.channel_graph.flat

    # ------------------------------------------------------------- pruning
    def reseed(self, seed):
        """Restarts the random stream of the `"random"` criterion from `seed`."""
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @property
    def rng(self):
        """The random stream of the `Random` criterion (`numpy.random.Generator`)."""
        return self._rng

    @property
    def num_prunables(self):
        """Number of channel groups that can still be pruned."""
        return self.channel_graph.layout.num_removable(self.alive)

    def update_prunables(self, max_to_prune=8, learnables_reduction=None, *, cost="learnables",
                         goal=None, round_to=None, ranking=None):
        """Masks the lowest-scored channel groups; returns how many.

        Never removes a layer's last channel. Resets the accumulated scores.

        Args:
            max_to_prune: largest number of groups to remove (positive int),
                or None when a goal is given.
            learnables_reduction: optional fraction in (0, 1]: remove groups,
                lowest score first, until the learnables have fallen by this
                fraction of the unpruned model's (MATLAB's
                LearnablesReductionIncrement), capped by `max_to_prune`.
            cost: what `goal` counts: `"learnables"` (default: groups go
                lowest score first, as MATLAB), `"macs"` or `"latency"`
                (groups go lowest score per unit of cost saved first, a
                greedy knapsack as in HALP; `"latency"` needs
                `pm.latency_profile`), or a latency profile itself.
            goal: a fraction in (0, 1] of the unpruned model's `cost` to
                remove now, `kt.Speedup(2.0)` (prune until the cost is half
                the unpruned model's) or `kt.LatencyBudget(ms=3)`; reached
                within one channel group (one rounding step with `round_to`).
            round_to: keep every pruned layer's channel count a multiple of
                this (at least this): each layer to its nearest multiple (down,
                the faster side, for latency), the whole toward pruning more;
                layers created with fewer channels are exempt. May remove a
                few more groups than `max_to_prune`.
            ranking: which groups go first: `"importance"` (lowest score
                first; Torch-Pruning's global ranking under a MACs target),
                `"importance_per_cost"` (lowest score per unit of `cost`
                saved), or None (default): the first for learnables, the
                second for MACs and latency.

        Example:

        >>> import keras, numpy as np, keras_taylor as kt
        >>> inputs = keras.Input((8, 8, 3))
        >>> x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
        >>> outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
        >>> pm = kt.TaylorPrunableModel(keras.Model(inputs, outputs))
        >>> pm.update_score(np.ones((4, 8, 8, 3)), np.zeros((4, 2)), loss="mse")
        >>> pm.update_prunables(None, cost="macs", goal=kt.Speedup(2.0), round_to=4)
        8
        """
        chosen = self.planned_prunables(
            max_to_prune, learnables_reduction, cost=cost, goal=goal, round_to=round_to, ranking=ranking
        )
        alive = self.alive
        alive[chosen] = False
        self.set_unit_alive(alive)
        self.reset_scores()
        return len(chosen)

    def planned_prunables(self, max_to_prune=8, learnables_reduction=None, *, cost="learnables",
                          goal=None, round_to=None, ranking=None):
        """The channel groups `update_prunables` would mask now, changing nothing.

        Takes the same arguments; returns their indices (int array, in the
        order they go), e.g. to see whether more scoring batches would change
        the choice.
        """
        if learnables_reduction is not None:
            if goal is not None:
                raise InvalidArgumentError("give learnables_reduction or goal, not both")
            if not (0 < learnables_reduction <= 1):
                raise InvalidArgumentError(
                    f"learnables_reduction must be in (0, 1], got {learnables_reduction!r}")
            cost, goal = "learnables", learnables_reduction
        if max_to_prune is None and goal is None:
            raise InvalidArgumentError("give max_to_prune, learnables_reduction, goal or both")
        if max_to_prune is not None and (
            isinstance(max_to_prune, bool)
            or not isinstance(max_to_prune, (int, np.integer))
            or max_to_prune <= 0
        ):
            raise InvalidArgumentError(
                f"max_to_prune must be a positive integer, got {max_to_prune!r}"
            )
        cost = goals.check_cost(cost)
        round_to = goals.check_round_to(round_to)
        if goal is not None:
            goal = goals.check_goal(goal, cost)
        ranking = goals.check_ranking(ranking, cost)
        alive = self.alive
        # Learnables are counted exactly, so their table is needed only to rank per parameter saved.
        table = None if cost == "learnables" and ranking == "importance" else self.cost_table(cost)
        if cost == "learnables":
            plan_goal = goals.plan_goal(None, goals.learnables_measure(self.channel_graph), alive, goal)
        else:
            plan_goal = goals.plan_goal(table, None, alive, goal)
        savings = table.savings if ranking == "importance_per_cost" else None
        # A latency profile errs toward fast for pruned plans: round its layers down, the faster side.
        return pruner.plan(
            self._raw_scores(require=True), alive, self.channel_graph.layout, limit=max_to_prune,
            savings=savings, round_to=round_to, round_down=goals.cost_kind(cost) == "latency", **plan_goal,
        )

    def cost_table(self, cost="macs"):
        """The `costs.LayerCosts` of `cost` over this model's channel groups.

        `cost`: `"learnables"`, `"macs"`, `"latency"` (from
        `self.latency_profile`) or a latency profile. `table.total(pm.alive)`
        is the model's cost as pruned so far; `table.savings(pm.alive)` what
        removing each channel group would save now.
        """
        if getattr(self, "_cost_tables", None) is None:
            self._cost_tables = accounting.layer_cost_tables(self.channel_graph)[0]
        return goals.cost_table(
            goals.check_cost(cost), self.channel_graph, self._cost_tables,
            getattr(self, "latency_profile", None),
        )

    def cost_reduction(self, cost="learnables"):
        """Fraction of the unpruned model's `cost` removed so far."""
        if goals.check_cost(cost) == "learnables":
            return self.learnables_reduction
        table = self.cost_table(cost)
        full = np.ones(self.channel_graph.num_units, dtype=bool)
        return 1.0 - table.total(self.alive) / table.total(full)

    @property
    def original_learnables(self):
        """Learnables of the unpruned model."""
        if getattr(self, "_original_learnables", None) is None:
            full = np.ones(self.channel_graph.num_units, dtype=bool)
            self._original_learnables = accounting.total_learnables(self.channel_graph, full)
        return self._original_learnables

    @property
    def learnables_reduction(self):
        """Fraction of the unpruned model's learnables removed so far."""
        return 1.0 - self.num_learnables / self.original_learnables

    def set_unit_alive(self, alive):
        """Sets the mask of every channel group (bool array, one per group)."""
        alive = np.asarray(alive, dtype=bool)
        graph = self.channel_graph
        if alive.shape != (graph.num_units,):
            raise InvalidArgumentError(
                f"alive must have shape ({graph.num_units},), got {alive.shape}"
            )
        if (~alive & ~graph.unit_prunable).any():
            raise InvalidArgumentError("alive removes a group that is not prunable")
        self.unit_alive.assign(alive.astype("float32"))
        for name, layer in self._mask_layers.items():
            layer.mask.assign(alive[self._mask_units[name]].astype("float32"))

    # ------------------------------------------------------------- reports
    @property
    def alive(self):
        return self.unit_alive.numpy() > 0.5

    def layer_counts(self):
        return accounting.count_layers(self.channel_graph, self.alive, skip=(ChannelMask,))

    @property
    def num_learnables(self):
        return sum(c.learnables for c in self.layer_counts())

    @property
    def multiply_accumulates(self):
        """Multiply-accumulates per sample of the model as pruned so far.

        Convolution and Dense work (kernel size times the positions it is
        applied at), counted with the shapes the stripped model will have.
        """
        return accounting.total_multiply_accumulates(self.channel_graph, self.alive)

    @property
    def original_multiply_accumulates(self):
        """Multiply-accumulates per sample of the unpruned model."""
        if getattr(self, "_original_macs", None) is None:
            full = np.ones(self.channel_graph.num_units, dtype=bool)
            self._original_macs = accounting.total_multiply_accumulates(self.channel_graph, full)
        return self._original_macs

    @property
    def learnables(self):
        """DataFrame of learnable parameters: layer, parameter, shape, size.

        Shapes are those the stripped model will have.
        """
        rows = [
            (c.name, name, shape, int(np.prod(shape)) if shape else 1)
            for c in self.layer_counts()
            for name, shape in c.shapes.items()
        ]
        return pd.DataFrame(rows, columns=["layer", "parameter", "shape", "size"])
