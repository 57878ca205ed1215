"""Typed payloads: the downstream wire format and our own problem documents.

Decoding into these structs *is* the validation: a body that does not match raises
`msgspec.ValidationError` at the client edge and becomes `bad_response`. Unknown fields are
ignored, as the contract asks.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

Rating = Annotated[int, msgspec.Meta(ge=1, le=5)]
Stock = Annotated[int, msgspec.Meta(ge=0)]
Price = Annotated[int, msgspec.Meta(ge=0)]


class Product(msgspec.Struct, frozen=True, gc=False):
    id: str
    name: str
    description: str
    price: Price


class Review(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    product_id: str
    rating: Rating
    comment: str
    author: str


class Inventory(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    product_id: str
    stock: Stock


class ReviewSummary(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    count: int
    average_rating: float | None  # rounded to 2 places; None without reviews


class Problem(msgspec.Struct, frozen=True, gc=False, rename="camel", omit_defaults=True):
    """RFC 9457 problem details, plus the request id so a user can quote it to support."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str
    invalid_params: list[dict[str, str]] | None = None
