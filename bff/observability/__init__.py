"""What operators see of the BFF: logs (structlog), traces (OpenTelemetry), metrics (Prometheus).

`tracing` (provider, the request's trace context), `middleware` (server span and request
metrics), `downstream` (a client span per attempt, the breaker hook), `metrics`, `logging`.
See docs/observability.md.
"""
