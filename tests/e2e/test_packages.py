"""Every package, built and installed the way its README says, into a fresh project in a temp dir.

The checkout is copied first the way a clone has it (no node_modules, no built dashboard, no dist/), so
each build starts from what version control holds:
- the engine: `pip install <checkout>` runs the build hook, which builds the dashboard (npm ci + Vite);
  `make dist` builds the engine and SDK wheels; the engine wheel in a fresh venv gives `durable
  --version`, and `durable start` (embedded Postgres) serves `/healthz`, `/` and the dashboard's assets;
  without npm the hook stops with a message naming what to run;
- the Python SDK: its wheel, and `pip install <checkout>/sdks/python`, each in a fresh venv, no deps;
- the TypeScript SDK: `npm install <checkout>/sdks/typescript` (its `prepare` builds it) and the
  `npm pack` tarball, each in a fresh npm project, imported from ESM and CommonJS, and type-checked;
- the PHP SDK: a composer path repository in a fresh composer project, autoloading `Durable\\Client`;
- and every version is the one in VERSION.

Registries are reached only as the machine allows (PyPI and npm through their clients, for the build
backend and the engine's dependencies); composer runs with the network disabled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from build_hooks import versions
from tests.e2e.procs import ROOT, child_env
from tests.harness import free_port

VERSION = versions.source(ROOT)
KEY, BODY = "signkey-test-1", '{"name":"user.created","data":{"id":"u1"}}'
SIGNATURE = hmac.new(KEY.encode(), BODY.encode(), hashlib.sha256).hexdigest()

# What a clone of the repository holds of the packages (the rest of it plays no part in building them).
CLONED = ("pyproject.toml", "setup.py", "VERSION", "Makefile", "build_hooks", "src", "dashboard", "sdks")
NOT_CLONED = {  # .gitignore'd: built or installed, never in a clone
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "build",
    "dist",
    "vendor",
}


def _ignore(directory: str, names: list[str]) -> set[str]:
    ignored = {n for n in names if n in NOT_CLONED or n.endswith((".egg-info", ".tgz"))}
    if Path(directory).resolve() == (ROOT / "src/durable/dashboard").resolve():
        ignored.add("static")
    return ignored


def _clone_into(target: Path, entries: tuple[str, ...] = CLONED) -> Path:
    target.mkdir(parents=True)
    for name in entries:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=_ignore, symlinks=True)
        else:
            shutil.copy2(source, target / name)
    for absent in ("src/durable/dashboard/static", "dashboard/node_modules", "sdks/typescript/node_modules"):
        assert not (target / absent).exists(), absent
    return target


def _env(**extra: str) -> dict[str, str]:
    env = child_env(**extra)
    env.update(npm_config_update_notifier="false", npm_config_audit="false", npm_config_fund="false")
    env.pop("VIRTUAL_ENV", None)
    return env


def run(argv: list[str], cwd: Path, timeout: float = 240, check: bool = True, **env: str) -> str:
    """Run one command as a user would type it; its output, or an assertion error that shows it."""
    done = subprocess.run(
        argv, cwd=cwd, env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout
    )
    output = done.stdout.decode(errors="replace")
    if check:
        assert done.returncode == 0, f"`{' '.join(argv)}` exited with {done.returncode}:\n{output[-6000:]}"
    return output


def need(tool: str) -> str:
    path = shutil.which(tool)
    assert path, (
        f"{tool} is not on PATH: `make system-deps` (composer) or Node.js 20+ (npm, node) installs it"
    )
    return path


def fresh_venv(path: Path) -> Path:
    """A new, empty venv (no pip inside it: the tests' own pip installs into it with `--python`)."""
    run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(path)], cwd=path.parent)
    python = path / "bin" / "python"
    for module in ("durable", "durable_sdk"):  # fresh: neither the engine nor the SDK is importable yet
        out = run([str(python), "-c", f"import {module}"], cwd=path.parent, check=False)
        assert "ModuleNotFoundError" in out, out
    return python


def pip_install(python: Path, *args: str, timeout: float = 240) -> str:
    """`pip install ARGS` into the venv of `python`."""
    argv = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *args]
    return run(argv, cwd=python.parents[2], timeout=timeout)


