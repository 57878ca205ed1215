"""What operators see of the BFF: logs (structlog), traces (OpenTelemetry), metrics (Prometheus).

`logging` (the access line), `tracing` (the provider), `spans` (a client span per attempt, the
breaker hook), `metrics` (counted where they happen, flushed once a second), `sampler`
(process figures). The request's server span is made by `bff.middleware`. See
docs/observability.md.
"""
