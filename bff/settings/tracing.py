"""Tracing settings from the standard OTEL_* variables (OpenTelemetry's own names)."""

from __future__ import annotations

from dataclasses import dataclass

from bff.settings.parse import Reader, http_url, ratio

SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """What the standard OTEL_* variables decide; the SDK reads its finer knobs itself
    (OTEL_EXPORTER_OTLP_HEADERS/_TIMEOUT, OTEL_BSP_*, OTEL_RESOURCE_ATTRIBUTES)."""

    # Off unless an OTLP endpoint (or OTEL_TRACES_EXPORTER=otlp) is configured: nothing
    # configured means no spans are made at all, not spans made and dropped.
    enabled: bool = False
    endpoint: str = "http://localhost:4318/v1/traces"
    service_name: str = "product-details-bff"
    sampler: str = "parentbased_always_on"
    sampler_arg: float = 1.0
    # How long a stopping worker waits for its last spans to leave (collector may be down).
    flush_timeout_s: float = 2.0


def read_tracing(read: Reader) -> TracingSettings:
    default = TracingSettings()
    if read("OTEL_SDK_DISABLED", str, "false").lower() == "true":
        return default
    exporter = read("OTEL_TRACES_EXPORTER", _traces_exporter, None)
    endpoint = read("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", http_url, None)
    if endpoint is None:
        base = read("OTEL_EXPORTER_OTLP_ENDPOINT", http_url, None)
        endpoint = None if base is None else base.rstrip("/") + "/v1/traces"
    return TracingSettings(
        enabled=exporter == "otlp" or (exporter is None and endpoint is not None),
        endpoint=endpoint or default.endpoint,
        service_name=read("OTEL_SERVICE_NAME", str, default.service_name),
        sampler=read("OTEL_TRACES_SAMPLER", _sampler, default.sampler),
        sampler_arg=read("OTEL_TRACES_SAMPLER_ARG", ratio, default.sampler_arg),
    )


def _traces_exporter(raw: str) -> str:
    value = raw.lower()
    if value not in {"otlp", "none"}:
        raise ValueError("only 'otlp' (OTLP over HTTP) or 'none' are supported")
    return value


def _sampler(raw: str) -> str:
    value = raw.lower()
    if value not in SAMPLERS:
        raise ValueError(f"must be one of {', '.join(sorted(SAMPLERS))}")
    return value
