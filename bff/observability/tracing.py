"""Traces: the tracer provider, and the trace context of the request being served.

Two paths, chosen once per app:

- tracing on (`Settings.tracing.enabled`, or a provider injected by a test): a real SDK
  `TracerProvider` built here and passed explicitly, never installed globally (the global one
  can be set once per process). Spans go through a `BatchSpanProcessor`, whose thread runs the
  OTLP/HTTP exporter: the event loop only appends to a queue, and an unreachable collector
  costs dropped spans, never a slow request.
- tracing off: no span objects at all. The request still gets a W3C trace context, so the
  contract's `traceparent` goes downstream and log lines carry a trace id: an incoming
  `traceparent` is passed through unchanged, otherwise fresh ids are drawn (not sampled).

The request's own trace ids (the server span's, or the pass-through ones) are
`bff.context.RequestTrace`, in `bff.context.CURRENT` while it is served: log lines and
downstream attempts read them there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

INSTRUMENTATION = "bff"
# Our name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise.
DEFAULT_SERVICE_NAME = "product-details-bff"


def build_tracer_provider() -> TracerProvider:
    """An SDK provider exporting OTLP/HTTP in batches. Starts the exporter's thread.

    The SDK reads its own variables: the endpoint (OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT), the
    sampler (OTEL_TRACES_SAMPLER[_ARG]), the resource, headers, timeouts and batching."""
    resource = Resource.create({SERVICE_NAME: DEFAULT_SERVICE_NAME}).merge(
        OTELResourceDetector().detect()
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # With the collector down, the batch queue fills and the SDK warns once per dropped span:
    # that would flood stderr exactly when things are already bad. Export errors still show.
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)
    return provider


async def shutdown_provider(provider: TracerProvider, timeout_s: float) -> None:
    """Flush and stop, waiting at most `timeout_s`: a dead collector must not hold up exit.

    The SDK's shutdown blocks (it joins the export thread), so it runs in a daemon thread of
    its own, not in the loop's executor (whose shutdown would wait for it without bound).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finished() -> None:
        if not done.done():
            done.set_result(None)

    def run() -> None:
        try:
            provider.shutdown()
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(finished)

    threading.Thread(target=run, name="bff-otel-shutdown", daemon=True).start()
    await asyncio.wait({done}, timeout=timeout_s)


class Telemetry:
    """What the app traces with: a tracer, or None for the no-span path."""

    __slots__ = ("tracer",)

    def __init__(self, tracer: trace.Tracer | None = None) -> None:
        self.tracer = tracer
