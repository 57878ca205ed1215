"""Entry point of `python -m mock_services` (see `mock_services.cli`)."""

import signal
import sys
from types import FrameType


def _stopped_before_start(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


# Until the event loop takes the signals over: a stop while still importing exits 0.
signal.signal(signal.SIGTERM, _stopped_before_start)
signal.signal(signal.SIGINT, _stopped_before_start)

from .cli import main  # noqa: E402

sys.exit(main())
