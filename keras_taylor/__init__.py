"""keras_taylor: structured Taylor filter pruning for Keras 3.

Wrap a model with `TaylorPrunableModel`, gather Taylor scores while training,
mask the least important channel groups, and `strip_pruning` to get a
physically smaller `keras.Model`.
"""

import os as _os

_backend = _os.environ.get("KERAS_BACKEND", "tensorflow")
if _backend != "tensorflow":
    raise ImportError(
        "keras_taylor works only with the TensorFlow backend of Keras 3, but "
        f"KERAS_BACKEND is '{_backend}'. Set KERAS_BACKEND=tensorflow before "
        "importing keras."
    )

import keras as _keras  # noqa: E402

if _keras.backend.backend() != "tensorflow":
    raise ImportError(
        "keras_taylor works only with the TensorFlow backend of Keras 3, but "
        f"Keras is using '{_keras.backend.backend()}' (see ~/.keras/keras.json "
        "or KERAS_BACKEND)."
    )

from keras_taylor.batchnorm import FusedBatchNormalization  # noqa: E402
from keras_taylor.callbacks import TaylorPruningCallback  # noqa: E402
from keras_taylor.compression import PruningInfo, compress  # noqa: E402
from keras_taylor.errors import (  # noqa: E402
    CheckpointError,
    InvalidArgumentError,
    KerasTaylorError,
    NothingPrunableError,
    PruningStateError,
    UnsupportedModelError,
)
from keras_taylor.export import export_litert  # noqa: E402
from keras_taylor.folding import fold_batch_norm  # noqa: E402
from keras_taylor.latency import measure_latency  # noqa: E402
from keras_taylor import handlers, importance  # noqa: E402
from keras_taylor.handlers import register_layer  # noqa: E402
from keras_taylor.masking import ChannelMask  # noqa: E402
from keras_taylor.model import TaylorPrunableModel  # noqa: E402
from keras_taylor.recalibration import recalibrate_batch_norm  # noqa: E402
from keras_taylor.report import analyze, compare, max_reduction  # noqa: E402
from keras_taylor.surgery import strip_pruning  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ChannelMask",
    "FusedBatchNormalization",
    "PruningInfo",
    "TaylorPruningCallback",
    "compress",
    "export_litert",
    "fold_batch_norm",
    "handlers",
    "importance",
    "register_layer",
    "CheckpointError",
    "InvalidArgumentError",
    "KerasTaylorError",
    "NothingPrunableError",
    "PruningStateError",
    "TaylorPrunableModel",
    "UnsupportedModelError",
    "analyze",
    "compare",
    "max_reduction",
    "measure_latency",
    "recalibrate_batch_norm",
    "strip_pruning",
]
