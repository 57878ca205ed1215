"""deploy/nginx/: the config nginx accepts, and the proxy behaviour it promises, checked on a
real nginx in front of real upstreams on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from deploy_support import DEPLOY, require_tool

from deploy.topology import Ports, nginx_conf

NGINX = DEPLOY / "nginx"


def nginx_test(conf: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    nginx = require_tool("nginx")
    return subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )


class TestConfigIsAccepted:
    """`nginx -t` passes on both uses of deploy/nginx/: make cluster's and Compose's."""

    def test_the_cluster_config(self, tmp_path: Path) -> None:
        conf = tmp_path / "nginx.conf"
        conf.write_text(nginx_conf(Ports.free(), tmp_path))
        result = nginx_test(conf, tmp_path)
        assert result.returncode == 0, result.stderr

    def test_the_compose_config(self, tmp_path: Path) -> None:
        """With the container paths and service names mapped to this machine."""
        text = (NGINX / "nginx.conf").read_text()
        text = text.replace("/etc/nginx/bff/", f"{NGINX}/").replace("/tmp/nginx.pid", "nginx.pid")
        for replica in ("bff-1", "bff-2", "bff-3"):
            text = text.replace(f"{replica}:8080", "127.0.0.1:8080")
        text = text.replace("listen 8000;", f"listen 127.0.0.1:{Ports.free().cluster};")
        conf = tmp_path / "nginx.conf"
        conf.write_text(text)
        result = nginx_test(conf, tmp_path)
        assert result.returncode == 0, result.stderr

    def test_a_broken_config_is_refused(self, tmp_path: Path) -> None:
        conf = tmp_path / "nginx.conf"
        conf.write_text(nginx_conf(Ports.free(), tmp_path).replace("upstream bff", "upstream x"))
        assert nginx_test(conf, tmp_path).returncode != 0


class Upstream:
    """An upstream that answers `status` and counts requests by method."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.calls: Counter[str] = Counter()
        self.forwarded_for: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.calls[request.method] += 1
        self.forwarded_for.append(request.headers.get("X-Forwarded-For", ""))
        return web.Response(status=self.status, text=str(self.status))


@contextlib.asynccontextmanager
async def serving(upstream: Upstream) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        assert server.port is not None
        yield server.port
    finally:
        await server.close()


@contextlib.contextmanager
def nginx_in_front(upstream_ports: tuple[int, ...], prefix: Path) -> Iterator[str]:
    nginx = require_tool("nginx")
    free = Ports.free()
    ports = Ports(free.cluster, upstream_ports, free.admin, free.mocks, free.redis)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(ports, prefix))
    with (prefix / "stderr.log").open("wb") as stderr:
        proc = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(conf), "-e", "stderr"],
            stderr=stderr,
            start_new_session=True,
        )
        try:
            yield f"http://127.0.0.1:{ports.cluster}"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


async def wait_ready(session: aiohttp.ClientSession, url: str) -> None:
    async with asyncio.timeout(10):
        while True:
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(url + "/__ready"):
                    return
            await asyncio.sleep(0.05)


class TestProxyBehaviour:
    """Retries another replica for GET only; X-Forwarded-For names the client."""

    async def test_get_skips_a_dead_replica_and_a_503_and_post_is_not_resent(
        self, tmp_path: Path
    ) -> None:
        dead_port = Ports.free().cluster  # nothing listens there: connection refused
        failing, healthy = Upstream(503), Upstream(200)
        async with (
            serving(failing) as failing_port,
            serving(healthy) as healthy_port,
            aiohttp.ClientSession() as session,
        ):
            with nginx_in_front((dead_port, failing_port, healthy_port), tmp_path) as url:
                await wait_ready(session, url)
                # POSTs first: after 3 failures nginx benches a replica for 5 s.
                posts = []
                for _ in range(12):
                    async with session.post(url + "/product-details/P1") as resp:
                        posts.append(resp.status)
                gets = []
                for _ in range(12):
                    async with session.get(url + "/product-details/P1") as resp:
                        gets.append(resp.status)
        assert gets == [200] * 12
        assert failing.calls["GET"] >= 1  # the 503 replica was tried, and skipped
        # A POST that reached the 503 replica is answered 503, never sent again elsewhere.
        assert posts.count(503) == failing.calls["POST"] >= 1
        assert posts.count(200) == healthy.calls["POST"]

    async def test_x_forwarded_for_appends_the_client(self, tmp_path: Path) -> None:
        upstream = Upstream(200)
        async with serving(upstream) as port, aiohttp.ClientSession() as session:
            with nginx_in_front((port,), tmp_path) as url:
                await wait_ready(session, url)
                headers = {"X-Forwarded-For": "203.0.113.9"}
                async with session.get(url + "/product-details/P1", headers=headers) as resp:
                    assert resp.status == 200
        assert upstream.forwarded_for[-1] == "203.0.113.9, 127.0.0.1"

    async def test_metrics_are_not_exposed(self, tmp_path: Path) -> None:
        upstream = Upstream(200)
        async with serving(upstream) as port, aiohttp.ClientSession() as session:
            with nginx_in_front((port,), tmp_path) as url:
                await wait_ready(session, url)
                async with session.get(url + "/metrics") as resp:
                    assert resp.status == 404
        assert upstream.calls["GET"] == 1  # only the readiness poke reached it


@pytest.fixture(autouse=True)
def _nginx_installed() -> None:
    require_tool("nginx")
