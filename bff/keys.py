"""Every typed key of the application and of the request, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.abc import AbstractResolver

from bff.aggregate import Clients
from bff.clients.call import CallContext
from bff.lifecycle import Lifecycle
from bff.observability.tracing import Telemetry
from bff.settings import Settings

if TYPE_CHECKING:
    from bff.edge.guard import EdgeGuard

SETTINGS = web.AppKey("settings", Settings)
CLIENTS = web.AppKey("clients", Clients)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
TELEMETRY = web.AppKey("telemetry", Telemetry)
EDGE: web.AppKey[EdgeGuard] = web.AppKey("edge")
# Answers for downstream names instead of the system's resolver (tests inject one).
RESOLVER = web.AppKey("resolver", AbstractResolver)

REQUEST_ID = web.RequestKey("request_id", str)
CALL_CONTEXT = web.RequestKey("call_context", CallContext)
# The verified token subject, when auth is on: sent downstream as X-User-ID.
SUBJECT = web.RequestKey("subject", str)
# perf_counter time the request's bytes arrived (bff.edge.arrival): its deadline starts there.
RECEIVED_AT = web.RequestKey("received_at", float)
