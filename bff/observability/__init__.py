"""Logs (structlog), and later traces and metrics: what operators see of the BFF."""
