"""The operator endpoints of a mock service: `/__faults` and `/__stats` (docs/contract.md §3).

    GET    /__faults   the faults in force, every field
    PUT    /__faults   replace them (omitted fields take their defaults); 400 names the field
    DELETE /__faults   back to the defaults
    GET    /__stats    {"requests", "budget_exceeded", "recent": [...last 200 arrivals]}
    DELETE /__stats    zero the counters and forget the arrivals

A rejected PUT changes nothing. These requests are never counted nor faulted.
"""

from __future__ import annotations

from aiohttp import web

from .faults import FaultValidationError, parse_faults
from .handlers import json_response
from .state import SERVICE_STATE

__all__ = ["setup_admin_routes"]


async def get_faults(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE_STATE].faults.to_json())


async def put_faults(request: web.Request) -> web.Response:
    state = request.app[SERVICE_STATE]
    try:
        settings = parse_faults(await request.read())
    except FaultValidationError as exc:
        return json_response(exc.to_json(), status=400)
    state.install(settings)
    return json_response(state.faults.to_json())


async def delete_faults(request: web.Request) -> web.Response:
    state = request.app[SERVICE_STATE]
    state.restore_defaults()
    return json_response(state.faults.to_json())


async def get_stats(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE_STATE].stats.to_json())


async def delete_stats(request: web.Request) -> web.Response:
    stats = request.app[SERVICE_STATE].stats
    stats.reset()
    return json_response(stats.to_json())


def setup_admin_routes(app: web.Application) -> None:
    app.router.add_get("/__faults", get_faults, allow_head=False)
    app.router.add_put("/__faults", put_faults)
    app.router.add_delete("/__faults", delete_faults)
    app.router.add_get("/__stats", get_stats, allow_head=False)
    app.router.add_delete("/__stats", delete_stats)
