"""One benchmark run: per scenario, fresh mocks, then each target in turn.

    for each scenario:            mocks (one process per service) at the scenario's latency
        for target in (ours, baseline[, before]), rotating who goes first per scenario:
            faults re-applied (seeded) -> target started -> /readyz -> measured (bench/measure.py)
            -> target stopped (SIGTERM)

Only the target under test is running while it is measured.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import measure, procs, servers
from bench.config import Config, Scenario
from bench.results import RunResult
from bench.servers import ROOT

__all__ = ["ROOT", "Run"]

SERVICES = ("product", "reviews", "inventory")
Log = Callable[[str], None]
_MEASURES = {
    "closed": measure.closed,
    "flood": measure.closed,
    "herd": measure.herd,
    "stream": measure.stream,
}


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
        before = f", before = {cfg.before}" if cfg.before else ""
        self.log(
            f"bench: {cfg.mode} run, {len(cfg.scenarios)} scenarios, "
            f"{cfg.warmup_s:g}+{cfg.measure_s:g} s per target, {cfg.workers} workers{before}, "
            f"tracing {'on' if cfg.tracing else 'off'}, about {cfg.estimate_s() / 60:.1f} min; "
            f"logs in {self.log_dir}"
        )
        try:
            if cfg.tracing:
                self.sink = procs.start(
                    "trace-sink",
                    ["-m", "bench.trace_sink"],
                    servers.clean_env(),
                    self.log_dir,
                    ROOT,
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
                servers.clean_env(),
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
            stage = measure.Stage(
                config=self.config,
                scenario=scenario,
                urls=urls,
                mock_pids=[p for m in mocks for p in procs.descendants(m.pid)],
                sink_pids=procs.descendants(self.sink.pid) if self.sink else [],
                sink_url=self.sink_url,
                profile_dir=self.config.out_dir / "profiles",
            )
            targets = self.config.targets_of(scenario)
            shift = index % len(targets)
            for position, target in enumerate(targets[shift:] + targets[:shift]):
                for service, url in urls.items():
                    measure.http("DELETE", f"{url}/__faults")
                    if service in scenario.faults:
                        measure.http("PUT", f"{url}/__faults", scenario.faults[service])
                server = servers.start(
                    self.config, scenario, target, urls, self.log_dir, self.sink_url
                )
                try:
                    result = _MEASURES[scenario.kind](stage, server)
                finally:
                    code = server.proc.stop()
                if code not in (0, None):
                    result.notes.append(f"exited {code} on SIGTERM")
                result.order = position
                self.results.append(result)
                self.log(_line(result))
        finally:
            for proc in mocks:
                proc.stop()


def _line(r: RunResult) -> str:
    lat = r.latency_ms
    statuses = " ".join(f"{k}:{v}" for k, v in sorted(r.statuses.items()))
    line = (
        f"  {r.scenario:<15} {r.target:<8} goodput {r.goodput:6.0f}/s  "
        f"p50 {lat.get('p50', 0):7.1f}  p99 {lat.get('p99', 0):7.1f} ms  [{statuses}]  "
        f"sock {r.socket_error_total:<4} cpu {r.cpu_ms_per_req:.3f} ms/req"
    )
    if r.product_calls is not None:
        line += f"  product calls {r.product_calls} ({r.workers} workers)"
    if r.polite:
        line += f"  polite 200s {r.polite['share']:.0%} of {r.polite['n']:.0f}"
    if r.stream:
        s = r.stream
        line += f"  first line p50 {s['first_p50']:.1f} p99 {s['first_p99']:.1f} ms"
        line += f"  last p50 {s['last_p50']:.1f} p99 {s['last_p99']:.1f} ms"
    return line
