"""VALG over GraphQL: the gateway app against the SFTP replica (and FT for the cross join)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from gateway.http.auth import ApiKey, AuthSettings, hash_key
from resolvers.odata.replica.server import ODataReplica
from resolvers.valg_sftp.replica.server import ValgReplica
from tests.resolvers.valg_sftp.rawdata import FV, RawArchive, geografi, newest_by
from tests.support import gateway_client, graphql, register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = "valg-level-2-key-0123456789abcdef"
FT_AKTOER = Path(__file__).resolve().parents[3] / "data" / "ft" / "ft.oda.Aktør.sqlite.db"
BORNHOLM = f"{FV}/kandidat-data/kandidat-data-Folketingsvalg-4-Bornholm-150320261120.json"

RELATIONS = """query ($valg: String!) {
  VALG_Valgresultat(where: {AfstemningsomraadeDagiId: {eq: 702016}, Valgmappe: {eq: $valg}}) {
    nodes {
      Resultatart
      AfstemningsomraadeGeografi { Navn Kommune { Navn Region { Navn } } }
      IndenforParti(first: 1) { nodes { Bogstavbetegnelse
        Kandidater(first: 1) { nodes { Stemmer Kandidat { Navn Partibogstav } } } } }
      Valg { Valgart Valgdag } } } }"""

FALLBACK = """query ($id: Int!, $valg: String!) {
  VALG_Valgresultat(where: {AfstemningsomraadeDagiId: {eq: $id}, Valgmappe: {eq: $valg}}) {
    nodes { Fil Resultatart } } }"""

CANDIDATES = """query ($valg: String!) {
  VALG_Kandidat(first: 100, where: {Valgmappe: {eq: $valg}, Storkreds: {eq: "Bornholm"}}) {
    nodes { Navn Stilling } } }"""

CROSS = """query ($valg: String!) {
  VALG_Kandidat(where: {Valgmappe: {eq: $valg}, Storkreds: {eq: "Fyn"},
                        Partibogstav: {eq: "Ø"}, Navn: {eq: "Jesper Kiel"}}) {
    nodes { Navn Aktoerer { nodes { id navn } } } } }"""

DEFAULT_DATA = """query ($valg: String!) {
  VALG_Valgresultat(first: 1000, where: {Valgmappe: {eq: $valg}, Kommunekode: {eq: 101}}) {
    nodes { Verifikation } } }"""

TEST_DATA = """query ($valg: String!, $test: Boolean!) {
  VALG_Valgresultat(first: 1000, where: {Valgmappe: {eq: $valg}, Kommunekode: {eq: 101},
                                         Verifikation: {eq: $test}}) {
    nodes { Verifikation } } }"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(
    module_valg_replica: ValgReplica, odata_replica: ODataReplica
) -> AsyncIterator[httpx.AsyncClient]:
    valg, ft = module_valg_replica, odata_replica
    overrides = {**valg.overrides, "FT": {"url": ft.url}}
    auth = AuthSettings(keys=(ApiKey("level-2", 2, hash_key(KEY)),))
    with register_subset("VALG", "FT") as registers:
        async with gateway_client(registers, overrides, auth=auth) as running:
            yield running


