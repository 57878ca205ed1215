"""Which of bff/'s files and functions one request runs through, after a warm-up.

    .venv/bin/python tools/trace_path.py            # a miss and a hit, summary and lists
    .venv/bin/python tools/trace_path.py --calls    # also every function, with its count

Everything runs in this process on loopback: the three mock services at zero latency and one
BFF worker with default settings (access log on, written to /dev/null). After a warm-up of
`--warmup` requests, one request for an id never asked before (a cache miss: every part
called) and then the same id again (a hit: every part fresh in memory) are traced with
`sys.setprofile`. A "call" is what the profiler reports as one: a function entered, or a
coroutine resumed after an await; only calls whose code lives in bff/ are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
BFF_DIR = str(ROOT / "bff") + os.sep


class Tracer:
    def __init__(self) -> None:
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()

    def __call__(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call":
            filename = frame.f_code.co_filename
            if filename.startswith(BFF_DIR):
                self.calls[(filename[len(BFF_DIR) :], frame.f_code.co_qualname)] += 1

    def files(self) -> collections.Counter[str]:
        counts: collections.Counter[str] = collections.Counter()
        for (filename, _), n in self.calls.items():
            counts[filename] += n
        return counts


async def _traced(session: aiohttp.ClientSession, url: str) -> tuple[Tracer, int, str]:
    tracer = Tracer()
    sys.setprofile(tracer)
    try:
        async with session.get(url) as resp:
            await resp.read()
            status, timing = resp.status, resp.headers.get("Server-Timing", "")
    finally:
        sys.setprofile(None)
    return tracer, status, timing


async def main(args: argparse.Namespace) -> None:
    from bff.app import create_app
    from bff.observability.logging import configure_logging
    from bff.server import make_runner, settle_heap
    from bff.settings import Settings
    from mock_services.app import create_service_app

    runners: list[web.AppRunner] = []
    env: dict[str, str] = {}
    for kind in ("product", "reviews", "inventory"):
        runner = web.AppRunner(create_service_app(kind, latency_scale=0), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        env[f"BFF_{kind.upper()}_URL"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
    settings = Settings.from_env({**env, "BFF_WORKERS": "1"})
    # The access log goes nowhere, but is written; opened once, before any request.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115, ASYNC230
    configure_logging(settings.log_level, "json")
    runner = make_runner(create_app(settings), settings)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    runners.append(runner)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/product-details/"
    settle_heap()
    async with aiohttp.ClientSession() as session:
        for i in range(args.warmup):
            async with session.get(f"{base}W{i % 50}") as resp:
                await resp.read()
        miss = await _traced(session, base + "TRACED")
        hit = await _traced(session, base + "TRACED")
    for r in reversed(runners):
        await r.cleanup()
    sys.stdout = sys.__stdout__
    for name, (tracer, status, timing) in (("miss", miss), ("hit", hit)):
        files = tracer.files()
        total = sum(files.values())
        print(f"{name}: {len(files)} files of bff/, {total} calls (status {status}; {timing})")
        for filename, n in sorted(files.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {n:4d}  {filename}")
        if args.calls:
            for (filename, func), n in sorted(tracer.calls.items(), key=lambda kv: -kv[1]):
                print(f"        {n:4d}  {filename}:{func}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--calls", action="store_true", help="list every function too")
    asyncio.run(main(parser.parse_args()))
