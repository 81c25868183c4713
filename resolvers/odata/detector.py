"""Change detection for OData registers: rows whose update time moved on.

The update-time field is the register's ``changeField`` option (FT: ``opdateringsdato``); the
entities that have it have change events, and a register without the option has none.

Per watched entity that has the field, the detector keeps the newest value of it it has seen.
Each poll asks the upstream, past the cache (``options={"cache": False}``), for the rows
updated after it, in that field's order (``$filter`` and ``$orderby`` are pushed down), at
most :data:`PAGE` rows a poll; the rest follow on the next polls. The first poll of an entity
only reads the newest value (``$orderby … desc``, ``$top=1``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from gateway.model.datamodel import Entity, Register
from gateway.model.keys import key_order
from gateway.model.query import Condition, Query, SortKey
from gateway.sources.changes import Change, Detector
from gateway.sources.port import Source
from resolvers.odata.options import parse as parse_options

__all__ = ["UpdatedRowsDetector"]

PAGE = 500


def _moment(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=None) if moment.tzinfo is not None else moment


class UpdatedRowsDetector(Detector):
    """Rows updated upstream, found by their update time."""

    default_interval = 60.0

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        self.field = parse_options(source.options).change_field
        self._cursors: dict[str, str | None] = {}

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
                continue
            change = await self._since(entity, self._cursors[name])
            if change is not None:
                changes.append(change)
        return changes

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
