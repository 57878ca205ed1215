"""Validators of our own answer: a strong ETag of the bytes sent, and `If-None-Match`.

The tag is a BLAKE2b digest of the representation (~1 µs for a 2 KB answer), so every worker
and instance gives the same bytes the same tag. A compressed answer is another representation
and gets its own tag (the coding appended): a strong validator names exact bytes.

`If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): `W/"x"` matches `"x"`; `*`
matches any current answer. Its cost is linear in the header's length, which the server's
header limit bounds (8 KB): a header with thousands of tags is scanned once, and a header
that does not contain our tag at all is rejected by one substring search.
"""

from __future__ import annotations

import hashlib

__all__ = ["etag_of", "none_match"]


def etag_of(body: bytes, coding: str = "identity") -> str:
    """The strong ETag of `body` as sent with `coding` (`identity`, `gzip` or `br`)."""
    digest = hashlib.blake2b(body, digest_size=16).hexdigest()
    return f'"{digest}"' if coding == "identity" else f'"{digest}-{coding}"'


def none_match(header: str | None, etag: str) -> bool:
    """True when `If-None-Match: header` names `etag` (weakly) or is `*`."""
    if not header:
        return False
    if etag not in header:
        # Fast path: any match contains the tag itself; only `*` is left to look for.
        return "*" in header and any(item.strip() == "*" for item in header.split(","))
    for item in header.split(","):
        tag = item.strip()
        if tag == "*" or tag == etag or (tag.startswith("W/") and tag[2:] == etag):
            return True
    return False
