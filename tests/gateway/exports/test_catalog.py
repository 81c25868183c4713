"""``/catalog.json`` against the register's own files, read here by independent code."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import pytest_asyncio

from gateway.http.auth import AuthSettings
from tests.gateway.exports.helpers import copy_ft
from tests.support import REGISTERS, gateway_client, register_subset

RC = REGISTERS / "FT" / "rc00001"
EDM = "{http://schemas.microsoft.com/ado/2009/11/edm}"
TYPES = {
    "Edm.Int16": "Int",
    "Edm.Int32": "Int",
    "Edm.Int64": "Long",
    "Edm.String": "String",
    "Edm.Boolean": "Boolean",
    "Edm.DateTime": "DateTime",
    "Edm.Double": "Float",
    "Edm.Decimal": "Float",
}
# Nothing listens here: the catalogue must not need the upstream.
NOWHERE = {"FT": {"url": "http://127.0.0.1:9/api/"}}


def ascii_name(name: str) -> str:
    """graphql_name's transliteration (gateway.model.naming) for the names FT uses (æ, ø, å)."""
    for letter, text in {"æ": "ae", "ø": "oe", "å": "aa", "Æ": "Ae", "Ø": "Oe", "Å": "Aa"}.items():
        name = name.replace(letter, text)
    assert unicodedata.is_normalized("NFC", name)
    assert name.isascii()
    return name


def edmx() -> dict[str, dict[str, Any]]:
    """Entity set → key and properties (name, type, nullable), from the EDMX file."""
    text = (RC / "2. Datamodel" / "1.0.0.FT.edmx").read_text(encoding="utf-8")
    root = ElementTree.fromstring(text[text.index("<?xml") :].encode())
    types = {t.get("Name"): t for t in root.iter(f"{EDM}EntityType")}
    out = {}
    for entity_set in root.iter(f"{EDM}EntitySet"):
        entity_type = types[entity_set.get("EntityType", "").rsplit(".", 1)[-1]]
        out[entity_set.get("Name", "")] = {
            "key": [r.get("Name") for r in entity_type.iter(f"{EDM}PropertyRef")],
            "fields": [
                (p.get("Name"), p.get("Type"), p.get("Nullable", "true") != "false")
                for p in entity_type.findall(f"{EDM}Property")
            ],
        }
    return out


