"""Demand control on CZ: Prague's council by district and party is answered at level 0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from resolvers.volby_xml.replica.server import VolbyReplica
from tests.resolvers.volby_xml.conftest import DATA
from tests.resolvers.volby_xml.raw import council, party_votes
from tests.support import gateway_client, register_subset

PRAGUE = """{ CZ_OBEC(where: {volby: {eq: "kv2014"}, KODZASTUP: {eq: "554782"}}) {
  nodes { OBVOD { nodes { CIS_OBVODU
    VOLEBNI_STRANA { nodes { POR_STR_HLAS_LIST VSTRANA HLASY } } } } } } }"""


@pytest.fixture
async def client(volby_replica: VolbyReplica) -> AsyncIterator[httpx.AsyncClient]:
    with register_subset("CZ", "CZPREZ") as root:
        async with gateway_client(root, volby_replica.overrides, rate_limit=None) as gateway:
            yield gateway


async def test_prague_by_district_and_party_is_answered_at_level_0(
    client: httpx.AsyncClient,
) -> None:
    expected = party_votes(council(DATA / "kv2014" / "CZ0100.xml", "554782"))
    response = await client.post("/graphql", json={"query": PRAGUE, "extensions": {"cost": True}})
    body = response.json()
    assert "errors" not in body, body
    (prague,) = body["data"]["CZ_OBEC"]["nodes"]
    got = {
        (district["CIS_OBVODU"], party["POR_STR_HLAS_LIST"]): party["HLASY"]
        for district in prague["OBVOD"]["nodes"]
        for party in district["VOLEBNI_STRANA"]["nodes"]
    }
    assert got == expected
    cost = body["extensions"]["cost"]
    # One council, its districts (2 fields), their parties (3 fields): what was really read.
    districts = {district for district, _ in expected}
    assert cost["actual"] == 1 + 2 * len(districts) + 3 * len(expected)
    # The key pins one council: the estimate does not multiply page sizes.
    assert cost["estimated"] < 1_000
