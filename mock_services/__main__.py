"""Entry point of `python -m mock_services` (see `mock_services.cli`)."""

import sys

from .cli import main

sys.exit(main())
