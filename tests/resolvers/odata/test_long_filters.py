"""Filters too long for one upstream URL, and text no URL can carry, over the FT replica.

Long filters are answered correctly (each expected answer is computed from the recorded
files by tests/resolvers/odata/raw.py) or refused with BAD_USER_INPUT; never an internal error.
Every URL
sent stays under the configured length.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway.model.errors import BadUserInputError
from gateway.model.query import Condition, Query
from resolvers.odata.replica.server import ODataReplica
from tests.resolvers.odata import raw

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_URL = 4000  # the adapter's default maxUrlLength


async def _post(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    # Encoded here (ASCII escapes), so that a lone surrogate reaches the gateway as JSON
    # allows it: "\\ud800".
    body = json.dumps({"query": query, "variables": variables})
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    document: dict[str, Any] = response.json()
    return document


def _urls_short(odata_replica: ODataReplica) -> None:
    for record in odata_replica.log:
        url = f"http://127.0.0.1:65535{record.raw_path}?{record.query}"
        assert len(url) <= MAX_URL, len(url)


def _bad_input(body: dict[str, Any], argument: str) -> str:
    assert body.get("errors"), body
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["argument"] == argument
    message: str = error["message"]
    return message


def _members(where: Any) -> list[int]:
    return sorted(i for i, row in raw.aktoer().items() if where(row))


AKTOER = (
    "query($v: {type}) {{ FT_Aktoer(first: 1000, where: {{{field}: {{{op}: $v}}}}) "
    "{{ totalCount nodes {{ id }} }} }}"
)


def _aktoer(field: str, op: str, kind: str) -> str:
    return AKTOER.format(field=field, op=op, type=kind)


def _ids(body: dict[str, Any]) -> list[int]:
    assert "errors" not in body, body
    return [n["id"] for n in body["data"]["FT_Aktoer"]["nodes"]]


BALLOTS = (
    "query($v: {type}) {{ FT_Afstemning(first: 1000, where: {{{field}: {{{op}: $v}}}}) "
    "{{ totalCount nodes {{ id }} }} }}"
)


def _ballots(field: str, op: str, kind: str) -> str:
    return BALLOTS.format(field=field, op=op, type=kind)


def _ballot_ids(body: dict[str, Any]) -> list[int]:
    assert "errors" not in body, body
    return [n["id"] for n in body["data"]["FT_Afstemning"]["nodes"]]


def _ballots_where(test: Any) -> list[int]:
    return sorted(int(r["id"]) for r in raw.afstemning() if test(r["konklusion"] or ""))


def _longest_conclusion() -> str:
    return max((r["konklusion"] or "" for r in raw.afstemning()), key=len)


async def test_a_long_contains_is_narrowed_upstream_and_finished_here(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    needle = _longest_conclusion()[1000:5000]  # Danish letters and punctuation: over one URL
    assert len(needle.encode()) > MAX_URL
    body = await _post(client, _ballots("konklusion", "contains", "String"), v=needle)
    expected = _ballots_where(lambda text: needle in text)
    assert expected
    assert _ballot_ids(body) == expected
    assert body["data"]["FT_Afstemning"]["totalCount"] == len(expected)
    _urls_short(odata_replica)


async def test_a_long_contains_matching_nothing(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    body = await _post(client, _aktoer("navn", "contains", "String"), v="æøå" * 5000)
    assert _ids(body) == []
    _urls_short(odata_replica)


async def test_long_startswith_endswith_and_eq(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    text = _longest_conclusion()
    head, tail = text[:4000], text[-4000:]
    cases: list[tuple[str, str, Any]] = [
        ("startsWith", head, lambda t: t.startswith(head)),
        ("endsWith", tail, lambda t: t.endswith(tail)),
        ("eq", text, lambda t: t == text),
    ]
    for op, value, test in cases:
        odata_replica.log.clear()
        body = await _post(client, _ballots("konklusion", op, "String"), v=value)
        expected = _ballots_where(test)
        assert expected
        assert _ballot_ids(body) == expected, op
        _urls_short(odata_replica)


async def test_a_long_nin_is_pushed_in_part_and_finished_here(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    excluded = sorted(raw.aktoer())[:3000:1]
    body = await _post(
        client,
        "query($v: [Int!]) { FT_Aktoer(first: 20, where: {id: {nin: $v}, typeid: {eq: 5}}) "
        "{ totalCount nodes { id } } }",
        v=excluded,
    )
    gone = set(excluded)
    expected = _members(lambda r: int(r["id"]) not in gone and r["typeid"] == 5)
    assert _ids(body) == expected[:20]
    assert body["data"]["FT_Aktoer"]["totalCount"] == len(expected)
    _urls_short(odata_replica)


async def test_a_long_in_of_danish_names_is_sent_in_chunks(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    names = sorted({r["navn"] for r in raw.aktoer().values() if r["navn"]})[:400:2]
    body = await _post(client, _aktoer("navn", "in", "[String!]"), v=[*names, "ø" * 300])
    wanted = set(names)
    assert _ids(body) == _members(lambda r: r["navn"] in wanted)
    assert odata_replica.data_requests() > 1
    _urls_short(odata_replica)


async def test_an_in_of_20000_ids_is_answered_in_chunks(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    ids = list(range(0, 40_000, 2))
    expected = [r["id"] for r in raw.stemme() if r["id"] % 2 == 0 and r["id"] < 40_000]
    body = await _post(
        client,
        "query($v: [Int!]) { FT_Stemme(first: 50, where: {id: {in: $v}}) "
        "{ totalCount nodes { id } } }",
        v=ids,
    )
    if "errors" in body:
        # Over the caller's budget of upstream requests: refused before any is sent.
        assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX", body
        assert odata_replica.log == []
    else:
        assert [n["id"] for n in body["data"]["FT_Stemme"]["nodes"]] == expected[:50]
        assert body["data"]["FT_Stemme"]["totalCount"] == len(expected)
    # Without a budget (the adapter asked directly) the chunks answer it.
    source = client.app.state.gateway.sources["FT"]  # type: ignore[attr-defined]
    entity = source.register.datamodel.entities["Stemme"]
    page = await source.fetch(Query(entity, Condition("id", "in", tuple(ids)), limit=50))
    assert [r["id"] for r in page.rows] == expected[:50]
    assert odata_replica.data_requests() > 1
    _urls_short(odata_replica)


async def test_what_can_be_neither_split_nor_evaluated_here_is_refused(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    body = await _post(client, _aktoer("navn", "in", "[String!]"), v=["a", "ø" * 2000])
    message = _bad_input(body, "where.navn.in")
    assert "2000 characters" in message
    assert "at most" in message
    # Text ordered by the upstream's collation is not compared here (no such GraphQL
    # operator today; an adapter call can still ask).
    source = client.app.state.gateway.sources["FT"]  # type: ignore[attr-defined]
    entity = source.register.datamodel.entities["Aktør"]
    with pytest.raises(BadUserInputError, match=r"navn\.gt is 2000 characters"):
        await source.fetch(Query(entity, Condition("navn", "gt", "å" * 2000)))
    assert odata_replica.log == []


@pytest.mark.parametrize(
    ("query", "variables", "argument"),
    [
        (_aktoer("navn", "contains", "String"), {"v": "\ud800"}, "where.navn.contains"),
        (_aktoer("navn", "eq", "String"), {"v": "Anne \udfff"}, "where.navn.eq"),
        (_aktoer("navn", "in", "[String!]"), {"v": ["a", "b\ud83d"]}, "where.navn.in"),
        (
            "query($v: String) { FT_Aktoer(where: {or: [{id: {eq: 1}}, {navn: {startsWith: $v}}]})"
            " { nodes { id } } }",
            {"v": "\udc00x"},
            "where.navn.startsWith",
        ),
    ],
)
async def test_lone_surrogates_are_bad_input_before_any_request(
    client: httpx.AsyncClient,
    odata_replica: ODataReplica,
    query: str,
    variables: dict[str, Any],
    argument: str,
) -> None:
    body = await _post(client, query, **variables)
    message = _bad_input(body, argument)
    assert "surrogate" in message
    assert odata_replica.log == []


@pytest.mark.parametrize(
    "value",
    ["a\x00b", "O'Brien", "''", "Ernst & Young", "100%", "a+b", "#1", "x=y&$top=1", "\\", "\t\n"],
)
async def test_odd_text_is_data_not_syntax(
    client: httpx.AsyncClient, odata_replica: ODataReplica, value: str
) -> None:
    for op, test in (
        ("eq", lambda r: r["navn"] == value),
        ("contains", lambda r: value in (r["navn"] or "")),
    ):
        body = await _post(client, _aktoer("navn", op, "String"), v=value)
        assert _ids(body) == _members(test)
    # A real name with a quote in it is found.
    quoted = next((r["navn"] for r in raw.aktoer().values() if "'" in (r["navn"] or "")), None)
    if quoted is not None:
        body = await _post(client, _aktoer("navn", "eq", "String"), v=quoted)
        assert _ids(body) == _members(lambda r: r["navn"] == quoted)
