"""One replay clock: the instant a replica shows, fixed or running faster than real time.

Two uses of the same clock:

- **instant**: the replica shows its recording as it stood at :meth:`ReplayClock.now` (a server
  tree on election night);
- **release**: the replica publishes what was recorded as published by then
  (:meth:`ReplayClock.released`, e.g. batches released one after the other).

A clock stands still at an instant (:meth:`~ReplayClock.set`, :meth:`~ReplayClock.advance`) or
replays a window (:meth:`~ReplayClock.replay`): from ``start`` at ``speed`` times real time,
then it stays at ``end``. A clock made without an instant stands at the end of time, where
everything recorded is out. All instants are naive UTC datetimes.

A replay asked for (``gateway demo --replay``) is a :class:`Replay`, read from
``SPEED`` or ``START[/END][@SPEED]`` by :meth:`Replay.parse`; each replica fills in what is
left open from its own recording (its election night, its end).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_SPEED", "END_OF_TIME", "Replay", "ReplayClock"]

DEFAULT_SPEED = 60.0
"""How many times faster than real time a replay runs unless told."""

END_OF_TIME = dt.datetime.max
"""Where a clock made without an instant stands: everything is released."""


class ReplayClock:
    """``ReplayClock()``: everything out; ``ReplayClock(instant)``: standing at ``instant``;
    ``ReplayClock(start, speed)``: replaying from ``start`` (without ``start``: from
    :attr:`origin`, the instant release offsets count from).

    ``timer`` is the real-time source (seconds, monotonic), for tests.
    """

    origin: dt.datetime = dt.datetime(2000, 1, 1)
    """Where a replay made without ``start`` begins (release offsets count from its start)."""

    def __init__(
        self,
        start: dt.datetime | None = None,
        speed: float | None = None,
        *,
        end: dt.datetime = END_OF_TIME,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timer = timer
        self._instant = END_OF_TIME if start is None and speed is None else start or self.origin
        self._replay: tuple[dt.datetime, dt.datetime, float, float] | None = None
        self.step: dt.timedelta | None = None
        """How far :meth:`tick` moves a standing clock (None: not at all)."""
        if speed is not None:
            self.replay(self._instant, end, speed)

    # -- instant ---------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        """The instant shown now."""
        if self._replay is None:
            return self._instant
        start, end, speed, began = self._replay
        try:
            return min(end, start + dt.timedelta(seconds=(self._timer() - began) * speed))
        except OverflowError:
            return end

    def set(self, instant: dt.datetime) -> None:
        """Stand still at ``instant`` (any replay stops)."""
        self._replay = None
        self._instant = instant

    def advance(self, delta: dt.timedelta) -> None:
        """Move the clock by ``delta`` (a replay goes on from there)."""
        if self._replay is None:
            self._instant = _plus(self._instant, delta)
            return
        start, end, speed, began = self._replay
        self._replay = (_plus(start, delta), end, speed, began)

    def tick(self) -> None:
        """Something happened that moves a standing clock by :attr:`step`."""
        if self.step is not None and self._replay is None:
            self.advance(self.step)

    def replay(
        self, start: dt.datetime, end: dt.datetime = END_OF_TIME, speed: float = 60.0
    ) -> None:
        """Run from ``start`` to ``end`` at ``speed`` times real time, then stay at ``end``."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        if end < start:
            raise ValueError("a replay must run forward")
        self._replay = (start, end, speed, self._timer())

    def restart(self) -> None:
        """Replay again from the start (a standing clock is left alone)."""
        if self._replay is not None:
            start, end, speed, _ = self._replay
            self._replay = (start, end, speed, self._timer())

    @property
    def replaying(self) -> bool:
        """Whether the clock runs (and has not yet reached its end)."""
        return self._replay is not None and self.now() < self._replay[1]

    @property
    def speed(self) -> float | None:
        """The replay's speed (None: standing still)."""
        return None if self._replay is None else self._replay[2]

    @property
    def start(self) -> dt.datetime:
        """Where the replay began (a standing clock: its instant)."""
        return self._instant if self._replay is None else self._replay[0]

    # -- release ---------------------------------------------------------------------------

    def released(self, at: dt.datetime | dt.timedelta | None) -> bool:
        """Whether something published ``at`` is out by now.

        ``at``: an instant; a time after the replay's start (a recorded offset); None: it has
        always been out.
        """
        if at is None:
            return True
        now = self.now()
        if now == END_OF_TIME:
            return True
        if isinstance(at, dt.timedelta):
            at = _plus(self.start, at)
        return at <= now

    def elapsed(self) -> dt.timedelta:
        """How much recorded time has been replayed since the start."""
        if self.now() == END_OF_TIME:
            return dt.timedelta.max
        return self.now() - self.start


def _plus(instant: dt.datetime, delta: dt.timedelta) -> dt.datetime:
    try:
        return instant + delta
    except OverflowError:
        return END_OF_TIME if delta > dt.timedelta(0) else dt.datetime.min


@dataclass(frozen=True, slots=True)
class Replay:
    """A replay asked for: from ``start`` to ``end`` at ``speed`` times real time.

    ``start``/``end`` None: the replica's own (the start of its election night, the end of
    its recording). A replica whose recording has offsets rather than instants (batches
    released so many seconds after the first) replays them from the first at ``speed``.
    """

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    speed: float = DEFAULT_SPEED

    @classmethod
    def parse(cls, spec: str, what: str = "--replay") -> Replay:
        """Read ``""`` (election night at the default speed), ``SPEED`` (``120``, ``@120``)
        or ``START[/END][@SPEED]`` (ISO 8601 instants; with a zone, or UTC).

        ``what`` names the option in the error (a ``ValueError``).
        """
        text = spec.strip()
        window, _, speed_text = text.rpartition("@") if "@" in text else (text, "", "")
        if window and not speed_text and _number(window) is not None:
            window, speed_text = "", window  # SPEED alone
        expected = f"{what}: expected SPEED or START[/END][@SPEED], got {spec!r}"
        speed = DEFAULT_SPEED
        if speed_text:
            found = _number(speed_text)
            if found is None:
                raise ValueError(expected)
            speed = found
        start = end = None
        if window:
            start_text, _, end_text = window.partition("/")
            try:
                start = utc(start_text)
                end = utc(end_text) if end_text else None
            except ValueError:
                raise ValueError(expected) from None
        if not speed > 0 or (start is not None and end is not None and end < start):
            raise ValueError(f"{what}: the window must run forward at a positive speed")
        return cls(start, end, speed)


def utc(text: str) -> dt.datetime:
    """An ISO 8601 instant as a naive UTC datetime (one without a zone is UTC already)."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None
