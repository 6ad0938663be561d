"""`PruningInfo`: what a `compress` run did."""

import dataclasses

import pandas as pd

from keras_taylor.compression.stop import StopReason


@dataclasses.dataclass
class PruningInfo:
    """What `compress` did.

    Attributes:
        pruning_history: DataFrame (iteration, num_learnables,
            learnables_reduction); iteration 0 is the unpruned model. With
            `cost="macs"` or `"latency"` also the fraction of that cost
            removed (`macs_reduction` or `latency_reduction`, the latter
            as the profile predicts it).
        validation_history: DataFrame (iteration, step, loss, metric,
            is_final): step 0 is right after pruning, then each fine-tuning
            epoch; `is_final` marks the value the iteration is judged by.
        training_history: DataFrame of every fine-tuning step's logs.
        pruned_layers: names of the layers whose learnables decreased.
        stop_reason: why pruning stopped, a `StopReason` (a `str` equal to
            the sentence `compress` prints).
        metric: name of the validation metric.
        threshold: the validation threshold, or None.
        returned_iteration: the iteration whose model was returned.
        rebuilt_iterations: iterations whose fine-tuning ran on a model
            rebuilt physically smaller (see `rebuild_threshold`).
        cost_column: the `pruning_history` column of the goal's cost
            (`"macs_reduction"`, `"latency_reduction"`), None for learnables.

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
    >>> print(info.stop_reason)
    Learnables reduction goal reached.
    """

    pruning_history: pd.DataFrame
    validation_history: pd.DataFrame
    training_history: pd.DataFrame
    pruned_layers: list
    stop_reason: StopReason
    metric: str
    threshold: float = None
    returned_iteration: int = 0
    rebuilt_iterations: list = dataclasses.field(default_factory=list)
    cost_column: str = None

    @property
    def learnables_reduction(self):
        """Fraction of the learnables removed in the returned model."""
        return self._returned("learnables_reduction")

    @property
    def cost_reduction(self):
        """Fraction of the goal's cost (learnables, MACs or predicted latency) removed in the returned model."""
        return self._returned(self.cost_column or "learnables_reduction")

    def _returned(self, column):
        rows = self.pruning_history
        return float(rows.loc[rows.iteration == self.returned_iteration, column].iloc[0])

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
