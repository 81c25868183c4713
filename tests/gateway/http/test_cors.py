"""CORS per origin: a configured origin gets the headers, any other origin does not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from gateway.http.config import HttpSettings
from tests.gateway.http.support import ft_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALLOWED = "https://valgresultater.example"
OTHER = "https://elsewhere.example"
QUERY = {"query": "{ __typename }"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with ft_gateway(http=HttpSettings(cors_origins=(ALLOWED,))) as running:
        yield running


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": method,
        "access-control-request-headers": "content-type, x-api-key, if-none-match",
    }


async def test_a_configured_origin_may_post_and_read_the_etag(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json=QUERY, headers={"origin": ALLOWED})
    assert response.json() == {"data": {"__typename": "Query"}}
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "origin" in response.headers["vary"].lower()
    got = await client.get("/graphql", params=QUERY, headers={"origin": ALLOWED})
    assert got.headers["access-control-allow-origin"] == ALLOWED
    exposed = {h.strip().lower() for h in got.headers["access-control-expose-headers"].split(",")}
    assert "etag" in exposed


async def test_a_configured_origin_passes_the_preflight(client: httpx.AsyncClient) -> None:
    response = await client.options("/graphql", headers=preflight(ALLOWED))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "x-api-key" in allowed
    assert "if-none-match" in allowed


async def test_another_origin_gets_no_cors_headers(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json=QUERY, headers={"origin": OTHER})
    assert "access-control-allow-origin" not in response.headers
    denied = await client.options("/graphql", headers=preflight(OTHER))
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers
