"""Named fault scenarios, so that nobody has to remember which fields make "a brownout".

A preset names the faults of every service: a service it does not mention runs with its
defaults, so applying one preset to all three services gives exactly that scenario, whatever
was in force before. Three ways to apply one:

    python -m mock_services --preset brownout          the faults in force at start
    curl -X PUT 'http://127.0.0.1:8082/__faults?preset=brownout'   one running service
    the fault lab (python -m mock_services, http://127.0.0.1:8089/)  all three at once

The brownout mixes every kind of fault on the two optional services. The draws are
independent (mock_services.faults), so the share of requests hit by at least one fault is
1 - (1-0.10)(1-0.05)(1-0.05)(1-0.05)(1-0.16) = 0.352: 35 %. Its slow requests take 300 ms more,
enough to push a call past the BFF's per-attempt timeout but not past its 500 ms deadline, so
retries and hedges have something to win.

This module does no I/O and keeps no state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .faults import FaultSettings
from .state import ServiceKind

__all__ = ["PRESETS", "Preset", "UnknownPreset", "preset_named", "presets_json"]


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    description: str
    faults: MappingProxyType[ServiceKind, FaultSettings] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def for_service(self, kind: ServiceKind) -> FaultSettings:
        """The faults this preset sets on `kind`: the defaults when it does not mention it."""
        return self.faults.get(kind, FaultSettings())

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "services": {kind: settings.to_json() for kind, settings in self.faults.items()},
        }


def _preset(
    name: str, description: str, faults: dict[ServiceKind, FaultSettings] | None = None
) -> Preset:
    return Preset(name, description, MappingProxyType(faults or {}))


_BROWNOUT = FaultSettings(
    error_rate=0.10,
    reset_rate=0.05,
    malformed_rate=0.05,
    wrong_schema_rate=0.05,
    slow_rate=0.16,
    slow_ms=300.0,
)

PRESETS: MappingProxyType[str, Preset] = MappingProxyType(
    {
        p.name: p
        for p in (
            _preset("healthy", "every service at its defaults (the same as DELETE /__faults)"),
            _preset(
                "slow-reviews",
                "reviews answer after 400 ms: the product should not wait for them",
                {"reviews": FaultSettings(latency_ms=400.0)},
            ),
            _preset(
                "inventory-down",
                "inventory answers 503 to every call: its breaker opens, stock is unknown",
                {"inventory": FaultSettings(error_rate=1.0, error_status=503)},
            ),
            _preset(
                "malformed-bodies",
                "reviews send truncated JSON, inventory JSON of the wrong shape (bad_response)",
                {
                    "reviews": FaultSettings(malformed_rate=1.0),
                    "inventory": FaultSettings(wrong_schema_rate=1.0),
                },
            ),
            _preset(
                "brownout",
                "35 % of reviews and inventory calls fail, reset or stall 300 ms (mixed)",
                {"reviews": _BROWNOUT, "inventory": _BROWNOUT},
            ),
        )
    }
)


class UnknownPreset(ValueError):
    """A preset name that is not in `PRESETS`; the message lists the names there are."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
        self.name = name


def preset_named(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError as exc:
        raise UnknownPreset(name) from exc


def presets_json() -> list[dict[str, Any]]:
    """Every preset, for `GET /__presets` and the lab."""
    return [preset.to_json() for preset in PRESETS.values()]
