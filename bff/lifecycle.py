"""Whether this worker takes traffic: not before its clients exist, not once it drains."""

from __future__ import annotations


class Lifecycle:
    __slots__ = ("draining", "started")

    def __init__(self) -> None:
        self.started = False
        self.draining = False

    @property
    def ready(self) -> bool:
        return self.started and not self.draining
