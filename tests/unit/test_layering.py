"""Architecture rules, enforced by reading the source with ``ast``.

Data flows one way: ``api``/``scheduler``/``worker`` → ``engine`` → ``store`` → ``core`` →
``types``/``errors``. Allowed imports from Durable, per top-level package of the importer:

- ``core``: ``types``, ``errors``;
- ``store``: ``core``, ``types``, ``errors``, ``config``;
- ``engine``: ``store``, ``core``, ``types``, ``errors``, ``config``;
- ``worker`` and ``scheduler``: ``engine``, ``store``, ``core``, ``types``, ``errors``, ``config``,
  ``metrics``;
- ``types`` and ``errors``: only each other;
- ``api``: anything but ``worker`` and ``scheduler``.

Nothing under ``src/`` imports the SDK (``durable_sdk``). SQL lives only in
``store/queries/*.sql`` and ``store/migrations/*.sql``: no string literal in Python looks like a
statement (docstrings, which never reach a database, are exempt).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "durable"

ALLOWED: dict[str, set[str]] = {
    "core": {"types", "errors"},
    "store": {"core", "types", "errors", "config"},
    "engine": {"store", "core", "types", "errors", "config"},
    "worker": {"engine", "store", "core", "types", "errors", "config", "metrics"},
    "scheduler": {"engine", "store", "core", "types", "errors", "config", "metrics"},
    "types": {"errors"},
    "errors": {"types"},
}
FORBIDDEN: dict[str, set[str]] = {"api": {"worker", "scheduler"}}
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b.*\b(FROM|INTO|SET)\b", re.DOTALL)
SQL_DIRS = {("store", "queries"), ("store", "migrations")}


def module_name(path: Path) -> tuple[str, bool]:
    """Dotted module name of a file under ``src/`` and whether it is a package ``__init__``."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def imported_names(module: str, source: str, is_package: bool) -> list[str]:
    """Every module an import statement may bring in, relative imports resolved.

    ``from a import b`` yields both ``a`` and ``a.b``: ``b`` may be a submodule.
    """
    names: list[str] = []
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.append(target)
            names.extend(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def layer_violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """The import rules ``module`` breaks, one line each."""
    problems = []
    parts = module.split(".")
    layer = parts[1] if parts[0] == "durable" and len(parts) > 1 else None
    for name in imported_names(module, source, is_package):
        top = name.split(".")
        if top[0] == "durable_sdk":
            problems.append(f"{module} imports {name}: the engine never imports the SDK")
            continue
        if top[0] != "durable" or len(top) < 2 or layer is None or top[1] == layer:
            continue
        target = top[1]
        if layer in ALLOWED and target not in ALLOWED[layer]:
            problems.append(f"{module} imports {name}: {layer} may import only {sorted(ALLOWED[layer])}")
        if target in FORBIDDEN.get(layer, set()):
            problems.append(f"{module} imports {name}: {layer} must not import {target}")
    return sorted(set(problems))


def sql_literals(source: str) -> list[str]:
    """String literals (f-strings joined, docstrings skipped) that look like SQL statements."""
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                part.value if isinstance(part, ast.Constant) and isinstance(part.value, str) else "{}"
                for part in node.values
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value
        else:
            continue
        if SQL.search(text):
            found.append(text)
    return found


def python_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_the_tree_is_found() -> None:
    modules = {module_name(path)[0] for path in python_files()}
    assert {"durable", "durable.core.ops", "durable.core.options", "durable.errors"} <= modules


def test_imports_follow_the_layers() -> None:
    problems = []
    for path in python_files():
        module, is_package = module_name(path)
        problems += layer_violations(module, path.read_text(encoding="utf-8"), is_package)
    assert problems == []


def test_no_sql_in_python() -> None:
    problems = [
        f"{path.relative_to(SRC)}: {text[:60]!r}"
        for path in python_files()
        for text in sql_literals(path.read_text(encoding="utf-8"))
    ]
    assert problems == []


def test_sql_files_live_in_queries_or_migrations() -> None:
    misplaced = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.sql")
        if path.relative_to(PACKAGE).parts[:2] not in SQL_DIRS or len(path.relative_to(PACKAGE).parts) != 3
    ]
    assert misplaced == []


# The checkers themselves: each rule must be able to fail.


