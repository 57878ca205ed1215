"""`python -m mock_services`, minus its one log line per request.

The mocks share the two cores with the target and wrk; formatting ~10,000 log lines a second
would be load that neither target causes. Configuring the root logger at WARNING first makes
the CLI's own `basicConfig(INFO)` a no-op; everything else is the real CLI, unchanged.

    python -m bench.quiet_mocks [same flags as python -m mock_services]
"""

from __future__ import annotations

import logging
import sys

from mock_services.cli import main

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(main(sys.argv[1:]))
