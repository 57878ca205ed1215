"""Every metric the alert rules and the dashboard query exists on a live BFF's /metrics.

A real `python -m bff --workers 2` (prometheus_client's multiprocess mode, as deployed) in
front of the real mocks; traffic that makes every series appear (labelled counters have no
sample until something is counted): plain answers, then a failing reviews service for
retries, degraded answers and an open breaker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from deploy_support import DEPLOY, load_yaml
from process_support import running
from prometheus_client.parser import text_string_to_metric_families

from bff.settings import Settings
from deploy.topology import Ports

pytestmark = pytest.mark.slow

# A metric name on its own: not part of a recording rule's name (level:metric:operations).
_METRIC = re.compile(r"(?<![\w:])(bff_[a-z0-9_]+)(?![\w:])")


def metrics_url(public_port: int, admin_port: int) -> str:
    """Where a BFF serves /metrics: its admin listener when it has one, else the public port."""
    has_admin_listener = "admin_port" in {f.name for f in dataclasses.fields(Settings)}
    port = admin_port if has_admin_listener else public_port
    return f"http://127.0.0.1:{port}/metrics"


def queried_metrics() -> set[str]:
    rules = load_yaml(DEPLOY / "prometheus" / "rules.yml")
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "bff.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return {m for expr in exprs for m in _METRIC.findall(expr)}


@pytest.fixture
async def bff_processes() -> AsyncIterator[tuple[Ports, str]]:
    ports = Ports.free(replicas=1)
    env = {
        "BFF_PORT": str(ports.bff[0]),
        "BFF_ADMIN_PORT": str(ports.admin[0]),
        "BFF_PRODUCT_URL": f"http://127.0.0.1:{ports.mocks[0]}",
        "BFF_REVIEWS_URL": f"http://127.0.0.1:{ports.mocks[1]}",
        "BFF_INVENTORY_URL": f"http://127.0.0.1:{ports.mocks[2]}",
    }
    mocks = ["-m", "mock_services", "--latency-scale", "0", "--lab-port", "0"]
    for flag, port in zip(("product", "reviews", "inventory"), ports.mocks, strict=True):
        mocks += [f"--{flag}-port", str(port)]
    async with running(mocks, env), running(["-m", "bff", "--workers", "2"], env):
        yield ports, metrics_url(ports.bff[0], ports.admin[0])


async def wait_up(session: aiohttp.ClientSession, url: str) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                async with session.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


class TestQueriedMetricsExist:
    """A dashboard panel or an alert on a metric nobody exports would stay silent forever."""

    def test_the_queries_name_metrics(self) -> None:
        names = queried_metrics()
        assert "bff_breaker_state" in names
        assert not any(":" in n for n in names)
        assert len(names) >= 7

    async def test_every_queried_metric_is_exported(self, bff_processes: tuple[Ports, str]) -> None:
        ports, scrape = bff_processes
        api = f"http://127.0.0.1:{ports.bff[0]}"
        reviews = f"http://127.0.0.1:{ports.mocks[1]}"
        async with aiohttp.ClientSession() as session:
            await wait_up(session, f"{reviews}/__stats")
            await wait_up(session, f"{api}/product-details/P1")
            # Enough answers for each worker to know the reviews p95 (hedging needs 8).
            for i in range(40):
                async with session.get(f"{api}/product-details/P{i}") as resp:
                    assert resp.status == 200
            # Every reviews call 100 ms slow: hedges go, then the hedge budget says no.
            faults = {"slow_rate": 1.0, "slow_ms": 100}
            async with session.put(f"{reviews}/__faults", json=faults) as resp:
                assert resp.status < 300
            for i in range(10):
                async with session.get(f"{api}/product-details/S{i}") as resp:
                    assert resp.status == 200
            async with session.put(f"{reviews}/__faults", json={"error_rate": 1.0}) as resp:
                assert resp.status < 300
            for i in range(20):
                async with session.get(f"{api}/product-details/F{i}") as resp:
                    body = await resp.json()
                    assert "reviews" in body["degraded"]
            # Each worker writes what it counted once a second: the scrape, answered by either
            # worker, has every series within that.
            for _ in range(30):
                async with session.get(scrape) as resp:
                    assert resp.status == 200
                    text = await resp.text()
                families = text_string_to_metric_families(text)
                exported = {sample.name for family in families for sample in family.samples}
                missing = sorted(queried_metrics() - exported)
                if not missing:
                    break
                await asyncio.sleep(0.1)
        assert missing == [], f"queried but not on {scrape}"
