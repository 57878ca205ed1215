"""The effective configuration as plain data, secrets redacted: logged once at start and
printed by `python -m bff --print-config`.

    {"variables": {"BFF_DEADLINE_MS": {"value": 450.0, "from": "environment"}, ...},
     "fixed": {"propagation_margin_s": 0.005, "downstreams": {"<part>": {...}}, ...}}

`variables` lists every variable an operator may set, with its value in the variable's own
unit and where it came from: `environment`, `command line` or `default`. `fixed` is the rest
of the settings tree (in seconds and bytes): the fixed values, and what is derived from the
variables. Redacted: secrets (the HS256 secret), any password or query value of a URL (a
Redis or JWKS URL with credentials in it); a PEM public key is shown by its fingerprint.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bff.settings import Settings
from bff.settings.declaration import Entry, entries, value_at
from bff.settings.redaction import REDACTED, redact_urls

__all__ = ["DEFAULT", "effective_config"]

DEFAULT = "default"


@dataclasses.dataclass(frozen=True, slots=True)
class _Named:
    """A part as the settings know it once read: its name is all a path needs."""

    name: str
    default_url: str | None = None


def effective_config(settings: Settings) -> dict[str, Any]:
    declared = [e for e in _entries(settings) if e.variable is not None]
    variables = {
        e.name: {
            "value": e.kind.display(value_at(settings, e.path)),
            "from": settings.sources.get(e.name, DEFAULT),
        }
        for e in declared
    }
    names = {("downstreams", ds.name, "name") for ds in settings.downstreams}
    elsewhere = {e.path for e in declared} | names | {("sources",)}
    return {"variables": variables, "fixed": _plain(settings, (), elsewhere)}


def _entries(settings: Settings) -> list[Entry]:
    return list(entries(Settings, [_Named(ds.name) for ds in settings.downstreams]))


def _plain(value: Any, path: tuple[str, ...], skipped: set[tuple[str, ...]]) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (f.name for f in dataclasses.fields(value))
        return {
            name: _plain(getattr(value, name), (*path, name), skipped)
            for name in fields
            if (*path, name) not in skipped
        }
    if path == ("downstreams",):
        return {ds.name: _plain(ds, (*path, ds.name), skipped) for ds in value}
    if isinstance(value, tuple | list):
        return [_plain(v, path, skipped) for v in value]
    if isinstance(value, bytes):
        return REDACTED
    if isinstance(value, str):
        return redact_urls(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_urls(str(value))  # URLs, networks
