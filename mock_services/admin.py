"""The operator endpoints of a mock service: `/__faults`, `/__stats` and `/__presets`.

    GET    /__faults               the faults in force, every field
    PUT    /__faults               replace them (omitted fields take their defaults); 400 names
                                   the field
    PUT    /__faults?preset=NAME   replace them with a named preset's faults for this service
                                   (mock_services.presets; no body); unknown NAME: 400 problem
    DELETE /__faults               back to the defaults
    GET    /__stats[?recent=N]     {"requests", "budget_exceeded", "recent": [the last N (200)
                                   arrivals: time, path, status, duration, fault, headers]}
    DELETE /__stats                zero the counters and forget the arrivals
    GET    /__presets              every preset: name, description, faults per service

A rejected PUT changes nothing. These requests are never counted nor faulted.

The same handlers serve the fault lab (mock_services.lab), which reaches the three services'
state in its own process under `/services/{kind}/__faults` and so on: `admin_routes` takes
the function that finds the state a request is about.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from .faults import FaultValidationError, parse_faults
from .handlers import json_response
from .presets import PRESETS, UnknownPreset, preset_named, presets_json
from .state import RECENT_LIMIT, SERVICE_STATE, ServiceState

__all__ = ["StateOf", "admin_routes", "problem", "setup_admin_routes"]

StateOf = Callable[[web.Request], ServiceState]


def problem(
    status: int, title: str, detail: str, *, kind: str = "about:blank", **extra: Any
) -> web.Response:
    """An RFC 9457 problem, as the BFF answers its own errors; `kind` is its `type`."""
    body = {"type": kind, "title": title, "status": status, "detail": detail, **extra}
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/problem+json"
    )


def admin_routes(state_of: StateOf, prefix: str = "") -> list[web.RouteDef]:
    """The operator routes under `prefix`, for the state `state_of(request)` returns."""

    async def get_faults(request: web.Request) -> web.Response:
        return json_response(state_of(request).faults.to_json())

    async def put_faults(request: web.Request) -> web.Response:
        state = state_of(request)
        raw = await request.read()
        name = request.query.get("preset")
        if name is not None:
            if raw.strip():
                detail = "give ?preset=NAME or a JSON body, not both"
                return problem(400, "Preset and body", detail, kind="/problems/preset-and-body")
            try:
                settings = preset_named(name).for_service(state.kind)
            except UnknownPreset as exc:
                return problem(
                    400,
                    "Unknown preset",
                    str(exc),
                    kind="/problems/unknown-preset",
                    presets=list(PRESETS),
                )
        else:
            try:
                settings = parse_faults(raw)
            except FaultValidationError as exc:
                return json_response(exc.to_json(), status=400)
        state.install(settings)
        return json_response(state.faults.to_json())

    async def delete_faults(request: web.Request) -> web.Response:
        state = state_of(request)
        state.restore_defaults()
        return json_response(state.faults.to_json())

    async def get_stats(request: web.Request) -> web.Response:
        text = request.query.get("recent", str(RECENT_LIMIT))
        if not (text.isascii() and text.isdigit() and int(text) <= RECENT_LIMIT):
            detail = f"recent must be a whole number from 0 to {RECENT_LIMIT}, got {text!r}"
            return problem(400, "Invalid query", detail, kind="/problems/invalid-query")
        return json_response(state_of(request).stats.to_json(recent=int(text)))

    async def delete_stats(request: web.Request) -> web.Response:
        stats = state_of(request).stats
        stats.reset()
        return json_response(stats.to_json())

    async def get_presets(request: web.Request) -> web.Response:
        return json_response(presets_json())

    return [
        web.get(f"{prefix}/__faults", get_faults, allow_head=False),
        web.put(f"{prefix}/__faults", put_faults),
        web.delete(f"{prefix}/__faults", delete_faults),
        web.get(f"{prefix}/__stats", get_stats, allow_head=False),
        web.delete(f"{prefix}/__stats", delete_stats),
        web.get(f"{prefix}/__presets", get_presets, allow_head=False),
    ]


def _own_state(request: web.Request) -> ServiceState:
    return request.app[SERVICE_STATE]


def setup_admin_routes(app: web.Application) -> None:
    app.router.add_routes(admin_routes(_own_state))
