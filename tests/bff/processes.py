"""Start `python -m mock_services` and `python -m bff` as users do, for end-to-end tests.

Output goes to files, not pipes (a worker process that outlives its parent would hold a pipe
open and hang the reader), and each process leads its own session so that teardown can kill
the whole group. Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import IO

from process_support import clean_env

_URL = re.compile(r"(product|reviews|inventory)\s+(http://\S+)")
_BFF = re.compile(r"bff listening on (http://\S+)")
_ADMIN = re.compile(r"bff admin on (http://\S+)")


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    urls: dict[str, str]
    out: IO[bytes]
    err: IO[bytes]

    def stdout(self) -> str:
        return _read(self.out)

    def stderr(self) -> str:
        return _read(self.err)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> tuple[int, str]:
        """Send `sig` to the process, wait, and return (exit code, its stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
            self.proc.wait(timeout=5)
        return self.proc.returncode, self.stderr()


def _read(f: IO[bytes]) -> str:
    with open(f.name, "rb") as again:
        return again.read().decode(errors="replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _wait_for(running: Running, pattern: re.Pattern[str], count: int) -> list[re.Match[str]]:
    deadline = time.monotonic() + 20
    while True:
        found = [m for m in map(pattern.search, running.stdout().splitlines()) if m]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline or running.proc.poll() is not None:
            raise RuntimeError(f"did not start: {running.stdout()!r} {running.stderr()!r}")
        time.sleep(0.05)


@contextmanager
def _started(cmd: list[str], env: Mapping[str, str]) -> Iterator[Running]:
    with (
        tempfile.NamedTemporaryFile(prefix="out-") as out,
        tempfile.NamedTemporaryFile(prefix="err-") as err,
    ):
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            yield Running(proc, {}, out, err)
        finally:
            _kill_group(proc)
            proc.wait(timeout=10)


@contextmanager
def running_mocks(*args: str) -> Iterator[Running]:
    cmd = [sys.executable, "-m", "mock_services", "--product-port", "0"]
    cmd += ["--reviews-port", "0", "--inventory-port", "0", "--lab-port", "0", *args]
    with _started(cmd, clean_env()) as running:
        running.urls = {m.group(1): m.group(2) for m in _wait_for(running, _URL, 3)}
        yield running


@contextmanager
def running_bff(mocks: Running, *args: str, env: Mapping[str, str] = {}) -> Iterator[Running]:
    full_env = {
        "BFF_PRODUCT_URL": mocks.urls["product"],
        "BFF_REVIEWS_URL": mocks.urls["reviews"],
        "BFF_INVENTORY_URL": mocks.urls["inventory"],
        "BFF_PORT": "0",
        "BFF_WORKERS": "1",
        **env,
    }
    with _started([sys.executable, "-m", "bff", *args], clean_env(full_env)) as running:
        (match,) = _wait_for(running, _BFF, 1)
        (admin,) = _wait_for(running, _ADMIN, 1)
        running.urls = {"bff": match.group(1), "admin": admin.group(1)}
        yield running
