"""End to end: GraphQL documents to the gateway app, DE read from the replica over loopback."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.resolvers.wahldaten_csv.raw import election, elections, header, party_sums
from tests.support import graphql

pytestmark = pytest.mark.asyncio(loop_scope="module")

ELECTIONS = [raw.folder.name for raw in elections()]


async def ask(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    answer = await graphql(client, query, variables)
    assert "errors" not in answer, answer.get("errors")
    return answer


PARTY_VOTES = """
query ($wahl: String!, $letter: String!) {
  DE_Stimmzettel(where: {wahl: {eq: $wahl}}, first: 40) {
    nodes {
      partei_kurzname partei_langname
      Stimmen(where: {kennung: {eq: $letter}, kandidatnummer: {eq: null}}, first: 500) {
        totalCount nodes { anzahl }
      }
    }
  }
}
"""


@pytest.mark.parametrize("folder", ELECTIONS)
async def test_votes_per_party_equal_the_raw_csv(
    wahldaten_gateway: httpx.AsyncClient, folder: str
) -> None:
    raw = election(folder)
    for letter in ("D", "F"):
        answer = await ask(wahldaten_gateway, PARTY_VOTES, wahl=raw.wahl, letter=letter)
        got: dict[str, int] = {}
        for ballot in answer["data"]["DE_Stimmzettel"]["nodes"]:
            votes = ballot["Stimmen"]
            assert votes["totalCount"] == len(votes["nodes"])
            counts = [v["anzahl"] for v in votes["nodes"] if v["anzahl"] is not None]
            if counts:
                party = ballot["partei_kurzname"] or ballot["partei_langname"]
                got[party] = got.get(party, 0) + sum(counts)
        assert got == party_sums(raw, letter)


SHAPE = """
query ($wahl: String!) {
  DE_Wahlergebnis(where: {wahl: {eq: $wahl}}, first: 1) {
    totalCount
    nodes {
      bezirk_nr A B D zeitstempel_erfassung
      Wahlgebiet { bezirk_name stimmzettel_gebiet_nr }
      Stimmen(first: 1000) { totalCount nodes { spalte kennung position kandidatnummer anzahl } }
    }
  }
}
"""


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return _shape(value[0]) if value else []
    return None


async def test_karlsruhe_and_kall_answer_the_same_query_shape(
    wahldaten_gateway: httpx.AsyncClient,
) -> None:
    shapes = []
    for folder in ("karlsruhe-eu-gemeinderat-2024", "kall-kommunal2020"):
        raw = election(folder)
        path = raw.file("Wahlergebnisse")
        assert path is not None
        answer = await ask(wahldaten_gateway, SHAPE, wahl=raw.wahl)
        results = answer["data"]["DE_Wahlergebnis"]
        assert results["totalCount"] == len(raw.rows("Wahlergebnisse"))
        (first,) = results["nodes"]
        columns = [c for c in header(path) if c[0] in "DF" and c not in ("D", "F")]
        assert first["Stimmen"]["totalCount"] == len(columns)
        assert first["bezirk_nr"] == raw.rows("Wahlergebnisse")[0]["bezirk-nr"]
        shapes.append(_shape(answer))
    assert shapes[0] == shapes[1]


async def test_data_warnings_come_back_with_file_and_line(
    wahldaten_gateway: httpx.AsyncClient,
) -> None:
    raw = election("kall-kommunal2020")
    path = raw.file("Kandidaten")
    assert path is not None
    query = """query ($wahl: String!) {
      DE_Kandidat(where: {wahl: {eq: $wahl}}) { totalCount nodes { wahl_behoerde_gs } } }"""
    answer = await ask(wahldaten_gateway, query, wahl=raw.wahl)
    assert answer["data"]["DE_Kandidat"]["totalCount"] == len(raw.rows("Kandidaten"))
    warnings = [n for n in answer["extensions"]["notices"] if n["code"] == "AGS_MISMATCH"]
    assert {(n["file"], n["line"]) for n in warnings} == {(path.name, 2)}


async def test_candidates_votes_and_ballot(wahldaten_gateway: httpx.AsyncClient) -> None:
    raw = election("karlsruhe-eu-gemeinderat-2024")
    query = """query ($wahl: String!) {
      DE_Kandidat(where: {wahl: {eq: $wahl}, partei_kurzname: {eq: "ÖDP"}}, first: 1) {
        nodes { kandidat_name kandidat_listenplatz
          Stimmzettel { nodes { stimmzettel_position partei_rgb_wert } }
          Stimmen(first: 1000) { totalCount nodes { anzahl Wahlergebnis { bezirk_nr } } } } } }"""
    answer = await ask(wahldaten_gateway, query, wahl=raw.wahl)
    (candidate,) = answer["data"]["DE_Kandidat"]["nodes"]
    ballot = {r["partei-kurzname"]: r for r in raw.rows("Stimmzettel")}["ÖDP"]
    position = ballot["stimmzettel-position"]
    column = f"D{position}_{candidate['kandidat_listenplatz']}"
    assert candidate["Stimmzettel"]["nodes"] == [
        {"stimmzettel_position": int(position), "partei_rgb_wert": ballot["partei-rgb-wert"]}
    ]
    expected = {r["bezirk-nr"]: int(r[column]) for r in raw.rows("Wahlergebnisse")}
    got = {v["Wahlergebnis"]["bezirk_nr"]: v["anzahl"] for v in candidate["Stimmen"]["nodes"]}
    assert got == expected


async def test_schema_names_fields_by_column(wahldaten_gateway: httpx.AsyncClient) -> None:
    query = """{ __type(name: "DE_Wahlergebnis") { fields { name } } }"""
    answer = await ask(wahldaten_gateway, query)
    names = {f["name"] for f in answer["data"]["__type"]["fields"]}
    assert {"wahl_behoerde_gs", "bezirk_nr", "A1", "B2", "F", "Stimmen", "Wahlgebiet"} <= names
    assert not {"D1", "F1"} & names
    wahlgebiet = await ask(
        wahldaten_gateway, """{ __type(name: "DE_Wahlgebiet") { fields { name } } }"""
    )
    assert "bezirk_repraesentativ" in json.dumps(wahlgebiet)
