"""Turning user data into batched datasets, with errors that name the argument."""

import numpy as np
import tensorflow as tf

from keras import tree

from keras_taylor.errors import InvalidArgumentError


def as_dataset(data, batch_size, shuffle, name, seed=None):
    """A batched `tf.data.Dataset` of `(x, y[, sample_weight])`.

    Args:
        data: a `tf.data.Dataset` (already batched) or a tuple of arrays
            `(x, y)` / `(x, y, sample_weight)`; x and y may be structures.
        batch_size: batch size for arrays.
        shuffle: reshuffle arrays every epoch.
        name: the argument's name, for error messages.
        seed: seed of the shuffle (arrays only): the same seed gives the same
            order of batches epoch after epoch from a fresh dataset.
    """
    if isinstance(data, tf.data.Dataset):
        cardinality = int(data.cardinality())
        if cardinality == 0 or (cardinality < 0 and not any(True for _ in data.take(1))):
            raise InvalidArgumentError(f"{name} is an empty dataset")
        return data
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise InvalidArgumentError(
            f"{name} must be a tf.data.Dataset of (x, y) batches or a tuple of "
            f"arrays (x, y), got {type(data).__name__}"
        )
    lengths = {len(np.asarray(a)) for a in tree.flatten(data) if a is not None}
    if len(lengths) != 1:
        raise InvalidArgumentError(
            f"{name}: x and y have different numbers of samples {sorted(lengths)}"
        )
    n = lengths.pop()
    if n == 0:
        raise InvalidArgumentError(f"{name} holds no samples")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise InvalidArgumentError(f"batch_size must be a positive int, got {batch_size!r}")
    ds = tf.data.Dataset.from_tensor_slices(tuple(data))
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(_without_autotune())


def _without_autotune():
    """Options that turn off tf.data's model-based autotuning.

    Dropping an iterator waits for its autotuning thread. On a 2-core CPU
    that wait took 1-3 s for about one iterator in three (measured on
    ResNet-20 fine-tuning: teardown of `fit` 0-2.8 s with it, 0.00 s
    without, epoch time unchanged), and `compress` drops several iterators
    per iteration (validation, scoring, each `fit`). In-memory arrays need
    no tuned parallelism; prefetching still adapts its buffer without it.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def check_matches(model, dataset, name):
    """Checks that the dataset's x fits the model's inputs (rank and sizes)."""
    spec = dataset.element_spec
    if not isinstance(spec, (tuple, list)) or len(spec) < 2:
        raise InvalidArgumentError(
            f"{name} must yield (x, y) pairs, but its elements are {spec}"
        )
    x_specs = tree.flatten(spec[0])
    inputs = model.inputs
    if len(x_specs) != len(inputs):
        raise InvalidArgumentError(
            f"{name}: x has {len(x_specs)} parts but model '{model.name}' has "
            f"{len(inputs)} inputs"
        )
    for x_spec, tensor in zip(x_specs, inputs):
        got, want = tuple(x_spec.shape), tuple(tensor.shape)
        if len(got) != len(want) or any(
            g is not None and w is not None and g != w for g, w in zip(got[1:], want[1:])
        ):
            raise InvalidArgumentError(
                f"{name}: x batches have shape {got} but model '{model.name}' "
                f"expects {want} (batch the dataset, or fix the shape)"
            )
