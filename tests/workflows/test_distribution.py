"""Taylor scores gathered under tf.distribute equal single-device scores.

Each strategy runs in its own process: logical devices must be configured
before TensorFlow starts, and multi-worker training needs several processes.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = pathlib.Path(__file__).with_name("dist_worker.py")


def run(mode, out, *extra, wait=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), mode, str(out), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    return proc.communicate(timeout=900) + (proc.returncode,) if wait else proc


def load(path):
    with np.load(path) as f:
        return f["scores"], float(f["count"]), int(f["replicas"])


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "single.npz"
    _, err, code = run("single", out)
    assert code == 0, "\n".join(l for l in err.splitlines() if "File" in l or "Error" in l)[-3000:]
    return load(out)


def assert_same_scores(reference, got):
    prunable = ~np.isnan(reference)
    assert prunable.sum() > 0
    np.testing.assert_allclose(got[prunable], reference[prunable], rtol=1e-4, atol=1e-8)


def test_mirrored_strategy_sums_scores_across_replicas(single, tmp_path):
    out = tmp_path / "mirrored.npz"
    _, err, code = run("mirrored", out)
    assert code == 0, "\n".join(l for l in err.splitlines() if "File" in l or "Error" in l)[-3000:]
    scores, count, replicas = load(out)
    assert replicas == 2
    assert count == single[1] == 64
    assert_same_scores(single[0], scores)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multi_worker_mirrored_strategy_two_processes(single, tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(run("multiworker", tmp_path / f"w{index}.npz", config, wait=False))
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]
    for index in range(2):
        scores, count, replicas = load(tmp_path / f"w{index}.npz")
        assert replicas == 2 and count == 64
        assert_same_scores(single[0], scores)
