"""Edge settings: safe defaults, and every bad value names its variable."""

from __future__ import annotations

import pytest
from settings_support import tuned

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
        settings = tuned(
            Settings.from_env({}),
            {
                "edge.max_request_line": 4096,
                "edge.max_headers": 50,
                "edge.keepalive_timeout_s": 5.0,
            },
        )
        options = runner_options(settings)
        assert options["max_line_size"] == 4096
        assert options["max_headers"] == 50
        assert options["keepalive_timeout"] == 5.0

    def test_in_flight_requests_get_what_is_left_of_the_grace(self) -> None:
        settings = Settings.from_env({"BFF_SHUTDOWN_GRACE_S": "10", "BFF_DRAIN_DELAY_S": "2"})
        assert in_flight_timeout(settings) == 7.0
        assert 2 + in_flight_timeout(settings) < 10

    def test_origins_and_proxies_are_lists(self) -> None:
        edge = Settings.from_env(
            {
                "BFF_CORS_ORIGINS": "https://shop.example/, https://m.shop.example",
                "BFF_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
            }
        ).edge
        assert edge.cors.origins == ("https://shop.example", "https://m.shop.example")
        assert [str(n) for n in edge.trusted_proxies] == ["10.0.0.0/8", "192.168.1.1/32"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BFF_MAX_IN_FLIGHT": "0"}, "BFF_MAX_IN_FLIGHT: expected a whole number (1 <= x"),
        ({"BFF_DRAIN_DELAY_S": "nan"}, "BFF_DRAIN_DELAY_S: expected a number of seconds (0 <="),
        ({"BFF_SHUTDOWN_GRACE_S": "0"}, "BFF_SHUTDOWN_GRACE_S: expected a number of seconds (0 <"),
        (
            {"BFF_DRAIN_DELAY_S": "10", "BFF_SHUTDOWN_GRACE_S": "5"},
            "BFF_DRAIN_DELAY_S (10 s) must be shorter than BFF_SHUTDOWN_GRACE_S (5 s)",
        ),
        ({"BFF_MAX_IN_FLIGHT": "many"}, "BFF_MAX_IN_FLIGHT: expected a whole number"),
        (
            {"BFF_TRUSTED_PROXIES": "10.0.0.1/8"},
            "BFF_TRUSTED_PROXIES: expected IP addresses or CIDR networks such as 10.0.0.0/8,"
            " separated by commas, got '10.0.0.1/8' (10.0.0.1/8 has host bits set)",
        ),
        (
            {"BFF_CORS_ORIGINS": "shop.example"},
            "BFF_CORS_ORIGINS: expected origins such as https://shop.example",
        ),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert str(caught.value).startswith(message)
