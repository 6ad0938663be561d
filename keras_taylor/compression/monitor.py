"""The callback that watches each fine-tuning of `compress`."""

import math

import keras

from keras_taylor import _compat


class FineTuneMonitor(keras.callbacks.Callback):
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
