"""The storefront's server: the page, where the BFF is, and `python -m storefront`."""

from __future__ import annotations

import re
import socket

import aiohttp
import pytest
from process_support import run_to_exit, running, stop
from pytest_aiohttp import AiohttpClient

from storefront import create_storefront_app
from storefront.__main__ import parse_args
from storefront.app import STATIC_DIR


class TestApp:
    async def test_page_config_and_policy(self, aiohttp_client: AiohttpClient) -> None:
        client = await aiohttp_client(create_storefront_app("http://127.0.0.1:8080/"))
        async with client.get("/") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            csp = resp.headers["Content-Security-Policy"]
            html = await resp.text()
        # The page may fetch from its own origin and the BFF's, and from nowhere else.
        assert "connect-src 'self' http://127.0.0.1:8080;" in csp
        assert "default-src 'self'" in csp
        async with client.get("/config.json") as resp:
            assert await resp.json() == {"bffUrl": "http://127.0.0.1:8080"}
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            async with client.get(asset) as resp:
                assert resp.status == 200, asset

    def test_the_page_asks_for_the_incremental_answer(self) -> None:
        script = (STATIC_DIR / "storefront.js").read_text()
        assert 'Accept: "application/x-ndjson"' in script
        assert "response.body.getReader()" in script

    @pytest.mark.parametrize("url", ["ftp://x", "127.0.0.1:8080", "http://"])
    def test_a_bff_url_must_be_http(self, url: str) -> None:
        with pytest.raises(ValueError, match="not an http"):
            create_storefront_app(url)


class TestArguments:
    def test_defaults(self) -> None:
        args = parse_args([])
        assert (args.host, args.port, args.bff_url) == ("127.0.0.1", 8088, "http://127.0.0.1:8080")

    @pytest.mark.parametrize("argv", [["--port", "70000"], ["--bff-url", "nope"]])
    def test_invalid_values_exit_2(self, argv: list[str]) -> None:
        with pytest.raises(SystemExit) as exc:
            parse_args(argv)
        assert exc.value.code == 2


STOREFRONT = ["-m", "storefront"]


@pytest.mark.slow
class TestProcess:
    async def test_prints_its_url_serves_and_stops_cleanly(self) -> None:
        args = [*STOREFRONT, "--port=0", "--bff-url=http://127.0.0.1:9"]
        async with running(args) as (proc, lines):
            line = await lines.next_matching("http://")
            url = line.split()[1]
            assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*/", url), line
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                assert resp.status == 200
            assert await stop(proc) == 0

    async def test_a_busy_port_exits_2_naming_it(self) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            out = run_to_exit([*STOREFRONT, f"--port={port}"])
        assert out.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
        assert "Traceback" not in out.stderr
