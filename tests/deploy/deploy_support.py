"""Shared by the deploy tests: the repository's deploy/ files and the tools that check them.

A tool (kubectl, promtool, nginx, redis-server) that is missing skips its test on a
developer's machine, but fails it in CI (CI=true), which installs them (.ci/run): a check that
silently stops running is worse than one that fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def require_tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if not found:
        unavailable(f"{name} is not installed")
    return found


def unavailable(why: str) -> NoReturn:
    """Skip here; fail in CI, which must run every check."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{why}, and CI must run this check (install it in .ci/run)")
    pytest.skip(f"{why} (CI installs it: see .ci/run)")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all_yaml(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]
