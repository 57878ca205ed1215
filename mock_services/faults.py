"""Fault settings of one mock service, their validation, and the per-request fault draw.

`FaultSettings` is what `GET /__faults` shows and `PUT /__faults` replaces. `draw()` turns the
settings and a `random.Random` into the `Plan` for one request.

Draw order (fixed, so a seed reproduces the same sequence): every request that reaches the
catalogue (valid id) takes exactly six draws from the service's RNG, whatever the rates are:

    1. reset      rng.random() < reset_rate
    2. error      rng.random() < error_rate
    3. malformed  rng.random() < malformed_rate
    4. schema     rng.random() < wrong_schema_rate
    5. slow       rng.random() < slow_rate        (adds slow_ms)
    6. jitter     rng.uniform(0, jitter_ms)       (adds to latency_ms)

The first outcome drawn true wins (reset > error > malformed > wrong schema); slow and jitter
only lengthen the delay, which comes before any outcome. Requests with an invalid id draw
nothing. This module never sleeps or does I/O.
"""

from __future__ import annotations

import enum
import random
import re
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

__all__ = ["FaultSettings", "FaultValidationError", "Outcome", "Plan", "draw", "parse_faults"]

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
# Capped at ten minutes: a larger figure is a typo, and inf would sleep forever.
Millis = Annotated[float, msgspec.Meta(ge=0.0, le=600_000.0)]
ErrorStatus = Annotated[int, msgspec.Meta(ge=400, le=599)]
# A header value: visible ASCII, spaces and tabs only (a CR or LF would split the response),
# and short enough that a typo cannot blow the client's header limit.
HeaderValue = Annotated[str, msgspec.Meta(max_length=1024, pattern=r"^[\x20-\x7e\t]*$")]


class FaultSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The faults in force on one service. Rates are probabilities per request (0-1).

    `latency_ms=None` means "the service's default latency times the latency scale" and
    `cache_control=None` "the service's default caching headers"; the service resolves both
    when the settings are installed, so `GET /__faults` shows what is in force.
    """

    latency_ms: Millis | None = None
    jitter_ms: Millis = 0.0
    error_rate: Rate = 0.0
    error_status: ErrorStatus = 503
    slow_rate: Rate = 0.0
    slow_ms: Millis = 1000.0
    malformed_rate: Rate = 0.0
    wrong_schema_rate: Rate = 0.0
    reset_rate: Rate = 0.0
    seed: int | None = None
    # None: the service's default caching headers; "" sends no Cache-Control at all.
    cache_control: HeaderValue | None = None
    # Send a strong ETag of each 200 body and answer 304 to a matching If-None-Match.
    etag: bool = True

    def with_defaults(self, latency_ms: float, cache_control: str) -> FaultSettings:
        """These settings with `latency_ms` and `cache_control` filled in when left out."""
        return msgspec.structs.replace(
            self,
            latency_ms=latency_ms if self.latency_ms is None else self.latency_ms,
            cache_control=cache_control if self.cache_control is None else self.cache_control,
        )

    def to_json(self) -> dict[str, Any]:
        """Every field, for `GET /__faults`."""
        return {f: getattr(self, f) for f in self.__struct_fields__}


class FaultValidationError(ValueError):
    """A `PUT /__faults` body that cannot be accepted; `field` names the culprit if known."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_json(self) -> dict[str, Any]:
        return {"error": "invalid_faults", "field": self.field, "detail": self.message}


_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]*)`")
_AT_FIELD = re.compile(r"at `\$\.([A-Za-z_]+)")


def parse_faults(raw: bytes) -> FaultSettings:
    """Decode and validate a `PUT /__faults` body; omitted fields take their defaults."""
    try:
        return msgspec.json.decode(raw, type=FaultSettings)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _UNKNOWN_FIELD.search(text) or _AT_FIELD.search(text)
        raise FaultValidationError(text, match.group(1) if match else None) from exc
    except msgspec.DecodeError as exc:
        raise FaultValidationError(f"body is not valid JSON: {exc}", None) from exc


class Outcome(enum.Enum):
    """What a request ends in once its delay is over."""

    OK = "ok"
    RESET = "reset"
    ERROR = "error"
    MALFORMED = "malformed"
    WRONG_SCHEMA = "wrong_schema"


@dataclass(frozen=True, slots=True)
class Plan:
    """The fate of one request: how long it takes and how it ends."""

    delay_ms: float
    outcome: Outcome
    slow: bool

    @property
    def fault(self) -> str | None:
        """A short label of the faults applied (for logs and stats), None when there are none."""
        labels = [self.outcome.value] if self.outcome is not Outcome.OK else []
        if self.slow:
            labels.append("slow")
        return "+".join(labels) or None


def draw(settings: FaultSettings, rng: random.Random) -> Plan:
    """The plan for one request: always six draws from `rng`, in the documented order."""
    reset = rng.random() < settings.reset_rate
    error = rng.random() < settings.error_rate
    malformed = rng.random() < settings.malformed_rate
    wrong_schema = rng.random() < settings.wrong_schema_rate
    slow = rng.random() < settings.slow_rate
    jitter = rng.uniform(0.0, settings.jitter_ms)

    if reset:
        outcome = Outcome.RESET
    elif error:
        outcome = Outcome.ERROR
    elif malformed:
        outcome = Outcome.MALFORMED
    elif wrong_schema:
        outcome = Outcome.WRONG_SCHEMA
    else:
        outcome = Outcome.OK
    delay = (settings.latency_ms or 0.0) + jitter + (settings.slow_ms if slow else 0.0)
    return Plan(delay_ms=delay, outcome=outcome, slow=slow)
