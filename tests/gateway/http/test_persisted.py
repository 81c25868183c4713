"""Automatic persisted queries (Apollo's protocol) and the allow-list of persisted documents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.http.config import HttpSettings
from gateway.http.persisted import APQ_PREFIX, load_documents
from gateway.model.errors import DescriptorError
from resolvers.odata.replica.server import ODataReplica
from tests.gateway.http.support import (
    GRAPHQL_RESPONSE,
    JSON,
    app_of,
    ft_gateway,
    sha256,
    write_json,
)
from tests.resolvers.odata import raw
from tests.support import ft_credited

pytestmark = pytest.mark.asyncio(loop_scope="module")

QUERY = "query Actors { FT_Aktoer(first: 3) { nodes { id navn } } }"
OTHER = "query Votes { FT_Stemme(first: 2) { nodes { id } } }"


def persisted(digest: str, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


def actors() -> dict[str, Any]:
    """The answer to QUERY, from the recorded data: the first three actors by id."""
    nodes = [{"id": i, "navn": raw.aktoer()[i]["navn"]} for i in sorted(raw.aktoer())[:3]]
    return ft_credited({"FT_Aktoer": {"nodes": nodes}})


def votes() -> dict[str, Any]:
    """The answer to OTHER, from the recorded data."""
    return ft_credited({"FT_Stemme": {"nodes": [{"id": r["id"]} for r in raw.stemme()[:2]]}})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(odata_replica: ODataReplica) -> AsyncIterator[httpx.AsyncClient]:
    async with ft_gateway(odata_replica) as running:
        yield running


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


async def test_an_unknown_hash_is_learnt_from_the_retry(client: httpx.AsyncClient) -> None:
    digest = sha256(QUERY)
    cache = app_of(client).state.gateway.runtime.cache
    await cache.set(APQ_PREFIX + digest, None, 0)
    first = await client.post("/graphql", json={"extensions": persisted(digest)})
    assert first.status_code == 200
    assert first.json() == {
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
    }
    modern = await client.post(
        "/graphql", json={"extensions": persisted(digest)}, headers={"accept": GRAPHQL_RESPONSE}
    )
    assert modern.status_code == 400
    assert code_of(modern) == "PERSISTED_QUERY_NOT_FOUND"

    retry = await client.post("/graphql", json={"query": QUERY, "extensions": persisted(digest)})
    assert retry.json() == actors()
    assert await cache.get(APQ_PREFIX + digest) == QUERY

    again = await client.post("/graphql", json={"extensions": persisted(digest.upper())})
    assert again.json() == actors()


async def test_a_hash_over_get_runs_and_is_cacheable(client: httpx.AsyncClient) -> None:
    digest = sha256(QUERY)
    await client.post("/graphql", json={"query": QUERY, "extensions": persisted(digest)})
    response = await client.get(
        "/graphql",
        params={"extensions": json.dumps(persisted(digest)), "operationName": "Actors"},
        headers={"accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200
    assert response.json() == actors()
    assert response.headers["etag"]
    assert response.headers["cache-control"].startswith("public, max-age=")


async def test_a_learnt_hash_serves_every_endpoint_sharing_the_cache(
    client: httpx.AsyncClient,
) -> None:
    document = "query Roles { FT_Aktoertype(first: 1) { nodes { id } } }"
    digest = sha256(document)
    await client.post("/graphql", json={"query": document, "extensions": persisted(digest)})
    response = await client.post("/FT/v1", json={"extensions": persisted(digest)})
    assert response.json() == ft_credited({"FT_Aktoertype": {"nodes": [{"id": 1}]}})


async def test_a_hash_that_does_not_match_its_document_is_refused(
    client: httpx.AsyncClient,
) -> None:
    cache = app_of(client).state.gateway.runtime.cache
    wrong = sha256(OTHER)
    for accept in (JSON, GRAPHQL_RESPONSE):
        response = await client.post(
            "/graphql",
            json={"query": QUERY, "extensions": persisted(wrong)},
            headers={"accept": accept},
        )
        assert response.status_code == 400
        assert code_of(response) == "PERSISTED_QUERY_HASH_MISMATCH"
        assert "data" not in response.json()
    assert await cache.get(APQ_PREFIX + wrong) is None


@pytest.mark.parametrize(
    "extensions",
    [
        {"persistedQuery": "abc"},
        {"persistedQuery": {"version": 2, "sha256Hash": "a" * 64}},
        {"persistedQuery": {"version": 1, "sha256Hash": "xyz"}},
        {"persistedQuery": {"version": 1, "sha256Hash": 12}},
        {"persistedQuery": {"version": 1}},
    ],
)
async def test_a_malformed_persisted_query_extension_is_400(
    client: httpx.AsyncClient, extensions: dict[str, Any]
) -> None:
    response = await client.post("/graphql", json={"extensions": extensions})
    assert response.status_code == 400
    assert code_of(response) == "BAD_REQUEST"


async def test_an_invalid_document_is_not_learnt(client: httpx.AsyncClient) -> None:
    document = "{ FT_Stemme { nodes { nope } } }"
    digest = sha256(document)
    response = await client.post(
        "/graphql", json={"query": document, "extensions": persisted(digest)}
    )
    assert code_of(response) == "GRAPHQL_VALIDATION_FAILED"
    response = await client.post("/graphql", json={"extensions": persisted(digest)})
    assert code_of(response) == "PERSISTED_QUERY_NOT_FOUND"


async def test_without_apq_a_hash_alone_is_not_supported(odata_replica: ODataReplica) -> None:
    async with ft_gateway(odata_replica, http=HttpSettings(apq=False)) as client:
        digest = sha256(QUERY)
        response = await client.post("/graphql", json={"extensions": persisted(digest)})
        assert response.status_code == 200
        assert code_of(response) == "PERSISTED_QUERY_NOT_SUPPORTED"
        assert response.json()["errors"][0]["message"] == "PersistedQueryNotSupported"
        # The document with its hash still runs; nothing is learnt.
        full = await client.post("/graphql", json={"query": QUERY, "extensions": persisted(digest)})
        assert full.json() == actors()
        cache = app_of(client).state.gateway.runtime.cache
        assert await cache.get(APQ_PREFIX + digest) is None


# --- the allow-list -------------------------------------------------------------------------


@pytest.fixture
def allow_list(tmp_path: Path) -> Path:
    return write_json(tmp_path / "persisted.json", {sha256(QUERY): QUERY})


async def test_only_listed_documents_run_when_persisted_only(
    odata_replica: ODataReplica, allow_list: Path
) -> None:
    settings = HttpSettings(persisted_only=True, persisted_documents=str(allow_list))
    async with ft_gateway(odata_replica, http=settings) as client:
        cache = app_of(client).state.gateway.runtime.cache
        expected = actors()
        by_hash = await client.post("/graphql", json={"extensions": persisted(sha256(QUERY))})
        assert by_hash.json() == expected
        by_text = await client.post("/graphql", json={"query": QUERY})
        assert by_text.json() == expected

        refused = await client.post("/graphql", json={"query": OTHER})
        assert refused.status_code == 403
        assert code_of(refused) == "PERSISTED_QUERY_NOT_ALLOWED"
        assert "data" not in refused.json()
        registering = await client.post(
            "/graphql", json={"query": OTHER, "extensions": persisted(sha256(OTHER))}
        )
        assert registering.status_code == 403
        unknown = await client.post("/graphql", json={"extensions": persisted(sha256(OTHER))})
        assert code_of(unknown) == "PERSISTED_QUERY_NOT_FOUND"
        assert await cache.get(APQ_PREFIX + sha256(OTHER)) is None
        # GET obeys the same list.
        get = await client.get("/graphql", params={"query": OTHER})
        assert get.status_code == 403


async def test_listed_documents_run_by_hash_beside_ordinary_queries(
    odata_replica: ODataReplica, tmp_path: Path
) -> None:
    manifest = {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{"id": sha256(QUERY), "name": "Types", "type": "query", "body": QUERY}],
    }
    path = write_json(tmp_path / "manifest.json", manifest)
    async with ft_gateway(
        odata_replica, http=HttpSettings(persisted_documents=str(path))
    ) as client:
        by_hash = await client.post("/graphql", json={"extensions": persisted(sha256(QUERY))})
        assert by_hash.json() == actors()
        other = await client.post("/graphql", json={"query": OTHER})
        assert other.json() == votes()


@pytest.mark.parametrize(
    "content",
    [
        {sha256(OTHER): QUERY},
        ["not", "a", "map"],
        {"format": "apollo-persisted-query-manifest", "operations": "none"},
        {sha256(QUERY): 5},
    ],
)
async def test_a_broken_allow_list_is_refused(tmp_path: Path, content: Any) -> None:
    path = write_json(tmp_path / "bad.json", content)
    with pytest.raises(DescriptorError, match="persisted documents"):
        load_documents(path)


async def test_a_missing_allow_list_stops_the_gateway_at_startup(tmp_path: Path) -> None:
    settings = HttpSettings(persisted_documents=str(tmp_path / "absent.json"))
    with pytest.raises(DescriptorError, match="persisted documents"):
        async with ft_gateway(http=settings):
            pass


# --- several gateway processes share what they learnt (Redis) ------------------------------


async def test_two_gateways_on_one_redis_share_learnt_documents(
    odata_replica: ODataReplica, redis_url: str
) -> None:
    digest = sha256(QUERY)
    async with (
        ft_gateway(odata_replica, cache_url=redis_url, response_cache=False) as first,
        ft_gateway(odata_replica, cache_url=redis_url, response_cache=False) as second,
    ):
        refused = await second.post("/graphql", json={"extensions": persisted(digest)})
        assert code_of(refused) == "PERSISTED_QUERY_NOT_FOUND"
        await first.post("/graphql", json={"query": QUERY, "extensions": persisted(digest)})
        await asyncio.sleep(0)
        response = await second.post("/graphql", json={"extensions": persisted(digest)})
        assert response.json() == actors()
