"""One target in one scenario: drive it, read its costs, make its `RunResult`.

    closed, flood   wrk warm-up -> counters -> wrk measured (and, in a flood, the polite
                    client beside it; with BENCH_PROFILE=1, py-spy) -> counters
    herd            a few warm-up requests -> product calls counted -> the herd -> counted
    stream          a few warm-up requests -> the incremental answers, timed line by line

CPU is the kernel's utime+stime of the target's whole process tree over the measured window;
"other" is what the rest of the machine burnt in the same window (the shared machine's noise).
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import probes, procs, profile, wrk
from bench.config import Config, Scenario
from bench.probes import percentiles
from bench.results import RunResult
from bench.servers import Server

POLITE_HOST = "127.0.0.2"  # the whole 127.0.0.0/8 is loopback on Linux: another client


@dataclass(frozen=True, slots=True)
class Stage:
    """Where a target is measured: the run's settings, the scenario, the mocks."""

    config: Config
    scenario: Scenario
    urls: Mapping[str, str]  # service -> the mock's base URL
    mock_pids: Sequence[int]
    sink_pids: Sequence[int]
    sink_url: str | None
    profile_dir: Path


def http(method: str, url: str, body: Mapping[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read() or b"null")


def mock_requests(url: str) -> int:
    stats: dict[str, Any] = http("GET", f"{url}/__stats")
    return int(stats["requests"])


def hedges(admin_url: str) -> int:
    """bff_downstream_hedges_total over every service and outcome (all workers)."""
    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    prefix = "bff_downstream_hedges_total{"
    lines = (line for line in text.splitlines() if line.startswith(prefix))
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in lines))


def closed(stage: Stage, server: Server) -> RunResult:
    cfg, scenario = stage.config, stage.scenario

    def drive(seconds: float) -> wrk.WrkResult:
        return wrk.run(
            server.base,
            connections=scenario.connections,
            seconds=seconds,
            threads=cfg.wrk_threads,
            ids=scenario.ids,
            seed=7,
            polite=scenario.polite,
        )

    if cfg.warmup_s > 0:
        drive(cfg.warmup_s)
    for service, fault in scenario.faults_after_warmup.items():
        body = {**scenario.faults.get(service, {}), **fault}
        http("PUT", f"{stage.urls[service]}/__faults", body)
    tree = procs.descendants(server.proc.pid)
    exports0 = _exports(stage.sink_url)
    reviews0 = mock_requests(stage.urls["reviews"])
    hedges0 = hedges(server.admin) if server.admin else None
    cpu0, mock0, sink0 = (procs.cpu_seconds(p) for p in (tree, stage.mock_pids, stage.sink_pids))
    busy0 = procs.machine_busy_seconds()
    recording = None
    if cfg.profile and scenario.profiled:
        name = f"{cfg.report_stem}-{scenario.name}-{server.target}"
        children = server.target != "baseline"  # ours' supervisor and its workers
        recording = profile.start(server.proc.pid, cfg.measure_s, stage.profile_dir, name, children)
    polite: list[probes.Tally] = []
    beside = None
    if scenario.kind == "flood":
        client = probes.polite(server.base, cfg.measure_s, cfg.probes.polite_every_s, POLITE_HOST)

        def ask() -> None:
            polite.append(asyncio.run(client))

        beside = threading.Thread(target=ask, name="polite-client")
        beside.start()
    measured = drive(cfg.measure_s)
    busy = procs.machine_busy_seconds() - busy0
    cpu, mock_cpu, sink_cpu = (
        procs.cpu_seconds(p) - c0
        for p, c0 in ((tree, cpu0), (stage.mock_pids, mock0), (stage.sink_pids, sink0))
    )
    if beside is not None:
        beside.join(cfg.measure_s + 10)
    exports1 = _exports(stage.sink_url)
    reviews_calls = mock_requests(stage.urls["reviews"]) - reviews0
    hedged = None if hedges0 is None or server.admin is None else hedges(server.admin) - hedges0
    rss = [r for r in (procs.peak_rss_mib(p) for p in procs.worker_pids(server.proc.pid)) if r]
    if server.proc.popen.poll() is not None:
        raise server.proc.fail("died during the measurement")

    summary = measured.summary
    requests = max(int(summary["requests"]), 1)
    wall = measured.wall_s
    lat = summary["latency_us"]
    statuses = {str(k): int(v) for k, v in summary["statuses"].items()}
    errors = summary["errors"]
    other = busy - cpu - mock_cpu - sink_cpu - measured.cpu_s
    result = RunResult(
        scenario=scenario.name,
        target=server.target,
        kind=scenario.kind,
        connections=scenario.connections,
        workers=server.workers,
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
        if exports0 is not None and exports1 is not None and server.target != "baseline"
        else None,
        ok_ms=_per_kind(summary.get("ok_us")),
        refused_ms=_per_kind(summary.get("refused_us")),
        no_retry_after=int(summary.get("no_retry_after", 0)),
        reviews_calls_per_answer=reviews_calls
        / max(1, sum(v for k, v in statuses.items() if k not in ("503", "429"))),
        hedges=hedged,
    )
    if polite:
        _polite(result, polite[0])
    elif scenario.kind == "flood":
        result.notes.append("the polite client did not finish")
    if recording is not None:
        result.profile = profile.finish(recording)
        files = [recording.speedscope, recording.raw]
        result.profile_files = [str(f) for f in files if f.exists()]
        if len(result.profile_files) < len(files):
            result.notes.append(f"py-spy wrote only part of its profile: see {recording.log}")
    elif cfg.profile and scenario.profiled:
        result.notes.append("no profile: py-spy is not installed (the bench extra has it)")
    return result


