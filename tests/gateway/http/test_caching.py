"""HTTP caching of GET answers: Cache-Control from the registers' freshness, ETag, 304."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.http.conditional import Freshness
from gateway.http.config import HttpSettings
from resolvers.odata.replica.server import ODataReplica
from tests.gateway.http.support import (
    GRAPHQL_RESPONSE,
    JSON,
    KEY_1,
    app_of,
    ft_gateway,
    source_json,
)
from tests.resolvers.odata import raw
from tests.support import ft_credited

pytestmark = pytest.mark.asyncio(loop_scope="module")

ACTORS = "{ FT_Aktoer(first: 2) { nodes { id navn } } }"


def actors() -> dict[str, Any]:
    nodes = [{"id": i, "navn": raw.aktoer()[i]["navn"]} for i in sorted(raw.aktoer())[:2]]
    return ft_credited({"FT_Aktoer": {"nodes": nodes}})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(odata_replica: ODataReplica) -> AsyncIterator[httpx.AsyncClient]:
    # CZ is registered (never reached) so that answers can touch two registers.
    async with ft_gateway(odata_replica, "CZ") as running:
        yield running


async def get(client: httpx.AsyncClient, query: str, **headers: str) -> httpx.Response:
    return await client.get("/graphql", params={"query": query}, headers=headers)


async def test_an_anonymous_answer_is_public_for_the_registers_ttl(
    client: httpx.AsyncClient,
) -> None:
    response = await get(client, ACTORS)
    assert response.status_code == 200
    assert response.json() == actors()
    assert response.headers["cache-control"] == f"public, max-age={source_json('FT')['ttl']}"
    assert response.headers["etag"].startswith('"')
    assert response.headers["etag"].endswith('"')
    vary = {v.strip().lower() for v in response.headers["vary"].split(",")}
    assert {"accept", "authorization", "x-api-key"} <= vary


async def test_a_matching_if_none_match_is_304(client: httpx.AsyncClient) -> None:
    first = await get(client, ACTORS)
    etag = first.headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = await get(client, ACTORS, **{"if-none-match": header})
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == first.headers["cache-control"]
    changed = await get(client, ACTORS, **{"if-none-match": '"something-else"'})
    assert changed.status_code == 200
    assert changed.json() == actors()


async def test_each_media_type_has_its_own_etag(client: httpx.AsyncClient) -> None:
    legacy = await get(client, ACTORS, accept=JSON)
    modern = await get(client, ACTORS, accept=GRAPHQL_RESPONSE)
    assert legacy.content == modern.content
    assert legacy.headers["etag"] != modern.headers["etag"]
    cross = await get(
        client, ACTORS, accept=GRAPHQL_RESPONSE, **{"if-none-match": legacy.headers["etag"]}
    )
    assert cross.status_code == 200


async def test_an_identified_caller_gets_a_private_answer(client: httpx.AsyncClient) -> None:
    response = await get(client, ACTORS, **{"x-api-key": KEY_1})
    assert response.status_code == 200
    assert response.headers["cache-control"] == f"private, max-age={source_json('FT')['ttl']}"
    assert response.headers["etag"]


@pytest.mark.parametrize(
    "query",
    [
        "{ FT_Aktoer(first: 1) { nodes { id biografi } } }",  # FORBIDDEN for level 0
        "{ FT_Sambehandlinger { nodes { id } } }",  # the upstream answers 404
        "{ FT_Aktoer { nodes { nope } } }",  # does not validate
    ],
)
async def test_an_answer_with_errors_is_never_cached(client: httpx.AsyncClient, query: str) -> None:
    response = await get(client, query)
    assert response.json()["errors"]
    assert response.headers["cache-control"] == "no-store"
    assert "etag" not in response.headers


async def test_post_answers_carry_no_validators(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": ACTORS})
    assert response.json() == actors()
    assert "etag" not in response.headers
    assert "cache-control" not in response.headers


async def test_max_age_is_the_smallest_ttl_of_the_registers_touched(
    client: httpx.AsyncClient,
) -> None:
    view = app_of(client).state.gateway.view_for("/graphql")
    schema = view.graphql_schema
    cz_root = next(name for name in schema.query_type.fields if name.startswith("CZ_"))
    cz = f"{{ {cz_root}(first: 1) {{ totalCount }} }}"
    both = f"{{ FT_Aktoer(first: 1) {{ totalCount }} {cz_root}(first: 1) {{ totalCount }} }}"
    fragment = "query { ...F } fragment F on Query { FT_Aktoer { nodes { id } } }"
    ft_ttl, cz_ttl = source_json("FT")["ttl"], source_json("CZ")["ttl"]
    freshness: Freshness = view.freshness
    assert freshness.registers(ACTORS) == {"FT"}
    assert freshness.registers(cz) == {"CZ"}
    assert freshness.registers(fragment) == {"FT"}
    assert freshness.seconds(ACTORS) == ft_ttl
    assert freshness.seconds(cz) == cz_ttl
    assert freshness.seconds(both) == min(ft_ttl, cz_ttl)
    # Nothing of a register (only __typename): the shortest TTL served.
    assert freshness.seconds("{ __typename }") == min(ft_ttl, cz_ttl)
    assert Freshness(schema, {"FT": ft_ttl}, max_age=7).seconds(ACTORS) == 7
    response = await get(client, "{ __typename }")
    assert response.headers["cache-control"] == f"public, max-age={min(ft_ttl, cz_ttl)}"


async def test_a_configured_max_age_wins(odata_replica: ODataReplica) -> None:
    async with ft_gateway(odata_replica, http=HttpSettings(max_age=7)) as client:
        response = await get(client, ACTORS)
        assert response.headers["cache-control"] == "public, max-age=7"
