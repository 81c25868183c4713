"""GraphQL over HTTP by the spec: media types, GET and POST, status codes, request errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from resolvers.odata.replica.server import ODataReplica
from tests.gateway.http.support import GRAPHQL_RESPONSE, JSON, ft_gateway
from tests.resolvers.odata import raw
from tests.support import ft_credited

pytestmark = pytest.mark.asyncio(loop_scope="module")

TYPENAME = {"query": "{ __typename }"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(odata_replica: ODataReplica) -> AsyncIterator[httpx.AsyncClient]:
    async with ft_gateway(odata_replica) as running:
        yield running


def media(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


def request_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert a GraphQL-shaped error answer without ``data``; return its first error."""
    assert response.status_code == status, response.text
    body = response.json()
    assert "data" not in body, body
    error: dict[str, Any] = body["errors"][0]
    assert error["extensions"]["code"] == code, body
    assert error["message"]
    return error


# --- media types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        (JSON, JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE};q=0.5", JSON),
        (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"text/html, {GRAPHQL_RESPONSE};q=0.1", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0, {JSON}", JSON),
    ],
)
async def test_the_accept_header_picks_the_media_type(
    client: httpx.AsyncClient, accept: str | None, expected: str
) -> None:
    headers = {"accept": accept} if accept is not None else {}
    if accept is None:
        # httpx adds "Accept: */*" unless told otherwise.
        headers = {"accept": ""}
    response = await client.post("/graphql", json=TYPENAME, headers=headers)
    assert response.status_code == 200
    assert media(response) == expected
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_an_unacceptable_media_type_is_406(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json=TYPENAME, headers={"accept": "text/csv"})
    request_error(response, 406, "NOT_ACCEPTABLE")
    assert media(response) == JSON


async def test_non_ascii_round_trips_as_utf8(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=json.dumps({"query": '{ __type(name: "Aktør") { name } }'}).encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert response.content.decode("utf-8")
    assert response.json() == {"data": {"__type": None}}


# --- GET -----------------------------------------------------------------------------------


async def test_a_query_over_get_with_variables(client: httpx.AsyncClient) -> None:
    ballot = raw.stemme()[0]["afstemningid"]
    expected = sum(1 for r in raw.stemme() if r["afstemningid"] == ballot)
    response = await client.get(
        "/graphql",
        params={
            "query": "query Count($id: Int) "
            "{ FT_Stemme(first: 0, where: {afstemningid: {eq: $id}}) { totalCount } }",
            "variables": json.dumps({"id": ballot}),
            "operationName": "Count",
        },
        headers={"accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200
    assert media(response) == GRAPHQL_RESPONSE
    assert response.json() == ft_credited({"FT_Stemme": {"totalCount": expected}})


async def test_a_mutation_over_get_is_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": "mutation { __typename }"})
    request_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/graphql", json=TYPENAME)
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]
    assert "POST" in response.headers["allow"]


@pytest.mark.parametrize(
    "params",
    [
        {"query": "{ __typename }", "variables": "{not json"},
        {"query": "{ __typename }", "variables": "[1]"},
        {"query": "{ __typename }", "extensions": '"text"'},
        {"query": ["{ __typename }", "{ __typename }"]},
        {"query": ""},
        {},
    ],
)
async def test_malformed_get_parameters_are_400(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await client.get("/graphql", params=params, headers={"accept": JSON})
    request_error(response, 400, "BAD_REQUEST")


# --- POST ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"query": {"obj": "ect"}},
        {"query": 0},
        {"query": False},
        {"query": ["array"]},
        {"notquery": "{ __typename }"},
        {"query": ""},
        {"query": "{ __typename }", "operationName": 1},
        {"query": "{ __typename }", "operationName": ["Query"]},
        {"query": "{ __typename }", "variables": "string"},
        {"query": "{ __typename }", "variables": ["array"]},
        {"query": "{ __typename }", "variables": 0},
        {"query": "{ __typename }", "extensions": "string"},
        {"query": "{ __typename }", "extensions": False},
        [{"query": "{ __typename }"}, {"query": "{ __typename }"}],
        "just a string",
    ],
)
@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE])
async def test_wrongly_typed_parameters_are_400(
    client: httpx.AsyncClient, odata_replica: ODataReplica, body: Any, accept: str
) -> None:
    odata_replica.log.clear()
    response = await client.post("/graphql", json=body, headers={"accept": accept})
    request_error(response, 400, "BAD_REQUEST")
    assert media(response) == accept
    assert response.headers["cache-control"] == "no-store"
    assert odata_replica.data_requests() == 0


