"""What one benchmark run does: scenarios, durations, workers, tracing, where reports go.

Built in one place from flags and `BENCH_*` variables (`Config.from_env`), so a test can pass
a dict. Every duration is bounded: a full run stays under 10 minutes on the 2-core machine.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Distribution = Literal["uniform", "zipf"]
Target = Literal["ours", "baseline"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    connections: int
    latency_scale: float = 1.0
    # PUT /__faults body per service, applied before each target's run (seeded: same draws).
    faults: Mapping[str, Mapping[str, float | int]] = field(default_factory=dict)
    ids: Distribution = "uniform"
    # Extra environment of our BFF (e.g. BFF_CACHE=off), the baseline has no such settings.
    env: Mapping[str, str] = field(default_factory=dict)
    # PUT /__faults body per service, applied after the warm-up pass (a cache warmed first).
    faults_after_warmup: Mapping[str, Mapping[str, float | int]] = field(default_factory=dict)
    # Our BFF's workers in this scenario (None: the run's, BENCH_WORKERS).
    workers: int | None = None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("seed-64", "seed latencies 50/80/30 ms, 64 connections", 64),
    Scenario("seed-256", "seed latencies 50/80/30 ms, 256 connections", 256),
    Scenario("zero-64", "no simulated latency (max throughput), 64 connections", 64, 0.0),
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
        "faults-64",
        "seed latencies; reviews: 10% of calls 1 s slow; 64 connections",
        64,
        faults={"reviews": {"slow_rate": 0.1, "slow_ms": 1000, "seed": 42}},
    ),
    Scenario(
        "zipf-64", "seed latencies; ids from a Zipf distribution, 64 connections", 64, ids="zipf"
    ),
    Scenario(
        "overload",
        "seed latencies, 1024 connections: 4x the 256 that saturate ours; clients honour "
        "Retry-After (1-2 s, jittered)",
        1024,
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
# Targets of the load scenarios, in the report.
DEADLINE_MS = 500.0  # the BFF's default deadline (both targets run with their defaults)
OVERLOAD_SLACK_MS = 50.0
REFUSAL_MS = 5.0
GOODPUT_SHARE = 0.9  # of the peak: ours at seed-256 in the same run
FAULTS_P99_MS = 150.0
FAULTS_EXTRA_CALLS = 0.12


class ConfigError(ValueError):
    """A BENCH_* variable or flag has a value we cannot use."""


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

    @property
    def report_stem(self) -> str:
        suffix = "" if self.mode == "full" else f"-{self.mode}"
        return f"{self.stamp}{suffix}{'-tracing' if self.tracing else ''}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        smoke = env.get("BENCH_SMOKE_SECONDS", "").strip()
        if smoke:
            mode: Literal["full", "quick", "smoke"] = "smoke"
            measure, warmup = _positive(smoke, "BENCH_SMOKE_SECONDS"), 0.5
        elif _flag(env, "BENCH_QUICK"):
            mode, measure, warmup = "quick", 3.0, 1.0
        else:
            mode, measure, warmup = "full", 20.0, 4.0
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
        )


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
