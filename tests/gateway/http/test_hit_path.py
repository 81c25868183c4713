"""Response-cache hits answered from the raw request, and the single layer every request
passes: the same answers, headers and refusals as the whole way through."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.http import view as view_module
from gateway.http.persisted import APQ_PREFIX
from gateway.http.protocol import read_params
from gateway.http.ratelimit import RateLimitSettings
from resolvers.odata.replica.server import ODataReplica
from tests.gateway.http.support import GRAPHQL_RESPONSE, KEY_1, app_of, ft_gateway, sha256
from tests.resolvers.odata import raw
from tests.support import ft_credited

pytestmark = pytest.mark.asyncio(loop_scope="module")

ACTORS = "{ FT_Aktoer(first: 2) { nodes { id navn } } }"
BIOGRAPHY = "{ FT_Aktoer(first: 1) { nodes { id biografi } } }"  # level 1 and up


def actors() -> dict[str, Any]:
    nodes = [{"id": i, "navn": raw.aktoer()[i]["navn"]} for i in sorted(raw.aktoer())[:2]]
    return ft_credited({"FT_Aktoer": {"nodes": nodes}})


def biography() -> dict[str, Any]:
    first = sorted(raw.aktoer())[0]
    nodes = [{"id": first, "biografi": raw.aktoer()[first]["biografi"]}]
    return ft_credited({"FT_Aktoer": {"nodes": nodes}})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(odata_replica: ODataReplica) -> AsyncIterator[httpx.AsyncClient]:
    async with ft_gateway(odata_replica) as running:
        yield running


class Parsed:
    """Counts the requests whose parameters were read (and so parsed) by the view."""

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> Parsed:
    counter = Parsed()

    async def counted(request: Any, max_body: int) -> Any:
        counter.count += 1
        return await read_params(request, max_body)

    monkeypatch.setattr(view_module, "read_params", counted)
    return counter


def headers_of(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k != "x-request-id"}


def responses_of(client: httpx.AsyncClient) -> Any:
    return app_of(client).state.gateway.view_for("/graphql").schema.response_cache


async def post(client: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    content = json.dumps(body).encode()
    headers = {"content-type": "application/json", "accept": GRAPHQL_RESPONSE, **headers}
    return await client.post("/graphql", content=content, headers=headers)


async def test_a_repeated_post_is_answered_without_parsing(
    client: httpx.AsyncClient, parsed: Parsed
) -> None:
    responses = responses_of(client)
    body = {"query": ACTORS, "variables": {"unused": 1}}
    first = await post(client, body)
    hits = responses.hits
    second = await post(client, body)
    assert first.status_code == second.status_code == 200
    assert first.json() == actors()
    assert second.content == first.content
    assert headers_of(second) == headers_of(first)
    assert parsed.count == 1
    assert responses.hits == hits + 1
    # The same document sent with other bytes is another raw request: parsed, then a hit.
    third = await post(client, {"variables": {"unused": 1}, "query": ACTORS})
    assert third.content == first.content
    assert parsed.count == 2
    assert responses.hits == hits + 2


async def test_a_remembered_answer_is_only_for_its_callers_level(
    client: httpx.AsyncClient, parsed: Parsed
) -> None:
    body = {"query": BIOGRAPHY}
    keyed = [await post(client, body, **{"x-api-key": KEY_1}) for _ in range(2)]
    assert keyed[0].json() == keyed[1].json() == biography()
    assert parsed.count == 1
    anonymous = (await post(client, body)).json()
    assert anonymous != biography()
    assert {e["extensions"]["code"] for e in anonymous["errors"]} == {"FORBIDDEN"}
    assert parsed.count == 2


async def test_a_get_hit_keeps_its_validators(client: httpx.AsyncClient, parsed: Parsed) -> None:
    params = {"query": ACTORS, "variables": json.dumps({"v": "get"})}
    accept = {"accept": GRAPHQL_RESPONSE}
    first = await client.get("/graphql", params=params, headers=accept)
    second = await client.get("/graphql", params=params, headers=accept)
    assert second.content == first.content
    assert second.json() == actors()
    assert headers_of(second) == headers_of(first)
    assert second.headers["cache-control"].startswith("public, max-age=")
    assert parsed.count == 1
    again = await client.get(
        "/graphql", params=params, headers={**accept, "if-none-match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.headers["etag"] == first.headers["etag"]
    # Another media type is another representation: its own ETag, and no 304 for the first.
    json_first = await client.get(
        "/graphql",
        params=params,
        headers={"accept": "application/json", "if-none-match": first.headers["etag"]},
    )
    assert json_first.status_code == 200
    assert json_first.headers["content-type"] == "application/json"
    assert json_first.headers["etag"] != first.headers["etag"]
    # An identified caller's answer is private, from the memo as the whole way through.
    keyed = [await client.get("/graphql", params=params, headers={"x-api-key": KEY_1})]
    keyed.append(await client.get("/graphql", params=params, headers={"x-api-key": KEY_1}))
    assert headers_of(keyed[1]) == headers_of(keyed[0])
    assert keyed[1].headers["cache-control"].startswith("private, max-age=")
    assert parsed.count == 2


async def test_an_apq_hit_needs_its_hash_still_known(
    client: httpx.AsyncClient, parsed: Parsed
) -> None:
    document = "{ FT_Aktoer(first: 2) { nodes { id navn } } } # apq"
    digest = sha256(document)
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    learnt = await post(client, {"query": document, "extensions": persisted})
    assert learnt.json() == actors()
    by_hash = [await post(client, {"extensions": persisted}) for _ in range(2)]
    assert by_hash[0].content == by_hash[1].content == learnt.content
    assert parsed.count == 2
    cache = app_of(client).state.gateway.runtime.cache
    await cache.set(APQ_PREFIX + digest, None, None)  # the hash is forgotten
    forgotten = await post(client, {"extensions": persisted})
    assert forgotten.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert parsed.count == 3


async def test_an_expired_answer_is_computed_again(
    client: httpx.AsyncClient, parsed: Parsed
) -> None:
    responses = responses_of(client)
    body = {"query": ACTORS, "variables": {"expired": True}}
    first = await post(client, body)
    view = app_of(client).state.gateway.view_for("/graphql")
    (key,) = {a.key for raw_request, a in view.answers.items() if b'"expired"' in raw_request[2]}
    await responses.cache.set(key, None, None)
    hits, misses = responses.hits, responses.misses
    again = await post(client, body)
    assert again.content == first.content
    assert (responses.hits, responses.misses) == (hits, misses + 1)
    assert parsed.count == 2


async def test_a_cost_request_is_never_answered_from_the_memo(
    client: httpx.AsyncClient, parsed: Parsed
) -> None:
    body = {"query": ACTORS, "extensions": {"cost": True}}
    answers = [(await post(client, body)).json() for _ in range(2)]
    for answer in answers:
        assert answer["data"] == actors()["data"]
        assert "upstreamRequests" in answer["extensions"]["cost"]
    assert parsed.count == 2


@pytest.mark.parametrize("content_type", ["text/plain", "application/json; charset=latin-1"])
async def test_a_remembered_body_under_another_content_type_is_refused(
    client: httpx.AsyncClient, content_type: str
) -> None:
    body = {"query": ACTORS}
    assert (await post(client, body)).status_code == 200
    assert (await post(client, body)).status_code == 200
    refused = await post(client, body, **{"content-type": content_type})
    assert refused.status_code == 415
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_an_api_key_in_an_escaped_parameter_name_is_read(
    client: httpx.AsyncClient,
) -> None:
    query = httpx.QueryParams({"query": BIOGRAPHY})
    escaped = await client.get(f"/graphql?ap%69Key={KEY_1}&{query}")
    assert escaped.json() == biography()
    upper = await client.get(f"/graphql?APIKEY={KEY_1}&{query}")
    assert upper.json() == biography()
    wrong = await client.get(f"/graphql?apik%65y=not-a-key-of-ours&{query}")
    assert wrong.status_code == 401
    assert wrong.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_graphql_requests_are_observed(client: httpx.AsyncClient) -> None:
    def served(exposition: str) -> float:
        line = 'dls_http_requests_total{path="/graphql",status="200"}'
        return sum(float(x.split()[-1]) for x in exposition.splitlines() if x.startswith(line))

    before = served((await client.get("/metrics")).text)
    mine = await post(client, {"query": ACTORS}, **{"x-request-id": "mine-1"})
    theirs = await post(client, {"query": ACTORS})
    assert mine.headers["x-request-id"] == "mine-1"
    generated = uuid.UUID(hex=theirs.headers["x-request-id"])
    assert generated.hex == theirs.headers["x-request-id"]
    assert (generated.version, generated.variant) == (4, uuid.RFC_4122)
    assert served((await client.get("/metrics")).text) == before + 2


async def test_rate_limits_and_authentication_apply_to_hits(odata_replica: ODataReplica) -> None:
    limits = RateLimitSettings(per_key=1000, per_ip=3)
    async with ft_gateway(odata_replica, rate_limit=limits) as client:
        body = {"query": ACTORS}
        assert (await post(client, body)).status_code == 200
        assert (await post(client, body)).status_code == 200  # a hit
        refused = await post(client, body, **{"x-api-key": "not-a-key-of-ours"})
        assert refused.status_code == 401
        assert (await post(client, body)).status_code == 200  # the bucket's last request
        limited = await post(client, body)
        assert limited.status_code == 429
        assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert int(limited.headers["retry-after"]) >= 1
