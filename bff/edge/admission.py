"""Admission: how many cache misses a worker works on at once, and what happens to the rest:
they wait their turn, first come first served, and are refused only once their deadline can
no longer hold the work.

In an aggregator a request's latency is its downstreams' and its cache's (0.1 ms hits, 80 ms
misses), not the worker's load: a limit learnt from latency reads a slow service or a cold
cache as overload and refuses pages the worker could serve. And refusing at once is no cure
for overload: clients ask again at once (load balancers, retries, every load test), so a
worker that turns work away fast spends its time turning it away. So:

- what costs next to nothing is never held back: a request whose parts are all at hand (fresh
  in memory, or stale within stale-while-revalidate), a 304, and one that only joins calls
  already running for its keys;
- a cache miss starts its work (its downstream calls) if fewer than `limit` misses are at
  work in this worker; otherwise it waits in a queue that costs nothing but a future, first
  come first served; each miss that finishes lets the next one in;
- a waiting miss is refused once its deadline no longer holds `reserve_s`, the time a miss's
  work takes here (the 90th percentile of the last 128, kept between a fifth and a half of
  the deadline: 100-250 ms of the default 500 ms): 503 with `Retry-After`. A miss that starts
  has time to finish, so the queue does not turn into degraded answers and downstream calls
  cut short;
- a refusal is decided as soon as the deadline cannot hold the work, and answered at the end
  of the deadline less `target_s` (its way out through a busy loop): every answer, refusals
  included, goes out within the deadline, and a client that asks again at once asks once a
  deadline, not as fast as the worker can refuse (measured at 1,024 closed-loop connections:
  answering at once made half again as many refusals, ~1,200/s against ~800/s, and cost
  an eighth of the goodput);
- a waiting miss whose client went away (a closed connection) is dropped when its turn comes,
  never started: no downstream calls for nobody;
- two bounds hold regardless: a miss whose whole deadline went by before its handler ran is
  refused ("queued"), and `max_in_flight` misses at work or waiting is the hard ceiling that
  bounds memory and sockets ("in_flight").

First come first served, not last (Facebook's adaptive LIFO): LIFO helps when a request that
waited is worth less than a new one, because its user may have left. Here every miss brings
its own deadline and waits only while that deadline holds its work; and the clients that
matter under overload ask again as soon as they are answered, so a miss answered fast (the
last come) only makes room for the next ask, while one served in order holds its client for
the deadline it has.

The limit follows how late the worker's loop runs, the way CoDel judges a queue (Nichols &
Jacobson, ACM Queue 2012): a burst that is worked off is a good queue; a delay that never
goes away is a bad one. The delay is the loop-lag probe's (bff.resilience.loop_lag: how late
a 10 ms timer fires, which is how long bytes that arrive now wait before the loop reads
them) and each request's wait before its handler. At the end of each interval (`INTERVAL_S`,
100 ms):

- if even the smallest delay of the interval was above `target_s` (a tenth of the deadline,
  50 ms), the work in progress is too much for the loop: the worker is *congested* (the
  status page says "shedding") and the limit halves, not below `MIN_LIMIT`;
- else the limit grows by a tenth (at least one) towards its ceiling, and follows the ceiling
  down: what the worker delivers, sized the way BBR sizes a window (Cardwell et al., ACM
  Queue 2016), `GAIN` times the best rate of finished misses (each second's count, the best
  of the last 5 s) times the shortest time a miss took (the last 10 s), and never under
  `INITIAL_LIMIT` nor over `max_in_flight`. That is Little's law with room to grow: misses
  at work = rate x time. More misses at once that only make each one slower, and finish no
  more of them, do not raise it.

A slow downstream lengthens the misses' time and lowers their rate together, so it does not
shrink the limit: a miss waiting on a service costs the loop nothing, and its slowness is the
bulkheads' and the deadline's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict, deque

from bff.errors import ServiceOverloaded
from bff.observability import metrics
from bff.resilience.loop_lag import LoopLag

__all__ = [
    "GAIN",
    "GROW",
    "INITIAL_LIMIT",
    "INTERVAL_S",
    "MIN_LIMIT",
    "RESERVE_SHARES",
    "SHRINK",
    "TARGET_SHARE",
    "Admission",
]

TARGET_SHARE = 0.1  # of the deadline: a loop this late is congested
# Of the deadline, what a miss needs left to be worth starting: its work's measured time,
# kept between these (a miss may always wait half its deadline, and never the last fifth).
RESERVE_SHARES = (0.2, 0.5)
INTERVAL_S = 0.1
# The limit never goes under this: a worker serves a burst of misses at once while it has
# yet to learn its rate (64 at once is ~700 misses/s at seed latencies).
INITIAL_LIMIT = 64
# A late loop halves the limit (the work in progress is too much for it), not below this; a
# loop that keeps up grows it by a tenth at each interval, up to what it delivers.
MIN_LIMIT = 4
SHRINK = 0.5
GROW = 0.1
GAIN = 2.0  # BBR's window gain: room for the rate to grow, and for the loop's own delays
# The rate is counted over a second (a 100 ms count swings with the loop's turns: a turn that
# finishes 200 misses at once is not a rate of 2,000 a second), its best kept for 5 s.
RATE_SPAN_S = 1.0
RATE_WINDOW_S = 5.0
SHORTEST_WINDOW_S = 10.0
TIMES_KEPT = 128  # the misses whose times give the reserve
_PERCENTILE = 0.9


class Admission:
    __slots__ = (
        "_counts",
        "_finished",
        "_floor",
        "_interval_end",
        "_interval_min",
        "_least",
        "_rates",
        "_reserve_bounds",
        "_shortest",
        "_times",
        "_waiters",
        "congested",
        "enabled",
        "gone",
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
        low, high = RESERVE_SHARES
        self._reserve_bounds = (deadline_s * low, deadline_s * high)
        self.reserve_s = deadline_s * low  # until misses have been timed
        self.interval_s = interval_s
        self.max_in_flight = max_in_flight
        self.enabled = enabled
        self.limit = float(min(INITIAL_LIMIT, max_in_flight) if enabled else max_in_flight)
        self._floor = self.limit
        self._least = float(min(MIN_LIMIT, max_in_flight))
        self.congested = False
        self.in_flight = 0  # misses at work
        # Misses waiting their turn, each with the connection its answer goes out on.
        self._waiters: deque[tuple[asyncio.Future[None], asyncio.BaseTransport | None]] = deque()
        self.gone = 0  # waiters dropped because their client went away
        self._times: deque[float] = deque(maxlen=TIMES_KEPT)  # the last misses' times
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
        if self._times:
            times = sorted(self._times)
            low, high = self._reserve_bounds
            self.reserve_s = min(high, max(low, times[int(len(times) * _PERCENTILE)]))
        if self.enabled:
            self._size(now)
        self._interval_min = float("inf")
        self._interval_end = now + self.interval_s

    def _size(self, now: float) -> None:
        """The limit from the worker's delay and what it delivers (the module's docstring
        says why): halved while the loop runs late, else grown by a tenth towards its
        ceiling, which it follows down."""
        if self.congested:
            self.limit = max(self._least, self.limit * SHRINK)
            return
        ceiling = self._floor
        shortest = self._shortest
        while shortest and now - shortest[0][0] > SHORTEST_WINDOW_S:
            shortest.popleft()
        if shortest and self._rates:
            window = GAIN * max(self._rates) * min(took for _, took in shortest)
            ceiling = min(float(self.max_in_flight), max(ceiling, window))
        limit = self.limit
        self.limit = min(ceiling, limit + max(1.0, limit * GROW)) if limit < ceiling else ceiling
        self._let_in()

    # -- a miss -----------------------------------------------------------------------------

    async def enter(
        self, deadline_at: float, cheap: bool, client: asyncio.BaseTransport | None = None
    ) -> float | None:
        """Let a miss start its work, now or when its turn comes; or refuse it: raises
        `ServiceOverloaded`. `deadline_at`: its deadline on the loop's clock; `cheap`: it
        only joins calls already running; `client`: the connection its answer goes out on
        (a waiter whose client went away is dropped when its turn comes). Returns when the
        work started (perf_counter; None for cheap work, whose time says nothing of the
        work), for `done()`, which the caller calls once the work ends."""
        loop = asyncio.get_running_loop()
        left = deadline_at - loop.time()
        if left <= 0:
            self.refused["queued"] += 1
            raise ServiceOverloaded("the request's deadline passed while it was queued")
        if cheap:
            self.in_flight += 1
            return None
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return time.perf_counter()
        if self.in_flight + len(self._waiters) >= self.max_in_flight:
            self.refused["in_flight"] += 1
            raise ServiceOverloaded("this worker is at its in-flight ceiling")
        reserve = self.reserve_s
        if left > reserve:
            turn = loop.create_future()
            waiter = (turn, client)
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline_at - reserve):
                    await turn  # `done` hands over its slot: in_flight is ours already
                return time.perf_counter()
            except BaseException as exc:
                handed = turn.done() and not turn.cancelled()
                if handed and isinstance(exc, TimeoutError):
                    return time.perf_counter()  # its turn came as its wait ran out
                if handed:
                    self.done()  # the slot was handed to us as we left: pass it on
                else:
                    turn.cancel()
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                if not isinstance(exc, TimeoutError):
                    raise
        self.refused["overloaded"] += 1
        # Decided now, answered at the end of the deadline (minus the loop's target, for the
        # answer's own way out): a client that asks again at once asks once a deadline.
        hold = deadline_at - self.target_s - loop.time()
        if hold > 0 and not (client is not None and client.is_closing()):
            await asyncio.sleep(hold)
        raise ServiceOverloaded("this worker is busy; the deadline leaves no time to wait")

    def done(self, started: float | None = None) -> None:
        """A miss's work ended (it started at `started`, perf_counter; None for one that only
        joined calls already running, whose time says nothing of the work): its slot goes
        to the next waiter, if the limit allows."""
        self.in_flight -= 1
        if started is not None:
            self._finished += 1
            took = time.perf_counter() - started
            self._times.append(took)
            second = int(started)
            shortest = self._shortest
            if shortest and shortest[-1][0] == second:
                if took < shortest[-1][1]:
                    shortest[-1] = (second, took)
            else:
                shortest.append((second, took))
        self._let_in()

    def _let_in(self) -> None:
        """The next waiters in, first come first served, while the limit allows; a waiter
        whose client went away is dropped (its handler ends as the client's leaving: 499)."""
        waiters = self._waiters
        while waiters and self.in_flight < self.limit:
            turn, client = waiters.popleft()
            if turn.done():
                continue  # it left, or was refused
            if client is not None and client.is_closing():
                self.gone += 1
                turn.cancel()
                continue
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
            "reserve_ms": round(self.reserve_s * 1000, 1),
            "queue_delay_ms": round(self.queue_delay_s * 1000, 2),
            "loop_lag_ms": round(lag * 1000, 2),
            "target_ms": round(self.target_s * 1000, 1),
            "refused": dict(self.refused),
            "client_gone": self.gone,
        }
