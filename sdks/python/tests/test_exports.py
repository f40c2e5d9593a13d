"""The public surface: an explicit, sorted, complete ``__all__`` with a docstring on every name."""

from __future__ import annotations

import ast
import inspect
import subprocess
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
    step_methods = ["run", "sleep", "wait_for_event", "invoke", "send_event", "parallel"]
    assert all(inspect.getdoc(getattr(durable_sdk.Step, name)) for name in step_methods)
    assert all(inspect.getdoc(getattr(durable_sdk.Client, name)) for name in ["sync", "send", "send_many"])


# Each framework helper may import its framework (and nothing else beyond the standard library).
FRAMEWORKS = {"fastapi": {"fastapi"}, "flask": {"flask"}, "django": {"django"}}


def test_imports_only_the_standard_library() -> None:
    package = Path(durable_sdk.__file__).parent
    assert {path.stem for path in package.glob("*.py")} >= set(FRAMEWORKS)
    for path in package.glob("*.py"):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        allowed = sys.stdlib_module_names | FRAMEWORKS.get(path.stem, set())
        assert imported - {"__future__"} <= allowed, path.name


def test_framework_helpers_import_their_framework_lazily() -> None:
    """With no framework importable, the package and its helper modules still import."""
    blocked = sorted(set().union(*FRAMEWORKS.values()) | {"starlette", "werkzeug"})
    script = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({blocked!r}))  # None: import raises ImportError\n"
        "import durable_sdk, durable_sdk.fastapi, durable_sdk.flask, durable_sdk.django\n"
        "try:\n"
        "    durable_sdk.flask.blueprint([], signing_key='k')\n"
        "except ImportError:\n"
        "    print('ok')\n"
    )
    sdk_root = Path(durable_sdk.__file__).parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=sdk_root, capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")
