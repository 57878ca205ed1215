"""What one benchmark run does: scenarios, durations, workers, targets, where reports go.

Built in one place from flags and `BENCH_*` variables (`Config.from_env`), so a test can pass
a dict. Every duration is bounded: a full run stays under 15 minutes on the 2-core machine
(`Config.estimate_s` says how long a configuration takes, and a test holds it to that).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# uniform over P00001..P10000, Zipf-distributed over them, or one id for every request.
Distribution = Literal["uniform", "zipf", "hot"]
# ours: this checkout; baseline: bench/baseline.py; before: another checkout (BENCH_BEFORE).
Target = Literal["ours", "baseline", "before"]
# closed: wrk, each connection asks again at once; herd, flood, stream: see bench/probes.py.
Kind = Literal["closed", "herd", "flood", "stream"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
EVERY_TARGET: tuple[Target, ...] = ("ours", "baseline", "before")
# Our BFF's builds only: the baseline has no such setting (logging, rate limiting, streaming).
BFF_BUILDS: tuple[Target, ...] = ("ours", "before")
QUIET = {"BFF_LOG_LEVEL": "WARNING"}


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    connections: int
    latency_scale: float = 1.0
    # PUT /__faults body per service, applied before each target's run (seeded: same draws).
    faults: Mapping[str, Mapping[str, float | int]] = field(default_factory=dict)
    ids: Distribution = "uniform"
    # Extra environment of our BFF's builds (e.g. BFF_CACHE=off); the baseline has none.
    env: Mapping[str, str] = field(default_factory=dict)
    # PUT /__faults body per service, applied after the warm-up pass (a cache warmed first).
    faults_after_warmup: Mapping[str, Mapping[str, float | int]] = field(default_factory=dict)
    # Our BFF's workers in this scenario (None: the run's, BENCH_WORKERS).
    workers: int | None = None
    kind: Kind = "closed"
    # Clients that honour Retry-After (wait 1-2 s after a 503). Off: wrk asks again at once
    # whatever the status says, as load balancers, retrying apps and load tests do.
    polite: bool = False
    targets: tuple[Target, ...] = EVERY_TARGET
    # With BENCH_PROFILE=1, py-spy records each target during the measured window.
    profiled: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("seed-64", "seed latencies 50/80/30 ms, 64 connections", 64, profiled=True),
    Scenario(
        "seed-64-quiet",
        "as seed-64 with BFF_LOG_LEVEL=WARNING (no access log)",
        64,
        env=QUIET,
        targets=BFF_BUILDS,
    ),
    Scenario("seed-256", "seed latencies, 256 connections, no client back-off", 256),
    Scenario("seed-1024", "seed latencies, 1,024 connections, no client back-off", 1024),
    Scenario(
        "overload",
        "seed latencies, 1,024 connections; clients honour Retry-After (1-2 s, jittered)",
        1024,
        polite=True,
    ),
    Scenario(
        "zero-64",
        "no simulated latency (max throughput), 64 connections",
        64,
        0.0,
        profiled=True,
    ),
    Scenario(
        "zero-64-quiet",
        "as zero-64 with BFF_LOG_LEVEL=WARNING (no access log)",
        64,
        0.0,
        env=QUIET,
        targets=BFF_BUILDS,
    ),
    # The baseline is one process. On a machine whose cores the targets share with wrk and the
    # mocks, every extra process costs CPU per request (fewer events per loop wake-up, more
    # switches): this pair compares like with like.
    Scenario(
        "zero-64-1w",
        "as zero-64 with ours on one worker, as many processes as the baseline",
        64,
        0.0,
        workers=1,
    ),
    Scenario(
        "hot-256", "seed latencies; one id for every request; 256 connections", 256, ids="hot"
    ),
    Scenario(
        "herd",
        "seed latencies; identical requests for one cold id, a fixed number at a time",
        250,
        kind="herd",
    ),
    Scenario(
        "flood",
        "seed latencies; BFF_RATE_LIMIT_RATE=50; 400 connections from 127.0.0.1 and a polite "
        "client on 127.0.0.2 asking every 100 ms",
        400,
        kind="flood",
        env={"BFF_RATE_LIMIT_RATE": "50"},
        targets=BFF_BUILDS,
    ),
    Scenario(
        "stream-ttfb",
        "seed latencies, reviews at 400 ms; Accept: application/x-ndjson, distinct ids",
        16,
        kind="stream",
        faults={"reviews": {"latency_ms": 400}},
        # Reviews' own per-attempt timeout (300 ms by default) would cut them before they land.
        env={"BFF_REVIEWS_TIMEOUT_MS": "480"},
        targets=("ours",),
    ),
    Scenario(
        "faults-64",
        "seed latencies; reviews: 10% of calls 1 s slow; 64 connections",
        64,
        faults={"reviews": {"slow_rate": 0.1, "slow_ms": 1000, "seed": 42}},
    ),
    Scenario(
        "zipf-64", "seed latencies; ids from a Zipf distribution, 64 connections", 64, ids="zipf"
    ),
    # Uniform ids are nearly all misses: the pair shows what the cache costs when it cannot help.
    Scenario("seed-nocache-64", "as seed-64 with BFF_CACHE=off", 64, env={"BFF_CACHE": "off"}),
    # The same load with the part cache off: the pair shows what the cache saves.
    Scenario(
        "zipf-nocache-64",
        "as zipf-64 with BFF_CACHE=off",
        64,
        ids="zipf",
        env={"BFF_CACHE": "off"},
    ),
    # Every reviews call fails once the warm-up pass has filled the cache: answers should be
    # complete or stale (reviews' default stale-if-error is 600 s), never degraded.
    Scenario(
        "reviews-down-64",
        "seed latencies; Zipf ids; reviews 100% errors after the warm-up; 64 connections",
        64,
        ids="zipf",
        faults_after_warmup={"reviews": {"error_rate": 1.0}},
    ),
)
# The closed-loop concurrencies at seed latencies: the plot's x axis, and "ours at its best".
CONCURRENCY_LADDER = ("seed-64", "seed-256", "seed-1024")

# Start, readiness and stop of one target, and its share of the mocks' start: 1-3 s a target
# in smoke runs on the shared 2-core machine (3 s with 1,024 connections to close). A herd or
# a stream's requests take a few seconds more.
TARGET_OVERHEAD_S = 3.0
PROBE_S = 5.0


class ConfigError(ValueError):
    """A BENCH_* variable or flag has a value we cannot use."""


@dataclass(frozen=True, slots=True)
class Probes:
    """Request counts of the scenarios that are not wrk's (bench/probes.py)."""

    herd_requests: int = 500
    herd_at_once: int = 250
    stream_requests: int = 200
    stream_at_once: int = 16
    polite_every_s: float = 0.1


