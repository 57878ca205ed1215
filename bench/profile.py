"""py-spy profiles of a target during the measured window (`BENCH_PROFILE=1`).

Two recorders per target, started with the window and lasting as long: a speedscope file to
look at (speedscope.app opens it offline too) and py-spy's raw collapsed stacks to grep, one
stack per line under its process and thread (`--threads`), where the report's "top functions
by own time" come from. `--subprocesses` on a supervisor takes in every worker. py-spy pauses
a process for each sample: a profiled window's figures are not comparable with an unprofiled
one's (the report says so).

Threads that py-spy sees running are counted, whatever they do: a worker's helper thread that
is woken for every request shows up with `Condition.wait` as its own time, and that is CPU it
spends (measured: a thread blocked on a queue leaks into 2-3 % of samples, not more).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RATE_HZ = 200
TOP = 15
# Two recorders attaching to one process in the same instant: one of them found no Python in
# it now and then (seen on the baseline); a short stagger avoids the race.
STAGGER_S = 0.3
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True, slots=True)
class Recording:
    recorders: tuple[subprocess.Popen[bytes], ...]
    speedscope: Path
    raw: Path
    log: Path


def executable() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, out_dir: Path, name: str, children: bool) -> Recording | None:
    """Both recorders on `pid` (and its children: `children`) for `seconds`; None without
    py-spy."""
    exe = executable()
    if exe is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    speedscope, raw = out_dir / f"{name}.json", out_dir / f"{name}.txt"
    log = out_dir / f"{name}.py-spy.log"
    common = [exe, "record", "--pid", str(pid), "--rate", str(RATE_HZ)]
    common += ["--duration", str(max(1, round(seconds)))]
    common += ["--subprocesses"] if children else []
    recorders: list[subprocess.Popen[bytes]] = []
    with log.open("wb") as out:
        for fmt, path, extra in (("speedscope", speedscope, []), ("raw", raw, ["--threads"])):
            if recorders:
                time.sleep(STAGGER_S)
            recorders.append(
                subprocess.Popen(
                    [*common, *extra, "--format", fmt, "-o", str(path)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    return Recording(tuple(recorders), speedscope, raw, log)


def finish(recording: Recording, timeout_s: float = 30.0) -> list[dict[str, object]]:
    """Wait for both recorders; the top functions by own time, or [] if nothing came out."""
    for recorder in recording.recorders:
        try:
            recorder.wait(timeout_s)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()
    if not recording.raw.exists():
        return []
    return top_functions(recording.raw.read_text(errors="replace"))


def top_functions(raw: str, top: int = TOP) -> list[dict[str, object]]:
    """Own time per function from py-spy's collapsed stacks (`a;b;leaf count` per line): the
    leaf frame of each stack is where its samples were spent. Lines of one function are
    added up; the process and thread frames py-spy puts first are not functions, and a stack
    with nothing but those is counted in the total only."""
    own: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        leaf = stack.rsplit(";", 1)[-1]
        match = _FRAME.match(leaf)
        if match is None or leaf.startswith(("process ", "thread (")):
            continue
        own[f"{match['func']} ({match['file']})"] += int(count)
    return [
        {"function": name, "samples": n, "share": n / total}
        for name, n in own.most_common(top)
        if total
    ]
