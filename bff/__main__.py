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
import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from collections.abc import Callable  # noqa: E402

from bff.effective_config import effective_config  # noqa: E402
from bff.observability.logging import configure_logging, log  # noqa: E402
from bff.server import run  # noqa: E402
from bff.settings import Settings, SettingsError  # noqa: E402
from bff.settings.parse import port, positive_int  # noqa: E402


def _flag(parse: Callable[[str], int]) -> Callable[[str], int]:
    """The settings' own parser for a flag, its message shown as argparse's error."""

    def checked(raw: str) -> int:
        try:
            return parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return checked


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bff",
        description="Product-details BFF. Settings come from BFF_* and OTEL_* environment "
        "variables (see README); these flags override them.",
    )
    parser.add_argument("--host", help="address to listen on (BFF_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=_flag(port), help="port (BFF_PORT, default 8080; 0 = any)")
    parser.add_argument(
        "--admin-port",
        type=_flag(port),
        help="port of /healthz, /readyz, /metrics (BFF_ADMIN_PORT, default 9090; 0 = any)",
    )
    parser.add_argument(
        "--workers",
        type=_flag(positive_int),
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
    args = parser.parse_args(argv)
    print_config = args.print_config
    del args.print_config
    try:
        settings = Settings.from_env(os.environ, tty=sys.stdout.isatty())
        overrides = {k: v for k, v in vars(args).items() if v is not None}
        settings = dataclasses.replace(settings, **overrides)
        if settings.admin_port == settings.port != 0:
            raise SettingsError("the admin port must differ from the public port")
    except SettingsError as exc:
        parser.exit(2, f"python -m bff: invalid setting: {exc}\n")
    config = effective_config(settings)
    if print_config:
        print(json.dumps(config, indent=2, sort_keys=True))
        return 0
    configure_logging(settings.log_level, settings.log_format)
    log.info("config", **config)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
