"""Docstring examples run, and docs/api.md matches the docstrings."""

import doctest
import importlib
import subprocess
import sys

import pytest

from helpers import REPO

MODULES = [
    "keras_taylor.model", "keras_taylor.surgery", "keras_taylor.report", "keras_taylor.callbacks",
    "keras_taylor.compression.api", "keras_taylor.compression.goal", "keras_taylor.compression.info", "keras_taylor.compression.stop", "keras_taylor.masking", "keras_taylor.reference_models",
    "keras_taylor.latency", "keras_taylor.export", "keras_taylor.costs", "keras_taylor.goals", "keras_taylor.profile",
    "keras_taylor.gather", "keras_taylor.importance", "keras_taylor.pruner", "keras_taylor.handlers",
    "keras_taylor.handlers.base", "keras_taylor.handlers.channelwise", "keras_taylor.handlers.conv",
    "keras_taylor.saving",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_every_public_name_has_a_docstring_with_an_example():
    import keras_taylor as kt

    missing = [n for n in kt.__all__ if ">>>" not in (getattr(kt, n).__doc__ or "") and not n.endswith("Error")]
    assert missing == [], f"public names without a runnable example: {missing}"


NEWEST_KERAS = (3, 15)  # docs/api.md is generated with the newest supported Keras


@pytest.mark.skipif(
    tuple(int(p) for p in importlib.import_module("keras").__version__.split(".")[:2]) < NEWEST_KERAS,
    reason="older Keras releases give FusedBatchNormalization's inherited signature other arguments",
)
def test_api_reference_is_current():
    result = subprocess.run([sys.executable, str(REPO / "docs" / "generate_api.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_version_window_matches_setup_cfg_and_ci():
    import configparser
    import re

    readme = (REPO / "README.md").read_text()
    found = re.search(r"TensorFlow (\d+\.\d+)–(\d+\.\d+) with Keras (\d+\.\d+)–(\d+\.\d+)\*\*, Python ≥ (\d+\.\d+)", readme)
    assert found, "README states no supported-version window"
    tf_low, tf_high, keras_low, keras_high, python = found.groups()
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    requires = config["options"]["install_requires"]
    bump = lambda v: f"{v.split('.')[0]}.{int(v.split('.')[1]) + 1}"  # noqa: E731
    assert f"tensorflow-cpu>={tf_low},<{bump(tf_high)}" in requires
    assert f"tensorflow>={tf_low},<{bump(tf_high)}" in requires
    assert f"keras>={keras_low},<{bump(keras_high)}" in requires
    assert config["options"]["python_requires"] == f">={python}"
    ci = (REPO / ".ci" / "run").read_text()
    assert f"tensorflow-cpu=={tf_low}." in ci and f"keras=={keras_low}." in ci


def test_readme_states_the_code_defaults():
    import inspect

    import keras_taylor as kt

    readme = (REPO / "README.md").read_text()
    default = inspect.signature(kt.TaylorPrunableModel).parameters["spatial_reduction"].default
    assert default == "sum"
    assert "summed over positions by default" in readme and "mean over positions by default" not in readme
    callback = inspect.signature(kt.TaylorPruningCallback).parameters
    assert "channel groups" in kt.TaylorPruningCallback.__doc__.split("amount:")[1].split("start_step")[0]
    assert "amount" in callback and "learnables" in kt.compress.__doc__.split("increment:")[1].split("fine_tune_epochs")[0]


def test_benchmark_docs_say_what_the_cifar10_subset_is():
    text = (REPO / "docs" / "benchmarks.md").read_text()
    cifar_lines = [line for line in text.splitlines() if line.startswith("- resnet20 on cifar10 (")]
    assert cifar_lines
    for line in cifar_lines:
        assert "all training" not in line and "real CIFAR-10 subset" in line and "8380 training" in line
    import os

    saved = dict(os.environ)  # importing the benchmarks points KERAS_HOME and the CIFAR-10 path at their data
    try:
        workloads = importlib.import_module("benchmarks._workloads")
        if workloads.CIFAR_NPZ.exists():
            described = workloads.resnet20_cifar().describe()
            assert "all 8380 training / all 1017 test images of the real CIFAR-10 subset" in described
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_readme_and_benchmark_docs_say_each_result_once():
    """A pasted section must replace its old copy: two copies of a result disagree sooner or later."""
    import re

    readme = (REPO / "README.md").read_text()
    bullets = [line for line in readme.splitlines() if line.startswith("- **")]
    assert len(bullets) == len(set(bullets)), [b[:60] for b in bullets if bullets.count(b) > 1]
    sections = re.findall(r"<!-- section:(\w+) -->", (REPO / "docs" / "benchmarks.md").read_text())
    assert len(sections) == len(set(sections)), sorted({s for s in sections if sections.count(s) > 1})
