"""The effective configuration as plain data, secrets redacted: logged once at start and
printed by `python -m bff --print-config`.

Redacted: the HS256 secret, any password in a URL (BFF_REDIS_URL, a downstream or JWKS URL
with credentials in it). A PEM public key is not secret but is shown by its fingerprint, to
keep the line short.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from yarl import URL

from bff.settings import Settings

REDACTED = "<redacted>"


def effective_config(settings: Settings) -> dict[str, Any]:
    data: dict[str, Any] = _plain(settings)
    auth = data["edge"]["auth"]
    key = settings.edge.auth.key
    if settings.edge.auth.algorithm == "HS256":
        auth["key"] = REDACTED
    elif key:
        auth["key"] = f"<PEM public key sha256:{hashlib.sha256(key).hexdigest()[:16]}>"
    else:
        auth["key"] = None
    return data


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, URL) or (isinstance(value, str) and "://" in value):
        return _without_password(str(value))
    if isinstance(value, bytes):
        return REDACTED
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # networks, enums...


def _without_password(raw: str) -> str:
    try:
        url = URL(raw)
    except ValueError:
        return raw
    if url.password is None:
        return raw
    return str(url.with_password("redacted"))
