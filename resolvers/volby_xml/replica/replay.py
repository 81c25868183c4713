"""Election-night behaviour of the volby.cz replica: a replay clock and injected faults."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Fault", "ReplayClock", "RequestRecord"]


class ReplayClock:
    """Decides which recorded batches are published yet.

    ``speed=None`` publishes everything at once; a speed replays the recorded publication times
    (batch ``offset`` seconds after the first one) that many times faster; :meth:`release`
    takes a series over by hand (everything up to a number is published, nothing after).
    """

    def __init__(
        self, speed: float | None = None, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.speed = speed
        self._now = now
        self._start = now()
        self._limits: dict[str, int] = {}

    def elapsed(self) -> float:
        """Recorded seconds replayed so far."""
        return (self._now() - self._start) * (self.speed or 0.0)

    def released(self, series: str, number: int, offset: float) -> bool:
        """Whether batch ``number`` of ``series`` (recorded ``offset`` s after the first) is out."""
        if series in self._limits:
            return number <= self._limits[series]
        if self.speed is None:
            return True
        return self.elapsed() >= offset

    def release(self, series: str, upto: int) -> None:
        """Publish the batches of ``series`` up to ``upto`` (0: none), by hand."""
        self._limits[series] = upto

    def restart(self) -> None:
        """Start the replay again from the first batch."""
        self._start = self._now()


@dataclass
class Fault:
    """A fault the replica injects into matching requests.

    ``slow`` delays the answer by ``delay`` seconds, ``status`` answers ``status`` instead,
    ``truncate`` cuts the XML body in half (the HTTP message itself stays well-formed).
    ``match`` is a substring of ``path?query``; ``times`` how many requests it hits (-1: all).
    """

    kind: Literal["slow", "status", "truncate"]
    match: str = ""
    times: int = 1
    delay: float = 1.0
    status: int = 503

    def hits(self, target: str) -> bool:
        """Whether the fault applies to this request (and use up one of its times)."""
        if self.times == 0 or self.match not in target:
            return False
        if self.times > 0:
            self.times -= 1
        return True


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the replica answered."""

    path: str
    params: dict[str, str]
    status: int
    fault: str = ""
