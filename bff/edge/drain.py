"""Graceful drain of one worker on SIGTERM (or SIGINT, SIGHUP: bff.server): nothing accepted is
ever dropped.

1. `/readyz` answers 503 at once, and every response says `Connection: close`, so load
   balancers stop sending and keep-alive clients move elsewhere;
2. for BFF_DRAIN_DELAY_S we keep serving (traffic already routed to us still arrives);
   a second signal cuts this short;
3. the listener closes, idle connections close, requests in flight finish (bounded by what is
   left of BFF_SHUTDOWN_GRACE_S), then the app's cleanup closes the client sessions.
The worker then returns normally: exit status 0, within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from bff.lifecycle import Lifecycle
from bff.observability.logging import log
from bff.settings import Settings


async def drain(
    runner: web.AppRunner, lifecycle: Lifecycle, settings: Settings, signal: asyncio.Event
) -> None:
    started = time.monotonic()
    lifecycle.draining = True
    signal.clear()
    log.info(
        "drain_started",
        delay_s=settings.edge.drain_delay_s,
        grace_s=settings.shutdown_grace_s,
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(signal.wait(), settings.edge.drain_delay_s)
    log.info("listener_closing", after_s=round(time.monotonic() - started, 3))
    await runner.cleanup()
    log.info("drain_finished", took_s=round(time.monotonic() - started, 3))
