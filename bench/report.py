"""The run's report: `<stem>.md` (tables, ratios, targets, machine), `<stem>.json` (every
figure, for tools and the smoke test) and `<stem>.png` (the plot)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.config import Config
from bench.load_targets import cpu_target, latency_rows, load_targets
from bench.runner import RunResult, as_json

SLOWEST_PART_MS = 80.0  # reviews at seed latency: the floor of a complete answer


def _ratio(ours: float, base: float) -> str:
    return f"{ours / base:.2f}x" if base else "-"


def _pairs(results: Sequence[RunResult]) -> list[tuple[RunResult, RunResult]]:
    by = {(r.scenario, r.target): r for r in results}
    names = dict.fromkeys(r.scenario for r in results)
    return [(by[n, "ours"], by[n, "baseline"]) for n in names if (n, "baseline") in by]


def _results_table(results: Sequence[RunResult]) -> list[str]:
    rows = [
        "| scenario | target | req/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx "
        "| socket errors | CPU ms/req | peak RSS/worker MiB |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        lat = r.latency_ms
        rss = ", ".join(f"{v:.0f}" for v in r.peak_rss_mib) or "-"
        rows.append(
            f"| {r.scenario} | {r.target} | {r.rps:.0f} | {lat['p50']:.1f} | {lat['p90']:.1f} "
            f"| {lat['p99']:.1f} | {lat['max']:.1f} | {r.non_2xx} "
            f"({100 * r.non_2xx / max(r.requests, 1):.1f}%) | {r.socket_error_total} "
            f"| {r.cpu_ms_per_req:.3f} | {rss} |"
        )
    return rows


def _ratio_table(pairs: Sequence[tuple[RunResult, RunResult]]) -> list[str]:
    rows = [
        "| scenario | req/s | p50 | p90 | p99 | max | CPU ms/req | non-2xx ours / baseline |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for ours, base in pairs:
        lat = [_ratio(ours.latency_ms[k], base.latency_ms[k]) for k in ("p50", "p90", "p99", "max")]
        rows.append(
            f"| {ours.scenario} | {_ratio(ours.rps, base.rps)} | {' | '.join(lat)} "
            f"| {_ratio(ours.cpu_ms_per_req, base.cpu_ms_per_req)} "
            f"| {ours.non_2xx} / {base.non_2xx} |"
        )
    return rows


def targets(results: Sequence[RunResult], tracing: bool) -> list[tuple[str, str, bool | None]]:
    """Issue 5's targets: (what, the figure, met? None when the run lacks the scenario)."""
    pairs = {o.scenario: (o, b) for o, b in _pairs(results)}
    out: list[tuple[str, str, bool | None]] = []
    for name in ("seed-256", "faults-64"):
        if name in pairs:
            o, b = pairs[name]
            out.append(
                (
                    f"0 non-2xx in {name}",
                    f"ours {o.non_2xx}, baseline {b.non_2xx}",
                    o.non_2xx == 0 and o.socket_error_total == 0,
                )
            )
    if "seed-64" in pairs:
        o, _ = pairs["seed-64"]
        p50, p99 = (o.latency_ms[k] - SLOWEST_PART_MS for k in ("p50", "p99"))
        out.append(("p50 at seed-64 <= 80 ms + 1 ms", f"+{p50:.1f} ms", p50 <= 1.0))
        out.append(("p99 at seed-64 <= 80 ms + 6 ms", f"+{p99:.1f} ms", p99 <= 6.0))
    out += cpu_target(results, 0.8 if tracing else 0.6, tracing)
    return out


