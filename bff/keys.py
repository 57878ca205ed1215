"""Every typed key of the application and of the request, in one place."""

from __future__ import annotations

from aiohttp import web

from bff.aggregate import Clients
from bff.clients.call import CallContext
from bff.lifecycle import Lifecycle
from bff.observability.tracing import Telemetry
from bff.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
CLIENTS = web.AppKey("clients", Clients)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
TELEMETRY = web.AppKey("telemetry", Telemetry)

REQUEST_ID = web.RequestKey("request_id", str)
CALL_CONTEXT = web.RequestKey("call_context", CallContext)
