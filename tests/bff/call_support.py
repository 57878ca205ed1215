"""Shorthands for tests that drive one downstream client directly, with no app around it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp
from yarl import URL

from bff.client import DownstreamClient, Reply
from bff.context import PartCall, RequestContext
from bff.errors import DownstreamError, DownstreamNotFound
from bff.parts import PARTS, Part
from bff.resilience.pool import Instance
from bff.settings import DownstreamSettings, RetrySettings
from bff.settings.downstream import HedgeSettings

PRODUCT, REVIEWS, INVENTORY = PARTS


def call_context(budget_s: float, headers: Mapping[str, str] | None = None) -> RequestContext:
    """A request's context as the handler leaves it: its deadline and forwarded headers.
    Call it in a running loop (the deadline is on the loop's clock)."""
    ctx = RequestContext("req-test")
    ctx.start(budget_s)
    ctx.headers.update(headers or {})
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


def one_shot(name: str, *urls: URL | str, **fields: Any) -> DownstreamSettings:
    """A service's settings with one attempt and no hedging (`fields` replace others)."""
    settings = DownstreamSettings(
        name=name,
        urls=tuple(URL(str(u)) for u in urls),
        retry=RetrySettings(max_attempts=1),
        hedge=HedgeSettings(enabled=False),
    )
    return dataclasses.replace(settings, **fields)


def client_of(settings: DownstreamSettings, session: aiohttp.ClientSession) -> DownstreamClient:
    return DownstreamClient(settings, session, propagation_margin_s=0.005)


async def fetch(
    client: DownstreamClient,
    part: Part[Any],
    *,
    product_id: str = "P001",
    budget_s: float = 5.0,
    headers: Mapping[str, str] | None = None,
    etag: str | None = None,
) -> tuple[Reply, PartCall]:
    """One call of `part` through `client`: its reply and its record."""
    ctx = call_context(budget_s, headers)
    call = ctx.new_call(client.name)
    reply = await client.fetch(part, product_id, ctx, call, etag=etag)
    return reply, call


async def get_reviews(
    session: aiohttp.ClientSession,
    url: URL | str,
    *,
    host: str | None = None,
    headers: Mapping[str, str] | None = None,
    max_body_bytes: int = 1024,
) -> Reply:
    """One attempt of `GET /reviews/P001` at `url` (an address found under the name `host`,
    when given), 5 s to answer."""
    client = client_of(one_shot("reviews", url, max_body_bytes=max_body_bytes), session)
    if host is not None:
        client.pool.replace_instances([Instance(URL(str(url)), host)])
    reply, _ = await fetch(client, REVIEWS, headers=headers)
    return reply
