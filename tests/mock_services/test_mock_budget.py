"""Latency and the caller's `X-Request-Timeout-Ms` budget (docs/contract.md §3).

Latency is observed through the budget: a request whose simulated work outlasts the budget
is answered 504 when the budget runs out. No test asserts a tight timing; the only
wall-clock bound is a wide one (the work would take 10 s; the answer must come well before).
"""

from __future__ import annotations

import time

import pytest
from mock_support import KINDS, PATHS, MakeMock, MockClient, get_json, put_faults

from mock_services import ServiceKind
from mock_services.handlers import parse_budget_ms

BUDGET = "X-Request-Timeout-Ms"
TEN_SECONDS_MS = 10_000


async def status_with_budget(client: MockClient, budget: str, path: str = "/products/P001") -> int:
    async with client.get(path, headers={BUDGET: budget}) as resp:
        if resp.status == 504:
            assert (await resp.json())["error"] == "budget_exceeded"
        return resp.status


class TestBudget:
    """Simulated work stops when the budget runs out, and the answer is 504."""

    async def test_work_longer_than_the_budget_is_cut_short(self, product: MockClient) -> None:
        await put_faults(product, latency_ms=TEN_SECONDS_MS)
        started = time.monotonic()
        assert await status_with_budget(product, "50") == 504
        assert time.monotonic() - started < 5  # far less than the 10 s of work

    async def test_work_within_the_budget_is_answered(self, product: MockClient) -> None:
        await put_faults(product, latency_ms=20)
        assert await status_with_budget(product, "5000") == 200

    @pytest.mark.parametrize("kind", KINDS)
    async def test_default_latency_is_scaled(self, make_mock: MakeMock, kind: ServiceKind) -> None:
        slow = await make_mock(kind, latency_scale=100.0)  # seconds of default latency
        fast = await make_mock(kind, latency_scale=0.0)
        path = PATHS[kind].format("P001")
        assert await status_with_budget(slow, "20", path) == 504
        assert await status_with_budget(fast, "1", path) == 200

    async def test_slow_rate_adds_slow_ms(self, product: MockClient) -> None:
        await put_faults(product, slow_rate=1, slow_ms=TEN_SECONDS_MS)
        assert await status_with_budget(product, "50") == 504
        await put_faults(product, slow_rate=0, slow_ms=TEN_SECONDS_MS)
        assert await status_with_budget(product, "50") == 200

    async def test_jitter_adds_to_latency(self, product: MockClient) -> None:
        # uniform(0, 10 s) under 1 ms is a 1-in-10,000 draw; the seed pins it anyway.
        await put_faults(product, jitter_ms=TEN_SECONDS_MS, seed=1)
        assert await status_with_budget(product, "1") == 504

    @pytest.mark.parametrize("value", ["0", "-5", "1.5", "abc", ""])
    async def test_invalid_budget_is_ignored(self, product: MockClient, value: str) -> None:
        await put_faults(product, latency_ms=100)
        assert await status_with_budget(product, value) == 200

    async def test_budget_exceeded_is_counted(self, product: MockClient) -> None:
        await put_faults(product, latency_ms=TEN_SECONDS_MS)
        for _ in range(2):
            await status_with_budget(product, "10")
        stats = await get_json(product, "/__stats")
        assert stats["budget_exceeded"] == 2
        assert stats["requests"] == 2
        assert stats["recent"][-1]["status"] == 504

    def test_parse_budget_ms(self) -> None:
        assert parse_budget_ms("250") == 250
        assert parse_budget_ms(None) is None
        assert parse_budget_ms("0") is None
        assert parse_budget_ms("+5") is None
        assert parse_budget_ms("١٢") is None  # Arabic-Indic digits: isdigit() but not ASCII
        assert parse_budget_ms("9" * 10) is None
