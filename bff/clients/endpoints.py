"""The three downstream endpoints (contract §1), declared once: path, body type, 404 meaning.

Decoding validates: the body must match the typed struct, and every id in it must be the id
we asked for (an answer about another product is a `bad_response`, never shown to a user).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import msgspec

from bff.errors import DownstreamError, DownstreamNotFound, DownstreamUnavailable
from bff.models import Inventory, Product, Review

T = TypeVar("T")


class Endpoint(Generic[T]):
    __slots__ = ("_decoder", "_ids", "not_found", "on_404", "prefix")

    def __init__(
        self,
        prefix: str,
        body_type: Any,
        ids: Callable[[T], Iterable[str]],
        *,
        on_404: Callable[[], T] | None = None,
        not_found: type[DownstreamError] = DownstreamNotFound,
    ) -> None:
        self.prefix = prefix
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(body_type)
        self._ids = ids
        # What a 404 means: the value it stands for (`on_404`), or else the error to raise.
        self.on_404 = on_404
        self.not_found = not_found

    def path(self, product_id: str) -> str:
        # Ids are validated to [A-Za-z0-9_-] before any call: nothing to escape.
        return self.prefix + product_id

    def decode(self, body: bytes, product_id: str) -> T:
        value = self._decoder.decode(body)
        for got in self._ids(value):
            if got != product_id:
                raise msgspec.ValidationError(f"asked for {product_id!r}, got {got!r}")
        return value


def _no_reviews() -> list[Review]:
    return []


# The product does not exist: the answer is a 404.
PRODUCT: Endpoint[Product] = Endpoint("/products/", Product, lambda p: (p.id,))
REVIEWS: Endpoint[list[Review]] = Endpoint(
    "/reviews/",
    list[Review],
    lambda reviews: (r.product_id for r in reviews),
    on_404=_no_reviews,  # a reviews service with nothing for this id may say 404 or []
)
# No inventory record for an existing product: stock unknown, in the contract's words the
# part is `unavailable` (body, Server-Timing, log and metrics all say the same).
INVENTORY: Endpoint[Inventory] = Endpoint(
    "/inventory/", Inventory, lambda i: (i.product_id,), not_found=DownstreamUnavailable
)
