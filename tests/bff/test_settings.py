"""Settings come from the environment in one place; a bad value names its variable."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from yarl import URL

from bff.settings import Settings, SettingsError, read_variable, unknown_names
from bff.settings.environment import PUBLIC

ROOT = Path(__file__).resolve().parents[2]


class TestDefaults:
    def test_embedded_defaults_match_the_contract(self) -> None:
        s = Settings.from_env({})
        assert (s.host, s.port, s.deadline_ms) == ("127.0.0.1", 8080, 500.0)
        assert s.product.urls == (URL("http://127.0.0.1:8081"),)
        assert s.reviews.urls == (URL("http://127.0.0.1:8082"),)
        assert s.inventory.urls == (URL("http://127.0.0.1:8083"),)
        assert s.log_format == "json"
        assert s.workers >= 1
        assert s.dns_refresh_s == 10.0

    def test_console_logs_by_default_on_a_terminal(self) -> None:
        assert Settings.from_env({}, tty=True).log_format == "console"
        assert Settings.from_env({"BFF_LOG_FORMAT": "json"}, tty=True).log_format == "json"

    def test_an_empty_value_means_the_default(self) -> None:
        assert Settings.from_env({"BFF_PORT": " ", "BFF_PRODUCT_URL": ""}) == Settings.from_env({})

    def test_a_fixed_value_is_still_a_field_a_test_can_replace(self) -> None:
        s = Settings.from_env({})
        tuned = dataclasses.replace(s, reviews=dataclasses.replace(s.reviews, max_in_flight=2))
        assert (tuned.reviews.max_in_flight, s.reviews.max_in_flight) == (2, 512)


class TestOverrides:
    def test_values_from_the_environment(self) -> None:
        s = Settings.from_env(
            {
                "BFF_PORT": "9000",
                "BFF_DEADLINE_MS": "250",
                "BFF_WORKERS": "3",
                "BFF_PRODUCT_URL": "http://127.0.0.1:1, http://127.0.0.2:2",
                "BFF_REVIEWS_TIMEOUT_MS": "120",
                "BFF_LOG_LEVEL": "debug",
                "BFF_DNS_REFRESH_S": "0",
                "BFF_CACHE": "OFF",
            }
        )
        assert (s.port, s.deadline_ms, s.workers) == (9000, 250.0, 3)
        assert s.product.urls == (URL("http://127.0.0.1:1"), URL("http://127.0.0.2:2"))
        assert s.reviews.attempt_timeout_ms == 120.0
        assert s.product.attempt_timeout_ms == 300.0
        assert s.log_level == "DEBUG"
        assert s.dns_refresh_s == 0.0
        assert not s.cache.enabled

    def test_one_redis_url_serves_the_rate_limit_and_the_cache(self) -> None:
        s = Settings.from_env({"BFF_REDIS_URL": "redis://cache:6379/2"})
        assert s.redis_url == s.edge.rate_limit.storage == "redis://cache:6379/2"

    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("BFF_PORT", "70000", "BFF_PORT='70000': expected `int` <= 65535"),
            ("BFF_PORT", "http", "BFF_PORT='http': expected `int`, got `str`"),
            ("BFF_DEADLINE_MS", "0", "BFF_DEADLINE_MS='0': expected `float` > 0.0"),
            ("BFF_DEADLINE_MS", "inf", "BFF_DEADLINE_MS='inf': expected `float` <= 60000.0"),
            ("BFF_DEADLINE_MS", "nan", "BFF_DEADLINE_MS='nan': expected `float` > 0.0"),
            ("BFF_WORKERS", "0", "BFF_WORKERS='0': expected `int` >= 1"),
            ("BFF_LOG_FORMAT", "xml", "BFF_LOG_FORMAT='xml': must be one of console, json"),
            ("BFF_LOG_LEVEL", "loud", "BFF_LOG_LEVEL='loud': must be one of CRITICAL, DEBUG"),
            ("BFF_PRODUCT_URL", "ftp://x", "BFF_PRODUCT_URL='ftp://x': must be an http(s) URL"),
            ("BFF_REVIEWS_URL", "127.0.0.1:8082", "BFF_REVIEWS_URL='127.0.0.1:8082': must be an"),
            ("BFF_INVENTORY_URL", ",", "BFF_INVENTORY_URL=',': must be an http(s) URL such as"),
            ("BFF_INVENTORY_TIMEOUT_MS", "-1", "BFF_INVENTORY_TIMEOUT_MS='-1': expected `float` >"),
            ("BFF_DNS_REFRESH_S", "-1", "BFF_DNS_REFRESH_S='-1': expected `float` >= 0"),
            ("BFF_CACHE", "maybe", "BFF_CACHE='maybe': must be one of off, on"),
            ("BFF_CACHE_MAX_BYTES", "64MiB", "BFF_CACHE_MAX_BYTES='64MiB': expected `int`"),
        ],
    )
    def test_invalid_value_names_the_variable(self, name: str, value: str, message: str) -> None:
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({name: value})
        assert str(caught.value).startswith(message)

    @pytest.mark.parametrize(
        ("name", "value"),
        [("BFF_AUTH_JWT_SECRET", "too short to be a key"), ("BFF_REDIS_URL", "http://u:pw@x")],
    )
    def test_a_refused_secret_is_not_echoed(self, name: str, value: str) -> None:
        with pytest.raises(SettingsError, match=f"^{name}: ") as caught:
            Settings.from_env({name: value})
        assert value not in str(caught.value)

    def test_admin_and_public_ports_differ(self) -> None:
        with pytest.raises(SettingsError, match="BFF_ADMIN_PORT must differ from BFF_PORT"):
            Settings.from_env({"BFF_PORT": "9000", "BFF_ADMIN_PORT": "9000"})

    def test_a_flag_is_checked_by_its_variable(self) -> None:
        assert read_variable("BFF_PORT", "8000") == 8000
        with pytest.raises(SettingsError, match="BFF_WORKERS='0'"):
            read_variable("BFF_WORKERS", "0")


class TestNamesThatAreNotSettings:
    """A typo is a warning naming the closest variable; a typo that could weaken security, or
    a variable replaced by another, stops start-up."""

    def test_a_typo_names_the_closest_variable(self) -> None:
        (warning,) = unknown_names({"BFF_DEADLINE_MSS": "300", "HOME": "/root"})
        assert warning == "BFF_DEADLINE_MSS is not a setting (did you mean BFF_DEADLINE_MS?)"
        assert Settings.from_env({"BFF_DEADLINE_MSS": "300"}).deadline_ms == 500.0

    def test_a_former_setting_says_it_is_fixed_now(self) -> None:
        (warning,) = unknown_names({"BFF_REVIEWS_BREAKER_MIN_CALLS": "3"})
        assert warning.startswith("BFF_REVIEWS_BREAKER_MIN_CALLS is no longer read")

    def test_settings_and_the_tools_variables_raise_no_warning(self) -> None:
        env = dict.fromkeys(PUBLIC, "x") | {"BFF_CLUSTER_PORT": "1", "BFF_TEST_REQUIRE": "1"}
        assert unknown_names(env) == []

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            ({"BFF_AUTH_JWT_AUDIENSE": "shop"}, "did you mean BFF_AUTH_JWT_AUDIENCE?"),
            ({"BFF_RATE_LIMIT_STORAGE": "redis://x:1"}, "replaced by BFF_REDIS_URL"),
        ],
    )
    def test_refused_when_ignoring_it_would_weaken_the_service(
        self, env: dict[str, str], message: str
    ) -> None:
        with pytest.raises(SettingsError, match=re.escape(message)):
            Settings.from_env(env)


class TestTheOnePage:
    """docs/configuration.md lists exactly the variables the code reads, about 25 of them."""

    def test_the_table_is_the_declaration(self) -> None:
        page = (ROOT / "docs" / "configuration.md").read_text()
        table = page.split("## Variables", 1)[1].split("\n## ", 1)[0]
        documented = set(re.findall(r"^\| `(BFF_[A-Z0-9_]+)`", table, re.MULTILINE))
        assert documented == set(PUBLIC)
        assert len(PUBLIC) <= 31  # 30, and BFF_COMPRESS_MIN_BYTES which the contract names

    def test_every_variable_the_code_names_is_declared(self) -> None:
        named = set()
        for path in (ROOT / "bff").rglob("*.py"):
            if path.parent.name != "settings":
                named |= set(re.findall(r"\"(BFF_[A-Z0-9_]+)\"", path.read_text()))
        assert named <= set(PUBLIC)
