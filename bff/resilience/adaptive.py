"""Adaptive concurrency limit: how many requests one worker serves at once, learnt from latency.

A fixed in-flight cap is either too low (refuses work the worker could do) or too high (lets a
saturated worker queue requests until they all miss their deadline). This limit follows the
latency the worker actually delivers, the way Netflix's concurrency-limits `Gradient2` does,
plus one signal of our own, the time requests waited in the worker before their handler ran:

    gradient = clamp(tolerance * long_rtt / short_rtt, 0.5, 1.0)
    gradient = min(gradient, queue_target / short_queue)   (when short_queue > queue_target)
    target   = limit * gradient + max(queue_size, sqrt(limit))
    limit    = clamp((1 - smoothing) * limit + smoothing * target, min, max)

- Samples are taken in windows of `window` requests: `short_rtt` and `short_queue` are a
  window's means, and the limit moves once per window. One request's latency is noise (a
  jittery downstream, one slow part at the deadline); a window's mean is the worker's. Counting
  windows in requests rather than seconds keeps the reaction time proportional to the traffic
  (at 1,000 requests/s, 50 updates a second: from 1,024 to 100 in under half a second).
- `long_rtt` is an exponential average over ~`long_window` windows: the latency of the worker
  when it is not queueing. Latency alone cannot tell a slow downstream from a busy worker, and
  a long overload slowly becomes the "norm"; the queue time can: a worker whose loop runs late
  makes every request wait before its handler, whatever the downstreams do. Past
  `queue_target` on average, the limit shrinks in proportion, so the loop stays short enough
  for a refusal to be answered within milliseconds.
- While samples stay within `tolerance` of the long average the gradient is 1 and the limit
  grows by `queue_size` or its square root (Envoy's headroom), whichever is larger, a window
  (probing for more); when latency climbs because requests queue, the gradient falls below 1
  and the limit shrinks, by at most half a step.
- A worker that is not using its limit (in flight < limit / 2) learns nothing about its
  capacity, so the limit does not grow then (Gradient2's "app-limited" rule); it still shrinks.
- When latency drops back after a long overload, the long average is pulled down quickly
  (by 5% a window while it is over twice the short one).

Refusing is the caller's job: `acquire()` only says whether there is room. The cost is a few
float operations per request and no lock (one event loop per worker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AdaptiveLimitPolicy:
    initial: int = 64
    minimum: int = 16
    maximum: int = 1024
    # Latency may exceed its long-run average by this factor before it counts as queueing.
    tolerance: float = 1.5
    smoothing: float = 0.2
    # Growth per window while latency is steady: how fast the limit probes upwards.
    queue_size: float = 4.0
    window: int = 20
    long_window: int = 100
    # The long average starts from the mean of the first windows rather than from one outlier.
    warmup: int = 10
    # Mean wait before the handler that counts as a loop running late; None: not used.
    queue_target_s: float | None = None


class AdaptiveLimit:
    __slots__ = (
        "_count",
        "_long_rtt",
        "_policy",
        "_window_in_flight",
        "_window_n",
        "_window_queue",
        "_window_rtt",
        "in_flight",
        "limit",
    )

    def __init__(self, policy: AdaptiveLimitPolicy | None = None) -> None:
        self._policy = policy or AdaptiveLimitPolicy()
        self.limit = float(self._policy.initial)
        self.in_flight = 0
        self._long_rtt = 0.0
        self._count = 0
        self._window_rtt = 0.0
        self._window_queue = 0.0
        self._window_n = 0
        self._window_in_flight = 0

    def acquire(self) -> bool:
        """Take a slot if the limit allows one; False means refuse the request now."""
        if self.in_flight >= int(self.limit):
            return False
        self.in_flight += 1
        return True

    def release(self, rtt_s: float | None, queued_s: float = 0.0) -> None:
        """Give the slot back; `rtt_s` is the request's latency, None if it says nothing, and
        `queued_s` the part of it spent waiting before its handler ran.

        Pass None for requests whose latency is not the worker's (refused by a later check,
        cancelled by the client): they would teach the limit a latency it did not deliver.
        """
        in_flight = self.in_flight
        self.in_flight = in_flight - 1
        if rtt_s is None or rtt_s <= 0:
            return
        self._window_rtt += rtt_s
        self._window_queue += queued_s
        self._window_n += 1
        self._window_in_flight = max(self._window_in_flight, in_flight)
        n = self._window_n
        if n >= self._policy.window:
            self._update(self._window_rtt / n, self._window_queue / n, self._window_in_flight)
            self._window_rtt = self._window_queue = 0.0
            self._window_n = self._window_in_flight = 0

    @property
    def long_rtt(self) -> float:
        return self._long_rtt

    def _update(self, short_rtt: float, short_queue: float, in_flight: int) -> None:
        p = self._policy
        self._count += 1
        if self._count <= p.warmup:
            # Plain mean of the first windows, then an exponential average.
            self._long_rtt += (short_rtt - self._long_rtt) / self._count
        else:
            self._long_rtt += (short_rtt - self._long_rtt) * (2.0 / (p.long_window + 1))
        if self._long_rtt > 2 * short_rtt:
            self._long_rtt *= 0.95
        gradient = max(0.5, min(1.0, p.tolerance * self._long_rtt / short_rtt))
        if p.queue_target_s is not None and short_queue > p.queue_target_s:
            gradient = max(0.5, min(gradient, p.queue_target_s / short_queue))
        if gradient >= 1.0 and in_flight < self.limit / 2:
            return  # app-limited: nothing learnt about how much more the worker could take
        target = self.limit * gradient + max(p.queue_size, math.sqrt(self.limit))
        limit = (1 - p.smoothing) * self.limit + p.smoothing * target
        self.limit = max(float(p.minimum), min(float(p.maximum), limit))
