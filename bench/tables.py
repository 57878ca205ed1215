"""The report's tables, one function per section, each from the run's `RunResult`s."""

from __future__ import annotations

from collections.abc import Sequence

from bench.config import EVERY_TARGET
from bench.results import RunResult


def _ms(d: dict[str, float], key: str) -> str:
    value = d.get(key)
    return "-" if value is None else f"{value:.1f}"


def _statuses(r: RunResult) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items())) or "-"


def _by(results: Sequence[RunResult]) -> dict[tuple[str, str], RunResult]:
    return {(r.scenario, r.target): r for r in results}


def wrk_runs(results: Sequence[RunResult]) -> list[str]:
    rows = [
        "| scenario | target | conns | goodput/s | p50 ms | p99 ms (all) | p99 ms (200s) | max ms "
        "| statuses | socket errors c/r/w/timeout | CPU ms/req | peak RSS/worker MiB |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|",
    ]
    for r in results:
        if r.kind not in ("closed", "flood"):
            continue
        e = r.socket_errors
        rss = ", ".join(f"{v:.0f}" for v in r.peak_rss_mib) or "-"
        rows.append(
            f"| {r.scenario} | {r.target} | {r.connections} | {r.goodput:.0f} "
            f"| {_ms(r.latency_ms, 'p50')} | {_ms(r.latency_ms, 'p99')} | {_ms(r.ok_ms, 'p99')} "
            f"| {_ms(r.latency_ms, 'max')} | {_statuses(r)} "
            f"| {e['connect']}/{e['read']}/{e['write']}/{e['timeout']} "
            f"| {r.cpu_ms_per_req:.3f} | {rss} |"
        )
    return rows


def side_by_side(results: Sequence[RunResult]) -> list[str]:
    """Every closed-loop scenario with ours, before (when run) and the baseline in one row."""
    by = _by(results)
    present = [t for t in EVERY_TARGET if any(r.target == t for r in results)]
    names = list(dict.fromkeys(r.scenario for r in results if r.kind == "closed"))
    who = " / ".join(present)
    rows = [
        f"| scenario | goodput/s {who} | p99 ms {who} | CPU ms/req {who} | ours ÷ baseline CPU |",
        "|---|--:|--:|--:|--:|",
    ]
    for name in names:
        runs = [by.get((name, t)) for t in present]

        def each(fmt: str, get: str, runs: list[RunResult | None] = runs) -> str:
            return " / ".join("-" if r is None else format(_figure(r, get), fmt) for r in runs)

        ours, base = by.get((name, "ours")), by.get((name, "baseline"))
        ratio = (
            f"{ours.cpu_ms_per_req / base.cpu_ms_per_req:.2f}x"
            if ours is not None and base is not None and base.cpu_ms_per_req
            else "-"
        )
        rows.append(
            f"| {name} | {each('.0f', 'goodput')} | {each('.1f', 'p99')} "
            f"| {each('.3f', 'cpu')} | {ratio} |"
        )
    return rows


def _figure(r: RunResult, what: str) -> float:
    if what == "goodput":
        return r.goodput
    if what == "p99":
        return r.latency_ms.get("p99", 0.0)
    return r.cpu_ms_per_req


