"""`TaylorPrunableModel`: a Keras model with maskable, scored channel groups."""

import numpy as np
import pandas as pd
import tensorflow as tf

import keras
from keras import tree

from keras_taylor import _compat
from keras_taylor import accounting, handlers, scoring
from keras_taylor.errors import (
    InvalidArgumentError,
    NothingPrunableError,
    PruningStateError,
)
from keras_taylor.graph import ChannelGraph, Options, Rebuild, read_model, replay
from keras_taylor.masking import ChannelMask, bind_kernel_masks, tap_masks


class _InsertMasks(Rebuild):
    """Copies the model, with a ChannelMask where groups enter consumers."""

    def __init__(self, channel_graph):
        self.graph = channel_graph
        self.masks = {}
        self.names = {n.name for n in channel_graph.flat.nodes}
        producer = {}
        for node in channel_graph.flat.nodes:
            for tid in node.outputs:
                producer[tid] = node.name
        self.producer = producer

    def layer_class(self, node):
        return handlers.training_class(type(node.layer))

    def wrap_input(self, node, k, value):
        if not handlers.get_handler(node.layer).consumes:
            return value
        tid = node.inputs[k]
        if not self.graph.unit_prunable[self.graph.tensor_units[tid]].any():
            return value
        if tid not in self.masks:
            base = f"{self.producer.get(tid, 'input')}_taylor_mask"
            name, i = base, 1
            while name in self.names:
                i += 1
                name = f"{base}_{i}"
            self.names.add(name)
            self.masks[tid] = ChannelMask(value.shape[-1], name=name)(value)
        return self.masks[tid]


def nothing_prunable_error(channel_graph, where="model"):
    blockers = {}
    for name, role in channel_graph.layer_roles.items():
        if role == handlers.SOURCE:
            blockers[name] = channel_graph.blockers_of(name)
    if not blockers:
        message = (
            f"{where} has nothing prunable: it has no Conv1D/Conv2D (or other "
            "enabled source) layer whose filters could be removed."
        )
    else:
        lines = [
            f"  {layer}: blocked by "
            + "; ".join(f"'{b}' ({why})" for b, why in reasons[:2])
            for layer, reasons in list(blockers.items())[:10]
        ]
        message = (
            f"{where} has nothing prunable: every candidate layer is blocked.\n"
            + "\n".join(lines)
        )
    return NothingPrunableError(message, blockers)


