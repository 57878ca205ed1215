"""An endpoint declared as (path prefix, body type, the ids in a body, what a 404 means) is
what the client calls and checks. Built here, not imported: the gateway's three endpoints are
built at import, and each part of the declaration must do what it says."""

from __future__ import annotations

import msgspec
import pytest
from call_support import endpoint

from bff.errors import DownstreamUnavailable
from bff.models import Inventory
from bff.parts import Part


def _none() -> Inventory:
    return Inventory("none", 0)


class TestDeclaration:
    """Path, decoding, the id check and the meaning of a 404, as declared."""

    def test_every_part_is_used(self) -> None:
        stock = endpoint(
            "/stock/",
            Inventory,
            lambda i: (i.product_id,),
            on_404=_none,
            not_found=DownstreamUnavailable,
        )
        assert (
            stock.prefix == "/stock/"
        )  # a call asks for prefix + id (test_request_sent_downstream)
        assert stock.decode(b'{"productId":"P001","stock":3}', "P001") == Inventory("P001", 3)
        assert stock.on_404 is _none
        assert stock.not_found is DownstreamUnavailable

    def test_an_answer_about_another_id_says_which(self) -> None:
        stock: Part[Inventory] = endpoint("/stock/", Inventory, lambda i: (i.product_id,))
        with pytest.raises(msgspec.ValidationError) as refused:
            stock.decode(b'{"productId":"P002","stock":3}', "P001")
        assert str(refused.value) == "asked for 'P001', got 'P002'"

    def test_the_body_type_is_enforced(self) -> None:
        stock: Part[Inventory] = endpoint("/stock/", Inventory, lambda i: (i.product_id,))
        with pytest.raises(msgspec.ValidationError):
            stock.decode(b'{"productId":"P001","stock":-1}', "P001")
