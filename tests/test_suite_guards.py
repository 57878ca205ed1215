"""The suite itself: no test can hang it, and a stuck test is named in the run's summary."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUCK = """
import asyncio
import time


async def test_stuck_on_the_loop():
    await asyncio.sleep(600)


def test_stuck_in_a_call():
    time.sleep(600)


def test_quick():
    pass
"""


def test_every_test_runs_under_a_timeout(pytestconfig: pytest.Config) -> None:
    """The default, for every test that does not set its own: the signal method fails the one
    test and lets the run go on (the thread method would end the whole run)."""
    assert 0 < float(pytestconfig.getini("timeout")) <= 120
    assert pytestconfig.getini("timeout_method") == "signal"


@pytest.mark.slow
def test_a_stuck_test_fails_by_name_and_the_run_goes_on(tmp_path: Path) -> None:
    """With the project's configuration, only the timeout shortened to 1 s."""
    (tmp_path / "test_stuck.py").write_text(STUCK)
    started = time.monotonic()
    config = ["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), "-o", "timeout=1"]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", *config, "-p", "no:cacheprovider", "-q", "test_stuck.py"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert time.monotonic() - started < 30
    summary = out.stdout.splitlines()
    for name in ("test_stuck_on_the_loop", "test_stuck_in_a_call"):
        assert any(line.startswith("FAILED") and name in line for line in summary), out.stdout
    assert "Timeout (>1.0s) from pytest-timeout" in out.stdout
    assert "2 failed, 1 passed" in out.stdout
