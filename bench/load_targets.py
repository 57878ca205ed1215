"""The load scenarios' targets (overload, faults, CPU), judged from one run's results.

- overload: p99 of the requests served <= deadline + 50 ms; goodput (2xx/s) >= 90% of ours
  at seed-256 (the saturation peak) in the same run; refused requests answered within 5 ms.
- faults-64: p99 <= 150 ms with <= 12% extra reviews calls (over the baseline's count);
  seed-64 makes no hedges (ours' own counter).
- CPU per request <= 1.0x the baseline in every scenario (tracing off), <= 1.1x (tracing on);
  zero-latency throughput >= 1.5x the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench import config as c
from bench.runner import RunResult

Target = tuple[str, str, bool | None]


def _by(results: Sequence[RunResult]) -> dict[tuple[str, str], RunResult]:
    return {(r.scenario, r.target): r for r in results}


def _goodput(r: RunResult) -> float:
    return r.statuses.get("200", 0) / r.duration_s if r.duration_s else 0.0


def load_targets(results: Sequence[RunResult], tracing: bool) -> list[Target]:
    by = _by(results)
    out: list[Target] = []
    ours = by.get(("overload", "ours"))
    if ours is not None:
        served, refused = ours.served_ms, ours.refused_ms
        limit = c.DEADLINE_MS + c.OVERLOAD_SLACK_MS
        p99 = served.get("p99", float("nan"))
        out.append((f"overload: p99 served <= {limit:.0f} ms", f"{p99:.1f} ms", p99 <= limit))
        peak = by.get(("seed-256", "ours"))
        figure = f"{_goodput(ours):.0f}/s"
        met = None
        if peak is not None and _goodput(peak):
            share = _goodput(ours) / _goodput(peak)
            figure += f" = {share:.0%} of {_goodput(peak):.0f}/s at seed-256"
            met = share >= c.GOODPUT_SHARE
        out.append((f"overload: goodput >= {c.GOODPUT_SHARE:.0%} of the peak", figure, met))
        if refused.get("n"):
            rp99 = refused["p99"]
            out.append(
                (
                    f"overload: refusals answered within {c.REFUSAL_MS:.0f} ms (p99)",
                    f"p50 {refused['p50']:.1f}, p99 {rp99:.1f} ms ({refused['n']:.0f} refused)",
                    rp99 <= c.REFUSAL_MS,
                )
            )
    faults = by.get(("faults-64", "ours"))
    if faults is not None:
        # Extra calls: ours over the baseline's count, measured the same way (the baseline
        # neither retries nor hedges; calls in flight at the window's edges show in both).
        base = by.get(("faults-64", "baseline"))
        floor = base.reviews_calls_per_answer if base is not None else 1.0
        p99, extra = faults.latency_ms["p99"], faults.reviews_calls_per_answer - floor
        figure = f"p99 {p99:.1f} ms, extra {extra:.1%}"
        if faults.hedges is not None and faults.requests:
            # With the part cache on, answers outnumber live calls (extra < 0): the hedges'
            # share of the answers is the figure that says what hedging costs.
            figure += f", hedges {faults.hedges / faults.requests:.1%} of answers"
        out.append(
            (
                f"faults-64: p99 <= {c.FAULTS_P99_MS:.0f} ms, extra reviews calls "
                f"<= {c.FAULTS_EXTRA_CALLS:.0%}",
                figure,
                p99 <= c.FAULTS_P99_MS and extra <= c.FAULTS_EXTRA_CALLS,
            )
        )
    seed = by.get(("seed-64", "ours"))
    if seed is not None and seed.hedges is not None:
        out.append(("seed-64: no hedges", f"{seed.hedges} hedges", seed.hedges == 0))
    out += _cpu(by, tracing)
    return out


def cpu_target(results: Sequence[RunResult], limit: float, tracing: bool) -> list[Target]:
    """CPU per request of ours over the baseline's, every scenario of the run but overload
    (ours refuses there: its requests are not the same work); [] when no pair ran."""
    by = _by(results)
    ratios = {
        name: o.cpu_ms_per_req / b.cpu_ms_per_req
        for (name, target), o in by.items()
        if target == "ours"
        and (b := by.get((name, "baseline"))) is not None
        and b.cpu_ms_per_req
        and name != "overload"
    }
    if not ratios:
        return []
    worst = max(ratios, key=ratios.__getitem__)
    figure = ", ".join(f"{n} {v:.2f}x" for n, v in ratios.items())
    return [
        (
            f"CPU/request <= {limit} x baseline (tracing {'on' if tracing else 'off'})",
            f"{figure} (worst: {worst})",
            ratios[worst] <= limit,
        )
    ]


def _cpu(by: dict[tuple[str, str], RunResult], tracing: bool) -> list[Target]:
    out = cpu_target(list(by.values()), 1.1 if tracing else 1.0, tracing)
    zero, base = by.get(("zero-64", "ours")), by.get(("zero-64", "baseline"))
    if zero is not None and base is not None and base.rps:
        ratio = zero.rps / base.rps
        out.append(("zero-latency throughput >= 1.5 x baseline", f"{ratio:.2f}x", ratio >= 1.5))
    return out


def latency_rows(results: Sequence[RunResult]) -> list[str]:
    """Client-side latency per answer kind, and reviews calls per answer."""
    rows = [
        "| scenario | target | served n | served p50 / p99 / max ms | refused n "
        "| refused p50 / p99 / max ms | reviews calls per answer | hedges |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        s, f = r.served_ms, r.refused_ms

        def fmt(d: dict[str, float]) -> str:
            return f"{d['p50']:.1f} / {d['p99']:.1f} / {d['max']:.1f}" if d.get("n") else "-"

        rows.append(
            f"| {r.scenario} | {r.target} | {s.get('n', 0):.0f} | {fmt(s)} | {f.get('n', 0):.0f} "
            f"| {fmt(f)} | {r.reviews_calls_per_answer:.3f} "
            f"| {'-' if r.hedges is None else r.hedges} |"
        )
    return rows
