"""The launcher of the slow tests never waits without a bound, and leaves nothing running."""

from __future__ import annotations

import asyncio

import pytest
from process_support import TIMEOUT_S, exited, group_alive, group_gone, running

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
