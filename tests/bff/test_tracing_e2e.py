"""End to end: `python -m bff` and `python -m mock_services`, started as users start them,
export OTLP/HTTP to a collector (a small receiver on loopback, decoding the protobuf), and
one request shows as one trace: BFF server span -> a client span per call -> each service.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from process_support import TIMEOUT_S, running, url_in
from pytest_aiohttp import AiohttpServer

TRACE_ID = "5b8efff798038103d269b633813fc60c"
PARENT_ID = "eee19b7ec3c1b174"
TOKEN = "Bearer e2e-s3cr3t"
SERVICES = {"bff-e2e", "product", "reviews", "inventory"}


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    events: tuple[str, ...]


class Collector:
    """Keeps every span posted to `/v1/traces`."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.received = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        self.spans.extend(self._spans(export))
        self.received.set()
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    @staticmethod
    def _spans(export: ExportTraceServiceRequest) -> Iterator[Span]:
        for rs in export.resource_spans:
            resource = {a.key: a.value.string_value for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    yield Span(
                        service=resource["service.name"],
                        name=s.name,
                        kind=s.kind,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(),
                        attributes={a.key: a.value for a in s.attributes},
                        events=tuple(e.name for e in s.events),
                    )

    def in_trace(self, trace_id: str) -> list[Span]:
        return [s for s in self.spans if s.trace_id == trace_id]

    async def wait_for_services(self, trace_id: str, services: set[str]) -> None:
        async with asyncio.timeout(TIMEOUT_S):
            while {s.service for s in self.in_trace(trace_id)} != services:
                self.received.clear()
                await self.received.wait()


SERVER, CLIENT = 2, 3  # Span.SpanKind in the OTLP protobuf


@pytest.mark.slow
async def test_bff_and_mocks_export_one_trace(aiohttp_server: AiohttpServer) -> None:
    collector = Collector()
    receiver = web.Application()
    receiver.router.add_post("/v1/traces", collector.handle)
    server = await aiohttp_server(receiver)
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": str(server.make_url("")).rstrip("/"),
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # ms: export soon after the request
    }
    mock_args = ["-m", "mock_services", "--latency-scale=0", "--lab-port=0"]
    mock_args += [f"--{kind}-port=0" for kind in ("product", "reviews", "inventory")]
    async with running(mock_args, otel) as (_, mock_out):
        urls = {}
        for _ in range(3):
            name, url = (await mock_out.next_matching("http://")).split()
            urls[f"BFF_{name.upper()}_URL"] = url
        env = {**otel, **urls, "OTEL_SERVICE_NAME": "bff-e2e", "BFF_LOG_FORMAT": "json"}
        async with running(["-m", "bff", "--port=0", "--workers=1"], env) as (bff, bff_out):
            base = url_in(await bff_out.next_matching("bff listening on"))
            headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "Authorization": TOKEN}
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(f"{base}/product-details/P001", headers=headers) as resp,
            ):
                assert resp.status == 200
                assert (await resp.json())["degraded"] == {}
            await collector.wait_for_services(TRACE_ID, SERVICES)
        assert bff.returncode == 0

    spans = collector.in_trace(TRACE_ID)
    (root,) = [s for s in spans if s.service == "bff-e2e" and s.kind == SERVER]
    assert root.name == "GET /product-details/{id}"
    assert root.parent_id == PARENT_ID
    clients = [s for s in spans if s.service == "bff-e2e" and s.kind == CLIENT]
    assert sorted(c.name for c in clients) == [
        "GET /inventory/{id}",
        "GET /products/{id}",
        "GET /reviews/{id}",
    ]
    assert {c.parent_id for c in clients} == {root.span_id}
    by_id = {c.span_id: c for c in clients}
    for service in ("product", "reviews", "inventory"):
        (mock,) = [s for s in spans if s.service == service]
        assert mock.kind == SERVER
        caller = by_id[mock.parent_id]  # each service's span hangs under the BFF's attempt
        assert caller.attributes["bff.service"].string_value == service

    # The BFF's own stdout: JSON lines, the access line in this trace, no credential.
    logs = [json.loads(line) for line in bff_out.seen if line.startswith("{")]
    (access,) = [line for line in logs if line["event"] == "request"]
    assert access["trace_id"] == TRACE_ID
    assert access["span_id"] == root.span_id
    assert not [line for line in bff_out.seen if "s3cr3t" in line]
