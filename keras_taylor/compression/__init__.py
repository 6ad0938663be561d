"""`kt.compress`: iterative Taylor pruning and fine-tuning, as a loop of phases.

    api.py      compress() and compress_with(): check the call, prepare the data
    options.py  the option groups: Target, FineTuning, Scoring, Checkpointing
    loop.py     CompressionRun: start or resume, iterate, finish
    phases.py   score, rebuild or restart, recalibrate, fine-tune, judge, checkpoint
    state.py    CompressState, the JSON a checkpoint holds
    stop.py     StopReason
    settle.py   score_until_settled
    monitor.py  the fine-tuning callback
    seeding.py  random state from (seed, iteration)
    info.py     PruningInfo
"""

from keras_taylor.compression.api import compress, compress_with
from keras_taylor.compression.info import PruningInfo
from keras_taylor.compression.options import Checkpointing, CompressOptions, FineTuning, Scoring, Target
from keras_taylor.compression.state import CompressState
from keras_taylor.compression.stop import StopReason

__all__ = [
    "Checkpointing", "CompressOptions", "CompressState", "FineTuning", "PruningInfo", "Scoring", "StopReason",
    "Target", "compress", "compress_with",
]