def _diagnostics(results: Sequence[RunResult]) -> list[str]:
    rows = [
        "| scenario | target | ran | statuses | degraded 200s | target CPU (cores) "
        "| mocks CPU ms/req | wrk CPU % of a core | other load (cores) | trace exports |",
        "|---|---|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items()))
        exports = "-" if r.trace_exports is None else str(r.trace_exports)
        notes = f" ({'; '.join(r.notes)})" if r.notes else ""
        rows.append(
            f"| {r.scenario} | {r.target}{notes} | {'first' if r.order == 0 else 'second'} "
            f"| {statuses} | {r.degraded} | {r.cpu_cores:.2f} | {r.mock_cpu_ms_per_req:.3f} "
            f"| {r.wrk_cpu_pct:.0f} | {r.other_cpu_cores:.2f} | {exports} |"
        )
    return rows


def tracing_mode(config: Config, results: Sequence[RunResult]) -> str:
    if not config.tracing:
        return "off (OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none)"
    exports = sum(r.trace_exports or 0 for r in results if r.target == "ours")
    verdict = (
        f"the sink received {exports} OTLP export requests: tracing was active"
        if exports
        else "the sink received no export: this build of the BFF did not export traces, so "
        "these figures are those of tracing off"
    )
    sampler = config.bff_env.get("OTEL_TRACES_SAMPLER")
    if sampler is None:
        sampling = "100% sampling (OTEL_TRACES_SAMPLER=always_on"
    else:
        arg = config.bff_env.get("OTEL_TRACES_SAMPLER_ARG", "")
        sampling = f"sampler {sampler}{f' {arg}' if arg else ''} (BENCH_BFF_ENV"
    return f"on, {sampling}, OTLP/HTTP to a local sink that discards); {verdict}"


def write(
    config: Config,
    results: Sequence[RunResult],
    facts: Mapping[str, str],
    started: dt.datetime,
    command: str,
) -> Path:
    config.out_dir.mkdir(parents=True, exist_ok=True)
    stem = config.report_stem
    md_path, json_path, png_path = (config.out_dir / f"{stem}.{e}" for e in ("md", "json", "png"))
    pairs = _pairs(results)
    mode = tracing_mode(config, results)
    goals = targets(results, config.tracing)
    load_goals = load_targets(results, config.tracing)

    plot_note: str
    try:
        from bench.plot import plot

        plot(results, png_path, f"bench {stem}: ours ({config.workers} workers) vs baseline")
        plot_note = f"![ours vs baseline]({png_path.name})"
    except ImportError as exc:
        plot_note = f"(no plot: {exc}; `make bench` installs matplotlib)"

    mark = {True: "met", False: "**missed**", None: "-"}
    lines = [
        f"# Benchmark {started:%Y-%m-%d}: ours vs the plain baseline ({config.mode} run)",
        "",
        f"Run at {started:%Y-%m-%d %H:%M} UTC with `{command}`: {len(results) // 2} scenarios, "
        f"each target {config.warmup_s:g} s warm-up + {config.measure_s:g} s measured with wrk, "
        f"ours with {config.workers} worker(s) unless the scenario says otherwise"
        + "".join(f", {k}={v}" for k, v in config.bff_env.items())
        + ", the two alternating (who goes first changes from one scenario to the next). "
        "Tracing: " + mode + ".",
        "",
        "Ours runs with `BFF_LOG_LEVEL=WARNING` (no access line per request; the baseline logs "
        "nothing either). CPU is utime+stime of every process of the target (supervisor, "
        "workers, helpers) over the measured window, per completed request. The machine is "
        "shared: see *other load* below before trusting small differences.",
        "",
        "## Results",
        "",
        *_results_table(results),
        "",
        "## Ours ÷ baseline (same run)",
        "",
        "Below 1x is better for latency and CPU, above 1x is better for req/s.",
        "",
        *_ratio_table(pairs),
        "",
        "## Issue 5 targets",
        "",
        "| target | figure | |",
        "|---|---|---|",
        *(f"| {what} | {figure} | {mark[ok]} |" for what, figure, ok in goals),
        "",
        "## Load targets (overload, hedging, hot path)",
        "",
        "| target | figure | |",
        "|---|---|---|",
        *(f"| {what} | {figure} | {mark[ok]} |" for what, figure, ok in load_goals),
        "",
        "Latency per answer kind, on wrk's side (each answer matched to its request by the "
        "X-Request-ID it echoes); reviews calls per answer from the reviews mock's /__stats "
        "(1.000: every part asked once, no retry, no hedge).",
        "",
        *latency_rows(results),
        "",
        "## Plot",
        "",
        plot_note,
        "",
        "## Diagnostics",
        "",
        "*mocks CPU*: the three mock processes (shared by both targets). *wrk CPU*: the load "
        "generator; near 100% would mean wrk, not the target, was the bound. *other load*: CPU "
        "the rest of the machine used in the window (other users' work): noise.",
        "",
        *_diagnostics(results),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in facts.items()),
        "",
    ]
    md_path.write_text("\n".join(lines))
    payload: dict[str, Any] = {
        "started": started.isoformat(),
        "command": command,
        "mode": config.mode,
        "workers": config.workers,
        "tracing": config.tracing,
        "tracing_mode": mode,
        "warmup_s": config.warmup_s,
        "measure_s": config.measure_s,
        "machine": dict(facts),
        "targets": [{"target": w, "figure": f, "met": ok} for w, f, ok in goals],
        "load_targets": [{"target": w, "figure": f, "met": ok} for w, f, ok in load_goals],
        "results": as_json(list(results)),
    }
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    return md_path