def _polite(result: RunResult, tally: probes.Tally) -> None:
    n = sum(tally.statuses.values())
    ok = tally.statuses.get("200", 0)
    result.polite = {**percentiles(tally.latency_ms), "n": n, "ok": ok, "share": ok / max(n, 1)}
    result.polite_statuses = dict(tally.statuses)
    result.no_retry_after += tally.no_retry_after


def herd(stage: Stage, server: Server) -> RunResult:
    """The herd for one cold id of this target's own (the mocks outlive a target; its cache
    does not), after a few requests for other ids that open the worker's pools."""
    probe = stage.config.probes
    cold = f"HERD{server.target.upper()}"
    asyncio.run(probes.herd(server.base, "WARM00001", 2 * server.workers, 2 * server.workers))
    before = mock_requests(stage.urls["product"])
    tally = asyncio.run(probes.herd(server.base, cold, probe.herd_requests, probe.herd_at_once))
    calls = mock_requests(stage.urls["product"]) - before
    result = _probed(stage, server, tally)
    result.product_calls = calls
    return result


def stream(stage: Stage, server: Server) -> RunResult:
    probe = stage.config.probes
    warm = [f"WARM{i:05d}" for i in range(probe.stream_at_once)]
    asyncio.run(probes.stream(server.base, warm, probe.stream_at_once))
    ids = [f"STREAM{i:05d}" for i in range(probe.stream_requests)]
    tally = asyncio.run(probes.stream(server.base, ids, probe.stream_at_once))
    faults: dict[str, Any] = http("GET", f"{stage.urls['product']}/__faults")
    first, last = percentiles(tally.first_ms), percentiles(tally.last_ms)
    result = _probed(stage, server, tally)
    result.stream = {
        "first_p50": first["p50"],
        "first_p99": first["p99"],
        "last_p50": last["p50"],
        "last_p99": last["p99"],
        "product_p50": percentiles(tally.product_ms)["p50"],
        "product_latency": float(faults.get("latency_ms") or 0.0),
        "incomplete": tally.incomplete,
    }
    return result


def _probed(stage: Stage, server: Server, tally: probes.Tally) -> RunResult:
    """A RunResult from an aiohttp probe: statuses and latency; no wrk, no CPU figures."""
    statuses = dict(tally.statuses)
    lat = percentiles(tally.latency_ms)
    return RunResult(
        scenario=stage.scenario.name,
        target=server.target,
        kind=stage.scenario.kind,
        connections=stage.scenario.connections,
        workers=server.workers,
        duration_s=0.0,
        requests=sum(statuses.values()),
        rps=0.0,
        latency_ms={k: lat[k] for k in ("p50", "p99", "max")},
        non_2xx=sum(v for k, v in statuses.items() if not k.startswith("2")),
        socket_errors={"connect": 0, "read": 0, "write": 0, "timeout": statuses.get("timeout", 0)},
        statuses=statuses,
        degraded=0,
        cpu_ms_per_req=0.0,
        cpu_cores=0.0,
        peak_rss_mib=[],
        mock_cpu_ms_per_req=0.0,
        wrk_cpu_pct=0.0,
        other_cpu_cores=0.0,
        ok_ms=percentiles(tally.ok_ms) if tally.ok_ms else {},
        no_retry_after=tally.no_retry_after,
    )


def _exports(sink_url: str | None) -> int | None:
    if sink_url is None:
        return None
    stats: dict[str, int] = http("GET", f"{sink_url}/stats")
    return stats["exports"]


def _per_kind(raw: Mapping[str, float] | None) -> dict[str, float]:
    """load.lua's {n, p50, p99, max} in microseconds -> n and milliseconds."""
    if not raw:
        return {}
    return {k: (v if k == "n" else v / 1000) for k, v in raw.items()}
