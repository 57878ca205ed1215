"""structlog set-up and the access line: one JSON object per line, or colored console lines.

JSON is the default when stdout is not a terminal. Header values are never logged except the
request id (validated plain); `Authorization` and cookies cannot reach a log line from here.
Every line written while a request is served carries its `trace_id` and `span_id` (the server
span's, or the pass-through ids when tracing is off), read from `tracing.CURRENT`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import structlog
from aiohttp import web

from bff.context import PartReport, Report
from bff.observability.tracing import CURRENT

log: structlog.typing.FilteringBoundLogger = structlog.get_logger("bff")
_encode = msgspec.json.Encoder(enc_hook=str).encode


def _render_json(_: Any, __: str, event: structlog.typing.EventDict) -> bytes:
    return _encode(event)


def add_trace_ids(_: Any, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    ids = CURRENT.get()
    if ids is not None:
        event["trace_id"] = ids.trace_id
        event["span_id"] = ids.span_id
    return event


def processors_for(fmt: str, *, colors: bool = False) -> list[structlog.typing.Processor]:
    """The processor chain of `fmt` (tests run the JSON one against a buffer)."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        return [*shared, structlog.processors.format_exc_info, _render_json]
    return [*shared, structlog.dev.ConsoleRenderer(colors=colors)]


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    numeric = logging.getLevelNamesMapping()[level]
    factory: Any
    if fmt == "json":
        factory = structlog.BytesLoggerFactory(sys.stdout.buffer)
    else:
        factory = structlog.PrintLoggerFactory(sys.stdout)
    structlog.configure(
        processors=processors_for(fmt, colors=sys.stdout.isatty()),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library: keep their warnings, on stderr.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)


def access_log(
    request: web.Request,
    request_id: str,
    status: int,
    report: Report,
) -> None:
    if not log.is_enabled_for(logging.INFO):
        return  # at WARNING (the benchmark's level) build nothing: the line would be dropped
    fields: dict[str, Any] = {}
    if report.parts:
        # Per part: its outcome, attempts, and where its value came from when not from a
        # live call of its own ("cache", "stale", "coalesced").
        fields["parts"] = {p.service: _part_fields(p) for p in report.parts}
        fields["degraded"] = report.degraded  # part -> reason, as in the answer
        fields["stale"] = report.stale  # part -> age in seconds, as in the answer
    resource = request.match_info.route.resource
    log.info(
        "request",
        request_id=request_id,
        method=request.method,
        route=resource.canonical if resource is not None else None,
        status=status,
        duration_ms=round(report.total_s * 1000, 2),
        **fields,
    )


def _part_fields(part: PartReport) -> dict[str, Any]:
    fields: dict[str, Any] = {"outcome": part.outcome, "attempts": part.attempts}
    if part.source:
        fields["source"] = part.source
    return fields
