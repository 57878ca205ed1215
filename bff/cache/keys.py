"""Cache keys: who may be served which copy, written down as strings.

    base     "<service>/<id>"
    shape    base + "|shape"                                   where the key's Shape lives
    variant  base + "|v" + digest(values of the Vary headers)  when the response varies
             + "|u" + identity                                 when it is not shared
    cold     base + "|c" + digest(identity, Accept-Language)   coalescing before any Shape

An identity is a digest of the `Authorization` and `X-User-ID` the call carries (never the
token itself: keys show up in Redis and in debugging). No identity at all is one identity
too, "anonymous": requests without one are indistinguishable to the service.

Coalescing needs a key *before* the answer says whether it may be shared. With a known Shape
the variant key is used (a shared Shape lets different users share one call; the facade still
refuses a leader's answer to others if it came back not shareable). With no Shape yet, the
cold key keeps apart every caller the service could tell apart by the headers we forward.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from bff.cache.entry import Shape

__all__ = ["ANONYMOUS", "base_key", "cold_key", "identity_of", "shape_key", "variant_key"]

ANONYMOUS = "anon"
_IDENTITY_HEADERS = ("authorization", "x-user-id")


def _digest(*parts: str) -> str:
    data = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def identity_of(headers: Mapping[str, str]) -> str:
    """The identity of a call from its lower-cased forwarded headers."""
    values = [headers.get(name) for name in _IDENTITY_HEADERS]
    if not any(values):
        return ANONYMOUS
    return _digest(*(v or "" for v in values))


def base_key(service: str, product_id: str) -> str:
    return f"{service}/{product_id}"


def shape_key(base: str) -> str:
    return base + "|shape"


def variant_key(base: str, shape: Shape, headers: Mapping[str, str], identity: str) -> str:
    """Where the copy for this request lives, given what the key's last response said."""
    key = base
    if shape.vary:
        key += "|v" + _digest(*(f"{n}:{headers.get(n, '')}" for n in shape.vary))
    if not shape.shared:
        key += "|u" + identity
    return key


def cold_key(base: str, headers: Mapping[str, str], identity: str) -> str:
    return base + "|c" + _digest(identity, headers.get("accept-language", ""))
