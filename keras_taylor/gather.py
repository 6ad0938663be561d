"""Gathering Taylor scores in the training step's own backward pass.

`ScoreGathering` is the part of `TaylorPrunableModel` that touches Keras's
training loop (as Keras's own `TensorFlowTrainer` is a mixin of `Model`):
`train_step` asks the tape for the gradient of the loss at every
`ChannelMask` in the same pass that trains the weights, and `update_score`
does the same for one batch without training.
"""

import numpy as np
import tensorflow as tf

import keras
from keras import tree

from keras_taylor import _compat, scoring, workflow_checks
from keras_taylor.errors import InvalidArgumentError, PruningStateError
from keras_taylor.masking import tap_masks


class ScoreGathering:
    """Mixin of `TaylorPrunableModel`: Keras training glue and score sums.

    Expects `criterion`, `channel_graph`, `score_sum`, `score_count` and
    `_tap_layout` on the model.
    """

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
        if not self.criterion.uses_gradients or not self._gather_scores:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            with tap_masks(tape) as taps:
                y_pred = self(x, training=True)
            loss = _compat.compute_loss(self, x, y, y_pred, sample_weight, training=True)
            batch = tf.shape(next(i for i in tree.flatten(x) if i is not None))[0]
            _compat.track_loss(self, loss, batch)
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
        for compiled in _compat.compiled_metric_and_loss(self):
            if compiled is not None and not compiled.built:
                compiled.build(y_true, y_pred)

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
        if loss is None and not _compat.has_compiled_loss(self):
            where = "compiled without a loss" if getattr(self, "compiled", False) else "not compiled"
            raise PruningStateError(
                f"update_score needs a loss: '{self.name}' is {where}; pass loss=... "
                "(or compile the model with loss=...)."
            )
        if self._finite_checks_left > 0:
            # The first batches only: reading every batch back from the
            # device would cost a sync per step.
            self._finite_checks_left -= 1
            workflow_checks.check_finite_data(
                (x, y) if sample_weight is None else (x, y, sample_weight), "update_score"
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
                value = _compat.compute_loss(self, x, y, y_pred, sample_weight, training=False)
            elif y is None:
                value = loss(y_pred)
            else:
                value = loss(y, y_pred)
            value = tf.reduce_mean(value)
        names = list(taps)
        grads = tape.gradient(value, [taps[n] for n in names])
        self._accumulate(taps, dict(zip(names, grads)), batch, tf.cast(batch, tf.float32))

    def reset_scores(self):
        """Forgets the scores gathered so far."""
        self.score_sum.assign(tf.zeros_like(self.score_sum))
        self.score_count.assign(0.0)

