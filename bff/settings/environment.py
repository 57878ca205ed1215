"""The public `BFF_*` variables: one declaration each, validated by msgspec.

`Environment` is the whole list an operator can set (docs/configuration.md is its table, and a
test keeps the two equal). A field's name is its variable without `BFF_`, lower case; a field
left UNSET keeps the default written once in the settings dataclasses. Validation is
declarative, as in the mock services: the type and its `Meta` constraints say what a value may
be, and `read_environment` turns msgspec's message into a `SettingsError` naming the variable.

Every other figure is a dataclass default in the settings modules, with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "LIST_VARIABLES",
    "PUBLIC",
    "Environment",
    "SettingsError",
    "given",
    "read_environment",
    "read_variable",
]


class SettingsError(ValueError):
    """An environment variable or flag has a value we cannot use."""


# Bounds beyond which a figure is a typo (and inf or nan would never fire), not a choice.
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Millis = Annotated[float, msgspec.Meta(gt=0, le=60_000)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=3_600)]
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0, le=3_600)]
Count = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
# The shapes of text values, and how a refusal describes them.
_HTTP_URL = r"^https?://[^/\s?#]+(/\S*)?$"  # an authority (user:password@ and port allowed)
_REDIS_URL = r"^rediss?://[^/\s?#]+(/\S*)?$"
_ORIGIN = r"^(\*|https?://[^/\s?#]+/?)$"
# Checked again by `ipaddress` (host bits, prefix length); this keeps junk out of the message.
_NETWORK = r"^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$"
_SHAPES = {
    _HTTP_URL: "an http(s) URL such as http://product:8081",
    _REDIS_URL: "redis[s]://[user:password@]host:port[/db]",
    _ORIGIN: "'*' or an origin such as https://shop.example",
    _NETWORK: "an IP address or CIDR such as 10.0.0.0/8",
}
HttpUrl = Annotated[str, msgspec.Meta(pattern=_HTTP_URL)]
RedisUrl = Annotated[str, msgspec.Meta(pattern=_REDIS_URL)]
Origin = Annotated[str, msgspec.Meta(pattern=_ORIGIN)]
Network = Annotated[str, msgspec.Meta(pattern=_NETWORK)]
# At least one instance: "BFF_PRODUCT_URL=," must not leave a service with none.
Instances = Annotated[tuple[HttpUrl, ...], msgspec.Meta(min_length=1)]
# RFC 7518 §3.2: an HS256 key at least as long as the hash, 256 bits.
Secret = Annotated[str, msgspec.Meta(min_length=32)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Switch = Literal["on", "off"]


def _variable(field: str) -> str:
    return "BFF_" + field.upper()


class Environment(msgspec.Struct, frozen=True, kw_only=True, rename=_variable):
    """Every public variable; the comment is the one-line summary the table repeats."""

    # Where it listens.
    host: str | UnsetType = UNSET
    port: Port | UnsetType = UNSET
    admin_port: Port | UnsetType = UNSET  # /healthz /readyz /metrics, never the public port
    workers: Annotated[int, msgspec.Meta(ge=1, le=1024)] | UnsetType = UNSET
    log_level: LogLevel | UnsetType = UNSET
    log_format: Literal["json", "console"] | UnsetType = UNSET
    # The request.
    deadline_ms: Millis | UnsetType = UNSET
    # The downstream services (a comma-separated list of instances each).
    product_url: Instances | UnsetType = UNSET
    reviews_url: Instances | UnsetType = UNSET
    inventory_url: Instances | UnsetType = UNSET
    product_timeout_ms: Millis | UnsetType = UNSET
    reviews_timeout_ms: Millis | UnsetType = UNSET
    inventory_timeout_ms: Millis | UnsetType = UNSET
    dns_refresh_s: Seconds | UnsetType = UNSET  # 0: off, a name is one instance
    # Shared state: the rate limit and the cache's second tier.
    redis_url: RedisUrl | UnsetType = UNSET
    cache: Switch | UnsetType = UNSET
    cache_max_bytes: Count | UnsetType = UNSET
    compress_min_bytes: Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)] | UnsetType = UNSET
    # The front door.
    max_in_flight: Count | UnsetType = UNSET
    rate_limit_rate: Annotated[float, msgspec.Meta(ge=0, le=1e9)] | UnsetType = UNSET
    rate_limit_burst: Count | UnsetType = UNSET
    trusted_proxies: tuple[Network, ...] | UnsetType = UNSET
    cors_origins: tuple[Origin, ...] | UnsetType = UNSET
    auth_jwt_secret: Secret | UnsetType = UNSET
    auth_jwt_public_key: Text | UnsetType = UNSET
    auth_jwt_jwks_url: HttpUrl | UnsetType = UNSET
    auth_jwt_algorithm: Literal["HS256", "RS256", "ES256"] | UnsetType = UNSET
    auth_jwt_issuer: Text | UnsetType = UNSET
    auth_jwt_audience: Text | UnsetType = UNSET
    # Stopping.
    drain_delay_s: Seconds | UnsetType = UNSET
    shutdown_grace_s: PositiveSeconds | UnsetType = UNSET


_INFO = msgspec.inspect.type_info(Environment)
if not isinstance(_INFO, msgspec.inspect.StructType):  # pragma: no cover - msgspec's contract
    raise TypeError("Environment must inspect as a Struct")
_TYPES: dict[str, msgspec.inspect.Type] = {f.encode_name: f.type for f in _INFO.fields}
PUBLIC: tuple[str, ...] = tuple(_TYPES)


def _lists(t: msgspec.inspect.Type) -> bool:
    return any(isinstance(a, msgspec.inspect.VarTupleType) for a in _members(t))


def _choices(t: msgspec.inspect.Type) -> tuple[Any, ...]:
    return tuple(
        v for a in _members(t) if isinstance(a, msgspec.inspect.LiteralType) for v in a.values
    )


def _shape(t: msgspec.inspect.Type) -> str | None:
    for a in _members(t):
        item = a.item_type if isinstance(a, msgspec.inspect.VarTupleType) else a
        if isinstance(item, msgspec.inspect.StrType) and item.pattern in _SHAPES:
            return _SHAPES[item.pattern]
    return None


def _members(t: msgspec.inspect.Type) -> tuple[msgspec.inspect.Type, ...]:
    return t.types if isinstance(t, msgspec.inspect.UnionType) else (t,)


LIST_VARIABLES = frozenset(name for name, t in _TYPES.items() if _lists(t))
# Case does not matter where the value is one of a few words (debug, hs256, OFF).
_CHOICES = {name: _choices(t) for name, t in _TYPES.items() if _choices(t)}
# A secret never reaches a log or a terminal; a PEM is not secret but too long to echo.
_NOT_ECHOED = frozenset({"BFF_AUTH_JWT_SECRET", "BFF_AUTH_JWT_PUBLIC_KEY", "BFF_REDIS_URL"})
_SHAPE_OF = {name: shape for name, t in _TYPES.items() if (shape := _shape(t))}


def read_environment(environ: Mapping[str, str]) -> Environment:
    """The public variables of `environ`, validated. An empty value counts as not set."""
    raw = {name: environ[name].strip() for name in PUBLIC if environ.get(name, "").strip()}
    values: dict[str, Any] = {name: _prepared(name, value) for name, value in raw.items()}
    try:
        return msgspec.convert(values, Environment, strict=False)
    except msgspec.ValidationError as exc:
        raise _named(exc, raw) from None


def given(**values: Any) -> dict[str, Any]:
    """The values that were set: pass them on, and the dataclass's default stays for the rest
    (each default is written once, in the settings dataclasses)."""
    return {k: v for k, v in values.items() if v is not UNSET}


def read_variable(name: str, value: str) -> Any:
    """One public variable's value, checked by its declaration (for command-line flags)."""
    if not value.strip():
        raise SettingsError(f"{name}: must not be empty")
    return getattr(read_environment({name: value}), name.removeprefix("BFF_").lower())


def _prepared(name: str, value: str) -> Any:
    if name in LIST_VARIABLES:
        return [part.strip() for part in value.split(",") if part.strip()]
    choices = _CHOICES.get(name)
    if choices:
        folded = {str(c).lower(): c for c in choices}
        return folded.get(value.lower(), value)
    return value


def _named(exc: msgspec.ValidationError, raw: Mapping[str, str]) -> SettingsError:
    """`Expected int <= 65535 - at $.BFF_PORT` -> `BFF_PORT='70000': expected int <= 65535`."""
    message, _, where = str(exc).rpartition(" - at `$.")
    name = where.split("`")[0].split("[")[0]
    if name not in raw:  # not a message about one field: show it whole
        return SettingsError(str(exc))
    text = message[:1].lower() + message[1:]
    if name in _CHOICES:
        text = f"must be one of {', '.join(map(str, _CHOICES[name]))}"
    elif name in _SHAPE_OF and ("matching regex" in text or "`array`" in text):
        many = ", one or more separated by commas" if name in LIST_VARIABLES else ""
        text = f"must be {_SHAPE_OF[name]}{many}"
    shown = name if name in _NOT_ECHOED else f"{name}={raw[name]!r}"
    return SettingsError(f"{shown}: {text}")
