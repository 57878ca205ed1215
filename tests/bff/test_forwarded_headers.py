"""What of a client's request travels downstream (bff.validation): only Authorization,
Accept-Language and the trace context, and each of these only when bounded and well formed
(dropped, never refused), because a header we forward is sent to three services on every
request and its size is ours to bound."""

from __future__ import annotations

import pytest
from bff_support import KINDS, BffClient, MakeBff, Mocks, statuses

from bff import validation as forwarding


class TestForwardedHeaders:
    """Only Authorization and Accept-Language of the client's headers go downstream."""

    async def test_allow_listed_headers_are_forwarded_and_nothing_else(
        self, bff: BffClient, mocks: Mocks
    ) -> None:
        headers = {
            "X-Request-ID": "fwd-1",
            "Authorization": "Bearer t0ken",
            "Accept-Language": "fr-CH",
            "Cookie": "session=secret",
            "X-Custom": "nope",
            "X-Forwarded-For": "203.0.113.9",
        }
        async with bff.get("/product-details/P001", headers=headers) as resp:
            assert resp.status == 200
        for kind in KINDS:
            stats = await mocks.stats(kind)
            (entry,) = [e for e in stats["recent"] if e["headers"]["x-request-id"] == "fwd-1"]
            seen = entry["headers"]
            assert seen["authorization"] == "Bearer t0ken"
            assert seen["accept-language"] == "fr-CH"
            assert "x-request-timeout-ms" in seen
            for leaked in ("cookie", "x-custom", "x-forwarded-for"):
                assert leaked not in seen


class TestBoundedHeaders:
    """Client headers travel downstream only when bounded and well formed: dropped, never
    a 400 (the page still works, in the default language or without the vendor state)."""

    async def test_a_plain_accept_language_is_forwarded(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        client = await make_bff()
        value = "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5"
        assert await statuses(client, [{"Accept-Language": value}]) == [200]
        assert (await mocks.last_headers("product"))["accept-language"] == value

    @pytest.mark.parametrize(
        "value",
        ["en-" + "a" * 8 + ("," + "en-" + "a" * 8) * 25, "en;q=2", "<script>", "en;;q=1", "en-"],
        ids=["over-256-bytes", "weight-over-1", "markup", "bad-params", "empty-subtag"],
    )
    async def test_a_bad_accept_language_is_dropped_not_refused(
        self, make_bff: MakeBff, mocks: Mocks, value: str
    ) -> None:
        client = await make_bff()
        assert await statuses(client, [{"Accept-Language": value}]) == [200]
        assert "accept-language" not in await mocks.last_headers("product")

    async def test_tracestate_within_limits_goes_downstream(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        client = await make_bff()
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,tenant@vendor=x"
        headers = {"traceparent": parent, "tracestate": state}
        assert await statuses(client, [headers]) == [200]
        assert (await mocks.last_headers("product"))["tracestate"] == state

    @pytest.mark.parametrize(
        "state",
        [
            ",".join(f"k{i}=v" for i in range(33)),
            "k=" + "v" * 300 + ",l=" + "v" * 250,
            "UPPER=v",
            "k=v=w",
            "k=v,k=w",
        ],
        ids=["33-members", "over-512-chars", "bad-key", "bad-value", "duplicate-key"],
    )
    async def test_tracestate_past_the_limits_is_dropped(
        self, make_bff: MakeBff, mocks: Mocks, state: str
    ) -> None:
        client = await make_bff()
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        assert await statuses(client, [{"traceparent": parent, "tracestate": state}]) == [200]
        seen = await mocks.last_headers("product")
        assert seen["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
        assert "tracestate" not in seen

    def test_the_limits_are_the_w3c_ones(self) -> None:
        assert forwarding.tracestate([",".join(f"k{i}=v" for i in range(32))]) is not None
        assert forwarding.tracestate(["a=" + "v" * 250, "b=" + "v" * 250]) is not None  # 507
        assert forwarding.tracestate(["a=" + "v" * 255, "b=" + "v" * 254]) is None  # 514
        assert forwarding.accept_language("x" * 250 + ";q=1") is None  # a range is <= 8 chars
        assert forwarding.accept_language("en-" + "a" * 8 + ", *;q=0") is not None
