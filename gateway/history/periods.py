"""Rows of a period and every version: what delta and temporal downloads read.

A download of the changes of a period (the DLS's ``FileDownloadType`` 2, a delta) or of every
version kept (``TypeOfData`` 2, temporal, and 3, bitemporal) is a query whose options carry
:data:`HISTORY_ROWS` (a :class:`Asked`). A source that records row versions answers it from
the history store: each row with its version's ``registreringFra``/``registreringTil`` and
``virkningFra``/``virkningTil`` (:data:`PERIOD_FIELDS`), and in a delta its ``action`` (``i``
inserted, ``u`` updated, ``d`` deleted in the period; the row as it stood at the period's end,
a deleted one as last known).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.history.store import RowPeriod
from gateway.model.datamodel import Field, ScalarType

__all__ = ["ACTION_FIELD", "HISTORY_ROWS", "PERIOD_FIELDS", "Asked", "columns", "with_period"]

# The query option asking for a period's changes or every version.
HISTORY_ROWS = "historyRows"

PERIOD_FIELDS: tuple[Field, ...] = (
    Field("registreringFra", "registreringFra", ScalarType.DATETIME, False),
    Field("registreringTil", "registreringTil", ScalarType.DATETIME),
    Field("virkningFra", "virkningFra", ScalarType.DATETIME),
    Field("virkningTil", "virkningTil", ScalarType.DATETIME),
)
ACTION_FIELD = Field("action", "action", ScalarType.STRING, False, "i, u or d")


@dataclass(frozen=True, slots=True)
class Asked:
    """The changes in [since, until) (a delta), or every version (``since`` None)."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None

    @property
    def delta(self) -> bool:
        return self.since is not None


def columns(asked: Asked) -> tuple[Field, ...]:
    """The columns a download of ``asked`` adds to the entity's."""
    return (*PERIOD_FIELDS, ACTION_FIELD) if asked.delta else PERIOD_FIELDS


def with_period(
    row: Mapping[str, Any], period: RowPeriod, action: str | None = None
) -> dict[str, Any]:
    """``row`` with its version's period (and the delta's action)."""
    out = dict(row)
    out["registreringFra"] = period.registered_from
    out["registreringTil"] = period.registered_to
    out["virkningFra"] = period.valid_from
    out["virkningTil"] = period.valid_to
    if action is not None:
        out["action"] = action
    return out
