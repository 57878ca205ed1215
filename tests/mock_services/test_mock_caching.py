"""The mocks speak HTTP caching: Cache-Control per service, a strong ETag, 304 on a match."""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from mock_support import KINDS, PATHS, MakeMock, MockClient, get_json, put_faults

from mock_services import ServiceKind
from mock_services.catalogue import product_for

DEFAULTS: dict[ServiceKind, str] = {
    "product": "max-age=60, stale-while-revalidate=30, stale-if-error=600",
    "reviews": "max-age=30, stale-while-revalidate=30, stale-if-error=600",
    "inventory": "max-age=2, stale-if-error=60",
}


async def etag_of(client: MockClient, path: str) -> str:
    async with client.get(path) as resp:
        assert resp.status == 200
        return resp.headers["ETag"]


async def requests_counted(client: MockClient) -> int:
    stats = await get_json(client, "/__stats")
    count: int = stats["requests"]
    return count


class TestDefaultHeaders:
    """Each service sends its default Cache-Control and a strong ETag of the body."""

    @pytest.mark.parametrize("kind", KINDS)
    async def test_default_cache_control(self, make_mock: MakeMock, kind: ServiceKind) -> None:
        client = await make_mock(kind)
        async with client.get(PATHS[kind].format("P001")) as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == DEFAULTS[kind]
        assert (await get_json(client, "/__faults"))["cache_control"] == DEFAULTS[kind]

    async def test_etag_is_strong_and_of_the_body(self, product: MockClient) -> None:
        async with product.get("/products/P001") as resp:
            body = await resp.read()
            etag = resp.headers["ETag"]
        assert not etag.startswith("W/")
        assert etag == '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        assert msgspec.json.decode(body) == product_for("P001")
        assert etag != await etag_of(product, "/products/P002")
        assert etag == await etag_of(product, "/products/P001")

    async def test_not_found_carries_no_caching_headers(self, product: MockClient) -> None:
        async with product.get("/products/missing-1") as resp:
            assert resp.status == 404
            assert "Cache-Control" not in resp.headers
            assert "ETag" not in resp.headers


class TestConditionalRequests:
    """A matching If-None-Match is answered 304 with no body; it still counts as a request."""

    @pytest.mark.parametrize("kind", KINDS)
    async def test_match_is_304(self, make_mock: MakeMock, kind: ServiceKind) -> None:
        client = await make_mock(kind)
        path = PATHS[kind].format("P001")
        etag = await etag_of(client, path)
        async with client.get(path, headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
            assert await resp.read() == b""
            assert resp.headers["ETag"] == etag
            assert resp.headers["Cache-Control"] == DEFAULTS[kind]
        assert await requests_counted(client) == 2

    @pytest.mark.parametrize(
        "template",
        ['"nope", {}', "W/{}", '"a",{} ,"b"', "*"],
        ids=["in-a-list", "weak-form", "no-spaces", "star"],
    )
    async def test_match_forms(self, product: MockClient, template: str) -> None:
        etag = await etag_of(product, "/products/P001")
        header = template.format(etag) if "{}" in template else template
        async with product.get("/products/P001", headers={"If-None-Match": header}) as resp:
            assert resp.status == 304

    async def test_other_tag_gets_the_body(self, product: MockClient) -> None:
        other = await etag_of(product, "/products/P002")
        async with product.get("/products/P001", headers={"If-None-Match": other}) as resp:
            assert resp.status == 200
            assert msgspec.json.decode(await resp.read()) == product_for("P001")


class TestCachingFaults:
    """`cache_control` and `etag` change the headers at run time; DELETE restores them."""

    async def test_cache_control_replaced(self, product: MockClient) -> None:
        await put_faults(product, cache_control="private, max-age=5")
        async with product.get("/products/P001") as resp:
            assert resp.headers["Cache-Control"] == "private, max-age=5"

    async def test_empty_cache_control_sends_none(self, product: MockClient) -> None:
        faults = await put_faults(product, cache_control="")
        assert faults["cache_control"] == ""
        async with product.get("/products/P001") as resp:
            assert resp.status == 200
            assert "Cache-Control" not in resp.headers
            assert "ETag" in resp.headers

    async def test_etag_off_means_no_tag_and_no_304(self, product: MockClient) -> None:
        etag = await etag_of(product, "/products/P001")
        await put_faults(product, etag=False)
        async with product.get("/products/P001", headers={"If-None-Match": etag}) as resp:
            assert resp.status == 200
            assert "ETag" not in resp.headers
            assert resp.headers["Cache-Control"] == DEFAULTS["product"]

    async def test_delete_restores_the_defaults(self, inventory: MockClient) -> None:
        await put_faults(inventory, cache_control="no-store", etag=False)
        async with inventory.delete("/__faults") as resp:
            faults = await resp.json()
        assert faults["cache_control"] == DEFAULTS["inventory"]
        assert faults["etag"] is True
        async with inventory.get("/inventory/P001") as resp:
            assert resp.headers["Cache-Control"] == DEFAULTS["inventory"]
            assert "ETag" in resp.headers

    @pytest.mark.parametrize(
        "value", ["max-age=1\r\nX-Evil: 1", "x" * 1025, 5], ids=["crlf", "too-long", "not-a-string"]
    )
    async def test_bad_value_is_refused(self, product: MockClient, value: object) -> None:
        async with product.put("/__faults", json={"cache_control": value}) as resp:
            assert resp.status == 400
            assert (await resp.json())["field"] == "cache_control"
        assert (await get_json(product, "/__faults"))["cache_control"] == DEFAULTS["product"]
