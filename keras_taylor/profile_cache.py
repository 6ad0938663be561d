"""Where latency profiles are cached: the key of an architecture on a runtime and machine, and its file.

A key changes with anything that changes a profile: the architecture
(`fingerprint`), the runtime, threads and batch size, this machine, the
TensorFlow version, `CACHE_VERSION`, and the variants timed (`samples`,
`seed`, `attribute`, a channel tile given rather than measured) where
they are not the defaults.
"""

import hashlib
import json
import os
import pathlib
import platform

from keras_taylor.masking import ChannelMask

CACHE_VERSION = 11  # 7: per-layer scales (keras_taylor.attribution); 8: cuts to a fifth, prior 0.02;
# 9: the Keras runtime's prior 0.5; 10: the measured channel tile, the narrowest variant; 11: the pull
# per layer call, by its share of the MACs
DEFAULT_SAMPLES = 8
DEFAULT_SEED = 0


def machine():
    """This machine as the cache sees it: platform, CPU model and core count."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{platform.platform()} | {platform.machine()} | {cpu} | {os.cpu_count()} cores"


def fingerprint(channel_graph):
    """A hash of the architecture: layer classes, configs (names left out), shapes and wiring."""
    producer, parts = {}, []
    for tid in channel_graph.flat.inputs:
        producer[tid] = f"in{len(producer)}"
    for node in channel_graph.flat.nodes:
        if isinstance(node.layer, ChannelMask):
            producer[node.outputs[0]] = producer[node.inputs[0]]
            continue
        config = {k: v for k, v in (node.config or {}).items() if k != "name"}
        parts.append([type(node.layer).__name__, config, [producer.get(t) for t in node.inputs],
                      [list(s) if s else s for s in node.input_shapes],
                      [list(s) if s else s for s in node.output_shapes]])
        for k, tid in enumerate(node.outputs):
            producer[tid] = f"{len(parts)}:{k}"
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_key(channel_graph, runtime, threads, batch_size, samples=DEFAULT_SAMPLES, seed=DEFAULT_SEED,
              attribute=True, tile=None):
    import tensorflow as tf

    what = [CACHE_VERSION, fingerprint(channel_graph), runtime, threads, batch_size, machine(), tf.__version__]
    if (samples, seed) != (DEFAULT_SAMPLES, DEFAULT_SEED):  # another fit; the defaults keep their old keys
        what += [samples, seed]
    if not attribute:
        what.append("per-kind only")
    if tile is not None:  # given, not measured
        what.append(f"tile {tile}")
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:24]


def cache_path(cache_dir, key):
    if cache_dir is None:
        cache_dir = os.environ.get("KERAS_TAYLOR_CACHE") or pathlib.Path.home() / ".cache" / "keras_taylor"
    return pathlib.Path(cache_dir) / "latency" / f"{key}.json"


def read_entry(path):
    """The JSON of cache entry `path`, or None where there is none (or it is not JSON)."""
    if path is None or not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def write_entry(path, entry):
    """Writes `entry` and this machine to `path` as JSON, atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(entry, machine=machine())))
    tmp.replace(path)
