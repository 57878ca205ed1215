"""Processes as users start them (`python -m bff`, `python -m mock_services`, `python -m
storefront`): the one launcher of the slow tests, in every folder of the suite.

`running(args, env)` starts one in a session of its own, so that its workers are in its
process group, with stdout and stderr merged into a file. Not a pipe: a worker that outlives
its supervisor keeps a pipe open, and a reader waiting for the end of it waited until an outer
limit of 900 s. Every wait here is bounded: a line is polled for in the file for at most
`TIMEOUT_S`; at the end the process gets SIGTERM, `TIMEOUT_S` to exit, then the whole group
gets SIGKILL. A program that is expected to end by itself (a refusal, `--help`) is
`run_to_exit`, under the same bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 15.0  # bound on every step; a healthy start takes about a second
_POLL_S = 0.02
# What a Python process needs to run: the interpreter's search path and the locale. Nothing
# else of the developer's shell (BFF_*, OTEL_*, PROMETHEUS_*, proxies...) may change what the
# process under test does.
_KEPT = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "VIRTUAL_ENV"})
_ANNOUNCEMENT = re.compile(r"^(\w+)\s+(http://\S+)")

Process = subprocess.Popen[bytes]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment to run Python in, plus what the test sets (`extra`).

    The admin port defaults to any free one: 9090 would collide between tests running at once.
    """
    base = {k: v for k, v in os.environ.items() if k in _KEPT or k.startswith("PYTHON")}
    return {**base, "BFF_ADMIN_PORT": "0", **(extra or {})}


class Lines:
    """The process's output lines, kept, and awaited one pattern at a time."""

    def __init__(self, proc: Process, out: IO[bytes]) -> None:
        self.seen: list[str] = []
        self._proc = proc
        self._out = out
        self._partial = b""
        self._cursor = 0

    async def next_matching(self, text: str, timeout_s: float = TIMEOUT_S) -> str:
        """The next line containing `text`; AssertionError if the process exits first, or
        TimeoutError after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while True:
                exited = self._proc.poll() is not None  # before reading: nothing comes after
                self.read()
                while self._cursor < len(self.seen):
                    line = self.seen[self._cursor]
                    self._cursor += 1
                    if text in line:
                        return line
                if exited:
                    raise AssertionError(f"exited before printing {text!r}: {self.seen}")
                await asyncio.sleep(_POLL_S)

    def read(self) -> str:
        """Take in what the process wrote since the last read; returns all of it so far."""
        self._partial += self._out.read()
        *complete, self._partial = self._partial.split(b"\n")
        self.seen += [raw.decode(errors="replace") for raw in complete]
        return "\n".join(self.seen)

    def rest(self) -> None:
        """Once the process has exited: its last line too, even without a newline."""
        self.read()
        if self._partial:
            self.seen.append(self._partial.decode(errors="replace"))
            self._partial = b""


def url_in(line: str) -> str:
    match = re.search(r"http://\S+", line)
    assert match, line
    return match[0]


async def announced_mocks(
    lines: Lines, names: tuple[str, ...] = ("product", "reviews", "inventory")
) -> dict[str, str]:
    """`python -m mock_services`' announcements (`product http://...`), in the order printed:
    {"product": "http://...", ...} once every one of `names` has been announced."""
    urls: dict[str, str] = {}
    while not set(names) <= urls.keys():
        match = _ANNOUNCEMENT.match(await lines.next_matching("http://"))
        if match and match[1] in names:
            urls[match[1]] = match[2]
    return urls


def worker_pids(supervisor: int) -> set[int]:
    """The supervisor's worker processes (multiprocessing's spawned children)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    pids = set()
    for pid in map(int, children):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            pids.add(pid)
    return pids


def group_alive(pgid: int) -> bool:
    """A process of the group `pgid` (a launched process and its workers) still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def kill_group(proc: Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


async def exited(proc: Process, within_s: float) -> int | None:
    """The exit status once `proc` has exited, None if it is still running after
    `within_s`."""
    deadline = time.monotonic() + within_s
    while proc.poll() is None:
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(_POLL_S)
    return proc.returncode


async def group_gone(pgid: int, within_s: float) -> bool:
    """True once no process of the group `pgid` is left, False if one still is after
    `within_s`."""
    deadline = time.monotonic() + within_s
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(_POLL_S)
    return True


async def stop(proc: Process, sig: int = signal.SIGTERM, within_s: float = TIMEOUT_S) -> int:
    """Send `sig`, wait up to `within_s` for the exit status; past it the whole group is
    killed and the test fails."""
    if proc.poll() is None:
        proc.send_signal(sig)
    code = await exited(proc, within_s)
    if code is None:
        kill_group(proc)
        await exited(proc, TIMEOUT_S)
        raise AssertionError(f"still running {within_s} s after signal {sig}")
    return code


def _spawn(args: list[str], env: Mapping[str, str] | None, out: IO[bytes]) -> Process:
    """Returns once the child exists (a fork and an exec: milliseconds), never waits for it."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers share its group: one kill reaches them all
    )


def run_to_exit(
    args: list[str], env: Mapping[str, str] | None = None, timeout_s: float = 2 * TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """`python <args>` run to its end (a refusal, `--help`, `--print-config`), stdout and
    stderr apart; `subprocess.TimeoutExpired` (the child killed) past `timeout_s`."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def _output_file() -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """A temporary file: (the process's end, ours to read it back)."""
    with tempfile.NamedTemporaryFile(prefix="process-out-") as out, open(out.name, "rb") as back:
        yield out, back


@contextlib.asynccontextmanager
async def running(
    args: list[str], env: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[Process, Lines]]:
    """`python <args>` in a session of its own, output in a file; stopped at the end
    (SIGTERM, then SIGKILL to the group), whatever happened."""
    with _output_file() as (out, back):
        proc = _spawn(args, env, out)
        lines = Lines(proc, back)
        try:
            yield proc, lines
        finally:
            try:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    if await exited(proc, TIMEOUT_S) is None:
                        kill_group(proc)
                        await exited(proc, TIMEOUT_S)
            finally:
                kill_group(proc)  # a worker that outlived its supervisor
                lines.rest()
