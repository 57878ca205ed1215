"""One benchmark run: per scenario, fresh mocks, then ours and the baseline in turn.

    for each scenario:            mocks (one process per service) at the scenario's latency
        for target in (ours, baseline), alternating who goes first from one scenario to the next:
            faults re-applied (seeded) -> target started -> /readyz (admin port) -> wrk warm-up
            -> counters read -> wrk measurement -> counters read -> target stopped (SIGTERM)

Only the target under test is running while it is measured. CPU is the kernel's
utime+stime of the target's whole process tree over the measured window; "other" is what
the rest of the machine burnt in the same window (the shared machine's noise).
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import procs, wrk
from bench.config import Config, Scenario, Target

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("product", "reviews", "inventory")
Log = Callable[[str], None]


@dataclass(slots=True)
class RunResult:
    scenario: str
    target: Target
    connections: int
    duration_s: float
    requests: int
    rps: float
    latency_ms: dict[str, float]  # p50, p90, p99, p999, max, mean
    non_2xx: int
    socket_errors: dict[str, int]  # connect, read, write, timeout
    statuses: dict[str, int]
    degraded: int  # 200s that lack an optional part
    cpu_ms_per_req: float
    cpu_cores: float  # the target's average CPU use over the window, in cores
    peak_rss_mib: list[float]  # one per worker process
    mock_cpu_ms_per_req: float
    wrk_cpu_pct: float  # of one core
    other_cpu_cores: float
    trace_exports: int | None = None
    # Client-side latency per answer kind (load.lua): 2xx served, 503 refused; {n, p50, p99, max}.
    served_ms: dict[str, float] = field(default_factory=dict)
    refused_ms: dict[str, float] = field(default_factory=dict)
    # Calls the reviews mock received per request answered (1.0: no retry, no hedge).
    reviews_calls_per_answer: float = 0.0
    # Hedges ours sent in the window (its /metrics on the admin port); None for the baseline.
    hedges: int | None = None
    order: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def socket_error_total(self) -> int:
        return sum(self.socket_errors.values())


def _http(method: str, url: str, body: Mapping[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read() or b"null")


def _clean_env() -> dict[str, str]:
    """The harness's environment without settings that would change what is measured."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("BFF_", "OTEL_"))}


