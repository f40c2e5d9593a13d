"""Only wires in the build hook: everything else about the package is in pyproject.toml."""

import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_hooks.dashboard import BuildPy  # noqa: E402  (needs the checkout on sys.path first)

setup(cmdclass={"build_py": BuildPy})
