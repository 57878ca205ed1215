"""Settings come from the environment in one place; every bad value is named at once, in the
operator's words."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from settings_support import tuned
from yarl import URL

from bff.parts import PARTS
from bff.settings import Settings, SettingsError, read_variable, unknown_names, variables
from bff.settings.docs import refusals_list, variables_table

ROOT = Path(__file__).resolve().parents[3]


class TestDefaults:
    def test_embedded_defaults_match_the_contract(self) -> None:
        s = Settings.from_env({})
        assert (s.host, s.port, s.admin_port, s.deadline_s) == ("127.0.0.1", 8080, 9090, 0.5)
        assert s.downstream("product").urls == (URL("http://127.0.0.1:8081"),)
        assert s.downstream("reviews").urls == (URL("http://127.0.0.1:8082"),)
        assert s.downstream("inventory").urls == (URL("http://127.0.0.1:8083"),)
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
        tuned_settings = tuned(s, {"reviews.max_in_flight": 2})
        assert tuned_settings.downstream("reviews").max_in_flight == 2
        assert s.downstream("reviews").max_in_flight == 512


class TestOverrides:
    def test_values_from_the_environment_times_kept_in_seconds(self) -> None:
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
        assert (s.port, s.deadline_s, s.workers) == (9000, 0.25, 3)
        assert s.downstream("product").urls == (
            URL("http://127.0.0.1:1"),
            URL("http://127.0.0.2:2"),
        )
        assert s.downstream("reviews").attempt_timeout_s == 0.12
        assert s.downstream("product").attempt_timeout_s == 0.3
        assert s.log_level == "DEBUG"
        assert s.dns_refresh_s == 0.0
        assert not s.cache.enabled

    def test_one_redis_url_serves_the_rate_limit_and_the_cache(self) -> None:
        s = Settings.from_env({"BFF_REDIS_URL": "redis://cache:6379/2"})
        assert s.redis_url == s.edge.rate_limit.storage == "redis://cache:6379/2"

    def test_a_flag_wins_over_the_environment_and_says_so(self) -> None:
        s = Settings.from_env(
            {"BFF_PORT": "9000", "BFF_DEADLINE_MS": "300"}, flags={"BFF_PORT": "9100"}
        )
        assert (s.port, s.deadline_s) == (9100, 0.3)
        assert dict(s.sources) == {"BFF_PORT": "command line", "BFF_DEADLINE_MS": "environment"}

    def test_a_flag_is_checked_by_its_variable(self) -> None:
        assert read_variable("BFF_PORT", "8000") == 8000
        assert read_variable("BFF_DEADLINE_MS", "250") == 0.25
        with pytest.raises(SettingsError, match=r"^BFF_WORKERS: expected .*, got '0'$"):
            read_variable("BFF_WORKERS", "0")


class TestRefusals:
    """A refusal names the variable, says what it accepts in the docs table's words, and
    what it got."""

    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("BFF_PORT", "70000", "expected a port number (0 <= x <= 65535), got '70000'"),
            ("BFF_PORT", "http", "expected a port number (0 <= x <= 65535), got 'http'"),
            ("BFF_PORT", "8080.0", "expected a port number (0 <= x <= 65535), got '8080.0'"),
            (
                "BFF_DEADLINE_MS",
                "abc",
                "expected a number of milliseconds (0 < x <= 60000), got 'abc'",
            ),
            ("BFF_DEADLINE_MS", "0", "expected a number of milliseconds (0 < x <= 60000), got '0'"),
            ("BFF_DEADLINE_MS", "inf", "got 'inf'"),
            ("BFF_DEADLINE_MS", "nan", "got 'nan'"),
            ("BFF_DEADLINE_MS", "60001", "got '60001'"),
            # Fullwidth digits, which float() would take.
            ("BFF_DEADLINE_MS", "\uff11\uff10\uff10", "got '\uff11\uff10\uff10'"),
            ("BFF_WORKERS", "0", "expected a whole number (1 <= x <= 1024), got '0'"),
            ("BFF_LOG_FORMAT", "xml", "expected one of json, console, got 'xml'"),
            ("BFF_LOG_LEVEL", "loud", "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
            ("BFF_PRODUCT_URL", "ftp://x", "expected an http(s) URL such as http://product:8081"),
            ("BFF_REVIEWS_URL", "127.0.0.1:8082", "got '127.0.0.1:8082'"),
            ("BFF_INVENTORY_URL", ",", "got ','"),
            (
                "BFF_PRODUCT_URL",
                "http://127.0.0.1:notaport",
                "got 'http://127.0.0.1:notaport' (its port is not a number from 0 to 65535)",
            ),
            ("BFF_PRODUCT_URL", "http://127.0.0.1:99999", "(its port is not a number from 0"),
            ("BFF_INVENTORY_TIMEOUT_MS", "-1", "expected a number of milliseconds (0 < x"),
            ("BFF_DNS_REFRESH_S", "-1", "expected a number of seconds (0 <= x <= 3600), got '-1'"),
            ("BFF_SHUTDOWN_GRACE_S", "0", "expected a number of seconds (0 < x <= 3600), got '0'"),
            ("BFF_CACHE", "maybe", "expected on or off, got 'maybe'"),
            ("BFF_CACHE_MAX_BYTES", "64MiB", "expected a number of bytes (1 <= x <= 1000000000)"),
            (
                "BFF_REDIS_URL",
                "redis://h:1/x",
                "(the path can only be a database number, as in /0)",
            ),
        ],
    )
    def test_in_the_operators_words(self, name: str, value: str, message: str) -> None:
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({name: value})
        (problem,) = caught.value.problems
        assert problem.startswith(f"{name}: ")
        assert message in problem

    def test_every_bad_variable_at_once(self) -> None:
        env = {
            "BFF_DEADLINE_MS": "abc",
            "BFF_PORT": "http",
            "BFF_CACHE": "maybe",
            "BFF_AUTH_JWT_SECRT": "x",  # a misspelt auth variable is one of them too
        }
        with pytest.raises(SettingsError) as caught:
            Settings.from_env(env)
        named = [p.split(" ", 1)[0].rstrip(":") for p in caught.value.problems]
        assert sorted(named) == sorted(env)

    @pytest.mark.parametrize(
        ("name", "value", "hidden"),
        [
            ("BFF_AUTH_JWT_SECRET", "too short to be a key", "too short"),
            ("BFF_REDIS_URL", "redis://:pa55word@127.0.0.1:notaport/0", "pa55word"),
            ("BFF_REDIS_URL", "http://u:pa55word@x", "pa55word"),
            ("BFF_PRODUCT_URL", "http://user:pa55word@product:port", "pa55word"),
            ("BFF_AUTH_JWT_JWKS_URL", "ftp://idp/jwks?access_token=t0ken", "t0ken"),
            ("BFF_AUTH_JWT_PUBLIC_KEY", "-----BEGIN PRIVATE KEY-----\\nMIIEv", "MIIEv"),
        ],
    )
    def test_a_secret_is_never_echoed(self, name: str, value: str, hidden: str) -> None:
        with pytest.raises(SettingsError, match=f"^{name}: ") as caught:
            Settings.from_env({name: value})
        assert hidden not in str(caught.value)


class TestRulesAcrossSettings:
    """Checked once every value is well formed, for every `Settings` made (a test's
    `tuned` settings too), all at once."""

    def test_admin_and_public_ports_differ(self) -> None:
        with pytest.raises(SettingsError, match="BFF_ADMIN_PORT must differ from BFF_PORT"):
            Settings.from_env({"BFF_PORT": "9000", "BFF_ADMIN_PORT": "9000"})
        assert Settings.from_env({"BFF_PORT": "0", "BFF_ADMIN_PORT": "0"}).port == 0

    def test_a_drain_as_long_as_the_grace_is_refused(self) -> None:
        """Equal would leave requests in flight when the listener closes no time at all,
        on every rollout; a millisecond less is accepted."""
        with pytest.raises(SettingsError, match="must be shorter than BFF_SHUTDOWN_GRACE_S"):
            Settings.from_env({"BFF_DRAIN_DELAY_S": "10", "BFF_SHUTDOWN_GRACE_S": "10"})
        ok = Settings.from_env({"BFF_DRAIN_DELAY_S": "9.999", "BFF_SHUTDOWN_GRACE_S": "10"})
        assert ok.edge.drain_delay_s == 9.999
        with pytest.raises(SettingsError, match="BFF_DRAIN_DELAY_S"):
            Settings.from_env({"BFF_SHUTDOWN_GRACE_S": "2"})  # the default drain, 2 s

    def test_a_settings_tree_replaced_in_code_keeps_the_rules(self) -> None:
        s = Settings.from_env({"BFF_CORS_ORIGINS": "*"})
        with pytest.raises(SettingsError, match="cannot be combined with credentials"):
            tuned(s, {"edge.cors.allow_credentials": True})
        with pytest.raises(SettingsError, match="BFF_ADMIN_PORT must differ"):
            dataclasses.replace(s, admin_port=s.port)

    def test_every_broken_rule_at_once(self) -> None:
        env = {
            "BFF_ADMIN_PORT": "8080",
            "BFF_DRAIN_DELAY_S": "20",
            "BFF_RATE_LIMIT_RATE": "10",
            "BFF_RATE_LIMIT_BURST": "5",
        }
        with pytest.raises(SettingsError) as caught:
            Settings.from_env(env)
        assert [p.split(" ", 1)[0] for p in caught.value.problems] == [
            "BFF_ADMIN_PORT",
            "BFF_DRAIN_DELAY_S",
            "BFF_RATE_LIMIT_BURST",
        ]


class TestNamesThatAreNotSettings:
    """A typo is a warning naming the closest variable; a typo that could weaken security, or
    a variable replaced by another, stops start-up."""

    def test_a_typo_names_the_closest_variable(self) -> None:
        (warning,) = unknown_names({"BFF_DEADLINE_MSS": "300", "HOME": "/root"})
        assert warning == "BFF_DEADLINE_MSS is not a setting (did you mean BFF_DEADLINE_MS?)"
        assert Settings.from_env({"BFF_DEADLINE_MSS": "300"}).deadline_s == 0.5

    def test_a_former_setting_says_it_is_fixed_now(self) -> None:
        (warning,) = unknown_names({"BFF_REVIEWS_BREAKER_MIN_CALLS": "3"})
        assert warning.startswith("BFF_REVIEWS_BREAKER_MIN_CALLS is no longer read")

    def test_settings_and_the_tools_variables_raise_no_warning(self) -> None:
        env = dict.fromkeys(variables(), "x") | {"BFF_CLUSTER_PORT": "1", "BFF_TEST_REQUIRE": "1"}
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
    """docs/configuration.md holds the table made from the declarations: every variable,
    its default as an empty environment reads it (so a changed default fails here until
    the page says it too), what it accepts and what it means."""

    def test_the_table_is_the_declarations(self) -> None:
        page = (ROOT / "docs" / "configuration.md").read_text()
        assert variables_table() in page, "run `python -m bff.settings.docs` and paste"
        assert refusals_list() in page, "run `python -m bff.settings.docs` and paste"

    def test_every_variable_the_code_names_is_declared(self) -> None:
        named = set()
        for path in (ROOT / "bff").rglob("*.py"):
            if path.parent.name != "settings":
                named |= set(re.findall(r"\"(BFF_[A-Z0-9_]+)\"", path.read_text()))
        assert named <= set(variables())

    def test_the_readme_counts_them(self) -> None:
        readme = (ROOT / "README.md").read_text()
        (count,) = re.findall(r"(\d+) variables on one page", readme)
        (section,) = [s for s in readme.split("\n## ") if "The other " in s]
        in_readme = set(re.findall(r"`(BFF_[A-Z0-9_]+)`", section))
        (rest,) = re.findall(r"The other (\d+) ", section)
        assert int(count) == len(variables())
        assert int(rest) == len(variables()) - len(in_readme)


@dataclasses.dataclass(frozen=True)
class _Part:
    """What the settings read of a part (bff.parts.Part): its name and default URL."""

    name: str
    default_url: str | None = None


class TestTheServicesAreTheParts:
    """Each part of the answer brings its service's variables: a fourth one needs no edit
    in bff/settings/, and no service is named anywhere else in bff/."""

    PARTS = (*PARTS, _Part("wishlist"))

    def test_a_fourth_part_brings_its_variables(self) -> None:
        names = variables(self.PARTS)
        assert {"BFF_WISHLIST_URL", "BFF_WISHLIST_TIMEOUT_MS"} <= set(names)
        assert unknown_names({"BFF_WISHLIST_URL": "http://w:1"}, self.PARTS) == []
        s = Settings.from_env(
            {"BFF_WISHLIST_URL": "http://w:1", "BFF_WISHLIST_TIMEOUT_MS": "80"}, parts=self.PARTS
        )
        assert s.downstream("wishlist").urls == (URL("http://w:1"),)
        assert s.downstream("wishlist").attempt_timeout_s == 0.08
        assert "| `BFF_WISHLIST_URL` | none: must be set |" in variables_table(self.PARTS)

    def test_its_url_must_be_set_when_the_part_gives_no_default(self) -> None:
        with pytest.raises(SettingsError, match=r"^BFF_WISHLIST_URL: must be set$"):
            Settings.from_env({}, parts=self.PARTS)
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({"BFF_WISHLIST_URL": "wishlist:80"}, parts=self.PARTS)
        (problem,) = caught.value.problems  # refused, and not "must be set" besides
        assert problem.startswith("BFF_WISHLIST_URL: expected an http(s) URL")

    def test_each_name_is_written_in_the_parts_alone(self) -> None:
        for part in PARTS:
            files = {
                path.relative_to(ROOT / "bff").as_posix()
                for path in (ROOT / "bff").rglob("*")
                if path.suffix in {".py", ".json"} and f'"{part.name}"' in path.read_text()
            }
            # The API's description names the answer's keys, which are the parts' names.
            assert files <= {"parts.py", "openapi.json"}, part.name