def readme_section(readme: Path, title: str = "Install") -> str:
    text = readme.read_text()
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"{readme.relative_to(ROOT)} has no '## {title}' section"
    return match.group(1)


def assert_readme_says(readme: Path, *commands: str) -> None:
    """The commands a test runs are the README's own, `<checkout>` standing for the checkout's path."""
    section = readme_section(readme)
    for command in commands:
        assert command in section, f"{readme.relative_to(ROOT)} '## Install' does not say `{command}`"


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    # Outside pytest's tmp root: the embedded Postgres runs as another user when the tests run as root,
    # and another pytest process may reset that root to 0700.
    base = Path(tempfile.mkdtemp(prefix="durable-packages-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def checkout(work: Path) -> Path:
    return _clone_into(work / "checkout")


@pytest.fixture(scope="module")
def hook_install(work: Path, checkout: Path) -> Path:
    """`pip install <checkout>` (no deps, to keep it quick) into a fresh venv: the build hook builds the
    dashboard, since the clone has none. The folder of the installed `durable` package."""
    need("npm")
    python = fresh_venv(work / "hook-venv")
    pip_install(python, "--no-deps", str(checkout))
    return Path(
        run([str(python), "-c", "import durable, os; print(os.path.dirname(durable.__file__))"], work).strip()
    )


@pytest.fixture(scope="module")
def dist(checkout: Path, hook_install: Path) -> Path:
    """`make dist` in the checkout (whose dashboard the hook has built by now), with the tests' Python
    standing in for the checkout's .venv."""
    stamp = checkout / ".venv" / ".installed-run"
    stamp.parent.mkdir(exist_ok=True)
    stamp.touch()
    run(["make", "--no-print-directory", "dist", f"PY={sys.executable}"], cwd=checkout)
    return checkout / "dist"


def test_pip_install_of_a_checkout_builds_the_dashboard_into_the_package(
    checkout: Path, hook_install: Path
) -> None:
    built = checkout / "src/durable/dashboard/static"
    index = hook_install / "dashboard/static/index.html"
    assert index.is_file(), f"the installed engine has no dashboard: {sorted(hook_install.iterdir())}"
    assert index.read_bytes() == (built / "index.html").read_bytes()
    assets = [p.name for p in (hook_install / "dashboard/static/assets").iterdir()]
    assert any(name.endswith(".js") for name in assets), assets
    assert (hook_install / "store/migrations").is_dir()
    assert any((hook_install / "store/queries").glob("*.sql"))


def test_without_npm_the_build_stops_with_a_message_naming_what_to_run(work: Path) -> None:
    """The wheel build that `pip install <checkout>` and `make dist` run, with no npm on PATH."""
    bare = _clone_into(
        work / "checkout-no-npm", ("pyproject.toml", "setup.py", "VERSION", "build_hooks", "src", "dashboard")
    )
    empty_bin, out_dir = work / "empty-bin", work / "no-npm-dist"
    empty_bin.mkdir()
    out_dir.mkdir()
    out = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out_dir), str(bare)],
        cwd=work,
        check=False,
        PATH=str(empty_bin),
    )
    assert "npm is not on PATH" in out, out[-4000:]
    assert "src/durable/dashboard/static/index.html is missing" in out
    assert "`make dist`" in out and "cd dashboard && npm ci && npm run build" in out
    assert not list(out_dir.glob("*.whl"))


def test_make_dist_builds_both_wheels_with_the_version_and_the_dashboard(dist: Path) -> None:
    engine = sorted(dist.glob("durable_engine-*.whl"))
    sdk = sorted(dist.glob("durable_sdk-*.whl"))
    assert [w.name for w in engine] == [f"durable_engine-{VERSION}-py3-none-any.whl"]
    assert [w.name for w in sdk] == [f"durable_sdk-{VERSION}-py3-none-any.whl"]
    with zipfile.ZipFile(engine[0]) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"durable_engine-{VERSION}.dist-info/METADATA").decode()
    assert "durable/dashboard/static/index.html" in names
    assert any(n.startswith("durable/dashboard/static/assets/") for n in names)
    assert "durable/dashboard/static/swagger/swagger-ui-bundle.js" in names  # nested folders too (/api/docs)
    assert not any(n.startswith(("build_hooks/", "durable_sdk/", "tests/")) for n in names), sorted(names)
    assert f"Version: {VERSION}" in metadata
    assert "Provides-Extra: otel" in metadata
    with zipfile.ZipFile(sdk[0]) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"durable_sdk-{VERSION}.dist-info/METADATA").decode()
    assert {"durable_sdk/__init__.py", "durable_sdk/py.typed"} <= names
    assert "Requires-Dist" not in metadata  # standard library only


