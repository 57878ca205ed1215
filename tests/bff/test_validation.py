"""Bad input gets a clear 400 and never reaches a downstream service."""

from __future__ import annotations

import pytest
from bff_support import KINDS, BffClient, Mocks
from yarl import URL

BAD_IDS = {
    "too-long": "x" * 65,
    "space": "a%20b",
    "encoded-slash": "a%2Fb",
    "slash": "a/b",
    "dot-dot": "..",
    "encoded-dot-dot": "%2E%2E",
    "dot": "P.1",
    "percent": "%25",
    "unicode": "%C3%A9t%C3%A9",
    "crlf": "a%0D%0AX-Evil:1",
    "null-byte": "a%00",
    "quote": "a%22b",
    "empty": "",
}


class TestBadIds:
    @pytest.mark.parametrize("raw", BAD_IDS.values(), ids=BAD_IDS.keys())
    async def test_bad_id_is_a_400_problem_and_nothing_goes_downstream(
        self, bff: BffClient, mocks: Mocks, raw: str
    ) -> None:
        # Raw paths: the test client must not normalise `..` or re-encode anything.
        url = URL(f"{bff.make_url('/product-details/')}{raw}", encoded=True)
        async with bff.session.get(url) as resp:
            status = resp.status
            ctype = resp.content_type
            body = await resp.json(content_type=None)
        assert status == 400, body
        assert ctype == "application/problem+json"
        assert body["invalidParams"] == [{"name": "id", "reason": body["detail"]}]
        for kind in KINDS:
            assert await mocks.requests(kind) == 0

    async def test_longest_valid_id_is_accepted(self, bff: BffClient) -> None:
        async with bff.get("/product-details/" + "a" * 64) as resp:
            assert resp.status == 200
