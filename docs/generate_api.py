"""Writes docs/api.md from the docstrings of keras_taylor's public names.

    python docs/generate_api.py          # rewrite docs/api.md
    python docs/generate_api.py --check  # exit 1 if docs/api.md is stale
"""

import inspect
import pathlib
import sys

import keras_taylor as kt

OUT = pathlib.Path(__file__).with_name("api.md")

MEMBERS = {
    "TaylorPrunableModel": ["update_score", "update_prunables", "reset_scores", "set_unit_alive", "build_compiled_state",
                            "num_prunables", "num_learnables", "original_learnables",
                            "learnables_reduction", "learnables", "scores", "alive"],
    "PruningInfo": ["plot", "learnables_reduction"],
}


def _signature(obj):
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def _doc(obj):
    return inspect.cleandoc(obj.__doc__ or "(no docstring)")


def _module(name, module):
    """A public module (`kt.importance`, `kt.handlers`): its doc and its classes."""
    parts = [f"## `kt.{name}`", "", _doc(module), ""]
    for member in module.__all__:
        obj = getattr(module, member)
        if inspect.isclass(obj):
            parts += [f"### `kt.{name}.{member}{_signature(obj)}`", "", _doc(obj), ""]
    return parts


def render():
    parts = [
        "# API reference",
        "",
        "Generated from the docstrings by `python docs/generate_api.py`; do not edit by hand.",
        "",
        "```python",
        "import keras_taylor as kt",
        "```",
        "",
    ]
    for name in kt.__all__:
        obj = getattr(kt, name)
        if inspect.ismodule(obj):
            parts += _module(name, obj)
            continue
        kind = "class" if inspect.isclass(obj) else "function"
        parts += [f"## `kt.{name}`", "", f"```python\n{kind} {name}{_signature(obj)}\n```", "", _doc(obj), ""]
        for member in MEMBERS.get(name, []):
            attr = inspect.getattr_static(obj, member)
            if isinstance(attr, property):
                parts += [f"### `{name}.{member}` (property)", "", _doc(attr.fget), ""]
            else:
                func = getattr(obj, member)
                parts += [f"### `{name}.{member}{_signature(func)}`", "", _doc(func), ""]
    return "\n".join(parts).rstrip() + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print("docs/api.md is stale: run python docs/generate_api.py")
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
