"""FT exports end to end: HTTP → gateway → OData adapter → FT replica on a real socket.

Every expected row comes from the recorded files (tests/resolvers/odata/raw.py), never from the
gateway.
The gateway serves ``opdateringsdato`` as the upstream writes it, so the recorded text is
what the files hold.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
import pytest_asyncio

from gateway.http.app import create_app
from gateway.http.config import Settings
from gateway.http.server import serve_asgi
from resolvers.odata.replica.server import ODataReplica
from resolvers.replica_kit.faults import Fault
from tests.gateway.exports.helpers import (
    STEMME_COLUMNS,
    as_csv_text,
    csv_rows,
    ft_moment,
    stemme,
)
from tests.resolvers.odata import raw
from tests.support import gateway_client, graphql, register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")

RECORDED_STEMME = 39_882


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app_client(odata_replica: ODataReplica) -> AsyncIterator[httpx.AsyncClient]:
    with register_subset("FT") as registers:
        async with gateway_client(
            registers, {"FT": {"url": odata_replica.url, "timeout": 5}}
        ) as client:
            yield client


@pytest_asyncio.fixture(loop_scope="module")
async def client(app_client: httpx.AsyncClient, odata_replica: ODataReplica) -> httpx.AsyncClient:
    """The gateway with an empty replica log (the cache is kept: full exports are slow)."""
    odata_replica.faults.clear()
    odata_replica.log.clear()
    return app_client


async def _cold(client: httpx.AsyncClient) -> None:
    await client.app.state.gateway.sources["FT"].services.cache.clear()  # type: ignore[attr-defined]


def _csv_expected(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [STEMME_COLUMNS] + [[as_csv_text(r[c]) for c in STEMME_COLUMNS] for r in rows]


def _json_expected(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{c: r[c] for c in STEMME_COLUMNS} for r in rows]


# --- every FT_Stemme row ---------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def all_csv(
    app_client: httpx.AsyncClient, odata_replica: ODataReplica
) -> tuple[httpx.Response, int]:
    await _cold(app_client)
    odata_replica.faults.clear()
    odata_replica.log.clear()
    response = await app_client.get("/FT/v1/download/Stemme.csv")
    return response, odata_replica.data_requests()


async def test_all_stemme_rows_as_csv_equal_the_recorded_rows(
    all_csv: tuple[httpx.Response, int],
) -> None:
    response, _ = all_csv
    assert response.status_code == 200
    expected = raw.stemme()
    assert len(expected) == RECORDED_STEMME
    assert csv_rows(response.content) == _csv_expected(expected)
    assert response.headers["x-total-count"] == str(RECORDED_STEMME)
    assert response.headers["content-type"] == "text/csv; charset=utf-8; header=present"
    assert response.headers["content-disposition"] == 'attachment; filename="FT_Stemme.csv"'
    # RFC 4180: every record ends with CRLF, and there is no other line end in this data.
    assert response.content.count(b"\r\n") == RECORDED_STEMME + 1
    assert b"\n" not in response.content.replace(b"\r\n", b"")


async def test_all_rows_cost_one_request_per_upstream_page(
    all_csv: tuple[httpx.Response, int],
) -> None:
    _, requests = all_csv
    # The upstream serves at most 100 rows per response; the export asks for no row twice
    # beyond the one-row look-ahead of each window of 1000.
    pages = math.ceil(RECORDED_STEMME / 100)
    assert pages <= requests <= pages + math.ceil(RECORDED_STEMME / 1000)


async def test_all_rows_as_ndjson_and_parquet(client: httpx.AsyncClient) -> None:
    expected = _json_expected(raw.stemme())
    response = await client.get("/FT/v1/download/Stemme.ndjson")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["x-total-count"] == str(RECORDED_STEMME)
    lines = response.content.split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(line) for line in lines[:-1]] == expected

    response = await client.get("/FT/v1/download/Stemme.parquet")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="FT_Stemme.parquet"'
    parquet = pq.ParquetFile(io.BytesIO(response.content))
    assert parquet.num_row_groups == math.ceil(RECORDED_STEMME / 1000)
    # Parquet holds the date-times as UTC timestamps of the recorded wall-clock times.
    timestamps = [{**r, "opdateringsdato": ft_moment(r["opdateringsdato"])} for r in expected]
    assert parquet.read().to_pylist() == timestamps


# --- where and order -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"afstemningid": {"eq": 1}}, lambda r: r["afstemningid"] == 1),
        (
            {"and": [{"afstemningid": {"gte": 100}}, {"afstemningid": {"lt": 120}}]},
            lambda r: 100 <= r["afstemningid"] < 120,
        ),
        (
            {"or": [{"typeid": {"eq": 2}}, {"aktoerid": {"in": [13, 247]}}], "id": {"lt": 80000}},
            lambda r: (r["typeid"] == 2 or r["aktoerid"] in (13, 247)) and r["id"] < 80000,
        ),
        (
            {"opdateringsdato": {"gte": "2021-01-01T00:00:00"}, "typeid": {"neq": 3}},
            lambda r: r["opdateringsdato"] >= "2021-01-01T00:00:00" and r["typeid"] != 3,
        ),
    ],
    ids=["eq", "and", "or", "dates"],
)
async def test_where_selects_the_recorded_subset(
    client: httpx.AsyncClient, where: dict[str, Any], expected: Any
) -> None:
    rows = [r for r in raw.stemme() if expected(r)]
    assert 0 < len(rows) < RECORDED_STEMME / 2
    response = await client.get("/FT/v1/download/Stemme.csv", params={"where": json.dumps(where)})
    assert response.status_code == 200, response.text
    assert csv_rows(response.content) == _csv_expected(rows)
    assert response.headers["x-total-count"] == str(len(rows))


async def test_order_and_an_empty_result(client: httpx.AsyncClient) -> None:
    rows = sorted(stemme(afstemningid=3), key=lambda r: (-r["aktoerid"], r["id"]))
    params = {"where": '{"afstemningid":{"eq":3}}', "order": '[{"aktoerid":"DESC"}]'}
    response = await client.get("/FT/v1/download/Stemme.ndjson", params=params)
    assert [json.loads(line) for line in response.content.splitlines()] == _json_expected(rows)

    response = await client.get("/FT/v1/download/Stemme.csv", params={"where": '{"id":{"lt":0}}'})
    assert response.status_code == 200
    assert response.content == b"id,typeid,afstemningid,aktoerid,opdateringsdato\r\n"
    assert response.headers["x-total-count"] == "0"


async def test_the_upstream_sees_the_same_filter_as_for_graphql(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    where = {
        "or": [{"typeid": {"in": [1, 2]}}, {"aktoerid": {"eq": 13}}],
        "afstemningid": {"lte": 40},
    }
    query = "query($w: FT_StemmeFilterInput) { FT_Stemme(first: 1000, where: $w) { nodes { id } } }"
    await _cold(client)
    body = await graphql(client, query, {"w": where})
    assert "errors" not in body
    from_graphql = {r.params["$filter"] for r in odata_replica.log}
    odata_replica.log.clear()
    response = await client.get("/FT/v1/download/Stemme.csv", params={"where": json.dumps(where)})
    assert response.status_code == 200
    from_export = {r.params["$filter"] for r in odata_replica.log}
    assert from_export == from_graphql
    assert len(from_export) == 1


async def test_head_builds_the_file_that_get_then_serves(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    # HEAD answers what GET will send (length, ETag, rows): the file is built once, by HEAD.
    params = {"where": '{"afstemningid":{"eq":2}}'}
    response = await client.head("/FT/v1/download/Stemme.parquet", params=params)
    assert response.status_code == 200
    expected = stemme(afstemningid=2)
    assert response.headers["x-total-count"] == str(len(expected))
    assert response.content == b""
    length = int(response.headers["content-length"])
    assert odata_replica.data_requests() >= 1
    odata_replica.log.clear()
    body = await client.get("/FT/v1/download/Stemme.parquet", params=params)
    assert odata_replica.data_requests() == 0
    assert len(body.content) == length
    assert body.headers["etag"] == response.headers["etag"]
    table = pq.read_table(io.BytesIO(body.content))
    assert table.column("id").to_pylist() == [r["id"] for r in expected]


# --- mistakes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/FT/v1/download/Nope.csv", {}, 404, "NOT_FOUND"),
        ("/FT/v1/download/FT_Stemme.csv", {}, 404, "NOT_FOUND"),
        ("/FT/v1/download/Stemme.xlsx", {}, 404, "NOT_FOUND"),
        ("/FT/v1/download/Stemme", {}, 404, "NOT_FOUND"),
        ("/FT/v9/download/Stemme.csv", {}, 404, "NOT_FOUND"),
        ("/XX/v1/download/Stemme.csv", {}, 404, "NOT_FOUND"),
        ("/FT/v1/download/Stemme.csv", {"where": "{"}, 400, "BAD_USER_INPUT"),
        ("/FT/v1/download/Stemme.csv", {"where": '{"navn":{"eq":"x"}}'}, 400, "BAD_USER_INPUT"),
        ("/FT/v1/download/Stemme.csv", {"order": '[{"id":"UP"}]'}, 400, "BAD_USER_INPUT"),
    ],
)
async def test_mistakes_get_json_errors_before_any_upstream_request(
    client: httpx.AsyncClient,
    odata_replica: ODataReplica,
    path: str,
    params: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == code
    assert error["message"]
    assert odata_replica.data_requests() == 0


async def test_entities_are_named_without_the_register_prefix(client: httpx.AsyncClient) -> None:
    # Aktør → Aktoer, as in the GraphQL type FT_Aktoer.
    response = await client.get(
        "/FT/v1/download/Aktoer.ndjson", params={"where": '{"id":{"in":[1,2]}}'}
    )
    assert response.status_code == 200
    names = [json.loads(line)["navn"] for line in response.content.splitlines()]
    assert names == [raw.aktoer()[1]["navn"], raw.aktoer()[2]["navn"]]


# --- upstream failures -----------------------------------------------------------------


async def test_a_failure_before_the_first_row_is_a_json_error(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    await _cold(client)
    odata_replica.faults.inject(Fault("malformed", times=None))
    response = await client.get("/FT/v1/download/Stemme.csv")
    assert response.status_code == 502
    assert response.json()["errors"][0]["extensions"]["code"] == "UPSTREAM_INVALID"


async def test_a_failure_mid_export_leaves_the_transfer_incomplete(
    odata_replica: ODataReplica,
) -> None:
    # Over a real socket: the client must see a broken transfer, never a short "complete" file.
    odata_replica.faults.clear()
    received = bytearray()

    async def read_all(response: httpx.Response) -> None:
        async for chunk in response.aiter_bytes():
            received.extend(chunk)

    with register_subset("FT") as registers:
        settings = Settings(registers_dir=registers, sources={"FT": {"url": odata_replica.url}})
        server = await serve_asgi(create_app(settings))
        try:
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=30) as http,
                http.stream("GET", "/FT/v1/download/Stemme.csv") as response,
            ):
                assert response.status_code == 200
                # The first window is in; every later upstream answer is broken.
                odata_replica.faults.inject(Fault("malformed", times=None))
                with pytest.raises(httpx.RemoteProtocolError):
                    await read_all(response)
        finally:
            odata_replica.faults.clear()
            await server.stop()
    records = csv_rows(bytes(received))
    assert 1000 <= len(records) - 1 < RECORDED_STEMME


async def test_a_client_that_leaves_stops_the_export(odata_replica: ODataReplica) -> None:
    odata_replica.faults.clear()
    with register_subset("FT") as registers:
        settings = Settings(registers_dir=registers, sources={"FT": {"url": odata_replica.url}})
        server = await serve_asgi(create_app(settings))
        try:
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=30) as http,
                http.stream("GET", "/FT/v1/download/Stemme.csv?where={}") as response,
            ):
                assert response.status_code == 200
                odata_replica.log.clear()
            # The client is gone: the export and its prefetch end, no more upstream requests.
            await asyncio.sleep(0.5)
            after_leaving = odata_replica.data_requests()
            await asyncio.sleep(1.0)
            assert odata_replica.data_requests() == after_leaving
            assert after_leaving < 50
        finally:
            await server.stop()
