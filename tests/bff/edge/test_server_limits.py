"""Server limits and the table of hostile inputs, on the real runner.

Raw bytes over a socket: a client library would refuse to send most of these. The BFF runs
on `bff.server.make_runner`, the runner `python -m bff` uses, so aiohttp's limits are ours;
even the requests aiohttp's parser refuses are problems with a request id, our fixed
headers, and a count by reason (bff.edge.protocol)."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from bff_support import AdminFor, BffClient
from edge_support import STEP_S, RawResponse, address, raw_request
from prometheus_client.parser import text_string_to_metric_families
from runner_support import Serve

PLAIN_ID = re.compile(r"[0-9a-f]{32}")


Target = str  # the BFF's base URL


@pytest.fixture
async def target(serve: Serve) -> str:
    return await serve({"edge.keepalive_timeout_s": 0.5})


def get(path: str = "/product-details/P001", headers: bytes = b"", method: bytes = b"GET") -> bytes:
    return (
        method
        + b" "
        + path.encode()
        + b" HTTP/1.1\r\nHost: bff\r\n"
        + headers
        + b"Connection: close\r\n\r\n"
    )


def assert_clean(resp: RawResponse) -> None:
    """Nothing from the request leaked into a header, and any id is plain."""
    assert resp.header("X-Evil") is None
    for name, value in resp.headers:
        assert not set(value) & {"\r", "\n", "\x00"}, name
    rid = resp.header("X-Request-ID")
    assert rid is None or re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", rid)


# name -> (raw request, expected status, expected X-Request-ID: "echo:<v>" or "new")
HOSTILE: dict[str, tuple[bytes, int, str | None]] = {
    "request line 9000 bytes": (get("/product-details/" + "A" * 9000), 400, "new"),
    "header value 9000 bytes": (get(headers=b"X-Big: " + b"a" * 9000 + b"\r\n"), 400, "new"),
    "150 headers": (get(headers=b"".join(b"X-H%d: 1\r\n" % i for i in range(150))), 400, "new"),
    "CR inside X-Request-ID": (get(headers=b"X-Request-ID: abc\rX-Evil: 1\r\n"), 400, "new"),
    "bare LF in X-Request-ID": (get(headers=b"X-Request-ID: abc\nX-Evil: 1\r\n"), 400, "new"),
    "NUL in X-Request-ID": (get(headers=b"X-Request-ID: ab\x00c\r\n"), 400, "new"),
    "control byte in X-Request-ID": (get(headers=b"X-Request-ID: ab\x01c\r\n"), 400, "new"),
    "latin-1 byte in X-Request-ID": (get(headers=b"X-Request-ID: caf\xe9\r\n"), 200, "new"),
    "X-Request-ID 200 chars": (get(headers=b"X-Request-ID: " + b"a" * 200 + b"\r\n"), 200, "new"),
    "X-Request-ID with space": (get(headers=b"X-Request-ID: a b\r\n"), 200, "new"),
    "X-Request-ID with quote": (get(headers=b'X-Request-ID: a"b\r\n'), 200, "new"),
    "plain X-Request-ID": (get(headers=b"X-Request-ID: abc-123\r\n"), 200, "echo:abc-123"),
    "CR/LF in the id (encoded)": (get("/product-details/P0%0D%0AX-Evil:%201"), 400, "new"),
    "CR in the path (raw)": (get("/product-details/P0\rX"), 400, "new"),
    "id of 65 characters": (get("/product-details/" + "A" * 65), 400, "new"),
    "id with ../": (get("/product-details/..%2F..%2Fetc%2Fpasswd"), 400, "new"),
    "GET body 20000 bytes": (get(headers=b"Content-Length: 20000\r\n") + b"a" * 20000, 413, "new"),
    "GET body 5 bytes": (get(headers=b"Content-Length: 5\r\n") + b"hello", 413, "new"),
    "GET chunked body": (
        get(headers=b"Transfer-Encoding: chunked\r\n") + b"5\r\nhello\r\n0\r\n\r\n",
        413,
        "new",
    ),
    "Content-Length + Transfer-Encoding": (
        get(headers=b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n") + b"0\r\n\r\n",
        400,
        "new",
    ),
    "control byte in method": (get(method=b"G\x01T"), 400, "new"),
    "POST": (get(method=b"POST"), 405, "new"),
    "bad X-Request-Timeout-Ms": (get(headers=b"X-Request-Timeout-Ms: 1e3\r\n"), 400, "new"),
}


class TestHostileInputs:
    @pytest.mark.parametrize("name", list(HOSTILE))
    async def test_answer(self, target: Target, name: str) -> None:
        data, status, request_id = HOSTILE[name]
        resp = await raw_request(target, data)
        assert resp.status == status, resp.body[:200]
        assert_clean(resp)
        # Requests aiohttp's parser refuses (before any handler) are problems with an id too.
        if request_id == "new":
            assert PLAIN_ID.fullmatch(resp.header("X-Request-ID") or "")
        else:
            assert resp.header("X-Request-ID") == request_id.removeprefix("echo:")
        if status >= 400:
            assert resp.header("Content-Type") == "application/problem+json"
            # Parser refusals too: never stored, and the headers every answer carries.
            assert resp.header("Cache-Control") == "no-store"
            assert "total;dur=" in (resp.header("Server-Timing") or "")
            assert "Accept-Encoding" in (resp.header("Vary") or "")


class TestProtocol:
    async def test_head_works(self, target: Target) -> None:
        resp = await raw_request(target, get(method=b"HEAD"), head=True)
        assert resp.status == 200
        assert resp.header("Content-Type") == "application/json"

    async def test_slow_header_trickle_is_cut(self, target: Target) -> None:
        """A client that never finishes its request head is disconnected (slowloris)."""
        reader, writer = await asyncio.open_connection(*address(target))
        started = time.monotonic()
        try:
            writer.write(b"GET /product-details/P001 HTTP/1.1\r\nHost: bff\r\n")
            for i in range(40):  # bounded: one header line every 50 ms, 2 s at most
                if reader.at_eof():
                    break
                writer.write(b"X-Slow-%d: 1\r\n" % i)
                await writer.drain()
                await asyncio.sleep(0.05)
            data = await asyncio.wait_for(reader.read(), STEP_S)
        except ConnectionResetError:
            data = b""
        finally:
            writer.close()
        assert data == b""
        assert time.monotonic() - started < 1.5

    async def test_idle_keep_alive_connection_is_closed(self, target: Target) -> None:
        reader, writer = await asyncio.open_connection(*address(target))
        try:
            writer.write(b"GET /no-such-path HTTP/1.1\r\nHost: bff\r\n\r\n")
            await asyncio.wait_for(reader.readuntil(b'"requestId"'), STEP_S)
            await asyncio.wait_for(reader.readuntil(b"}"), STEP_S)
            started = time.monotonic()
            assert await asyncio.wait_for(reader.read(), STEP_S) == b""
            assert time.monotonic() - started < 1.5
        finally:
            writer.close()


def parse_errors(text: str) -> dict[str, float]:
    return {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "bff_http_parse_errors_total"
    }


class TestParserErrors:
    """aiohttp's parser refuses these before any middleware; they still get a problem with a
    request id, our fixed headers, and a count by reason."""

    @pytest.mark.parametrize(
        ("data", "reason", "detail"),
        [
            (
                b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                "line_too_long",
                "the request line or a header is too long",
            ),
            (
                b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",
                "bad_method",
                "the request method is not valid HTTP",
            ),
            (
                b"GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n",
                "malformed",
                "the request is not valid HTTP",
            ),
        ],
        ids=["oversized-line", "bad-method", "nul-in-header"],
    )
    async def test_a_problem_with_an_id(
        self,
        serve: Serve,
        bff: BffClient,
        admin_for: AdminFor,
        capsys: pytest.CaptureFixture[str],
        data: bytes,
        reason: str,
        detail: str,
    ) -> None:
        admin = await admin_for(bff)
        async with admin.get("/metrics") as resp:
            before = parse_errors(await resp.text()).get(reason, 0.0)
        answer = await raw_request(await serve(), data)
        assert answer.status == 400
        assert answer.header("Content-Type") == "application/problem+json"
        assert answer.header("Server") == "bff"
        assert answer.header("X-Content-Type-Options") == "nosniff"
        request_id = answer.header("X-Request-ID")
        assert request_id is not None
        assert len(request_id) == 32
        assert json.loads(answer.body) == {
            "type": "/problems/invalid-request",
            "title": "Invalid request",
            "status": 400,
            "detail": detail,
            "instance": "/",
            "requestId": request_id,
        }
        # What every answer of the public port carries, though no middleware saw this one.
        assert answer.header("Vary") == "Accept-Encoding, Accept-Language, Authorization"
        assert answer.header("Server-Timing") == "total;dur=0.0"
        (line,) = [s for s in capsys.readouterr().out.splitlines() if request_id in s]
        assert re.search(r"\] request\s", line), line  # the access line, as for any request
        assert f"parse_error={reason} " in line
        assert line.endswith(" status=400")
        async with admin.get("/metrics") as resp:
            after = parse_errors(await resp.text()).get(reason, 0.0)
        assert after - before == 1
