"""Every README code block marked runnable runs as written, against a real engine.

The convention (CONTRIBUTING.md, "README examples"): a fence whose info string is ``python runnable``,
``ts runnable`` or ``php runnable`` is a whole program a reader can paste into a file and run; the
fence right after it, with the info string ``output``, is what the program prints. Its last line is
``<status> <output as JSON>``: the run the program started, as the engine reports it.

For each such block this test starts `durable start` on a fresh database, provisions a workspace the
way the README says (``POST /api/apps``), and runs the block in an empty temp dir with the variables
the README names (``DURABLE_URL``, ``DURABLE_APP_ID``, ``DURABLE_SIGNING_KEY``, ``PORT``): Python with
the engine's .venv, TypeScript with node against the built SDK (``npm install <checkout>/sdks/typescript``
links it, as a symlink does here; the block is compiled by the SDK's tsc, strict), PHP with php
and a ``vendor/autoload.php`` standing in for the Composer one. It then asserts the program printed
what the README says and that the engine holds a completed run with exactly that output, and no run
of the workspace failed or is still active.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.procs import ROOT, Proc, child_env, engine_env
from tests.e2e.test_crash_recovery import _provision
from tests.harness import free_port

READMES = ["README.md", "sdks/python/README.md", "sdks/typescript/README.md", "sdks/php/README.md"]
LANGUAGES = ("python", "ts", "php")
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TS_SDK = ROOT / "sdks" / "typescript"


@dataclass(frozen=True)
class Block:
    readme: str
    line: int
    language: str
    code: str
    output: str
    nth: int  # 1 for a README's first block of this language, 2 for its second…

    @property
    def name(self) -> str:
        """The test id: stable while the README's text moves (the line is in failure messages)."""
        return f"{self.readme}:{self.language}" + (f":{self.nth}" if self.nth > 1 else "")


def extract(readme: str, text: str) -> list[Block]:
    """The runnable blocks of one README, each with the output block that must follow it."""
    fences = [
        (m.group(1).split(), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)
    ]
    blocks: list[Block] = []
    for index, (info, code, line) in enumerate(fences):
        if "runnable" not in info[1:]:
            continue
        where = f"{readme}:{line}"
        assert info[0] in LANGUAGES, f"{where}: a runnable block must be one of {LANGUAGES}, not {info[0]!r}"
        following = fences[index + 1] if index + 1 < len(fences) else None
        assert following is not None and following[0] == ["output"], (
            f"{where}: a runnable block must be followed by an ```output block with what it prints"
        )
        nth = 1 + sum(b.language == info[0] for b in blocks)
        blocks.append(Block(readme, line, info[0], code, following[1], nth))
    return blocks


def all_blocks() -> list[Block]:
    return [b for readme in READMES for b in extract(readme, (ROOT / readme).read_text())]


def test_every_readme_has_its_runnable_examples() -> None:
    """A block whose marker is dropped would silently stop being tested: pin which ones exist."""
    found = {(b.readme, b.language) for b in all_blocks()}
    expected = {("README.md", lang) for lang in LANGUAGES} | {
        ("sdks/python/README.md", "python"),
        ("sdks/typescript/README.md", "ts"),
        ("sdks/php/README.md", "php"),
    }
    assert expected <= found, f"runnable blocks missing: {sorted(expected - found)}"


def test_extract_refuses_a_runnable_block_without_its_output() -> None:
    text = "```python runnable\nprint(1)\n```\n\nno output block\n"
    with pytest.raises(AssertionError, match="must be followed by an ```output block"):
        extract("X.md", text)
    both = extract("X.md", text + "```output\n1\n```\n")
    assert [(b.name, b.line, b.code, b.output) for b in both] == [("X.md:python", 1, "print(1)\n", "1\n")]


