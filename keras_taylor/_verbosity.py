"""What `verbose=` means for keras-taylor's progress output.

    0  silent
    1  a line per pruning iteration; Keras progress bars while fine-tuning
       when the output is a terminal or a notebook, otherwise one line per
       epoch (a redirected log gets no carriage returns or colour codes)
    2  a line per pruning iteration and one line per fine-tuning epoch
"""

import sys

LEVELS = (0, 1, 2)


def check(verbose, name="verbose"):
    """Returns `verbose` as an int in LEVELS, or raises ValueError naming it."""
    if isinstance(verbose, bool) or verbose not in LEVELS:
        raise ValueError(f"{name} must be 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def interactive(stream=None):
    """True when `stream` (default sys.stdout) redraws a progress bar in place."""
    stream = sys.stdout if stream is None else stream
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    return _in_notebook()


def _in_notebook():
    # A Jupyter kernel's shell, not merely ipykernel imported: a process that
    # only drives notebooks (nbclient, as the tutorial tests do) imports it too.
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def fit_verbose(verbose, stream=None):
    """The `verbose` to give Keras's `fit` for keras-taylor's level `verbose`."""
    if not verbose:
        return 0
    if verbose == 1 and interactive(stream):
        return 1
    return 2
