"""Every typed key of the application and of the request, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.abc import AbstractResolver

from bff.cache import PartCache
from bff.clients.base import DownstreamClient
from bff.context import RequestContext
from bff.lifecycle import Lifecycle
from bff.observability.tracing import Telemetry
from bff.parts import Part
from bff.settings import Settings

if TYPE_CHECKING:
    from bff.edge.guard import EdgeGuard

SETTINGS = web.AppKey("settings", Settings)
# The parts this app answers with (bff.parts.PARTS unless the app was given others).
PARTS: web.AppKey[tuple[Part[Any], ...]] = web.AppKey("parts")
# One client per part, by part name.
CLIENTS: web.AppKey[Mapping[str, DownstreamClient]] = web.AppKey("clients")
# This worker's part cache, opened and closed with the app; None when BFF_CACHE=off.
PART_CACHE: web.AppKey[PartCache | None] = web.AppKey("part_cache")
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
TELEMETRY = web.AppKey("telemetry", Telemetry)
EDGE: web.AppKey[EdgeGuard] = web.AppKey("edge")
# Answers for downstream names instead of the system's resolver (tests inject one).
RESOLVER = web.AppKey("resolver", AbstractResolver)

REQUEST_ID = web.RequestKey("request_id", str)
# Made by the outermost middleware: the request's id, clock, deadline and part calls.
CONTEXT = web.RequestKey("context", RequestContext)
# The verified token subject, when auth is on: sent downstream as X-User-ID.
SUBJECT = web.RequestKey("subject", str)
