"""The run's report: `<stem>.md` (promises, tables, profiles, machine), `<stem>.json` (every
figure, for tools and the smoke test) and `<stem>.png` (the plot)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import tables
from bench.config import Config
from bench.results import RunResult, as_json
from bench.verdicts import Verdict, promises, standing

_MARK = {True: "met", False: "**missed**", None: "-"}


def _verdicts(rows: Sequence[Verdict]) -> list[str]:
    return [
        "| promise | figure | |",
        "|---|---|---|",
        *(f"| {what} | {figure} | {_MARK[ok]} |" for what, figure, ok in rows),
    ]


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


def _header(
    config: Config, results: Sequence[RunResult], started: dt.datetime, command: str, took_s: float
) -> list[str]:
    scenarios = len(dict.fromkeys(r.scenario for r in results))
    before = f"; `before` is {config.before}" if config.before else ""
    return [
        f"# Benchmark {started:%Y-%m-%d}: ours, the plain baseline{' and before' if before else ''}"
        f" ({config.mode} run)",
        "",
        f"Run at {started:%Y-%m-%d %H:%M} UTC with `{command}`, {took_s / 60:.1f} minutes: "
        f"{scenarios} scenarios, each wrk target {config.warmup_s:g} s warm-up + "
        f"{config.measure_s:g} s measured, ours with {config.workers} worker(s) unless the "
        f"scenario says otherwise{before}"
        + "".join(f", {k}={v}" for k, v in config.bff_env.items())
        + "; who goes first rotates from one scenario to the next. Tracing: "
        + tracing_mode(config, results)
        + ".",
        "",
        "Our BFF's builds run with their **default settings**: the access log at INFO, written "
        "to a file (a deployment's log collector), no rate limit; `-quiet` scenarios log at "
        "WARNING. The baseline logs nothing. Closed loop: a wrk connection asks again as soon "
        "as it is answered, whatever the status and Retry-After say, except in `overload`, "
        "whose clients wait 1-2 s after a 503. CPU is utime+stime of every process of the "
        "target over the measured window, per answer. The machine is shared: read small "
        "differences against *other load* in the diagnostics."
        + (
            " **Profiled run** (BENCH_PROFILE=1): py-spy pauses the profiled targets to sample "
            "them, so their figures in seed-64 and zero-64 are not comparable with an "
            "unprofiled run's."
            if config.profile
            else ""
        ),
        "",
    ]


def write(
    config: Config,
    results: Sequence[RunResult],
    facts: Mapping[str, str],
    started: dt.datetime,
    command: str,
    took_s: float = 0.0,
) -> Path:
    config.out_dir.mkdir(parents=True, exist_ok=True)
    stem = config.report_stem
    md_path, json_path, png_path = (config.out_dir / f"{stem}.{e}" for e in ("md", "json", "png"))
    goals, older = promises(results, config.tracing), standing(results)
    try:
        from bench.plot import plot

        plot(results, png_path, f"bench {stem}: goodput, p99 and CPU per request")
        plot_note = f"![goodput and p99 against concurrency]({png_path.name})"
    except ImportError as exc:
        plot_note = f"(no plot: {exc}; `make bench` installs matplotlib)"
    lines = [
        *_header(config, results, started, command, took_s),
        "## Promises",
        "",
        "Judged on ours; `-` where the run lacks what the promise needs.",
        "",
        *_verdicts(goals),
        "",
        "Earlier promises, still checked:",
        "",
        *_verdicts(older),
        "",
        *tables.sections(results),
        "## Plot",
        "",
        plot_note,
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
        "took_s": round(took_s, 1),
        "command": command,
        "mode": config.mode,
        "workers": config.workers,
        "before": str(config.before) if config.before else None,
        "tracing": config.tracing,
        "tracing_mode": tracing_mode(config, results),
        "profile": config.profile,
        "warmup_s": config.warmup_s,
        "measure_s": config.measure_s,
        "probes": dataclasses.asdict(config.probes),
        "machine": dict(facts),
        "promises": [{"promise": w, "figure": f, "met": ok} for w, f, ok in goals],
        "standing": [{"promise": w, "figure": f, "met": ok} for w, f, ok in older],
        "results": as_json(list(results)),
    }
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    return md_path
