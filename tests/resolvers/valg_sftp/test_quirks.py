"""VALG's upstream quirks over GraphQL: archived elections, the referendum question that is
not published, joins scoped to one election root, and a to-one join that several rows match.

Every expected value is computed from the raw recordings (:mod:`rawdata`); both execution
paths (the one-pass path and the field-by-field one) answer every query.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from resolvers.valg_sftp.replica.server import ValgReplica
from tests.resolvers.valg_sftp.rawdata import FV, KV, RV, RawArchive, geografi, newest_by
from tests.support import REGISTERS, gateway_client, graphql

pytestmark = pytest.mark.asyncio(loop_scope="module")

AREA = 702016  # Aabenraa Midt: an area of the FV2026 and of the KV2025 recording
# A to-one relation the shipped register does not declare, added to a copy of it: a result
# to "the" voting area of its kommune, which has many.
AMBIGUOUS = {
    "SourceEntity": "Valgresultat",
    "SourceField": "Kommunekode",
    "TargetRc": "rc00002",
    "TargetRcVersion": "1",
    "TargetEntity": "Afstemningsområde",
    "TargetField": "Kommunekode",
    "ToManyRelation": False,
    "Alias": "EtAfstemningsomraade",
}

SCOPED = """query ($valg: String!, $area: Int!) {
  VALG_Valgresultat(where: {AfstemningsomraadeDagiId: {eq: $area}, Valgmappe: {eq: $valg}}) {
    nodes { Valgmappe Arkiveret
      KommuneGeografi { Valgmappe Navn Kode }
      AfstemningsomraadeGeografi { Valgmappe Navn } } } }"""

TO_MANY = """query ($area: String!) {
  VALG_Afstemningsomraade(where: {Dagi_id: {eq: $area}}) {
    nodes { Valgmappe Valgresultater { totalCount nodes { Valgmappe Resultatart } } } } }"""


@pytest.fixture(scope="module")
def registers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped VALG and FT registers, VALG's relations with :data:`AMBIGUOUS` added."""
    folder = tmp_path_factory.mktemp("registers")
    shutil.copytree(REGISTERS / "VALG", folder / "VALG")
    (folder / "FT").symlink_to(REGISTERS / "FT")
    path = folder / "VALG" / "rc00002" / "2. Datamodel" / "Relations.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["RelationVersions"][-1]["Relations"].append(AMBIGUOUS)
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return folder


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=[True, False])
async def client(
    request: pytest.FixtureRequest, module_valg_replica: ValgReplica, registers: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway over the replica, through the one-pass path (True) or without it."""
    async with gateway_client(
        registers, module_valg_replica.overrides, fast_path=request.param
    ) as running:
        yield running


def _ok(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


# -- the archive folder -----------------------------------------------------------------


async def test_archived_elections_are_listed_with_arkiveret(
    client: httpx.AsyncClient, module_valg_replica: ValgReplica, raw: RawArchive
) -> None:
    roots = {name.split("/", 1)[0] for name in raw.files}
    assert roots == {FV, KV, RV}
    data = _ok(await graphql(client, "{ VALG_Valg { nodes { Valgmappe Arkiveret } } }"))
    answered = {n["Valgmappe"]: n["Arkiveret"] for n in data["VALG_Valg"]["nodes"]}
    # The replica moved the 2025 roots to /arkiv: they are served, marked archived.
    assert answered == {FV: False, KV: True, RV: True}
    assert module_valg_replica.archived == {KV, RV}


async def test_an_archived_election_is_served_like_a_live_one(
    client: httpx.AsyncClient, module_valg_replica: ValgReplica, raw: RawArchive
) -> None:
    expected = newest_by(raw, f"{KV}/valgresultater", "AfstemningsområdeDagiId")
    wanted = {k: doc for k, (_, doc) in expected.items() if doc["Kommunekode"] == 580}
    assert wanted
    body = await graphql(
        client,
        """query ($valg: String!, $areas: [Int!]!) {
          VALG_Valgresultat(first: 1000, where: {Valgmappe: {eq: $valg},
                                                 AfstemningsomraadeDagiId: {in: $areas}}) {
            totalCount nodes { AfstemningsomraadeDagiId Arkiveret GyldigeStemmer } } }""",
        {"valg": KV, "areas": sorted(wanted)},
    )
    nodes = _ok(body)["VALG_Valgresultat"]["nodes"]
    assert {n["AfstemningsomraadeDagiId"]: n["GyldigeStemmer"] for n in nodes} == {
        k: doc["GyldigeStemmer"] for k, doc in wanted.items()
    }
    assert {n["Arkiveret"] for n in nodes} == {True}
    # The files were read from the archive folder; the live folder no longer has them.
    opened = module_valg_replica.downloads()
    assert any(p.startswith(f"/arkiv/{KV}/valgresultater/") for p in opened)
    assert not any(p.startswith(f"/data/{KV}/") for p in opened)


async def test_filtering_on_arkiveret(client: httpx.AsyncClient) -> None:
    body = await graphql(
        client,
        """{ live: VALG_Valg(where: {Arkiveret: {eq: false}}) { nodes { Valgmappe } }
             archived: VALG_Valg(where: {Arkiveret: {eq: true}}) { nodes { Valgmappe } } }""",
    )
    data = _ok(body)
    assert [n["Valgmappe"] for n in data["live"]["nodes"]] == [FV]
    assert sorted(n["Valgmappe"] for n in data["archived"]["nodes"]) == sorted([KV, RV])


# -- the referendum question ----------------------------------------------------------------


async def test_the_referendum_question_is_an_entity_from_its_schema(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    schema_path = f"{FV}/Snitfladebeskrivelser/Afstemningsspørgsmål/Folkeafstemning.schema.json"
    schema = json.loads(raw.files[schema_path].decode("cp1252"))
    body = await graphql(
        client, '{ __type(name: "VALG_Folkeafstemning") { fields { name description } } }'
    )
    fields = {f["name"] for f in _ok(body)["__type"]["fields"]}
    spelled = {"Spørgsmål": "Spoergsmaal"}
    assert {spelled.get(p, p) for p in schema["properties"]} <= fields
    assert {"Valgmappe", "Arkiveret", "Fil", "Valg"} <= fields


async def test_no_recorded_referendum_answers_empty_with_a_notice(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    # Neither recording holds a referendum question: only its schema was published.
    assert not [
        n for n in raw.files if "afstemningsspørgsmål" in n.lower() and "Snitflade" not in n
    ]
    body = await graphql(
        client, "{ VALG_Folkeafstemning { totalCount nodes { Titel Spoergsmaal Valgmappe } } }"
    )
    assert _ok(body)["VALG_Folkeafstemning"] == {"totalCount": 0, "nodes": []}
    notices = [n for n in body["extensions"]["notices"] if n["code"] == "NOT_YET_AVAILABLE"]
    assert notices
    assert all(n["dataset"] == "afstemningsspørgsmål" for n in notices)
    assert "folkeafstemning" in notices[0]["message"]


# -- joins scoped to the election root ------------------------------------------------------


async def test_a_folketingsvalg_result_links_to_its_own_geography(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    _, doc = newest_by(raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId")[AREA]
    (kommune,) = [k for k in geografi(raw, "Kommune") if k["Kode"] == doc["Kommunekode"]]
    (area,) = [a for a in geografi(raw, "Afstemningsomraade") if a["Dagi_id"] == str(AREA)]
    body = await graphql(client, SCOPED, {"valg": FV, "area": AREA})
    (node,) = _ok(body)["VALG_Valgresultat"]["nodes"]
    assert node == {
        "Valgmappe": FV,
        "Arkiveret": False,
        "KommuneGeografi": {"Valgmappe": FV, "Navn": kommune["Navn"], "Kode": kommune["Kode"]},
        "AfstemningsomraadeGeografi": {"Valgmappe": FV, "Navn": area["Navn"]},
    }


async def test_a_municipal_result_does_not_link_to_another_elections_geography(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    # The KV2025 recording has no geografi of its own; the FV2026 one has this kommune.
    assert not [n for n in raw.files if n.startswith(f"{KV}/") and "/geografi/" in n]
    _, doc = newest_by(raw, f"{KV}/valgresultater", "AfstemningsområdeDagiId")[AREA]
    assert [k for k in geografi(raw, "Kommune") if k["Kode"] == doc["Kommunekode"]]
    body = await graphql(client, SCOPED, {"valg": KV, "area": AREA})
    (node,) = _ok(body)["VALG_Valgresultat"]["nodes"]
    assert node == {
        "Valgmappe": KV,
        "Arkiveret": True,
        "KommuneGeografi": None,
        "AfstemningsomraadeGeografi": None,
    }


async def test_an_area_lists_the_results_of_its_own_election_only(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    fv = newest_by(raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId")
    kv = newest_by(raw, f"{KV}/valgresultater", "AfstemningsområdeDagiId")
    assert AREA in fv
    assert AREA in kv
    body = await graphql(client, TO_MANY, {"area": str(AREA)})
    (node,) = _ok(body)["VALG_Afstemningsomraade"]["nodes"]
    assert node["Valgmappe"] == FV
    assert node["Valgresultater"] == {
        "totalCount": 1,
        "nodes": [{"Valgmappe": FV, "Resultatart": fv[AREA][1]["Resultatart"]}],
    }


# -- a to-one relation several rows match -----------------------------------------------------


async def test_a_to_one_relation_with_several_matches_is_an_error(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    _, doc = newest_by(raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId")[AREA]
    areas = [a for a in geografi(raw, "Afstemningsomraade") if a["Kommunekode"] == 580]
    assert doc["Kommunekode"] == 580
    assert len(areas) > 1
    body = await graphql(
        client,
        """query ($valg: String!, $area: Int!) {
          VALG_Valgresultat(where: {AfstemningsomraadeDagiId: {eq: $area},
                                    Valgmappe: {eq: $valg}}) {
            nodes { Afstemningsomraade EtAfstemningsomraade { Navn } } } }""",
        {"valg": FV, "area": AREA},
    )
    (error,) = body["errors"]
    assert error["path"] == ["VALG_Valgresultat", "nodes", 0, "EtAfstemningsomraade"]
    assert error["extensions"]["code"] == "UPSTREAM_INVALID"
    assert error["extensions"]["relation"] == "VALG_Valgresultat.EtAfstemningsomraade"
    assert error["extensions"]["matches"] == len(areas)
    assert f"{len(areas)} rows" in error["message"]
    assert "VALG_Valgresultat.EtAfstemningsomraade" in error["message"]
    # The rest of the answer stands; no area was guessed.
    (node,) = body["data"]["VALG_Valgresultat"]["nodes"]
    assert node == {"Afstemningsomraade": doc["Afstemningsområde"], "EtAfstemningsomraade": None}
