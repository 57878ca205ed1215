"""Settings come from the environment in one place; a bad value names its variable."""

from __future__ import annotations

import pytest
from yarl import URL

from bff.settings import Settings, SettingsError


class TestDefaults:
    def test_embedded_defaults_match_the_contract(self) -> None:
        s = Settings.from_env({})
        assert (s.host, s.port, s.deadline_ms) == ("127.0.0.1", 8080, 500.0)
        assert s.product.urls == (URL("http://127.0.0.1:8081"),)
        assert s.reviews.urls == (URL("http://127.0.0.1:8082"),)
        assert s.inventory.urls == (URL("http://127.0.0.1:8083"),)
        assert s.log_format == "json"
        assert s.workers >= 1

    def test_console_logs_by_default_on_a_terminal(self) -> None:
        assert Settings.from_env({}, tty=True).log_format == "console"
        assert Settings.from_env({"BFF_LOG_FORMAT": "json"}, tty=True).log_format == "json"


class TestOverrides:
    def test_values_from_the_environment(self) -> None:
        s = Settings.from_env(
            {
                "BFF_PORT": "9000",
                "BFF_DEADLINE_MS": "250",
                "BFF_WORKERS": "3",
                "BFF_PRODUCT_URL": "http://127.0.0.1:1, http://127.0.0.2:2",
                "BFF_REVIEWS_TIMEOUT_MS": "120",
                "BFF_INVENTORY_BREAKER_MIN_CALLS": "9",
                "BFF_LOG_LEVEL": "debug",
            }
        )
        assert (s.port, s.deadline_ms, s.workers) == (9000, 250.0, 3)
        assert s.product.urls == (URL("http://127.0.0.1:1"), URL("http://127.0.0.2:2"))
        assert s.reviews.attempt_timeout_ms == 120.0
        assert s.inventory.breaker.min_calls == 9
        assert s.log_level == "DEBUG"

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("BFF_PORT", "70000"),
            ("BFF_PORT", "http"),
            ("BFF_DEADLINE_MS", "0"),
            ("BFF_DEADLINE_MS", "inf"),
            ("BFF_DEADLINE_MS", "nan"),
            ("BFF_WORKERS", "0"),
            ("BFF_LOG_FORMAT", "xml"),
            ("BFF_LOG_LEVEL", "loud"),
            ("BFF_PRODUCT_URL", "ftp://x"),
            ("BFF_REVIEWS_URL", "127.0.0.1:8082"),
            ("BFF_REVIEWS_RETRY_BUDGET_RATIO", "1.5"),
            ("BFF_INVENTORY_MAX_IN_FLIGHT", "-1"),
        ],
    )
    def test_invalid_value_names_the_variable(self, name: str, value: str) -> None:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})
