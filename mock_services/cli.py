"""`python -m mock_services`: the three mock services and the fault lab in one process.

Prints one line per service with its bound address (the real port when 0 was asked for),
then one for the fault lab (mock_services.lab), then logs one line per request to stderr.
SIGINT and SIGTERM stop it cleanly (exit 0). An address that cannot be used (in use, unknown
host) stops the start with exit status 2 and one line naming it; the services already
started are closed first. `--preset NAME` starts with a preset's faults in force.
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
from .lab import create_lab_app
from .presets import PRESETS, Preset, UnknownPreset, preset_named
from .state import SERVICE_KINDS, SERVICE_STATE, ServiceKind, ServiceState
from .tracing import provider_from_env, shutdown_providers

__all__ = ["main", "parse_args", "serve"]

DEFAULT_PORTS = {"product": 8081, "reviews": 8082, "inventory": 8083}
DEFAULT_LAB_PORT = 8089


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


def _preset(name: str) -> Preset:
    try:
        return preset_named(name)
    except UnknownPreset as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _epilog() -> str:
    presets = "\n".join(f"  {p.name:<17} {p.description}" for p in PRESETS.values())
    return f"""\
fault API, on every service (no restart needed):
  GET    /__faults               the faults in force (JSON, every field)
  PUT    /__faults               replace them with a JSON object; fields: latency_ms,
                                 jitter_ms, error_rate, error_status, slow_rate, slow_ms,
                                 malformed_rate, wrong_schema_rate, reset_rate, seed,
                                 cache_control, etag (docs/contract.md, section 3)
  PUT    /__faults?preset=NAME   replace them with a preset's faults for that service
  DELETE /__faults               back to the defaults
  GET    /__stats[?recent=N]     requests served and the last N (200) of them
  DELETE /__stats                zero the counters
  GET    /__presets              the presets below, as JSON

presets (--preset NAME at start, ?preset=NAME on a running service, or the lab):
{presets}

fault lab: a page with every fault as a control, the presets and the last requests of
each service, at http://HOST:LAB_PORT/ (docs/pages.md)
"""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mock_services",
        description="Run the product, reviews and inventory mock services and their fault lab "
        "(one process).",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.add_argument(
        "--lab-port",
        type=_port,
        default=DEFAULT_LAB_PORT,
        help="port of the fault lab page (%(default)s; 0: any free port)",
    )
    parser.add_argument(
        "--preset",
        type=_preset,
        default=None,
        metavar="NAME",
        help=f"start with a preset's faults in force ({', '.join(PRESETS)})",
    )
    return parser.parse_args(argv)


async def _start(runner: web.AppRunner, host: str, port: int) -> str:
    """Set up and listen; the base URL with the bound port."""
    await runner.setup()
    await _listen(runner, host, port)
    bound_host, bound_port = runner.addresses[0][:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    return f"http://{url_host}:{bound_port}"


async def serve(args: argparse.Namespace) -> None:
    """Run the three services and the lab until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    runners: list[web.AppRunner] = []
    started: dict[ServiceKind, tuple[ServiceState, str]] = {}
    providers = []
    preset: Preset | None = args.preset
    try:
        for kind in SERVICE_KINDS:
            provider = provider_from_env(kind)  # None unless OTEL_* asks for traces
            if provider is not None:
                providers.append(provider)
            app = create_service_app(
                kind,
                latency_scale=args.latency_scale,
                seed_faults=None if preset is None else preset.for_service(kind),
                tracer_provider=provider,
            )
            # access_log=None: the app's middleware already logs one line per request.
            runners.append(web.AppRunner(app, access_log=None, handle_signals=False))
            url = await _start(runners[-1], args.host, getattr(args, f"{kind}_port"))
            started[kind] = (app[SERVICE_STATE], url)
        runners.append(web.AppRunner(create_lab_app(started), handle_signals=False))
        lab_url = await _start(runners[-1], args.host, args.lab_port)
        # Only once everything listens: a start that fails half-way announces nothing.
        lines = [f"{kind:<9} {url}" for kind, (_, url) in started.items()]
        print("\n".join([*lines, f"{'lab':<9} {lab_url}/"]), flush=True)
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