def cpu_quiet(results: Sequence[RunResult]) -> list[str]:
    """CPU per request with default settings and quiet (BFF_LOG_LEVEL=WARNING), and each
    as a ratio of the baseline's in the same run."""
    by = _by(results)
    rows = [
        "| load | target | default CPU ms/req | quiet CPU ms/req | baseline | default ÷ baseline "
        "| quiet ÷ baseline |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for name in ("seed-64", "zero-64"):
        base = by.get((name, "baseline"))
        for target in ("ours", "before"):
            loud, quiet = by.get((name, target)), by.get((f"{name}-quiet", target))
            if loud is None and quiet is None:
                continue
            b = base.cpu_ms_per_req if base is not None else 0.0

            def cell(r: RunResult | None) -> str:
                return "-" if r is None else f"{r.cpu_ms_per_req:.3f}"

            def ratio(r: RunResult | None, b: float = b) -> str:
                return "-" if r is None or not b else f"{r.cpu_ms_per_req / b:.2f}x"

            rows.append(
                f"| {name} | {target} | {cell(loud)} | {cell(quiet)} | {b:.3f} "
                f"| {ratio(loud)} | {ratio(quiet)} |"
            )
    return rows


def herd(results: Sequence[RunResult]) -> list[str]:
    rows = [
        "| target | workers | answers | statuses | product calls | p50 / p99 / max ms |",
        "|---|--:|--:|---|--:|--:|",
    ]
    for r in results:
        if r.kind == "herd":
            lat = r.latency_ms
            rows.append(
                f"| {r.target} | {r.workers} | {r.requests} | {_statuses(r)} "
                f"| {r.product_calls} | {_ms(lat, 'p50')} / {_ms(lat, 'p99')} / "
                f"{_ms(lat, 'max')} |"
            )
    return rows


def flood(results: Sequence[RunResult]) -> list[str]:
    rows = [
        "| target | flooder statuses | polite answers | polite 200s | polite statuses "
        "| polite p50 / p99 ms |",
        "|---|---|--:|--:|---|--:|",
    ]
    for r in results:
        if r.kind == "flood":
            p = r.polite
            polite = ", ".join(f"{k}: {v}" for k, v in sorted(r.polite_statuses.items())) or "-"
            rows.append(
                f"| {r.target} | {_statuses(r)} | {p.get('n', 0):.0f} "
                f"| {p.get('share', 0):.1%} | {polite} | {_ms(p, 'p50')} / {_ms(p, 'p99')} |"
            )
    return rows


def stream(results: Sequence[RunResult]) -> list[str]:
    rows = [
        "| target | answers | statuses | first line p50 / p99 ms | last line p50 / p99 ms "
        "| product: the mock's latency, its call p50 (Server-Timing) ms | without a last line |",
        "|---|--:|---|--:|--:|--:|--:|",
    ]
    for r in results:
        if r.kind == "stream" and r.stream:
            s = r.stream
            rows.append(
                f"| {r.target} | {r.requests} | {_statuses(r)} "
                f"| {s['first_p50']:.1f} / {s['first_p99']:.1f} "
                f"| {s['last_p50']:.1f} / {s['last_p99']:.1f} "
                f"| {s['product_latency']:.0f}, {s['product_p50']:.1f} | {s['incomplete']:.0f} |"
            )
    return rows


def profiles(results: Sequence[RunResult]) -> list[str]:
    out: list[str] = []
    for r in results:
        if not r.profile:
            continue
        files = ", ".join(f"`{f}`" for f in r.profile_files)
        out += [
            f"### {r.scenario}, {r.target}",
            "",
            f"Top {len(r.profile)} functions by own time (py-spy, {files}):",
            "",
            "| function | samples | share |",
            "|---|--:|--:|",
            *(f"| `{p['function']}` | {p['samples']} | {p['share']:.1%} |" for p in r.profile),
            "",
        ]
    return out


def answer_kinds(results: Sequence[RunResult]) -> list[str]:
    """Client-side latency per answer kind, and reviews calls per answer."""
    rows = [
        "| scenario | target | 200s | 200s p50 / p99 / max ms | refused | refused p50 / p99 / "
        "max ms | refusals without Retry-After | reviews calls per answer | hedges |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        s, f = r.ok_ms, r.refused_ms

        def fmt(d: dict[str, float]) -> str:
            return f"{d['p50']:.1f} / {d['p99']:.1f} / {d['max']:.1f}" if d.get("n") else "-"

        rows.append(
            f"| {r.scenario} | {r.target} | {s.get('n', 0):.0f} | {fmt(s)} "
            f"| {f.get('n', 0):.0f} | {fmt(f)} | {r.no_retry_after} "
            f"| {r.reviews_calls_per_answer:.3f} | {'-' if r.hedges is None else r.hedges} |"
        )
    return rows


def diagnostics(results: Sequence[RunResult]) -> list[str]:
    rows = [
        "| scenario | target | ran | degraded 200s | target CPU (cores) | mocks CPU ms/req "
        "| wrk CPU % of a core | other load (cores) | trace exports |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        if r.kind not in ("closed", "flood"):
            continue
        exports = "-" if r.trace_exports is None else str(r.trace_exports)
        notes = f" ({'; '.join(r.notes)})" if r.notes else ""
        rows.append(
            f"| {r.scenario} | {r.target}{notes} | {r.order + 1} | {r.degraded} "
            f"| {r.cpu_cores:.2f} | {r.mock_cpu_ms_per_req:.3f} | {r.wrk_cpu_pct:.0f} "
            f"| {r.other_cpu_cores:.2f} | {exports} |"
        )
    return rows


def sections(results: Sequence[RunResult]) -> list[str]:
    def section(title: str, intro: str, rows: list[str]) -> list[str]:
        has_rows = len(rows) > 2 or (rows and not rows[0].startswith("|"))
        return [f"## {title}", "", intro, "", *rows, ""] if has_rows else []

    return [
        *section(
            "Closed loop (wrk)",
            "Goodput: 200s per second. p99 (all): every answer, refusals included; p99 "
            "(200s): the answers served. Socket errors: wrk's connect, read, write errors and "
            "timeouts (no answer within 2 s).",
            wrk_runs(results),
        ),
        *section("Side by side", "The same scenarios, one row each.", side_by_side(results)),
        *section(
            "CPU per request: default settings and quiet",
            "Default: the access log at INFO (one JSON line per request, to a file); quiet: "
            "`BFF_LOG_LEVEL=WARNING`. The baseline logs nothing in either.",
            cpu_quiet(results),
        ),
        *section(
            "Herd",
            "Identical requests for one cold id, a fixed number at a time (an aiohttp client). "
            "Product calls: what the product mock received during the herd, all workers "
            "together.",
            herd(results),
        ),
        *section(
            "Flood",
            "BFF_RATE_LIMIT_RATE=50: wrk floods from 127.0.0.1 while a polite client on "
            "127.0.0.2 asks every 100 ms. Our BFF's builds only: the baseline has no rate "
            "limiting.",
            flood(results),
        ),
        *section(
            "Incremental answers",
            "`Accept: application/x-ndjson`, reviews at 400 ms (BFF_REVIEWS_TIMEOUT_MS=480), "
            "distinct ids; times on the client's clock from the request to the first and the "
            "last line.",
            stream(results),
        ),
        *section("Profiles", "py-spy during the measured window.", profiles(results)),
        *section(
            "Latency per answer kind",
            "On the client's side, each answer matched to its request by the X-Request-ID it "
            "echoes; reviews calls per answer from the reviews mock's /__stats (1.000: every "
            "part asked once, no retry, no hedge).",
            answer_kinds(results),
        ),
        *section(
            "Diagnostics",
            "*mocks CPU*: the three mock processes. *wrk CPU*: the load generator; near 100% "
            "would mean wrk, not the target, was the bound. *other load*: CPU the rest of the "
            "machine used in the window: noise.",
            diagnostics(results),
        ),
    ]
