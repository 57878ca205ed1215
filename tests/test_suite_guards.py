"""The suite itself: no test can hang it, and a stuck test is named in the run's summary; the
launcher of the slow tests (`process_support`) never waits without a bound, and leaves
nothing running."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_support import TIMEOUT_S, exited, group_alive, group_gone, running

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


# A program whose child outlives it, holding its output open: what a worker orphaned by its
# supervisor does. A reader waiting for the end of that output would wait for the child.
ORPHANING = """
import subprocess, sys
child = "import sys, time; print('orphan', flush=True); print(file=sys.stderr); time.sleep(600)"
orphan = subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.PIPE)
orphan.stderr.readline()  # it has printed
print("parent done", flush=True)
"""


async def test_an_orphan_holding_the_output_neither_hangs_nor_outlives_the_test() -> None:
    async with asyncio.timeout(3 * TIMEOUT_S):
        async with running(["-c", ORPHANING]) as (proc, lines):
            await lines.next_matching("parent done")
            assert await exited(proc, TIMEOUT_S) == 0
            assert group_alive(proc.pid), "the orphan is still there, holding the output"
        assert "orphan" in lines.seen
    # Killed with its group (reaped by init, not us: allow for that).
    assert await group_gone(proc.pid, TIMEOUT_S), "the orphan outlived the test"


async def test_a_line_that_never_comes_is_a_timeout_not_a_hang() -> None:
    async with running(["-c", "import time; time.sleep(600)"]) as (_, lines):
        with pytest.raises(TimeoutError):
            await lines.next_matching("never printed", timeout_s=0.2)


async def test_a_process_that_exits_first_is_reported_with_its_output() -> None:
    async with running(["-c", "print('bye')"]) as (_, lines):
        with pytest.raises(AssertionError, match=r"exited before printing 'listening'.*bye"):
            await lines.next_matching("listening")
