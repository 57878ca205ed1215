"""Resilience policy parts: breaker, retry budget, backoff, instance pool, latency window.

Each part is small and knows nothing about HTTP; `bff.clients.base` composes them around every
downstream call in one documented order.
"""
