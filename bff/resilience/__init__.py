"""Resilience policy parts: breaker, instance pool and discovery, latency window, retry and
hedge budgets, the loop-lag probe.

Each part is small and knows nothing about HTTP; `bff.client` composes them around every
downstream call in one documented order.
"""
