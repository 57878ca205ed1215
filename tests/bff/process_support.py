"""Processes as users start them (`python -m bff`, `python -m mock_services`), for slow tests.

`running(args, env)` starts one with stdout and stderr merged into a line reader and always
stops it: SIGTERM, then SIGKILL if it has not exited within `TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 15.0  # bound on every step; a healthy start takes about a second
_INHERITED_NOISE = ("BFF_", "OTEL_", "PROMETHEUS_")


def clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The developer's environment without any BFF_*, OTEL_* or PROMETHEUS_* variable, plus
    `env`: a process under test sees only what its test sets. The admin port defaults to any
    free one (9090 would collide between tests running at once)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_NOISE)}
    return {**base, "BFF_ADMIN_PORT": "0", **(env or {})}


class Lines:
    """The process's output lines, kept, and awaited one pattern at a time."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.seen: list[str] = []
        self._stream = stream
        self._cursor = 0

    async def next_matching(self, text: str) -> str:
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                while self._cursor < len(self.seen):
                    line = self.seen[self._cursor]
                    self._cursor += 1
                    if text in line:
                        return line
                raw = await self._stream.readline()
                if not raw:
                    raise AssertionError(f"exited before printing {text!r}: {self.seen}")
                self.seen.append(raw.decode(errors="replace").rstrip("\n"))

    async def drain(self) -> None:
        """Read what is left once the process has exited."""
        async for raw in self._stream:
            self.seen.append(raw.decode(errors="replace").rstrip("\n"))


def url_in(line: str) -> str:
    match = re.search(r"http://\S+", line)
    assert match, line
    return match[0]


@contextlib.asynccontextmanager
async def running(
    args: list[str], env: dict[str, str]
) -> AsyncIterator[tuple[asyncio.subprocess.Process, Lines]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        env=clean_env(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines = Lines(proc.stdout)
    try:
        yield proc, lines
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await lines.drain()
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
