"""Demand control on VALG: a district's parties and candidates are answered at level 0, and a
field denied on many rows is one error, not one per row."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from resolvers.odata.replica.server import ODataReplica
from resolvers.valg_sftp.replica.server import ValgReplica
from tests.resolvers.valg_sftp.rawdata import FV, RawArchive, released
from tests.support import gateway_client, graphql, register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")

DISTRICT = """{ VALG_Valgresultat(where: {AfstemningsomraadeDagiId: {eq: 702016},
    Resultatart: {eq: "Fintælling"}, Valgmappe: {eq: "folketingsvalg-135-24-03-2026"}}) {
  nodes { IndenforParti { nodes { PartiNavn Stemmer Kandidater { nodes { Stemmer } } } } } } }"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(
    module_valg_replica: ValgReplica, odata_replica: ODataReplica
) -> AsyncIterator[httpx.AsyncClient]:
    overrides = {**module_valg_replica.overrides, "FT": {"url": odata_replica.url}}
    with register_subset("VALG", "FT") as registers:
        async with gateway_client(registers, overrides, rate_limit=None) as running:
            yield running


def final_count(raw: RawArchive, district: int) -> dict[str, Any]:
    """The newest signed final-count file of one polling district, read from the archive."""
    best: tuple[str, dict[str, Any]] | None = None
    for name, data in raw.folder(f"{FV}/valgresultater"):
        if not data:
            continue
        doc = raw.doc(name)
        if doc["AfstemningsområdeDagiId"] != district or doc["Resultatart"] != "Fintælling":
            continue
        if best is None or released(doc) > released(best[1]):
            best = (name, doc)
    assert best is not None
    return best[1]


async def test_a_district_with_parties_and_candidates_is_answered_at_level_0(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    doc = final_count(raw, 702016)
    expected = sorted(
        (party["PartiNavn"], party["Stemmer"], sorted(c["Stemmer"] for c in party["Kandidater"]))
        for party in doc["IndenforParti"]
    )
    response = await client.post("/graphql", json={"query": DISTRICT, "extensions": {"cost": True}})
    body = response.json()
    assert "errors" not in body, body
    (result,) = body["data"]["VALG_Valgresultat"]["nodes"]
    got = sorted(
        (p["PartiNavn"], p["Stemmer"], sorted(c["Stemmer"] for c in p["Kandidater"]["nodes"]))
        for p in result["IndenforParti"]["nodes"]
    )
    assert got == expected
    cost = body["extensions"]["cost"]
    # The real cost: one result, its parties (3 fields each), their candidates (1 field each).
    candidates = sum(len(p["Kandidater"]) for p in doc["IndenforParti"])
    assert cost["actual"] == 1 + 3 * len(doc["IndenforParti"]) + candidates
    assert cost["estimated"] <= cost["budget"] == 50_000


async def test_a_field_denied_on_every_row_is_one_error_and_one_log_line(
    client: httpx.AsyncClient, raw: RawArchive, caplog: pytest.LogCaptureFixture
) -> None:
    query = f"""{{ VALG_Kandidat(first: 100, where: {{Valgmappe: {{eq: "{FV}"}},
        Storkreds: {{eq: "Bornholm"}}}}) {{ nodes {{ Navn Stilling }} }} }}"""
    with caplog.at_level(logging.INFO, logger="gateway.security"):
        body = await graphql(client, query)
    rows = body["data"]["VALG_Kandidat"]["nodes"]
    assert len(rows) > 1
    assert all(row["Stilling"] is None and row["Navn"] for row in rows)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["extensions"]["count"] == len(rows)
    assert error["path"] == ["VALG_Kandidat", "nodes", 0, "Stilling"]
    denials = [r for r in caplog.records if r.getMessage().startswith("denied caller=")]
    assert len(denials) == 1
    assert f"x{len(rows)}" in denials[0].getMessage()
