"""Docstring examples run, and docs/api.md matches the docstrings."""

import doctest
import importlib
import subprocess
import sys

import pytest

from helpers import REPO

MODULES = [
    "keras_taylor.model", "keras_taylor.surgery", "keras_taylor.report", "keras_taylor.callbacks",
    "keras_taylor.compression.api", "keras_taylor.compression.info", "keras_taylor.compression.stop", "keras_taylor.masking", "keras_taylor.reference_models",
    "keras_taylor.latency", "keras_taylor.export",
    "keras_taylor.gather", "keras_taylor.importance", "keras_taylor.pruner", "keras_taylor.handlers",
    "keras_taylor.handlers.base", "keras_taylor.handlers.channelwise", "keras_taylor.handlers.conv",
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


def test_api_reference_is_current():
    result = subprocess.run([sys.executable, str(REPO / "docs" / "generate_api.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
