"""`python -m storefront [--host H] [--port N] [--bff-url URL]`: serve the storefront page.

Prints one line with its URL once it listens; SIGINT and SIGTERM stop it (exit 0); an address
in use or a bad flag stops the start with exit status 2 and one line naming it. The BFF must
allow this page's origin (BFF_CORS_ORIGINS=http://127.0.0.1:8088 for the defaults; `make run`
sets it).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from storefront.app import create_storefront_app, origin_of

DEFAULT_PORT = 8088
DEFAULT_BFF_URL = "http://127.0.0.1:8080"


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {port}")
    return port


def _url(text: str) -> str:
    try:
        origin_of(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m storefront",
        description="Serve the storefront page, which renders a product from the BFF's "
        "incremental answer (the BFF must allow this page's origin in BFF_CORS_ORIGINS).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help="port (%(default)s)")
    parser.add_argument(
        "--bff-url", type=_url, default=DEFAULT_BFF_URL, help="the BFF's base URL (%(default)s)"
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_storefront_app(args.bff_url), handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, args.host, args.port).start()
        host, port = runner.addresses[0][:2]
        url_host = f"[{host}]" if ":" in host else host
        print(f"storefront http://{url_host}:{port}/ (BFF {args.bff_url})", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        print(
            f"python -m storefront: cannot listen on {where}: {exc.strerror or exc}",
            file=sys.stderr,
            flush=True,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
