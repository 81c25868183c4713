"""The adapter's memo of request URLs: a query seen before builds no URL, sends the same
request and answers the same; queries that differ in anything never share an entry.

Over the FT replica on a real socket; expected rows are computed from the recorded files.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.model.datamodel import Entity, Field, ScalarType
from gateway.model.query import And, Condition, Or, Query, SortKey
from resolvers.odata import adapter
from resolvers.odata.adapter import _canonical
from resolvers.odata.replica.server import ODataReplica
from tests.resolvers.odata import raw

pytestmark = pytest.mark.asyncio(loop_scope="module")

UNKEPT = {"cache": False}  # every fetch goes to the upstream, so each request is logged


def _source(client: httpx.AsyncClient) -> Any:
    return client.app.state.gateway.sources["FT"]  # type: ignore[attr-defined]


def _targets(replica: ODataReplica) -> list[str]:
    return [r.target for r in replica.log.where(test=lambda r: "$metadata" not in r.path)]


def _planned_url(source: Any, query: Query) -> str:
    """The first request URL as the planner builds it (no memo involved)."""
    plan = source._plan(query)
    assert not plan.residual
    assert plan.split is None
    return str(source._url(query, source._params(query, plan.pushed)))


def _stemme_queries(source: Any) -> list[Query]:
    entity = source.register.datamodel.entities["Stemme"]
    by_id = (SortKey("id"),)
    newest = (SortKey("afstemningid", True), SortKey("id"))
    return [
        Query(entity, Condition("afstemningid", "gte", 100), by_id, 0, 10, options=UNKEPT),
        Query(entity, Condition("afstemningid", "gte", 100), by_id, 5, 10, options=UNKEPT),
        Query(entity, Condition("afstemningid", "gte", 100), newest, 0, 7, options=UNKEPT),
        Query(
            entity,
            And((Condition("afstemningid", "lt", 50), Condition("typeid", "eq", 1))),
            by_id,
            3,
            20,
            frozenset({"id", "afstemningid"}),
            True,
            UNKEPT,
        ),
        Query(entity, Condition("id", "in", (5, 3, 9, 3)), by_id, 0, None, options=UNKEPT),
    ]


def _expected(query: Query) -> list[int]:
    """The ids ``query`` selects, from the recorded file."""
    rows = raw.stemme()

    def holds(row: dict[str, Any], where: Any) -> bool:
        if isinstance(where, And):
            return all(holds(row, item) for item in where.items)
        value = row[where.field]
        if where.op == "gte":
            return bool(value >= where.value)
        if where.op == "lt":
            return bool(value < where.value)
        if where.op == "eq":
            return bool(value == where.value)
        assert where.op == "in"
        return value in where.value

    chosen = [r for r in rows if holds(r, query.where)]
    for key in reversed(query.order):
        chosen.sort(key=lambda r, k=key: r[k.field], reverse=key.descending)
    end = None if query.limit is None else query.offset + query.limit
    return [r["id"] for r in chosen[query.offset : end]]


async def test_a_repeated_query_sends_the_same_request_and_answers_the_same(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    source = _source(client)
    for query in _stemme_queries(source):
        key = _canonical(query)
        assert key is not None
        source._windows.pop(key, None)
        odata_replica.log.clear()
        first = await source.fetch(query)
        sent_first = _targets(odata_replica)
        # Remembered: the URL the planner builds, and the next fetch takes it from the memo.
        assert source._windows[key][0] == _planned_url(source, query)
        odata_replica.log.clear()
        again = await source.fetch(query)
        assert _targets(odata_replica) == sent_first
        assert len(sent_first) == 1
        assert [r["id"] for r in first.rows] == _expected(query)
        assert (again.rows, again.has_more, again.total) == (
            first.rows,
            first.has_more,
            first.total,
        )
        if query.count:
            assert first.total == len(_expected(Query(query.entity, query.where, query.order)))


async def test_the_cache_option_is_read_from_each_query_not_remembered(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    source = _source(client)
    entity = source.register.datamodel.entities["Stemme"]
    kept = Query(entity, Condition("afstemningid", "eq", 77), (SortKey("id"),), 0, 5)
    unkept = Query(kept.entity, kept.where, kept.order, 0, 5, options=UNKEPT)
    assert _canonical(kept) == _canonical(unkept)  # the same request URL
    odata_replica.log.clear()
    await source.fetch(kept)
    await source.fetch(kept)  # from the cache
    assert len(_targets(odata_replica)) == 1
    await source.fetch(unkept)  # the same remembered URL, but not kept: sent again
    await source.fetch(unkept)
    assert len(_targets(odata_replica)) == 3
    assert len(set(_targets(odata_replica))) == 1


async def test_queries_differing_in_any_part_never_share_a_key() -> None:
    def entity(name: str) -> Entity:
        fields = tuple(Field(n, n, ScalarType.STRING) for n in ("id", "a", "b"))
        return Entity("R", name, name, fields, ("id",))

    one, other = entity("E"), entity("F")
    at = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    on_cet = at.astimezone(dt.timezone(dt.timedelta(hours=2)))
    # Equal in Python (one hash), yet different literals or values: 1, 1.0 and True;
    # 0.0 and -0.0; one instant on two clocks.
    conditions = [
        Condition("a", "eq", 1),
        Condition("a", "eq", 1.0),
        Condition("a", "eq", True),
        Condition("a", "eq", "1"),
        Condition("a", "eq", 0.0),
        Condition("a", "eq", -0.0),
        Condition("a", "eq", None),
        Condition("a", "eq", at),
        Condition("a", "eq", on_cet),
        Condition("a", "eq", at.replace(tzinfo=None)),
        Condition("a", "eq", at.date()),
        Condition("a", "neq", 1),
        Condition("b", "eq", 1),
        Condition("a", "in", (1, 2)),
        Condition("a", "in", (2, 1)),
        Condition("a", "in", [1, 2]),
        Condition("a", "in", (1, True)),
        And((Condition("a", "eq", 1), Condition("b", "eq", 2))),
        Or((Condition("a", "eq", 1), Condition("b", "eq", 2))),
        And((Condition("b", "eq", 2), Condition("a", "eq", 1))),
    ]
    base = Query(one, None, (SortKey("id"),), 0, 10)
    queries = [base] + [Query(one, c, base.order, 0, 10) for c in conditions]
    queries += [
        Query(other, None, base.order, 0, 10),
        Query(one, None, (SortKey("id", True),), 0, 10),
        Query(one, None, (SortKey("a"), SortKey("id")), 0, 10),
        Query(one, None, base.order, 1, 10),
        Query(one, None, base.order, True, 10),  # type: ignore[arg-type]  # written "True"
        Query(one, None, base.order, 0, 11),
        Query(one, None, base.order, 0, None),
        Query(one, None, base.order, 0, 0),
        Query(one, None, base.order, 0, 10, frozenset({"a"})),
        Query(one, None, base.order, 0, 10, frozenset({"a", "b"})),
        Query(one, None, base.order, 0, 10, frozenset(), True),
    ]
    keys = [_canonical(q) for q in queries]
    assert None not in keys
    assert len(set(keys)) == len(keys)
    # Equal queries (built apart) share one.
    assert _canonical(Query(one, Condition("a", "in", (1, 2)), base.order, 0, 10)) == keys[14]


async def test_a_value_of_no_canonical_form_is_planned_every_time(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    source = _source(client)
    entity = source.register.datamodel.entities["Stemme"]
    query = Query(entity, Condition("afstemningid", "eq", Decimal(77)), (SortKey("id"),), 0, 5)
    assert _canonical(query) is None
    before = dict(source._windows)
    page = await source.fetch(query)
    as_int = Query(entity, Condition("afstemningid", "eq", 77), (SortKey("id"),), 0, 5)
    assert [r["id"] for r in page.rows] == _expected(as_int)
    assert source._windows == before


async def test_a_query_the_gateway_finishes_is_not_remembered(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    source = _source(client)
    entity = source.register.datamodel.entities["Stemme"]
    ids = tuple(r["id"] for r in raw.stemme()[:600])
    query = Query(entity, Condition("id", "in", ids), (SortKey("id"),), 0, 50, options=UNKEPT)
    odata_replica.log.clear()
    for _ in range(2):
        page = await source.fetch(query)
        assert [r["id"] for r in page.rows] == _expected(query)
    assert len(_targets(odata_replica)) > 2  # sent in chunks, each time
    assert _canonical(query) not in source._windows


async def test_the_memo_is_bounded_and_drops_the_oldest_first(
    client: httpx.AsyncClient, odata_replica: ODataReplica, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(client)
    entity = source.register.datamodel.entities["Stemme"]
    monkeypatch.setattr(adapter, "_WINDOWS_KEPT", 3)
    source._windows.clear()
    queries = [
        Query(entity, Condition("afstemningid", "eq", n), (SortKey("id"),), 0, 2, options=UNKEPT)
        for n in (11, 12, 13, 14, 15)
    ]
    for query in queries:
        await source.fetch(query)
        assert len(source._windows) <= 3
    assert list(source._windows) == [_canonical(q) for q in queries[2:]]
    for query in queries:  # the dropped ones are planned again and answer the same
        page = await source.fetch(query)
        assert [r["id"] for r in page.rows] == _expected(query)
