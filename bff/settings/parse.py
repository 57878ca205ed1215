"""Reading one environment variable: the reader and the parsers shared by every settings module.

A bad value raises `SettingsError` naming the variable, so start-up stops with a clear message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from yarl import URL

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable or flag has a value we cannot use."""


class Reader:
    __slots__ = ("_env",)

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, name: str) -> str:
        return self._env.get(name, "").strip()

    def __call__(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self.raw(name)
        if not raw:
            return default
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"{name}={raw!r}: {exc}") from None


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be an integer >= 1")
    return value


def non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number 0-65535")
    return value


def positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a finite number > 0")
    return value


def non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a finite number >= 0")
    return value


def ratio(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError("must be between 0 and 1")
    return value


def boolean(raw: str) -> bool:
    value = raw.lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def http_url(raw: str) -> str:
    url = URL(raw)
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError("must be an http(s) URL")
    return raw


def redis_url(raw: str) -> str:
    url = URL(raw)
    if url.scheme not in {"redis", "rediss"} or not url.host:
        raise ValueError("must be redis[s]://[user:password@]host:port[/db]")
    return raw
