"""Encoded answers sent again on response-cache hits, and the memo of Accept headers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from gateway.graphql_http import GRAPHQL_RESPONSE_JSON, JSON, RequestError, negotiate
from gateway.view import EncodedAnswers
from replicas.ft import FtReplica
from tests.ft import raw
from tests.http.support import app_of, ft_gateway

ACTORS = "{ FT_Aktoer(first: 3) { nodes { id navn } } }"


def test_the_same_data_object_is_encoded_once() -> None:
    answers = EncodedAnswers(2)
    data = {"FT_Aktoer": {"nodes": [{"id": 1, "navn": "Æbelø"}]}}
    first = answers.body(ExecutionResult(data=data, errors=None))
    again = answers.body(ExecutionResult(data=data, errors=None))
    assert again is first
    assert answers.reused == 1
    assert json.loads(first) == {"data": data}


def test_equal_but_distinct_data_is_encoded_again() -> None:
    answers = EncodedAnswers(2)
    one = answers.body(ExecutionResult(data={"a": 1}, errors=None))
    two = answers.body(ExecutionResult(data={"a": 1}, errors=None))
    assert one == two
    assert answers.reused == 0


def test_the_oldest_answer_is_forgotten_beyond_the_bound() -> None:
    answers = EncodedAnswers(2)
    kept = [{"n": i} for i in range(3)]
    for data in kept:
        answers.body(ExecutionResult(data=data, errors=None))
    answers.body(ExecutionResult(data=kept[0], errors=None))
    assert answers.reused == 0  # the first fell out when the third came in
    answers.body(ExecutionResult(data=kept[2], errors=None))
    assert answers.reused == 1


def test_answers_with_errors_or_extensions_are_never_reused() -> None:
    answers = EncodedAnswers(4)
    data = {"a": None}
    with_error = ExecutionResult(data=data, errors=[GraphQLError("boom")])
    answers.body(with_error)
    answers.body(with_error)
    with_notice = ExecutionResult(data=data, errors=None, extensions={"notices": [{"x": 1}]})
    answers.body(with_notice)
    body = answers.body(with_notice)
    assert answers.reused == 0
    assert json.loads(body)["extensions"] == {"notices": [{"x": 1}]}


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
    async with FtReplica() as replica, ft_gateway(replica) as running:
        yield running


@pytest.mark.asyncio(loop_scope="module")
async def test_a_response_cache_hit_sends_the_first_answers_bytes(
    client: httpx.AsyncClient,
) -> None:
    view = app_of(client).state.gateway.view_for("/graphql")
    before = view.encoded.reused
    first = await client.post("/graphql", json={"query": ACTORS})
    second = await client.post("/graphql", json={"query": ACTORS})
    third = await client.get("/graphql", params={"query": ACTORS})
    assert first.status_code == second.status_code == third.status_code == 200
    assert first.content == second.content == third.content
    assert view.encoded.reused - before == 2
    expected: list[dict[str, Any]] = [
        {"id": i, "navn": raw.aktoer()[i]["navn"]} for i in sorted(raw.aktoer())[:3]
    ]
    assert second.json() == {"data": {"FT_Aktoer": {"nodes": expected}}}
