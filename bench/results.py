"""What one target did in one scenario: the figures every report and verdict reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.config import Kind, Target


@dataclass(slots=True)
class RunResult:
    scenario: str
    target: Target
    connections: int
    duration_s: float
    requests: int
    rps: float
    latency_ms: dict[str, float]  # every answer, refusals included: p50, p90, p99, p999, max
    non_2xx: int
    socket_errors: dict[str, int]  # connect, read, write, timeout (wrk's --timeout 2s)
    statuses: dict[str, int]
    degraded: int  # 200s that lack an optional part
    cpu_ms_per_req: float
    cpu_cores: float  # the target's average CPU use over the window, in cores
    peak_rss_mib: list[float]  # one per worker process
    mock_cpu_ms_per_req: float
    wrk_cpu_pct: float  # of one core
    other_cpu_cores: float
    kind: Kind = "closed"
    workers: int = 1
    trace_exports: int | None = None
    # Client-side latency per answer kind: 200s, and refusals (503, 429); {n, p50, p99, max}.
    ok_ms: dict[str, float] = field(default_factory=dict)
    refused_ms: dict[str, float] = field(default_factory=dict)
    no_retry_after: int = 0  # refusals without Retry-After
    # Calls the reviews mock received per request answered (1.0: no retry, no hedge).
    reviews_calls_per_answer: float = 0.0
    # Hedges ours sent in the window (its /metrics on the admin port); None for the baseline.
    hedges: int | None = None
    # herd: the product mock's calls during the herd (all workers together).
    product_calls: int | None = None
    # flood: the polite client's answers: {n, ok, share, p50, p99, max} and its statuses.
    polite: dict[str, float] = field(default_factory=dict)
    polite_statuses: dict[str, int] = field(default_factory=dict)
    # stream: first_p50, first_p99, last_p50, last_p99, product_p50 (Server-Timing),
    # product_latency (the mock's), incomplete.
    stream: dict[str, float] = field(default_factory=dict)
    # BENCH_PROFILE=1: the top functions by own time ({function, samples, share}) and where
    # the profile files went.
    profile: list[dict[str, Any]] = field(default_factory=list)
    profile_files: list[str] = field(default_factory=list)
    order: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def socket_error_total(self) -> int:
        return sum(self.socket_errors.values())

    @property
    def goodput(self) -> float:
        """200s per second."""
        return self.statuses.get("200", 0) / self.duration_s if self.duration_s else 0.0

    @property
    def refusals(self) -> int:
        return self.statuses.get("503", 0) + self.statuses.get("429", 0)


def as_json(results: list[RunResult]) -> list[dict[str, Any]]:
    return [{**asdict(r), "goodput": r.goodput} for r in results]
