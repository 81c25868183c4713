"""Demand control on DE: a query whose real size is hundreds of thousands of field resolutions
is stopped by the meter; once the fan-out is known the same query is refused up front."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.http.auth import ApiKey, AuthSettings, hash_key
from resolvers.wahldaten_csv.replica.server import WahldatenDemo
from tests.support import gateway_client, register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY3 = "de-level-three-key-0123456789abcdef"
ALL_VOTES = """{ DE_Wahlergebnis(first: 1000) { nodes { bezirk_id
  Stimmen(first: 1000) { nodes { anzahl spalte position } } } } }"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(module_wahldaten_replica: WahldatenDemo) -> AsyncIterator[httpx.AsyncClient]:
    auth = AuthSettings(keys=(ApiKey("three", 3, hash_key(KEY3)),))
    with register_subset("DE") as registers:
        async with gateway_client(
            registers, module_wahldaten_replica.overrides, rate_limit=None, auth=auth
        ) as opened:
            yield opened


async def post(client: httpx.AsyncClient, query: str, **headers: str) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "extensions": {"cost": True}}, headers=headers
    )
    body: dict[str, Any] = response.json()
    return body


def file_requests(module_wahldaten_replica: WahldatenDemo) -> int:
    return len(module_wahldaten_replica.replica.log)


async def test_the_meter_stops_a_huge_query_then_the_estimate_refuses_it(
    client: httpx.AsyncClient, module_wahldaten_replica: WahldatenDemo
) -> None:
    before = file_requests(module_wahldaten_replica)
    body = await post(client, ALL_VOTES)
    (error,) = body["errors"]
    extensions = error["extensions"]
    assert extensions["code"] == "QUERY_TOO_COMPLEX"
    assert extensions["stage"] == "execution"
    assert extensions["allowed"] == 50_000 < extensions["measured"]
    assert extensions["field"] == "DE_Wahlergebnis.Stimmen"
    assert "lower `first` on DE_Wahlergebnis.Stimmen" in error["message"]
    assert body.get("data") is None
    # The listing and the files of the two entities, each once: nothing beyond the level
    # at which the budget was crossed.
    assert file_requests(module_wahldaten_replica) - before <= 2 * len(
        module_wahldaten_replica.replica.files
    )

    # Now the fan-out is known: the same document is refused before any upstream request.
    before = file_requests(module_wahldaten_replica)
    again = await post(client, ALL_VOTES)
    (error,) = again["errors"]
    assert error["extensions"]["stage"] == "estimate"
    assert error["extensions"]["field"] == "DE_Wahlergebnis.Stimmen"
    assert error["extensions"]["measured"] > 50_000
    assert file_requests(module_wahldaten_replica) == before


async def test_a_bounded_query_is_answered_with_its_real_cost(
    client: httpx.AsyncClient,
) -> None:
    small = """{ DE_Wahlergebnis(first: 20) { nodes { bezirk_id
      Stimmen(first: 1000) { totalCount nodes { anzahl } } } } }"""
    body = await post(client, small, **{"X-API-Key": KEY3})
    assert "errors" not in body, body.get("errors")
    nodes = body["data"]["DE_Wahlergebnis"]["nodes"]
    assert len(nodes) == 20
    votes = sum(n["Stimmen"]["totalCount"] for n in nodes)
    assert votes == sum(len(n["Stimmen"]["nodes"]) for n in nodes)
    cost = body["extensions"]["cost"]
    # actual: the 20 results (2 fields each) and every vote row of theirs (1 field each).
    assert cost["actual"] == 2 * len(nodes) + votes
    assert cost["budget"] == 500_000
