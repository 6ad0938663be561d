"""Saving a pruned model for deployment: weights and architecture, no optimizer state."""

import pathlib

import keras

from keras_taylor.errors import InvalidArgumentError


def save_model(model, path, include_optimizer=False):
    """Saves `model` as a `.keras` file, by default without its optimizer.

    Keras's own `model.save` always writes a compiled model's optimizer
    state (Adam keeps two slots per weight, so the file holds about three
    values per weight). A pruned model is usually saved for deployment,
    where that state is dead weight: this writes an uncompiled copy with the
    same layers, names and weights instead. `keras.models.load_model` reads
    it back as an uncompiled model (compile it again to train it).

    Args:
        model: a `keras.Model` (e.g. what `kt.compress` or
            `kt.strip_pruning` returns).
        path: the file to write; must end in `.keras`.
        include_optimizer: True writes the model as `model.save(path)` does,
            optimizer state and compile configuration included (to resume
            training where it stopped).

    Returns:
        The path written, as a `pathlib.Path`.

    Example:

    >>> import os, tempfile, keras, keras_taylor as kt
    >>> inputs = keras.Input((4,))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    >>> model.compile("adam", "mse")
    >>> model.optimizer.build(model.trainable_variables)
    >>> path = kt.save_model(model, os.path.join(tempfile.mkdtemp(), "small.keras"))
    >>> keras.models.load_model(path).compiled
    False
    """
    path = pathlib.Path(path)
    if path.suffix != ".keras":
        raise InvalidArgumentError(f"path must end in .keras, got '{path}'")
    if not isinstance(model, keras.Model):
        raise InvalidArgumentError(f"model must be a keras.Model, got {type(model).__name__}")
    if include_optimizer or getattr(model, "optimizer", None) is None:
        model.save(path)
        return path
    # from_config builds the same layers uncompiled (clone_model would
    # compile the copy like the original, optimizer included)
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    copy.save(path)
    return path