async def test_final_count_votes_per_party_in_one_opstillingskreds(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    kreds = 403551  # Aakirkeby
    expected: Counter[str] = Counter()
    for _, doc in newest_by(raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId").values():
        if doc["OpstillingskredsDagiId"] == kreds and doc["Resultatart"] == "Fintælling":
            for party in doc["IndenforParti"]:
                expected[party["Bogstavbetegnelse"]] += party["Stemmer"]
    assert expected
    body = await graphql(
        client,
        """query ($kreds: Int!, $valg: String!) {
          VALG_Valgresultat_IndenforParti(first: 1000, where: {
              OpstillingskredsDagiId: {eq: $kreds}, Valgmappe: {eq: $valg},
              Resultatart: {eq: "Fintælling"}}) {
            totalCount nodes { Bogstavbetegnelse Stemmer } } }""",
        {"kreds": kreds, "valg": FV},
    )
    assert "errors" not in body, body
    actual: Counter[str] = Counter()
    for node in body["data"]["VALG_Valgresultat_IndenforParti"]["nodes"]:
        actual[node["Bogstavbetegnelse"]] += node["Stemmer"]
    assert actual == expected


async def test_relations_from_a_result_to_geography_candidates_and_election(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    body = await graphql(client, RELATIONS, {"valg": FV})
    assert "errors" not in body, body
    (node,) = body["data"]["VALG_Valgresultat"]["nodes"]
    (area,) = [a for a in geografi(raw, "Afstemningsomraade") if a["Dagi_id"] == "702016"]
    (kommune,) = [k for k in geografi(raw, "Kommune") if k["Kode"] == area["Kommunekode"]]
    (region,) = [r for r in geografi(raw, "Region") if r["Kode"] == kommune["Regionskode"]]
    assert node["AfstemningsomraadeGeografi"] == {
        "Navn": area["Navn"],
        "Kommune": {"Navn": kommune["Navn"], "Region": {"Navn": region["Navn"]}},
    }
    _, doc = newest_by(raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId")[702016]
    party = node["IndenforParti"]["nodes"][0]
    first = doc["IndenforParti"][0]
    assert party["Bogstavbetegnelse"] == first["Bogstavbetegnelse"]
    candidate = party["Kandidater"]["nodes"][0]
    assert candidate["Stemmer"] == first["Kandidater"][0]["Stemmer"]
    assert candidate["Kandidat"]["Partibogstav"] == first["Bogstavbetegnelse"]
    assert node["Valg"] == {"Valgart": "Folketingsvalg", "Valgdag": "2026-03-24"}


async def test_fallback_is_reported_in_extensions(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    name, doc = newest_by(raw, f"{FV}/valgresultater", "Afstemningsområde")["Ullerslev"]
    variables = {"id": doc["AfstemningsområdeDagiId"], "valg": FV}
    body = await graphql(client, FALLBACK, variables)
    assert body["data"]["VALG_Valgresultat"]["nodes"] == [
        {"Fil": name.removeprefix(f"{FV}/"), "Resultatart": doc["Resultatart"]}
    ]
    (notice,) = [n for n in body["extensions"]["notices"] if n["code"] == "VALG_FALLBACK"]
    assert notice["reason"] == "empty"
    assert notice["served"] == name


async def test_candidate_details_need_level_2(client: httpx.AsyncClient, raw: RawArchive) -> None:
    anonymous = await graphql(client, CANDIDATES, {"valg": FV})
    assert {e["extensions"]["code"] for e in anonymous["errors"]} == {"FORBIDDEN"}
    body = {"query": CANDIDATES, "variables": {"valg": FV}}
    response = await client.post("/graphql", json=body, headers={"X-API-Key": KEY})
    allowed = response.json()
    assert "errors" not in allowed, allowed
    doc = raw.doc(BORNHOLM)
    groups = [*(p["Kandidater"] for p in doc["IndenforParti"]), doc["UdenforParti"]]
    expected = {(person.get("Navn"), person.get("Stilling")) for g in groups for person in g}
    nodes = allowed["data"]["VALG_Kandidat"]["nodes"]
    assert {(n["Navn"], n["Stilling"]) for n in nodes} == expected


async def test_the_demo_keys_see_what_their_level_allows(
    module_valg_replica: ValgReplica, odata_replica: ODataReplica, raw: RawArchive
) -> None:
    valg, ft = module_valg_replica, odata_replica
    overrides = {**valg.overrides, "FT": {"url": ft.url}}
    with register_subset("VALG", "FT") as registers:
        async with gateway_client(registers, overrides, auth=AuthSettings.demo()) as demo:
            body = {"query": CANDIDATES, "variables": {"valg": FV}}
            one = await demo.post("/graphql", json=body, headers={"X-API-Key": "demo-level-1"})
            two = await demo.post("/graphql", json=body, headers={"X-API-Key": "demo-level-2"})
            filtered = await demo.post(
                "/graphql",
                json={
                    "query": "query ($valg: String!) { VALG_Kandidat(where: "
                    '{Valgmappe: {eq: $valg}, Stilling: {eq: "Pensionist"}}) { nodes { Navn } } }',
                    "variables": {"valg": FV},
                },
                headers={"X-API-Key": "demo-level-1"},
            )
    doc = raw.doc(BORNHOLM)
    groups = [*(p["Kandidater"] for p in doc["IndenforParti"]), doc["UdenforParti"]]
    names = {person.get("Navn") for g in groups for person in g}
    level_one = one.json()
    assert {n["Navn"] for n in level_one["data"]["VALG_Kandidat"]["nodes"]} == names
    assert all(n["Stilling"] is None for n in level_one["data"]["VALG_Kandidat"]["nodes"])
    assert {e["extensions"]["code"] for e in level_one["errors"]} == {"FORBIDDEN"}
    level_two = two.json()
    assert "errors" not in level_two, level_two
    assert any(n["Stilling"] for n in level_two["data"]["VALG_Kandidat"]["nodes"])
    refused = filtered.json()
    assert refused["data"] == {"VALG_Kandidat": None}
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_candidate_name_joins_the_ft_register(client: httpx.AsyncClient) -> None:
    body = await graphql(client, CROSS, {"valg": FV})
    assert "errors" not in body, body
    (node,) = body["data"]["VALG_Kandidat"]["nodes"]
    with sqlite3.connect(FT_AKTOER) as db:
        rows = db.execute("select id from Aktør where navn = ?", ("Jesper Kiel",)).fetchall()
    assert rows
    assert {int(a["id"]) for a in node["Aktoerer"]["nodes"]} == {int(r[0]) for r in rows}


async def test_verifikation_rows_only_on_request(client: httpx.AsyncClient) -> None:
    default = await graphql(client, DEFAULT_DATA, {"valg": FV})
    asked = await graphql(client, TEST_DATA, {"valg": FV, "test": True})
    assert "errors" not in default, default
    assert {n["Verifikation"] for n in default["data"]["VALG_Valgresultat"]["nodes"]} == {False}
    assert {n["Verifikation"] for n in asked["data"]["VALG_Valgresultat"]["nodes"]} == {True}
