"""The self-hosting files (Dockerfile, docker-compose.yml, deploy/kubernetes/) are checked here, since
no Docker engine or cluster runs on these machines.

- every YAML file of the repository passes yamllint under `.yamllint.yaml`, warnings included;
- every Kubernetes manifest validates (strict: unknown fields refused) against the pinned versions;
- the Dockerfile's stages, user, health check, command and environment; its health check and the
  worker's process probe are run here against a real HTTP server and real processes;
- stage 2's COPY list is enough to build an engine wheel that carries the dashboard;
- compose and the manifests give `durable start` a configuration that `config.load` accepts and that
  binds beyond loopback with an admin token (never DURABLE_INSECURE).

Each check is a function that returns the problems it finds; the mutation tests at the end feed each one
a broken copy and expect the problem named.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from durable import __version__
from durable.config import exposure_problem, load

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "kubernetes"
YAMLLINT = ROOT / ".yamllint.yaml"
DOC = ROOT / "docs" / "self-hosting.md"

# The oldest Kubernetes the manifests claim, and the newest kubernetes-validate 1.37.0 ships schemas for.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
IMAGE = f"durable-engine:{__version__}"
UID = 10001
SKIP_DIRS = {".git", ".venv", "node_modules", "test-artifacts", ".durable-test-pg", ".bench-pg", "dist"}
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|KEY|DATABASE_URL", re.IGNORECASE)
PINNED_IMAGE = re.compile(r"^[\w./-]+:\d+\.\d+(\.\d+)?[\w.-]*$")


def yaml_files() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        found += [Path(folder) / f for f in files if f.endswith((".yml", ".yaml"))]
    return sorted(found)


def manifests() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


# ---- yamllint ----------------------------------------------------------------------------------------


def yamllint_problems(text: str, path: Path) -> list[str]:
    config = YamlLintConfig(file=str(YAMLLINT))
    return [f"{path.name}:{p.line}:{p.column} {p.level} {p.message}" for p in linter.run(text, config, path)]


def test_every_yaml_file_is_found() -> None:
    expected = {COMPOSE, YAMLLINT, *manifests()}
    assert {"engine.yaml", "worker.yaml", "secret.yaml"} <= {p.name for p in manifests()}
    assert expected <= set(yaml_files())


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yamllint_strict(path: Path) -> None:
    assert yamllint_problems(path.read_text(encoding="utf-8"), path) == []


# ---- Kubernetes --------------------------------------------------------------------------------------


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def schema_problems(docs: list[dict[str, Any]]) -> list[str]:
    problems = []
    for doc in docs:
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                problems.append(f"{doc.get('kind')} {version}: {where}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(exc.message)
    return problems


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_manifest_validates_against_kubernetes(path: Path) -> None:
    docs = documents(path.read_text(encoding="utf-8"))
    assert docs, f"{path.name} holds no resource"
    assert schema_problems(docs) == []


def all_resources(texts: dict[str, str] | None = None) -> list[dict[str, Any]]:
    texts = texts or {p.name: p.read_text(encoding="utf-8") for p in manifests()}
    return [doc for text in texts.values() for doc in documents(text)]


def _one(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    for r in resources:
        if r.get("kind") == kind and r.get("metadata", {}).get("name") == name:
            return r
    return None


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _pod_problems(deployment: dict[str, Any], what: str, command: list[str]) -> list[str]:
    problems = []
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    if deployment["spec"]["selector"].get("matchLabels", {}).items() - labels.items():
        problems.append(f"{what}: the selector does not match the pod labels")
    context = pod.get("securityContext", {})
    if context.get("runAsNonRoot") is not True:
        problems.append(f"{what}: pod securityContext.runAsNonRoot must be true")
    if context.get("runAsUser") != UID:
        problems.append(f"{what}: pod securityContext.runAsUser must be {UID}, the image's USER")
    container = pod["containers"][0]
    if container.get("image") != IMAGE:
        problems.append(f"{what}: image {container.get('image')!r}, expected {IMAGE!r}")
    if container.get("command") != command:
        problems.append(f"{what}: command {container.get('command')!r}, expected {command!r}")
    if container.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
        problems.append(f"{what}: container securityContext.allowPrivilegeEscalation must be false")
    resources = container.get("resources", {})
    if not resources.get("requests") or not resources.get("limits", {}).get("memory"):
        problems.append(f"{what}: resources need requests and a memory limit")
    if "livenessProbe" not in container:
        problems.append(f"{what}: no livenessProbe")
    if "DURABLE_INSECURE" in _env(container):
        problems.append(f"{what}: sets DURABLE_INSECURE")
    if int(pod.get("terminationGracePeriodSeconds", 30)) * 1000 <= 15_000:
        problems.append(f"{what}: terminationGracePeriodSeconds must exceed DURABLE_DRAIN_TIMEOUT_MS")
    return problems


def _secret_refs(container: dict[str, Any], secret: dict[str, Any], what: str, names: list[str]) -> list[str]:
    problems = []
    env = _env(container)
    for name in names:
        ref = env.get(name, {}).get("valueFrom", {}).get("secretKeyRef", {})
        if ref.get("name") != secret["metadata"]["name"] or ref.get("key") not in secret.get(
            "stringData", {}
        ):
            problems.append(f"{what}: {name} must come from the Secret {secret['metadata']['name']!r}")
    return problems


def k8s_problems(resources: list[dict[str, Any]]) -> list[str]:
    secret = _one(resources, "Secret", "durable")
    engine = _one(resources, "Deployment", "durable-engine")
    service = _one(resources, "Service", "durable-engine")
    worker = _one(resources, "Deployment", "durable-worker")
    missing = [n for n, r in [("Secret durable", secret), ("Deployment durable-engine", engine),
                              ("Service durable-engine", service), ("Deployment durable-worker", worker)]
               if r is None]  # fmt: skip
    if missing or secret is None or engine is None or service is None or worker is None:
        return [f"missing {', '.join(missing)}"]
    problems = _pod_problems(engine, "engine", ["durable", "start"])
    problems += _pod_problems(worker, "worker", ["durable", "worker"])
    for key, value in secret.get("stringData", {}).items():
        if "CHANGE-ME" not in value:
            problems.append(f"Secret: {key} must be a CHANGE-ME placeholder, never a real value")
    engine_container = engine["spec"]["template"]["spec"]["containers"][0]
    worker_container = worker["spec"]["template"]["spec"]["containers"][0]
    problems += _secret_refs(engine_container, secret, "engine", ["DATABASE_URL", "DURABLE_ADMIN_TOKEN"])
    problems += _secret_refs(worker_container, secret, "worker", ["DATABASE_URL"])
    ports = {p.get("name"): p["containerPort"] for p in engine_container.get("ports", [])}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = engine_container.get(probe, {}).get("httpGet", {})
        if get.get("path") != "/healthz" or (get.get("port") not in ports and get.get("port") != 3030):
            problems.append(f"engine: {probe} must GET /healthz on the container's port")
    if ports.get("http") != 3030:
        problems.append("engine: containerPort http must be 3030 (PORT)")
    if "exec" not in worker_container.get("livenessProbe", {}):
        problems.append(
            "worker: livenessProbe must be an exec (process) check: `durable worker` serves no HTTP"
        )
    if worker_container.get("ports"):
        problems.append("worker: `durable worker` listens on no port")
    labels = engine["spec"]["template"]["metadata"]["labels"]
    if service["spec"].get("selector", {}).items() - labels.items():
        problems.append("Service: selector does not match the engine pods")
    targets = {p.get("targetPort") for p in service["spec"].get("ports", [])}
    if not targets & {*ports, 3030}:
        problems.append("Service: targetPort is not the engine's container port")
    allowed = _env(engine_container).get("DURABLE_ALLOWED_HOSTS", {}).get("value", "")
    if service["metadata"]["name"] not in allowed.split(","):
        problems.append("engine: DURABLE_ALLOWED_HOSTS must name the Service (apps call it by that name)")
    return problems


def test_kubernetes_manifests_are_complete() -> None:
    assert k8s_problems(all_resources()) == []
    for path in manifests():
        assert "DURABLE_INSECURE" not in path.read_text(encoding="utf-8"), path.name


def test_kubernetes_engine_configuration_is_accepted() -> None:
    """The Secret's placeholders, the engine's env and the image's ENV make a configuration that
    `durable start` accepts and would serve beyond loopback with the admin token."""
    resources = all_resources()
    secret = _one(resources, "Secret", "durable")
    engine = _one(resources, "Deployment", "durable-engine")
    assert secret is not None and engine is not None
    env = dict(final_stage_env())
    for item in engine["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret["stringData"][ref["key"]]
    settings = load(env)
    assert settings.host == "0.0.0.0" and settings.port == 3030
    assert settings.admin_token and not settings.insecure
    assert exposure_problem(settings) is None


# ---- Dockerfile --------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile: continuation lines joined, comments (also inside continuations) dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending.strip())
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            parts = args.split()
            parts = [p for p in parts if not p.startswith("--")]
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


def _env_pairs(args: str) -> list[tuple[str, str]]:
    words = shlex.split(args)
    if words and "=" not in words[0]:  # the legacy `ENV KEY value` form
        return [(words[0], " ".join(words[1:]))]
    return [(w.split("=", 1)[0], w.split("=", 1)[1] if "=" in w else "") for w in words]


def _copy_from(args: str) -> str | None:
    match = re.search(r"--from=(\S+)", args)
    return match.group(1) if match else None


def _exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def healthcheck_command(stage: Stage) -> list[str] | None:
    checks = stage.all("HEALTHCHECK")
    if len(checks) != 1:
        return None
    _, _, command = checks[0].partition("CMD ")
    return _exec_form(command.strip())


def dockerfile_problems(text: str) -> list[str]:
    stages = parse_dockerfile(text)
    if len(stages) != 3:
        return [f"expected 3 stages (dashboard, wheel, runtime), found {len(stages)}"]
    dashboard, wheel, final = stages
    problems = []
    for stage, prefix in [(dashboard, "node:20"), (wheel, "python:3.11"), (final, "python:3.11")]:
        if not stage.base.startswith(prefix) or not PINNED_IMAGE.match(stage.base):
            problems.append(f"stage {stage.name}: base {stage.base!r} must be {prefix} with a pinned version")
        if stage.name is None:
            problems.append(f"stage FROM {stage.base}: needs a name (AS …)")
    if "slim" not in wheel.base or "slim" not in final.base:
        problems.append("the python stages must use a -slim image")
    runs = " && ".join(dashboard.all("RUN"))
    if "npm ci" not in runs or "npm run build" not in runs:
        problems.append("stage 1 must run `npm ci` and `npm run build`")
    if "pip wheel" not in " ".join(wheel.all("RUN")) or "--no-deps" not in " ".join(wheel.all("RUN")):
        problems.append("stage 2 must build the wheel with `pip wheel --no-deps`")
    if dashboard.name not in {_copy_from(c) for c in wheel.all("COPY")}:
        problems.append("stage 2 must copy the built dashboard from stage 1")
    if wheel.name not in {_copy_from(c) for c in final.all("COPY")}:
        problems.append("the runtime stage must copy the wheel from stage 2")
    if not any("pip install" in r for r in final.all("RUN")):
        problems.append("the runtime stage must pip install the wheel")
    if any(c.split()[0] == "." for c in final.all("COPY") if c and not c.startswith("--")):
        problems.append("the runtime stage must not COPY the whole context")
    users = final.all("USER")
    user = users[-1].split(":")[0] if users else "root"
    if user in ("root", "0") or not user.isdigit():
        problems.append(f"the runtime stage must end as a numeric non-root USER (runAsNonRoot), not {user!r}")
    if "3030" not in " ".join(final.all("EXPOSE")).split():
        problems.append("the runtime stage must EXPOSE 3030")
    check = healthcheck_command(final)
    if check is None or "/healthz" not in " ".join(check) or "urllib" not in " ".join(check):
        problems.append("one HEALTHCHECK CMD in exec form that fetches /healthz with urllib")
    cmds = final.all("CMD")
    if not cmds or _exec_form(cmds[-1]) != ["durable", "start"]:
        problems.append('CMD must be ["durable", "start"]')
    env = dict(pair for args in final.all("ENV") for pair in _env_pairs(args))
    if env.get("DURABLE_HOST") != "0.0.0.0":
        problems.append("ENV DURABLE_HOST=0.0.0.0 in the runtime stage")
    for stage in stages:
        for keyword in ("ENV", "ARG"):
            for args in stage.all(keyword):
                for name, _ in _env_pairs(args):
                    if SECRET_NAME.search(name):
                        problems.append(f"{keyword} {name}: no secret is baked into the image")
        for args in stage.all("COPY") + stage.all("ADD"):
            if re.search(r"(^|\s|/)\.env\b", args):
                problems.append(f"COPY {args}: .env files hold secrets")
    if "DURABLE_INSECURE" in text:
        problems.append("the Dockerfile mentions DURABLE_INSECURE")
    return problems


def final_stage_env() -> dict[str, str]:
    final = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    return dict(pair for args in final.all("ENV") for pair in _env_pairs(args))


def test_dockerfile_structure() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


def test_dockerfile_user_matches_the_manifests() -> None:
    final = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    assert final.all("USER")[-1] == f"{UID}:{UID}"
    assert f"--uid {UID}" in " ".join(final.all("RUN"))


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    lines = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    for entry in (".env", ".git", "**/.venv", "**/node_modules", "src/durable/dashboard/static"):
        assert entry in lines, f".dockerignore must list {entry}"


def test_stage_one_output_is_what_stage_two_copies() -> None:
    """vite's outDir, resolved from stage 1's WORKDIR, is the path stage 2 copies from."""
    dashboard, wheel, _ = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    vite = (ROOT / "dashboard" / "vite.config.ts").read_text(encoding="utf-8")
    match = re.search(r'const outDir = resolve\(here, "([^"]+)"\)', vite)
    assert match, "dashboard/vite.config.ts no longer names its outDir as this test expects"
    workdir = PurePosixPath(dashboard.all("WORKDIR")[-1])
    out = os.path.normpath(str(workdir / match.group(1)))
    sources = [c.split()[1] for c in wheel.all("COPY") if _copy_from(c) == dashboard.name]
    assert [os.path.normpath(s) for s in sources] == [out]


class _Health(BaseHTTPRequestHandler):
    status = 200
    seen: list[str] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        body = b'{"ok": true}'
        self.send_response(type(self).status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[HTTPServer, type[_Health]]]:
    handler = type("Health", (_Health,), {"status": 200, "seen": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_fetches_healthz_on_port(
    health_server: tuple[HTTPServer, type[_Health]], status: int, healthy: bool
) -> None:
    """The image's HEALTHCHECK, run here: healthy on 200, unhealthy on the 503 of a missing database,
    and on PORT (a random one here), not a hard-coded 3030."""
    server, handler = health_server
    handler.status = status
    final = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    command = healthcheck_command(final)
    assert command is not None and command[0] == "python"
    env = {**os.environ, "PORT": str(server.server_address[1])}
    done = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30)
    assert (done.returncode == 0) is healthy, done.stderr.decode()
    assert handler.seen == ["/healthz"]


def test_healthcheck_command_fails_when_nothing_listens(health_server: tuple[HTTPServer, Any]) -> None:
    server, _ = health_server
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    command = healthcheck_command(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[-1])
    assert command is not None
    env = {**os.environ, "PORT": str(port)}
    done = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30)
    assert done.returncode == 1, done.stderr.decode()


def test_stage_two_copies_enough_to_build_a_wheel_with_the_dashboard(tmp_path: Path) -> None:
    """Stage 2's COPY list, replayed from the checkout (the local dashboard build standing in for
    stage 1's), builds an engine wheel of the checkout's version that carries the dashboard: a file the
    build needs (setup.py, build_hooks/, VERSION) missing from the list fails here."""
    if not (ROOT / "src" / "durable" / "dashboard" / "static" / "index.html").exists():
        pytest.skip("the dashboard is not built (`make install` builds it)")
    _, wheel_stage, _ = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    context = tmp_path / "context"
    context.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")  # as .dockerignore does
    for args in wheel_stage.all("COPY"):
        if _copy_from(args) is not None:
            continue
        *sources, target = args.split()
        for source in sources:
            origin = ROOT / source
            assert origin.exists(), f"the Dockerfile copies {source}, which is not in the checkout"
            if origin.is_dir():
                shutil.copytree(origin, context / target, ignore=ignore, dirs_exist_ok=True)
            else:
                shutil.copy2(
                    origin, context / target / origin.name if target.endswith("/") else context / target
                )
    out = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(out), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("durable_engine-*.whl")
    assert wheel.name.startswith(f"durable_engine-{__version__}-"), wheel.name
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "durable/dashboard/static/index.html" in names
    assert any(n.startswith("durable/store/migrations/") and n.endswith(".sql") for n in names)


# ---- docker-compose.yml ------------------------------------------------------------------------------

INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[?-][^}]*)?\}")


def interpolate(value: str, variables: dict[str, str]) -> str:
    return INTERPOLATION.sub(lambda m: variables[m.group(1)], value)


def _depends_healthy(service: dict[str, Any], on: str) -> bool:
    depends = service.get("depends_on", {})
    return isinstance(depends, dict) and depends.get(on, {}).get("condition") == "service_healthy"


def compose_problems(text: str) -> list[str]:
    doc = yaml.safe_load(text)
    services = doc.get("services", {})
    if set(services) != {"postgres", "engine", "worker"}:
        return [f"services must be postgres, engine and worker, found {sorted(services)}"]
    problems = []
    if "DURABLE_INSECURE" in text:
        problems.append("compose must never set DURABLE_INSECURE")
    postgres, engine, worker = services["postgres"], services["engine"], services["worker"]
    if not PINNED_IMAGE.match(str(postgres.get("image", ""))):
        problems.append("postgres: image needs a pinned version")
    if not postgres.get("healthcheck", {}).get("test"):
        problems.append("postgres: needs a healthcheck (the others wait for it)")
    volumes = [str(v).split(":") for v in postgres.get("volumes", [])]
    if not any(v[0] in doc.get("volumes", {}) and v[1] == "/var/lib/postgresql/data" for v in volumes):
        problems.append("postgres: /var/lib/postgresql/data must be a named volume")
    for name, service, command in [
        ("engine", engine, ["durable", "start"]),
        ("worker", worker, ["durable", "worker"]),
    ]:
        if service.get("command") != command:
            problems.append(f"{name}: command must be {command}")
        if service.get("image") != IMAGE:
            problems.append(f"{name}: image must be {IMAGE}")
        if not _depends_healthy(service, "postgres"):
            problems.append(f"{name}: depends_on postgres with condition service_healthy")
        url = str(service.get("environment", {}).get("DATABASE_URL", ""))
        host = re.match(r"postgres(?:ql)?://[^@/]*@([^:/]+)", url)
        if host is None or host.group(1) not in services:
            problems.append(f"{name}: DATABASE_URL must point at the postgres service, got {url!r}")
    token = str(engine.get("environment", {}).get("DURABLE_ADMIN_TOKEN", ""))
    if not re.fullmatch(r"\$\{DURABLE_ADMIN_TOKEN:\?[^}]+\}", token):
        problems.append(
            "engine: DURABLE_ADMIN_TOKEN must be ${DURABLE_ADMIN_TOKEN:?…} (required, never a literal)"
        )
    if "healthcheck" not in worker:
        problems.append("worker: needs its own healthcheck (the image's checks HTTP, which a worker lacks)")
    published = [str(p) for p in engine.get("ports", [])]
    if not any(p.endswith(":3030") for p in published):
        problems.append("engine: publish port 3030")
    return problems


def test_compose_structure() -> None:
    assert compose_problems(COMPOSE.read_text(encoding="utf-8")) == []


def test_compose_engine_configuration_is_accepted() -> None:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    variables = {"POSTGRES_PASSWORD": "pw0123456789", "DURABLE_ADMIN_TOKEN": "a-test-token-0123"}
    env = dict(final_stage_env())
    env.update(
        {k: interpolate(str(v), variables) for k, v in doc["services"]["engine"]["environment"].items()}
    )
    settings = load(env)
    assert settings.database_url == "postgresql://durable:pw0123456789@postgres:5432/durable"
    assert settings.admin_token == "a-test-token-0123" and not settings.insecure
    assert exposure_problem(settings) is None
    assert "engine" in settings.allowed_hosts
    worker_env = dict(final_stage_env())
    worker_env.update(
        {k: interpolate(str(v), variables) for k, v in doc["services"]["worker"]["environment"].items()}
    )
    assert load(worker_env).database_url == settings.database_url


def test_compose_refuses_to_start_without_the_secrets() -> None:
    """Unset, the password stops `docker compose` with a message (`${VAR:?message}`), as the token does
    (checked in compose_problems)."""
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    password = doc["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?.+\}", password)


# ---- the worker's process probe ----------------------------------------------------------------------


def worker_probes() -> dict[str, str]:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    test = compose["services"]["worker"]["healthcheck"]["test"]
    worker = _one(all_resources(), "Deployment", "durable-worker")
    assert worker is not None
    command = worker["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["exec"]["command"]
    assert test[:3] == ["CMD", "python", "-c"] and command[:2] == ["python", "-c"]
    return {"compose": test[3], "kubernetes": command[2]}


def run_probe(script: str, pid: int) -> int:
    assert "/proc/1/" in script
    code = script.replace("/proc/1/", f"/proc/{pid}/")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode


@pytest.fixture
def sleeper() -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*argv: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_worker_probe_is_one_script() -> None:
    probes = worker_probes()
    assert probes["compose"] == probes["kubernetes"]


def test_worker_probe_checks_the_worker_process(sleeper: Any) -> None:
    script = worker_probes()["kubernetes"]
    worker = sleeper("/usr/local/bin/durable", "worker")
    other = sleeper("/usr/local/bin/durable", "start")
    assert run_probe(script, worker.pid) == 0
    assert run_probe(script, other.pid) == 1
    worker.send_signal(signal.SIGSTOP)
    try:
        assert run_probe(script, worker.pid) == 1
    finally:
        worker.send_signal(signal.SIGCONT)


# ---- docs/self-hosting.md ----------------------------------------------------------------------------


def test_doc_names_every_variable_the_files_set() -> None:
    doc = DOC.read_text(encoding="utf-8")
    names = set(final_stage_env()) - {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
                                      "PIP_DISABLE_PIP_VERSION_CHECK"}  # fmt: skip
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    for service in compose["services"].values():
        names |= set(service.get("environment", {}))
    for resource in all_resources():
        if resource["kind"] == "Deployment":
            names |= set(_env(resource["spec"]["template"]["spec"]["containers"][0]))
    missing = sorted(n for n in names if f"`{n}`" not in doc)
    assert missing == []
    assert "No Docker engine" in doc
    assert "## Behind a connection pooler" in doc


# ---- every check fails on a broken copy --------------------------------------------------------------

MUTATIONS = [
    # (file, text to replace, replacement, problem expected)
    ("Dockerfile", "USER 10001:10001", "USER root", "numeric non-root USER"),
    ("Dockerfile", "USER 10001:10001", "USER durable", "numeric non-root USER"),
    ("Dockerfile", "HEALTHCHECK --interval", "# HEALTHCHECK --interval", "HEALTHCHECK"),
    ("Dockerfile", 'CMD ["durable", "start"]', "CMD durable start", 'CMD must be ["durable", "start"]'),
    ("Dockerfile", "EXPOSE 3030", "EXPOSE 8080", "EXPOSE 3030"),
    (
        "Dockerfile",
        "ENV DURABLE_HOST=0.0.0.0",
        "ENV DURABLE_ADMIN_TOKEN=s3cret DURABLE_HOST=0.0.0.0",
        "DURABLE_ADMIN_TOKEN: no secret",
    ),
    (
        "Dockerfile",
        "ENV DURABLE_HOST=0.0.0.0",
        "ENV DURABLE_INSECURE=1 DURABLE_HOST=0.0.0.0",
        "DURABLE_INSECURE",
    ),
    ("Dockerfile", "FROM node:20.20.2-bookworm-slim", "FROM node:latest", "pinned version"),
    ("Dockerfile", "RUN npm run build", "RUN true", "npm run build"),
    ("Dockerfile", "--no-deps", "", "pip wheel --no-deps"),
    ("Dockerfile", "COPY --from=wheel", "COPY --from=dashboard", "copy the wheel"),
    ("docker-compose.yml", "condition: service_healthy", "condition: service_started", "service_healthy"),
    (
        "docker-compose.yml",
        "DURABLE_HOST: 0.0.0.0",
        'DURABLE_HOST: 0.0.0.0\n      DURABLE_INSECURE: "1"',
        "DURABLE_INSECURE",
    ),
    (
        "docker-compose.yml",
        "${DURABLE_ADMIN_TOKEN:?set DURABLE_ADMIN_TOKEN in .env (at least 8 characters)}",
        "changeme-token",
        "DURABLE_ADMIN_TOKEN must be",
    ),
    (
        "docker-compose.yml",
        'command: ["durable", "worker"]',
        'command: ["durable", "start"]',
        "worker: command",
    ),
    (
        "docker-compose.yml",
        "    healthcheck:\n      test:\n        - CMD",
        "    x-healthcheck:\n      test:\n        - CMD",
        "worker: needs its own healthcheck",
    ),
    ("engine.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "engine: pod securityContext.runAsNonRoot"),
    ("engine.yaml", "path: /healthz", "path: /", "must GET /healthz"),
    (
        "engine.yaml",
        "key: DURABLE_ADMIN_TOKEN",
        "key: ADMIN_TOKEN",
        "DURABLE_ADMIN_TOKEN must come from the Secret",
    ),
    (
        "engine.yaml",
        'value: "durable-engine"',
        'value: "localhost"',
        "DURABLE_ALLOWED_HOSTS must name the Service",
    ),
    ("worker.yaml", "exec:", "tcpSocket:\n              port: 3030\n            x:", "exec (process) check"),
    ("secret.yaml", "CHANGE-ME-to-a-long-random-token", "f3a9c2e1d0b4", "CHANGE-ME placeholder"),
]


def _check(name: str, text: str) -> list[str]:
    if name == "Dockerfile":
        return dockerfile_problems(text)
    if name == "docker-compose.yml":
        return compose_problems(text)
    texts = {p.name: p.read_text(encoding="utf-8") for p in manifests()}
    texts[name] = text
    try:
        resources = all_resources(texts)
    except yaml.YAMLError as exc:
        return [f"{name}: {exc}"]
    return k8s_problems(resources)


def _source(name: str) -> Path:
    return {"Dockerfile": DOCKERFILE, "docker-compose.yml": COMPOSE}.get(name, K8S / name)


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"), MUTATIONS, ids=[f"{m[0]}:{m[3]}" for m in MUTATIONS]
)
def test_structural_check_fails_on_broken_copy(name: str, old: str, new: str, expected: str) -> None:
    text = _source(name).read_text(encoding="utf-8")
    assert old in text, f"the mutation anchor {old!r} is gone from {name}: update MUTATIONS"
    assert _check(name, text) == []
    problems = _check(name, text.replace(old, new, 1))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    restart: unless-stopped\n", "    restart: unless-stopped   \n", "trailing spaces"),
        ("    restart: unless-stopped\n", "    restart: unless-stopped\n     image: x\n", "syntax error"),
        ("---\n", "", "missing document start"),
        ("  postgres:\n", "  postgres:\n    restart: always\n", "duplication of key"),
        ("      retries: 12\n", "      retries: 012\n", "forbidden implicit octal"),
        ("pgdata: {}", "pgdata:", "empty value"),
    ],
)
def test_yamllint_fails_on_broken_copy(old: str, new: str, expected: str) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert old in text
    problems = yamllint_problems(text.replace(old, new, 1), COMPOSE)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("readinessProbe:", "readinesProbe:", "'readinesProbe' was unexpected"),
        ("containerPort: 3030", 'containerPort: "3030"', "is not of type 'integer'"),
        ("apiVersion: apps/v1", "apiVersion: apps/v2", "Couldn't find schema"),
    ],
)
def test_kubernetes_validate_fails_on_broken_copy(old: str, new: str, expected: str) -> None:
    text = (K8S / "engine.yaml").read_text(encoding="utf-8")
    assert old in text
    problems = schema_problems(documents(text.replace(old, new, 1)))
    assert any(expected in p for p in problems), problems
