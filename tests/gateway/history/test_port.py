"""The port's wrapper: a source that keeps no history, or records no rows, says so before any
upstream request; the events of a register need the history store."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.history.events import events_entity
from gateway.history.periods import HISTORY_ROWS, Asked
from gateway.model.datamodel import Datamodel, Entity, Field, Register, ScalarType
from gateway.model.errors import HistoryUnavailableError
from gateway.model.query import Page, Query
from gateway.sources.cache import Cache
from gateway.sources.port import REGISTRATION, Services, Source

pytestmark = pytest.mark.asyncio

ENTITY = Entity("X", "Thing", "X_Thing", (Field("id", "id", ScalarType.INT),), ("id",))
REGISTER = Register("X", "rc09999", Datamodel({"Thing": ENTITY}), {"1": ()}, 0, {}, {}, {})


class Plain(Source):
    kind = "plain"
    asked = 0

    async def fetch(self, query: Query) -> Page:
        self.asked += 1
        return Page([{"id": 1}], False)


def source() -> Plain:
    return Plain(REGISTER, {}, Services(cache=Cache()))


async def test_an_instant_of_a_register_without_history_is_refused() -> None:
    plain = source()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(HistoryUnavailableError, match="keeps no history"):
        await plain.fetch(Query(ENTITY, options={REGISTRATION: now}))
    with pytest.raises(HistoryUnavailableError, match="records no row versions"):
        await plain.fetch(Query(ENTITY, options={HISTORY_ROWS: Asked(now)}))
    assert plain.asked == 0
    assert (await plain.fetch(Query(ENTITY))).rows == [{"id": 1}]


async def test_events_need_the_history_store() -> None:
    events = events_entity("X")
    assert events is not None
    with pytest.raises(HistoryUnavailableError, match="no history store"):
        await source().fetch(Query(events))
