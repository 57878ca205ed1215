"""Prometheus rules and config (promtool) and the Grafana dashboard's shape."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import DEPLOY, load_yaml, require_tool

PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "bff.json"


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    binary = require_tool("promtool")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


class TestPrometheus:
    """The rules load, each alert fires on the series it is about (rules.test.yml), and the
    scrape config is valid."""

    def test_rules_pass_promtool_check(self) -> None:
        result = promtool("check", "rules", "rules.yml")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_alerts_fire_when_they_should(self) -> None:
        result = promtool("test", "rules", "rules.test.yml")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_every_alert_the_operator_needs_is_defined(self) -> None:
        rules = load_yaml(PROMETHEUS / "rules.yml")
        alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
        assert alerts == {
            "BffHighErrorRatio",
            "BffLatencyP99OverDeadline",
            "BffBreakerOpen",
            "BffDegradedRatioHigh",
            "BffInstanceDown",
            "BffSheddingLoad",
            "BffBulkheadSaturated",
            "BffEventLoopLagHigh",
        }

    def test_a_broken_rule_is_refused(self, tmp_path: Path) -> None:
        """promtool can fail: a rule with a PromQL syntax error does not pass."""
        rules = load_yaml(PROMETHEUS / "rules.yml")
        rules["groups"][0]["rules"][0]["expr"] = "sum by (route ("
        (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
        assert promtool("check", "rules", "rules.yml", cwd=tmp_path).returncode != 0

    def test_the_scrape_config_is_valid(self, tmp_path: Path) -> None:
        config = load_yaml(PROMETHEUS / "prometheus.yml")
        config["rule_files"] = [str(PROMETHEUS / "rules.yml")]  # the container path, here
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


class TestDashboard:
    """Provisioned from a file; every panel queries Prometheus and follows $instance."""

    def test_provisioning_points_at_the_dashboard(self) -> None:
        provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "bff.yaml")
        path = provider["providers"][0]["options"]["path"]
        compose = load_yaml(DEPLOY / "compose.yaml")
        mounts = compose["services"]["grafana"]["volumes"]
        assert f"./grafana/dashboards:{path}:ro" in mounts

    def test_every_panel_filters_by_instance(self, dashboard: dict[str, Any]) -> None:
        for panel in panels(dashboard):
            for target in panel["targets"]:
                assert 'instance=~"$instance"' in target["expr"], panel["title"]

    def test_panels_do_not_overlap(self, dashboard: dict[str, Any]) -> None:
        taken: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            g = panel["gridPos"]
            cells = {(g["y"] + dy, g["x"] + dx) for dy in range(g["h"]) for dx in range(g["w"])}
            assert not cells & taken, panel["title"]
            assert g["x"] + g["w"] <= 24
            taken |= cells

    def test_covers_red_parts_breakers_and_instances(self, dashboard: dict[str, Any]) -> None:
        exprs = " ".join(t["expr"] for p in panels(dashboard) for t in p["targets"])
        for metric in (
            "bff_request_duration_seconds_count",
            "bff_request_duration_seconds_bucket",
            "bff_downstream_duration_seconds_count",
            "bff_degraded_total",
            "bff_breaker_state",
            "bff_downstream_retries_total",
            'up{job="bff"',
            "bff_edge_rejections_total",
            "bff_outlier_ejections_total",
            "bff_retry_budget_exhausted_total",
            "bff_bulkhead_occupancy",
            "bff_event_loop_lag_seconds_bucket",
            "bff_process_cpu_seconds",
            "bff_process_resident_memory_bytes",
            "bff_build_info",
        ):
            assert metric in exprs
