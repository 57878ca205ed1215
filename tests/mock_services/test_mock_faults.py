"""Fault injection at run time: `/__faults` and what each field does (docs/contract.md §3)."""

from __future__ import annotations

import json
import random
from typing import Any

import aiohttp
import pytest
from mock_support import KINDS, PATHS, MakeMock, MockClient, get_json, put_faults

from mock_services import DEFAULT_LATENCY_MS, FaultSettings, ServiceKind
from mock_services.catalogue import product_for
from mock_services.faults import Outcome, draw

ALL_FIELDS = {
    "latency_ms",
    "jitter_ms",
    "error_rate",
    "error_status",
    "slow_rate",
    "slow_ms",
    "malformed_rate",
    "wrong_schema_rate",
    "reset_rate",
    "seed",
    "cache_control",
    "etag",
}


async def statuses(client: MockClient, count: int) -> list[int]:
    result = []
    for _ in range(count):
        async with client.get("/products/P001") as resp:
            result.append(resp.status)
    return result


class TestFaultEndpoints:
    """GET shows every field; PUT replaces; DELETE restores the service's defaults."""

    @pytest.mark.parametrize("kind", KINDS)
    async def test_defaults(self, make_mock: MakeMock, kind: ServiceKind) -> None:
        client = await make_mock(kind, latency_scale=2.0)
        faults = await get_json(client, "/__faults")
        assert set(faults) == ALL_FIELDS
        assert faults["latency_ms"] == DEFAULT_LATENCY_MS[kind] * 2
        assert faults["error_rate"] == 0
        assert faults["error_status"] == 503
        assert faults["seed"] is None

    async def test_put_replaces_and_omitted_fields_take_defaults(self, product: MockClient) -> None:
        await put_faults(product, error_rate=0.5, jitter_ms=5)
        faults = await put_faults(product, malformed_rate=0.25)
        assert faults == await get_json(product, "/__faults")
        assert faults["malformed_rate"] == 0.25
        assert faults["error_rate"] == 0  # replaced, not merged
        assert faults["jitter_ms"] == 0
        assert faults["latency_ms"] == 0  # the default at latency scale 0

    async def test_delete_restores_defaults(self, make_mock: MakeMock) -> None:
        client = await make_mock("reviews", latency_scale=1.0)
        defaults = await get_json(client, "/__faults")
        await put_faults(client, latency_ms=1, error_rate=1, seed=3)
        async with client.delete("/__faults") as resp:
            assert resp.status == 200
            assert await resp.json() == defaults
        assert defaults["latency_ms"] == 80
        async with client.get("/reviews/P001") as resp:
            assert resp.status == 200

    async def test_seed_faults_are_in_force_at_start(self, make_mock: MakeMock) -> None:
        client = await make_mock("product", seed_faults=FaultSettings(error_rate=1.0))
        assert await statuses(client, 2) == [503, 503]
        assert (await get_json(client, "/__faults"))["latency_ms"] == 0

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"bogus": 1}, "bogus"),
            ({"error_rate": 1.5}, "error_rate"),
            ({"reset_rate": -0.1}, "reset_rate"),
            ({"slow_rate": "often"}, "slow_rate"),
            ({"latency_ms": -1}, "latency_ms"),
            ({"jitter_ms": -5}, "jitter_ms"),
            ({"slow_ms": True}, "slow_ms"),
            ({"error_status": 200}, "error_status"),
            ({"error_status": "503"}, "error_status"),
            ({"seed": 1.5}, "seed"),
        ],
    )
    async def test_invalid_put_is_400_naming_the_field_and_changes_nothing(
        self, product: MockClient, body: dict[str, Any], field: str
    ) -> None:
        before = await put_faults(product, error_rate=0.1)
        async with product.put("/__faults", json=body) as resp:
            assert resp.status == 400
            error = await resp.json()
        assert error["field"] == field
        assert field in error["detail"]
        assert await get_json(product, "/__faults") == before

    @pytest.mark.parametrize("raw", [b"[1, 2]", b"not json", b""])
    async def test_body_must_be_a_json_object(self, product: MockClient, raw: bytes) -> None:
        async with product.put("/__faults", data=raw) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"] == "invalid_faults"


class TestFaultInjection:
    """Each fault does what it says, and only on the catalogue routes."""

    async def test_error_rate_uses_error_status(self, product: MockClient) -> None:
        await put_faults(product, error_rate=1)
        assert await statuses(product, 3) == [503, 503, 503]
        await put_faults(product, error_rate=1, error_status=500)
        async with product.get("/products/P001") as resp:
            assert resp.status == 500
            assert resp.content_type == "application/json"

    async def test_faults_do_not_touch_the_operator_endpoints(self, product: MockClient) -> None:
        await put_faults(product, error_rate=1, reset_rate=1)
        assert set(await get_json(product, "/__faults")) == ALL_FIELDS
        await get_json(product, "/__stats")

    async def test_malformed_is_a_200_that_is_not_json(self, product: MockClient) -> None:
        await put_faults(product, malformed_rate=1)
        async with product.get("/products/P001") as resp:
            assert resp.status == 200
            text = await resp.text()
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)

    @pytest.mark.parametrize("kind", KINDS)
    async def test_wrong_schema_is_valid_json_of_the_wrong_shape(
        self, make_mock: MakeMock, kind: ServiceKind
    ) -> None:
        client = await make_mock(kind)
        await put_faults(client, wrong_schema_rate=1)
        async with client.get(PATHS[kind].format("P001")) as resp:
            assert resp.status == 200
            assert await resp.json() == {"unexpected": True}

    async def test_reset_closes_the_connection_without_a_response(
        self, product: MockClient
    ) -> None:
        await put_faults(product, reset_rate=1)
        with pytest.raises(aiohttp.ClientConnectionError):
            async with product.get("/products/P001") as resp:
                await resp.read()
        # The service itself is fine: the next request on a new connection is answered.
        await product.delete("/__faults")
        assert await get_json(product, "/products/P001") == product_for("P001")

    async def test_reset_wins_over_error(self, product: MockClient) -> None:
        await put_faults(product, reset_rate=1, error_rate=1)
        with pytest.raises(aiohttp.ClientConnectionError):
            async with product.get("/products/P001"):
                pass

    async def test_faults_apply_to_missing_ids_too(self, product: MockClient) -> None:
        await put_faults(product, error_rate=1)
        async with product.get("/products/missing-1") as resp:
            assert resp.status == 503

    async def test_invalid_id_is_400_whatever_the_faults(self, product: MockClient) -> None:
        await put_faults(product, error_rate=1, reset_rate=1)
        async with product.get("/products/a.b") as resp:
            assert resp.status == 400


