"""Reading the variables: every declared one parsed, every problem reported at once.

A value from the command line wins over the environment; an empty value counts as not set.
A refusal names the variable and says, in the words of the docs table, what it accepts and
what it got (a secret is never echoed, a URL's credentials are hidden):

    BFF_DEADLINE_MS: expected a number of milliseconds (0 < x <= 60000), got 'abc'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bff.settings.declaration import Context, Entry, Service, entries
from bff.settings.kinds import Kind, Refused

__all__ = ["ENVIRONMENT", "FLAG", "Reading", "SettingsError", "read", "refusal"]

ENVIRONMENT = "environment"
FLAG = "command line"


class SettingsError(ValueError):
    """Values we cannot start with: every problem found, each naming its variable."""

    def __init__(self, *problems: str) -> None:
        super().__init__(*problems)
        self.problems = problems

    def __str__(self) -> str:
        return "; ".join(self.problems)


@dataclass(frozen=True, slots=True)
class Reading:
    values: dict[tuple[str, ...], Any]  # by path in the settings tree, every declared field
    sources: dict[str, str]  # the variables given, and where: ENVIRONMENT or FLAG


def read(
    root: type,
    environ: Mapping[str, str],
    flags: Mapping[str, str],
    services: Sequence[Service],
    *,
    tty: bool = False,
) -> Reading:
    """Every declared field's value under `root`: given, or its default, or computed."""
    declared = list(entries(root, services))
    variables = [e for e in declared if e.variable is not None]
    given: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems = []
    for entry in variables:
        raw, source = _raw(entry.name, environ, flags)
        if raw is None:
            if entry.must_be_set:
                problems.append(f"{entry.name}: must be set")
            continue
        sources[entry.name] = source
        try:
            given[entry.name] = entry.kind.parse(raw)
        except Refused as exc:
            problems.append(refusal(entry.name, entry.kind, raw, exc))
    if problems:
        raise SettingsError(*problems)
    # Computed defaults read the others' plain values (none reads another computed one).
    context = Context({e.name: given.get(e.name, e.default()) for e in variables}, tty)
    final = {e.name: given[e.name] if e.name in given else _computed(e, context) for e in variables}
    context = Context(final, tty)
    values = {e.path: final[e.name] for e in variables}
    values |= {e.path: e.derive(context) for e in declared if e.derive is not None}
    return Reading(values, sources)


def refusal(name: str, kind: Kind[Any], raw: str, exc: Refused) -> str:
    why = f" ({exc.detail})" if exc.detail else ""
    return f"{name}: expected {kind.accepts}, got {kind.echo(raw)}{why}"


def _raw(name: str, environ: Mapping[str, str], flags: Mapping[str, str]) -> tuple[str | None, str]:
    for values, source in ((flags, FLAG), (environ, ENVIRONMENT)):
        raw = values.get(name, "").strip()
        if raw:
            return raw, source
    return None, ENVIRONMENT


def _computed(entry: Entry, context: Context) -> Any:
    computed = entry.variable.computed if entry.variable else None
    return context[entry.name] if computed is None else computed.compute(context)
