"""`python -m bff [--host H] [--port N] [--workers N]`: flags win over the environment."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable

from bff.server import run
from bff.settings import Settings, SettingsError
from bff.settings.parse import port, positive_int


def _flag(parse: Callable[[str], int]) -> Callable[[str], int]:
    """The settings' own parser for a flag, its message shown as argparse's error."""

    def checked(raw: str) -> int:
        try:
            return parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bff",
        description="Product-details BFF. Settings come from BFF_* and OTEL_* environment "
        "variables (see README); these flags override them.",
    )
    parser.add_argument("--host", help="address to listen on (BFF_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=_flag(port), help="port (BFF_PORT, default 8080; 0 = any)")
    parser.add_argument(
        "--workers",
        type=_flag(positive_int),
        help="worker processes (BFF_WORKERS, default: CPU count)",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(os.environ, tty=sys.stdout.isatty())
    except SettingsError as exc:
        parser.exit(2, f"python -m bff: invalid setting: {exc}\n")
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    return run(dataclasses.replace(settings, **overrides))


if __name__ == "__main__":
    sys.exit(main())
