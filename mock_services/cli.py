"""`python -m mock_services`: the three mock services in one process, one event loop.

Prints one line per service with its bound address (the real port when 0 was asked for),
then logs one line per request to stderr. SIGINT and SIGTERM stop it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from .app import create_service_app
from .state import SERVICE_KINDS
from .tracing import provider_from_env, shutdown_providers

__all__ = ["main", "parse_args", "serve"]

DEFAULT_PORTS = {"product": 8081, "reviews": 8082, "inventory": 8083}


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {port}")
    return port


def _scale(text: str) -> float:
    scale = float(text)
    if not scale >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"latency scale must be >= 0, got {text}")
    return scale


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mock_services",
        description="Run the product, reviews and inventory mock services (one process).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    for kind in SERVICE_KINDS:
        parser.add_argument(
            f"--{kind}-port",
            type=_port,
            default=DEFAULT_PORTS[kind],
            help=f"port of the {kind} service (%(default)s; 0: any free port)",
        )
    parser.add_argument(
        "--latency-scale",
        type=_scale,
        default=1.0,
        help="multiplier of the default latencies (%(default)s; 0: no simulated latency)",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Run the three services until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    runners: list[web.AppRunner] = []
    providers = []
    try:
        for kind in SERVICE_KINDS:
            provider = provider_from_env(kind)  # None unless OTEL_* asks for traces
            if provider is not None:
                providers.append(provider)
            app = create_service_app(
                kind, latency_scale=args.latency_scale, tracer_provider=provider
            )
            # access_log=None: the app's middleware already logs one line per request.
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            runners.append(runner)
            await runner.setup()
            await web.TCPSite(runner, args.host, getattr(args, f"{kind}_port")).start()
            host, port = runner.addresses[0][:2]
            url_host = f"[{host}]" if ":" in host else host
            print(f"{kind:<9} http://{url_host}:{port}", flush=True)
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        await shutdown_providers(providers)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    try:
        import uvloop  # optional: a faster loop when installed
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))
    return 0
