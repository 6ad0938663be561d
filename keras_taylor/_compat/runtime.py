"""Private access to Keras's printing, global seeds, layer construction records and build configs.

Part of `keras_taylor._compat` (see its docstring). Nothing here imports keras_taylor.
"""

import keras


def print_msg(*args, **kwargs):
    """Keras's progress printing (goes where `fit`'s progress bar goes).

    Public stand-in: `print`, which ignores `keras.config.disable_interactive_logging`.
    """
    from keras.src.utils import io_utils

    return io_utils.print_msg(*args, **kwargs)


def reset_global_seed(value):
    """The global part of `keras.utils.set_random_seed(value)`, without TF's.

    `set_random_seed` also calls `tf.random.set_seed`, which resets every
    TensorFlow random op; this sets only Keras's global seed and drops the
    global SeedGenerator so the next unseeded call makes it afresh.
    """
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    # Keras 3.5 keeps no seed (only the generator, under its literal key).
    seed_key = getattr(rng_utils, "GLOBAL_RANDOM_SEED", None)
    if seed_key is not None:
        global_state.set_global_attribute(seed_key, value)
    generator_key = getattr(seed_generator, "GLOBAL_SEED_GENERATOR", "global_seed_generator")
    global_state.set_global_attribute(generator_key, None)


def seed_generators(layer):
    """The `SeedGenerator`s a layer (Dropout, ...) draws from. Public stand-in: none."""
    return getattr(layer, "_seed_generators", ())


def constructor_arguments(layer):
    """The keyword arguments `layer` was constructed with, or None.

    Keras records them (`_auto_config`) when they are all plain values
    (str, int, float, bool, None); `get_config` starts from them. A layer
    whose own `get_config` returns keys its `__init__` refuses (keras-hub
    0.32's `HierarchicalTransformerEncoder`) can still be made again by its
    constructor from these. Public stand-in: none.
    """
    recorded = getattr(layer, "_auto_config", None)
    return None if recorded is None else dict(recorded.config)


def build_when_called(layer):
    """Saves `layer` without a build config: loading builds it when the model calls it.

    A `.keras` file stores each layer's build shapes as JSON lists, and
    loading calls `layer.build(list)` before the model calls the layer on
    tensors with tuple shapes. Custom layers whose `build` adds a tuple to
    the shape (keras-hub 0.32's `SpatialPyramidPooling`: `input_shape[:-1] +
    (c,)`) then fail to load, though the same layer inside its keras-hub
    model loads (that model's `from_config` runs its constructor). In a
    functional model every layer is called when it loads, which builds it
    with the tuple shapes of that call, so the build config is not needed.
    Only for layers that keep Keras's own `get_build_config` and
    `build_from_config` (nothing but the input shapes). Public stand-in:
    none (the override is set on this one object, the class is untouched).
    """
    cls = type(layer)
    if (
        getattr(cls, "get_build_config", None) is keras.layers.Layer.get_build_config
        and getattr(cls, "build_from_config", None) is keras.layers.Layer.build_from_config
    ):
        object.__setattr__(layer, "get_build_config", lambda: None)
