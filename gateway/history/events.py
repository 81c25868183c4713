"""``{REG}_Events``: the register's events (hændelser), as the Datafordeler gives them.

Every register whose kind records row versions (:attr:`gateway.sources.port.Source.
records_rows`: FT) or keeps file versions that hold objects (``describes_files``: VALG, ČSÚ,
DE; :mod:`gateway.history.objects`) gets one more entity, ``Events``
(:attr:`gateway.model.datamodel.Register.events`: beside its datamodel, not in it, so that
the datamodel exported or validated stays the register's own), with the Datafordeler's event
fields: the
event's id, the entity it concerns, the action (``i`` inserted, ``u`` updated, ``d`` deleted),
the object's id, the version's registration and validity interval, and when the gateway
wrote the event. Its rows come from the history store (:mod:`gateway.history.store`); they
are filtered, ordered and windowed like any entity's, and each caller sees only the events
of the entities its level may read (:data:`VISIBLE`, set by the executor per request).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from gateway.history.store import EventRecord, HistoryStore
from gateway.model.datamodel import Datamodel, Entity, Field, ScalarType
from gateway.model.filters import apply_in_memory
from gateway.model.naming import type_name
from gateway.model.query import Condition, Page, Query, Row, conjuncts

__all__ = ["EVENTS", "EVENTS_MARK", "VISIBLE", "answer", "events_entity", "is_events"]

EVENTS = "Events"
# The query option naming the entities whose events the caller may read.
VISIBLE = "eventEntities"
# The ``eaid`` that marks the Events entity (no datamodel entity has it).
EVENTS_MARK = "dls-gateway:events"

_FIELDS: tuple[tuple[str, ScalarType, bool, str], ...] = (
    ("eventId", ScalarType.LONG, False, "The event's number (ascending in the order written)."),
    ("entityName", ScalarType.STRING, False, "The entity whose object the event concerns."),
    ("action", ScalarType.STRING, False, "i: inserted, u: updated, d: deleted."),
    ("objectId", ScalarType.STRING, False, "The object's id (its key as text)."),
    ("registreringFra", ScalarType.DATETIME, False, "When the version was registered."),
    (
        "registreringTil",
        ScalarType.DATETIME,
        True,
        "When it stopped being registered (a later version or its deletion).",
    ),
    ("virkningFra", ScalarType.DATETIME, True, "From when the version is valid, if declared."),
    ("virkningTil", ScalarType.DATETIME, True, "To when the version is valid, if declared."),
    ("opdateret", ScalarType.DATETIME, False, "When the gateway wrote the event."),
)


def events_entity(register: str, model: Datamodel | None = None) -> Entity | None:
    """The ``Events`` entity of ``register`` (None: ``model`` has an entity of that name)."""
    if model is not None and any(
        e.name == EVENTS or e.graphql_name == type_name(register, EVENTS)
        for e in model.entities.values()
    ):
        return None
    fields = tuple(
        Field(name, name, kind, nullable=nullable, description=text)
        for name, kind, nullable, text in _FIELDS
    )
    return Entity(
        register,
        EVENTS,
        type_name(register, EVENTS),
        fields,
        ("eventId",),
        description=f"The events of {register}: rows inserted, updated and deleted upstream, "
        "as the gateway recorded them.",
        eaid=EVENTS_MARK,
    )


def is_events(entity: Entity) -> bool:
    """Whether ``entity`` is a register's ``Events`` entity (not one of its own)."""
    return entity.eaid == EVENTS_MARK


def _row(event: EventRecord) -> Row:
    return {
        "eventId": event.id,
        "entityName": event.entity,
        "action": event.action,
        "objectId": event.key,
        "registreringFra": event.registered_from,
        "registreringTil": event.registered_to,
        "virkningFra": event.valid_from,
        "virkningTil": event.valid_to,
        "opdateret": event.updated_at,
    }


async def answer(history: HistoryStore, register: str, query: Query) -> Page:
    """The events ``query`` asks for, of the entities the caller may read."""
    visible: Collection[str] | None = query.options.get(VISIBLE) if query.options else None
    if visible is None:
        visible = ()  # not narrowed by the executor: nothing is shown
    # What the store can narrow itself (the filter still applies in full below): an
    # ``entityName`` asked for, and events after an ``eventId``.
    entities, after = set(visible), 0
    for part in conjuncts(query.where):
        if not isinstance(part, Condition):
            continue
        if part.field == "entityName" and part.op in ("eq", "in"):
            values = part.value if part.op == "in" else [part.value]
            entities &= {v for v in values if isinstance(v, str)}
        elif part.field == "eventId" and part.op in ("gt", "gte") and isinstance(part.value, int):
            after = max(after, part.value - (part.op == "gte"))
    records = await history.events(register, entities, after)
    rows: list[dict[str, Any]] = [_row(r) for r in records]
    return apply_in_memory(rows, query)
