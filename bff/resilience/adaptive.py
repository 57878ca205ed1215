"""Adaptive concurrency limit: how many requests one worker serves at once, learnt from latency.

A fixed in-flight cap is either too low (refuses work the worker could do) or too high (lets a
saturated worker queue requests until they all miss their deadline). This limit follows the
latency the worker actually delivers, the way Netflix's concurrency-limits `Gradient2` does:

    gradient = clamp(tolerance * long_rtt / short_rtt, 0.5, 1.0)
    target   = limit * gradient + queue_size
    limit    = clamp((1 - smoothing) * limit + smoothing * target, min, max)

- `long_rtt` is an exponential average over ~`long_window` samples: the latency of the worker
  when it is not queueing. `short_rtt` is the latest sample.
- While samples stay within `tolerance` of the long average the gradient is 1 and the limit
  grows by `queue_size` a step (probing for more); when latency climbs because requests queue,
  the gradient falls below 1 and the limit shrinks, by at most half a step.
- A worker that is not using its limit (in flight < limit / 2) learns nothing about its
  capacity from a sample, so the limit does not grow then (Gradient2's "app-limited" rule).
- When latency drops back after a long overload, the long average is pulled down quickly
  (by 5% a sample while it is over twice the short one) instead of taking `long_window`
  samples to forget the overload.

Refusing is the caller's job: `acquire()` only says whether there is room. The cost is a few
float operations per request and no lock (one event loop per worker).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AdaptiveLimitPolicy:
    initial: int = 64
    minimum: int = 16
    maximum: int = 1024
    # Latency may exceed its long-run average by this factor before it counts as queueing.
    tolerance: float = 1.5
    smoothing: float = 0.2
    # Growth per sample while latency is steady: how fast the limit probes upwards.
    queue_size: float = 4.0
    long_window: int = 600
    # The long average starts from the mean of the first samples rather than from one outlier.
    warmup: int = 10


class AdaptiveLimit:
    __slots__ = ("_count", "_long_rtt", "_policy", "in_flight", "limit")

    def __init__(self, policy: AdaptiveLimitPolicy | None = None) -> None:
        self._policy = policy or AdaptiveLimitPolicy()
        self.limit = float(self._policy.initial)
        self.in_flight = 0
        self._long_rtt = 0.0
        self._count = 0

    def acquire(self) -> bool:
        """Take a slot if the limit allows one; False means refuse the request now."""
        if self.in_flight >= int(self.limit):
            return False
        self.in_flight += 1
        return True

    def release(self, rtt_s: float | None) -> None:
        """Give the slot back; `rtt_s` is the request's latency, None if it says nothing.

        Pass None for requests whose latency is not the worker's (refused by a later check,
        cancelled by the client): they would teach the limit a latency it did not deliver.
        """
        in_flight = self.in_flight
        self.in_flight = in_flight - 1
        if rtt_s is not None and rtt_s > 0:
            self._update(rtt_s, in_flight)

    @property
    def long_rtt(self) -> float:
        return self._long_rtt

    def _update(self, short_rtt: float, in_flight: int) -> None:
        p = self._policy
        self._count += 1
        if self._count <= p.warmup:
            # Plain mean while warming up, then an exponential average.
            self._long_rtt += (short_rtt - self._long_rtt) / self._count
        else:
            self._long_rtt += (short_rtt - self._long_rtt) * (2.0 / (p.long_window + 1))
        if self._long_rtt > 2 * short_rtt:
            self._long_rtt *= 0.95
        if in_flight < self.limit / 2:
            return
        gradient = max(0.5, min(1.0, p.tolerance * self._long_rtt / short_rtt))
        target = self.limit * gradient + p.queue_size
        limit = (1 - p.smoothing) * self.limit + p.smoothing * target
        self.limit = max(float(p.minimum), min(float(p.maximum), limit))
