"""Backoff between attempts: exponential with full jitter (the AWS architecture blog's
"Exponential Backoff and Jitter": it spreads the retries of many callers the most)."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))] (attempt counts from 1)."""
    return random.uniform(0.0, min(max_s, base_s * (2 ** (attempt - 1))))
