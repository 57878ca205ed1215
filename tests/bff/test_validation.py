"""Bad input gets a clear 400 and never reaches a downstream service."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from bff_support import KINDS, BffClient, Mocks
from yarl import URL

from bff import validation
from bff.errors import InvalidRequest

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


class TestTheRules:
    """Each rule on its own: the words a client reads in the problem's `detail`, and the
    edges of what is accepted."""

    @staticmethod
    def refusal(check: Callable[[], object]) -> tuple[str, str]:
        with pytest.raises(InvalidRequest) as caught:
            check()
        assert str(caught.value) == caught.value.detail
        return caught.value.field, caught.value.detail

    def test_an_id(self) -> None:
        assert validation.product_id("a" * 64) == "a" * 64
        assert self.refusal(lambda: validation.product_id("a.b")) == (
            "id",
            "id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'",
        )

    def test_a_budget(self) -> None:
        assert validation.client_budget_s([]) is None
        assert validation.client_budget_s([" 1 "]) == 0.001
        assert validation.client_budget_s(["2500"]) == 2.5
        for bad in ("0", "-1", "1.5", "1234567890", ""):
            assert self.refusal(lambda bad=bad: validation.client_budget_s([bad])) == (
                "X-Request-Timeout-Ms",
                "X-Request-Timeout-Ms must be a whole number of milliseconds >= 1",
            )
        assert self.refusal(lambda: validation.client_budget_s(["1", "2"])) == (
            "X-Request-Timeout-Ms",
            "X-Request-Timeout-Ms must be given once",
        )

    def test_a_request_id(self) -> None:
        assert validation.request_id("abc-1.2:3_") == "abc-1.2:3_"
        for bad in (None, "", "a b", "x" * 129):
            made = validation.request_id(bad)
            assert len(made) == 32, made
            assert int(made, 16) >= 0
        assert validation.request_id(None) != validation.request_id(None)

    def test_include(self) -> None:
        optional = ("reviews", "inventory")
        assert validation.include([], optional) == frozenset(optional)
        assert validation.include(["inventory"], optional) == {"inventory"}
        assert self.refusal(lambda: validation.include(["a", "b"], optional)) == (
            "include",
            "include must be given once, as one comma list",
        )
        assert self.refusal(lambda: validation.include(["reviews,"], optional)) == (
            "include",
            "include: an empty item is not a part; choose from reviews, inventory",
        )
        long = "x" * 70
        assert self.refusal(lambda: validation.include([long], optional)) == (
            "include",
            f"include: {'x' * 64!r} is not a part; choose from reviews, inventory",
        )

    def test_accept_language_up_to_its_bound(self) -> None:
        exact = "en-GB ,\tfr;q=0.5" + ",abcdefgh" * 26 + ",abcde"  # spaces and tabs allowed
        assert len(exact.encode()) == validation.ACCEPT_LANGUAGE_MAX_BYTES
        assert validation.accept_language(exact) == exact
        assert validation.accept_language(exact + "f") is None
        assert validation.accept_language("xx-\t") is None

    def test_tracestate_up_to_its_bound(self) -> None:
        first, second = "a=" + "v" * 254, "b=" + "v" * 253
        exact = f"{first},{second}"
        assert len(exact) == validation.TRACESTATE_MAX_CHARS
        assert validation.tracestate([first, second]) == exact
        assert validation.tracestate([first, second + "v"]) is None
        assert validation.tracestate(["a=b ,\tc=d"]) == "a=b,c=d"
