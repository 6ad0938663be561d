"""The tutorials run, cell by cell, in quick mode; committed copies hold a full run."""

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


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_committed_outputs_hold_no_local_paths_or_log_noise(path):
    nb = nbformat.read(path, as_version=4)
    text = "".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    for noise in ("/work/", "/home/", "/tmp/", "I0000", "absl::InitializeLog", "Saved artifact at", "INFO:tensorflow"):
        assert noise not in text, f"{path.name} output holds {noise!r}"


def test_build_cleans_outputs_of_a_rerun():
    import importlib.util

    spec = importlib.util.spec_from_file_location("tutorials_build", TUTORIALS[0].parent / "_build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796141040.437925   13101 port.cc:153] oneDNN custom operations are on.\n"
        "/work/main/.venv/lib/python3.11/site-packages/keras/src/x.py:74: UserWarning: careful\n"
        "accuracy 97.58%\n"
        "Saved artifact at '/tmp/tmpabc'. The following endpoints are available:\n"
        "  140013797321296: TensorSpec(shape=(), dtype=tf.resource, name=None)\n"
    )
    assert build.clean_text(text) == "site-packages/keras/src/x.py:74: UserWarning: careful\naccuracy 97.58%\n"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text=text.splitlines(keepends=True)[0]),
        nbformat.v4.new_output("stream", name="stdout", text="kept\n"),
    ])]
    assert [o["text"] for o in build.clean_outputs(nb).cells[0].outputs] == ["kept\n"]
    assert "--no-deps" in build.INSTALL  # an installed TensorFlow is kept
