"""The hedge of one attempt: a second request to another instance, under its own permit.

`start_hedge` is what `bff.clients.hedging.race` calls when the first request has not
answered by the service's hedge delay. It may refuse (the hedge budget, the deadline, a
congested loop, a failing service: `bff.resilience.hedge`; then the breaker, last, since a
hedge needs a permit of its own), and each refusal is counted by its reason
(`bff_downstream_hedges_skipped_total`). A started hedge is a task with its own span and attempt
count; its done callback releases the permit and closes the span even when the task is
cancelled before it ever ran.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bff.clients.hedging import Leg
from bff.errors import CircuitOpen
from bff.observability import metrics
from bff.observability.downstream import AttemptProbe
from bff.resilience.breaker import Permit
from bff.resilience.hedge import LATE_S
from bff.resilience.pool import Instance

if TYPE_CHECKING:
    from bff.clients.attempt import Call


def start_hedge(call: Call, first: Instance, path: str, late_s: float) -> asyncio.Task[Leg] | None:
    """Start the hedge leg now, or None when it may not go (see bff.resilience.hedge;
    the breaker last: a hedge needs a permit of its own). `late_s`: how late the hedge
    timer fired."""
    c = call.client
    loop_late = late_s > LATE_S or c.loop_starved()
    remaining = call.deadline.remaining()
    refused = c.hedging.admit(remaining, c.margin, loop_late, c.breaker.counts)
    if refused is not None:
        metrics.hedges_skipped(c.name, refused).inc()
        return None
    try:
        permit = c.breaker.admit()
    except CircuitOpen:
        metrics.hedges_skipped(c.name, "breaker").inc()
        return None
    try:
        instance = c.pool.pick(first)
        allotted, headers = call.allotment()
        probe = AttemptProbe(c.tracer, c.name, call.endpoint, call.state, hedge=True)
        probe.sending(instance, path, headers, c.breaker.state)
        task = asyncio.get_running_loop().create_task(
            _observed_leg(call, probe, instance, permit, path, headers, allotted)
        )
    except BaseException:
        permit.release()  # a half-open breaker must not wait for a probe that never went
        raise

    def settle(task: asyncio.Task[Leg]) -> None:
        # Also when the task was cancelled before it ever ran (the fan-out answered at
        # its deadline just then): no permit may stay taken, no span open.
        permit.release()
        if task.cancelled():
            probe.finish(asyncio.CancelledError())

    task.add_done_callback(settle)
    return task


async def _observed_leg(
    call: Call,
    probe: AttemptProbe,
    instance: Instance,
    permit: Permit,
    path: str,
    headers: dict[str, str],
    allotted: float,
) -> Leg:
    """A hedge leg under its own span and attempt count (a cancellation is recorded by
    the task's done callback)."""
    try:
        verdict, answer = await call.leg(instance, permit, path, headers, allotted)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        probe.finish(exc)
        raise
    probe.status = answer.status if answer is not None else None
    probe.finish(verdict.error)
    return verdict, answer
