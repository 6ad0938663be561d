"""The tutorials run, cell by cell, in quick mode; committed copies hold a full run."""

import os

import pytest

from helpers import REPO, SHARED_DATA

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TUTORIALS = sorted((REPO / "tutorials").glob("*.ipynb"))
CIFAR_SUBSET = SHARED_DATA / "extra" / "cifar10-real-subset.npz"


def test_there_are_four_tutorials():
    assert len(TUTORIALS) == 4


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_committed_notebook_holds_a_full_run(path):
    nb = nbformat.read(path, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code_cells[1:]), "every cell after the install cell ran"
    text = "".join(o.get("text", "") for c in code_cells for o in c.outputs)
    assert "quick mode" not in text, "the committed outputs must come from a full run"
    assert not any(o.get("output_type") == "error" for c in code_cells for o in c.outputs)


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    if "cifar10" in nb_text(nb):
        if not CIFAR_SUBSET.exists():
            pytest.skip("the CIFAR-10 subset is not on this machine")
        monkeypatch.setenv("KERAS_TAYLOR_CIFAR10_NPZ", str(CIFAR_SUBSET))
    monkeypatch.setenv("KERAS_TAYLOR_TUTORIAL_QUICK", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell


def nb_text(nb):
    return "\n".join(c.source for c in nb.cells)