def _prepare(block: Block, workdir: Path) -> list[str]:
    """Write the block where a reader would, with the SDK installed as its README says; return argv."""
    if block.language == "python":
        (workdir / "first.py").write_text(block.code)
        return [str(ROOT / ".venv" / "bin" / "python"), "first.py"]
    if block.language == "ts":
        assert shutil.which("node"), "node is not installed: run `make test`, which installs it"
        if not (TS_SDK / "dist" / "index.js").exists():
            subprocess.run(["npm", "run", "build"], cwd=TS_SDK, check=True, capture_output=True, timeout=300)
        (workdir / "node_modules" / "@durable").mkdir(parents=True)
        (workdir / "node_modules" / "@durable" / "sdk").symlink_to(TS_SDK, target_is_directory=True)
        (workdir / "package.json").write_text('{"type": "module"}\n')
        (workdir / "first.ts").write_text(block.code)
        tsconfig = {
            "compilerOptions": {
                "strict": True,
                "module": "NodeNext",
                "moduleResolution": "NodeNext",
                "target": "ES2022",
                "typeRoots": [str(TS_SDK / "node_modules" / "@types")],
                "types": ["node"],
            },
            "files": ["first.ts"],
        }
        (workdir / "tsconfig.json").write_text(json.dumps(tsconfig))
        check = subprocess.run(
            [str(TS_SDK / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 0, f"{block.name} does not compile:\n{check.stdout}{check.stderr}"
        return ["node", "first.js"]
    assert shutil.which("php"), "php is not installed: run `make test`, which installs it"
    (workdir / "vendor").mkdir()
    (workdir / "vendor" / "autoload.php").write_text(
        f"<?php\nrequire {json.dumps(str(ROOT / 'sdks' / 'php' / 'autoload.php'))};\n"
    )
    (workdir / "first.php").write_text(block.code)
    return ["php", "first.php"]


def _same_line(actual: str, expected: str) -> bool:
    """Equal, or `<status> <JSON>` with the same status and JSON value (spacing is the language's)."""
    if actual == expected:
        return True
    (a_status, _, a_json), (e_status, _, e_json) = actual.partition(" "), expected.partition(" ")
    try:
        return a_status == e_status and json.loads(a_json) == json.loads(e_json)
    except json.JSONDecodeError:
        return False


@pytest.mark.parametrize("block", all_blocks(), ids=lambda b: b.name)
def test_readme_block_runs_as_written(block: Block, dsn: str, tmp_path: Path) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    argv = _prepare(block, workdir)
    engine = Proc("start", engine_env(dsn), tmp_path, "engine")
    try:
        engine.wait_healthy()
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base, "readme")
        env = child_env(
            DURABLE_URL=base, DURABLE_APP_ID=app_id, DURABLE_SIGNING_KEY=key, PORT=str(free_port())
        )
        env.pop("PYTHONPATH", None)  # durable_sdk must come from the .venv, as the README installs it
        try:
            result = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired as timeout:
            raise AssertionError(
                f"{block.name} did not finish in 90 s\n--- stdout ---\n{timeout.stdout!r}\n--- stderr ---\n"
                f"{timeout.stderr!r}\n--- engine log ---\n{engine.log()[-3000:]}"
            ) from None
        listed = httpx.get(f"{base}/api/apps/{app_id}/runs", params={"limit": 500}).json()["items"]
        runs = [httpx.get(f"{base}/api/runs/{r['id']}").json() for r in listed]
    finally:
        engine.stop()
    failure = f"{block.readme}:{block.line}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{failure}\n--- engine log ---\n{engine.log()[-3000:]}"
    printed, expected = result.stdout.strip().splitlines(), block.output.strip().splitlines()
    assert len(printed) == len(expected) and all(map(_same_line, printed, expected)), (
        f"{failure}\n--- the README says it prints ---\n{block.output}\n--- the engine's runs ---\n{runs}"
    )
    status, _, output = expected[-1].partition(" ")
    assert status == "completed", f"{block.name}: the output block's last line must be `completed <JSON>`"
    assert runs, f"{block.name} started no run"
    assert [(r["functionId"], r["status"]) for r in runs if r["status"] != "completed"] == [], failure
    assert json.loads(output) in [r["output"] for r in runs], (
        f"{block.name}: no completed run has the output the README states: {[r['output'] for r in runs]}"
    )


def test_runnable_python_blocks_parse() -> None:
    """A quick check without an engine, so a syntax slip shows up before the e2e runs."""
    for block in all_blocks():
        if block.language == "python":
            compile(block.code, block.name, "exec")
