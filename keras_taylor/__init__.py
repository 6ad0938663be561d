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
import sys as _sys
import types as _types

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
    "PruningInfo": "keras_taylor.compress",
    "TaylorPruningCallback": "keras_taylor.callbacks",
    "compress": "keras_taylor.compress",
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
    "measure_latency": "keras_taylor.latency",
    "register_layer": "keras_taylor.handlers",
    "recalibrate_batch_norm": "keras_taylor.recalibration",
    "save_model": "keras_taylor.saving",
    "strip_pruning": "keras_taylor.surgery",
}

# public submodules: kt.handlers (the building blocks of kt.register_layer)
# and kt.importance (the criteria)
_SUBMODULES = ("handlers", "importance")

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
    if module.rsplit(".", 1)[1] != name:  # cached; the clashing names stay properties
        globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


# `compress` names both a submodule and the function it defines. Importing the
# submodule binds the package attribute to the module; a property on the
# package's class keeps `kt.compress` the function, as the eager imports did.
class _Package(_types.ModuleType):
    pass


def _public_over_submodule(name):
    overrides = {}

    def get(module):
        return overrides[name] if name in overrides else __getattr__(name)

    def set(module, value):
        if not isinstance(value, _types.ModuleType):  # the import system binds the submodule: ignore
            overrides[name] = value

    return property(get, set)


for _name, _module in _EXPORTS.items():
    if _module.rsplit(".", 1)[1] == _name:
        setattr(_Package, _name, _public_over_submodule(_name))
_sys.modules[__name__].__class__ = _Package