def test_the_engine_wheel_in_a_fresh_venv_serves_the_api_and_the_dashboard(work: Path, dist: Path) -> None:
    python = fresh_venv(work / "engine-venv")
    (wheel,) = dist.glob("durable_engine-*.whl")
    pip_install(python, str(wheel), timeout=400)
    durable = python.parent / "durable"
    assert run([str(durable), "--version"], cwd=work).strip() == f"durable {VERSION}"

    port, pg_dir = free_port(), work / "pgdata"
    env = {"PORT": str(port), "DURABLE_PG_PORT": str(free_port()), "DURABLE_PG_DIR": str(pg_dir)}
    log = work / "engine.log"
    with open(log, "wb") as out:
        engine = subprocess.Popen([str(durable), "start"], cwd=work, env=_env(**env), stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert engine.poll() is None, f"durable start exited with {engine.returncode}:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"/healthz never answered 200:\n{log.read_text()}"
            time.sleep(0.2)
        page = httpx.get(f"{base}/", timeout=5)
        assert page.status_code == 200 and "dashboard not built" not in page.text
        assert '<div id="app">' in page.text
        asset = re.search(r'src="(/assets/[^"]+\.js)"', page.text)
        assert asset, page.text
        script = httpx.get(base + asset.group(1), timeout=5)
        assert script.status_code == 200 and len(script.content) > 1000
        apps = httpx.get(f"{base}/api/apps", timeout=5)
        assert apps.status_code == 200 and "items" in apps.json()
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(60) == 0, log.read_text()
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait(10)
        from durable.store import embedded

        if embedded.running_port(pg_dir) is not None:
            embedded.stop(pg_dir)


PY_SDK_CHECK = f"""
import json, durable_sdk, importlib.metadata as md, pathlib
print(json.dumps({{
    "version": durable_sdk.__version__,
    "dist": md.version("durable-sdk"),
    "signature": durable_sdk.sign({BODY!r}.encode(), {KEY!r}),
    "typed": (pathlib.Path(durable_sdk.__file__).parent / "py.typed").is_file(),
    "names": sorted(durable_sdk.__all__),
    "installed": sorted(d.metadata["Name"] for d in md.distributions()),
}}))
"""


@pytest.mark.parametrize("how", ["wheel", "checkout"])
def test_the_python_sdk_installs_alone_into_a_fresh_venv(
    work: Path, checkout: Path, dist: Path, how: str
) -> None:
    readme = ROOT / "sdks/python/README.md"
    if how == "wheel":
        assert_readme_says(
            readme, "cd <checkout> && make dist", "pip install <checkout>/dist/durable_sdk-*.whl"
        )
        (target,) = dist.glob("durable_sdk-*.whl")
    else:
        assert_readme_says(readme, "pip install <checkout>/sdks/python")
        target = checkout / "sdks/python"
    python = fresh_venv(work / f"sdk-venv-{how}")
    pip_install(python, str(target))
    found = json.loads(run([str(python), "-c", PY_SDK_CHECK], cwd=work))
    assert found["version"] == found["dist"] == VERSION
    assert found["signature"] == SIGNATURE
    assert found["typed"] is True
    assert {"Client", "function", "serve", "serve_wsgi"} <= set(found["names"])
    assert found["installed"] == ["durable-sdk"]  # and nothing else: standard library only


JS_REPORT = (
    (
        "console.log(JSON.stringify({ names: Object.keys(sdk).sort(), version: sdk.version,"
        " signature: sdk.sign(__BODY__, __KEY__), client: typeof new sdk.DurableClient("
        '{ baseUrl: "http://127.0.0.1:1", appId: "a", signingKey: "k" }).send }));\n'
    )
    .replace("__BODY__", json.dumps(BODY))
    .replace("__KEY__", json.dumps(KEY))
)
ESM_CHECK = 'import * as sdk from "@durable/sdk";\n' + JS_REPORT
CJS_CHECK = 'const sdk = require("@durable/sdk");\n' + JS_REPORT
# Type-checked together in each fresh project: the good files compile, and each bad one fails on its own
# line, so the package's types are real (a string is not a number) from ESM and from CommonJS alike.
TS_FILES = {
    "good-esm.mts": 'import { sign, version, DurableClient, type DurableClientOptions } from "@durable/sdk";\n'
    'const options: DurableClientOptions = { baseUrl: "http://x", appId: "a", signingKey: "k" };\n'
    "new DurableClient(options);\nexport const s: string = sign('{}', 'k') + version;\n",
    "good-cjs.cts": 'import sdk = require("@durable/sdk");\nconst s: string = sdk.sign("{}", "k") + sdk.version;\n'
    "export = s;\n",
    "bad-esm.mts": 'import { version } from "@durable/sdk";\nexport const n: number = version;\n',
    "bad-cjs.cts": 'import sdk = require("@durable/sdk");\nconst n: number = sdk.version;\nexport = n;\n',
}


def _npm_project(path: Path) -> Path:
    path.mkdir()
    run([need("npm"), "init", "-y"], cwd=path)
    return path


def _check_js_package(project: Path, tsc: Path) -> None:
    (project / "check.mjs").write_text(ESM_CHECK)
    (project / "check.cjs").write_text(CJS_CHECK)
    esm = json.loads(run([need("node"), "check.mjs"], cwd=project))
    cjs = json.loads(run([need("node"), "check.cjs"], cwd=project))
    assert esm == cjs, (esm, cjs)
    assert esm["version"] == VERSION and esm["signature"] == SIGNATURE and esm["client"] == "function"
    assert {"DurableClient", "createFunction", "serve", "sign", "verify", "version"} <= set(esm["names"])
    for name, source in TS_FILES.items():
        (project / name).write_text(source)
    flags = ["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext"]
    flags += ["--types", "node", "--typeRoots", str(tsc.parents[1] / "@types")]
    out = run([str(tsc), *flags, *TS_FILES], cwd=project, check=False)
    errors = sorted(line.split("(")[0] for line in out.splitlines() if "error TS" in line)
    assert errors == ["bad-cjs.cts", "bad-esm.mts"], out
    assert out.count("Type 'string' is not assignable to type 'number'") == 2, out


def test_the_typescript_sdk_installs_from_the_checkout_folder(work: Path, checkout: Path) -> None:
    assert_readme_says(ROOT / "sdks/typescript/README.md", "npm install <checkout>/sdks/typescript")
    sdk = checkout / "sdks/typescript"
    for built in ("dist", "node_modules"):  # as a clone has it, whichever test ran first
        shutil.rmtree(sdk / built, ignore_errors=True)
    project = _npm_project(work / "ts-folder")
    run([need("npm"), "install", str(sdk)], cwd=project)
    linked = project / "node_modules/@durable/sdk"
    assert linked.is_symlink() and linked.resolve() == sdk.resolve()
    assert (sdk / "dist/index.js").is_file() and (sdk / "dist/cjs/index.js").is_file()  # `prepare` built it
    _check_js_package(project, sdk / "node_modules/.bin/tsc")


def test_the_typescript_sdk_installs_from_its_npm_pack_tarball(work: Path, checkout: Path) -> None:
    readme = ROOT / "sdks/typescript/README.md"
    assert_readme_says(
        readme,
        "cd <checkout>/sdks/typescript && npm ci && npm pack",
        "npm install <checkout>/sdks/typescript/durable-sdk-*.tgz",
    )
    sdk = checkout / "sdks/typescript"
    run([need("npm"), "ci"], cwd=sdk)
    run([need("npm"), "pack"], cwd=sdk)
    (tarball,) = sdk.glob("durable-sdk-*.tgz")
    assert tarball.name == f"durable-sdk-{VERSION}.tgz"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    for name in ("index.js", "index.d.ts", "cjs/index.js", "cjs/index.d.ts", "cjs/package.json"):
        assert f"package/dist/{name}" in names, sorted(names)
    assert not any(n.startswith(("package/src/", "package/dist/test/", "package/test/")) for n in names)
    project = _npm_project(work / "ts-tarball")
    run([need("npm"), "install", str(tarball)], cwd=project)
    installed = project / "node_modules/@durable/sdk"
    assert installed.is_dir() and not installed.is_symlink()
    assert json.loads((installed / "package.json").read_text())["version"] == VERSION
    _check_js_package(project, sdk / "node_modules/.bin/tsc")


PHP_CHECK = f"""<?php
require __DIR__ . '/vendor/autoload.php';
$client = new Durable\\Client('http://127.0.0.1:1', 'app_x', 'key');
echo json_encode([
    'client' => get_class($client),
    'signature' => Durable\\Signature::sign({BODY!r}, {KEY!r}),
    'serve' => class_exists(Durable\\Serve::class),
    'step' => class_exists(Durable\\Step::class),
]);
"""


def test_the_php_sdk_installs_through_a_composer_path_repository(work: Path, checkout: Path) -> None:
    assert_readme_says(
        ROOT / "sdks/php/README.md",
        "composer config repositories.durable path <checkout>/sdks/php",
        "composer require 'durable/sdk:*'",
    )
    composer, php = need("composer"), need("php")
    sdk = checkout / "sdks/php"
    project = work / "php-project"
    project.mkdir()
    env = {
        "COMPOSER_HOME": str(work / "composer-home"),
        "COMPOSER_ALLOW_SUPERUSER": "1",
        "COMPOSER_DISABLE_NETWORK": "1",
    }
    run([composer, "init", "--no-interaction", "--name", "acme/app"], cwd=project, **env)
    run([composer, "config", "repositories.durable", "path", str(sdk)], cwd=project, **env)
    run([composer, "require", "--no-interaction", "durable/sdk:*"], cwd=project, **env)
    linked = project / "vendor/durable/sdk"
    assert linked.resolve() == sdk.resolve()
    lock = json.loads((project / "composer.lock").read_text())
    assert [(p["name"], p["version"]) for p in lock["packages"]] == [("durable/sdk", VERSION)]
    psr4 = (project / "vendor/composer/autoload_psr4.php").read_text()
    assert "'Durable\\\\' => array($vendorDir . '/durable/sdk/src')" in psr4, psr4
    (project / "check.php").write_text(PHP_CHECK)
    found = json.loads(run([php, "check.php"], cwd=project))
    assert found == {"client": "Durable\\Client", "signature": SIGNATURE, "serve": True, "step": True}


def test_every_package_states_the_version_in_VERSION() -> None:
    assert versions.mismatches(ROOT) == []
    for manifest in ("pyproject.toml", "sdks/python/pyproject.toml"):  # no number: setuptools reads it
        project = tomllib.loads((ROOT / manifest).read_text())["project"]
        assert "version" not in project and project["dynamic"] == ["version"], manifest
    assert json.loads((ROOT / "sdks/typescript/package.json").read_text())["version"] == VERSION
    assert json.loads((ROOT / "sdks/php/composer.json").read_text())["version"] == VERSION


def test_the_version_check_catches_drift_and_set_version_rewrites_every_place(tmp_path: Path) -> None:
    for place in {p.path for p in versions.PLACES} | {"VERSION"}:
        (tmp_path / place).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / place, tmp_path / place)
    versions.set_version("9.8.7-rc.1", tmp_path)
    assert versions.mismatches(tmp_path) == []
    assert {p.read(tmp_path) for p in versions.PLACES} == {"9.8.7-rc.1"}
    assert (
        json.loads((tmp_path / "sdks/typescript/package-lock.json").read_text())["packages"][""]["version"]
        == "9.8.7-rc.1"
    )
    composer = tmp_path / "sdks/php/composer.json"
    composer.write_text(composer.read_text().replace("9.8.7-rc.1", "9.8.8"))
    assert versions.mismatches(tmp_path) == ["sdks/php/composer.json: '9.8.8', VERSION says '9.8.7-rc.1'"]
    with pytest.raises(SystemExit, match="not a version"):
        versions.set_version("v1", tmp_path)
