"""Driving load with wrk (Debian's package) and reading its JSON summary (see load.lua).

wrk is a closed loop: each connection sends its next request when the previous answer came
back, so a slower target also gets fewer requests (coordinated omission). Figures are per
connection count, not at a fixed arrival rate; both targets see the same loop.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent / "load.lua"
_MARK = "BENCH_JSON "


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no summary."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    summary: dict[str, Any]
    cpu_s: float  # wrk's own user+system CPU, to show whether the load generator was bound
    wall_s: float


def version() -> str:
    exe = shutil.which("wrk")
    if exe is None:
        return "not installed"
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).splitlines()[0].strip() if out.stdout + out.stderr else "?"


def run(
    url: str,
    *,
    connections: int,
    seconds: float,
    threads: int,
    ids: str,
    seed: int,
    polite: bool = False,
    n_ids: int = 10_000,
    zipf_s: float = 1.1,
) -> WrkResult:
    exe = shutil.which("wrk")
    if exe is None:
        raise WrkError("wrk not on PATH (make bench installs it: apt-get install -y wrk)")
    argv = [
        exe,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds
        # Four times both targets' 500 ms deadline and above the 1 s slow calls: an answer
        # this late is one no user waits for, so it counts as a timeout, not as a latency.
        "--timeout",
        "2s",
        "-s",
        str(LUA),
        url,
        "--",
        ids,
        str(n_ids),
        str(zipf_s),
        str(seed),
        "polite" if polite else "eager",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for line in out.stdout.splitlines():
        if line.startswith(_MARK):
            summary: dict[str, Any] = json.loads(line[len(_MARK) :])
            return WrkResult(summary, cpu, summary["duration_us"] / 1e6)
    raise WrkError(f"wrk exited {out.returncode} with no summary:\n{out.stdout}\n{out.stderr}")
