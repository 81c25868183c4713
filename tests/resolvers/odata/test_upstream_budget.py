"""The per-query budget of upstream requests, over the FT replica on a real socket.

The request handler opens the budget's scope per request; here the tests open it around the
request themselves, with an allowance of 64 (tighter than the level's own).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.model.query import Condition, Query
from gateway.sources import upstream_budget
from resolvers.odata.replica.server import ODataReplica
from tests.resolvers.odata import raw
from tests.support import graphql

pytestmark = pytest.mark.asyncio(loop_scope="module")

ANONYMOUS = 64


def _source(client: httpx.AsyncClient) -> Any:
    return client.app.state.gateway.sources["FT"]  # type: ignore[attr-defined]


async def _within(
    client: httpx.AsyncClient, limit: int | None, query: str, **variables: Any
) -> tuple[dict[str, Any], int]:
    with upstream_budget.scope(limit) as budget:
        body = await graphql(client, query, variables or None)
    return body, budget.spent


def _refusal(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("errors"), body
    error: dict[str, Any] = body["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", error
    return error


async def test_an_in_list_of_9000_ids_is_refused_before_any_request(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    body, spent = await _within(
        client,
        ANONYMOUS,
        "query($ids: [Int]) { FT_Stemme(first: 100, where: {id: {in: $ids}}) { nodes { id } } }",
        ids=list(range(1, 9_001)),
    )
    error = _refusal(body)
    extensions = error["extensions"]
    assert extensions["limit"] == "upstreamRequests"
    assert extensions["allowed"] == ANONYMOUS
    assert extensions["measured"] > ANONYMOUS
    assert "id.in" in extensions["what"]
    for advice in ("`in`", "`first`", "cursor", "export", "level"):
        assert advice in error["message"]
    assert odata_replica.log == []
    assert spent == 0


async def test_a_modest_query_is_answered_and_its_requests_counted(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    body, spent = await _within(
        client,
        ANONYMOUS,
        "{ FT_Stemme(first: 250) { nodes { id Aktoer { navn } } } }",
    )
    assert "errors" not in body, body
    nodes = body["data"]["FT_Stemme"]["nodes"]
    assert [n["id"] for n in nodes] == [r["id"] for r in raw.stemme()[:250]]
    assert [n["Aktoer"]["navn"] for n in nodes] == [
        raw.aktoer()[r["aktoerid"]]["navn"] for r in raw.stemme()[:250]
    ]
    # Three pages of votes and the members in one request: spent is what was sent.
    assert spent == odata_replica.data_requests() == 4


async def test_a_window_needing_more_pages_than_allowed_is_refused_before_any_request(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    body, _ = await _within(client, 5, "{ FT_Stemme(first: 1000) { nodes { id } } }")
    error = _refusal(body)
    assert error["extensions"]["measured"] == 10  # ten pages of 100
    assert "first: 1000" in error["extensions"]["what"]
    assert odata_replica.log == []


async def test_cache_hits_and_coalesced_requests_do_not_spend(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    query = "{ FT_Afstemning(first: 5) { nodes { id } } }"
    body, spent = await _within(client, ANONYMOUS, query)
    assert "errors" not in body
    assert spent == 1
    body, spent = await _within(client, 1, query)
    assert "errors" not in body
    assert spent == 0
    await _source(client).services.cache.clear()
    odata_replica.log.clear()
    odata_replica.latency = 0.2
    with upstream_budget.scope(ANONYMOUS) as budget:
        answers = await asyncio.gather(*(graphql(client, query) for _ in range(4)))
    assert all(a == answers[0] and "errors" not in a for a in answers)
    assert odata_replica.data_requests() == 1
    assert budget.spent == budget.made == 1


async def test_relation_chunks_are_counted(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    # 1,000 votes are on 250 ballots: the relation asks for them in one long "in" list,
    # sent in chunks.
    query = "{ FT_Stemme(first: 1000) { nodes { id Afstemning { nummer } } } }"
    body, spent = await _within(client, None, query)
    assert "errors" not in body, body
    ballots = {int(r["id"]): r for r in raw.afstemning()}
    assert [n["Afstemning"]["nummer"] for n in body["data"]["FT_Stemme"]["nodes"]] == [
        int(ballots[r["afstemningid"]]["nummer"]) for r in raw.stemme()[:1000]
    ]
    ballot_requests = sum(1 for r in odata_replica.log if r.path.endswith("/Afstemning"))
    assert ballot_requests >= 2
    assert spent == odata_replica.data_requests() == 10 + ballot_requests
    # Room for the votes' ten pages but not for the ballots' chunks: refused before any of
    # the chunks is sent.
    await _source(client).services.cache.clear()
    odata_replica.log.clear()
    body, spent = await _within(client, 10 + ballot_requests - 1, query)
    error = _refusal(body)
    assert "afstemningid" not in error["extensions"]["what"]
    assert "id.in" in error["extensions"]["what"]
    assert error["extensions"]["measured"] == 10 + ballot_requests
    assert odata_replica.data_requests() == 10
    assert not any(r.path.endswith("/Afstemning") for r in odata_replica.log)


async def test_chunks_of_an_in_list_are_spent_before_the_first_request(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    source = _source(client)
    entity = source.register.datamodel.entities["Stemme"]
    ids = tuple(r["id"] for r in raw.stemme()[::7][:3000])
    query = Query(entity, Condition("id", "in", ids))
    chunks = len(source._plan(query).chunks)
    assert chunks > 1
    with upstream_budget.scope(chunks - 1), pytest.raises(upstream_budget.UpstreamBudgetError):
        await source.fetch(query)
    assert odata_replica.log == []
    with upstream_budget.scope(None) as budget:
        page = await source.fetch(query)
    assert sorted(r["id"] for r in page.rows) == sorted(ids)
    assert budget.spent == budget.made == odata_replica.data_requests() >= chunks


async def test_an_unbounded_scan_stops_before_the_request_over_the_budget(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    # Every vote (the way a relation or an export asks): pages follow until the budget ends.
    source = _source(client)
    scan = Query(source.register.datamodel.entities["Stemme"], None, limit=None)
    with upstream_budget.scope(3) as budget, pytest.raises(upstream_budget.UpstreamBudgetError):
        await source.fetch(scan)
    assert budget.made == odata_replica.data_requests() == 3


async def test_outside_a_scope_nothing_is_counted_or_refused() -> None:
    upstream_budget.spend(10**9, "anything")
    upstream_budget.draw("anything")
    assert upstream_budget.spent() == 0
    assert upstream_budget.current() is None


async def test_reservations_not_used_are_given_back_and_a_refusal_sticks() -> None:
    with upstream_budget.scope(5) as budget:
        with upstream_budget.account():
            upstream_budget.spend(4, "four pages")
            upstream_budget.draw("a page")  # one of the four
            assert (budget.spent, budget.made) == (4, 1)
        assert upstream_budget.spent() == 1  # three were answered from the cache
        with upstream_budget.account():
            upstream_budget.draw("unforeseen")
            upstream_budget.draw("unforeseen")
        assert (budget.spent, budget.made) == (3, 3)
        with pytest.raises(upstream_budget.UpstreamBudgetError) as refused:
            upstream_budget.spend(3, "three chunks")
        assert refused.value.extensions == {
            "code": "QUERY_TOO_COMPLEX",
            "limit": "upstreamRequests",
            "allowed": 5,
            "measured": 6,
            "what": "three chunks",
        }
        with pytest.raises(upstream_budget.UpstreamBudgetError) as again:
            upstream_budget.spend(1, "one more")
        assert again.value.extensions["what"] == "three chunks"
        assert budget.spent == 3
