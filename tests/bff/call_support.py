"""Shorthands for tests that drive one downstream client directly, with no app around it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bff.context import RequestContext
from bff.deadline import Deadline
from bff.errors import DownstreamError, DownstreamNotFound
from bff.parts import PARTS, Part

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
