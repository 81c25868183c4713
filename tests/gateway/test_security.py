"""Authorisation as an attacker would probe it: every level × every access path.

The FT register is served with a stricter Security_Model than it ships with, so that an
entity, a field and a deeper field are each restricted:

- ``Aktør.biografi`` needs level 1 (as shipped),
- the entity ``Stemme`` needs level 2,
- ``Afstemning.kommentar`` needs level 3.

Every denial is checked twice: the error (``FORBIDDEN`` with ``requiredLevel``) and the
replica's request log (the denied data was never fetched).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.http.auth import ApiKey, AuthSettings, hash_key
from resolvers.odata.replica.server import ODataReplica
from tests.resolvers.odata import raw
from tests.support import REGISTERS, gateway_client

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
LEVELS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def registers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registers")
    shutil.copytree(REGISTERS / "FT", root / "FT")
    model = root / "FT" / "rc00001" / "3. Security" / "Security_Model.json"
    model.write_text(json.dumps(SECURITY), encoding="utf-8")
    return root


def _auth() -> AuthSettings:
    keys = tuple(ApiKey(f"key-{level}", level, hash_key(key)) for level, key in KEYS.items())
    return AuthSettings(keys=keys)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(registers: Path, odata_replica: ODataReplica) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(
        registers, {"FT": {"url": odata_replica.url}}, auth=_auth()
    ) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="module")
async def client(app: httpx.AsyncClient, odata_replica: ODataReplica) -> httpx.AsyncClient:
    await app.app.state.gateway.sources["FT"].services.cache.clear()  # type: ignore[attr-defined]
    odata_replica.log.clear()
    return app


async def ask(
    client: httpx.AsyncClient, level: int, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    headers = {"X-API-Key": KEYS[level]} if level else {}
    body: dict[str, Any] = {"query": query}
    if variables:
        body["variables"] = variables
    response = await client.post("/graphql", json=body, headers=headers)
    result: dict[str, Any] = response.json()
    return result


def forbidden(body: dict[str, Any], required: int) -> list[dict[str, Any]]:
    errors = [e for e in body.get("errors", []) if e["extensions"]["code"] == "FORBIDDEN"]
    assert errors, body
    assert all(e["extensions"]["requiredLevel"] == required for e in errors)
    return errors


def fetched(odata_replica: ODataReplica, entity_set: str) -> list[dict[str, str]]:
    return [r.params for r in odata_replica.log if r.path.endswith("/" + entity_set)]


def selected(odata_replica: ODataReplica, entity_set: str) -> set[str]:
    return {
        name
        for query in fetched(odata_replica, entity_set)
        for name in query.get("$select", "").split(",")
        if name
    }


# --- a restricted field --------------------------------------------------------------

FIELD_PATHS = {
    "direct": "{ FT_Aktoer(where: {id: {eq: 13}}) { nodes { id biografi } } }",
    "alias": "{ FT_Aktoer(where: {id: {eq: 13}}) { nodes { id b: biografi } } }",
    "fragment": "fragment F on FT_Aktoer { biografi } "
    "{ FT_Aktoer(where: {id: {eq: 13}}) { nodes { id ...F } } }",
    "inline fragment": "{ FT_Aktoer(where: {id: {eq: 13}}) "
    "{ nodes { id ... on FT_Aktoer { biografi } } } }",
    "edges": "{ FT_Aktoer(where: {id: {eq: 13}}) { edges { node { id biografi } } } }",
    "through a relation": "{ FT_Stemme(first: 1, where: {aktoerid: {eq: 13}}) "
    "{ nodes { Aktoer { id biografi } } } }",
}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("path", sorted(FIELD_PATHS))
async def test_restricted_field(
    client: httpx.AsyncClient, odata_replica: ODataReplica, level: int, path: str
) -> None:
    body = await ask(client, level, FIELD_PATHS[path])
    if path == "through a relation" and level < 2:
        forbidden(body, 2)  # the entity Stemme comes first
        assert fetched(odata_replica, "Stemme") == []
        return
    text = json.dumps(body["data"], ensure_ascii=False)
    real = raw.aktoer()[13]["biografi"]
    assert real, "Aktør 13 has a biography in the recorded data"
    if level >= 1:
        assert "errors" not in body, body
        assert json.dumps(real, ensure_ascii=False)[1:40] in text
        assert "biografi" in selected(odata_replica, "Akt%C3%B8r") | selected(
            odata_replica, "Aktør"
        )
    else:
        errors = forbidden(body, 1)
        assert errors[0]["path"][-1] in ("biografi", "b")
        assert real[:30] not in text
        assert '"id": 13' in text  # the rest of the query answers
        assert "biografi" not in selected(odata_replica, "Akt%C3%B8r") | selected(
            odata_replica, "Aktør"
        )


# --- filters and orders on a restricted field ----------------------------------------

FILTER_PATHS = {
    "where": '{ FT_Aktoer(where: {biografi: {contains: "Folketing"}}) { nodes { id } } }',
    "nested or/and": "{ FT_Aktoer(where: {or: [{id: {eq: 1}}, {and: [{typeid: {eq: 5}}, "
    '{biografi: {startsWith: "<"}}]}]}) { nodes { id } } }',
    "variable": "query($w: FT_AktoerFilterInput) { FT_Aktoer(where: $w) { nodes { id } } }",
    "order": "{ FT_Aktoer(order: [{biografi: DESC}]) { nodes { id } } }",
    "null check": "{ FT_Aktoer(where: {biografi: {neq: null}}) { totalCount } }",
}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("path", sorted(FILTER_PATHS))
async def test_filter_or_order_on_restricted_field(
    client: httpx.AsyncClient, odata_replica: ODataReplica, level: int, path: str
) -> None:
    variables = {"w": {"biografi": {"eq": "x"}}} if path == "variable" else None
    body = await ask(client, level, FILTER_PATHS[path], variables)
    if level >= 1:
        assert "errors" not in body, body
        return
    forbidden(body, 1)
    assert body["data"] == {"FT_Aktoer": None}
    assert odata_replica.log == []  # decided before any upstream request


# --- a restricted entity --------------------------------------------------------------

ENTITY_PATHS = {
    "root": "{ FT_Stemme(first: 2) { nodes { id } } }",
    "root alias": "{ s: FT_Stemme(first: 2) { totalCount } }",
    "to-many relation": "{ FT_Aktoer(where: {id: {eq: 13}}) { nodes { Stemme(first: 2) "
    "{ totalCount nodes { id } } } } }",
    "relation in a fragment": "fragment V on FT_Afstemning { Stemme { nodes { id } } } "
    "{ FT_Afstemning(first: 2) { nodes { id ...V } } }",
    "relation filter": "{ FT_Afstemning(first: 2) { nodes { Stemme(where: {typeid: {eq: 1}}) "
    "{ nodes { id } } } } }",
    "deep": "{ FT_Aktoertype(first: 1) { nodes { Aktoer(first: 1) { nodes { "
    "Stemme(first: 1) { nodes { id } } } } } } }",
}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("path", sorted(ENTITY_PATHS))
async def test_restricted_entity(
    client: httpx.AsyncClient, odata_replica: ODataReplica, level: int, path: str
) -> None:
    body = await ask(client, level, ENTITY_PATHS[path])
    if level >= 2:
        assert "errors" not in body, body
        return
    forbidden(body, 2)
    assert fetched(odata_replica, "Stemme") == []
    if path.startswith("root"):
        assert odata_replica.log == []


# --- a field above its entity's level, reached through a relation ---------------------


@pytest.mark.parametrize("level", LEVELS)
async def test_level_3_field_behind_a_level_2_entity(
    client: httpx.AsyncClient, odata_replica: ODataReplica, level: int
) -> None:
    body = await ask(
        client,
        level,
        "{ FT_Stemme(first: 3, where: {afstemningid: {eq: 1}}) "
        "{ nodes { id Afstemning { id kommentar } } } }",
    )
    if level < 2:
        forbidden(body, 2)
        assert odata_replica.log == []
    elif level == 2:
        forbidden(body, 3)
        assert all(n["Afstemning"]["kommentar"] is None for n in body["data"]["FT_Stemme"]["nodes"])
        assert "kommentar" not in selected(odata_replica, "Afstemning")
    else:
        assert "errors" not in body, body


# --- the cache never serves one level's data to a lower level -------------------------


async def test_cached_answers_do_not_cross_levels(client: httpx.AsyncClient) -> None:
    query = "{ FT_Aktoer(where: {id: {eq: 13}}) { nodes { id biografi } } }"
    high = await ask(client, 3, query)
    assert high["data"]["FT_Aktoer"]["nodes"][0]["biografi"]
    low = await ask(client, 0, query)
    forbidden(low, 1)
    assert low["data"]["FT_Aktoer"]["nodes"][0]["biografi"] is None
    stemme = "{ FT_Stemme(first: 2) { nodes { id } } }"
    assert "errors" not in await ask(client, 2, stemme)
    forbidden(await ask(client, 1, stemme), 2)


# --- several operations in one request -------------------------------------------------


async def test_batched_or_multiple_operations_do_not_bypass(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    document = (
        "query A { FT_Aktoertype(first: 1) { nodes { id } } } "
        "query B { FT_Stemme(first: 1) { nodes { id } } }"
    )
    response = await client.post("/graphql", json={"query": document, "operationName": "B"})
    forbidden(response.json(), 2)
    batch = [
        {"query": "{ FT_Aktoertype(first: 1) { nodes { id } } }"},
        {"query": "{ FT_Stemme(first: 1) { nodes { id } } }"},
    ]
    response = await client.post("/graphql", json=batch)
    assert response.status_code == 400
    assert fetched(odata_replica, "Stemme") == []


# --- introspection ---------------------------------------------------------------------


async def test_schema_states_levels(client: httpx.AsyncClient) -> None:
    sdl = (await client.get("/graphql/schema")).text
    assert "type FT_Stemme @securityLevel(level: 2)" in sdl
    assert "biografi: String @securityLevel(level: 1)" in sdl
    assert "kommentar: String @securityLevel(level: 3)" in sdl


async def test_per_level_schema_hides_what_the_caller_cannot_see(
    registers: Path, odata_replica: ODataReplica
) -> None:
    async with gateway_client(
        registers, {"FT": {"url": odata_replica.url}}, auth=_auth(), per_level_schema=True
    ) as client:
        public = (await client.get("/graphql/schema")).text
        assert "FT_Stemme(" not in public
        assert "type FT_Stemme " not in public
        assert "biografi" not in public
        assert "type FT_Aktoer " in public
        level2 = (await client.get("/graphql/schema", headers={"X-API-Key": KEYS[2]})).text
        assert "FT_Stemme(" in level2
        afstemning = level2.split("type FT_Afstemning ", 1)[1].split("\n}", 1)[0]
        assert "konklusion" in afstemning
        assert "kommentar" not in afstemning
        body = await ask(client, 0, "{ FT_Stemme { nodes { id } } }")
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        intro = await ask(client, 0, '{ __type(name: "FT_Aktoer") { fields { name } } }')
        names = {f["name"] for f in intro["data"]["__type"]["fields"]}
        assert "biografi" not in names
        assert "navn" in names


async def test_introspection_can_be_switched_off(
    registers: Path, odata_replica: ODataReplica
) -> None:
    async with gateway_client(
        registers, {"FT": {"url": odata_replica.url}}, auth=_auth(), introspection=False
    ) as client:
        body = await ask(client, 3, "{ __schema { types { name } } }")
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert (await client.get("/graphql/schema")).status_code == 404
        ok = await ask(client, 0, "{ FT_Aktoertype(first: 1) { nodes { __typename id } } }")
        assert ok["data"]["FT_Aktoertype"]["nodes"] == [{"__typename": "FT_Aktoertype", "id": 1}]


# --- denials are logged, secrets are not -------------------------------------------------


async def test_denials_are_logged_without_secrets(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        await ask(client, 1, "{ FT_Stemme { nodes { id } } }")
        await client.post(
            "/graphql", json={"query": "{ x }"}, headers={"X-API-Key": "wrong-key-0123456789abcdef"}
        )
    text = caplog.text
    assert "denied caller=key-1 level=1 required=2 what=FT_Stemme" in text
    assert KEYS[1] not in text
    assert "wrong-key-0123456789abcdef" not in text
