"""The public surface: an explicit, sorted, complete ``__all__`` with a docstring on every name."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import durable_sdk


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(durable_sdk).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert durable_sdk.__all__ == sorted(durable_sdk.__all__)
    assert set(durable_sdk.__all__) == public | {"__version__"}
    assert len(durable_sdk.__all__) == len(set(durable_sdk.__all__))


def test_every_public_name_is_documented() -> None:
    undocumented = [
        name
        for name in durable_sdk.__all__
        if name != "__version__" and not inspect.getdoc(getattr(durable_sdk, name))
    ]
    assert undocumented == []
    step_methods = ["run", "sleep", "wait_for_event"]
    assert all(inspect.getdoc(getattr(durable_sdk.Step, name)) for name in step_methods)
    assert all(inspect.getdoc(getattr(durable_sdk.Client, name)) for name in ["sync", "send", "send_many"])


def test_imports_only_the_standard_library() -> None:
    package = Path(durable_sdk.__file__).parent
    imported: set[str] = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported and imported - {"__future__"} <= sys.stdlib_module_names
