"""keras_taylor: structured Taylor filter pruning for Keras 3.

Wrap a model with `TaylorPrunableModel`, gather Taylor scores while training,
mask the least important channel groups, and `strip_pruning` to get a
physically smaller `keras.Model`.

Public names are imported on first use (PEP 562), so `import keras_taylor`
and the `keras-taylor --help` / `--version` commands do not start
TensorFlow; the first public name used imports Keras and checks its backend.
"""

import importlib as _importlib
import os as _os

__version__ = "0.1.0"

_backend = _os.environ.get("KERAS_BACKEND", "tensorflow")
if _backend != "tensorflow":
    raise ImportError(
        "keras_taylor works only with the TensorFlow backend of Keras 3, but "
        f"KERAS_BACKEND is '{_backend}'. Set KERAS_BACKEND=tensorflow before "
        "importing keras."
    )

# public name -> the module that defines it
_EXPORTS = {
    "ChannelMask": "keras_taylor.masking",
    "FusedBatchNormalization": "keras_taylor.batchnorm",
    "PruningInfo": "keras_taylor.compression",
    "TaylorPruningCallback": "keras_taylor.callbacks",
    "compress": "keras_taylor.compression",
    "export_litert": "keras_taylor.export",
    "fold_batch_norm": "keras_taylor.folding",
    "CheckpointError": "keras_taylor.errors",
    "InvalidArgumentError": "keras_taylor.errors",
    "KerasTaylorError": "keras_taylor.errors",
    "NothingPrunableError": "keras_taylor.errors",
    "PruningStateError": "keras_taylor.errors",
    "TaylorPrunableModel": "keras_taylor.model",
    "UnsupportedModelError": "keras_taylor.errors",
    "analyze": "keras_taylor.report",
    "compare": "keras_taylor.report",
    "max_reduction": "keras_taylor.report",
    "LatencyBudget": "keras_taylor.costs",
    "Speedup": "keras_taylor.costs",
    "LatencyProfile": "keras_taylor.profile",
    "latency_profile": "keras_taylor.profile",
    "prune_to_latency": "keras_taylor.latency_goal",
    "LatencyRound": "keras_taylor.latency_goal",
    "measure_latency": "keras_taylor.latency",
    "register_layer": "keras_taylor.handlers",
    "recalibrate_batch_norm": "keras_taylor.recalibration",
    "save_model": "keras_taylor.saving",
    "strip_pruning": "keras_taylor.surgery",
}

# public submodules: kt.handlers (the building blocks of kt.register_layer),
# kt.importance (the criteria) and kt.compression (compress's option groups)
_SUBMODULES = ("handlers", "importance", "compression")

__all__ = list(_EXPORTS) + list(_SUBMODULES)

_checked = False


def _check_backend():
    """Imports Keras once and checks that it runs on TensorFlow."""
    global _checked
    if _checked:
        return
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ImportError(
            "keras_taylor works only with the TensorFlow backend of Keras 3, but "
            f"Keras is using '{keras.backend.backend()}' (see ~/.keras/keras.json "
            "or KERAS_BACKEND)."
        )
    _checked = True


def __getattr__(name):
    if name in _SUBMODULES:
        _check_backend()
        return _importlib.import_module(f"keras_taylor.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_taylor' has no attribute {name!r}")
    _check_backend()
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
