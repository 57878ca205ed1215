"""`python -m mock_services`: the three mock services in one process, one event loop.

Prints one line per service with its bound address (the real port when 0 was asked for),
then logs one line per request to stderr. SIGINT and SIGTERM stop it cleanly (exit 0). An
address that cannot be used (in use, unknown host) stops the start with exit status 2 and
one line naming it; the services already started are closed first.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import socket
import sys
from collections.abc import Sequence

from aiohttp import web

from .app import create_service_app
from .state import SERVICE_KINDS
from .tracing import provider_from_env, shutdown_providers

__all__ = ["main", "parse_args", "serve"]

DEFAULT_PORTS = {"product": 8081, "reviews": 8082, "inventory": 8083}


class CannotListen(Exception):
    """One line for the operator: which address, and why."""


async def _listen(runner: web.AppRunner, host: str, port: int) -> None:
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            why = "address already in use"
        elif isinstance(exc, socket.gaierror):
            why = f"unknown host ({exc.strerror})"
        else:
            why = exc.strerror or str(exc)
        raise CannotListen(f"cannot listen on {where}: {why}") from None


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
    announced: list[str] = []
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
            await _listen(runner, args.host, getattr(args, f"{kind}_port"))
            host, port = runner.addresses[0][:2]
            url_host = f"[{host}]" if ":" in host else host
            announced.append(f"{kind:<9} http://{url_host}:{port}")
        # Only once all three listen: a start that fails half-way announces nothing.
        print("\n".join(announced), flush=True)
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        await shutdown_providers(providers)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    try:
        try:
            import uvloop  # optional: a faster loop when installed
        except ImportError:
            asyncio.run(serve(args))
        else:
            uvloop.run(serve(args))
    except CannotListen as exc:
        print(f"python -m mock_services: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0
