"""Cache settings from the environment: defaults, each variable, and refusals naming it."""

from __future__ import annotations

import dataclasses

import pytest

from bff.settings import CacheSettings, Settings, SettingsError


def read(**env: str) -> CacheSettings:
    return Settings.from_env(env).cache


class TestCacheSettings:
    """On by default, 64 MiB per worker, a day at most, compression from 1 KiB; the Redis tier
    uses the one `Settings.redis_url`."""

    def test_defaults(self) -> None:
        """Each figure as an empty environment reads it, written out here (not compared with
        the dataclass's own defaults, which would pass whatever they became)."""
        assert dataclasses.asdict(read()) == {
            "enabled": True,
            "max_bytes": 64 * 1024 * 1024,
            "compress_min_bytes": 1024,
            "max_ttl_s": 86_400.0,
            "redis_timeout_s": 0.005,  # a LAN round trip is 0.1-0.3 ms; past 5 ms, a miss
        }

    def test_every_variable(self) -> None:
        s = read(BFF_CACHE="off", BFF_CACHE_MAX_BYTES="1000", BFF_COMPRESS_MIN_BYTES="0")
        assert s == CacheSettings(enabled=False, max_bytes=1000, compress_min_bytes=0)
        assert read(BFF_CACHE="on").enabled

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("BFF_CACHE", "maybe"),
            ("BFF_CACHE_MAX_BYTES", "0"),
            ("BFF_CACHE_MAX_BYTES", "64MiB"),
            ("BFF_COMPRESS_MIN_BYTES", "-1"),
            ("BFF_COMPRESS_MIN_BYTES", "1KiB"),
        ],
    )
    def test_refused(self, name: str, value: str) -> None:
        with pytest.raises(SettingsError, match=name):
            read(**{name: value})


class TestInTheSettingsTree:
    """`Settings.cache` is read with the rest; the Redis URL is the one shared by everything."""

    def test_read_with_the_settings(self) -> None:
        s = Settings.from_env({"BFF_CACHE": "off", "BFF_REDIS_URL": "redis://127.0.0.1:6379/2"})
        assert not s.cache.enabled
        assert s.redis_url == "redis://127.0.0.1:6379/2"
