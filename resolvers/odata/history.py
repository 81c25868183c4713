"""The history of an OData register's rows: recorded as they are read, answered at an instant.

Every complete row the source reads (all of the entity's fields; the change detector's and
the recorder's reads are complete) is kept as a *row version* in the history store
(:meth:`gateway.history.store.HistoryStore.record_rows`): registered from the row's update
time (the ``changeField`` option, FT's ``opdateringsdato``, a wall-clock time of the register's
``timeZone``) and, where the register's bitemporality annex declares them, valid from and to
its validity fields. A later version of the same key closes the one before it (an ``u``
event), a key seen for the first time opens (``i``), and a row found gone upstream (the change
detector's sweep of the ids, :mod:`resolvers.odata.detector`) closes with a ``d`` event.

A query asked at ``registreringstid`` is answered from the versions registered then, filtered,
ordered and windowed here; an instant before the gateway began keeping the entity answers
with a ``BEFORE_HISTORY`` notice (the history is complete from the first complete read of the
entity on, not from the oldest update time it holds).

Rows deleted upstream are left out of every current answer, cached or not, from the moment
the deletion is known (here or, through the change feed, in another process).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson

from gateway.history.instants import before_history, in_utc, required
from gateway.history.periods import Asked, with_period
from gateway.history.store import HistoryStore, RowVersion
from gateway.history.temporal_fields import instant_of, is_temporal
from gateway.model.datamodel import Entity, Register, ScalarType
from gateway.model.filters import apply_in_memory
from gateway.model.keys import join_key, split_key
from gateway.model.query import Page, Query, Row

__all__ = ["RowHistory", "key_text"]

# Rows remembered per source as already recorded (their key and update time).
_SEEN = 100_000


def key_text(entity: Entity, row: Mapping[str, Any]) -> str | None:
    """A row's identity as text: its key's values joined (:func:`gateway.model.keys.join_key`);
    None if the row lacks a key field."""
    values = [row.get(name) for name in entity.key]
    if not values or any(v is None for v in values):
        return None
    return join_key(values)


def _content(row: Mapping[str, Any]) -> str:
    try:
        return orjson.dumps(row, option=orjson.OPT_SORT_KEYS, default=str).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)


class RowHistory:
    """One OData source's history (see the module)."""

    def __init__(
        self,
        register: Register,
        history: HistoryStore | None,
        change_field: str | None,
        zone: dt.tzinfo,
    ) -> None:
        self.register = register
        self.store = history
        self.zone = zone
        self.change_field = change_field
        # Entity name -> keys deleted upstream (left out of current answers).
        self.deleted: dict[str, set[str]] = {}
        self._seen: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._loaded = False
        # Changes whenever the deleted keys change (the deletions this process knows).
        self.epoch = 0

    async def start(self) -> None:
        """Learn the deletions the store already knows."""
        if self.store is not None and not self._loaded:
            self.deleted = await self.store.deleted_keys(self.register.name)
            self.epoch = sum(len(keys) for keys in self.deleted.values())
            self._loaded = True

    # -- recording ---------------------------------------------------------------------

    def complete(self, query: Query) -> bool:
        """Whether ``query`` reads whole rows (only those are versions)."""
        fields = query.fields
        return not fields or all(f.name in fields for f in query.entity.fields)

    def record(self, entity: Entity, rows: Iterable[Row]) -> None:
        """Queue the rows as versions (those already recorded unchanged are skipped)."""
        store = self.store
        if store is None:
            return
        change = self.change_name(entity)
        seen = self._seen
        versions: list[RowVersion] = []
        for row in rows:
            key = key_text(entity, row)
            if key is None:
                continue
            marker = (entity.name, key)
            stamp = row.get(change) if change is not None else _content(row)
            if seen.get(marker) == stamp:
                seen.move_to_end(marker)
                continue
            seen[marker] = stamp
            if len(seen) > _SEEN:
                seen.popitem(last=False)
            versions.append(
                RowVersion(
                    key,
                    _content(row),
                    self._instant(row.get(change)) if change is not None else None,
                    *self._validity(entity, row),
                )
            )
            gone = self.deleted.get(entity.name)
            if gone and key in gone:
                gone.discard(key)  # back upstream
                self.epoch += 1
        if versions:
            store.record_rows(self.register.name, entity.name, versions)

    def change_name(self, entity: Entity) -> str | None:
        """The GraphQL name of the field saying when a row was registered: the annex's
        ``RegistrationFrom``, else the register's ``changeField``; None: neither."""
        declared = self.register.temporal.get(entity.name)
        if declared is not None and declared.registration_from in entity.by_source:
            return entity.by_source[declared.registration_from].name
        field = self.change_field
        if field is None or field not in entity.by_source:
            return None
        return entity.by_source[field].name

    def _validity(self, entity: Entity, row: Row) -> tuple[dt.datetime | None, dt.datetime | None]:
        declared = self.register.temporal.get(entity.name)
        if declared is None:
            return None, None
        names = entity.by_source
        start = names.get(declared.valid_from) if declared.valid_from else None
        end = names.get(declared.valid_to) if declared.valid_to else None
        return (
            None if start is None else self._instant(row.get(start.name)),
            None if end is None else self._instant(row.get(end.name)),
        )

    def _instant(self, value: Any) -> dt.datetime | None:
        """An upstream date-time (wall clock of the register's zone, or with an offset)."""
        return instant_of(value, self.zone)

    # -- deletions ---------------------------------------------------------------------

    async def rows_deleted(self, entity: Entity, keys: Sequence[str], at: dt.datetime) -> list[Row]:
        """Rows found gone upstream: recorded as deleted, and left out from now on. The
        rows as last recorded (only their key when none was)."""
        self.forget(entity.name, keys)
        last: dict[str, Row] = {}
        if self.store is not None:
            for key, content in await self.store.rows_deleted(
                self.register.name, entity.name, keys, at
            ):
                last[key] = json.loads(content)
        return [last.get(key) or _key_row(entity, key) for key in keys]

    def forget(self, entity: str, keys: Sequence[str]) -> None:
        """Leave ``keys`` of ``entity`` out of current answers."""
        known = self.deleted.setdefault(entity, set())
        for key in keys:
            if key not in known:
                known.add(key)
                self.epoch += 1
            self._seen.pop((entity, key), None)

    def visible(self, entity: Entity, page: Page) -> Page:
        """``page`` without the rows deleted upstream."""
        gone = self.deleted.get(entity.name)
        if not gone:
            return page
        rows = [r for r in page.rows if key_text(entity, r) not in gone]
        if len(rows) == len(page.rows):
            return page
        total = None if page.total is None else max(0, page.total - (len(page.rows) - len(rows)))
        return replace(page, rows=rows, total=total)

    # -- answering at an instant -------------------------------------------------------

    async def periods(self, query: Query, asked: Asked) -> Page:
        """A delta (the rows changed in the period) or every version, with their periods."""
        name = self.register.name
        store = required(self.store, name)
        entity = query.entity
        rows: list[Row]
        if asked.since is not None:
            until = in_utc(asked.until) if asked.until is not None else dt.datetime.now(dt.UTC)
            changes = await store.row_changes(name, entity.name, in_utc(asked.since), until)
            rows = [with_period(json.loads(c), p, action) for c, action, p in changes]
        else:
            rows = [
                with_period(json.loads(c), p)
                for c, p in await store.row_versions(name, entity.name)
            ]
        # A deleted row is filtered as it last stood.
        return apply_in_memory(rows, query)

    async def at(self, query: Query, instant: dt.datetime) -> Page:
        """``query`` as the register answered at ``instant`` (from the versions kept)."""
        name = self.register.name
        store = required(self.store, name)
        instant = in_utc(instant)
        entity = query.entity
        known = await store.rows_known_from(name, entity.name)
        if known is None or instant < known:
            notice = before_history(name, instant, known, entity=entity.name)
            return Page(rows=[], has_more=False, total=0 if query.count else None, notices=[notice])
        kept = await store.rows_at_periods(name, entity.name, instant)
        if any(is_temporal(f) for f in entity.fields):  # its temporal fields: as kept
            rows = [with_period(json.loads(content), period) for content, period in kept]
        else:
            rows = [json.loads(content) for content, _ in kept]
        return apply_in_memory(rows, query)


def _key_row(entity: Entity, key: str) -> Row:
    """A row holding only the key :func:`key_text` wrote (its values typed by their fields)."""
    row: Row = {}
    for name, text in zip(entity.key, split_key(key), strict=False):
        kind = entity.field(name).type
        numeric = kind in (ScalarType.INT, ScalarType.LONG) and text.lstrip("-").isdigit()
        row[name] = int(text) if numeric else text
    return row
