"""The runtime's channel tile: how many output channels a convolution kernel computes at once.

A CPU convolution kernel computes its output channels in tiles of one SIMD
register's width (XNNPACK and oneDNN: 8 floats with AVX2, 16 with AVX-512),
so a layer pruned from 16 to 8 channels on an AVX-512 machine runs no
faster itself: the kernel still computes a whole tile of 16. Measured on
this project's AVX-512 machine (3x3 convolution of 32x32x64): 8 output
channels take as long as 16 (LiteRT batch 1: 0.185 / 0.186 ms; Keras batch
32: 6.30 / 6.57 ms), 24 or 32 about twice as long (docs/benchmarks.md,
"Channel tile", `python -m benchmarks.channel_tile` at 915bd52). The layers that read its
output still get cheaper (fewer input channels), so the cut is not
worthless: rounding ResNet-20's plans to 16 instead of 8 kept its
16-channel stage whole and stopped them at 2.15x on LiteRT, where 8
reached 3.41x.

So the tile is measured, not assumed from the CPU's name: one 3x3
convolution at 8, 16, 32 and 64 output channels, timed on the runtime as
the profile's variants are. Where a narrower layer is no cheaper per
channel than the widest step, the tile is above it. `kt.latency_profile`
reports it as `channel_tile`, for choosing `round_to`; the latency model
does not price the step yet (it is not bilinear in the channels).
"""

import numpy as np

WIDTHS = (8, 16, 32, 64)  # output channels of the probes; the tile found is one of the first three
SMALLEST = WIDTHS[0]  # below this nothing is measured; the profile's variants keep multiples of it
# A step between two widths "saves nothing" when it saves less than this share of what the same
# number of channels saves between the two widest probes (linear costs: 1.0; inside a tile: ~0.1).
FLAT = 0.4
PROBE_SHAPE = (32, 32, 64)  # large enough that the convolution, not the call, is most of a probe's time


def probes():
    """One single-layer model per width of `WIDTHS`: a 3x3 convolution of a `PROBE_SHAPE` input."""
    import keras

    models = []
    for width in WIDTHS:
        inputs = keras.Input(PROBE_SHAPE)
        outputs = keras.layers.Conv2D(width, 3, padding="same")(inputs)
        models.append(keras.Model(inputs, outputs, name=f"channel_tile_probe_{width}"))
    return models


def tile_from_times(seconds):
    """The channel tile that the probes' times (one per `WIDTHS`) show.

    The cost per added channel of each step between widths is compared with
    the widest step's: steps below the tile add (almost) nothing. The tile
    is the width at which adding channels starts to cost; where even the
    widest step costs nothing, nothing can be told and the answer is `SMALLEST`.

    Example:

    >>> tile_from_times([7.9, 8.3, 14.7, 26.1])  # 8 channels cost as much as 16
    16
    >>> tile_from_times([1.0, 1.5, 2.5, 4.5])  # linear: every channel costs the same
    8
    """
    seconds = np.asarray(seconds, dtype=np.float64)
    widths = np.asarray(WIDTHS, dtype=np.float64)
    per_channel = np.diff(seconds) / np.diff(widths)
    widest = per_channel[-1]
    if not widest > 0:
        return SMALLEST
    tile = SMALLEST
    for width, slope in zip(WIDTHS[1:-1], per_channel[:-1]):
        if slope >= FLAT * widest:
            break
        tile = width
    return tile


def measure(timer, runtime, threads, batch_size):
    """The channel tile of `runtime`, from `timer(probe models, runtime, threads, batch_size)`."""
    return tile_from_times(timer(probes(), runtime, threads, batch_size))
