"""Admission: refuse work only when this worker cannot keep up, and then cheaply.

In an aggregator, a request's latency is its downstreams' and its cache's (0.1 ms hits, 80 ms
misses), not the worker's load: a limit learnt from latency reads a slow service or a cold
cache as overload, sinks, and refuses pages the worker could serve. So admission here never
looks at how long requests take. It looks at two figures that are the worker's own:

- the sojourn: how long a request waited in this worker before its handler ran (from when its
  first bytes arrived, bff.edge.protocol, to the handler);
- the loop's lag: how late its 50 ms timer fires (bff.resilience.loop_lag), which is the wait
  of whatever the loop has not read yet.

They are judged the way CoDel judges a queue (Nichols & Jacobson, "Controlling Queue Delay",
ACM Queue 2012): a burst that waits and then drains is a good queue; a queue that never
drains is a bad one. The worker is *shedding* while the smallest delay seen over a whole
`interval` stayed above `target` (a standing queue: even the luckiest request waited), and
stops shedding after the first interval where some request got through in time. While
shedding, a cache miss that has waited more than `target` is refused at once, with 503 and
`Retry-After`: the work it would start (three downstream calls) is what keeps the queue
standing. Everything else is served:

- a request whose parts are all at hand (fresh in memory, or stale within
  stale-while-revalidate), a 304, and one that only joins calls already running for its
  keys cost about what a refusal costs: they are never refused (misses go first);
- a miss that waited less than `target` while shedding;
- anything at all while the worker keeps up, at any concurrency: slow downstreams are the
  bulkheads' and the deadline's business, never a reason to refuse a page.

Two bounds hold regardless: a miss whose whole deadline went by while it waited is refused
("queued": nothing could be answered in time), and `max_in_flight` requests doing work at
once is the hard ceiling that bounds memory and sockets ("in_flight").

The target is a tenth of the deadline (50 ms of the default 500 ms): a request that starts
its work within it still has room for its calls, and a saturated worker whose loop turns once
per tens of ms at 256 connections (measured: make bench, closed-loop clients) does not shed.
The interval is CoDel's 100 ms: long enough to span several turns of a busy loop, short
enough to react within a fraction of a deadline.
"""

from __future__ import annotations

import time
from collections import defaultdict

from bff.errors import ServiceOverloaded
from bff.observability import metrics

__all__ = ["INTERVAL_S", "TARGET_SHARE", "Admission"]

TARGET_SHARE = 0.1  # of the deadline
INTERVAL_S = 0.1


class Admission:
    __slots__ = (
        "_interval_end",
        "_interval_min",
        "enabled",
        "in_flight",
        "interval_s",
        "max_in_flight",
        "queue_delay_s",
        "refused",
        "shedding",
        "target_s",
    )

    def __init__(
        self,
        *,
        deadline_s: float,
        max_in_flight: int,
        enabled: bool = True,
        target_s: float | None = None,
        interval_s: float = INTERVAL_S,
    ) -> None:
        """`enabled` False: only the two bounds (deadline spent, `max_in_flight`) refuse."""
        self.target_s = deadline_s * TARGET_SHARE if target_s is None else target_s
        self.interval_s = interval_s
        self.max_in_flight = max_in_flight
        self.enabled = enabled
        self.shedding = False
        self.in_flight = 0  # requests admitted and not finished
        self._interval_min = float("inf")
        self._interval_end = 0.0
        self.queue_delay_s = 0.0  # the last interval's smallest delay (the status page's)
        # reason -> requests refused since start (bff_edge_rejections_total).
        self.refused: defaultdict[str, int] = defaultdict(int)

    def observe(self, delay_s: float, now: float | None = None) -> None:
        """One sample of how long something waited in this worker: a request before its
        handler, or the loop-lag probe's timer. At the end of each interval, decide."""
        if delay_s < self._interval_min:
            self._interval_min = delay_s
        if now is None:
            now = time.perf_counter()
        if now >= self._interval_end:
            self.queue_delay_s = least = self._interval_min
            self.shedding = self.enabled and least > self.target_s
            self._interval_min = float("inf")
            self._interval_end = now + self.interval_s

    def admit(self, waited_s: float, remaining_s: float, cheap: bool) -> None:
        """Let a request that is not all at hand start its work, or refuse it: raises
        `ServiceOverloaded`. `waited_s`: its sojourn; `remaining_s`: its deadline's time
        left; `cheap`: it only joins calls already running. The caller calls `done()`
        once the admitted work ends."""
        if remaining_s <= 0:
            self.refused["queued"] += 1
            raise ServiceOverloaded("the request's deadline passed while it was queued")
        if self.in_flight >= self.max_in_flight:
            self.refused["in_flight"] += 1
            raise ServiceOverloaded("this worker is at its in-flight ceiling")
        if self.shedding and not cheap and waited_s > self.target_s:
            self.refused["overloaded"] += 1
            raise ServiceOverloaded("this worker cannot keep up; cache misses are refused")
        self.in_flight += 1

    def done(self) -> None:
        self.in_flight -= 1

    def write_metrics(self, out: metrics.Writer) -> None:
        for reason in ("overloaded", "queued", "in_flight"):
            out.counter(metrics.EDGE_REJECTIONS, (reason,), self.refused[reason])
        out.gauge(metrics.SHEDDING, (), 1.0 if self.shedding else 0.0)

    def status(self, loop_lag_s: float) -> dict[str, object]:
        """The status page's view of this worker's admission."""
        return {
            "state": "shedding" if self.shedding else "serving",
            "in_flight": self.in_flight,
            "queue_delay_ms": round(self.queue_delay_s * 1000, 2),
            "target_ms": round(self.target_s * 1000, 1),
            "loop_lag_ms": round(loop_lag_s * 1000, 2),
            "refused": dict(self.refused),
        }