@keras.saving.register_keras_serializable(package="keras_taylor")
class TaylorPrunableModel(keras.Model):
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
        criterion: `"taylor"` (default), `"l1"` or `"random"`.
        normalize: L2-normalise scores per producing layer before the global
            ranking (Molchanov et al. 2017). Raw scores of channels a
            residual stream shares add up over every unit that reads them,
            so for large one-shot cuts of residual networks a raw global
            ranking empties the units' inner convolutions first; on plain
            CNNs the raw ranking did better (see docs/benchmarks.md).
        spatial_reduction: `"sum"` (default: the first-order loss change
            of zeroing the channel) or `"mean"` (Molchanov 2017: divided by
            the number of positions, which biases a global ranking against
            high-resolution layers) of activation x gradient over positions.
        prune_dense: also prune `Dense` units (default False; Dense layers are
            always sliced where they consume or are coupled to pruned groups).
        prune_separable: prune the pointwise filters of SeparableConv layers.
        seed: seed of the `"random"` criterion.

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
        **kwargs,
    ):
        if criterion not in scoring.CRITERIA:
            raise InvalidArgumentError(
                f"criterion must be one of {scoring.CRITERIA}, got {criterion!r}"
            )
        if spatial_reduction not in scoring.SPATIAL_REDUCTIONS:
            raise InvalidArgumentError(
                "spatial_reduction must be one of "
                f"{scoring.SPATIAL_REDUCTIONS}, got {spatial_reduction!r}"
            )
        options = Options(prune_dense=bool(prune_dense), prune_separable=bool(prune_separable))
        flat = read_model(model, "model")
        if not any(isinstance(n.layer, ChannelMask) for n in flat.nodes):
            original = ChannelGraph(flat, options)
            if not original.prunable_units.size:
                raise nothing_prunable_error(original, f"model '{model.name}'")
            model = replay(flat, _InsertMasks(original), name=model.name)
            flat = read_model(model, "model")
        kwargs.setdefault("name", f"{model.name}_prunable")
        super().__init__(**kwargs)
        self.net = model
        self.criterion = criterion
        self.normalize = bool(normalize)
        self.spatial_reduction = spatial_reduction
        self.prune_dense = options.prune_dense
        self.prune_separable = options.prune_separable
        self.reseed(seed)
        self._flat = flat
        self.channel_graph = ChannelGraph(flat, options)
        graph = self.channel_graph
        if not graph.prunable_units.size:
            raise nothing_prunable_error(graph, f"model '{model.name}'")
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
        self._gather_scores = True
        self.built = True

    # ---------------------------------------------------------------- Keras
    def call(self, inputs, training=None):
        return self.net(inputs, training=training)

    def get_config(self):
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.net),
            "criterion": self.criterion,
            "normalize": self.normalize,
            "spatial_reduction": self.spatial_reduction,
            "prune_dense": self.prune_dense,
            "prune_separable": self.prune_separable,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(
            config.pop("model"), custom_objects=custom_objects
        )
        return cls(model, **config)

    @property
    def gather_scores(self):
        """Whether `fit`'s training step accumulates Taylor scores (default True).

        Turn it off when the scores a training run would gather are thrown
        away, e.g. when fresh scores are taken with `update_score` before
        every pruning step (`kt.compress(score_batches=...)` does this):
        the step is then Keras's own, with the masks still applied, and
        saves the score arithmetic (a ResNet-20 step that gathers costs
        1.036x the same layers without masks or scores in
        benchmarks/overhead).
        `update_score` gathers scores either way. Setting it makes Keras
        trace the training step again.

        Example:

        >>> import keras, numpy as np, keras_taylor as kt
        >>> inputs = keras.Input((8, 8, 1))
        >>> x = keras.layers.Conv2D(4, 3)(inputs)
        >>> outputs = keras.layers.Dense(1)(keras.layers.Flatten()(x))
        >>> pm = kt.TaylorPrunableModel(keras.Model(inputs, outputs))
        >>> pm.compile("sgd", "mse")
        >>> pm.gather_scores = False
        >>> _ = pm.fit(np.ones((4, 8, 8, 1)), np.ones((4, 1)), verbose=0)
        >>> float(pm.score_count.numpy())
        0.0
        """
        return self._gather_scores

    @gather_scores.setter
    def gather_scores(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise InvalidArgumentError(f"gather_scores must be True or False, got {value!r}")
        if bool(value) != self._gather_scores:
            self._gather_scores = bool(value)
            # Keras keeps its traced step; the next fit must trace this one.
            self.train_function = None

    def train_step(self, data):
        """Keras's TensorFlow train step, also gathering Taylor scores."""
        if self.criterion != "taylor" or not self._gather_scores:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            with tap_masks(tape) as taps:
                y_pred = self(x, training=True)
            loss = self._compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            batch = tf.shape(next(i for i in tree.flatten(x) if i is not None))[0]
            self._loss_tracker.update_state(
                _compat.unscale_loss_for_distribution(loss),
                sample_weight=batch,
            )
            if self.optimizer is not None:
                loss = self.optimizer.scale_loss(loss)
        trainable = self.trainable_weights
        names = list(taps)
        grads = tape.gradient(loss, trainable + [taps[n] for n in names])
        if trainable:
            self.optimizer.apply_gradients(zip(grads[: len(trainable)], trainable))
        tap_grads = dict(zip(names, grads[len(trainable):]))
        self._accumulate(taps, tap_grads, batch)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def build_compiled_state(self, element_spec):
        """Creates the optimizer, loss and metric variables ahead of training.

        Keras on TensorFlow (without a distribution strategy) creates them
        while it traces the first train or test step, and `tf.function` must
        then trace that step a second time; on a ResNet-20 the extra trace of
        a train step costs about as much as four training steps. Building
        needs only shapes and dtypes, so zeros shaped like one batch stand in
        for the data. Models with several outputs are left to Keras.

        Args:
            element_spec: the `element_spec` of a dataset of `(x, y[, w])`.

        Example:

        >>> import keras, numpy as np, tensorflow as tf, keras_taylor as kt
        >>> inputs = keras.Input((8, 8, 3))
        >>> x = keras.layers.Conv2D(4, 3)(inputs)
        >>> outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
        >>> pm = kt.TaylorPrunableModel(keras.Model(inputs, outputs))
        >>> pm.compile("sgd", "mse", metrics=["mae"])
        >>> ds = tf.data.Dataset.from_tensor_slices(
        ...     (np.ones((4, 8, 8, 3)), np.ones((4, 2)))).batch(2)
        >>> pm.build_compiled_state(ds.element_spec)
        >>> pm.optimizer.built
        True
        """
        if not self.compiled:
            return
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
        has_targets = isinstance(element_spec, (tuple, list)) and len(element_spec) >= 2 and element_spec[1] is not None
        if not has_targets or len(self.net.outputs) != 1:
            return

        def one_batch_of_zeros(spec):
            shape = [1] + [d if d is not None else 1 for d in tuple(spec.shape)[1:]]
            return tf.zeros(shape, dtype=spec.dtype)

        y_true = tree.map_structure(one_batch_of_zeros, element_spec[1])
        y_pred = one_batch_of_zeros(self.net.outputs[0])
        for compiled in (self._compile_metrics, self._compile_loss):
            if compiled is not None and not compiled.built:
                compiled.build(y_true, y_pred)

    # ------------------------------------------------------------- scoring
    def _sample_scale(self, local_batch):
        """Undoes the 1/batch (and loss scaling) in gradients of the loss."""
        replicas = _compat.replicas_dividing_the_loss()
        scale = tf.cast(local_batch * replicas, tf.float32)
        loss_scale = getattr(self.optimizer, "dynamic_scale", None)
        if loss_scale is not None:
            scale = scale / tf.cast(loss_scale, tf.float32)
        return scale

    def _accumulate(self, taps, tap_grads, local_batch, sample_scale=None):
        contributions = scoring.taylor_batch_scores(
            taps, tap_grads, self._tap_layout, self.channel_graph.num_units,
            self._sample_scale(local_batch) if sample_scale is None else sample_scale,
        )
        # Summed over replicas under tf.distribute (see _compat).
        _compat.assign_add_summed_over_replicas(self.score_sum, contributions)
        _compat.assign_add_summed_over_replicas(self.score_count, tf.cast(local_batch, tf.float32))

    def update_score(self, x, y=None, loss=None, sample_weight=None, training=False):
        """Accumulates Taylor scores of every channel group from one batch.

        Args:
            x: input batch (array, tensor, or a structure matching the inputs).
            y: targets, a structure matching the outputs (optional if `loss`
                takes only predictions).
            loss: a Keras loss (name, instance or function `loss(y, y_pred)`,
                or `loss(y_pred)` when `y` is None). Defaults to the
                compiled loss.
            sample_weight: optional per-sample weights for the compiled loss.
            training: run the forward pass in training mode.
        """
        if loss is None and getattr(self, "_compile_loss", None) is None:
            raise PruningStateError(
                "update_score needs a loss: pass loss=... or compile() the model."
            )
        if loss is not None and not callable(loss):
            loss = keras.losses.get(loss)
        x = tree.map_structure(tf.convert_to_tensor, x)
        y = None if y is None else tree.map_structure(tf.convert_to_tensor, y)
        if sample_weight is not None:
            sample_weight = tf.convert_to_tensor(sample_weight)
        if self.run_eagerly:
            self._score_step(x, y, sample_weight, loss, training)
            return
        # Compiled like Keras's own steps: eager Keras layers run a ResNet-20
        # batch 2-3x slower than a traced graph. One cached function (keyed
        # by what changes the graph) so alternating losses cannot pile up.
        # Without AutoGraph, as Keras traces its own steps: the step has no
        # tensor-dependent Python control flow, and converting the model's
        # code took a fifth of the score step's tracing time.
        key = (id(loss), bool(training), y is None, sample_weight is None)
        if self._score_fn is None or self._score_fn[0] != key:
            def step(x, y, sample_weight):
                self._score_step(x, y, sample_weight, loss, training)

            self._score_fn = (key, tf.function(step, reduce_retracing=True, autograph=False))
        self._score_fn[1](x, y, sample_weight)

    def _score_step(self, x, y, sample_weight, loss, training):
        batch = tf.shape(tree.flatten(x)[0])[0]
        with tf.GradientTape() as tape:
            with tap_masks(tape) as taps:
                y_pred = self(x, training=training)
            if loss is None:
                value = self._compute_loss(
                    x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
                )
            elif y is None:
                value = loss(y_pred)
            else:
                value = loss(y, y_pred)
            value = tf.reduce_mean(value)
        names = list(taps)
        grads = tape.gradient(value, [taps[n] for n in names])
        self._accumulate(taps, dict(zip(names, grads)), batch, tf.cast(batch, tf.float32))

    def reset_scores(self):
        self.score_sum.assign(tf.zeros_like(self.score_sum))
        self.score_count.assign(0.0)

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
        if self.criterion == "taylor":
            count = float(self.score_count.numpy())
            if count <= 0:
                if require:
                    raise PruningStateError(
                        "No Taylor scores have been accumulated: call "
                        "update_score() or fit() before update_prunables()."
                    )
                return np.zeros(graph.num_units)
            scores = self.score_sum.numpy().astype(np.float64) / count
        elif self.criterion == "l1":
            kernels = {}
            for node in self._flat.nodes:
                handler = handlers.get_handler(node.layer)
                picker = getattr(handler, "filter_weights", None)
                if picker is not None and node.name in graph.layer_units:
                    kernels[node.name] = picker(node.layer)
            scores = scoring.l1_scores(graph, kernels, graph.num_units)
        else:
            scores = scoring.random_scores(graph.num_units, self._rng)
        if self.normalize:
            scores = scoring.normalize_per_layer(
                scores, self._unit_primary, graph.prunable_units
            )
        return scores

    # ------------------------------------------------------------- pruning
    def reseed(self, seed):
        """Restarts the random stream of the `"random"` criterion from `seed`."""
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def _candidates(self):
        alive = self.unit_alive.numpy() > 0.5
        return alive, np.flatnonzero(alive & self.channel_graph.unit_prunable)

    @property
    def num_prunables(self):
        """Number of filter groups that can still be pruned."""
        alive, candidates = self._candidates()
        return len(self.channel_graph.remove(candidates, alive)[1])

    def update_prunables(self, max_to_prune=8, learnables_reduction=None):
        """Masks the lowest-scored channel groups; returns how many.

        Never removes a layer's last channel. Resets the accumulated scores.

        Args:
            max_to_prune: largest number of groups to remove (positive int),
                or None when `learnables_reduction` is given.
            learnables_reduction: optional fraction in (0, 1]: remove groups,
                lowest score first, until the learnables have fallen by this
                fraction of the unpruned model's (MATLAB's
                LearnablesReductionIncrement), capped by `max_to_prune`.
        """
        chosen = self.planned_prunables(max_to_prune, learnables_reduction)
        alive = self.alive
        alive[chosen] = False
        self.set_unit_alive(alive)
        self.reset_scores()
        return len(chosen)

    def planned_prunables(self, max_to_prune=8, learnables_reduction=None):
        """The channel groups `update_prunables` would mask now, changing nothing.

        Takes the same arguments; returns their indices (int array, lowest
        score first), e.g. to see whether more scoring batches would change
        the choice.
        """
        if max_to_prune is None and learnables_reduction is None:
            raise InvalidArgumentError(
                "give max_to_prune, learnables_reduction or both"
            )
        if max_to_prune is not None and (
            isinstance(max_to_prune, bool)
            or not isinstance(max_to_prune, (int, np.integer))
            or max_to_prune <= 0
        ):
            raise InvalidArgumentError(
                f"max_to_prune must be a positive integer, got {max_to_prune!r}"
            )
        if learnables_reduction is not None and not (0 < learnables_reduction <= 1):
            raise InvalidArgumentError(
                "learnables_reduction must be in (0, 1], got "
                f"{learnables_reduction!r}"
            )
        scores = self._raw_scores(require=True)
        alive, candidates = self._candidates()
        order = candidates[np.argsort(scores[candidates], kind="stable")]
        _, removable = self.channel_graph.remove(order, alive)
        count = len(removable) if max_to_prune is None else min(int(max_to_prune), len(removable))
        if learnables_reduction is not None:
            count = min(count, self._count_for_reduction(alive, removable, learnables_reduction))
        return np.asarray(removable[:count], dtype=np.int64)

    def _count_for_reduction(self, alive, removable, fraction):
        """Fewest groups of `removable` (in order) that remove `fraction`."""
        graph = self.channel_graph
        target = accounting.total_learnables(graph, alive) - fraction * self.original_learnables
        lo, hi = 0, len(removable)
        trial = alive.copy()
        while lo < hi:
            mid = (lo + hi) // 2
            trial[:] = alive
            trial[removable[:mid]] = False
            if accounting.total_learnables(graph, trial) <= target:
                hi = mid
            else:
                lo = mid + 1
        return lo

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
        return accounting.count_layers(self.channel_graph, self.alive, skip=("ChannelMask",))

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
