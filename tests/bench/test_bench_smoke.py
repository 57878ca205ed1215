"""The benchmark harness (bench/): its settings, its verdicts, and one tiny real run.

Timing on a shared machine is noise, so nothing here checks a figure: the smoke run only
proves the harness still starts everything, drives load and writes a report that parses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.config import SCENARIOS, Config, ConfigError
from bench.load_targets import load_targets
from bench.report import targets
from bench.runner import RunResult

ROOT = Path(__file__).resolve().parents[2]


class TestConfig:
    """BENCH_* variables choose the run; every run is bounded in time."""

    def test_full_run_is_the_default_and_fits_in_ten_minutes(self) -> None:
        config = Config.from_env({})
        assert config.mode == "full"
        assert config.scenarios == SCENARIOS
        # Start, ready, stop: 3 s a target measured (9 scenarios took 8 min 8 s), 5 allowed.
        per_target = config.warmup_s + config.measure_s + 5
        assert 2 * len(config.scenarios) * per_target < 600
        assert config.workers == (os.cpu_count() or 1)

    def test_quick_and_smoke(self) -> None:
        assert Config.from_env({"BENCH_QUICK": "1"}).mode == "quick"
        smoke = Config.from_env({"BENCH_SMOKE_SECONDS": "1", "BENCH_SCENARIOS": "seed-64"})
        assert (smoke.mode, smoke.measure_s, [s.name for s in smoke.scenarios]) == (
            "smoke",
            1.0,
            ["seed-64"],
        )
        assert smoke.report_stem.endswith("-smoke")

    def test_our_settings_for_every_scenario(self) -> None:
        config = Config.from_env({"BENCH_BFF_ENV": "BFF_CACHE=off, BFF_DEADLINE_MS=800"})
        assert config.bff_env == {"BFF_CACHE": "off", "BFF_DEADLINE_MS": "800"}
        assert Config.from_env({}).bff_env == {}
        ratio = Config.from_env({"BENCH_BFF_ENV": "OTEL_TRACES_SAMPLER_ARG=0.1"})
        assert ratio.bff_env == {"OTEL_TRACES_SAMPLER_ARG": "0.1"}

    @pytest.mark.parametrize(
        "env",
        [
            {"BENCH_SCENARIOS": "nope"},
            {"BENCH_WORKERS": "0"},
            {"BENCH_SMOKE_SECONDS": "x"},
            {"BENCH_BFF_ENV": "CACHE=off"},  # only our BFF's settings
            {"BENCH_BFF_ENV": "BFF_CACHE"},
        ],
    )
    def test_invalid_values_are_refused(self, env: dict[str, str]) -> None:
        with pytest.raises(ConfigError):
            Config.from_env(env)


def _result(scenario: str, target: str, **overrides: object) -> RunResult:
    fields: dict[str, object] = {
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
    }
    fields.update(overrides)
    return RunResult(**fields)  # type: ignore[arg-type]


class TestTargets:
    """The issue's targets are judged from ratios measured in the same run."""

    def test_cpu_target_depends_on_tracing(self) -> None:
        results = [
            _result("seed-64", "ours", cpu_ms_per_req=0.7),
            _result("seed-64", "baseline", cpu_ms_per_req=1.0),
        ]
        verdicts = {what.split(" (")[0]: ok for what, _, ok in targets(results, tracing=False)}
        assert verdicts["CPU/request <= 0.6 x baseline"] is False
        verdicts = {what.split(" (")[0]: ok for what, _, ok in targets(results, tracing=True)}
        assert verdicts["CPU/request <= 0.8 x baseline"] is True

    def test_non_2xx_and_latency_targets(self) -> None:
        results = [
            _result("seed-256", "ours", non_2xx=1),
            _result("seed-256", "baseline", non_2xx=50),
            _result("seed-64", "ours"),
            _result("seed-64", "baseline"),
        ]
        verdicts = {what: ok for what, _, ok in targets(results, tracing=False)}
        assert verdicts["0 non-2xx in seed-256"] is False
        assert verdicts["p50 at seed-64 <= 80 ms + 1 ms"] is True


class TestLoadTargets:
    """The load scenarios' targets: overload against the seed-256 peak, faults, hedges."""

    def test_goodput_is_judged_against_the_peak_of_the_same_run(self) -> None:
        results = [
            _result("seed-256", "ours", statuses={"200": 1000}),
            _result("overload", "ours", statuses={"200": 950, "503": 500}),
        ]
        (goodput,) = [t for t in load_targets(results, tracing=False) if "goodput" in t[0]]
        assert goodput[1] == "950/s = 95% of 1000/s at seed-256"
        assert goodput[2] is True

    def test_faults_show_the_hedges_share_of_the_answers(self) -> None:
        results = [
            _result("faults-64", "ours", reviews_calls_per_answer=0.6, hedges=5, requests=100),
            _result("faults-64", "baseline", reviews_calls_per_answer=1.0),
        ]
        (faults,) = [t for t in load_targets(results, tracing=False) if "faults" in t[0]]
        assert faults[1] == "p99 80.5 ms, extra -40.0%, hedges 5.0% of answers"
        assert faults[2] is True


@pytest.mark.slow
def test_smoke_run_writes_a_report_that_parses(
    tmp_path: Path, binary: Callable[[str], str]
) -> None:
    """One scenario, 1 s per target: every process starts, wrk drives both, a report appears.

    Needs wrk (`make bench` and CI install it); without it the test skips, or fails when
    BFF_TEST_REQUIRE names wrk (CI).
    """
    binary("wrk")
    env = {
        **os.environ,
        "BENCH_SMOKE_SECONDS": "1",
        "BENCH_SCENARIOS": "seed-64",
        "BENCH_OUT": str(tmp_path),
    }
    env.pop("BENCH_QUICK", None)
    done = subprocess.run(
        [sys.executable, "-m", "bench"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (report,) = tmp_path.glob("*-smoke.json")
    data = json.loads(report.read_text())
    assert data["mode"] == "smoke"
    runs = {r["target"]: r for r in data["results"]}
    assert set(runs) == {"ours", "baseline"}
    for run in runs.values():
        assert run["requests"] > 0
        assert run["cpu_ms_per_req"] > 0
        assert run["peak_rss_mib"]
        # Each answer was matched to its request by the X-Request-ID the target echoed.
        assert run["served_ms"]["n"] > 0
    # The baseline calls reviews for every answer; ours may answer some from its part cache.
    assert runs["baseline"]["reviews_calls_per_answer"] >= 1
    assert runs["ours"]["reviews_calls_per_answer"] > 0
    assert runs["ours"]["hedges"] is not None  # read from ours' /metrics
    assert runs["baseline"]["hedges"] is None
    markdown = report.with_suffix(".md").read_text()
    assert "| seed-64 | ours |" in markdown
    assert "| seed-64 | baseline |" in markdown
