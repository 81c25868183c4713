"""Demand control on FT: measurement linear in the document, fragments summarised once,
``@skip``/``@include`` with variables on both execution paths, ``extensions.cost``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.graphql.limits import LimitSettings
from resolvers.odata.replica.server import ODataReplica
from tests.gateway.test_measure import doubling
from tests.resolvers.odata import raw
from tests.support import gateway_client, register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["one-pass", "field-by-field"])
async def client(
    request: pytest.FixtureRequest, odata_replica: ODataReplica
) -> AsyncIterator[httpx.AsyncClient]:
    with register_subset("FT") as registers:
        async with gateway_client(
            registers,
            {"FT": {"url": odata_replica.url}},
            rate_limit=None,
            fast_path=request.param == "one-pass",
        ) as opened:
            yield opened


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = (await client.post("/graphql", json=body)).json()
    return answer


def first_votes(count: int) -> list[dict[str, Any]]:
    """The first ``count`` FT_Stemme rows by id, read straight from the recording."""
    return raw.stemme()[:count]


DIRECTIVES = """query ($with: Boolean!, $without: Boolean!) {
  FT_Stemme(first: 3) { nodes { id typeid @include(if: $with)
    ... on FT_Stemme @skip(if: $without) { aktoerid } } } }"""


@pytest.mark.parametrize(("with_", "without"), [(True, True), (False, False), (True, False)])
async def test_skip_and_include_with_variables(
    client: httpx.AsyncClient, with_: bool, without: bool
) -> None:
    body = await post(
        client, {"query": DIRECTIVES, "variables": {"with": with_, "without": without}}
    )
    assert "errors" not in body, body
    nodes = body["data"]["FT_Stemme"]["nodes"]
    expected = first_votes(3)
    assert [n["id"] for n in nodes] == [r["id"] for r in expected]
    for node, row in zip(nodes, expected, strict=True):
        assert ("typeid" in node) is with_
        if with_:
            assert node["typeid"] == row["typeid"]
        assert ("aktoerid" in node) is (not without)


async def test_fragments_spread_twice_side_by_side_are_collected_once(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    document = doubling(40, nested=False)
    body = await post(client, {"query": document, "extensions": {"cost": True}})
    assert "errors" not in body, body
    assert body["data"]["FT_Stemme"]["nodes"] == [{"id": first_votes(1)[0]["id"]}]


async def test_a_document_expanding_past_the_limits_is_refused_before_any_request(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    odata_replica.log.clear()
    body = await post(client, {"query": doubling(12, nested=True)})
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["limit"] in ("depth", "fields", "nesting")
    assert odata_replica.log == []


async def test_cost_is_reported_only_when_asked(client: httpx.AsyncClient) -> None:
    query = "{ FT_Stemme(first: 5) { totalCount nodes { id typeid } } }"
    plain = await post(client, {"query": query})
    assert "cost" not in plain.get("extensions", {})
    asked = await post(client, {"query": query, "extensions": {"cost": True}})
    cost = asked["extensions"]["cost"]
    assert cost["actual"] == 5 * 2  # five rows, two fields each
    assert cost["budget"] == 50_000
    assert cost["estimated"] >= cost["actual"]
    assert asked["data"] == plain["data"]


async def test_an_in_list_over_the_upstream_budget_is_refused_before_any_request(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    query = "query($ids: [Int!]) { FT_Stemme(where: {id: {in: $ids}}) { nodes { id } } }"
    odata_replica.log.clear()
    # 20,000 ids: refused for the variables' size, before they are even coerced.
    body = await post(client, {"query": query, "variables": {"ids": list(range(20_000))}})
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["limit"] == "variableValues"
    assert error["extensions"]["allowed"] == LimitSettings().max_variable_values
    assert odata_replica.log == []
    # 9,000 ids: under both limits, answered; the chunks it took are reported.
    ids = [row["id"] for row in raw.stemme()[:9_000]]
    odata_replica.log.clear()
    body = await post(
        client, {"query": query, "variables": {"ids": ids}, "extensions": {"cost": True}}
    )
    assert "errors" not in body, body
    assert [n["id"] for n in body["data"]["FT_Stemme"]["nodes"]] == sorted(ids)[:100]
    made = body["extensions"]["cost"]["upstreamRequests"]
    assert made == len(odata_replica.log) <= LimitSettings().upstream_budget(0)
    # A list the budget allows is answered, and the requests it cost are reported.
    ids = [row["id"] for row in raw.stemme()[:300]]
    odata_replica.log.clear()
    body = await post(
        client, {"query": query, "variables": {"ids": ids}, "extensions": {"cost": True}}
    )
    assert "errors" not in body, body
    assert sorted(n["id"] for n in body["data"]["FT_Stemme"]["nodes"]) == sorted(ids[:100])
    assert body["extensions"]["cost"]["upstreamRequests"] == len(odata_replica.log) > 0
