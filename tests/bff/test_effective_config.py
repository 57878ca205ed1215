"""The configuration shown to operators (`--print-config`, the start-up log line): every
variable with its value and where it came from, the rest of the tree, and no secret."""

from __future__ import annotations

import json

import pytest
from edge_support import SECRET, ec_key, public_pem

from bff.effective_config import effective_config
from bff.settings import Settings, variables
from bff.settings.redaction import redact_urls

PASSWORD = "pa55word"


class TestWhatIsShown:
    def test_every_variable_in_its_own_unit_and_where_it_came_from(self) -> None:
        settings = Settings.from_env(
            {"BFF_DEADLINE_MS": "450", "BFF_CACHE": "off"}, flags={"BFF_PORT": "8181"}
        )
        shown = effective_config(settings)["variables"]
        assert list(shown) == list(variables())
        assert shown["BFF_DEADLINE_MS"] == {"value": 450.0, "from": "environment"}
        assert shown["BFF_CACHE"] == {"value": "off", "from": "environment"}
        assert shown["BFF_PORT"] == {"value": 8181, "from": "command line"}
        assert shown["BFF_REVIEWS_TIMEOUT_MS"] == {"value": 300.0, "from": "default"}
        assert shown["BFF_REVIEWS_URL"] == {"value": ["http://127.0.0.1:8082"], "from": "default"}

    def test_a_computed_default_is_shown_as_computed(self) -> None:
        shown = effective_config(Settings.from_env({"BFF_RATE_LIMIT_RATE": "2.5"}))["variables"]
        assert shown["BFF_RATE_LIMIT_BURST"] == {"value": 5, "from": "default"}

    def test_the_rest_of_the_tree_once_in_seconds(self) -> None:
        fixed = effective_config(Settings.from_env({}))["fixed"]
        assert fixed["propagation_margin_s"] == 0.005
        assert fixed["downstreams"]["reviews"]["retry"]["backoff_base_s"] == 0.01
        assert fixed["edge"]["rate_limit"]["storage"] == "memory://"
        # What a variable sets is under `variables` only.
        assert "deadline_s" not in fixed
        assert "urls" not in fixed["downstreams"]["reviews"]
        assert "sources" not in fixed

    def test_it_is_json(self) -> None:
        config = effective_config(Settings.from_env({"BFF_TRUSTED_PROXIES": "10.0.0.0/8"}))
        assert json.loads(json.dumps(config)) == config


class TestSecrets:
    """Redacted wherever they would appear: the variables and the derived values alike."""

    def test_a_redis_password_is_in_no_value(self) -> None:
        url = f"redis://bff:{PASSWORD}@127.0.0.1:6379/0"
        text = json.dumps(effective_config(Settings.from_env({"BFF_REDIS_URL": url})))
        assert PASSWORD not in text
        assert text.count("redis://bff:<redacted>@127.0.0.1:6379/0") == 2  # and the rate limit's

    def test_a_jwks_urls_query_credentials(self) -> None:
        url = f"https://idp.example/jwks?access_token={PASSWORD}"
        shown = effective_config(Settings.from_env({"BFF_AUTH_JWT_JWKS_URL": url}))["variables"]
        assert shown["BFF_AUTH_JWT_JWKS_URL"]["value"] == (
            "https://idp.example/jwks?access_token=<redacted>"
        )

    def test_the_hs256_secret_and_a_public_key(self) -> None:
        hs = effective_config(Settings.from_env({"BFF_AUTH_JWT_SECRET": SECRET}))
        assert hs["variables"]["BFF_AUTH_JWT_SECRET"]["value"] == "<redacted>"
        assert SECRET not in json.dumps(hs)
        pem = public_pem(ec_key())
        shown = effective_config(Settings.from_env({"BFF_AUTH_JWT_PUBLIC_KEY": pem}))
        assert shown["variables"]["BFF_AUTH_JWT_PUBLIC_KEY"]["value"].startswith(
            "<PEM public key sha256:"
        )
        assert "BEGIN PUBLIC KEY" not in json.dumps(shown)

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("redis://:pw@h:1/0", "redis://:<redacted>@h:1/0"),
            ("redis://user:pw@h:1/0", "redis://user:<redacted>@h:1/0"),
            ("https://t0ken@h/x", "https://<redacted>@h/x"),  # a token as the user
            ("https://h/j?access_token=t&v=2", "https://h/j?access_token=<redacted>&v=<redacted>"),
            ("https://h/j?t0ken", "https://h/j?<redacted>"),
            ("https://h/j?sig=a#frag", "https://h/j?sig=<redacted>#frag"),
            ("http://a:1,http://u:pw@b:2", "http://a:1,http://u:<redacted>@b:2"),
            ("redis://:pw@h:notaport/0", "redis://:<redacted>@h:notaport/0"),  # not a URL
            ("http://h:1/path", "http://h:1/path"),
        ],
    )
    def test_redacted_in_any_url(self, url: str, shown: str) -> None:
        assert redact_urls(url) == shown
