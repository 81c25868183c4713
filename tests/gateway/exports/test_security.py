"""Exports under the security levels: the FT register with a stricter Security_Model.

As in tests/gateway/test_security.py: ``Aktør.biografi`` needs level 1, the entity ``Stemme``
level 2, ``Afstemning.kommentar`` level 3. A denied entity answers 403 before any upstream
request; a denied column is absent from the file (and not even fetched); filtering or
ordering on it is 403.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
import pytest_asyncio

from gateway.http.auth import ApiKey, AuthSettings, hash_key
from resolvers.odata.replica.server import ODataReplica
from tests.gateway.exports.helpers import as_csv_text, copy_ft, csv_rows, stemme
from tests.resolvers.odata import raw
from tests.support import gateway_client

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEYS = {level: f"level-{level}-key-0123456789abcdefghij" for level in (1, 2, 3)}
SECURITY = {
    "DefaultSecurity": 0,
    "SpecificSecurity": [
        {"SecurityLevel": 1, "Entities": ["Aktør.biografi"]},
        {"SecurityLevel": 2, "Entities": ["Stemme"]},
        {"SecurityLevel": 3, "Entities": ["Afstemning.kommentar"]},
    ],
}
AKTOER = [
    "id", "typeid", "gruppenavnkort", "navn", "fornavn", "efternavn", "biografi", "periodeid",
    "opdateringsdato", "startdato", "slutdato",
]  # fmt: skip
WITH_BIOGRAPHY = '{"biografi": {"neq": null}}'


@pytest.fixture(scope="module")
def registers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_ft(tmp_path_factory.mktemp("registers"), security=SECURITY)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(registers: Path, odata_replica: ODataReplica) -> AsyncIterator[httpx.AsyncClient]:
    keys = tuple(ApiKey(f"key-{level}", level, hash_key(key)) for level, key in KEYS.items())
    auth = AuthSettings(keys=keys)
    async with gateway_client(registers, {"FT": {"url": odata_replica.url}}, auth=auth) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="module")
async def client(app: httpx.AsyncClient, odata_replica: ODataReplica) -> httpx.AsyncClient:
    await app.app.state.gateway.sources["FT"].services.cache.clear()  # type: ignore[attr-defined]
    odata_replica.log.clear()
    return app


async def get(
    client: httpx.AsyncClient, level: int, path: str, method: str = "GET", **params: str
) -> httpx.Response:
    headers = {"X-API-Key": KEYS[level]} if level else {}
    return await client.request(method, path, params=params, headers=headers)


def forbidden(response: httpx.Response, required: int) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "FORBIDDEN", "requiredLevel": required}


def selected(odata_replica: ODataReplica) -> set[str]:
    return {
        name
        for record in odata_replica.log
        for name in record.params.get("$select", "").split(",")
        if name
    }


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
async def test_an_entity_above_the_callers_level_is_forbidden_without_upstream_requests(
    client: httpx.AsyncClient, odata_replica: ODataReplica, level: int, method: str, fmt: str
) -> None:
    response = await get(client, level, f"/FT/v1/download/Stemme.{fmt}", method)
    assert response.status_code == 403
    if method == "GET":
        forbidden(response, 2)
    assert odata_replica.log == []


async def test_a_forbidden_entity_is_forbidden_whatever_the_parameters(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    # Even a malformed filter learns nothing: the entity is checked first.
    forbidden(await get(client, 1, "/FT/v1/download/Stemme.csv", where="{"), 2)
    assert odata_replica.log == []


@pytest.mark.parametrize("level", [2, 3])
async def test_the_entity_at_its_level(
    client: httpx.AsyncClient, odata_replica: ODataReplica, level: int
) -> None:
    response = await get(
        client, level, "/FT/v1/download/Stemme.csv", where='{"afstemningid":{"eq":1}}'
    )
    assert response.status_code == 200
    assert [r[0] for r in csv_rows(response.content)[1:]] == [
        str(r["id"]) for r in stemme(afstemningid=1)
    ]


async def test_a_column_above_the_callers_level_is_absent_and_not_fetched(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    response = await get(client, 0, "/FT/v1/download/Aktoer.csv", where='{"id":{"lte":300}}')
    assert response.status_code == 200
    records = csv_rows(response.content)
    public = [c for c in AKTOER if c != "biografi"]
    assert records[0] == public
    expected = [
        [as_csv_text(row[c]) for c in public] for i, row in sorted(raw.aktoer().items()) if i <= 300
    ]
    assert records[1:] == expected
    assert "biografi" not in selected(odata_replica)
    biographies = [r["biografi"] for r in raw.aktoer().values() if r["biografi"]]
    assert not any(b[:40].encode() in response.content for b in biographies)

    response = await get(client, 0, "/FT/v1/download/Aktoer.ndjson", where='{"id":{"eq":13}}')
    assert "biografi" not in json.loads(response.content)
    response = await get(client, 0, "/FT/v1/download/Aktoer.parquet", where='{"id":{"eq":13}}')
    assert "biografi" not in pq.read_table(io.BytesIO(response.content)).column_names


async def test_at_its_level_the_column_is_there_with_real_text(
    client: httpx.AsyncClient,
) -> None:
    # The biographies hold quotes, commas and line breaks: RFC 4180 quoting on real data.
    response = await get(client, 1, "/FT/v1/download/Aktoer.csv", where=WITH_BIOGRAPHY)
    assert response.status_code == 200
    records = csv_rows(response.content)
    assert records[0] == AKTOER
    expected = [
        [as_csv_text(row[c]) for c in AKTOER]
        for _, row in sorted(raw.aktoer().items())
        if row["biografi"] is not None
    ]
    assert len(expected) > 100
    assert any("\n" in row[6] and '"' in row[6] for row in expected)
    assert records[1:] == expected


@pytest.mark.parametrize(
    ("params", "what"),
    [
        ({"where": WITH_BIOGRAPHY}, "filter"),
        ({"where": '{"or":[{"id":{"eq":1}},{"biografi":{"contains":"a"}}]}'}, "nested filter"),
        ({"order": '[{"biografi":"ASC"}]'}, "order"),
    ],
)
async def test_filtering_or_ordering_on_a_forbidden_column_is_forbidden(
    client: httpx.AsyncClient, odata_replica: ODataReplica, params: dict[str, str], what: str
) -> None:
    forbidden(await get(client, 0, "/FT/v1/download/Aktoer.csv", **params), 1)
    assert odata_replica.log == []


async def test_a_level_3_column_at_level_2(client: httpx.AsyncClient) -> None:
    response = await get(client, 2, "/FT/v1/download/Afstemning.csv", where='{"id":{"eq":1}}')
    assert response.status_code == 200
    header = csv_rows(response.content)[0]
    assert "kommentar" not in header
    assert "konklusion" in header
    response = await get(client, 3, "/FT/v1/download/Afstemning.csv", where='{"id":{"eq":1}}')
    assert "kommentar" in csv_rows(response.content)[0]


def _entity(document: dict[str, Any], name: str) -> dict[str, Any]:
    (register,) = document["registers"]
    found: dict[str, Any] = next(e for e in register["entities"] if e["name"] == name)
    return found


@pytest.mark.parametrize("level", [0, 1, 2, 3])
async def test_the_catalogue_shows_levels_and_marks_access(
    client: httpx.AsyncClient, level: int
) -> None:
    document = (await get(client, level, "/catalog.json")).json()
    assert document["caller"]["level"] == level
    votes = _entity(document, "Stemme")
    assert (votes["level"], votes["accessible"]) == (2, level >= 2)
    assert all(f["accessible"] == (level >= 2) for f in votes["fields"])
    actors = {f["name"]: f for f in _entity(document, "Aktør")["fields"]}
    assert (actors["biografi"]["level"], actors["biografi"]["accessible"]) == (1, level >= 1)
    assert (actors["navn"]["level"], actors["navn"]["accessible"]) == (0, True)
    relations = {r["alias"]: r for r in _entity(document, "Aktør")["relations"]}
    assert (relations["Stemme"]["level"], relations["Stemme"]["accessible"]) == (2, level >= 2)


async def test_with_per_level_schemas_the_catalogue_leaves_out_what_the_caller_cannot_see(
    registers: Path, odata_replica: ODataReplica
) -> None:
    async with gateway_client(
        registers, {"FT": {"url": odata_replica.url}}, per_level_schema=True
    ) as anonymous:
        document = (await anonymous.get("/catalog.json")).json()
    (register,) = document["registers"]
    names = {e["name"] for e in register["entities"]}
    assert "Stemme" not in names
    assert "Aktør" in names
    actors = _entity(document, "Aktør")
    assert "biografi" not in {f["name"] for f in actors["fields"]}
    assert "Stemme" not in {r["alias"] for r in actors["relations"]}