class TestSeed:
    """A seed makes the sequence of faults repeatable; setting faults restarts the RNG."""

    async def test_same_seed_same_sequence(self, product: MockClient) -> None:
        await put_faults(product, error_rate=0.5, seed=42)
        first = await statuses(product, 30)
        await put_faults(product, error_rate=0.5, seed=42)
        second = await statuses(product, 30)
        assert first == second
        assert set(first) == {200, 503}

    async def test_same_seed_same_sequence_across_apps(self, make_mock: MakeMock) -> None:
        seeded = FaultSettings(error_rate=0.5, seed=7)
        a = await make_mock("product", seed_faults=seeded)
        b = await make_mock("product", seed_faults=seeded)
        assert await statuses(a, 20) == await statuses(b, 20)

    async def test_different_seeds_differ(self, product: MockClient) -> None:
        await put_faults(product, error_rate=0.5, seed=1)
        first = await statuses(product, 30)
        await put_faults(product, error_rate=0.5, seed=2)
        assert await statuses(product, 30) != first

    async def test_invalid_ids_do_not_consume_draws(self, product: MockClient) -> None:
        await put_faults(product, error_rate=0.5, seed=5)
        expected = await statuses(product, 10)
        await put_faults(product, error_rate=0.5, seed=5)
        seen = []
        for _ in range(10):
            async with product.get("/products/a.b") as resp:
                assert resp.status == 400
            seen += await statuses(product, 1)
        assert seen == expected


def documented_plans(settings: FaultSettings, seed: int, count: int) -> list[tuple[str, float]]:
    """(outcome, delay) per request as mock_services.faults documents the draws: six per
    request, in the order reset, error, malformed, wrong schema, slow, jitter; the first
    outcome drawn true wins. Written from the docstring, not from the code."""
    rng = random.Random(seed)
    plans = []
    for _ in range(count):
        reset, error, malformed, schema, slow = (rng.random() for _ in range(5))
        jitter = rng.uniform(0.0, settings.jitter_ms)
        if reset < settings.reset_rate:
            outcome = "reset"
        elif error < settings.error_rate:
            outcome = "error"
        elif malformed < settings.malformed_rate:
            outcome = "malformed"
        elif schema < settings.wrong_schema_rate:
            outcome = "wrong_schema"
        else:
            outcome = "ok"
        delay = (settings.latency_ms or 0.0) + jitter
        if slow < settings.slow_rate:
            delay += settings.slow_ms
        plans.append((outcome, delay))
    return plans


class TestDrawOrder:
    """`seed` promises the same sequence of faults every time: the draws keep their documented
    order, one set of six per request whatever the rates, so a seed written down in a bug
    report replays the same faults on the next release."""

    def test_every_plan_follows_the_documented_order(self) -> None:
        settings = FaultSettings(
            latency_ms=5,
            jitter_ms=20,
            reset_rate=0.2,
            error_rate=0.3,
            malformed_rate=0.3,
            wrong_schema_rate=0.3,
            slow_rate=0.3,
            slow_ms=100,
        )
        rng = random.Random(11)
        plans = [draw(settings, rng) for _ in range(300)]
        expected = documented_plans(settings, 11, 300)
        assert [p.outcome.value for p in plans] == [o for o, _ in expected]
        assert [p.delay_ms for p in plans] == pytest.approx([d for _, d in expected])
        assert {p.outcome for p in plans} == set(Outcome), "every outcome occurs"

    def test_a_zero_rate_still_takes_its_draw(self) -> None:
        """Turning one fault off must not shift the others' sequence."""
        only_errors = FaultSettings(error_rate=0.5)
        rng = random.Random(3)
        seen = [draw(only_errors, rng).outcome.value for _ in range(100)]
        assert seen == [o for o, _ in documented_plans(only_errors, 3, 100)]

    async def test_over_the_wire(self, product: MockClient) -> None:
        """The sequence a client sees: error, malformed and wrong-schema answers in the
        documented order (no resets here: a dropped connection may be re-sent by the client,
        which would take a second set of draws)."""
        fields = {"error_rate": 0.3, "malformed_rate": 0.3, "wrong_schema_rate": 0.3}
        await put_faults(product, seed=2024, **fields)
        expected = [o for o, _ in documented_plans(FaultSettings(**fields), 2024, 40)]
        seen = []
        for _ in range(40):
            async with product.get("/products/P001") as resp:
                body = await resp.read()
            if resp.status == 503:
                seen.append("error")
            elif body == b'{"unexpected":true}':
                seen.append("wrong_schema")
            else:
                try:
                    json.loads(body)
                except ValueError:
                    seen.append("malformed")
                else:
                    seen.append("ok")
        assert seen == expected
