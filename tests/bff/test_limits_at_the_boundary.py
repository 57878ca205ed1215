"""Limits at their exact boundary, and an answer that does not wait for a deadline it does not
need: the edges that off-by-one and bookkeeping mistakes move without any other test noticing."""

from __future__ import annotations

from bff_support import MakeBff, timed_get


class TestRequestBody:
    """A GET with a body is a 413, however small the body; without one it is served."""

    async def test_a_one_byte_body_is_refused_and_none_is_served(self, make_bff: MakeBff) -> None:
        bff = await make_bff()
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
        async with bff.get("/product-details/P001", data=b"x") as resp:
            assert resp.status == 413
            body = await resp.json(content_type=None)
        assert body["detail"] == "a GET or HEAD request carries no body"


class TestAnswerWhenAllPartsArrived:
    async def test_the_answer_does_not_wait_for_the_deadline(self, make_bff: MakeBff) -> None:
        """With every part answered (50/80/30 ms), the answer goes out then, not at the 3 s
        deadline: the fan-out counts its finished parts (a wide margin: 1.5 s)."""
        bff = await make_bff(BFF_DEADLINE_MS=3000)
        resp, body, elapsed = await timed_get(bff, "/product-details/P001")
        assert resp.status == 200
        assert body["degraded"] == {}
        assert elapsed < 1.5
