"""Checks on what a client sends, done before any work and before anything goes downstream."""

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
