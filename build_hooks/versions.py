"""One version for the engine and the three SDKs: the one in ``VERSION`` at the root of the checkout.

Each ecosystem wants the version written in its own manifest (and the SDKs report it at run time), so
the number is stated in several files; this module lists every one of them, checks them against
``VERSION`` (``tests/e2e/test_packages.py`` fails on any drift) and rewrites them all at once:

    python -m build_hooks.versions            # check: prints each place, exits 1 on a mismatch
    python -m build_hooks.versions 0.2.0      # set: writes VERSION and every place below (make version V=…)

The engine's ``pyproject.toml`` reads ``VERSION`` itself (setuptools ``dynamic``), and the Python SDK's
reads ``durable_sdk.__version__``, so neither manifest states a number.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION_FILE = ROOT / "VERSION"
SEMVER = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?")


@dataclass(frozen=True)
class Place:
    """A file that states the version, and the pattern whose one group is that version."""

    path: str
    pattern: str

    def read(self, root: Path = ROOT) -> str | None:
        match = re.search(self.pattern, (root / self.path).read_text(), re.MULTILINE)
        return match.group(1) if match else None

    def write(self, version: str, root: Path = ROOT) -> None:
        file = root / self.path
        text = file.read_text()
        new, count = re.subn(
            self.pattern, lambda m: _replace_group(m, version), text, count=1, flags=re.MULTILINE
        )
        if count != 1:
            raise SystemExit(f"versions: found no version in {self.path} (pattern {self.pattern!r})")
        file.write_text(new)


def _replace_group(match: re.Match[str], version: str) -> str:
    start, end = match.span(1)
    whole = match.group(0)
    offset = match.start(0)
    return whole[: start - offset] + version + whole[end - offset :]


PLACES = (
    Place("src/durable/__init__.py", r'^__version__ = "([^"]+)"'),
    Place("sdks/python/durable_sdk/__init__.py", r'^__version__ = "([^"]+)"'),
    Place("sdks/typescript/package.json", r'^  "version": "([^"]+)"'),
    Place("sdks/typescript/package-lock.json", r'^  "version": "([^"]+)"'),
    Place(
        "sdks/typescript/package-lock.json",
        r'^    "": \{\n      "name": "@durable/sdk",\n      "version": "([^"]+)"',
    ),
    Place("sdks/typescript/src/index.ts", r'^export const version = "([^"]+)";'),
    Place("sdks/php/composer.json", r'^    "version": "([^"]+)"'),
    Place("docker-compose.yml", r"^  image: durable-engine:(\S+)$"),
    Place("deploy/kubernetes/engine.yaml", r"^          image: durable-engine:(\S+)$"),
    Place("deploy/kubernetes/worker.yaml", r"^          image: durable-engine:(\S+)$"),
)


def source(root: Path = ROOT) -> str:
    """The version in ``VERSION``: one line, semantic-versioning shaped."""
    text = (root / "VERSION").read_text().strip()
    if not SEMVER.fullmatch(text):
        raise SystemExit(f"versions: VERSION holds {text!r}, not a version such as 1.2.3")
    return text


def mismatches(root: Path = ROOT) -> list[str]:
    """One line per place whose version differs from ``VERSION`` (empty when all agree)."""
    want = source(root)
    return [
        f"{place.path}: {found!r}, VERSION says {want!r}"
        for place in PLACES
        if (found := place.read(root)) != want
    ]


def set_version(version: str, root: Path = ROOT) -> None:
    if not SEMVER.fullmatch(version):
        raise SystemExit(f"versions: {version!r} is not a version such as 1.2.3")
    for place in PLACES:
        place.write(version, root)
    (root / "VERSION").write_text(version + "\n")
    json.loads((root / "sdks/typescript/package.json").read_text())  # still valid JSON


def main(argv: list[str]) -> int:
    if argv:
        set_version(argv[0])
        print(f"versions: {len(PLACES)} places and VERSION now say {argv[0]}")
        return 0
    bad = mismatches()
    for line in bad:
        print(f"versions: {line}", file=sys.stderr)
    if not bad:
        print(f"versions: VERSION and {len(PLACES)} places say {source()}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
