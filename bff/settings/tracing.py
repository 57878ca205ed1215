"""Whether to trace at all. Everything else about tracing is the OpenTelemetry SDK's: it
reads its own variables (endpoint, service name, sampler, headers, timeouts, batching)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bff.settings.environment import SettingsError

__all__ = ["TracingSettings", "tracing_from"]

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass(frozen=True, slots=True)
class TracingSettings:
    # Off unless an OTLP endpoint (or OTEL_TRACES_EXPORTER=otlp) is configured: nothing
    # configured means no spans are made at all, not spans made and dropped.
    enabled: bool = False
    # How long a stopping worker waits for its last spans to leave (collector may be down).
    flush_timeout_s: float = 2.0


def tracing_from(environ: Mapping[str, str]) -> TracingSettings:
    """On with an endpoint or `OTEL_TRACES_EXPORTER=otlp`; off with `OTEL_SDK_DISABLED=true`
    or `OTEL_TRACES_EXPORTER=none`. Only OTLP over HTTP is built in, so another exporter
    stops start-up rather than silently exporting nothing."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return TracingSettings()
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter not in {"", "otlp", "none"}:
        raise SettingsError(
            f"OTEL_TRACES_EXPORTER={exporter!r}: only 'otlp' (OTLP over HTTP) or 'none'"
        )
    configured = any(environ.get(name, "").strip() for name in _ENDPOINTS)
    return TracingSettings(enabled=exporter == "otlp" or (exporter == "" and configured))
