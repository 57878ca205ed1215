"""Traces: one server span per request, one client span per attempt, events for what the BFF
decided, and W3C trace context carried to the mock services (which trace too).

Spans go to an `InMemorySpanExporter` through a `SimpleSpanProcessor`, on providers passed to
the app factories: no global OpenTelemetry state is touched. At the end, end to end: `python
-m bff` and `python -m mock_services`, started as users start them, export OTLP/HTTP to a
collector (a small receiver on loopback, decoding the protobuf), and one request shows as one
trace: BFF server span -> a client span per call -> each service."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from bff_support import KINDS, BffClient, Mocks, timed_get
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from process_support import TIMEOUT_S, running, url_in
from pytest_aiohttp import AiohttpClient, AiohttpServer
from settings_support import tuned

from bff.app import create_app
from bff.keys import TELEMETRY
from bff.observability.tracing import build_tracer_provider
from bff.settings import Settings, SettingsError
from mock_services import create_service_app

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


PARENT_ID = "00f067aa0ba902b7"


TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


def provider(exporter: InMemorySpanExporter, service: str) -> TracerProvider:
    tp = TracerProvider(resource=Resource.create({"service.name": service}))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


@pytest.fixture
async def traced_mocks(
    aiohttp_server: AiohttpServer, exporter: InMemorySpanExporter
) -> AsyncIterator[Mocks]:
    """The three mock services, tracing into the same exporter as the BFF."""
    servers = {
        k: await aiohttp_server(create_service_app(k, tracer_provider=provider(exporter, k)))
        for k in KINDS
    }
    async with aiohttp.ClientSession() as session:
        yield Mocks(servers, session, aiohttp_server)


@pytest.fixture
def traced_bff(
    aiohttp_client: AiohttpClient, traced_mocks: Mocks, exporter: InMemorySpanExporter
) -> Any:
    async def make(fields: dict[str, Any] | None = None, **env: Any) -> BffClient:
        settings = Settings.from_env({**traced_mocks.env(), **{k: str(v) for k, v in env.items()}})
        settings = tuned(settings, fields or {})
        app = create_app(settings, tracer_provider=provider(exporter, "product-details-bff"))
        return await aiohttp_client(app)

    return make


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def bff_spans(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """(the one server span of the BFF, its client spans in start order)."""
    spans = [s for s in exporter.get_finished_spans() if service_of(s) == "product-details-bff"]
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(servers) == 1, [s.name for s in spans]
    clients = sorted(
        (s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    return servers[0], clients


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    ctx = span.get_span_context()
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


class TestSpanTree:
    """One trace per request: server span, a client span per attempt, the mocks beneath."""

    async def test_server_span_is_named_after_the_route(
        self, traced_bff: Any, exporter: InMemorySpanExporter
    ) -> None:
        bff = await traced_bff()
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
            request_id = resp.headers["X-Request-ID"]
        server, clients = bff_spans(exporter)
        assert server.name == "GET /product-details/{id}"
        attrs = server.attributes or {}
        assert attrs["http.route"] == "/product-details/{id}"
        assert attrs["http.response.status_code"] == 200
        assert attrs["bff.request_id"] == request_id
        assert sorted(c.name for c in clients) == [
            "GET /inventory/{id}",
            "GET /products/{id}",
            "GET /reviews/{id}",
        ]

    async def test_incoming_traceparent_is_continued_down_to_the_mocks(
        self, traced_bff: Any, exporter: InMemorySpanExporter
    ) -> None:
        bff = await traced_bff()
        async with bff.get("/product-details/P001", headers={"traceparent": TRACEPARENT}) as resp:
            assert resp.status == 200
        server, clients = bff_spans(exporter)
        assert hex_ids(server)[0] == TRACE_ID
        assert server.parent is not None
        assert f"{server.parent.span_id:016x}" == PARENT_ID
        assert len(clients) == 3
        server_id = server.get_span_context().span_id
        for client in clients:
            assert hex_ids(client)[0] == TRACE_ID
            assert client.parent is not None
            assert client.parent.span_id == server_id
        mock_spans = {
            service_of(s): s
            for s in exporter.get_finished_spans()
            if s.kind is SpanKind.SERVER and service_of(s) in KINDS
        }
        assert set(mock_spans) == set(KINDS)
        client_ids = {c.get_span_context().span_id for c in clients}
        for span in mock_spans.values():
            assert hex_ids(span)[0] == TRACE_ID
            assert span.parent is not None
            assert span.parent.span_id in client_ids

    async def test_a_new_trace_without_traceparent(
        self, traced_bff: Any, exporter: InMemorySpanExporter
    ) -> None:
        bff = await traced_bff()
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
        server, _ = bff_spans(exporter)
        assert server.parent is None
        assert hex_ids(server)[0] != TRACE_ID

    async def test_client_span_attributes(
        self, traced_bff: Any, traced_mocks: Mocks, exporter: InMemorySpanExporter
    ) -> None:
        bff = await traced_bff()
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
        _, clients = bff_spans(exporter)
        product = next(c for c in clients if c.name == "GET /products/{id}")
        attrs = product.attributes or {}
        assert attrs["bff.service"] == "product"
        assert attrs["bff.instance"] == traced_mocks.url("product")
        assert attrs["bff.attempt"] == 1
        assert attrs["bff.hedge"] is False  # the first request, not a hedge
        assert attrs["bff.outcome"] == "ok"
        assert attrs["bff.breaker.state"] == "closed"
        assert attrs["http.response.status_code"] == 200
        assert attrs["url.full"] == traced_mocks.url("product") + "/products/P001"


class TestDecisionsShowInTheTrace:
    """Retries, a degraded part and a breaker change are visible on the spans."""

    async def test_one_client_span_per_attempt_and_retry_events(
        self, traced_bff: Any, traced_mocks: Mocks, exporter: InMemorySpanExporter
    ) -> None:
        await traced_mocks.faults("reviews", error_rate=1)
        bff = await traced_bff(BFF_DEADLINE_MS=400)
        async with bff.get("/product-details/P001", headers={"traceparent": TRACEPARENT}) as resp:
            assert resp.status == 200
            assert (await resp.json())["degraded"] == {"reviews": "unavailable"}
        server, clients = bff_spans(exporter)
        reviews = [c for c in clients if c.name == "GET /reviews/{id}"]
        sent = await traced_mocks.requests("reviews")
        assert len(reviews) == sent >= 2  # retried at least once
        assert [(c.attributes or {})["bff.attempt"] for c in reviews] == list(range(1, sent + 1))
        for span in reviews:
            assert (span.attributes or {})["bff.outcome"] == "unavailable"
            assert (span.attributes or {})["http.response.status_code"] == 503
            assert span.status.status_code is StatusCode.ERROR
            assert span.parent is not None
            assert span.parent.span_id == server.get_span_context().span_id
        # Every attempt but the last scheduled a retry, with its delay.
        for span in reviews[:-1]:
            (event,) = [e for e in span.events if e.name == "retry_scheduled"]
            assert 0 <= (event.attributes or {})["bff.retry.delay_ms"] <= 60
        assert not [e for e in reviews[-1].events if e.name == "retry_scheduled"]
        # The mock saw each attempt as its own child of that attempt's span.
        mock = [s for s in exporter.get_finished_spans() if service_of(s) == "reviews"]
        assert {s.parent.span_id for s in mock if s.parent} == {
            c.get_span_context().span_id for c in reviews
        }
        degraded = [e for e in server.events if e.name == "degraded"]
        assert [dict(e.attributes or {}) for e in degraded] == [
            {"bff.part": "reviews", "bff.reason": "unavailable"}
        ]
        assert (server.attributes or {})["bff.degraded"] == ("reviews:unavailable",)

    async def test_breaker_change_is_an_event(
        self, traced_bff: Any, traced_mocks: Mocks, exporter: InMemorySpanExporter
    ) -> None:
        await traced_mocks.faults("inventory", error_rate=1)
        bff = await traced_bff(
            {"inventory.breaker.min_calls": 1, "inventory.retry.max_attempts": 1}
        )
        async with bff.get("/product-details/P001") as resp:
            assert (await resp.json())["degraded"] == {"inventory": "unavailable"}
        server, _ = bff_spans(exporter)
        changes = [
            dict(e.attributes or {}) for e in server.events if e.name == "breaker_state_change"
        ]
        assert changes == [
            {"bff.service": "inventory", "bff.breaker.from": "closed", "bff.breaker.to": "open"}
        ]
        exporter.clear()
        # The next request makes no inventory call at all: no client span, and the reason.
        async with bff.get("/product-details/P001") as resp:
            assert (await resp.json())["degraded"] == {"inventory": "circuit_open"}
        server, clients = bff_spans(exporter)
        assert "GET /inventory/{id}" not in [c.name for c in clients]
        assert [dict(e.attributes or {}) for e in server.events if e.name == "degraded"] == [
            {"bff.part": "inventory", "bff.reason": "circuit_open"}
        ]

    async def test_product_failure_marks_the_server_span_as_error(
        self, traced_bff: Any, traced_mocks: Mocks, exporter: InMemorySpanExporter
    ) -> None:
        await traced_mocks.faults("product", malformed_rate=1)
        bff = await traced_bff()
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 502
        server, clients = bff_spans(exporter)
        assert server.status.status_code is StatusCode.ERROR
        assert (server.attributes or {})["http.response.status_code"] == 502
        product = next(c for c in clients if c.name == "GET /products/{id}")
        assert (product.attributes or {})["bff.outcome"] == "bad_response"

    async def test_unknown_route_span_has_the_method_only(
        self, traced_bff: Any, exporter: InMemorySpanExporter
    ) -> None:
        bff = await traced_bff()
        async with bff.get("/nope") as resp:
            assert resp.status == 404
        server, clients = bff_spans(exporter)
        assert server.name == "GET"
        assert clients == []


class TestTracingOff:
    """No tracer: no spans, but the trace context still travels (docs/contract.md §2)."""

    async def test_incoming_traceparent_passes_through(self, bff: BffClient, mocks: Mocks) -> None:
        headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
        async with bff.get("/product-details/P001", headers=headers) as resp:
            assert resp.status == 200
        for kind in KINDS:
            (seen,) = (await mocks.stats(kind))["recent"]
            assert seen["headers"]["traceparent"] == TRACEPARENT
            assert seen["headers"]["tracestate"] == "vendor=1"

    @pytest.mark.parametrize("incoming", [None, "garbage", f"00-{'0' * 32}-{PARENT_ID}-01"])
    async def test_fresh_unsampled_context_otherwise(
        self, bff: BffClient, mocks: Mocks, incoming: str | None
    ) -> None:
        headers = {"traceparent": incoming} if incoming else {}
        async with bff.get("/product-details/P001", headers=headers) as resp:
            assert resp.status == 200
        sent = {(await mocks.stats(k))["recent"][0]["headers"]["traceparent"] for k in KINDS}
        (traceparent,) = sent  # one trace id for the whole request
        version, trace_id, _, flags = traceparent.split("-")
        assert (version, flags) == ("00", "00")
        assert len(trace_id) == 32
        assert trace_id != "0" * 32


class TestSettings:
    """Whether to trace is ours to decide (nothing configured means off); the rest of OTEL_*
    is the SDK's own reading."""

    def test_off_by_default(self) -> None:
        assert not Settings.from_env({}).tracing.enabled

    @pytest.mark.parametrize(
        "on",
        [
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom"},
            {"OTEL_TRACES_EXPORTER": "otlp"},
        ],
    )
    def test_an_endpoint_or_the_otlp_exporter_turns_it_on(self, on: dict[str, str]) -> None:
        assert Settings.from_env(on).tracing.enabled

    @pytest.mark.parametrize(
        "off", [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}]
    )
    def test_switched_off(self, off: dict[str, str]) -> None:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", **off}
        assert not Settings.from_env(env).tracing.enabled

    def test_an_exporter_we_do_not_ship_stops_start_up(self) -> None:
        with pytest.raises(SettingsError, match="OTEL_TRACES_EXPORTER"):
            Settings.from_env({"OTEL_TRACES_EXPORTER": "zipkin"})

    def test_the_sdk_reads_name_sampler_and_endpoint(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_SERVICE_NAME", "shop-bff")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.1")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
        provider = build_tracer_provider()
        try:
            assert provider.resource.attributes["service.name"] == "shop-bff"
            assert "TraceIdRatioBased{0.1}" in provider.sampler.get_description()
            (processor,) = provider._active_span_processor._span_processors
            exporter = processor.span_exporter  # type: ignore[attr-defined]
            assert exporter._endpoint == "http://collector:4318/v1/traces"
        finally:
            provider.shutdown()

    def test_our_service_name_unless_told_otherwise(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
        provider = build_tracer_provider()
        try:
            assert provider.resource.attributes["service.name"] == "product-details-bff"
        finally:
            provider.shutdown()


class TestCollectorDown:
    """An unreachable collector costs dropped spans, never a slow or failed request."""

    async def test_requests_unaffected_and_shutdown_bounded(
        self, aiohttp_client: AiohttpClient, mocks: Mocks, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")  # read by the SDK
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", dead)  # read by the SDK too
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "1")
        settings = Settings.from_env({**mocks.env(), "OTEL_EXPORTER_OTLP_ENDPOINT": dead})
        assert settings.tracing.enabled
        settings = dataclasses.replace(
            settings, tracing=dataclasses.replace(settings.tracing, flush_timeout_s=0.3)
        )
        client = await aiohttp_client(create_app(settings))
        assert client.app[TELEMETRY].tracer is not None  # a real provider, exporting
        for _ in range(5):
            resp, body, took = await timed_get(client, "/product-details/P001")
            assert resp.status == 200
            assert body["degraded"] == {}
            assert took < 0.3  # reference latencies: ~80 ms
        started = time.perf_counter()
        await client.close()
        assert time.perf_counter() - started < 1.5


E2E_TRACE_ID = "5b8efff798038103d269b633813fc60c"


E2E_PARENT_ID = "eee19b7ec3c1b174"


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
            headers = {
                "traceparent": f"00-{E2E_TRACE_ID}-{E2E_PARENT_ID}-01",
                "Authorization": TOKEN,
            }
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(f"{base}/product-details/P001", headers=headers) as resp,
            ):
                assert resp.status == 200
                assert (await resp.json())["degraded"] == {}
            await collector.wait_for_services(E2E_TRACE_ID, SERVICES)
        assert bff.returncode == 0

    spans = collector.in_trace(E2E_TRACE_ID)
    (root,) = [s for s in spans if s.service == "bff-e2e" and s.kind == SERVER]
    assert root.name == "GET /product-details/{id}"
    assert root.parent_id == E2E_PARENT_ID
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
    assert access["trace_id"] == E2E_TRACE_ID
    assert access["span_id"] == root.span_id
    assert not [line for line in bff_out.seen if "s3cr3t" in line]
