"""``virkningstid``: the rows valid in the world at an instant, as a filter.

An entity whose validity the register's bitemporality annex declares (``ValidFrom``,
``ValidTo``; :class:`gateway.model.datamodel.Temporal`) is valid at ``t`` when its
``ValidFrom`` is null or not after ``t`` and its ``ValidTo`` is null or after ``t`` (the
interval is half-open, as the Datafordeler's). The instant is compared on the register's
wall clock (its ``timeZone`` option) when its values carry no offset, as the upstream
compares them. An entity without declared validity is not narrowed (:func:`valid_at` gives
None and the caller is told so).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from gateway.model.datamodel import Entity, Register, ScalarType
from gateway.model.query import And, Condition, Filter, Or

__all__ = ["VALIDITY", "utc_instant", "valid_at", "validity_notice"]

# The argument (and query option) of the instant of validity.
VALIDITY = "virkningstid"


def utc_instant(value: Any, zone: dt.tzinfo = dt.UTC) -> dt.datetime | None:
    """A date-time as served (a datetime, a date, or ISO 8601 text) as an aware UTC datetime;
    a value without an offset is read on the wall clock of ``zone``. None for None;
    ValueError for text that is not ISO 8601."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.UTC)


def valid_at(register: Register, entity: Entity, instant: dt.datetime) -> Filter | None:
    """The rows of ``entity`` valid at ``instant`` (None: no validity declared)."""
    declared = register.temporal.get(entity.name)
    if declared is None or not (declared.valid_from or declared.valid_to):
        return None
    moment = instant if instant.tzinfo is not None else instant.replace(tzinfo=dt.UTC)
    zone = register.zone
    wall: dt.datetime = moment.astimezone(zone).replace(tzinfo=None) if zone is not None else moment
    parts: list[Filter] = []
    for source, op in ((declared.valid_from, "lte"), (declared.valid_to, "gt")):
        if not source:
            continue
        field = entity.by_source[source]
        value: dt.date | dt.datetime = wall.date() if field.type is ScalarType.DATE else wall
        parts.append(Or((Condition(field.name, "eq", None), Condition(field.name, op, value))))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def validity_notice(register: Register, entity: Entity) -> dict[str, str]:
    """The notice of a ``virkningstid`` that cannot narrow ``entity``."""
    return {
        "code": "VALIDITY_UNDECLARED",
        "register": register.name,
        "entity": entity.name,
        "message": f"{register.name} {entity.name}: no validity is declared for it (its "
        "bitemporality annex), so virkningstid does not narrow its rows",
    }
