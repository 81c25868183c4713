"""Operations: request ids end to end, JSON logs, Prometheus metrics, readiness, stale answers."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from gateway.http.observe import JsonFormatter
from resolvers.odata.replica.server import ODataReplica
from resolvers.replica_kit.faults import Fault
from tests.support import gateway_client, graphql, register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def client(odata_replica: ODataReplica) -> AsyncIterator[httpx.AsyncClient]:
    odata_replica.log.clear()
    odata_replica.faults.clear()
    overrides = {"FT": {"url": odata_replica.url, "ttl": 0.2, "staleIfError": 60, "retries": 0}}
    with register_subset("FT") as registers:
        async with gateway_client(registers, overrides) as c:
            yield c


async def test_request_id_reaches_the_upstream_and_comes_back(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ FT_Aktoertype(first: 2) { nodes { id } } }"},
        headers={"X-Request-ID": "req-42"},
    )
    assert response.headers["x-request-id"] == "req-42"
    assert [r.headers.get("x-request-id", "") for r in odata_replica.log] == ["req-42"]
    generated = await client.post("/graphql", json={"query": "{ FT_Stemmetype { totalCount } }"})
    assert len(generated.headers["x-request-id"]) == 32


async def test_metrics_expose_the_series(client: httpx.AsyncClient) -> None:
    await graphql(client, "{ FT_Stemmetype { nodes { id } } }")
    await graphql(client, "{ FT_Stemmetype { nodes { id } } }")
    text = (await client.get("/metrics")).text
    for series in (
        'dls_http_requests_total{path="/graphql",status="200"}',
        "dls_http_request_seconds_bucket",
        'dls_upstream_requests_total{register="FT"}',
        'dls_upstream_errors_total{register="FT"}',
        'dls_upstream_bytes_total{register="FT"}',
        "dls_upstream_request_seconds_bucket",
        'dls_cache_hits_total{tier="l1"}',
        'dls_cache_hits_total{tier="l2"}',
        "dls_cache_misses_total",
        'dls_upstream_circuit_state{register="FT"} 0.0',
        "dls_signature_failures_total",
        "dls_denied_accesses_total",
    ):
        assert series in text, series


async def test_stale_if_error_serves_the_last_good_answer_with_its_age(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    query = "{ FT_Aktoertype(first: 3) { nodes { id type } } }"
    good = await graphql(client, query)
    assert "errors" not in good
    odata_replica.faults.inject(Fault("status", status=503, times=None))
    await asyncio.sleep(0.3)  # past the TTL
    stale = await graphql(client, query)
    odata_replica.faults.clear()
    assert stale["data"] == good["data"]
    (notice,) = [n for n in stale["extensions"]["notices"] if n["code"] == "STALE_IF_ERROR"]
    assert notice["ageSeconds"] >= 0.2


async def test_readiness_reports_registers_and_upstreams(client: httpx.AsyncClient) -> None:
    body = (await client.get("/readyz")).json()
    assert body["status"] == "ready"
    assert body["registers"] == ["FT"]
    assert body["upstreams"]["FT"] == {"circuit": "closed", "ready": True}


async def test_json_log_lines_carry_the_request_id() -> None:
    from gateway.sources.metrics import REQUEST_ID

    token = REQUEST_ID.set("abc")
    try:
        record = logging.LogRecord(
            "gateway.x", logging.WARNING, __file__, 1, "hello %s", ("you",), None
        )
        line = json.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line["message"] == "hello you"
    assert line["request_id"] == "abc"
    assert line["level"] == "warning"
