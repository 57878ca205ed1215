"""The mock catalogue: the bodies the three mock services answer, as pure functions.

Every id matching `ID_PATTERN` exists except those starting with `missing` (docs/contract.md §1).
Bodies are derived from a BLAKE2b digest of the id, never from `hash()` (salted per process),
so they are the same in every process and on every run: tests elsewhere call these functions
to compute the body they expect.

Finding ids with a given shape (the catalogue is fixed, so these never change):

    find_id_with_review_count(0)  # an id whose reviews are []
    find_id_with_review_count(5)  # an id with five reviews
    find_id_out_of_stock()        # an id whose stock is 0

They scan "P000".."P999" in order and return the first match; `ID_WITH_NO_REVIEWS`,
`ID_WITH_FIVE_REVIEWS` and `ID_OUT_OF_STOCK` hold their results.

This module does no I/O and keeps no state.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TypedDict

__all__ = [
    "ID_OUT_OF_STOCK",
    "ID_PATTERN",
    "ID_WITH_FIVE_REVIEWS",
    "ID_WITH_NO_REVIEWS",
    "MISSING_PREFIX",
    "InventoryBody",
    "ProductBody",
    "ReviewBody",
    "find_id",
    "find_id_out_of_stock",
    "find_id_with_review_count",
    "inventory_for",
    "is_missing",
    "is_valid_id",
    "product_for",
    "reviews_for",
]

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MISSING_PREFIX = "missing"
MAX_REVIEWS = 5

_ADJECTIVES = ("compact", "rugged", "elegant", "clever", "silent", "bright", "modular", "tiny")
_NOUNS = ("gadget", "tool", "device", "companion", "helper", "widget")
_AUTHORS = ("Alice", "Bob", "Chen", "Dana", "Emeka", "Fatima", "Goran", "Hiro")
_COMMENTS = (
    "Love it!",
    "Does the job.",
    "Broke after a week.",
    "Great value for money.",
    "Not what I expected.",
    "Would buy again.",
    "Okay, nothing special.",
    "Exceeded my expectations.",
)


class ProductBody(TypedDict):
    id: str
    name: str
    description: str
    price: int


class ReviewBody(TypedDict):
    productId: str
    rating: int
    comment: str
    author: str


class InventoryBody(TypedDict):
    productId: str
    stock: int


def is_valid_id(product_id: str) -> bool:
    """True when `product_id` is 1-64 characters of `[A-Za-z0-9_-]`."""
    return ID_PATTERN.fullmatch(product_id) is not None


def is_missing(product_id: str) -> bool:
    """True for the ids that do not exist (product and inventory answer 404)."""
    return product_id.startswith(MISSING_PREFIX)


def _digest(product_id: str, salt: str) -> bytes:
    if not is_valid_id(product_id):
        raise ValueError(f"invalid product id: {product_id!r}")
    return hashlib.blake2b(f"{salt}:{product_id}".encode(), digest_size=32).digest()


def product_for(product_id: str) -> ProductBody | None:
    """The product body for `product_id`, or None when it is missing (404)."""
    if is_missing(product_id):
        return None
    d = _digest(product_id, "product")
    adjective, noun = _ADJECTIVES[d[0] % len(_ADJECTIVES)], _NOUNS[d[1] % len(_NOUNS)]
    return {
        "id": product_id,
        "name": f"Awesome Gadget {product_id}",
        "description": f"A {adjective} {noun} for everyday use.",
        # 1.99 to 999.99 in minor units, ending in 9 like real price tags.
        "price": 199 + (int.from_bytes(d[2:6], "big") % 99_800) // 10 * 10,
    }


def reviews_for(product_id: str) -> list[ReviewBody]:
    """The reviews of `product_id` (0 to 5 of them); `[]` when it is missing."""
    if is_missing(product_id):
        return []
    d = _digest(product_id, "reviews")
    count = d[0] % (MAX_REVIEWS + 1)
    return [
        {
            "productId": product_id,
            "rating": 1 + d[1 + 3 * i] % 5,
            "comment": _COMMENTS[d[2 + 3 * i] % len(_COMMENTS)],
            "author": _AUTHORS[d[3 + 3 * i] % len(_AUTHORS)],
        }
        for i in range(count)
    ]


def inventory_for(product_id: str) -> InventoryBody | None:
    """The inventory body for `product_id` (stock is 0 for about one id in five), or None."""
    if is_missing(product_id):
        return None
    d = _digest(product_id, "inventory")
    stock = 0 if d[0] % 5 == 0 else 1 + d[1] % 50
    return {"productId": product_id, "stock": stock}


def find_id(predicate: Callable[[str], bool]) -> str:
    """The first of "P000".."P999" for which `predicate` holds (LookupError if none)."""
    for n in range(1000):
        candidate = f"P{n:03d}"
        if predicate(candidate):
            return candidate
    raise LookupError("no id in P000..P999 satisfies the predicate")


def find_id_with_review_count(count: int) -> str:
    """The first id in "P000".."P999" that has exactly `count` reviews (0-5)."""
    return find_id(lambda i: len(reviews_for(i)) == count)


def find_id_out_of_stock() -> str:
    """The first id in "P000".."P999" whose stock is 0."""
    return find_id(lambda i: (inventory_for(i) or {"stock": -1})["stock"] == 0)


ID_WITH_NO_REVIEWS = find_id_with_review_count(0)
ID_WITH_FIVE_REVIEWS = find_id_with_review_count(MAX_REVIEWS)
ID_OUT_OF_STOCK = find_id_out_of_stock()
