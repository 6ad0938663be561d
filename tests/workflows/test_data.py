"""keras_taylor.data.as_dataset: what arrays become, and user datasets left alone."""

import numpy as np
import tensorflow as tf

from keras_taylor.data import as_dataset


def _arrays(n=10):
    return np.arange(n, dtype="float32").reshape(n, 1), np.arange(n)


def test_arrays_become_batches_without_model_autotuning():
    # Dropping an autotuned iterator can stall for seconds on a small CPU,
    # and compress drops several per iteration.
    ds = as_dataset(_arrays(), batch_size=4, shuffle=True, name="ds", seed=1)
    assert ds.options().autotune.enabled is False
    sizes = [len(y) for _, y in ds]
    assert sizes == [4, 4, 2]


def test_shuffled_arrays_follow_the_seed_and_keep_every_sample():
    first = [y.numpy().tolist() for _, y in as_dataset(_arrays(), 4, shuffle=True, name="ds", seed=3)]
    again = [y.numpy().tolist() for _, y in as_dataset(_arrays(), 4, shuffle=True, name="ds", seed=3)]
    assert first == again
    assert sorted(sum(first, [])) == list(range(10))
    plain = [y.numpy().tolist() for _, y in as_dataset(_arrays(), 4, shuffle=False, name="ds")]
    assert sum(plain, []) == list(range(10))


def test_a_user_dataset_is_returned_as_given():
    user = tf.data.Dataset.from_tensor_slices(_arrays()).batch(5)
    assert as_dataset(user, batch_size=4, shuffle=True, name="ds") is user
    assert user.options().autotune.enabled is not False
