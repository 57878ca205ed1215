"""The promises a run checks (bench/verdicts.py), judged on ours against figures of the same
run: each verdict below flips when its figure crosses the line."""

from __future__ import annotations

from typing import Any

from bench.results import RunResult
from bench.verdicts import promises, standing


def _result(scenario: str, target: str, **overrides: Any) -> RunResult:
    fields: dict[str, Any] = {
        "scenario": scenario,
        "target": target,
        "connections": 64,
        "duration_s": 1.0,
        "requests": 100,
        "rps": 100.0,
        "latency_ms": dict.fromkeys(("p50", "p90", "p99", "p999", "max", "mean"), 80.5),
        "non_2xx": 0,
        "socket_errors": dict.fromkeys(("connect", "read", "write", "timeout"), 0),
        "statuses": {"200": 100},
        "degraded": 0,
        "cpu_ms_per_req": 1.0,
        "cpu_cores": 0.1,
        "peak_rss_mib": [40.0],
        "mock_cpu_ms_per_req": 0.5,
        "wrk_cpu_pct": 3.0,
        "other_cpu_cores": 0.0,
        "workers": 2,
    }
    fields.update(overrides)
    return RunResult(**fields)


def _verdicts(results: list[RunResult], tracing: bool = False) -> dict[str, bool | None]:
    return {what: ok for what, _, ok in promises(results, tracing)}


class TestAt256:
    def test_every_answer_200_goodput_and_tail(self) -> None:
        results = [
            _result("seed-256", "ours", statuses={"200": 2000}, requests=2000),
            _result("seed-256", "baseline", statuses={"200": 1800}, requests=1800),
        ]
        verdicts = _verdicts(results)
        assert verdicts["seed-256: every answer 200"] is True
        assert verdicts["seed-256: goodput >= the baseline's"] is True
        assert verdicts["seed-256: p99 <= 550 ms"] is True

    def test_a_refusal_a_timeout_or_a_late_tail_misses(self) -> None:
        refused = _result("seed-256", "ours", statuses={"200": 99, "503": 1})
        assert _verdicts([refused])["seed-256: every answer 200"] is False
        timeouts = dict.fromkeys(("connect", "read", "write"), 0) | {"timeout": 1}
        lost = _result("seed-256", "ours", socket_errors=timeouts)
        assert _verdicts([lost])["seed-256: every answer 200"] is False
        late = _result("seed-256", "ours", latency_ms={"p50": 80.0, "p99": 551.0})
        assert _verdicts([late])["seed-256: p99 <= 550 ms"] is False
        slower = [
            _result("seed-256", "ours", statuses={"200": 90}),
            _result("seed-256", "baseline", statuses={"200": 91}),
        ]
        assert _verdicts(slower)["seed-256: goodput >= the baseline's"] is False


class TestAt1024:
    def test_goodput_is_judged_against_ours_at_its_best_concurrency(self) -> None:
        results = [
            _result("seed-64", "ours", statuses={"200": 700}),
            _result("seed-256", "ours", statuses={"200": 1000}),
            _result("seed-1024", "ours", statuses={"200": 899, "503": 50}),
        ]
        (figure,) = [f for w, f, _ in promises(results) if w.startswith("seed-1024: goodput")]
        assert figure == "899/s = 90% of 1000/s (seed-256)"
        assert _verdicts(results)["seed-1024: goodput >= 90% of ours at its best"] is False
        results[2] = _result("seed-1024", "ours", statuses={"200": 900, "503": 50})
        assert _verdicts(results)["seed-1024: goodput >= 90% of ours at its best"] is True

    def test_refusals_count_in_the_tail_and_socket_errors_miss(self) -> None:
        errors = {"connect": 0, "read": 3, "write": 0, "timeout": 0}
        results = [
            _result("seed-1024", "ours", latency_ms={"p99": 560.0}, socket_errors=errors),
        ]
        verdicts = _verdicts(results)
        assert verdicts["seed-1024: p99 of every answer <= 550 ms"] is False
        assert verdicts["seed-1024: no socket errors or timeouts"] is False


