"""A setting is declared once, on the dataclass field that holds it.

    deadline_s: float = setting(
        "BFF_DEADLINE_MS", Number(MILLISECONDS, 0, 60_000, low_open=True),
        "the per-request deadline", default=0.5,
    )

The variable's name, its kind (type, bounds, unit), its default and its line of doc sit
together; reading the environment, the docs table, `--print-config`, the list of names an
operator may set and the warnings about the others all walk the fields to find them. A
default that depends on other values (the burst is twice the rate) is `Computed`, with the
words the docs use for it. A per-service setting's name holds `{SERVICE}` and is declared
once for every part: a part added to `bff.parts.PARTS` brings its variables with it.

A field without a declaration is a fixed value: its default, with its reason beside it, is
the only place its figure is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from typing import Any, Protocol

from bff.settings.kinds import Kind

__all__ = [
    "Computed",
    "Context",
    "Entry",
    "Service",
    "Variable",
    "build",
    "derived",
    "entries",
    "per_service",
    "setting",
    "value_at",
]

_VARIABLE = "bff.settings.variable"
_DERIVED = "bff.settings.derived"
_PER_SERVICE = "bff.settings.per_service"


class Service(Protocol):
    """What the settings need of a part (bff.parts.Part): its name, and where `make run`
    puts its mock (None: the part's URL variable must be set)."""

    @property
    def name(self) -> str: ...

    @property
    def default_url(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Context:
    """What a computed default reads: every variable's value (given or its default)."""

    values: Mapping[str, Any]
    tty: bool = False  # the output is a terminal: a person reads the log

    def __getitem__(self, variable: str) -> Any:
        return self.values[variable]


@dataclass(frozen=True, slots=True)
class Computed:
    """A default computed from other values, when the variable is not set."""

    says: str  # in the docs' default column: "twice the rate"
    compute: Callable[[Context], Any]


@dataclass(frozen=True, slots=True)
class Variable:
    name: str  # BFF_DEADLINE_MS, or BFF_{SERVICE}_URL for every part
    kind: Kind[Any]
    doc: str  # one line; "{service}" is the part's name
    computed: Computed | None = None
    # The default of a per-service setting that differs by part (its URL).
    service_default: Callable[[Service], str | None] | None = None


def setting(
    name: str,
    kind: Kind[Any],
    doc: str,
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
    computed: Computed | None = None,
    service_default: Callable[[Service], str | None] | None = None,
) -> Any:
    """A dataclass field set by the variable `name`."""
    variable = Variable(name, kind, doc, computed, service_default)
    return field(default=default, default_factory=default_factory, metadata={_VARIABLE: variable})


def derived(default: Any, compute: Callable[[Context], Any]) -> Any:
    """A field no variable names, computed from the variables (the rate limit's storage is
    BFF_REDIS_URL's Redis)."""
    return field(default=default, metadata={_DERIVED: compute})


def per_service(section: type) -> Any:
    """A tuple with one `section` per part, each built with `name=` the part's name."""
    return field(default=(), metadata={_PER_SERVICE: section})


@dataclass(frozen=True, slots=True)
class Entry:
    """A declared field at `path` in the settings tree (a part's name stands for its
    place in a per-service tuple)."""

    path: tuple[str, ...]
    field: dataclasses.Field[Any]
    service: Service | None

    @property
    def variable(self) -> Variable | None:
        found: Variable | None = self.field.metadata.get(_VARIABLE)
        return found

    @property
    def derive(self) -> Callable[[Context], Any] | None:
        found: Callable[[Context], Any] | None = self.field.metadata.get(_DERIVED)
        return found

    @property
    def kind(self) -> Kind[Any]:
        assert self.variable is not None, "a derived field has no variable"
        return self.variable.kind

    @property
    def name(self) -> str:
        """The variable's name, this part's name filled in."""
        assert self.variable is not None, "a derived field has no variable"
        service = self.service.name.upper() if self.service else ""
        return self.variable.name.format(SERVICE=service)

    @property
    def doc(self) -> str:
        assert self.variable is not None, "a derived field has no variable"
        return self.variable.doc.format(service=self.service.name if self.service else "")

    @property
    def must_be_set(self) -> bool:
        """No default: a part that gives its service no URL."""
        return (
            self.variable is not None
            and self.variable.computed is None
            and (self.default() is MISSING)
        )

    def default(self) -> Any:
        """The value when the variable is not set (before any computed default); MISSING
        when it has none and must be set."""
        variable = self.variable
        if variable and variable.service_default and self.service:
            text = variable.service_default(self.service)
            return MISSING if text is None else variable.kind.parse(text)
        if self.field.default is not MISSING:
            return self.field.default
        if self.field.default_factory is not MISSING:
            return self.field.default_factory()
        return MISSING


def entries(root: type, services: Sequence[Service]) -> Iterator[Entry]:
    """Every declared field under `root`, in declaration order; a per-service section's
    fields in turn, each for every part (URLs together, then timeouts)."""
    yield from _walk(root, (), services, None)


def _walk(
    cls: type, path: tuple[str, ...], services: Sequence[Service], service: Service | None
) -> Iterator[Entry]:
    for f in dataclasses.fields(cls):
        here = (*path, f.name)
        if _VARIABLE in f.metadata or _DERIVED in f.metadata:
            yield Entry(here, f, service)
        elif _PER_SERVICE in f.metadata:
            each = [list(_walk(f.metadata[_PER_SERVICE], (*here, s.name), (), s)) for s in services]
            for same_field in zip(*each, strict=True):
                yield from same_field
        elif (section := _section(f)) is not None:
            yield from _walk(section, here, services, service)


def _section(f: dataclasses.Field[Any]) -> type | None:
    """The dataclass a field holds (a field made with `default_factory=ThatClass`)."""
    factory = f.default_factory
    return factory if isinstance(factory, type) and dataclasses.is_dataclass(factory) else None


def build(
    cls: type[Any],
    values: Mapping[tuple[str, ...], Any],
    services: Sequence[Service],
    path: tuple[str, ...] = (),
    **fixed: Any,
) -> Any:
    """`cls` with every value of `values` under `path`; other fields keep their defaults."""
    kwargs = dict(fixed)
    for f in dataclasses.fields(cls):
        here = (*path, f.name)
        if f.name in fixed:
            continue
        if here in values:
            kwargs[f.name] = values[here]
        elif _PER_SERVICE in f.metadata:
            section = f.metadata[_PER_SERVICE]
            kwargs[f.name] = tuple(
                build(section, values, (), (*here, s.name), name=s.name) for s in services
            )
        elif (section := _section(f)) is not None:
            kwargs[f.name] = build(section, values, services, here)
    return cls(**kwargs)


def value_at(root: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` in a settings tree; in a per-service tuple, a step is a name."""
    node = root
    for step in path:
        if isinstance(node, tuple):
            node = next(section for section in node if section.name == step)
        else:
            node = getattr(node, step)
    return node
