"""Named presets: the same scenario from the CLI, from `?preset=` and from the lab."""

from __future__ import annotations

import math

import pytest
from mock_support import KINDS, MakeMock, MockClient, get_json, put_faults

from mock_services import FaultSettings, ServiceKind
from mock_services.presets import PRESETS, UnknownPreset, preset_named

NAMES = ("healthy", "slow-reviews", "inventory-down", "malformed-bodies", "brownout")


def faulted_share(settings: FaultSettings) -> float:
    """The share of requests that get at least one fault (the draws are independent)."""
    rates = [
        settings.reset_rate,
        settings.error_rate,
        settings.malformed_rate,
        settings.wrong_schema_rate,
        settings.slow_rate,
    ]
    return 1 - math.prod(1 - r for r in rates)


class TestCatalogue:
    """The presets the docs and `--help` name, each with what it promises."""

    def test_the_documented_names(self) -> None:
        assert tuple(PRESETS) == NAMES

    def test_slow_reviews_slows_reviews_only(self) -> None:
        preset = preset_named("slow-reviews")
        assert preset.for_service("reviews").latency_ms == 400
        assert preset.for_service("product") == FaultSettings()
        assert preset.for_service("inventory") == FaultSettings()

    def test_inventory_down_fails_every_inventory_call(self) -> None:
        inventory = preset_named("inventory-down").for_service("inventory")
        assert (inventory.error_rate, inventory.error_status) == (1.0, 503)

    def test_brownout_is_35_percent_mixed_faults_on_the_optional_services(self) -> None:
        preset = preset_named("brownout")
        assert preset.for_service("product") == FaultSettings()
        for kind in ("reviews", "inventory"):
            settings = preset.for_service(kind)
            assert faulted_share(settings) == pytest.approx(0.35, abs=0.005)
            kinds = [settings.error_rate, settings.reset_rate, settings.malformed_rate]
            kinds += [settings.wrong_schema_rate, settings.slow_rate]
            assert all(rate > 0 for rate in kinds), "mixed: every kind of fault"

    def test_unknown_name_lists_the_known_ones(self) -> None:
        with pytest.raises(UnknownPreset, match="brownout"):
            preset_named("meltdown")


class TestPutPreset:
    """`PUT /__faults?preset=NAME` installs that preset's faults for this service."""

    @pytest.mark.parametrize("kind", KINDS)
    async def test_installs_the_preset_for_this_service(
        self, make_mock: MakeMock, kind: ServiceKind
    ) -> None:
        client = await make_mock(kind)
        await put_faults(client, error_rate=0.7)  # whatever was in force before goes
        async with client.put("/__faults?preset=brownout") as resp:
            assert resp.status == 200
            in_force = await resp.json()
        expected = preset_named("brownout").for_service(kind)
        assert in_force["error_rate"] == expected.error_rate
        assert in_force["slow_ms"] == expected.slow_ms
        assert in_force == await get_json(client, "/__faults")

    async def test_a_service_the_preset_does_not_name_goes_back_to_defaults(
        self, product: MockClient
    ) -> None:
        defaults = await get_json(product, "/__faults")
        await put_faults(product, error_rate=1)
        async with product.put("/__faults?preset=slow-reviews") as resp:
            assert await resp.json() == defaults

    async def test_unknown_preset_is_a_400_problem_and_changes_nothing(
        self, reviews: MockClient
    ) -> None:
        before = await put_faults(reviews, latency_ms=7)
        async with reviews.put("/__faults?preset=meltdown") as resp:
            assert resp.status == 400
            assert resp.content_type == "application/problem+json"
            body = await resp.json(content_type=None)
        assert body["status"] == 400
        assert body["title"] == "Unknown preset"
        assert "meltdown" in body["detail"]
        assert body["presets"] == list(NAMES)
        assert await get_json(reviews, "/__faults") == before

    async def test_preset_and_body_together_are_refused(self, reviews: MockClient) -> None:
        async with reviews.put("/__faults?preset=brownout", json={"error_rate": 1}) as resp:
            assert resp.status == 400
            assert (await resp.json(content_type=None))["type"] == "/problems/preset-and-body"
        assert (await get_json(reviews, "/__faults"))["error_rate"] == 0

    async def test_presets_are_listed(self, product: MockClient) -> None:
        listed = await get_json(product, "/__presets")
        assert [p["name"] for p in listed] == list(NAMES)
        brownout = listed[NAMES.index("brownout")]
        assert set(brownout["services"]) == {"reviews", "inventory"}
        assert brownout["services"]["reviews"]["reset_rate"] == 0.05

    async def test_a_preset_really_faults_the_calls(self, inventory: MockClient) -> None:
        async with inventory.put("/__faults?preset=inventory-down"):
            pass
        for _ in range(3):
            async with inventory.get("/inventory/P001") as resp:
                assert resp.status == 503
