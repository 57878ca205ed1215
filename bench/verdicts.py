"""The promises a run can check, judged from its own results (ours; the others are the yard
stick), each as (what, the figure, met?) with None when the run lacks what it needs.

`promises`: what the product promises now, measured closed loop (no client back-off), seed
latencies, default settings:
- 256 connections: every answer 200, goodput >= the baseline's, p99 <= deadline + 50 ms;
- 1,024: goodput >= 90 % of ours at its best concurrency, p99 of every answer (refusals
  included) <= 550 ms, no socket errors or timeouts;
- one hot id at 256: every answer 200; a herd for one cold id: all 200, product calls <= workers;
- one worker at zero latency, 64 connections: no refusal;
- rate limiting on, a flood from one address: a polite client elsewhere >= 95 % 200;
- CPU per request with default settings, seed and zero latency, 64 connections, 2 workers:
  <= 1.3x the baseline;
- incremental answers with reviews at 400 ms: first line p50 <= product latency + 20 ms,
  last line p99 by the deadline;
- every refusal carries Retry-After.

`standing`: earlier promises still checked: the polite overload's 200s keep their deadline,
the latency added at seed-64, faults-64's tail and extra calls, no hedges at seed-64.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.config import CONCURRENCY_LADDER
from bench.results import RunResult

Verdict = tuple[str, str, bool | None]

DEADLINE_MS = 500.0  # the BFF's default deadline (both targets run with their defaults)
SLACK_MS = 50.0  # of a 1,024-connection load's p99 over the deadline
BEST_SHARE = 0.9
CPU_LIMIT = 1.3
CPU_WORKERS = 2
FIRST_LINE_SLACK_MS = 20.0
POLITE_SHARE = 0.95
SLOWEST_PART_MS = 80.0  # reviews at seed latency: the floor of a complete answer
FAULTS_P99_MS = 150.0
FAULTS_EXTRA_CALLS = 0.12


def _ours(results: Sequence[RunResult]) -> dict[str, RunResult]:
    return {r.scenario: r for r in results if r.target == "ours"}


def _base(results: Sequence[RunResult]) -> dict[str, RunResult]:
    return {r.scenario: r for r in results if r.target == "baseline"}


def _tally(r: RunResult) -> str:
    statuses = ", ".join(f"{v} x {k}" for k, v in sorted(r.statuses.items()))
    errors = r.socket_error_total
    return statuses + (f", {errors} socket errors/timeouts" if errors else "")


def _all_200(name: str, r: RunResult | None) -> list[Verdict]:
    if r is None:
        return []
    ok = r.requests > 0 and r.statuses.get("200", 0) == r.requests and not r.socket_error_total
    return [(f"{name}: every answer 200", _tally(r), ok)]


def promises(results: Sequence[RunResult], tracing: bool = False) -> list[Verdict]:
    ours, base = _ours(results), _base(results)
    out: list[Verdict] = []
    limit = DEADLINE_MS + SLACK_MS
    r256 = ours.get("seed-256")
    out += _all_200("seed-256", r256)
    if r256 is not None:
        b = base.get("seed-256")
        figure = f"{r256.goodput:.0f}/s"
        met = None
        if b is not None:
            figure += f" vs {b.goodput:.0f}/s"
            met = r256.goodput >= b.goodput
        out.append(("seed-256: goodput >= the baseline's", figure, met))
        p99 = r256.latency_ms["p99"]
        out.append((f"seed-256: p99 <= {limit:.0f} ms", f"{p99:.1f} ms", p99 <= limit))
    r1024 = ours.get("seed-1024")
    if r1024 is not None:
        ladder = {n: ours[n].goodput for n in CONCURRENCY_LADDER if n in ours}
        best = max(ladder, key=ladder.__getitem__)
        share = r1024.goodput / ladder[best] if ladder[best] else 0.0
        out.append(
            (
                f"seed-1024: goodput >= {BEST_SHARE:.0%} of ours at its best",
                f"{r1024.goodput:.0f}/s = {share:.0%} of {ladder[best]:.0f}/s ({best})",
                share >= BEST_SHARE if len(ladder) > 1 else None,
            )
        )
        p99 = r1024.latency_ms["p99"]
        out.append(
            (f"seed-1024: p99 of every answer <= {limit:.0f} ms", f"{p99:.1f} ms", p99 <= limit)
        )
        errors = r1024.socket_errors
        out.append(
            (
                "seed-1024: no socket errors or timeouts",
                ", ".join(f"{k} {v}" for k, v in errors.items()),
                r1024.socket_error_total == 0,
            )
        )
    out += _all_200("hot-256", ours.get("hot-256"))
    out += _herd(ours.get("herd"))
    one = ours.get("zero-64-1w")
    if one is not None:
        out.append(("zero-64-1w: no refusal", f"{one.refusals} refused", one.refusals == 0))
    flood = ours.get("flood")
    if flood is not None:
        p = flood.polite
        figure = f"{p.get('ok', 0):.0f} of {p.get('n', 0):.0f} = {p.get('share', 0):.1%}"
        met = p.get("share", 0.0) >= POLITE_SHARE if p else False
        out.append((f"flood: polite client >= {POLITE_SHARE:.0%} answered 200", figure, met))
    out += _cpu(ours, base, tracing)
    out += _stream(ours.get("stream-ttfb"))
    bare = sum(r.no_retry_after for r in ours.values())
    refused = sum(r.refusals for r in ours.values())
    out.append(
        (
            "every refusal (503, 429) carries Retry-After",
            f"{bare} of {refused} without",
            bare == 0 if ours else None,
        )
    )
    return out


def _herd(r: RunResult | None) -> list[Verdict]:
    if r is None:
        return []
    calls = r.product_calls if r.product_calls is not None else -1
    return [
        *_all_200("herd", r),
        (
            "herd: product calls <= workers",
            f"{calls} calls, {r.workers} workers",
            0 <= calls <= r.workers,
        ),
    ]


def _cpu(ours: dict[str, RunResult], base: dict[str, RunResult], tracing: bool) -> list[Verdict]:
    limit = CPU_LIMIT
    out: list[Verdict] = []
    for name in ("seed-64", "zero-64"):
        o, b = ours.get(name), base.get(name)
        if o is None or b is None or not b.cpu_ms_per_req:
            continue
        ratio = o.cpu_ms_per_req / b.cpu_ms_per_req
        figure = f"{o.cpu_ms_per_req:.3f} / {b.cpu_ms_per_req:.3f} ms = {ratio:.2f}x"
        met: bool | None = ratio <= limit
        if o.workers != CPU_WORKERS:
            figure += f" (ours on {o.workers} workers, the promise is for {CPU_WORKERS})"
            met = None
        if o.profile:
            figure += " (profiled: py-spy's pauses are in it)"
            met = None
        if tracing:  # default settings trace nothing
            figure += " (tracing on: not the default settings)"
            met = None
        out.append((f"{name}: CPU/request, default settings, <= {limit}x baseline", figure, met))
    return out


def _stream(r: RunResult | None) -> list[Verdict]:
    if r is None or not r.stream:
        return []
    s = r.stream
    bound = s["product_latency"] + FIRST_LINE_SLACK_MS
    return [
        (
            "stream-ttfb: first line p50 <= product latency + 20 ms",
            f"{s['first_p50']:.1f} ms (product {s['product_latency']:.0f} ms; "
            f"its call took {s['product_p50']:.1f} ms at p50)",
            s["first_p50"] <= bound and r.statuses.get("200", 0) > 0,
        ),
        (
            f"stream-ttfb: last line p99 <= the deadline ({DEADLINE_MS:.0f} ms)",
            f"{s['last_p99']:.1f} ms; {s['incomplete']:.0f} without their last line",
            s["last_p99"] <= DEADLINE_MS and s["incomplete"] == 0,
        ),
    ]


def standing(results: Sequence[RunResult]) -> list[Verdict]:
    ours, base = _ours(results), _base(results)
    out: list[Verdict] = []
    polite = ours.get("overload")
    if polite is not None and polite.ok_ms.get("n"):
        limit = DEADLINE_MS + SLACK_MS
        p99 = polite.ok_ms["p99"]
        what = f"overload (polite): p99 of 200s <= {limit:.0f} ms"
        out.append((what, f"{p99:.1f} ms", p99 <= limit))
    seed = ours.get("seed-64")
    if seed is not None:
        p50, p99 = (seed.latency_ms[k] - SLOWEST_PART_MS for k in ("p50", "p99"))
        out.append(("seed-64: p50 <= 80 ms + 1 ms", f"+{p50:.1f} ms", p50 <= 1.0))
        out.append(("seed-64: p99 <= 80 ms + 6 ms", f"+{p99:.1f} ms", p99 <= 6.0))
        if seed.hedges is not None:
            out.append(("seed-64: no hedges", f"{seed.hedges} hedges", seed.hedges == 0))
    faults = ours.get("faults-64")
    if faults is not None:
        # Extra calls: ours over the baseline's count, measured the same way (the baseline
        # neither retries nor hedges; calls in flight at the window's edges show in both).
        b = base.get("faults-64")
        floor = b.reviews_calls_per_answer if b is not None else 1.0
        p99, extra = faults.latency_ms["p99"], faults.reviews_calls_per_answer - floor
        figure = f"p99 {p99:.1f} ms, extra {extra:.1%}"
        if faults.hedges is not None and faults.requests:
            # With the part cache on, answers outnumber live calls (extra < 0): the hedges'
            # share of the answers is the figure that says what hedging costs.
            figure += f", hedges {faults.hedges / faults.requests:.1%} of answers"
        out.append(
            (
                f"faults-64: p99 <= {FAULTS_P99_MS:.0f} ms, extra reviews calls "
                f"<= {FAULTS_EXTRA_CALLS:.0%}",
                figure,
                p99 <= FAULTS_P99_MS and extra <= FAULTS_EXTRA_CALLS,
            )
        )
    return out
