"""Every rule that spans several settings, in one place.

Each value is checked alone by its kind when it is read; these rules look at the whole tree
and run whenever a `Settings` is made (read from the environment, or replaced by a test), so
a `Settings` that exists keeps all of them. Every broken rule is reported at once, in the
operator's words; `says` is the line docs/configuration.md lists under the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bff.settings.credentials import PublicKey
from bff.settings.environment import SettingsError
from bff.settings.kinds import figure

if TYPE_CHECKING:
    from bff.settings import Settings

__all__ = ["RULES", "Rule", "check"]


@dataclass(frozen=True, slots=True)
class Rule:
    says: str  # what the rule refuses, as the docs list it
    broken: Callable[[Settings], str | None]  # the refusal for these settings, or None


def _ports(s: Settings) -> str | None:
    if s.admin_port == s.port != 0:  # 0 twice is two free ports
        return f"BFF_ADMIN_PORT must differ from BFF_PORT (both {s.port})"
    return None


def _drain(s: Settings) -> str | None:
    # Equal would leave requests in flight when the listener closes no time to finish.
    if s.edge.drain_delay_s >= s.shutdown_grace_s:
        return (
            f"BFF_DRAIN_DELAY_S ({figure(s.edge.drain_delay_s)} s) must be shorter than"
            f" BFF_SHUTDOWN_GRACE_S ({figure(s.shutdown_grace_s)} s): requests in flight"
            " when the listener closes finish within what is left"
        )
    return None


def _burst(s: Settings) -> str | None:
    limit = s.edge.rate_limit
    if limit.enabled and limit.burst < limit.rate:
        return (
            f"BFF_RATE_LIMIT_BURST ({limit.burst}) must be at least BFF_RATE_LIMIT_RATE"
            f" ({figure(limit.rate)})"
        )
    return None


def _one_key(s: Settings) -> str | None:
    auth = s.edge.auth
    if sum(map(bool, (auth.secret, auth.public_key, auth.jwks_url))) > 1:
        return "set only one of BFF_AUTH_JWT_SECRET, BFF_AUTH_JWT_PUBLIC_KEY, BFF_AUTH_JWT_JWKS_URL"
    return None


def _algorithm(s: Settings) -> str | None:
    auth = s.edge.auth
    chosen = f"BFF_AUTH_JWT_ALGORITHM={auth.algorithm}"
    if _one_key(s) is not None or auth.algorithm is None:
        return None
    if auth.secret and auth.algorithm != "HS256":
        return f"{chosen}: a secret (BFF_AUTH_JWT_SECRET) means HS256"
    if auth.public_key and auth.algorithm != (own := PublicKey.algorithm(auth.public_key)):
        return f"{chosen} does not fit BFF_AUTH_JWT_PUBLIC_KEY, a key for {own}"
    if auth.jwks_url and auth.algorithm == "HS256":
        return f"{chosen}: a key set (BFF_AUTH_JWT_JWKS_URL) means RS256 or ES256"
    if not (auth.secret or auth.public_key or auth.jwks_url):
        return f"{chosen} is set but no key is (BFF_AUTH_JWT_SECRET, _PUBLIC_KEY or _JWKS_URL)"
    return None


def _cors(s: Settings) -> str | None:
    cors = s.edge.cors
    if cors.allow_credentials and "*" in cors.origins:
        # Credentials with "*" would hand every site the user's session.
        return "BFF_CORS_ORIGINS='*' cannot be combined with credentials"
    return None


RULES = (
    Rule("`BFF_ADMIN_PORT` equal to `BFF_PORT`", _ports),
    Rule("`BFF_DRAIN_DELAY_S` equal to or longer than `BFF_SHUTDOWN_GRACE_S`", _drain),
    Rule("`BFF_RATE_LIMIT_BURST` below `BFF_RATE_LIMIT_RATE`", _burst),
    Rule("more than one JWT key source (secret, public key, JWKS URL)", _one_key),
    Rule("a `BFF_AUTH_JWT_ALGORITHM` that does not fit the key, or set without one", _algorithm),
    Rule("`BFF_CORS_ORIGINS=*` with credentials", _cors),
)


def check(settings: Settings) -> None:
    """Raise `SettingsError` with every rule `settings` breaks."""
    problems = [problem for rule in RULES if (problem := rule.broken(settings)) is not None]
    if problems:
        raise SettingsError(*problems)
