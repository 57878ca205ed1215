"""The benchmark's settings (bench/config.py): BENCH_* variables choose the run, the scenarios
say how each load behaves, and every run is bounded in time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.config import QUIET, SCENARIOS, Config, ConfigError

BY_NAME = {s.name: s for s in SCENARIOS}


def _checkout(root: Path) -> Path:
    """The shape of a BENCH_BEFORE checkout: its venv's python and `bff/__main__.py`."""
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").write_text("")
    (root / "bff").mkdir()
    (root / "bff" / "__main__.py").write_text("")
    return root


class TestRun:
    def test_full_run_is_the_default_and_fits_in_fifteen_minutes(self, tmp_path: Path) -> None:
        config = Config.from_env({})
        assert config.mode == "full"
        assert config.scenarios == SCENARIOS
        assert config.workers == (os.cpu_count() or 1)
        assert config.estimate_s() < 15 * 60
        # A third target measured in every scenario that takes it still fits.
        before = Config.from_env({"BENCH_BEFORE": str(_checkout(tmp_path))})
        assert before.estimate_s() < 15 * 60

    def test_quick_and_smoke(self) -> None:
        quick = Config.from_env({"BENCH_QUICK": "1"})
        assert quick.mode == "quick"
        assert quick.estimate_s() < 6 * 60
        smoke = Config.from_env({"BENCH_SMOKE_SECONDS": "1", "BENCH_SCENARIOS": "seed-64,herd"})
        assert (smoke.mode, smoke.measure_s, [s.name for s in smoke.scenarios]) == (
            "smoke",
            1.0,
            ["seed-64", "herd"],
        )
        assert smoke.report_stem.endswith("-smoke")
        # Tiny counts for the loads wrk does not make.
        assert smoke.probes.herd_requests < Config.from_env({}).probes.herd_requests

    def test_our_settings_for_every_scenario(self) -> None:
        config = Config.from_env({"BENCH_BFF_ENV": "BFF_CACHE=off, BFF_DEADLINE_MS=800"})
        assert config.bff_env == {"BFF_CACHE": "off", "BFF_DEADLINE_MS": "800"}
        assert Config.from_env({}).bff_env == {}

    def test_before_is_a_third_target_where_a_scenario_takes_it(self, tmp_path: Path) -> None:
        config = Config.from_env({"BENCH_BEFORE": str(_checkout(tmp_path)), "BENCH_PROFILE": "1"})
        assert config.before == tmp_path.resolve()
        assert config.profile
        assert config.targets_of(BY_NAME["seed-256"]) == ("ours", "baseline", "before")
        assert config.targets_of(BY_NAME["flood"]) == ("ours", "before")
        assert Config.from_env({}).targets_of(BY_NAME["seed-256"]) == ("ours", "baseline")

    @pytest.mark.parametrize(
        "env",
        [
            {"BENCH_SCENARIOS": "nope"},
            {"BENCH_WORKERS": "0"},
            {"BENCH_SMOKE_SECONDS": "x"},
            {"BENCH_BFF_ENV": "CACHE=off"},  # only our BFF's settings
            {"BENCH_BFF_ENV": "BFF_CACHE"},
            {"BENCH_BEFORE": "/nonexistent/checkout"},
        ],
    )
    def test_invalid_values_are_refused(self, env: dict[str, str]) -> None:
        with pytest.raises(ConfigError):
            Config.from_env(env)


class TestScenarios:
    def test_closed_loop_clients_never_back_off_but_in_overload(self) -> None:
        polite = [s.name for s in SCENARIOS if s.polite]
        assert polite == ["overload"]
        assert BY_NAME["overload"].connections == BY_NAME["seed-1024"].connections == 1024
        assert BY_NAME["seed-256"].connections == 256

    def test_default_settings_everywhere_and_a_quiet_pair(self) -> None:
        for scenario in SCENARIOS:
            assert "BFF_LOG_LEVEL" not in scenario.env or scenario.name.endswith("-quiet")
        for name in ("seed-64", "zero-64"):
            quiet = BY_NAME[f"{name}-quiet"]
            assert quiet.env == QUIET
            assert (quiet.latency_scale, quiet.connections) == (
                BY_NAME[name].latency_scale,
                BY_NAME[name].connections,
            )
            assert "baseline" not in quiet.targets  # its figure is the one in `name`

    def test_the_loads_wrk_cannot_make(self) -> None:
        assert BY_NAME["herd"].kind == "herd"
        assert BY_NAME["hot-256"].ids == "hot"
        flood = BY_NAME["flood"]
        assert (flood.kind, flood.connections, flood.env) == (
            "flood",
            400,
            {"BFF_RATE_LIMIT_RATE": "50"},
        )
        assert "baseline" not in flood.targets  # it has no rate limiting
        stream = BY_NAME["stream-ttfb"]
        assert stream.faults == {"reviews": {"latency_ms": 400}}
        assert stream.env == {"BFF_REVIEWS_TIMEOUT_MS": "480"}
        assert stream.targets == ("ours",)

    def test_profiles_are_taken_at_seed_and_zero_latency(self) -> None:
        assert sorted(s.name for s in SCENARIOS if s.profiled) == ["seed-64", "zero-64"]
