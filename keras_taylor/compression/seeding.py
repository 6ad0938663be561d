"""Every random choice of a `compress` iteration follows from `(seed, iteration)`.

So runs repeat, and a resumed run repeats what the interrupted one would
have done.
"""

import random

import numpy as np
import tensorflow as tf

from keras import ops
from keras_taylor import _compat
from keras_taylor.workflow_checks import leaf_layers


def iteration_seed(seed, iteration):
    return None if seed is None else int(seed) * 1000 + int(iteration)


def seed_tensorflow(seed):
    """Once per call: TensorFlow's global seed (array shuffles draw on it).

    Not per iteration: `tf.random.set_seed` also empties TensorFlow's kernel
    cache, so every traced function (train, test and score steps) is
    instantiated and optimised again on its next call; on a ResNet-20 that
    cost 0.6-0.8 s a function, 1.5-2 s an iteration. Keras layers draw from
    their own seed generators (`reseed_layers`), not from this seed.
    """
    if seed is not None:
        tf.random.set_seed(iteration_seed(seed, 0) % (2**32))


def reseed(seed, iteration):
    """Python's, NumPy's and Keras's global random state from `(seed, iteration)`."""
    if seed is None:
        return
    value = iteration_seed(seed, iteration) % (2**32)
    random.seed(value)
    np.random.seed(value)
    # What keras.utils.set_random_seed does besides tf.random.set_seed: the
    # global SeedGenerator (unseeded keras.random calls) is made afresh from
    # Python's now reseeded generator.
    _compat.reset_global_seed(value)


def reseed_layers(model, seed, iteration):
    """Restarts every layer's own random stream (Dropout, ...) from the seed.

    Those streams live in the layers, so a model kept across iterations would
    carry them on, and a resumed run (which loads the model afresh) would not.
    """
    if seed is None:
        return
    base = iteration_seed(seed, iteration)
    generators = [g for layer in leaf_layers(model) for g in _compat.seed_generators(layer)]
    for i, generator in enumerate(generators):
        state = generator.state
        state.assign(ops.cast(ops.convert_to_tensor([(base * 7919 + i) % 2**31, 0]), state.dtype))
