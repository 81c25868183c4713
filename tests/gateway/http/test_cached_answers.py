"""Response-cache hits sent as the bytes they were cached as, and the memo of Accept headers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from gateway.graphql.response_cache import CachedResult, ResponseCache, encode_json
from gateway.http.protocol import GRAPHQL_RESPONSE_JSON, JSON, RequestError, negotiate
from gateway.sources.cache import Cache
from resolvers.odata.replica.server import ODataReplica
from tests.gateway.http.support import app_of, ft_gateway
from tests.resolvers.odata import raw
from tests.support import ft_credited

ACTORS = "{ FT_Aktoer(first: 3) { nodes { id navn } } }"


def test_a_cached_answer_is_the_bytes_a_fresh_one_would_send() -> None:
    data = {"FT_Aktoer": {"nodes": [{"id": 1, "navn": "Æbelø", "at": None, "n": 2.5}]}}
    cached = CachedResult(encode_json(data))
    fresh = ExecutionResult(data=data, errors=None)
    assert cached.body() == orjson.dumps({"data": fresh.data})
    assert cached.errors is None
    assert cached.extensions is None
    # Decoded only when read, and then equal to what was stored.
    assert cached._data is None
    assert cached.data == data
    assert cached.data is cached.data


def test_integers_beyond_64_bits_are_kept_exactly() -> None:
    data = {"big": 2**70, "small": -(2**65)}
    cached = CachedResult(encode_json(data))
    assert json.loads(cached.body()) == {"data": data}
    assert cached.data == data


async def test_the_cache_tier_holds_bytes_and_only_clean_answers() -> None:
    cache = Cache(None)
    responses = ResponseCache(cache, "/graphql", {"FT": 60.0})
    context = SimpleNamespace(touched={"FT"}, notices=[])
    key = responses.key(ACTORS, None, None, 0)
    assert await responses.get(key) is None
    data = {"FT_Aktoer": {"nodes": [{"id": 7, "navn": "Ø"}]}}
    kept = await responses.store(key, ExecutionResult(data=data, errors=None), context)
    assert await cache.get(key) == encode_json(data)
    # The answer just stored is sent as the very bytes kept, with the data it came from.
    assert isinstance(kept, CachedResult)
    assert kept.encoded is await cache.get(key)
    assert kept._data is data
    hit = await responses.get(key)
    assert isinstance(hit, CachedResult)
    assert hit.data == data
    assert (responses.hits, responses.misses) == (1, 1)
    # Errors, notices, or a register without a TTL: never kept.
    stale = SimpleNamespace(touched={"FT"}, notices=[{"code": "STALE"}])
    no_ttl = SimpleNamespace(touched={"DE"}, notices=[])
    clean = ExecutionResult(data=data, errors=None)
    failed = ExecutionResult(data=data, errors=[GraphQLError("boom")])
    for other, result, ctx in [("a", failed, context), ("b", clean, stale), ("c", clean, no_ttl)]:
        other_key = responses.key(ACTORS, {"v": other}, None, 0)
        assert await responses.store(other_key, result, ctx) is None
        assert await cache.get(other_key) is None


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json", JSON),
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
        ("*/*", JSON),
        ("application/json;q=0.5, " + "x/y;q=0.1, " * 40 + "*/*;q=0.1", JSON),
    ],
)
def test_negotiation_is_the_same_the_second_time(accept: str, expected: str) -> None:
    assert negotiate(accept) == expected
    assert negotiate(accept) == expected


def test_an_unacceptable_header_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(RequestError) as refused:
            negotiate("text/html")
        assert refused.value.status == 406


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with ODataReplica() as replica, ft_gateway(replica) as running:
        yield running


@pytest.mark.asyncio(loop_scope="module")
async def test_a_response_cache_hit_sends_the_first_answers_bytes(
    client: httpx.AsyncClient,
) -> None:
    view = app_of(client).state.gateway.view_for("/graphql")
    responses = view.schema.response_cache
    before = responses.hits
    first = await client.post("/graphql", json={"query": ACTORS})
    second = await client.post("/graphql", json={"query": ACTORS})
    third = await client.get("/graphql", params={"query": ACTORS})
    assert first.status_code == second.status_code == third.status_code == 200
    assert first.content == second.content == third.content
    assert responses.hits - before == 2
    expected: list[dict[str, Any]] = [
        {"id": i, "navn": raw.aktoer()[i]["navn"]} for i in sorted(raw.aktoer())[:3]
    ]
    assert second.json() == ft_credited({"FT_Aktoer": {"nodes": expected}})
    # A GET hit still gets its validator, and a 304 for it.
    again = await client.get(
        "/graphql", params={"query": ACTORS}, headers={"if-none-match": third.headers["etag"]}
    )
    assert again.status_code == 304
