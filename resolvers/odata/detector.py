"""Change detection for OData registers: rows whose update time moved on.

The update-time field is the register's ``changeField`` option (FT: ``opdateringsdato``); the
entities that have it have change events, and a register without the option has none.

Per watched entity that has the field, the detector keeps the newest value of it it has seen.
Each poll asks the upstream, past the cache (``options={"cache": False}``), for the rows
updated after it, in that field's order (``$filter`` and ``$orderby`` are pushed down), at
most :data:`PAGE` rows a poll; the rest follow on the next polls. The first poll of an entity
only reads the newest value (``$orderby … desc``, ``$top=1``).

Deletions leave no update time behind: every ``deletionSweep`` seconds (an option; 0: never)
each watched entity's ids are read whole (``$select`` of the key, in pages, through the
register's guard and its rate), and the ids known before — from the sweep before and, with a
history store, the rows it holds as current — that are no longer there are deletions: they
are recorded (``d`` events), leave every current answer, and go out as a change whose
``deleted`` rows are the rows as last known.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

from gateway.model.datamodel import Entity, Register
from gateway.model.keys import key_order
from gateway.model.query import Condition, Query, SortKey
from gateway.sources.changes import Change, Detector
from gateway.sources.port import Source
from resolvers.odata.history import RowHistory, key_text
from resolvers.odata.options import parse as parse_options

__all__ = ["UpdatedRowsDetector"]

PAGE = 500
# Deletions recorded for changes from other processes, until written.
_PENDING: set[asyncio.Task[Any]] = set()


def _moment(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=None) if moment.tzinfo is not None else moment


class UpdatedRowsDetector(Detector):
    """Rows updated upstream, found by their update time."""

    default_interval = 60.0

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        settings = parse_options(source.options)
        self.field = settings.change_field
        self.sweep_every = settings.deletion_sweep
        self._cursors: dict[str, str | None] = {}
        self._ids: dict[str, set[str]] = {}
        self._swept: dict[str, float] = {}
        self.sweeps = 0

    @classmethod
    def entities(cls, register: Register) -> list[str]:
        """The entities with the ``changeField`` field (none without the option)."""
        field = parse_options(register.source).change_field
        if field is None:
            return []
        return sorted(e.name for e in register.datamodel.entities.values() if field in e.by_source)

    def ready(self, entity: str) -> bool:
        return entity in self._cursors

    async def poll(self, watched: frozenset[str]) -> list[Change]:
        """Ask each watched entity for its rows updated since the last poll."""
        for gone in set(self._cursors) - watched:
            del self._cursors[gone]
        changes: list[Change] = []
        for name in sorted(watched):
            entity = self.register.datamodel.entities.get(name)
            if entity is None or self.field is None or self.field not in entity.by_source:
                continue
            if name not in self._cursors:
                self._cursors[name] = await self._newest(entity)
                # The first sweep comes one sweep interval after the baseline.
                self._swept.setdefault(name, time.monotonic())
                continue
            change = await self._since(entity, self._cursors[name])
            if change is not None:
                changes.append(change)
            if self._sweep_due(name):
                deletion = await self._sweep(entity)
                if deletion is not None:
                    changes.append(deletion)
        return changes

    def _sweep_due(self, name: str) -> bool:
        if self.sweep_every <= 0:
            return False
        last = self._swept.get(name)
        return last is None or time.monotonic() - last >= self.sweep_every

    async def _sweep(self, entity: Entity) -> Change | None:
        """Read every id of ``entity``; those known before and gone now are deletions."""
        self._swept[entity.name] = time.monotonic()
        self.sweeps += 1
        query = Query(
            entity,
            order=key_order(entity, ()),
            fields=frozenset(entity.key),
            options={"cache": False},
        )
        page = await self.source.fetch(query)
        now = {k for k in (key_text(entity, r) for r in page.rows) if k is not None}
        known = self._ids.get(entity.name, set())
        history: RowHistory | None = getattr(self.source, "history", None)
        if history is not None and history.store is not None:
            known = known | await history.store.open_keys(self.register.name, entity.name)
        self._ids[entity.name] = now
        gone = sorted(known - now)
        if not gone or history is None:
            return None
        rows = await history.rows_deleted(entity, gone, dt.datetime.now(dt.UTC))
        return Change(
            self.register.name,
            entity.name,
            (),
            (f"{len(gone)} {entity.name} rows no longer upstream",),
            deleted=tuple(rows),
        )

    def received(self, change: Change) -> None:
        """Another process's change: its rows recorded here, its deletions applied."""
        history: RowHistory | None = getattr(self.source, "history", None)
        entity = self.register.datamodel.entities.get(change.entity)
        if history is None or entity is None:
            return
        if change.rows and history.store is not None:
            history.record(entity, change.rows)
        if change.deleted:
            keys = [k for k in (key_text(entity, r) for r in change.deleted) if k is not None]
            task = asyncio.get_running_loop().create_task(
                history.rows_deleted(entity, keys, dt.datetime.now(dt.UTC))
            )
            _PENDING.add(task)
            task.add_done_callback(_PENDING.discard)

    def _field(self, entity: Entity) -> str:
        """The GraphQL name of the entity's update-time field."""
        assert self.field is not None  # only entities having it are polled
        return entity.by_source[self.field].name

    def _query(self, entity: Entity, **kwargs: Any) -> Query:
        field = self._field(entity)
        descending = bool(kwargs.pop("descending", False))
        order = key_order(entity, (SortKey(field, descending),))
        return Query(entity, order=order, options={"cache": False}, **kwargs)

    async def _newest(self, entity: Entity) -> str | None:
        field = self._field(entity)
        needed = frozenset({field, *entity.key})
        page = await self.source.fetch(self._query(entity, limit=1, fields=needed, descending=True))
        value = page.rows[0].get(field) if page.rows else None
        return None if value is None else str(value)

    async def _since(self, entity: Entity, cursor: str | None) -> Change | None:
        field = self._field(entity)
        where = None if cursor is None else Condition(field, "gt", cursor)
        page = await self.source.fetch(self._query(entity, where=where, limit=PAGE))
        rows = [r for r in page.rows if r.get(field) is not None]
        if cursor is not None:
            # The upstream compares to the millisecond: drop what is not strictly newer.
            rows = [r for r in rows if _moment(r[field]) > _moment(cursor)]
        if page.has_more and rows:
            # The next poll starts after the last complete update time of this page.
            last = _moment(rows[-1][field])
            complete = [r for r in rows if _moment(r[field]) < last]
            rows = complete or rows
        if not rows:
            return None
        newest = max(rows, key=lambda r: _moment(r[field]))[field]
        self._cursors[entity.name] = str(newest)
        return Change(
            self.register.name,
            entity.name,
            tuple(rows),
            (f"{self.field} {cursor or 'start'} – {newest}",),
        )

    def state(self) -> dict[str, Any]:
        return {"cursors": dict(self._cursors)}

    def restore(self, state: Mapping[str, Any]) -> None:
        cursors = state.get("cursors")
        if isinstance(cursors, dict):
            self._cursors = {str(k): None if v is None else str(v) for k, v in cursors.items()}
