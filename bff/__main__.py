"""`python -m bff [--host H] [--port N] [--admin-port N] [--workers N] [--print-config]`:
flags win over the environment."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _stopped_before_start(_signum: int, _frame: FrameType | None) -> None:
    # A signal while Python is still importing the server: nothing runs yet, stop cleanly.
    raise SystemExit(0)


# Before the heavy imports below (aiohttp, OpenTelemetry, prometheus: a few hundred ms), so
# that SIGTERM or SIGINT at any moment of start-up ends with exit status 0, not a traceback.
signal.signal(signal.SIGTERM, _stopped_before_start)
signal.signal(signal.SIGINT, _stopped_before_start)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from collections.abc import Callable  # noqa: E402

from bff.effective_config import effective_config  # noqa: E402
from bff.observability.logging import configure_logging, log  # noqa: E402
from bff.server import run  # noqa: E402
from bff.settings import Settings, SettingsError, read_variable, unknown_names  # noqa: E402

# Each flag stands for a variable: read as that variable, winning over the environment.
_FLAGS = {
    "host": "BFF_HOST",
    "port": "BFF_PORT",
    "admin_port": "BFF_ADMIN_PORT",
    "workers": "BFF_WORKERS",
}


def _flag(variable: str) -> Callable[[str], str]:
    """The variable's own declaration checks the flag; its message shown as argparse's error
    (`argument --port: expected a port number (0 <= x <= 65535), got '99999'`)."""

    def checked(raw: str) -> str:
        try:
            read_variable(variable, raw)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc).partition(": ")[2]) from None
        return raw

    return checked


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bff",
        description="Product-details BFF. Settings come from BFF_* and OTEL_* environment "
        "variables (docs/configuration.md); these flags override them.",
    )
    parser.add_argument(
        "--host",
        type=_flag("BFF_HOST"),
        help="address to listen on (BFF_HOST, default 127.0.0.1)",
    )
    parser.add_argument(
        "--port", type=_flag("BFF_PORT"), help="port (BFF_PORT, default 8080; 0 = any)"
    )
    parser.add_argument(
        "--admin-port",
        type=_flag("BFF_ADMIN_PORT"),
        help="port of /healthz, /readyz, /metrics (BFF_ADMIN_PORT, default 9090; 0 = any)",
    )
    parser.add_argument(
        "--workers",
        type=_flag("BFF_WORKERS"),
        help="worker processes (BFF_WORKERS, default: CPU count)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective configuration (secrets redacted) as JSON and exit",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = vars(parser.parse_args(argv))
    flags = {_FLAGS[k]: v for k, v in args.items() if k in _FLAGS and v is not None}
    try:
        settings = Settings.from_env(os.environ, flags=flags, tty=sys.stdout.isatty())
    except SettingsError as exc:
        # One line per problem, every problem at once; never a traceback.
        parser.exit(2, "".join(f"python -m bff: invalid setting: {p}\n" for p in exc.problems))
    config = effective_config(settings)
    warnings = unknown_names(os.environ)
    if args["print_config"]:
        for warning in warnings:  # stdout stays pure JSON
            print(f"python -m bff: warning: {warning}", file=sys.stderr)
        print(json.dumps(config, indent=2, sort_keys=True))
        return 0
    configure_logging(settings.log_level, settings.log_format)
    for warning in warnings:
        log.warning("setting_ignored", detail=warning)
    log.info("config", **config)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
