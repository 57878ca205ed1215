"""Settings a test needs that no variable sets: dotted paths into the frozen dataclass tree.

tuned(settings, {"reviews.breaker.min_calls": 3, "edge.max_headers": 50})

A part's name ("reviews") stands for its service's settings, `settings.downstream("reviews")`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def tuned(settings: T, fields: Mapping[str, Any]) -> T:
    """`settings` with each dotted field replaced (`dataclasses.replace` at every level)."""
    for path, value in fields.items():
        settings = _replace(settings, path.split("."), value)
    return settings


def _replace(node: T, path: list[str], value: Any) -> T:
    head, rest = path[0], path[1:]
    services = {ds.name: ds for ds in getattr(node, "downstreams", ())}
    if head in services:
        new_service = value if not rest else _replace(services[head], rest, value)
        downstreams = tuple(new_service if name == head else ds for name, ds in services.items())
        return dataclasses.replace(node, downstreams=downstreams)  # type: ignore[type-var]
    if not hasattr(node, head):
        raise AttributeError(f"{type(node).__name__} has no field {head!r}")
    new = value if not rest else _replace(getattr(node, head), rest, value)
    return dataclasses.replace(node, **{head: new})  # type: ignore[type-var]
