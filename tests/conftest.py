"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest

# Comma-separated binaries that must be present (CI sets it, see .ci/run): a test that needs one
# of them fails instead of skipping, so a broken install can never pass as "all green".
REQUIRE_VAR = "BFF_TEST_REQUIRE"
# Daemons that Debian installs outside an unprivileged user's PATH.
_SBIN = ("/usr/sbin", "/sbin")


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found is None:
        found = next((f"{d}/{name}" for d in _SBIN if os.access(f"{d}/{name}", os.X_OK)), None)
    return found


def required_binaries() -> frozenset[str]:
    return frozenset(n.strip() for n in os.environ.get(REQUIRE_VAR, "").split(",") if n.strip())


@pytest.fixture(scope="session")
def binary() -> Callable[[str], str]:
    """`binary("redis-server")`: its path; else a skip, or a failure when required."""

    def find(name: str) -> str:
        path = find_binary(name)
        if path is not None:
            return path
        if name in required_binaries():
            pytest.fail(f"{name} is not installed, and {REQUIRE_VAR} requires it")
        pytest.skip(f"{name} is not installed here (CI installs it: see .ci/run)")

    return find
