"""Every typed key of the application and of the request, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractResolver

from bff.cache.fetcher import CachedFetcher
from bff.cache.store import PartCache
from bff.client import DownstreamClient
from bff.context import CONTEXT, SUBJECT
from bff.edge.admission import Admission
from bff.edge.guard import EdgeGuard
from bff.lifecycle import Lifecycle
from bff.observability.tracing import Telemetry
from bff.parts import Part
from bff.resilience.loop_lag import LoopLag
from bff.settings import Settings

__all__ = [
    "ADMISSION",
    "CLIENTS",
    "CONTEXT",
    "EDGE",
    "FETCHER",
    "LIFECYCLE",
    "LOOP_LAG",
    "PARTS",
    "PART_CACHE",
    "REQUEST_ID",
    "RESOLVER",
    "SETTINGS",
    "SUBJECT",
    "TELEMETRY",
]

SETTINGS = web.AppKey("settings", Settings)
# The parts this app answers with (bff.parts.PARTS unless the app was given others).
PARTS: web.AppKey[tuple[Part[Any], ...]] = web.AppKey("parts")
# One client per part, by part name.
CLIENTS: web.AppKey[Mapping[str, DownstreamClient]] = web.AppKey("clients")
# This worker's part cache, opened and closed with the app; None when BFF_CACHE=off.
PART_CACHE: web.AppKey[PartCache | None] = web.AppKey("part_cache")
# The parts through the cache to the clients.
FETCHER = web.AppKey("fetcher", CachedFetcher)
ADMISSION = web.AppKey("admission", Admission)
LOOP_LAG = web.AppKey("loop_lag", LoopLag)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
TELEMETRY = web.AppKey("telemetry", Telemetry)
EDGE = web.AppKey("edge", EdgeGuard)
# Answers for downstream names instead of the system's resolver (tests inject one).
RESOLVER = web.AppKey("resolver", AbstractResolver)

# The admin listener's request id (the public port's lives in its RequestContext).
REQUEST_ID = web.RequestKey("request_id", str)
