"""The Datafordeler's temporal fields on an entity's own type: ``registreringFra``,
``registreringTil``, ``virkningFra``, ``virkningTil``.

An entity whose times the register declares (``1. Bitemporality``,
:class:`gateway.model.datamodel.Temporal`) gets the four as fields of its type
(:func:`with_temporal_fields`, at load). They are the declared fields seen as instants in
UTC, as ``{REG}_Events`` and the temporal downloads give them: ``registreringFra`` is the
field saying when the row was registered (FT's ``opdateringsdato``), ``virkningFra``/``-Til``
the validity fields (``startdato``/``slutdato``), each read on the register's wall clock
(``timeZone``). ``registreringTil`` is when the version stopped being the register's answer:
null for what the register says now; at a ``registreringstid`` it is the version's end as
the history kept it (filled by the source answering from its history).

They are queryable, filterable and orderable like any field. No upstream knows them, so the
port (:mod:`gateway.sources.port`) turns a query that names them into one on the declared
fields (:func:`rewrite`: the instant asked for becomes the register's wall clock) and fills
them into the rows that come back (:func:`filled`). A condition on ``registreringTil`` is
decided before asking: null now for every row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from gateway.model.datamodel import Datamodel, Entity, Field, ScalarType, Temporal
from gateway.model.query import And, Condition, Filter, Or, Query, Row, SortKey
from gateway.model.validity import utc_instant

__all__ = [
    "REGISTERED_FROM",
    "REGISTERED_TO",
    "TEMPORAL_MARK",
    "VALID_FROM",
    "VALID_TO",
    "Temporals",
    "filled",
    "instant_of",
    "is_temporal",
    "rewrite",
    "with_temporal_fields",
    "without_temporal_fields",
]

REGISTERED_FROM = "registreringFra"
REGISTERED_TO = "registreringTil"
VALID_FROM = "virkningFra"
VALID_TO = "virkningTil"
# The ``eaid`` of the added fields (no datamodel field has it): left out of the DLS export.
TEMPORAL_MARK = "dls-gateway:temporal"

_TEXTS = {
    REGISTERED_FROM: "When this version was registered (UTC).",
    REGISTERED_TO: "When this version stopped being registered (null: it is the answer now).",
    VALID_FROM: "From when this version is valid in the world (UTC).",
    VALID_TO: "To when this version is valid in the world (UTC; null: open).",
}


def is_temporal(field: Field) -> bool:
    """Whether ``field`` is one of the temporal fields added here."""
    return field.eaid == TEMPORAL_MARK


def _declared(temporal: Temporal) -> dict[str, str]:
    """Added field → the declared source field it reads (registreringTil: none)."""
    pairs = (
        (REGISTERED_FROM, temporal.registration_from),
        (VALID_FROM, temporal.valid_from),
        (VALID_TO, temporal.valid_to),
    )
    return {name: source for name, source in pairs if source}


def with_temporal_fields(entity: Entity, temporal: Temporal) -> tuple[Entity, dict[str, str]]:
    """``entity`` with the temporal fields its declaration supports (registreringTil with
    registreringFra), and for each the source of the declared field it reads (for its level).
    Unchanged when the entity has a field of one of those names already."""
    declared = {
        name: source for name, source in _declared(temporal).items() if source in entity.by_source
    }
    if REGISTERED_FROM in declared:
        declared[REGISTERED_TO] = temporal.registration_from
    if not declared or any(name in entity.by_name for name in declared):
        return entity, {}
    added = tuple(
        Field(
            name, f"{TEMPORAL_MARK}:{name}", ScalarType.DATETIME, True, _TEXTS[name], TEMPORAL_MARK
        )
        for name in (REGISTERED_FROM, REGISTERED_TO, VALID_FROM, VALID_TO)
        if name in declared
    )
    levels = {f.source: declared[f.name] for f in added}
    return dataclasses.replace(entity, fields=(*entity.fields, *added)), levels


def instant_of(value: Any, zone: dt.tzinfo) -> dt.datetime | None:
    """An upstream date-time as an instant in UTC: on the wall clock of ``zone`` unless it
    carries an offset (None: no value, or not a date-time)."""
    try:
        return utc_instant(value, zone)
    except ValueError:
        return None


def without_temporal_fields(model: Datamodel) -> Datamodel:
    """``model`` as the register delivered it (for the DLS export)."""
    entities = {}
    for name, entity in model.entities.items():
        own = tuple(f for f in entity.fields if not is_temporal(f))
        entities[name] = (
            entity if len(own) == len(entity.fields) else (dataclasses.replace(entity, fields=own))
        )
    return dataclasses.replace(model, entities=entities)


class Temporals:
    """The temporal fields of one entity: which declared field each reads, and the zone."""

    def __init__(self, entity: Entity, temporal: Temporal, zone: dt.tzinfo | None) -> None:
        names = entity.by_source
        self.reads = {
            name: names[source].name
            for name, source in _declared(temporal).items()
            if source in names and name in entity.by_name
        }
        self.dates = frozenset(
            names[source].name
            for source in _declared(temporal).values()
            if source in names and names[source].type is ScalarType.DATE
        )
        self.names = frozenset(f.name for f in entity.fields if is_temporal(f))
        self.zone = zone or dt.UTC

    def instant(self, value: Any) -> dt.datetime | None:
        """A declared field's value as an instant in UTC."""
        return instant_of(value, self.zone)

    def wall_clock(self, value: Any, field: str = "") -> Any:
        """An asked instant (UTC without an offset) as the declared ``field`` holds it (a
        Date field: the day on the wall clock)."""
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
        if not isinstance(value, dt.datetime):
            return value
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        wall = moment.astimezone(self.zone).replace(tzinfo=None)
        return wall.date() if field in self.dates else wall


