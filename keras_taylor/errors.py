"""Exceptions raised by keras_taylor.

Every error is a subclass of `ValueError` or `TypeError`, so code that already
catches those keeps working, and every message names the argument or layer at
fault.
"""


class KerasTaylorError(Exception):
    """Base class of every keras_taylor error."""


class UnsupportedModelError(KerasTaylorError, TypeError):
    """The model cannot be read as a graph (subclassed, unbuilt, ...)."""


class NothingPrunableError(KerasTaylorError, ValueError):
    """No channel group in the model can be pruned.

    `blockers` maps each candidate source layer to the reasons that stopped it.
    """

    def __init__(self, message, blockers=None):
        super().__init__(message)
        self.blockers = dict(blockers or {})


class PruningStateError(KerasTaylorError, ValueError):
    """An operation was asked for at the wrong moment (no scores yet, ...)."""


class InvalidArgumentError(KerasTaylorError, ValueError):
    """An argument has a value out of its allowed range."""


class CheckpointError(KerasTaylorError, ValueError):
    """A `compress` checkpoint is corrupt or belongs to another call."""