@pytest.mark.parametrize("content", [b"", b"   ", b'{ "not a JSON', b"\xff\xfe{}"])
async def test_a_missing_or_broken_body_is_400(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post(
        "/graphql", content=content, headers={"content-type": "application/json"}
    )
    request_error(response, 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/graphql", "application/json; charset=latin1"]
)
async def test_a_post_that_is_not_utf8_json_is_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post("/graphql", content=json.dumps(TYPENAME).encode(), headers=headers)
    request_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_an_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    app = client.app  # type: ignore[attr-defined]
    limit = app.state.gateway.view_for("/graphql").max_body
    body = json.dumps({"query": "{ __typename }", "variables": {"x": "a" * limit}})
    response = await client.post(
        "/graphql", content=body.encode(), headers={"content-type": "application/json"}
    )
    request_error(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize("parameter", ["variables", "operationName", "extensions"])
async def test_null_parameters_are_allowed(client: httpx.AsyncClient, parameter: str) -> None:
    response = await client.post("/graphql", json={**TYPENAME, parameter: None})
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_unknown_extensions_are_ignored(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={**TYPENAME, "extensions": {"some": "value"}})
    assert response.json() == {"data": {"__typename": "Query"}}


# --- request errors: 200 under application/json, 400 under graphql-response+json ----------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "{"}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ FT_Stemme { nodes { nope } } }"}, "GRAPHQL_VALIDATION_FAILED"),
        (
            {"query": "query($id: ID!) { __typename }", "variables": {"id": None}},
            "GRAPHQL_VALIDATION_FAILED",
        ),
        ({"query": "query A { __typename }", "operationName": "B"}, "OPERATION_RESOLUTION_FAILURE"),
    ],
)
async def test_request_errors_have_no_data_and_a_status_by_media_type(
    client: httpx.AsyncClient, odata_replica: ODataReplica, body: dict[str, Any], code: str
) -> None:
    odata_replica.log.clear()
    legacy = await client.post("/graphql", json=body, headers={"accept": JSON})
    request_error(legacy, 200, code)
    modern = await client.post("/graphql", json=body, headers={"accept": GRAPHQL_RESPONSE})
    request_error(modern, 400, code)
    assert media(modern) == GRAPHQL_RESPONSE
    assert odata_replica.data_requests() == 0


async def test_an_execution_error_keeps_200_and_partial_data(client: httpx.AsyncClient) -> None:
    # Sambehandlinger is listed in $metadata and missing upstream (404): an execution error.
    response = await client.post(
        "/graphql",
        json={"query": "{ FT_Stemmetype { nodes { type } } FT_Sambehandlinger { nodes { id } } }"},
        headers={"accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"]["FT_Sambehandlinger"] is None
    assert body["data"]["FT_Stemmetype"]["nodes"]
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"


async def test_a_query_too_large_is_refused_before_parsing(client: httpx.AsyncClient) -> None:
    app = client.app  # type: ignore[attr-defined]
    limit = app.state.gateway.settings.limits.max_document_bytes
    document = "{ __typename }" + " " * limit
    response = await client.post(
        "/graphql", json={"query": document}, headers={"accept": GRAPHQL_RESPONSE}
    )
    request_error(response, 400, "QUERY_TOO_COMPLEX")


async def test_without_configured_origins_there_is_no_cors(client: httpx.AsyncClient) -> None:
    origin = "https://valgresultater.example"
    response = await client.post("/graphql", json=TYPENAME, headers={"origin": origin})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = {"origin": origin, "access-control-request-method": "POST"}
    denied = await client.options("/graphql", headers=preflight)
    assert denied.status_code == 405
    assert "access-control-allow-origin" not in denied.headers
