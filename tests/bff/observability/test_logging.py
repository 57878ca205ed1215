"""Logs: JSON lines that carry the trace of their request, and never a credential.

The real JSON processor chain runs against a buffer (structlog is reset afterwards).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from bff_support import BffClient, LogLines, MakeBff, Mocks
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pytest_aiohttp import AiohttpClient
from settings_support import tuned

from bff import product_details
from bff.app import create_app
from bff.settings import Settings

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
SECRETS = ("Bearer s3cr3t-t0ken", "session=c00kie-value", "s3cr3t", "c00kie")


def access_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] == "request"]


class TestAccessLine:
    """One JSON line per request with what an operator needs to find it again."""

    async def test_fields(self, bff: BffClient, log_lines: LogLines) -> None:
        async with bff.get("/product-details/P001", headers={"traceparent": TRACEPARENT}) as r:
            assert r.status == 200
            request_id = r.headers["X-Request-ID"]
        (line,) = access_lines(log_lines())
        assert line["request_id"] == request_id
        assert line["trace_id"] == TRACE_ID
        assert len(line["span_id"]) == 16
        assert (line["method"], line["route"], line["status"]) == (
            "GET",
            "/product-details/{id}",
            200,
        )
        assert line["duration_ms"] > 0
        assert line["degraded"] == {}
        assert line["parts"]["reviews"] == {"outcome": "ok", "attempts": 1}
        assert line["level"] == "info"
        assert "timestamp" in line

    async def test_degraded_parts_with_reasons_and_attempts(
        self, make_bff: MakeBff, mocks: Mocks, log_lines: LogLines
    ) -> None:
        await mocks.faults("inventory", error_rate=1)
        bff = await make_bff(BFF_DEADLINE_MS=400)
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
        (line,) = access_lines(log_lines())
        assert line["degraded"] == {"inventory": "unavailable"}
        inventory = line["parts"]["inventory"]
        assert inventory["outcome"] == "unavailable"
        assert inventory["attempts"] == await mocks.requests("inventory")

    async def test_lines_carry_the_trace_of_their_span(
        self,
        aiohttp_client: AiohttpClient,
        mocks: Mocks,
        log_lines: LogLines,
    ) -> None:
        """Tracing on: the access line and a breaker line name the request's server span."""
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        settings = tuned(Settings.from_env(mocks.env()), {"reviews.breaker.min_calls": 1})
        bff = await aiohttp_client(create_app(settings, tracer_provider=provider))
        await mocks.faults("reviews", error_rate=1)
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
        (server,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
        ctx = server.get_span_context()
        lines = log_lines()
        breaker = [line for line in lines if line["event"] == "breaker_transition"]
        assert breaker
        for line in [*access_lines(lines), *breaker]:
            assert line["trace_id"] == f"{ctx.trace_id:032x}"
            assert line["span_id"] == f"{ctx.span_id:016x}"


class TestNothingSensitive:
    async def test_credentials_appear_in_no_line(
        self, make_bff: MakeBff, mocks: Mocks, log_lines: LogLines
    ) -> None:
        await mocks.faults("reviews", error_rate=1)  # more lines: retries, a breaker, a 5xx
        bff = await make_bff({"reviews.breaker.min_calls": 1})
        headers = {"Authorization": SECRETS[0], "Cookie": SECRETS[1]}
        for path in ("/product-details/P001", "/product-details/bad!id", "/nope"):
            async with bff.get(path, headers=headers) as resp:
                await resp.read()
        lines = log_lines()
        assert len(access_lines(lines)) == 3
        text = json.dumps(lines)
        for secret in SECRETS:
            assert secret not in text

    async def test_unexpected_exception_traceback_in_the_log_only(
        self, bff: BffClient, log_lines: LogLines, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(*_: Any) -> None:
            raise RuntimeError("internal detail 42")

        monkeypatch.setattr(product_details, "_merge", broken)
        async with bff.get("/product-details/P001", headers={"traceparent": TRACEPARENT}) as r:
            assert r.status == 500
            body = await r.text()
        assert "internal detail 42" not in body
        assert "Traceback" not in body
        (error,) = [line for line in log_lines() if line["event"] == "unhandled_error"]
        assert error["level"] == "error"
        assert "RuntimeError: internal detail 42" in error["exception"]
        assert error["trace_id"] == TRACE_ID