@dataclass(frozen=True, slots=True)
class Config:
    scenarios: tuple[Scenario, ...]
    warmup_s: float
    measure_s: float
    workers: int
    tracing: bool
    mode: Literal["full", "quick", "smoke"]
    out_dir: Path
    wrk_threads: int = 1
    # Extra environment of our BFF in every scenario (BENCH_BFF_ENV="BFF_CACHE=off,..."),
    # over each scenario's own.
    bff_env: Mapping[str, str] = field(default_factory=dict)
    stamp: str = field(default_factory=lambda: dt.date.today().isoformat())
    # Another checkout of the BFF (with its own .venv) measured as a third target.
    before: Path | None = None
    profile: bool = False
    probes: Probes = field(default_factory=Probes)

    @property
    def report_stem(self) -> str:
        suffix = "" if self.mode == "full" else f"-{self.mode}"
        return f"{self.stamp}{suffix}{'-tracing' if self.tracing else ''}"

    def targets_of(self, scenario: Scenario) -> tuple[Target, ...]:
        return tuple(t for t in scenario.targets if t != "before" or self.before is not None)

    def estimate_s(self) -> float:
        """How long the run takes: every target's warm-up, window and overhead."""
        total = 0.0
        for scenario in self.scenarios:
            each = self.warmup_s + self.measure_s if scenario.kind in ("closed", "flood") else 0
            total += len(self.targets_of(scenario)) * (each + TARGET_OVERHEAD_S)
            total += PROBE_S if scenario.kind in ("herd", "stream") else 0
        return total

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        smoke = env.get("BENCH_SMOKE_SECONDS", "").strip()
        if smoke:
            mode: Literal["full", "quick", "smoke"] = "smoke"
            measure, warmup = _positive(smoke, "BENCH_SMOKE_SECONDS"), 0.5
            probes = Probes(herd_requests=40, herd_at_once=20, stream_requests=16, stream_at_once=8)
        elif _flag(env, "BENCH_QUICK"):
            mode, measure, warmup = "quick", 3.0, 1.0
            probes = Probes(stream_requests=64)
        else:
            mode, measure, warmup = "full", 12.0, 3.0
            probes = Probes()
        names = [n.strip() for n in env.get("BENCH_SCENARIOS", "").split(",") if n.strip()]
        known = {s.name: s for s in SCENARIOS}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"BENCH_SCENARIOS: unknown {unknown}; known: {sorted(known)}")
        workers = env.get("BENCH_WORKERS", "").strip()
        return cls(
            scenarios=tuple(known[n] for n in names) if names else SCENARIOS,
            warmup_s=warmup,
            measure_s=measure,
            workers=int(_positive(workers, "BENCH_WORKERS")) if workers else os.cpu_count() or 1,
            tracing=_flag(env, "BENCH_TRACING"),
            mode=mode,
            out_dir=Path(env.get("BENCH_OUT", "").strip() or RESULTS_DIR),
            wrk_threads=int(_positive(env.get("BENCH_WRK_THREADS", "1"), "BENCH_WRK_THREADS")),
            bff_env=_bff_env(env.get("BENCH_BFF_ENV", "")),
            before=_checkout(env.get("BENCH_BEFORE", "").strip()),
            profile=_flag(env, "BENCH_PROFILE"),
            probes=probes,
        )


def _checkout(raw: str) -> Path | None:
    """BENCH_BEFORE: a checkout of the BFF that runs `python -m bff` with its own venv."""
    if not raw:
        return None
    path = Path(raw).expanduser().resolve()
    for needed in (".venv/bin/python", "bff/__main__.py"):
        if not (path / needed).exists():
            raise ConfigError(f"BENCH_BEFORE={raw!r}: no {needed} there (a checkout with a venv)")
    return path


def _bff_env(raw: str) -> dict[str, str]:
    """`BFF_X=1,OTEL_Y=z`: settings of our BFF only (the baseline has none): its own and the
    OpenTelemetry SDK's (e.g. a sampling ratio with BENCH_TRACING=1)."""
    out: dict[str, str] = {}
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        ours = name.startswith(("BFF_", "OTEL_"))
        if not sep or not ours or not name.replace("_", "").isalnum():
            raise ConfigError(f"BENCH_BFF_ENV: {item!r} is not BFF_NAME=value or OTEL_NAME=value")
        out[name] = value
    return out


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _positive(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: not a number") from None
    if not 0 < value < 3600:
        raise ConfigError(f"{name}={raw!r}: must be > 0 and < 3600")
    return value
