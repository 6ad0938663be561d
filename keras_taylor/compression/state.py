"""Where a `compress` run stands, as saved in its checkpoint."""

import dataclasses

from keras_taylor.compression.stop import StopReason


@dataclasses.dataclass
class CompressState:
    """The bookkeeping of a `compress` run after its last completed iteration.

    Everything here is plain JSON (the models and scores live in their own
    checkpoint files), so a resumed run continues from exactly this.

    Attributes:
        original: learnables of the unpruned model.
        iteration: the last completed pruning iteration (0: none yet).
        best_iteration: the iteration whose model would be returned now.
        need_fresh_scores: the next step needs scores gathered before it
            (True until a fine-tuning has gathered some).
        stop_reason: a `StopReason` once the run has stopped, else None.
        pruning_rows: rows of `PruningInfo.pruning_history`.
        val_rows: rows of `PruningInfo.validation_history`.
        train_rows: rows of `PruningInfo.training_history`.
        rebuilt_iterations: iterations fine-tuned on a rebuilt model.
        original_cost: the unpruned model's cost the goal counts (None:
            its learnables, `original`).
    """

    original: int
    iteration: int = 0
    best_iteration: int = 0
    need_fresh_scores: bool = True
    stop_reason: StopReason = None
    pruning_rows: list = dataclasses.field(default_factory=list)
    val_rows: list = dataclasses.field(default_factory=list)
    train_rows: list = dataclasses.field(default_factory=list)
    rebuilt_iterations: list = dataclasses.field(default_factory=list)
    original_cost: float = None

    @classmethod
    def start(cls, original, original_cost=None, cost_column=None):
        """The state before any pruning: iteration 0 is the unpruned model.

        `cost_column`: the history column of the goal's cost (e.g.
        "macs_reduction"), or None for learnables.
        """
        row = dict(iteration=0, num_learnables=int(original), learnables_reduction=0.0)
        if cost_column is not None:
            row[cost_column] = 0.0
        cost = None if original_cost is None else float(original_cost)
        return cls(original=int(original), pruning_rows=[row], original_cost=cost)

    def to_json(self):
        """The dict `CompressCheckpoint.save` writes (the stop reason as its sentence)."""
        saved = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        saved["stop_reason"] = None if self.stop_reason is None else self.stop_reason.value
        return saved

    @classmethod
    def from_json(cls, saved):
        """The state `to_json` wrote; fields a checkpoint lacks keep their defaults."""
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in saved.items() if key in known}
        if values.get("stop_reason") is not None:
            values["stop_reason"] = StopReason(values["stop_reason"])
        return cls(**values)