@pytest.mark.parametrize(
    ("module", "source", "is_package"),
    [
        ("durable.core.ops", "from durable.store import db", False),
        ("durable.core.ops", "import durable.engine.ingest", False),
        ("durable.core.ops", "from ..store import db", False),
        ("durable.core.ops", "from .. import config", False),
        ("durable.core", "from ..engine import x", True),
        ("durable.core.ops", "def f():\n    from durable.api import app\n", False),
        ("durable.store.db", "from durable.engine import apply", False),
        ("durable.engine.ingest", "from durable.worker.loop import run", False),
        ("durable.engine.ingest", "from durable import metrics", False),
        ("durable.worker.loop", "from durable.api.app import create_app", False),
        ("durable.scheduler.cron", "from durable.api import routes", False),
        ("durable.api.routes", "from durable.worker import loop", False),
        ("durable.api.routes", "from ..scheduler.cron import tick", False),
        ("durable.types", "from durable.core import ops", False),
        ("durable.cli", "import durable_sdk", False),
        ("durable.api.app", "from durable_sdk.client import Client", False),
    ],
)
def test_layer_checker_catches(module: str, source: str, is_package: bool) -> None:
    assert layer_violations(module, source, is_package)


@pytest.mark.parametrize(
    ("module", "source", "is_package"),
    [
        ("durable.core.ops", "from durable.errors import InvalidInput\nfrom durable.types import Op", False),
        ("durable.core.ops", "from . import events\nfrom .events import parse_json", False),
        ("durable.core.options", "from durable.core.cron import parse_cron", False),
        ("durable.store.db", "from durable.config import Settings\nfrom ..core import ids", False),
        ("durable.engine.ingest", "from durable.store import db", False),
        ("durable.worker.loop", "from durable.engine import apply\nfrom durable import metrics", False),
        ("durable.api.routes", "from durable.engine import ingest\nfrom durable.store import db", False),
        ("durable.cli", "from durable.worker import loop\nfrom durable.scheduler import run", False),
        ("durable.core.cron", "import re\nfrom croniter import croniter", False),
    ],
)
def test_layer_checker_allows(module: str, source: str, is_package: bool) -> None:
    assert layer_violations(module, source, is_package) == []


@pytest.mark.parametrize(
    "source",
    [
        'q = "SELECT id FROM runs"',
        'q = """\n    UPDATE jobs\n    SET lease = now()\n"""',
        "q = 'INSERT INTO events (id) VALUES ($1)'",
        "q = 'DELETE FROM waits'",
        'q = f"SELECT * FROM {table}"',
        'def f():\n    x = 1\n    return "SELECT 1 FROM t"',
    ],
)
def test_sql_checker_catches(source: str) -> None:
    assert sql_literals(source)


@pytest.mark.parametrize(
    "source",
    [
        '"""Claim jobs: SELECT … FROM jobs FOR UPDATE SKIP LOCKED, explained."""',
        'def f():\n    """UPDATE runs SET status: described, not run."""',
        'msg = "select a value from the list"',
        'msg = "DELETE the run"',
        'q = load("claim_jobs")',
    ],
)
def test_sql_checker_allows(source: str) -> None:
    assert sql_literals(source) == []


# A jsonb[] parameter cannot carry JSON arrays: asyncpg reads a Python list inside the list as another
# array dimension, so `[1, 2, 3]` was stored as `1`. JSON in array parameters travels as text[] and is
# cast per element in SQL; a Python value passed where text is expected then fails loudly.
_JSONB_ARRAY_PARAM = re.compile(r"\$\d+\s*::\s*jsonb\s*\[\]", re.IGNORECASE)


def jsonb_array_params(sql: str) -> list[str]:
    return _JSONB_ARRAY_PARAM.findall(sql)


def test_no_jsonb_array_parameters() -> None:
    offenders = [
        f"{path.name}: {found}"
        for path in sorted((PACKAGE / "store" / "queries").glob("*.sql"))
        for found in jsonb_array_params(path.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("unnest($5::jsonb[])", True),
        ("unnest($12 :: JSONB[])", True),
        ("unnest($5::text[]) AS i (v), i.v::jsonb", False),
        ("$9::text[]::jsonb[]", False),  # a cast of text on the server side is fine
    ],
)
def test_jsonb_array_checker(sql: str, found: bool) -> None:
    assert bool(jsonb_array_params(sql)) is found
