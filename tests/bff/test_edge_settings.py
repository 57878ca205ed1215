"""Edge settings (issue 4): safe defaults, and every bad value names its variable."""

from __future__ import annotations

import pytest

from bff.edge.server_limits import in_flight_timeout, runner_options
from bff.settings import Settings, SettingsError


class TestDefaults:
    def test_safe_for_production_and_comfortable_for_make_run(self) -> None:
        edge = Settings.from_env({}).edge
        assert not edge.rate_limit.enabled  # on only when BFF_RATE_LIMIT_RATE is set
        assert edge.rate_limit.storage == "memory://"
        assert not edge.auth.enabled
        assert edge.cors.origins == ()
        assert edge.trusted_proxies == ()
        assert edge.max_in_flight == 1024
        assert edge.drain_delay_s < Settings.from_env({}).shutdown_grace_s

    def test_runner_gets_the_limits(self) -> None:
        settings = Settings.from_env(
            {
                "BFF_MAX_REQUEST_LINE": "4096",
                "BFF_MAX_HEADERS": "50",
                "BFF_KEEPALIVE_TIMEOUT_S": "5",
            }
        )
        options = runner_options(settings)
        assert options["max_line_size"] == 4096
        assert options["max_headers"] == 50
        assert options["keepalive_timeout"] == 5.0

    def test_in_flight_requests_get_what_is_left_of_the_grace(self) -> None:
        settings = Settings.from_env({"BFF_SHUTDOWN_GRACE_S": "10", "BFF_DRAIN_DELAY_S": "2"})
        assert in_flight_timeout(settings) == 7.0
        assert 2 + in_flight_timeout(settings) < 10


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"BFF_MAX_IN_FLIGHT": "0"}, "BFF_MAX_IN_FLIGHT"),
        ({"BFF_MAX_BODY_BYTES": "-1"}, "BFF_MAX_BODY_BYTES"),
        ({"BFF_KEEPALIVE_TIMEOUT_S": "0"}, "BFF_KEEPALIVE_TIMEOUT_S"),
        ({"BFF_DRAIN_DELAY_S": "nan"}, "BFF_DRAIN_DELAY_S"),
        ({"BFF_DRAIN_DELAY_S": "10", "BFF_SHUTDOWN_GRACE_S": "5"}, "BFF_DRAIN_DELAY_S"),
        ({"BFF_CORS_ALLOW_CREDENTIALS": "maybe"}, "BFF_CORS_ALLOW_CREDENTIALS"),
        ({"BFF_MAX_HEADERS": "many"}, "BFF_MAX_HEADERS"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)
