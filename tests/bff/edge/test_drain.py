"""Graceful drain: the BFF started as users start it, stopped by SIGTERM or SIGHUP.

Requests are put in flight against slow mocks, then SIGTERM, and more arrive during the
drain delay, some still in flight when the listener closes: every accepted request must be
answered 200, /readyz must say 503 while the drain lasts, and the process exits 0 within
the grace period, with one worker and with several.

While a worker drains, every response says `Connection: close` and the connection closes,
so keep-alive clients and load balancers reconnect to an instance that is not leaving (a raw
socket that keeps its connection alive: a `close` in the answer can only come from the BFF).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from bff_support import BffClient
from process_support import Process, announced_mocks, exited, running, url_in

from bff.keys import LIFECYCLE

STEP_S = 20.0  # generous bound on every step; a healthy run takes about 2 s


GRACE_S = 5.0


DELAY_S = 1.0  # /readyz 503 while still serving, then the listener closes


SLOW_MS = 350  # product latency: requests are still in flight when the listener closes


IN_FLIGHT = 8


@pytest.fixture
async def mock_urls() -> AsyncIterator[dict[str, str]]:
    args = ["-m", "mock_services", "--latency-scale=0", "--lab-port=0"]
    args += [f"--{kind}-port=0" for kind in ("product", "reviews", "inventory")]
    async with running(args) as (_, lines):
        yield await announced_mocks(lines)


def terminal_closed(proc: Process) -> None:
    """What closing the terminal does: SIGHUP to the whole foreground process group."""
    os.killpg(proc.pid, signal.SIGHUP)


def metrics_dirs(tmp: Path) -> list[Path]:
    return list(tmp.glob("bff-metrics-*"))


def sigterm(proc: Process) -> None:
    proc.send_signal(signal.SIGTERM)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("send", [sigterm, terminal_closed], ids=["SIGTERM", "SIGHUP"])
async def test_a_stop_signal_drains_without_dropping_a_request(
    mock_urls: dict[str, str], workers: int, send: Callable[[Process], None], tmp_path: Path
) -> None:
    """SIGTERM from an orchestrator, or SIGHUP to every process of the group from a closed
    terminal (which used to kill the supervisor at once and leave its workers' metrics
    directory and three multiprocessing semaphores behind)."""
    env = {f"BFF_{k.upper()}_URL": v for k, v in mock_urls.items()}
    env |= {
        "TMPDIR": str(tmp_path),  # where the supervisor makes its metrics directory
        "BFF_DRAIN_DELAY_S": str(DELAY_S),
        "BFF_SHUTDOWN_GRACE_S": str(GRACE_S),
        "BFF_LOG_LEVEL": "INFO",
        "BFF_LOG_FORMAT": "json",
        "BFF_PRODUCT_TIMEOUT_MS": "450",  # above SLOW_MS, within the 500 ms deadline
    }
    timeout = aiohttp.ClientTimeout(total=STEP_S)
    async with running(["-m", "bff", "--port=0", f"--workers={workers}"], env) as (bff, lines):
        # The admin listener is announced first, then the API's once every worker listens.
        admin = url_in(await lines.next_matching("bff admin on http://"))
        base = url_in(await lines.next_matching("bff listening on http://"))
        # Fresh connections each time (force_close): with several workers each may land anywhere.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(base, timeout=timeout, connector=connector) as http:
            async with http.put(f"{mock_urls['product']}/__faults", json={"latency_ms": SLOW_MS}):
                pass

            async def fetch(product_id: str) -> tuple[int, str | None]:
                async with http.get(f"/product-details/{product_id}") as resp:
                    await resp.read()
                    return resp.status, resp.headers.get("Connection")

            in_flight = [asyncio.create_task(fetch(f"P{i:03}")) for i in range(IN_FLIGHT)]
            await asyncio.sleep(0.1)  # accepted and waiting on the slow product service
            stopped_at = time.monotonic()
            send(bff)
            await asyncio.sleep(0.05)

            readyz = []
            for _ in range(3):  # during the drain delay the listener is still open
                async with http.get(f"{admin}/readyz") as resp:
                    readyz.append(resp.status)
            # On a keep-alive connection (not force_close, which sends `Connection: close`
            # itself and gets it echoed): a `close` in this answer can only be the drain's.
            async with (
                aiohttp.ClientSession(base, timeout=timeout) as keep_alive,
                keep_alive.get("/product-details/P999") as late,
            ):
                await late.read()
                late_status, late_connection = late.status, late.headers.get("Connection")
            # A second wave accepted just before the listener closes: still in flight after.
            await asyncio.sleep(max(0.0, DELAY_S - 0.2 - (time.monotonic() - stopped_at)))
            second = [asyncio.create_task(fetch(f"Q{i:03}")) for i in range(IN_FLIGHT)]
            second_answers = await asyncio.gather(*second)
            second_done = time.monotonic() - stopped_at

            answers = await asyncio.gather(*in_flight) + second_answers
            code = await exited(bff, STEP_S)
            took = time.monotonic() - stopped_at

    assert [status for status, _ in answers] == [200] * (2 * IN_FLIGHT)
    assert readyz == [503, 503, 503]
    assert (late_status, late_connection) == (200, "close")
    assert second_done > DELAY_S, "the second wave was still in flight at the listener's close"
    output = "\n".join(lines.seen)
    assert code == 0, output
    assert took < GRACE_S
    assert metrics_dirs(tmp_path) == [], "the supervisor removed its metrics directory"
    assert "leaked" not in output, "multiprocessing cleaned up after itself"


REQUEST = "GET {path} HTTP/1.1\r\nHost: bff.test\r\n\r\n"


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> dict[str, str]:
    """One request on an open keep-alive connection: the answer's status line and headers."""
    writer.write(REQUEST.format(path=path).encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, *lines = head.decode().split("\r\n")
    headers = {"status": status.split()[1]}
    for line in filter(None, lines):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    return headers


@pytest.mark.parametrize("path", ["/product-details/P001", "/readyz"])
async def test_a_keep_alive_connection_is_closed_while_draining(bff: BffClient, path: str) -> None:
    reader, writer = await asyncio.open_connection(bff.host, bff.port)
    try:
        before = await exchange(reader, writer, path)
        assert before.get("connection", "keep-alive").lower() != "close", "kept alive at first"
        bff.app[LIFECYCLE].draining = True
        during = await exchange(reader, writer, path)
        assert during.get("connection", "").lower() == "close"
        # ...and the server does close it: the next read is the end of the stream.
        assert await asyncio.wait_for(reader.read(1), 5) == b""
    finally:
        writer.close()