class TestHerdFloodAndOneWorker:
    def test_herd_product_calls_at_most_one_per_worker(self) -> None:
        herd = _result("herd", "ours", kind="herd", product_calls=2, workers=2)
        assert _verdicts([herd])["herd: product calls <= workers"] is True
        herd = _result("herd", "ours", kind="herd", product_calls=3, workers=2)
        assert _verdicts([herd])["herd: product calls <= workers"] is False

    def test_polite_client_share(self) -> None:
        flood = _result("flood", "ours", polite={"n": 100, "ok": 95, "share": 0.95})
        assert _verdicts([flood])["flood: polite client >= 95% answered 200"] is True
        flood = _result("flood", "ours", polite={"n": 100, "ok": 94, "share": 0.94})
        assert _verdicts([flood])["flood: polite client >= 95% answered 200"] is False
        # A polite client that never finished is no evidence of anything good.
        assert (
            _verdicts([_result("flood", "ours")])["flood: polite client >= 95% answered 200"]
            is False
        )

    def test_one_worker_refuses_nothing(self) -> None:
        one = _result("zero-64-1w", "ours", statuses={"200": 99, "503": 1}, workers=1)
        assert _verdicts([one])["zero-64-1w: no refusal"] is False
        assert _verdicts([_result("zero-64-1w", "ours")])["zero-64-1w: no refusal"] is True

    def test_every_refusal_carries_retry_after(self) -> None:
        bare = _result("seed-1024", "ours", statuses={"503": 10}, no_retry_after=1)
        assert _verdicts([bare])["every refusal (503, 429) carries Retry-After"] is False


class TestCpu:
    def test_default_settings_within_1_3x_the_baseline(self) -> None:
        results = [
            _result("seed-64", "ours", cpu_ms_per_req=1.3),
            _result("seed-64", "baseline", cpu_ms_per_req=1.0),
            _result("zero-64", "ours", cpu_ms_per_req=0.8),
            _result("zero-64", "baseline", cpu_ms_per_req=0.6),
        ]
        verdicts = _verdicts(results)
        assert verdicts["seed-64: CPU/request, default settings, <= 1.3x baseline"] is True
        assert verdicts["zero-64: CPU/request, default settings, <= 1.3x baseline"] is False

    def test_no_verdict_off_the_promised_conditions(self) -> None:
        """The promise is for 2 workers, untraced, unprofiled: elsewhere the figure is shown,
        not judged."""
        base = _result("seed-64", "baseline", cpu_ms_per_req=1.0)
        what = "seed-64: CPU/request, default settings, <= 1.3x baseline"
        one = _result("seed-64", "ours", cpu_ms_per_req=1.0, workers=1)
        assert _verdicts([one, base])[what] is None
        profiled = _result("seed-64", "ours", profile=[{"function": "f", "samples": 1}])
        assert _verdicts([profiled, base])[what] is None
        assert _verdicts([_result("seed-64", "ours"), base], tracing=True)[what] is None


class TestStream:
    def test_first_line_within_the_product_latency_plus_20_ms(self) -> None:
        stream = {
            "first_p50": 69.0,
            "first_p99": 80.0,
            "last_p50": 405.0,
            "last_p99": 420.0,
            "product_p50": 51.0,
            "product_latency": 50.0,
            "incomplete": 0,
        }
        ok = _result("stream-ttfb", "ours", kind="stream", stream=stream)
        verdicts = _verdicts([ok])
        assert verdicts["stream-ttfb: first line p50 <= product latency + 20 ms"] is True
        assert verdicts["stream-ttfb: last line p99 <= the deadline (500 ms)"] is True
        late = _result("stream-ttfb", "ours", kind="stream", stream=stream | {"first_p50": 71.0})
        assert _verdicts([late])["stream-ttfb: first line p50 <= product latency + 20 ms"] is False
        cut = _result("stream-ttfb", "ours", kind="stream", stream=stream | {"incomplete": 1})
        assert _verdicts([cut])["stream-ttfb: last line p99 <= the deadline (500 ms)"] is False


class TestStanding:
    def test_polite_overload_keeps_the_deadline_for_its_200s(self) -> None:
        overload = _result("overload", "ours", ok_ms={"n": 10, "p50": 90.0, "p99": 600.0})
        ((what, figure, ok),) = standing([overload])
        assert (what, figure, ok) == ("overload (polite): p99 of 200s <= 550 ms", "600.0 ms", False)

    def test_faults_show_the_hedges_share_of_the_answers(self) -> None:
        results = [
            _result("faults-64", "ours", reviews_calls_per_answer=0.6, hedges=5, requests=100),
            _result("faults-64", "baseline", reviews_calls_per_answer=1.0),
        ]
        (faults,) = [t for t in standing(results) if t[0].startswith("faults-64")]
        assert faults[1] == "p99 80.5 ms, extra -40.0%, hedges 5.0% of answers"
        assert faults[2] is True
