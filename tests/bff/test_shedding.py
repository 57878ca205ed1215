"""The in-flight ceiling: past BFF_MAX_IN_FLIGHT misses at work or waiting, 503 at once;
probes exempt."""

from __future__ import annotations

import asyncio
import time

from bff_support import AdminFor, MakeBff, Mocks, counted

from bff.keys import ADMISSION

CAP = 2


class TestShedding:
    async def test_request_past_the_cap_gets_503_at_once(
        self, make_bff: MakeBff, mocks: Mocks, admin_for: AdminFor
    ) -> None:
        await mocks.faults("product", latency_ms=200)
        client = await make_bff(BFF_MAX_IN_FLIGHT=str(CAP))
        admission = client.app[ADMISSION]  # type: ignore[index]

        async def fetch() -> int:
            async with client.get("/product-details/P001") as resp:
                await resp.read()
                return resp.status

        slow = [asyncio.create_task(fetch()) for _ in range(CAP)]
        for _ in range(100):  # bounded: up to 1 s for both to be in flight
            if admission.in_flight == CAP:
                break
            await asyncio.sleep(0.01)
        assert admission.in_flight == CAP

        shed_before = counted("bff_edge_rejections_total", reason="in_flight")
        started = time.perf_counter()
        async with client.get("/product-details/P002") as resp:
            elapsed = time.perf_counter() - started
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "1"
            body = await resp.json(content_type=None)
        assert body["type"] == "/problems/overloaded"
        assert body["detail"] == "this worker is at its in-flight ceiling"
        assert counted("bff_edge_rejections_total", reason="in_flight") == shed_before + 1
        assert elapsed < 0.1, "shedding must not wait"

        admin = await admin_for(client)
        async with admin.get("/readyz") as probe:
            assert probe.status == 200, "the admin listener is never shed"

        assert await asyncio.gather(*slow) == [200] * CAP
        assert admission.in_flight == 0
        async with client.get("/product-details/P003") as resp:
            assert resp.status == 200

    async def test_rejected_requests_release_their_slot(self, make_bff: MakeBff) -> None:
        client = await make_bff(BFF_MAX_IN_FLIGHT="1")
        for _ in range(3):
            async with client.get("/product-details/bad id!") as resp:
                assert resp.status == 400
        assert client.app[ADMISSION].in_flight == 0  # type: ignore[index]
