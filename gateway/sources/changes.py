"""Live updates ("hændelser"): change detection per register, and the event bus.

Every source kind has a :class:`Detector` (declared with its adapter in
:mod:`gateway.sources.kinds`) that looks at its upstream through the register's adapter, and so
through its guard
and cache, and reports what is new as :class:`Change` records: the new or changed rows of one
entity and what changed upstream (file versions, batch numbers, update times).

Each gateway process has one event bus per runtime (:mod:`gateway.events.bus`), made on first
use. It runs one watcher per register while anyone subscribes to that register: the first
subscription starts it, the last one to leave stops it. A watcher polls its detector every
``eventsInterval`` seconds (a ``Source.json`` option, overridable per register in the gateway
configuration; each detector has a default) and hands each change to the subscribers of its
entity.

With a cache URL (Redis) the processes share the work (:mod:`gateway.events.fanout`): a lock
with an expiry elects the one process that polls a register, the detector's state is kept in
Redis so that another process carries on where the last one stopped, the entities subscribed
to anywhere are announced there, and changes go out on a channel every process listens to, so
each upstream change is detected once and reaches every subscriber. If Redis fails, each
process polls for its own subscribers until Redis answers again.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from gateway.model.datamodel import Register
from gateway.model.query import Row

if TYPE_CHECKING:
    from gateway.sources.port import Source

__all__ = ["Change", "Detector"]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


@dataclass(frozen=True, slots=True)
class Change:
    """What one detection found new for one entity: its rows and the upstream's marker."""

    register: str
    entity: str
    rows: tuple[Row, ...]
    upstream: tuple[str, ...]
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    detected_at: str = field(default_factory=_now)
    # Rows found deleted upstream (as last known; at least their key): a ``d`` event.
    deleted: tuple[Row, ...] = ()

    @property
    def action(self) -> str:
        """``d`` for deletions, ``u`` for new or changed rows."""
        return "d" if self.deleted and not self.rows else "u"

    def encode(self, origin: str = "") -> bytes:
        """The change as JSON (``origin``: the publishing process)."""
        document = {
            "register": self.register,
            "entity": self.entity,
            "rows": self.rows,
            "upstream": self.upstream,
            "id": self.id,
            "detectedAt": self.detected_at,
            "deleted": self.deleted,
            "origin": origin,
        }
        try:
            return orjson.dumps(document, default=_json_default)
        except TypeError:
            # orjson refuses integers beyond 64 bits; the standard library does not.
            return json.dumps(document, default=_json_default).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes | str) -> tuple[Change, str]:
        """A change and its origin from :meth:`encode`'s JSON (ValueError if it is not one)."""
        # The standard library keeps integers beyond 64 bits exact; orjson would not.
        document = json.loads(data)
        if not isinstance(document, dict):
            raise ValueError("a change is a JSON object")
        rows = document.get("rows")
        upstream = document.get("upstream")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("a change's rows are objects")
        if not isinstance(upstream, list):
            raise ValueError("a change's upstream is a list")
        deleted = document.get("deleted", [])
        if not isinstance(deleted, list) or not all(isinstance(r, dict) for r in deleted):
            raise ValueError("a change's deleted rows are objects")
        texts = [document.get(k) for k in ("register", "entity", "id", "detectedAt")]
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("a change names its register, entity, id and time")
        register, entity, ident, detected = (str(t) for t in texts)
        change = cls(
            register,
            entity,
            tuple(rows),
            tuple(map(str, upstream)),
            ident,
            detected,
            tuple(deleted),
        )
        return change, str(document.get("origin", ""))


class Detector(ABC):
    """Finds what changed upstream for one register. Only the polling process runs
    :meth:`poll`; every process that receives a change calls :meth:`received`."""

    default_interval: ClassVar[float] = 60.0

    def __init__(self, source: Source) -> None:
        self.source = source
        self.register = source.register

    @classmethod
    @abstractmethod
    def entities(cls, register: Register) -> list[str]:
        """The entities (datamodel names) whose changes this kind of detector reports."""

    @abstractmethod
    async def poll(self, watched: frozenset[str]) -> list[Change]:
        """Look upstream once: the changes since the last look, for the ``watched`` entities.

        The first look for an entity only notes where the upstream stands (its baseline).
        """

    @abstractmethod
    def ready(self, entity: str) -> bool:
        """Whether the baseline of ``entity`` is taken (later changes will be reported)."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Where the detector stands, as JSON values (kept in Redis between leaders)."""

    @abstractmethod
    def restore(self, state: Mapping[str, Any]) -> None:
        """Carry on from a :meth:`state` another process saved."""

    def received(self, change: Change) -> None:  # noqa: B027 - optional hook
        """A change found by another process arrived: forget what would hide it here."""
