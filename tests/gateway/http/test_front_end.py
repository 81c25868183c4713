"""The gateway as a front-end developer's backend: CORS for pages on this machine, JSON 404s
and 405s, spelling hints from the upstreams' names, and rate limits that let a client page.

A real uvicorn server on loopback (FT, never contacted but for the paging test's replica).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import websockets
from websockets.exceptions import InvalidStatus

from gateway.cli import DEMO_BURST, DEMO_RATE, demo_rate_limit
from gateway.http.app import create_app
from gateway.http.auth import AuthSettings
from gateway.http.config import HttpSettings, Settings
from gateway.http.ratelimit import RateLimiter, RateLimitSettings
from gateway.http.server import RunningServer, serve_asgi
from resolvers.odata.replica.data import load_ft_data
from tests.support import register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")

APOLLO_HEADERS = "content-type, authorization, x-api-key, apollographql-client-name, " + (
    "apollographql-client-version, apollo-require-preflight"
)
QUERY = {"query": "{ __typename }"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[RunningServer]:
    with register_subset("FT", "DE") as registers:
        settings = Settings(
            registers_dir=registers,
            sources={"FT": {"url": "http://127.0.0.1:9/api/", "timeout": 1}},
            auth=AuthSettings.demo(),
            rate_limit=None,
            http=HttpSettings(cors_origins=("https://app.example",), cors_localhost=True),
        )
        running = await serve_asgi(create_app(settings))
        try:
            yield running
        finally:
            await running.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url) as client:
        yield client


def preflight(origin: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": APOLLO_HEADERS,
    }


# -- CORS ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:5173",
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "http://[::1]:4200",
        "https://localhost",
        "https://app.example",
    ],
)
async def test_pages_on_this_machine_pass_the_preflight(
    http: httpx.AsyncClient, origin: str
) -> None:
    for path in ("/graphql", "/FT/v1", "/catalog.json"):
        response = await http.options(path, headers=preflight(origin))
        assert response.status_code == 200, path
        assert response.headers["access-control-allow-origin"] == origin
        allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
        assert {h.strip() for h in APOLLO_HEADERS.split(",")} <= allowed
    answer = await http.post("/graphql", json=QUERY, headers={"origin": origin})
    assert answer.json() == {"data": {"__typename": "Query"}}
    assert answer.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost.evil.example",
        "http://evil.example",
        "http://127.0.0.2:80",
        "http://localhost:5173.evil.example",
        "file://localhost",
    ],
)
async def test_other_origins_are_not_allowed(http: httpx.AsyncClient, origin: str) -> None:
    response = await http.options("/graphql", headers=preflight(origin))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    answer = await http.post("/graphql", json=QUERY, headers={"origin": origin})
    assert "access-control-allow-origin" not in answer.headers


async def test_a_page_on_this_machine_may_open_a_websocket(server: RunningServer) -> None:
    url = server.url.replace("http://", "ws://") + "/graphql"
    protocol = [websockets.Subprotocol("graphql-transport-ws")]
    socket = await websockets.connect(
        url, subprotocols=protocol, origin=websockets.Origin("http://localhost:5173")
    )
    try:
        await socket.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await socket.recv()) == {"type": "connection_ack"}
    finally:
        await socket.close()
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            url, subprotocols=protocol, origin=websockets.Origin("http://evil.example")
        )
    assert refused.value.response.status_code == 403


async def test_without_the_setting_no_origin_is_allowed() -> None:
    with register_subset("DE") as registers:
        app = create_app(Settings(registers_dir=registers, rate_limit=None))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            response = await c.options("/graphql", headers=preflight("http://localhost:5173"))
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


# -- JSON 404 and 405 ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/nothing", "/FT/v9", "/XX/v1", "/FT/v9/schema", "/graphq"])
async def test_unknown_paths_get_a_json_404_listing_the_endpoints(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["extensions"]["endpoints"] == ["/DE/v1", "/FT/v1", "/graphql"]
    assert "/catalog.json" in error["extensions"]["other"]
    assert path in error["message"]
    assert "/FT/v1" in error["message"]


async def test_a_wrong_method_gets_a_json_405(http: httpx.AsyncClient) -> None:
    for method, path in [("DELETE", "/graphql"), ("PUT", "/FT/v1"), ("POST", "/healthz")]:
        response = await http.request(method, path)
        assert response.status_code == 405, path
        assert "allow" in response.headers
        (error,) = response.json()["errors"]
        assert error["extensions"]["code"] == "METHOD_NOT_ALLOWED"
        assert method in error["message"]


# -- hints from the upstreams' names -------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "suggested"),
    [
        ("{ FT_Stemme { nodes { aktørid } } }", "aktoerid"),
        ("{ FT_Aktør { nodes { id } } }", "FT_Aktoer"),
        ("{ FT_Stemme(where: {aktørid: {eq: 1}}) { nodes { id } } }", "aktoerid"),
        ("{ DE_Wahlparameter { nodes { wahl-datum } } }", "wahl_datum"),
        ("{ Aktoer { nodes { id } } }", "FT_Aktoer"),
    ],
)
async def test_the_upstreams_names_get_a_hint(
    http: httpx.AsyncClient, document: str, suggested: str
) -> None:
    response = await http.post("/graphql", json={"query": document})
    (error,) = response.json()["errors"]
    assert f"'{suggested}'" in error["message"]
    assert error["extensions"]["code"] in ("GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED")


async def test_a_name_the_schema_does_not_have_gets_no_invented_hint(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/graphql", json={"query": "{ FT_Stemme { nodes { sjø } } }"})
    (error,) = response.json()["errors"]
    assert "Did you mean" not in error["message"]
    assert "didYouMean" not in error["extensions"]


# -- rate limits ---------------------------------------------------------------------------


def _pages_of_every_ft_entity(per_page: int = 100) -> int:
    """Pages of ``per_page`` rows to read every FT entity, from the recorded tables."""
    return sum(math.ceil(len(rows) / per_page) for rows in load_ft_data().rows.values())


async def test_the_demo_limit_lets_a_client_page_every_ft_entity() -> None:
    pages = _pages_of_every_ft_entity()
    assert pages > 300  # more than the old limit of 300 a minute
    settings = demo_rate_limit(DEMO_RATE, DEMO_BURST)
    assert settings is not None
    now = [1_000_000.0]
    limiter = RateLimiter(settings, clock=lambda: now[0])
    # As fast as a client can: 10 pages a second.
    for _ in range(pages):
        assert await limiter.hit("ip:127.0.0.1", settings.per_ip) is None
        now[0] += 0.1
    assert demo_rate_limit(0, DEMO_BURST) is None


async def test_a_bucket_allows_a_burst_then_its_rate() -> None:
    now = [1_000_000.0]
    # Six a minute (one every ten seconds), ten at once.
    limiter = RateLimiter(RateLimitSettings(per_ip=6, burst=10), clock=lambda: now[0])
    verdicts = [await limiter.hit("ip:x", 6) for _ in range(11)]
    assert verdicts[:10] == [None] * 10
    assert verdicts[10] == 10
    now[0] += 4.0
    assert await limiter.hit("ip:x", 6) == 6  # 0.4 of a token back: six seconds to go
    now[0] += 6.0
    assert await limiter.hit("ip:x", 6) is None
    assert await limiter.hit("ip:y", 6) is None  # another identity has its own bucket
    # A long pause refills the bucket, never beyond it.
    now[0] += 3600
    assert [await limiter.hit("ip:x", 6) for _ in range(11)][9:] == [None, 10]
    # Without a burst, the bucket is one minute's worth.
    plain = RateLimiter(RateLimitSettings(per_ip=3), clock=lambda: now[0])
    assert [await plain.hit("ip:z", 3) for _ in range(4)] == [None, None, None, 20]


async def test_redis_buckets_are_shared_between_processes(redis_url: str) -> None:
    now = [2_000_000.0]
    settings = RateLimitSettings(per_key=2, burst=3, redis_url=redis_url)
    first = RateLimiter(settings, clock=lambda: now[0])
    second = RateLimiter(settings, clock=lambda: now[0])
    try:
        identity = f"key:shared-{uuid.uuid4()}"
        verdicts = [await limiter.hit(identity, 2) for limiter in (first, second) * 2]
        assert verdicts == [None, None, None, 30]
        now[0] += 75  # two and a half tokens back
        assert [await second.hit(identity, 2) for _ in range(3)] == [None, None, 15]
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_refusal_says_the_rate_and_the_burst() -> None:
    with register_subset("DE") as registers:
        limits = RateLimitSettings(per_ip=2, burst=3)
        app = create_app(Settings(registers_dir=registers, rate_limit=limits))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            statuses = [(await c.post("/graphql", json=QUERY)).status_code for _ in range(4)]
            refused = await c.post("/graphql", json=QUERY)
    assert statuses == [200, 200, 200, 429]
    extensions = refused.json()["errors"][0]["extensions"]
    retry = extensions.pop("retryAfter")
    assert extensions == {"code": "RATE_LIMITED", "limit": 2, "burst": 3}
    assert 25 <= retry <= 30  # a token every 30 s, one almost due
    assert refused.headers["retry-after"] == str(retry)
