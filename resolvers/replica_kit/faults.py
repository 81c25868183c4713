"""One fault vocabulary for every replica.

A :class:`Fault` says what goes wrong (its ``kind``), for which requests (``match``, a
substring of the request's target, ``path?query``), after how many of them (``after``) and how
often (``times``). A replica keeps its faults in a :class:`Faults` set and asks it, for each
request, which fault (if any) answers it (:meth:`Faults.take`). What a kind does on the wire is
the replica's business, as its protocol allows:

=============  ==================================================================================
``status``     an error status instead of the answer (HTTP: ``status``; SFTP: a failure status)
``slow``       the answer, ``delay`` seconds late (SFTP: every read of the file waits)
``timeout``    no answer at all: the request is held open until the client gives up
``drop``       the connection closes without an answer
``cut``        the connection breaks mid-answer: the whole length is announced, only ``keep``
               of it arrives
``truncate``   a complete answer whose body is cut to ``keep`` of its length (a file still
               being written; SFTP: the newest version of a file is listed and served short)
``malformed``  a complete answer whose body does not parse (SFTP: a file whose signature does
               not verify)
=============  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import KW_ONLY, asdict, dataclass
from typing import Any, Final, Protocol

__all__ = ["KINDS", "Fault", "Faults", "Target"]

KINDS: Final[tuple[str, ...]] = (
    "status",
    "slow",
    "timeout",
    "drop",
    "cut",
    "truncate",
    "malformed",
)


class Target(Protocol):
    """What a fault is matched against: a request with a ``target`` (``path?query``)."""

    @property
    def target(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: ``Fault("status", status=503, times=None, match="Aktør")``.

    ``times``: how many matching requests it answers (None: every one until cleared);
    ``after``: how many matching requests pass untouched first; ``match``: a substring of the
    request's target (None: every request); ``status``: the status of a ``status`` fault;
    ``delay``: the seconds a ``slow`` fault waits; ``keep``: the share of the body a ``cut`` or
    ``truncate`` fault lets through (0: nothing).
    """

    kind: str
    _: KW_ONLY
    times: int | None = 1
    match: str | None = None
    after: int = 0
    status: int = 503
    delay: float = 1.0
    keep: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1, or None for every request")
        if self.after < 0:
            raise ValueError("after must not be negative")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status {self.status} is no HTTP status")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        if not 0.0 <= self.keep < 1.0:
            raise ValueError("keep must be at least 0 and less than 1")

    @classmethod
    def from_json(cls, spec: Any) -> Fault:
        """A fault from its JSON form (``{"kind": "status", "status": 502}``)."""
        if not isinstance(spec, dict) or "kind" not in spec:
            raise ValueError("a fault is an object with a kind")
        fields = {name: value for name, value in spec.items() if name != "kind"}
        try:
            return cls(spec["kind"], **fields)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    def to_json(self) -> dict[str, Any]:
        """The JSON form :meth:`from_json` reads."""
        return asdict(self)

    def matches(self, target: str) -> bool:
        """Whether the fault is meant for a request with this target."""
        return self.match is None or self.match in target

    def kept(self, body: bytes) -> bytes:
        """The part of ``body`` a ``cut`` or ``truncate`` lets through."""
        return body[: int(len(body) * self.keep)]


@dataclass(slots=True)
class _Armed:
    fault: Fault
    remaining: int | None
    passing: int


class Faults:
    """The faults a replica has been asked to inject, in the order they were injected.

    The first armed fault matching a request answers it; each answer uses up one of its
    ``times``, and a used-up fault is gone.
    """

    def __init__(self) -> None:
        self._armed: list[_Armed] = []

    def inject(self, fault: Fault) -> Fault:
        """Arm ``fault`` for the next matching requests."""
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        self._armed.append(_Armed(fault, fault.times, fault.after))
        return fault

    def take(self, request: Target | str, *, kinds: Collection[str] | None = None) -> Fault | None:
        """The fault that answers ``request`` (None: answer normally), counted as used.

        ``kinds``: consider only faults of these kinds (the others neither answer nor count
        the request).
        """
        target = request if isinstance(request, str) else request.target
        for armed in list(self._armed):
            fault = armed.fault
            if (kinds is not None and fault.kind not in kinds) or not fault.matches(target):
                continue
            if armed.passing > 0:
                armed.passing -= 1
                continue
            if armed.remaining is not None:
                armed.remaining -= 1
                if armed.remaining == 0:
                    self._armed.remove(armed)
            return fault
        return None

    def peek(self, request: Target | str, *, kinds: Collection[str] | None = None) -> Fault | None:
        """The fault :meth:`take` would return now, without counting the request."""
        target = request if isinstance(request, str) else request.target
        for armed in self._armed:
            fault = armed.fault
            wanted = kinds is None or fault.kind in kinds
            if wanted and fault.matches(target) and armed.passing == 0:
                return fault
        return None

    def clear(self) -> None:
        """Disarm every fault."""
        self._armed.clear()

    def pending(self) -> list[tuple[Fault, int | None]]:
        """The armed faults with how many answers each has left (None: unlimited)."""
        return [(armed.fault, armed.remaining) for armed in self._armed]

    def __iter__(self) -> Iterator[Fault]:
        return (armed.fault for armed in self._armed)

    def __len__(self) -> int:
        return len(self._armed)

    def __bool__(self) -> bool:
        return bool(self._armed)
