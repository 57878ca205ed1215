"""What a client may send, checked before any work, and what of it may travel downstream.

Refused with a 400 (nothing is sent downstream): an id outside `[A-Za-z0-9_-]{1,64}`, a bad
`X-Request-Timeout-Ms`, a bad `include`. Dropped, never refused (the page still works, in
the default language or without the vendor trace state), because a client header we forward
is sent to three services on every request and its size is ours to bound:

- `Accept-Language`: at most 256 bytes of RFC 9110 language ranges with optional weights;
- `tracestate`: W3C Trace Context limits: at most 32 list members and 512 characters, each
  member a well-formed `key=value`.
"""

from __future__ import annotations

import os
import re

from bff.errors import InvalidRequest

PRODUCT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Echoed into a response header and every log line: short and plain only.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TIMEOUT_MS = re.compile(r"[0-9]{1,9}")


def product_id(raw: str) -> str:
    if PRODUCT_ID.fullmatch(raw) is None:
        raise InvalidRequest("id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'", field="id")
    return raw


_BUDGET = "X-Request-Timeout-Ms"


def client_budget_s(values: list[str]) -> float | None:
    """`X-Request-Timeout-Ms` (every line of it): one whole number of milliseconds, 1 to
    999999999. Two lines are refused, with a reason of their own: which budget the client meant is
    anybody's guess, and taking either one would hide its bug."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("X-Request-Timeout-Ms must be given once", field=_BUDGET)
    value = values[0].strip()
    if _TIMEOUT_MS.fullmatch(value) is None or int(value) < 1:
        raise InvalidRequest(
            "X-Request-Timeout-Ms must be a whole number of milliseconds >= 1", field=_BUDGET
        )
    return int(value) / 1000


def request_id(raw: str | None) -> str:
    """The client's id when it is short and plain, otherwise a new random one."""
    if raw is not None and REQUEST_ID.fullmatch(raw) is not None:
        return raw
    return os.urandom(16).hex()


def include(values: list[str], optional: tuple[str, ...]) -> frozenset[str]:
    """`?include=`: the optional parts asked for, from a comma list of their names.

    Absent means all of them. Each item must name an optional part; an empty item (`a,,b`,
    a trailing comma, an empty value) and a repeated parameter are refused: a client that
    sends them has a bug we would otherwise hide."""
    if not values:
        return frozenset(optional)
    if len(values) > 1:
        raise InvalidRequest("include must be given once, as one comma list", field="include")
    chosen = set()
    for item in values[0].split(","):
        if item not in optional:
            shown = repr(item[:64]) if item else "an empty item"
            raise InvalidRequest(
                f"include: {shown} is not a part; choose from {', '.join(optional)}",
                field="include",
            )
        chosen.add(item)
    return frozenset(chosen)


# -- what travels downstream ------------------------------------------------------------

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