_TRUE: Filter = And(())
_FALSE: Filter = Or(())


def _simplify(where: Filter, view: Temporals) -> Filter:
    """``where`` on the declared fields; a condition on registreringTil (null now) decided."""
    if isinstance(where, Condition):
        if where.field == REGISTERED_TO:
            null = where.value is None
            holds = (where.op == "eq" and null) or (where.op == "neq" and not null)
            holds = holds or (where.op == "nin" and None not in _values(where.value))
            holds = holds or (where.op == "in" and None in _values(where.value))
            return _TRUE if holds else _FALSE
        target = view.reads.get(where.field)
        if target is None:
            return where
        if where.op in ("in", "nin"):
            value: Any = [view.wall_clock(v, target) for v in _values(where.value)]
        else:
            value = view.wall_clock(where.value, target)
        return Condition(target, where.op, value)
    items = [_simplify(item, view) for item in where.items]
    if isinstance(where, And):
        if any(item == _FALSE for item in items):
            return _FALSE
        kept = tuple(item for item in items if item != _TRUE)
        return kept[0] if len(kept) == 1 else And(kept)
    if any(item == _TRUE for item in items):
        return _TRUE
    kept = tuple(item for item in items if item != _FALSE)
    return kept[0] if len(kept) == 1 else Or(kept)


def _values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | set | frozenset) else [value]


def _names(where: Filter | None) -> Iterable[str]:
    if where is None:
        return
    if isinstance(where, Condition):
        yield where.field
        return
    for item in where.items:
        yield from _names(item)


def rewrite(query: Query, view: Temporals) -> Query | None:
    """``query`` asked of the declared fields instead of the temporal ones; None: no row
    can match (a condition on registreringTil that null does not meet)."""
    named = view.names
    asks = (
        bool(query.fields & named)
        or any(k.field in named for k in query.order)
        or any(n in named for n in _names(query.where))
    )
    if not asks:
        return query
    where = query.where
    if where is not None:
        where = _simplify(where, view)
        if where == _FALSE:
            return None
        if where == _TRUE:
            where = None
    order = tuple(
        SortKey(view.reads[k.field], k.descending) if k.field in view.reads else k
        for k in query.order
        if k.field != REGISTERED_TO  # the same (null) for every row now
    )
    fields = (query.fields - named) | {
        view.reads[n] for n in query.fields & named if n in view.reads
    }
    return dataclasses.replace(query, where=where, order=order, fields=frozenset(fields))


def filled(rows: list[Row], view: Temporals) -> list[Row]:
    """``rows`` with the temporal fields (as they stand now: registreringTil null), each a
    new dict (rows may be kept by a cache); those a source already gave (answering at an
    instant from its history) as they are."""
    reads = view.reads
    out = []
    for row in rows:
        if REGISTERED_FROM in row and REGISTERED_TO in row:
            out.append(row)
            continue
        row = dict(row)
        for name, source in reads.items():
            row[name] = view.instant(row.get(source))
        if REGISTERED_FROM in reads:
            row[REGISTERED_TO] = None
        out.append(row)
    return out
