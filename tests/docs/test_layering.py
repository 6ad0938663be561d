"""The package's imports point one way: no module imports one above it.

The layers below are the data flow of docs/concepts.md, lowest first. A
module may import modules of lower layers (and, inside a package, its own
package's modules); an import of its own layer or a higher one fails here,
at the top of a module or inside a function alike.
"""

import ast

import pytest

from helpers import REPO

PACKAGE = REPO / "keras_taylor"

LAYERS = [
    ["_compat", "_verbosity", "errors"],
    ["pruner", "costs"],
    ["masking", "masked_norms", "batchnorm", "data", "datasets", "checkpoint", "rebuild", "recalibration",
     "reference_models", "workflow_checks", "compile_settings", "latency", "channel_tile", "saving"],
    ["handlers"],
    ["graph"],
    ["accounting", "scoring"],
    ["goals"],
    ["importance"],
    ["gather"],
    ["model"],
    ["surgery", "report"],
    ["latency_variants", "profile_cache"],
    ["attribution"],
    ["latency_fit"],
    ["profile"],
    ["latency_goal"],
    ["folding", "callbacks"],
    ["compression", "export"],
    ["cli"],
    ["__init__", "__main__"],
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _top(module):
    """`keras_taylor.graph.flat` -> `graph`; the package itself -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        yield name[: -len(".__init__")] if name.endswith(".__init__") else name, path


def _imports(name, path):
    """(imported keras_taylor module, line) for every import in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("keras_taylor"):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("keras_taylor"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() or (
                    PACKAGE.parent / sub.replace(".", "/")
                ).is_dir()
                yield (sub if is_module else base), node.lineno


def upward_imports():
    found = []
    for name, path in _modules():
        here = _top(name)
        for target, line in _imports(name, path):
            there = _top(target)
            if there == here and (target != "keras_taylor" or here != "__init__"):
                continue  # inside one module or package
            if target == "keras_taylor" and here == "cli":
                continue  # cli reads the package's __version__
            if RANK[there] >= RANK[here]:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    return found


def test_every_module_has_a_layer():
    missing = sorted({_top(name) for name, _ in _modules()} - set(RANK))
    assert not missing, f"give these modules a layer in LAYERS: {missing}"


def test_no_module_imports_one_above_it():
    assert upward_imports() == []


def test_the_check_fails_on_an_upward_import(tmp_path, monkeypatch):
    # The rule can fail: a lower module importing the model is reported.
    fake = tmp_path / "keras_taylor"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "model.py").write_text("")
    (fake / "graph.py").write_text("def f():\n    from keras_taylor.model import X\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert upward_imports() == ["keras_taylor/graph.py:2 imports keras_taylor.model"]


@pytest.mark.parametrize("module", ["pruner", "_compat", "errors"])
def test_bottom_modules_import_no_other_keras_taylor_module(module):
    # A package (_compat) may import its own submodules, nothing else of keras_taylor.
    own = f"keras_taylor.{module}"
    found = [(t, line) for name, path in _modules() if name == own or name.startswith(own + ".")
             for t, line in _imports(name, path) if not t.startswith(own + ".")]
    assert found == []
    assert any(name == own for name, _ in _modules())


def test_pruner_imports_no_keras():
    tree = ast.parse((PACKAGE / "pruner.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= {"numpy"}, names


def test_no_test_imports_another_test_module():
    # Shared builders live in tests/helpers.py; a test module imported by
    # another would also run its tests twice and tie the two files together.
    found = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                last = name.rpartition(".")[2]
                if last.startswith("test_") or last == "conftest":
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert found == []
