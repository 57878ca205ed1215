"""What a variable's value may be, in the operator's words.

Each kind reads the text of a variable, says what it accepts (the docs table and every
refusal use these same words), and shows a value back in the variable's own unit with any
secret hidden. Times are stored in seconds whatever unit their variable is written in.

    Number     a number in a unit, within bounds (BFF_DEADLINE_MS: 500 -> 0.5 s)
    Integer    a whole number within bounds
    Choice     one of a few words, any case
    Switch     on or off
    Text       free text of a bounded length

URLs and networks are in `addresses.py`, keys in `credentials.py`.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "COUNT",
    "DURATION_MS",
    "DURATION_S",
    "MILLISECONDS",
    "PER_SECOND",
    "PORT",
    "SECONDS",
    "Choice",
    "Integer",
    "Kind",
    "Number",
    "Refused",
    "Switch",
    "Text",
    "Unit",
    "figure",
]

T = TypeVar("T")


class Refused(Exception):
    """A value a kind cannot take; `detail` says why where "expected ..." alone would not."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class Kind(ABC, Generic[T]):
    __slots__ = ()

    @property
    @abstractmethod
    def accepts(self) -> str:
        """What a value may be: "a number of milliseconds (0 < x <= 60000)"."""

    @abstractmethod
    def parse(self, raw: str) -> T:
        """The value of `raw` (stripped, not empty), or `Refused`."""

    def show(self, value: T) -> Any:
        """`value` as JSON in the variable's own unit, with secrets hidden."""
        return value

    def display(self, value: T | None) -> Any:
        """`show`, and None (a setting with no default, not set) as None."""
        return None if value is None else self.show(value)

    def echo(self, raw: str) -> str:
        """How a refused `raw` appears in its refusal."""
        return repr(raw)


def figure(x: float) -> str:
    """500.0 -> "500", 0.25 -> "0.25", 1e9 -> "1000000000": as an operator writes it."""
    return str(int(x)) if float(x).is_integer() else repr(x)


@dataclass(frozen=True, slots=True)
class Unit:
    name: str  # plural, as in "a number of milliseconds"
    per_stored: float  # how many of this unit make one stored unit (1000 ms per second)


MILLISECONDS = Unit("milliseconds", 1000.0)
SECONDS = Unit("seconds", 1.0)
PER_SECOND = Unit("requests per second", 1.0)
# Plain decimals only: float() also takes "inf", "nan", "1_000" and digits of other scripts.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


@dataclass(frozen=True, slots=True)
class Number(Kind[float]):
    unit: Unit
    low: float
    high: float
    low_open: bool = False  # low < x, not low <= x

    @property
    def accepts(self) -> str:
        sign = "<" if self.low_open else "<="
        return f"a number of {self.unit.name} ({figure(self.low)} {sign} x <= {figure(self.high)})"

    def parse(self, raw: str) -> float:
        if not _DECIMAL.fullmatch(raw):
            raise Refused
        value = float(raw)
        if not math.isfinite(value) or value > self.high or value < self.low:
            raise Refused
        if self.low_open and value == self.low:
            raise Refused
        return value / self.unit.per_stored

    def show(self, value: float) -> float:
        # Rounded so that 0.45 s shows as the 450 ms that was written.
        return round(value * self.unit.per_stored, 9)


@dataclass(frozen=True, slots=True)
class Integer(Kind[int]):
    low: int
    high: int
    noun: str = "a whole number"

    @property
    def accepts(self) -> str:
        return f"{self.noun} ({self.low} <= x <= {self.high})"

    def parse(self, raw: str) -> int:
        if not re.fullmatch(r"[0-9]{1,19}", raw, re.ASCII):
            raise Refused
        value = int(raw)
        if not self.low <= value <= self.high:
            raise Refused
        return value


@dataclass(frozen=True, slots=True)
class Choice(Kind[str]):
    values: tuple[str, ...]

    @property
    def accepts(self) -> str:
        return "one of " + ", ".join(self.values)

    def parse(self, raw: str) -> str:
        # Case does not matter for a word (debug, hs256, Console).
        for value in self.values:
            if value.lower() == raw.lower():
                return value
        raise Refused


@dataclass(frozen=True, slots=True)
class Switch(Kind[bool]):
    @property
    def accepts(self) -> str:
        return "on or off"

    def parse(self, raw: str) -> bool:
        if raw.lower() not in {"on", "off"}:
            raise Refused
        return raw.lower() == "on"

    def show(self, value: bool) -> str:
        return "on" if value else "off"


@dataclass(frozen=True, slots=True)
class Text(Kind[str]):
    noun: str = "text"
    max_length: int = 4096

    @property
    def accepts(self) -> str:
        return f"{self.noun} of at most {self.max_length} characters"

    def parse(self, raw: str) -> str:
        if len(raw) > self.max_length:
            raise Refused(f"{len(raw)} characters")
        return raw

    def echo(self, raw: str) -> str:
        return repr(raw[:60] + "...") if len(raw) > 60 else repr(raw)


# The usual bounds: beyond them a figure is a typo, not a choice.
PORT = Integer(0, 65535, "a port number")
COUNT = Integer(1, 1_000_000_000)
DURATION_MS = Number(MILLISECONDS, 0, 60_000, low_open=True)
DURATION_S = Number(SECONDS, 0, 3_600)
