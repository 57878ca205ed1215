"""Which client header values may travel downstream: bounded and well formed, or not at all.

A client header we forward is sent to three services on every request, so its size is ours
to bound. A value that fails these checks is dropped, never answered with a 400: the page
still works, in the default language or without the vendor trace state.

- `Accept-Language`: at most 256 bytes of RFC 9110 language ranges with optional weights.
- `tracestate`: W3C Trace Context limits: at most 32 list members and 512 characters, each
  member a well-formed `key=value`.
"""

from __future__ import annotations

import re

ACCEPT_LANGUAGE_MAX_BYTES = 256
TRACESTATE_MAX_CHARS = 512
TRACESTATE_MAX_MEMBERS = 32

_QVALUE = r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)"
_RANGE = r"(?:\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)"
_LANGUAGE = re.compile(rf"{_RANGE}(?:[ \t]*;[ \t]*[qQ]={_QVALUE})?")
# W3C Trace Context §3.3.1: simple-key, or tenant@system; a value of printable ASCII other
# than ',' and '=' that does not end with a space.
_KEY = re.compile(
    r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}"
)
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


def accept_language(value: str | None) -> str | None:
    """`value` when it may be forwarded, else None."""
    if value is None or len(value.encode()) > ACCEPT_LANGUAGE_MAX_BYTES:
        return None
    items = [item.strip(" \t") for item in value.split(",")]
    if not any(items) or not all(_LANGUAGE.fullmatch(i) for i in items if i):
        return None
    return value


def tracestate(values: list[str]) -> str | None:
    """The combined `tracestate` header lines when within the W3C limits, else None."""
    if not values:
        return None
    combined = ",".join(values)
    if len(combined) > TRACESTATE_MAX_CHARS:
        return None
    members = [m.strip(" \t") for m in combined.split(",")]
    members = [m for m in members if m]
    if not members or len(members) > TRACESTATE_MAX_MEMBERS:
        return None
    keys = set()
    for member in members:
        key, eq, val = member.partition("=")
        if not eq or _KEY.fullmatch(key) is None or _VALUE.fullmatch(val) is None:
            return None
        if key in keys:
            return None  # a key must appear at most once
        keys.add(key)
    return ",".join(members)
