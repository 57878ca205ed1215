"""Processes under test: start them as a user would, wait until they serve, read their costs.

Each process gets its own session (process group) and writes stdout/stderr to files in the
run's log directory, so a chatty process can never block on a full pipe and a failure leaves
its output behind. Costs come from the kernel's accounting: utime+stime in /proc/<pid>/stat
(all descendants: supervisor, workers, multiprocessing's resource tracker) and VmHWM (peak
RSS) in /proc/<pid>/status. No psutil: /proc is all Linux needs, and one dependency fewer.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
_URL = re.compile(r"http://[\w.\[\]:-]+")


class ProcessFailed(RuntimeError):
    """A process under test did not start, or died; carries the tail of its output."""


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def fail(self, why: str) -> ProcessFailed:
        tail = "\n".join(self.output().splitlines()[-30:])
        return ProcessFailed(f"{self.name}: {why}\n--- last output ---\n{tail}")

    def wait_for_urls(self, count: int, timeout_s: float = 30.0) -> list[str]:
        """The first `count` http:// addresses the process announced (its bound ports), on
        lines of their own: a JSON log line (ours logs its configuration first, with the
        downstreams' URLs) is not an announcement."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lines = self.output().splitlines()
            urls = [u for line in lines if not line.startswith("{") for u in _URL.findall(line)]
            if len(urls) >= count:
                return urls[:count]
            if self.popen.poll() is not None:
                raise self.fail(f"exited with {self.popen.returncode} before announcing")
            time.sleep(0.05)
        raise self.fail(f"announced no address in {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM (a clean stop, as an operator would), then SIGKILL to the whole group."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait()
        # Children left behind by a crash (their group is the one we created) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        return self.popen.returncode


def start(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log_dir: Path,
    cwd: Path,
    python: str = sys.executable,
) -> Proc:
    """`python argv...` in `cwd`; `python` is another checkout's venv for the `before` target."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [python, *argv],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(name, popen, log)


def wait_ready(proc: Proc, url: str, consecutive: int, timeout_s: float = 30.0) -> None:
    """Poll `url` until it answers 200 `consecutive` times in a row (one per worker or so:
    SO_REUSEPORT spreads connections, so one 200 says only that one worker is up)."""
    deadline = time.monotonic() + timeout_s
    streak = 0
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise proc.fail(f"exited with {proc.popen.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                ok = resp.status == 200
        except (urllib.error.URLError, OSError):
            ok = False
        streak = streak + 1 if ok else 0
        if streak >= consecutive:
            return
        time.sleep(0.02 if ok else 0.1)
    raise proc.fail(f"{url} not ready in {timeout_s:.0f} s")


# -- accounting from /proc ---------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """`root` and every process below it, from the parent pids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime+stime of these processes (not of their reaped children), in seconds."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:  # fields[11], [12] are utime, stime (fields 14, 15 of stat)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM: the process's peak resident set since it started, in MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


def worker_pids(root: int) -> list[int]:
    """The processes that serve requests: the root when it has no spawned workers, else the
    multiprocessing children that run the server (not the resource tracker)."""
    tree = descendants(root)
    spawned = [p for p in tree[1:] if "multiprocessing.spawn" in cmdline(p)]
    return spawned or [root]


def machine_busy_seconds() -> float:
    """CPU seconds spent not idle by the whole machine (all cores), from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK
