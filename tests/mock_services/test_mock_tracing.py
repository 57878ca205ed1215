"""The mocks trace like real services: a server span continuing the caller's `traceparent`,
configured by the standard OTEL_* variables only, and nothing at all when unconfigured."""

from __future__ import annotations

import pytest
from mock_support import put_faults
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pytest_aiohttp import AiohttpClient

from mock_services import create_service_app
from mock_services.tracing import provider_from_env

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class TestConfiguration:
    @pytest.mark.parametrize(
        "env",
        [
            {},
            {"OTEL_SERVICE_NAME": "x"},
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"},
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"},
        ],
    )
    def test_off(self, env: dict[str, str]) -> None:
        assert provider_from_env("reviews", env) is None

    def test_on_with_an_endpoint_under_the_service_name(self) -> None:
        provider = provider_from_env("reviews", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
        assert provider is not None
        try:
            assert provider.resource.attributes["service.name"] == "reviews"
        finally:
            provider.shutdown()


class TestServerSpan:
    async def test_continues_the_callers_trace(self, aiohttp_client: AiohttpClient) -> None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        client = await aiohttp_client(
            create_service_app("reviews", latency_scale=0, tracer_provider=provider)
        )
        await put_faults(client, error_rate=1)
        headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
        async with client.get("/reviews/P001", headers=headers) as resp:
            assert resp.status == 503
        async with client.get("/__stats") as resp:  # admin calls are not traced
            assert resp.status == 200
        (span,) = exporter.get_finished_spans()
        assert span.name == "GET /reviews/{id}"
        assert span.kind is SpanKind.SERVER
        assert f"{span.context.trace_id:032x}" == TRACE_ID
        assert span.parent is not None
        assert f"{span.parent.span_id:016x}" == PARENT_ID
        attrs = span.attributes or {}
        assert attrs["http.response.status_code"] == 503
        assert attrs["mock.fault"] == "error"
        assert span.status.status_code is StatusCode.ERROR
