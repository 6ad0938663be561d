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
    goal.py     the goal in learnables, MACs or latency, as a fraction to remove
    info.py     PruningInfo

Example (the options by group, as users think of them):

>>> import keras, numpy as np, keras_taylor as kt
>>> from keras_taylor.compression import CompressOptions, FineTuning, Target
>>> inputs = keras.Input((8, 8, 1))
>>> x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
>>> model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
>>> model.compile("adam", "mse")
>>> data = (np.random.rand(32, 8, 8, 1), np.random.rand(32, 2))
>>> options = CompressOptions(Target(goal=0.3), FineTuning(fine_tune_epochs=0), verbose=0)
>>> pruned, info = kt.compression.compress_with(model, data, options)
>>> info.learnables_reduction >= 0.3
True
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