def annex(name: str) -> Any:
    return json.loads(next(RC.rglob(name)).read_text(encoding="utf-8"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def document() -> AsyncIterator[dict[str, Any]]:
    with register_subset("FT") as registers:
        async with gateway_client(registers, NOWHERE) as client:
            response = await client.get("/catalog.json")
            assert response.status_code == 200
            assert response.headers["cache-control"] == "private, no-cache"
            yield response.json()


@pytest.fixture(scope="module")
def register(document: dict[str, Any]) -> dict[str, Any]:
    (found,) = document["registers"]
    assert isinstance(found, dict)
    return found


def test_register_versions_and_endpoints(
    document: dict[str, Any], register: dict[str, Any]
) -> None:
    assert (register["name"], register["rc"]) == ("FT", "rc00001")
    numbers = [v["RelationVersionNumber"] for v in annex("Relations.json")["RelationVersions"]]
    assert [v["number"] for v in register["relationVersions"]] == numbers
    newest = max(numbers, key=int)
    for version in register["relationVersions"]:
        assert version["endpoint"] == f"/FT/v{version['number']}"
        assert version["schema"] == f"/FT/v{version['number']}/schema"
        assert version["newest"] == (version["number"] == newest)
    assert document["graphql"] == {"endpoint": "/graphql", "schema": "/graphql/schema"}
    assert document["caller"] == {"level": 0, "method": "anonymous"}
    assert register["predefinedFileDownloads"] == annex("Automated_Predefined_Filedownloads.json")


def test_entities_and_fields_follow_the_datamodel(register: dict[str, Any]) -> None:
    model = edmx()
    entities = {e["name"]: e for e in register["entities"]}
    assert sorted(entities) == sorted(model)
    for name, expected in model.items():
        entity = entities[name]
        assert entity["graphqlName"] == "FT_" + ascii_name(name)
        assert entity["exportName"] == ascii_name(name)
        assert entity["key"] == [ascii_name(k) for k in expected["key"]]
        got = [(f["source"], f["type"], f["nullable"]) for f in entity["fields"]]
        assert got == [(n, TYPES[t], nullable) for n, t, nullable in expected["fields"]]
        assert [f["name"] for f in entity["fields"]] == [
            ascii_name(n) for n, *_ in expected["fields"]
        ]


def test_levels_follow_the_security_model(register: dict[str, Any]) -> None:
    security = annex("Security_Model.json")
    default = security.get("DefaultSecurity", 1)
    entity_levels: dict[str, int] = {}
    field_levels: dict[tuple[str, str], int] = {}
    for group in security.get("SpecificSecurity", []):
        for item in group["Entities"]:
            entity, _, field = item.partition(".")
            if field:
                field_levels[(entity, field)] = group["SecurityLevel"]
            else:
                entity_levels[entity] = group["SecurityLevel"]
    assert field_levels, "the shipped model restricts a field"
    for entity in register["entities"]:
        level = entity_levels.get(entity["name"], default)
        assert (entity["level"], entity["accessible"]) == (level, level == 0)
        for field in entity["fields"]:
            expected = max(level, field_levels.get((entity["name"], field["source"]), 0))
            assert (field["level"], field["accessible"]) == (expected, expected == 0)


def test_relations_follow_relations_json(register: dict[str, Any]) -> None:
    entities = {e["name"]: e for e in register["entities"]}
    expected = sorted(
        (v["RelationVersionNumber"], r["SourceEntity"], ascii_name(r["Alias"]), r["ToManyRelation"],
         ascii_name(r["SourceField"]), "FT_" + ascii_name(r["TargetEntity"]),
         ascii_name(r["TargetField"]))
        for v in annex("Relations.json")["RelationVersions"]
        for r in v["Relations"]
    )  # fmt: skip
    got = sorted(
        (r["relationVersion"], name, r["alias"], r["toMany"], r["sourceField"], r["targetEntity"],
         r["targetField"])
        for name, entity in entities.items()
        for r in entity["relations"]
    )  # fmt: skip
    assert got == expected
    assert all(r["served"] for e in entities.values() for r in e["relations"])


def test_every_entity_has_its_download_urls(
    document: dict[str, Any], register: dict[str, Any]
) -> None:
    assert set(document["downloads"]["formats"]) == {"csv", "ndjson", "parquet"}
    for entity in register["entities"]:
        (downloads,) = entity["downloads"]
        assert downloads == {
            "relationVersion": "1",
            **{
                f: f"/FT/v1/download/{entity['exportName']}.{f}"
                for f in ("csv", "ndjson", "parquet")
            },
            "csvMetadata": f"/FT/v1/download/{entity['exportName']}.csv-metadata.json",
            # the annex's delta (FileDownloadType 2, daily) and temporal (TypeOfData 2) rows
            "delta": {
                "frequencyDays": 1,
                "csv": f"/FT/v1/download/{entity['exportName']}.csv"
                + "?since={since}&until={until}",
                "typeOfData": 1,
            },
            "versions": {
                "frequencyDays": 7,
                "csv": f"/FT/v1/download/{entity['exportName']}.csv?versions=1",
                "typeOfData": 2,
            },
        }


def test_the_register_names_its_attribution(register: dict[str, Any]) -> None:
    source = json.loads((REGISTERS / "FT" / "rc00001" / "Source.json").read_text("utf-8"))
    assert register["attribution"] == {
        "register": "FT",
        "text": source["attribution"],
        "name": "Folketinget",
        "url": source["attributionUrl"],
        "required": True,
    }
    # The terms (data/ft/ATTRIBUTION.md) ask for Folketinget to be named as the source.
    assert "Folketinget" in source["attribution"]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("downloads", "offered"),
    [
        ([{"EntityName": "Stemme", "FileDownloadType": 1, "TypeOfData": 1, "Frequency": 1,
           "SecurityLevel": 1}], {"Stemme"}),
        ([], set()),
    ],
)  # fmt: skip
async def test_only_the_entities_the_annex_names_are_offered(
    tmp_path: Path, downloads: Any, offered: set[str]
) -> None:
    root = copy_ft(tmp_path, downloads=downloads)
    async with gateway_client(root, NOWHERE) as client:
        document = (await client.get("/catalog.json")).json()
        (register,) = document["registers"]
        with_downloads = {e["name"] for e in register["entities"] if e["downloads"]}
        assert with_downloads == offered
        # Not offered: 404 at once (nothing listens upstream, so a request would fail as 502).
        response = await client.get("/FT/v1/download/Afstemning.csv")
        assert response.status_code == 404
        assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.asyncio(loop_scope="module")
async def test_the_catalogue_follows_the_configuration(tmp_path: Path) -> None:
    root = copy_ft(tmp_path)
    settings = {"auth": AuthSettings(anonymous_level=1), "introspection": False}
    async with gateway_client(root, NOWHERE, **settings) as client:
        document = (await client.get("/catalog.json")).json()
    assert document["caller"] == {"level": 1, "method": "anonymous"}
    # Without introspection the SDL is not published, so the catalogue does not point at it.
    assert document["graphql"] == {"endpoint": "/graphql"}
    (register,) = document["registers"]
    actors = next(e for e in register["entities"] if e["name"] == "Aktør")
    assert all(f["accessible"] for f in actors["fields"])
