"""The runtime's channel tile: measured by the profile, kept by its variants, rounded to by latency goals."""

import math

import keras
import numpy as np
import pytest

import keras_taylor as kt
from helpers import randomize_weights
from keras_taylor import channel_tile


class TiledTimer:
    """0.1 ms plus 1 ns per MAC, with each convolution's output channels padded up to a multiple of `tile`.

    As an AVX-512 kernel computes them: a layer of 8 channels takes as long as one of 16.
    """

    def __init__(self, tile=16):
        self.tile = tile

    def __call__(self, models, *args):
        return [self.seconds(m) for m in models]

    def seconds(self, model):
        macs = 0
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv2D):
                _, h, w, c_out = layer.output.shape
                padded = math.ceil(c_out / self.tile) * self.tile
                macs += h * w * padded * layer.input.shape[-1] * int(np.prod(layer.kernel_size))
        return 1e-4 + 1e-9 * macs


def _chain():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    return randomize_weights(keras.Model(inputs, outputs))


@pytest.mark.parametrize("times, tile", [
    ([7.9, 8.3, 14.7, 26.1], 16),  # Keras at batch 32 on an AVX-512 machine (docs/benchmarks.md)
    ([99.7, 103.4, 199.5, 385.0], 16),  # LiteRT at batch 1, same machine
    ([1.0, 1.5, 2.5, 4.5], 8),  # linear
    ([5.0, 5.1, 5.2, 9.0], 32),
    ([5.0, 5.0, 5.0, 5.0], 8),  # nothing grows with the channels: nothing to tell
    ([1.0, 1.6, 2.0, 3.0], 8),  # a step below the widest's rate, but not far below it
])
def test_the_tile_is_where_adding_channels_starts_to_cost(times, tile):
    assert channel_tile.tile_from_times(times) == tile


def _pm():
    return kt.TaylorPrunableModel(_chain(), criterion="l1")  # scores that pruning does not use up


def test_a_profile_measures_the_tile_keeps_it_and_caches_it(tmp_path):
    profile = kt.latency_profile(_pm(), samples=6, cache_dir=tmp_path, timer=TiledTimer())
    assert profile.channel_tile == 16 and "channel tile 16" in repr(profile)
    again = kt.latency_profile(_pm(), samples=6, cache_dir=tmp_path, timer=TiledTimer(tile=8))
    assert again.from_cache and again.channel_tile == 16
    assert kt.latency_profile(_pm(), samples=6, cache_dir=False, timer=TiledTimer(tile=32)).channel_tile == 32


def test_a_given_tile_is_kept_and_no_probe_is_timed():
    timed = []

    def timer(models, *args):
        timed.extend(m.name for m in models)
        return TiledTimer()(models)

    profile = kt.latency_profile(_pm(), samples=6, cache_dir=False, timer=timer, tile=4)
    assert profile.channel_tile == 4
    assert not any(name.startswith("channel_tile_probe") for name in timed)


def test_a_bad_tile_is_named():
    with pytest.raises(ValueError, match="tile"):
        kt.latency_profile(_chain(), tile=0, cache_dir=False, timer=TiledTimer())


def test_keras_timing_threads_run_one_op_at_a_time():
    """Before TensorFlow starts, a thread count sets the intra-op pool and an inter-op pool of one."""
    import subprocess
    import sys

    code = ("from keras_taylor import latency\nimport tensorflow as tf\nlatency.keras_threads(1)\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["1", "1"]


def test_the_profile_times_the_narrowest_model_pruning_can_make():
    pm = _pm()
    profile = kt.latency_profile(pm, samples=6, cache_dir=False, timer=TiledTimer())
    assert "narrowest" in set(profile.samples.variant)
    from keras_taylor import latency_variants

    layout = pm.channel_graph.layout
    left = layout.channels_left(latency_variants.narrowest(pm.channel_graph))
    assert (left[layout.full_counts >= 8] == 8).all()
    narrow = profile.samples[profile.samples.variant == "narrowest"].iloc[0]
    assert narrow.multiply_accumulates == profile.samples.multiply_accumulates.min()
