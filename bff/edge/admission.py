"""Admission: how much work a worker takes on at once, learnt from the worker's own delays;
what does not fit waits its turn, and is refused only when its deadline can no longer hold
the work.

In an aggregator, a request's latency is its downstreams' and its cache's (0.1 ms hits, 80 ms
misses), not the worker's load: a limit learnt from latency reads a slow service or a cold
cache as overload and refuses pages the worker could serve. And refusing at once is no cure
for overload: clients ask again at once (load balancers, retries, every load test), so a
worker that turns work away fast spends its time turning it away. So:

- what costs next to nothing is never held back: a request whose parts are all at hand (fresh
  in memory, or stale within stale-while-revalidate), a 304, and one that only joins calls
  already running for its keys;
- a cache miss starts its work (its downstream calls) if fewer than `limit` misses are at
  work in this worker; otherwise it waits, first come first served, in a queue that costs
  nothing but a future; each miss that finishes lets the next one in;
- a waiting miss whose deadline no longer holds `reserve_s` (a fifth of the deadline: 100 ms of
  the default 500 ms, for its calls) is refused there and then: 503 with `Retry-After`. So
  every answer, refusals included, goes out within the deadline, and a refusal costs the
  worker one parse and one small answer, once per deadline at most for each client;
- two bounds hold regardless: a miss whose whole deadline went by before its handler ran is
  refused ("queued"), and `max_in_flight` misses at work, or waiting, is the hard ceiling
  that bounds memory and sockets ("in_flight").

The limit follows how late the worker's loop runs, the way CoDel judges a queue (Nichols &
Jacobson, ACM Queue 2012): a burst that is worked off is a good queue; a delay that never
goes away is a bad one. The delay is the loop-lag probe's (bff.resilience.loop_lag: how late a
10 ms timer fires, which is how long bytes that arrive now wait before the loop reads them)
and each request's measured wait before its handler. At the end of each interval
(`INTERVAL_S`, 100 ms):

- if even the smallest delay of the interval was above `target_s` (a tenth of the deadline,
  50 ms), the work in progress is too much for the loop: the limit halves
  (not below `MIN_LIMIT`), and the worker is *congested* until an interval with a delay
  under the target;
- else, if misses had to wait during the interval, the limit grows by a tenth (at least one),
  up to `max_in_flight`: a loop that keeps up gets more work, at any concurrency.

Slow downstreams never move it: they are the bulkheads' and the deadline's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict, deque

from bff.errors import ServiceOverloaded
from bff.observability import metrics
from bff.resilience.loop_lag import LoopLag

__all__ = ["GAIN", "INITIAL_LIMIT", "INTERVAL_S", "RESERVE_SHARE", "TARGET_SHARE", "Admission"]

TARGET_SHARE = 0.1  # of the deadline: a loop this late is congested
RESERVE_SHARE = 0.2  # of the deadline: what a miss needs left to be worth starting
INTERVAL_S = 0.1
# The limit never goes under this: a worker serves a burst of misses at once while it has
# yet to learn its rate (64 at once is ~700 misses/s at seed latencies).
INITIAL_LIMIT = 64
GAIN = 2.0  # BBR's window gain: room for the rate to grow, and for the loop's own delays
# The rate is counted over a second (a 100 ms count swings with the loop's turns: a turn that
# finishes 200 misses at once is not a rate of 2,000 a second), its best kept for 5 s.
RATE_SPAN_S = 1.0
RATE_WINDOW_S = 5.0
SHORTEST_WINDOW_S = 10.0


class Admission:
    __slots__ = (
        "_counts",
        "_finished",
        "_floor",
        "_interval_end",
        "_interval_min",
        "_rates",
        "_shortest",
        "_waiters",
        "congested",
        "enabled",
        "in_flight",
        "interval_s",
        "limit",
        "loop_lag",
        "max_in_flight",
        "queue_delay_s",
        "refused",
        "reserve_s",
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
        """`enabled` False: a fixed limit at `max_in_flight` (misses wait only past it)."""
        self.target_s = deadline_s * TARGET_SHARE if target_s is None else target_s
        self.reserve_s = deadline_s * RESERVE_SHARE
        self.interval_s = interval_s
        self.max_in_flight = max_in_flight
        self.enabled = enabled
        self.limit = float(min(INITIAL_LIMIT, max_in_flight) if enabled else max_in_flight)
        self.congested = False
        self.in_flight = 0  # misses at work
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._floor = int(self.limit)
        self._finished = 0  # misses finished in this interval
        # Misses finished in each of the last intervals (RATE_SPAN_S of them), and the rate
        # over that span at each interval's end, for the last RATE_WINDOW_S.
        self._counts: deque[int] = deque(maxlen=max(1, round(RATE_SPAN_S / interval_s)))
        self._rates: deque[float] = deque(maxlen=max(1, round(RATE_WINDOW_S / interval_s)))
        # (second, the shortest miss that started in it), for the last SHORTEST_WINDOW_S.
        self._shortest: deque[tuple[int, float]] = deque()
        self._interval_min = float("inf")
        self._interval_end = 0.0
        self.loop_lag: LoopLag | None = None  # set once the worker's probe runs
        self.queue_delay_s = 0.0  # the last interval's smallest delay (the status page's)
        # reason -> requests refused since start (bff_edge_rejections_total).
        self.refused: defaultdict[str, int] = defaultdict(int)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    # -- the worker's delay -----------------------------------------------------------------

    def observe(self, delay_s: float, now: float | None = None) -> None:
        """One sample of how long something waited in this worker: a request before its
        handler, or the loop-lag probe's lag at a tick. At the end of each interval, decide."""
        if delay_s < self._interval_min:
            self._interval_min = delay_s
        if now is None:
            now = time.perf_counter()
        if now < self._interval_end:
            return
        if self._interval_end == 0.0:  # the first sample opens the first interval
            self._interval_end = now + self.interval_s
            return
        self.queue_delay_s = least = self._interval_min
        self.congested = self.enabled and least > self.target_s
        counts = self._counts
        counts.append(self._finished)
        self._finished = 0
        if len(counts) == counts.maxlen:
            self._rates.append(sum(counts) / (len(counts) * self.interval_s))
        if self.enabled:
            self._learn(now)
        self._interval_min = float("inf")
        self._interval_end = now + self.interval_s

    def _learn(self, now: float) -> None:
        """The limit from what the worker delivers: twice its best rate of finished misses
        (the last 2 s) times the shortest time a miss took (the last 10 s), as BBR sizes a
        window from bandwidth and round trip."""
        while self._shortest and now - self._shortest[0][0] > SHORTEST_WINDOW_S:
            self._shortest.popleft()
        if not self._shortest or not self._rates:
            return
        shortest = min(s for _, s in self._shortest)
        best_rate = max(self._rates)
        limit = min(float(self.max_in_flight), max(float(self._floor), GAIN * best_rate * shortest))
        if self.congested and limit > self.limit:
            return  # a loop running late is given no more work than it has
        self.limit = limit
        self._let_in()

    # -- a miss -----------------------------------------------------------------------------

    async def enter(self, deadline_at: float, cheap: bool) -> float:
        """Let a miss start its work, now or when its turn comes; or refuse it: raises
        `ServiceOverloaded`. `deadline_at`: its deadline on the loop's clock; `cheap`: it
        only joins calls already running. The caller calls `done()` once the work ends."""
        loop = asyncio.get_running_loop()
        left = deadline_at - loop.time()
        if left <= 0:
            self.refused["queued"] += 1
            raise ServiceOverloaded("the request's deadline passed while it was queued")
        if cheap or (self.in_flight < self.limit and not self._waiters):
            self.in_flight += 1
            return time.perf_counter()
        if self.in_flight + len(self._waiters) >= self.max_in_flight:
            self.refused["in_flight"] += 1
            raise ServiceOverloaded("this worker is at its in-flight ceiling")
        if left <= self.reserve_s:
            self.refused["overloaded"] += 1
            raise ServiceOverloaded("this worker is busy; the deadline leaves no time to wait")
        turn = loop.create_future()
        self._waiters.append(turn)
        try:
            async with asyncio.timeout_at(deadline_at - self.reserve_s):
                await turn  # `done` hands over its slot: in_flight is ours already
            return time.perf_counter()
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self.done()  # the slot was handed to us as we left: pass it on
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(turn)
            if isinstance(exc, TimeoutError):
                self.refused["overloaded"] += 1
                raise ServiceOverloaded(
                    "this worker is busy; the deadline leaves no time to wait"
                ) from None
            raise

    def done(self, started: float | None = None) -> None:
        """A miss's work ended (it started at `started`, perf_counter; None for one that only
        joined calls already running: its time says nothing of the work): its slot goes to
        the next waiter, if the limit allows."""
        self.in_flight -= 1
        if started is not None:
            self._finished += 1
            took = time.perf_counter() - started
            second = int(started)
            shortest = self._shortest
            if shortest and shortest[-1][0] == second:
                if took < shortest[-1][1]:
                    shortest[-1] = (second, took)
            else:
                shortest.append((second, took))
        self._let_in()

    def _let_in(self) -> None:
        """The next waiters in, while the limit allows: the first come while the worker keeps
        up; the last come while its loop runs late (Facebook's adaptive LIFO: a miss that
        just arrived has its whole deadline for its calls, while the oldest ones, whose
        deadlines a late loop would spend anyway, are refused when only the reserve is
        left)."""
        waiters = self._waiters
        lifo = self.congested
        while waiters and self.in_flight < self.limit:
            turn = waiters.pop() if lifo else waiters.popleft()
            if not turn.done():
                self.in_flight += 1
                turn.set_result(None)

    # -- what operators see -----------------------------------------------------------------

    def write_metrics(self, out: metrics.Writer) -> None:
        for reason in ("overloaded", "queued", "in_flight"):
            out.counter(metrics.EDGE_REJECTIONS, (reason,), self.refused[reason])
        out.gauge(metrics.SHEDDING, (), 1.0 if self.congested else 0.0)
        out.gauge(metrics.CONCURRENCY_LIMIT, (), int(self.limit))
        out.gauge(metrics.WAITING, (), len(self._waiters))

    def status(self) -> dict[str, object]:
        """The status page's view of this worker's admission."""
        lag = self.loop_lag.lag if self.loop_lag is not None else 0.0
        return {
            "state": "shedding" if self.congested else "serving",
            "in_flight": self.in_flight,
            "limit": int(self.limit),
            "waiting": len(self._waiters),
            "queue_delay_ms": round(self.queue_delay_s * 1000, 2),
            "loop_lag_ms": round(lag * 1000, 2),
            "target_ms": round(self.target_s * 1000, 1),
            "refused": dict(self.refused),
        }
