"""Why a `compress` run stopped."""

import enum


class StopReason(str, enum.Enum):
    """Why `compress` stopped pruning.

    A `str` whose value is the sentence `compress` prints, so
    `info.stop_reason == "Learnables reduction goal reached."` holds and
    checkpoints store the sentence itself.

    Example:

    >>> from keras_taylor.compression import StopReason
    >>> StopReason.GOAL_REACHED == "Learnables reduction goal reached."
    True
    >>> print(StopReason("No more prunable filters."))
    No more prunable filters.
    """

    GOAL_REACHED = "Learnables reduction goal reached."
    COST_GOAL_REACHED = "Goal reached."
    THRESHOLD_REACHED = "Validation metric threshold reached."
    NOTHING_PRUNABLE = "No more prunable filters."
    NON_FINITE = "Non-finite loss, weights or scores during fine-tuning."
    BASELINE_MISSES = "The unpruned model already misses the validation threshold."
    MAX_ITERATIONS = "Maximum number of iterations reached."

    def __str__(self):
        # The sentence, not "StopReason.GOAL_REACHED": it is printed as is.
        return self.value
