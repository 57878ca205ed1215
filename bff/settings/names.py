"""`BFF_*` variables that are not settings: a warning naming the closest one, or a refusal.

A typo must not pass unnoticed, but a warning is enough for most: the default it leaves in
force is a safe one. Two kinds stop start-up instead, because ignoring them would quietly
weaken what the operator asked for: any unknown `BFF_AUTH_*` (a misspelt key would leave the
API open) and a variable replaced by another one that must be set instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

__all__ = ["dangerous_names", "unknown_names"]

# Read by the tools around the server, not by it: `make cluster` and the test suite.
TOOLS = frozenset({"BFF_CLUSTER_PORT", "BFF_TEST_REQUIRE"})

REPLACED = {
    "BFF_RATE_LIMIT_STORAGE": "BFF_REDIS_URL",
    "BFF_AUTH_JWT_PUBLIC_KEY_FILE": "BFF_AUTH_JWT_PUBLIC_KEY (the PEM itself)",
}

_SERVICE_KNOBS = [
    "MAX_IN_FLIGHT",
    "MAX_BODY_BYTES",
    "RETRY_ATTEMPTS",
    "RETRY_BACKOFF_BASE_MS",
    "RETRY_BACKOFF_MAX_MS",
    "RETRY_BUDGET_RATIO",
    "RETRY_BUDGET_MIN",
    "RETRY_BUDGET_WINDOW_S",
    "RETRY_MIN_ATTEMPT_MS",
    "BREAKER_WINDOW_S",
    "BREAKER_MIN_CALLS",
    "BREAKER_FAILURE_RATE",
    "BREAKER_RESET_S",
    "EJECT_AFTER",
    "EJECT_BASE_S",
    "EJECT_MAX_S",
]
# Former settings, now fixed values with their reasons in the code (docs/configuration.md).
_RETIRED = frozenset(
    [
        "BFF_PROPAGATION_MARGIN_MS",
        "BFF_MAX_CONNECTIONS",
        "BFF_LOOP_LAG_NEUTRAL_MS",
        "BFF_RATE_LIMIT_STRATEGY",
        "BFF_CORS_ALLOW_HEADERS",
        "BFF_CORS_ALLOW_CREDENTIALS",
        "BFF_CORS_MAX_AGE_S",
        "BFF_AUTH_JWT_LEEWAY_S",
        "BFF_MAX_REQUEST_LINE",
        "BFF_MAX_HEADER_SIZE",
        "BFF_MAX_HEADERS",
        "BFF_MAX_BODY_BYTES",
        "BFF_KEEPALIVE_TIMEOUT_S",
        "BFF_CACHE_MAX_TTL_S",
        "BFF_CACHE_REDIS_TIMEOUT_MS",
    ]
)


def dangerous_names(environ: Mapping[str, str], variables: Collection[str]) -> list[str]:
    """The refusals for a replaced variable or an unknown `BFF_AUTH_*` one (set, even if
    empty); `variables`: the names that are settings."""
    problems = []
    for name in _not_settings(environ, variables):
        if name in REPLACED:
            problems.append(f"{name} is replaced by {REPLACED[name]}")
        elif name.startswith("BFF_AUTH_"):
            problems.append(
                f"{name} is not a setting{_closest(name, variables)}; refusing to start"
            )
    return problems


def unknown_names(
    environ: Mapping[str, str], variables: Collection[str], services: Collection[str]
) -> list[str]:
    """One warning per `BFF_*` variable that is not a setting, for the start-up log;
    `services`: the parts' names, whose former knobs are named as such."""
    retired = _RETIRED | {f"BFF_{s.upper()}_{k}" for s in services for k in _SERVICE_KNOBS}
    warnings = []
    for name in _not_settings(environ, variables):
        if name in retired:
            warnings.append(f"{name} is no longer read: now a fixed value (docs/configuration.md)")
        else:
            warnings.append(f"{name} is not a setting{_closest(name, variables)}")
    return warnings


def _not_settings(environ: Mapping[str, str], variables: Collection[str]) -> list[str]:
    known = frozenset(variables) | TOOLS
    return sorted(n for n in environ if n.startswith("BFF_") and n not in known)


def _closest(name: str, variables: Collection[str]) -> str:
    match = difflib.get_close_matches(name, sorted(variables), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""
