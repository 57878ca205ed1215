"""The parts of an answer, declared once: product, reviews and inventory.

A part is a downstream service's name, the path it is read from, the type its body decodes
into, whether the answer can exist without it, what a 404 means, and how its value (or its
absence) lands in our answer's body. The fan-out, the merge, Server-Timing, the access log,
the metrics, `include`, the per-service clients, the part cache and the settings all iterate
over `PARTS`; adding a service is one more `Part` (its `BFF_<NAME>_URL` and
`BFF_<NAME>_TIMEOUT_MS` come with it).

Decoding validates: the body must match the typed struct, and every id in it must be the id
we asked for (an answer about another product is a `bad_response`, never shown to a user).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from bff.errors import DownstreamError, DownstreamNotFound, DownstreamUnavailable
from bff.models import Inventory, Product, Review, ReviewSummary

__all__ = ["PARTS", "Part", "optional_names"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, eq=False)
class Part(Generic[T]):
    """`merge(value)`: the part's keys in the answer; `merge(None)` for a degraded part."""

    name: str
    prefix: str
    body_type: Any
    ids: Callable[[T], Iterable[str]]
    merge: Callable[[T | None], Mapping[str, Any]]
    required: bool = False
    # What a 404 means: the value it stands for (`on_404`), or else the error to raise.
    on_404: Callable[[], T] | None = None
    not_found: type[DownstreamError] = DownstreamNotFound
    # False: never through the part cache (a service whose answers must always be live).
    cached: bool = True
    # The service's URL when BFF_<NAME>_URL is not set (where `make run` puts its mock);
    # None: the variable must be set.
    default_url: str | None = None
    _decoder: msgspec.json.Decoder[T] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_decoder", msgspec.json.Decoder(self.body_type))

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys this part puts in the answer's body."""
        return tuple(self.merge(None))

    def decode(self, body: bytes, product_id: str) -> T:
        """The typed value; raises msgspec's (or Python's) decoding errors."""
        value = self._decoder.decode(body)
        for got in self.ids(value):
            if got != product_id:
                raise msgspec.ValidationError(f"asked for {product_id!r}, got {got!r}")
        return value


def _product(value: Product | None) -> Mapping[str, Any]:
    return {"product": value}


_NO_REVIEWS = ReviewSummary(count=0, average_rating=None)
# C-level getters: a generator here would be one more Python frame per review, per answer.
_RATING = operator.attrgetter("rating")
_PRODUCT_ID = operator.attrgetter("product_id")


def _reviews(value: list[Review] | None) -> Mapping[str, Any]:
    if not value:  # degraded, or nothing to say
        return {"reviews": [], "reviewSummary": _NO_REVIEWS}
    average = round(sum(map(_RATING, value)) / len(value), 2)
    return {"reviews": value, "reviewSummary": ReviewSummary(len(value), average)}


def _inventory(value: Inventory | None) -> Mapping[str, Any]:
    # Degraded: null (unknown is not "out of stock").
    return {"inventory": value}


def _no_reviews() -> list[Review]:
    return []


PARTS: tuple[Part[Any], ...] = (
    # Required: without the product there is no answer (its 404 is ours).
    Part(
        "product",
        "/products/",
        Product,
        lambda p: (p.id,),
        _product,
        required=True,
        default_url="http://127.0.0.1:8081",
    ),
    # A reviews service with nothing for this id may say 404 or [].
    Part(
        "reviews",
        "/reviews/",
        list[Review],
        lambda reviews: map(_PRODUCT_ID, reviews),
        _reviews,
        on_404=_no_reviews,
        default_url="http://127.0.0.1:8082",
    ),
    # No inventory record for an existing product: stock unknown, in the API's words the part
    # is `unavailable` (body, Server-Timing, log and metrics all say the same).
    Part(
        "inventory",
        "/inventory/",
        Inventory,
        lambda i: (i.product_id,),
        _inventory,
        not_found=DownstreamUnavailable,
        default_url="http://127.0.0.1:8083",
    ),
)


def optional_names(parts: Iterable[Part[Any]]) -> tuple[str, ...]:
    return tuple(part.name for part in parts if not part.required)
