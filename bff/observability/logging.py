"""structlog set-up and the access line: one JSON object per line, or colored console lines.

JSON is the default when stdout is not a terminal. Header values are never logged except the
request id (validated plain); `Authorization` and cookies cannot reach a log line from here.
Every line written while a request is served carries its `trace_id` and `span_id` (the server
span's, or the pass-through ids when tracing is off), read from `bff.context.CURRENT`.

The access line is the one line most requests write, so it is cheap: built once from the
request's `Report` (no per-request copies of the context), rendered by msgspec in one pass,
and written to stdout in batches (`BatchedOutput`): a write system call per line cost more
than the rest of the line, and under load the lines of one loop turn go out together. A
warning or an error flushes at once (with everything before it), and so does the end of the
process; a batch waits at most `FLUSH_PERIOD_S` otherwise, so a crash loses at most that much
of the access log, never a warning.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
from typing import Any, BinaryIO

import msgspec
import structlog

from bff.context import CURRENT, Report

log: structlog.typing.FilteringBoundLogger = structlog.get_logger("bff")
_encode = msgspec.json.Encoder(enc_hook=str).encode
# Past this many buffered bytes a batch goes out at once (a pipe's buffer is 64 KiB).
BATCH_BYTES = 32 * 1024
FLUSH_PERIOD_S = 0.1
_URGENT = frozenset({"warning", "error", "critical", "exception"})
_access = True  # False at WARNING and above: the access line is not even built


class BatchedOutput:
    """A binary stream written in batches: see the module's docstring."""

    __slots__ = ("__weakref__", "_chunks", "_scheduled", "_size", "_stream", "urgent")

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._chunks: list[bytes] = []
        self._size = 0
        self._scheduled = False
        self.urgent = False  # set by the renderer for a warning or an error

    def write(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)

    def flush(self) -> None:
        """Called after every line (structlog's BytesLogger): the batch goes out now only when
        it is urgent, large, or no loop runs to send it later."""
        if self.urgent or self._size >= BATCH_BYTES:
            self.flush_now()
            return
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush_now()
            return
        self._scheduled = True
        loop.call_later(FLUSH_PERIOD_S, self.flush_now)

    def flush_now(self) -> None:
        self._scheduled = False
        self.urgent = False
        if not self._chunks:
            return
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        try:
            self._stream.write(data)
            self._stream.flush()
        except (OSError, ValueError):  # stdout gone (a closed pipe): nothing left to tell
            pass


_OUTPUT: BatchedOutput | None = None


def add_trace_ids(_: Any, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    ids = CURRENT.get()
    if ids is not None:
        event["trace_id"] = ids.trace_id
        event["span_id"] = ids.span_id
    return event


def _render_json(_: Any, method: str, event: structlog.typing.EventDict) -> bytes:
    if method in _URGENT and _OUTPUT is not None:
        _OUTPUT.urgent = True
    return _encode(event)


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
    global _OUTPUT, _access
    numeric = logging.getLevelNamesMapping()[level]
    _access = numeric <= logging.INFO
    factory: Any
    if fmt == "json":
        if _OUTPUT is not None:
            _OUTPUT.flush_now()
        _OUTPUT = BatchedOutput(sys.stdout.buffer)
        atexit.register(_OUTPUT.flush_now)
        factory = structlog.BytesLoggerFactory(_OUTPUT)  # type: ignore[arg-type]
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


def flush_logs() -> None:
    """Send what is batched now (at the end of a worker, and in tests)."""
    if _OUTPUT is not None:
        _OUTPUT.flush_now()


def access_log(
    request_id: str, method: str, route: str | None, status: int, report: Report
) -> None:
    """The request's line: its status and time, and per part its outcome, attempts and where
    its value came from when not from a live call of its own ("cache", "stale",
    "coalesced", "revalidated")."""
    if not _access:
        return
    parts = report.parts
    if not parts:
        log.info(
            "request",
            request_id=request_id,
            method=method,
            route=route,
            status=status,
            duration_ms=round(report.total_s * 1000, 2),
        )
        return
    log.info(
        "request",
        request_id=request_id,
        method=method,
        route=route,
        status=status,
        duration_ms=round(report.total_s * 1000, 2),
        parts={
            p.service: {"outcome": p.outcome, "attempts": p.attempts, "source": p.source}
            if p.source
            else {"outcome": p.outcome, "attempts": p.attempts}
            for p in parts
        },
        degraded=report.degraded,
        stale=report.stale,
    )
