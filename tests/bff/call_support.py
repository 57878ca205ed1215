"""Shorthands for tests that drive one downstream client directly, with no app around it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp

from bff.clients.transport import Answer, send
from bff.context import RequestContext
from bff.deadline import Deadline
from bff.errors import DownstreamError, DownstreamNotFound
from bff.parts import PARTS, Part
from bff.resilience.pool import Instance

PRODUCT, REVIEWS, INVENTORY = PARTS


def call_context(deadline: Deadline, headers: Mapping[str, str]) -> RequestContext:
    """A request's context as the handler leaves it: its deadline and forwarded headers."""
    ctx = RequestContext("req-test")
    ctx.deadline = deadline
    ctx.headers.update(headers)
    return ctx


def endpoint(
    prefix: str,
    body_type: Any,
    ids: Callable[[Any], Iterable[str]],
    *,
    on_404: Callable[[], Any] | None = None,
    not_found: type[DownstreamError] = DownstreamNotFound,
) -> Part[Any]:
    """An optional part read from `prefix`, its value under the key "value"."""
    return Part(
        prefix.strip("/"),
        prefix,
        body_type,
        ids,
        lambda value: {"value": value},
        on_404=on_404,
        not_found=not_found,
    )


async def get_reviews(
    session: aiohttp.ClientSession,
    instance: Instance,
    *,
    headers: Mapping[str, str] | None = None,
    max_body_bytes: int = 1024,
) -> Answer:
    """One `transport.send` of `GET /reviews/P001` to `instance`, 5 s to answer."""
    return await send(
        session,
        instance,
        "/reviews/P001",
        dict(headers or {}),
        service="reviews",
        timeout_s=5.0,
        max_body_bytes=max_body_bytes,
    )
