"""The `Server-Timing` header: one entry per downstream part, then the total.

A hedged call adds `<service>-hedge;desc="won|lost|failed"` after its own entry."""

from __future__ import annotations

from bff.clients.call import CallContext


def server_timing(ctx: CallContext | None, total_s: float) -> str:
    entries = []
    if ctx is not None:
        now = ctx.deadline.elapsed()
        for call in ctx.calls:
            outcome, duration = call.report(now)
            entry = f"{call.service};dur={duration * 1000:.1f}"
            if outcome != "ok":
                entry += f';desc="{outcome}"'
            entries.append(entry)
            if call.hedge is not None:
                entries.append(f'{call.service}-hedge;desc="{call.hedge}"')
    entries.append(f"total;dur={total_s * 1000:.1f}")
    return ", ".join(entries)
