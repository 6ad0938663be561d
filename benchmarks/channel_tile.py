"""Channel tiles: time of one layer against its output channels, on LiteRT and the Keras runtime.

One layer, alone in a model, at 4 to 64 output channels: a 3x3
convolution and a 1x1 convolution of a 32x32x64 input, and a 3x3
depthwise convolution of 32x32xC (its channels are its outputs). LiteRT at
batch 1 (one interpreter thread, XNNPACK) and the Keras runtime at batch 32
(a `tf.function`, one intra-op thread); the models of a convolution kind timed
round robin (the depthwise ones, of different input shapes, one by one), the fastest of `--runs` samples in CPU time. Then the channel
tile that `kt.latency_profile` measures (`keras_taylor.channel_tile`, the
3x3 probes at 8/16/32/64) on each runtime. Where a layer of 8 channels
takes as long as one of 16, pruning from 16 to 8 buys no time, and a
latency model linear in channels promises it anyway.

    python -m benchmarks.channel_tile [--runs 11]
"""

import time

from benchmarks import _common

WIDTHS = (4, 8, 12, 16, 24, 32, 48, 64)
KINDS = ("3x3 conv", "1x1 conv", "3x3 depthwise")
SHAPE = (32, 32, 64)
SETTINGS = {"litert": (1, 1), "keras": (32, 1)}  # batch, threads


def layer_model(kind, width):
    import keras

    if kind == "3x3 depthwise":
        inputs = keras.Input(SHAPE[:2] + (width,))
        return keras.Model(inputs, keras.layers.DepthwiseConv2D(3, padding="same")(inputs))
    inputs = keras.Input(SHAPE)
    return keras.Model(inputs, keras.layers.Conv2D(width, 3 if kind == "3x3 conv" else 1, padding="same")(inputs))


def one(runtime, runs):
    """`(rows of ms per kind and width, the measured tile)` on `runtime`."""
    from keras_taylor import channel_tile
    from keras_taylor import profile as kt_profile

    batch, threads = SETTINGS[runtime]
    rows = []
    for kind in KINDS:
        models = [layer_model(kind, w) for w in WIDTHS]
        if kind == "3x3 depthwise":  # inputs of as many channels as outputs: one shape per model
            seconds = [kt_profile.time_models([m], runtime, threads, batch, runs=runs)[0] for m in models]
        else:
            seconds = kt_profile.time_models(models, runtime, threads, batch, runs=runs)
        rows.append([f"{runtime} b{batch}", kind] + [f"{1000 * t:.3f}" for t in seconds])
        print(" | ".join(rows[-1]), flush=True)
    tile = channel_tile.measure(lambda models, *a: kt_profile.time_models(models, *a, runs=runs), runtime, threads,
                                batch)
    print(f"{runtime}: measured channel tile {tile}", flush=True)
    return rows, [f"{runtime} b{batch}", str(tile)]


def main():
    p = _common.parser(__doc__)
    p.add_argument("--runs", type=int, default=11)
    args = p.parse_args()
    from keras_taylor import latency

    latency.keras_threads(SETTINGS["keras"][1])  # before TensorFlow starts: one op at a time, on one thread
    start = time.perf_counter()
    load_before = _common.uptime()
    rows, tiles = [], []
    for runtime in SETTINGS:
        r, t = one(runtime, args.runs)
        rows += r
        tiles.append(t)
    load_after = _common.uptime()
    table = _common.markdown_table(["runtime", "layer"] + [f"{w} ch, ms" for w in WIDTHS], rows)
    tile_table = _common.markdown_table(["runtime", "channel tile measured by kt.latency_profile"], tiles)
    print(table + "\n\n" + tile_table)
    if not args.no_docs:
        _common.write_section("channel_tile", "\n".join([
            "## Channel tile: one layer's time against its output channels",
            "",
            *_common.provenance(load=(load_before, load_after)),
            __doc__.split("\n\n")[1].replace("\n", " "),
            "",
            table,
            "",
            tile_table,
        ]))
    print(f"channel_tile finished in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