class Run:
    def __init__(self, config: Config, log: Log = print) -> None:
        self.config = config
        self.log = log
        self.log_dir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
        self.sink: procs.Proc | None = None
        self.sink_url: str | None = None
        self.results: list[RunResult] = []

    def execute(self) -> list[RunResult]:
        cfg = self.config
        self.log(
            f"bench: {cfg.mode} run, {len(cfg.scenarios)} scenarios x 2 targets, "
            f"{cfg.warmup_s:g}+{cfg.measure_s:g} s each, {cfg.workers} workers, "
            f"tracing {'on' if cfg.tracing else 'off'}; logs in {self.log_dir}"
        )
        try:
            if cfg.tracing:
                self.sink = procs.start(
                    "trace-sink", ["-m", "bench.trace_sink"], _clean_env(), self.log_dir, ROOT
                )
                self.sink_url = self.sink.wait_for_urls(1)[0]
            for index, scenario in enumerate(cfg.scenarios):
                self._scenario(index, scenario)
        finally:
            if self.sink is not None:
                self.sink.stop()
        return self.results

    def _scenario(self, index: int, scenario: Scenario) -> None:
        mocks = [
            procs.start(
                f"mocks-{service}-{scenario.name}",
                [
                    "-m",
                    "bench.quiet_mocks",
                    "--latency-scale",
                    str(scenario.latency_scale),
                    "--product-port",
                    "0",
                    "--reviews-port",
                    "0",
                    "--inventory-port",
                    "0",
                    "--lab-port",  # several mock processes at once: each lab on a free port
                    "0",
                ],
                _clean_env(),
                self.log_dir,
                ROOT,
            )
            for service in SERVICES
        ]
        try:
            # Each process runs all three services; we use one service from each, so the three
            # services do not share one event loop (real services would not either).
            urls = {
                service: proc.wait_for_urls(3)[i]
                for i, (service, proc) in enumerate(zip(SERVICES, mocks, strict=True))
            }
            targets: tuple[Target, Target] = ("ours", "baseline")
            order = targets if index % 2 == 0 else targets[::-1]
            for position, target in enumerate(order):
                result = self._measure(scenario, target, urls, mocks, position)
                self.results.append(result)
                self.log(_line(result))
        finally:
            for proc in mocks:
                proc.stop()

    def _target_env(self, target: Target, urls: Mapping[str, str]) -> dict[str, str]:
        env = _clean_env()
        env.update({f"BFF_{s.upper()}_URL": url for s, url in urls.items()})
        if target == "ours":
            # Logging at WARNING: one JSON access line per request would be measured too;
            # it is an operator's choice, and the baseline has none.
            env["BFF_LOG_LEVEL"] = "WARNING"
            # All load comes from one loopback client: keep the per-client rate limiter in the
            # path (its cost is measured) but far above what the load generator can send.
            env["BFF_RATE_LIMIT_RATE"] = "1000000"
            env["BFF_RATE_LIMIT_BURST"] = "1000000"
            env["OTEL_SERVICE_NAME"] = "bff-bench"
            if self.config.tracing and self.sink_url is not None:
                env.update(
                    {
                        "OTEL_TRACES_SAMPLER": "always_on",
                        "OTEL_TRACES_EXPORTER": "otlp",
                        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                        "OTEL_EXPORTER_OTLP_ENDPOINT": self.sink_url,
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{self.sink_url}/v1/traces",
                        "OTEL_METRICS_EXPORTER": "none",
                        "OTEL_LOGS_EXPORTER": "none",
                    }
                )
            else:
                env.update({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "none"})
        return env

    def _measure(
        self,
        scenario: Scenario,
        target: Target,
        urls: Mapping[str, str],
        mocks: list[procs.Proc],
        position: int,
    ) -> RunResult:
        cfg = self.config
        workers = scenario.workers or cfg.workers if target == "ours" else 1
        for service, url in urls.items():
            _http("DELETE", f"{url}/__faults")
            if service in scenario.faults:
                _http("PUT", f"{url}/__faults", scenario.faults[service])
        if target == "ours":
            argv = [
                "-m",
                "bff",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--workers",
                str(workers),
                "--admin-port",
                "0",
            ]
        else:
            argv = ["-m", "bench.baseline", "--host", "127.0.0.1", "--port", "0"]
        env = self._target_env(target, urls)
        if target == "ours":
            env.update(scenario.env)
            env.update(cfg.bff_env)
        proc = procs.start(f"{target}-{scenario.name}", argv, env, self.log_dir, ROOT)
        try:
            if target == "ours":  # announces its admin listener (/readyz) first, then the API
                ready_at, base = proc.wait_for_urls(2)
            else:
                ready_at = base = proc.wait_for_urls(1)[0]
            procs.wait_ready(proc, f"{ready_at}/readyz", consecutive=2 * workers)

            def drive(seconds: float) -> wrk.WrkResult:
                return wrk.run(
                    base,
                    connections=scenario.connections,
                    seconds=seconds,
                    threads=cfg.wrk_threads,
                    ids=scenario.ids,
                    seed=7,
                )

            if cfg.warmup_s > 0:
                drive(cfg.warmup_s)
            for service, fault in scenario.faults_after_warmup.items():
                _http(
                    "PUT",
                    f"{urls[service]}/__faults",
                    {**scenario.faults.get(service, {}), **fault},
                )
            tree = procs.descendants(proc.pid)
            mock_pids = [p for m in mocks for p in procs.descendants(m.pid)]
            sink_pids = procs.descendants(self.sink.pid) if self.sink else []
            exports0 = self._exports()
            reviews0 = _requests(urls["reviews"])
            hedges0 = _hedges(ready_at) if target == "ours" else None
            cpu0, mock0, sink0 = (procs.cpu_seconds(p) for p in (tree, mock_pids, sink_pids))
            busy0 = procs.machine_busy_seconds()
            measured = drive(cfg.measure_s)
            busy = procs.machine_busy_seconds() - busy0
            cpu, mock_cpu, sink_cpu = (
                procs.cpu_seconds(p) - c0
                for p, c0 in ((tree, cpu0), (mock_pids, mock0), (sink_pids, sink0))
            )
            exports1 = self._exports()
            reviews_calls = _requests(urls["reviews"]) - reviews0
            hedges = None if hedges0 is None else _hedges(ready_at) - hedges0
            rss = [r for r in (procs.peak_rss_mib(p) for p in procs.worker_pids(proc.pid)) if r]
            if proc.popen.poll() is not None:
                raise proc.fail("died during the measurement")
        finally:
            code = proc.stop()
        summary = measured.summary
        requests = max(int(summary["requests"]), 1)
        wall = measured.wall_s
        lat = summary["latency_us"]
        statuses = {str(k): int(v) for k, v in summary["statuses"].items()}
        errors = summary["errors"]
        other = busy - cpu - mock_cpu - sink_cpu - measured.cpu_s
        result = RunResult(
            scenario=scenario.name,
            target=target,
            connections=scenario.connections,
            duration_s=round(wall, 2),
            requests=int(summary["requests"]),
            rps=summary["requests"] / wall,
            latency_ms={k: lat[k] / 1000 for k in ("p50", "p90", "p99", "p999", "max", "mean")},
            non_2xx=sum(v for k, v in statuses.items() if not k.startswith("2")),
            socket_errors={k: int(errors[k]) for k in ("connect", "read", "write", "timeout")},
            statuses=statuses,
            degraded=int(summary["degraded"]),
            cpu_ms_per_req=cpu * 1000 / requests,
            cpu_cores=cpu / wall,
            peak_rss_mib=[round(r, 1) for r in rss],
            mock_cpu_ms_per_req=mock_cpu * 1000 / requests,
            wrk_cpu_pct=100 * measured.cpu_s / wall,
            other_cpu_cores=max(other, 0.0) / wall,
            trace_exports=(exports1 - exports0)
            if exports0 is not None and exports1 is not None and target == "ours"
            else None,
            order=position,
            served_ms=_per_kind(summary.get("served_us")),
            refused_ms=_per_kind(summary.get("refused_us")),
            reviews_calls_per_answer=reviews_calls
            / max(1, sum(v for k, v in statuses.items() if k != "503")),
            hedges=hedges,
        )
        if code not in (0, None):
            result.notes.append(f"exited {code} on SIGTERM")
        return result

    def _exports(self) -> int | None:
        if self.sink_url is None:
            return None
        stats: dict[str, int] = _http("GET", f"{self.sink_url}/stats")
        return stats["exports"]


def _requests(url: str) -> int:
    stats: dict[str, Any] = _http("GET", f"{url}/__stats")
    return int(stats["requests"])


def _hedges(admin_url: str) -> int:
    """bff_downstream_hedges_total over every service and outcome (all workers)."""
    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("bff_downstream_hedges_total{")
        )
    )


def _per_kind(raw: Mapping[str, float] | None) -> dict[str, float]:
    """load.lua's {n, p50, p99, max} in microseconds -> n and milliseconds."""
    if not raw:
        return {}
    return {k: (v if k == "n" else v / 1000) for k, v in raw.items()}


def _line(r: RunResult) -> str:
    lat = r.latency_ms
    return (
        f"  {r.scenario:<10} {r.target:<8} {r.rps:8.0f} req/s  p50 {lat['p50']:7.1f}  "
        f"p99 {lat['p99']:7.1f}  max {lat['max']:7.1f} ms  non-2xx {r.non_2xx:<6} "
        f"sock {r.socket_error_total:<4} cpu {r.cpu_ms_per_req:.3f} ms/req  "
        f"rss {max(r.peak_rss_mib, default=0):.0f} MiB  other {r.other_cpu_cores:.2f} cores"
    )


def as_json(results: list[RunResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]
