"""The one-pass path and the field-by-field path answer byte for byte the same.

Two gateways over the same FT replica, one with the one-pass path and one without; every
document goes to both and the response bodies must be identical. Hand-written documents
cover the shapes users send (fragments, aliases, edges, nested relations, errors), and
generated documents cover the combinations nobody thought of.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from graphql import (
    GraphQLBoolean,
    GraphQLError,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLString,
)
from hypothesis import HealthCheck, given, settings, strategies as st

from gateway.graphql.fastpath import _serializer
from gateway.http.app import create_app
from gateway.http.config import Settings
from resolvers.odata.replica.server import ODataReplica
from tests.support import REGISTERS


class Pair:
    """The replica and two gateways (one-pass on and off) on a loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.stop = asyncio.Event()
        self.clients: dict[bool, httpx.AsyncClient] = {}
        self.apps: dict[bool, Any] = {}
        self.service = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)
        self.ready.result(timeout=120)

    async def _serve(self) -> None:
        try:
            async with ODataReplica() as replica:
                fast_app = create_app(self._settings(replica.url, True))
                slow_app = create_app(self._settings(replica.url, False))
                async with (
                    LifespanManager(fast_app) as fast,
                    LifespanManager(slow_app) as slow,
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=fast.app), base_url="http://f"
                    ) as fast_client,
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=slow.app), base_url="http://s"
                    ) as slow_client,
                ):
                    self.clients = {True: fast_client, False: slow_client}
                    self.apps = {True: fast_app, False: slow_app}
                    self.ready.set_result(None)
                    await self.stop.wait()
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)
            raise

    @staticmethod
    def _settings(url: str, fast: bool) -> Settings:
        return Settings(
            registers_dir=REGISTERS,
            include=("FT",),
            sources={"FT": {"url": url}},
            rate_limit=None,
            response_cache=False,
            fast_path=fast,
        )

    def ask(self, fast: bool, body: dict[str, Any]) -> httpx.Response:
        future = asyncio.run_coroutine_threadsafe(
            self.clients[fast].post("/graphql", json=body), self.loop
        )
        response: httpx.Response = future.result(timeout=120)
        return response

    def both(self, query: str, variables: dict[str, Any] | None = None) -> tuple[str, bool]:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        fast_path = self.apps[True].state.gateway.view_for("/graphql").schema.fast_path
        runs = fast_path.runs
        fast = self.ask(True, body)
        slow = self.ask(False, body)
        assert fast.status_code == slow.status_code
        assert fast.text == slow.text, (query, fast.text[:500], slow.text[:500])
        return fast.text, fast_path.runs > runs

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.service.result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    running = Pair()
    yield running
    running.close()


DOCUMENTS = [
    "{ FT_Stemme(where: {afstemningid: {eq: 1}}) { totalCount nodes { typeid Aktoer { navn } } } }",
    "{ FT_Stemme(first: 100) { nodes { id aktoerid Aktoer { navn } Afstemning { nummer } "
    "Stemmetype { type } } } }",
    '{ FT_Stemme(first: 5, after: "bzo5") { pageInfo { hasNextPage hasPreviousPage '
    "startCursor endCursor } edges { cursor node { id __typename } } __typename } }",
    "fragment A on FT_Aktoer { id navn fornavn } { x: FT_Aktoer(where: {id: {in: [13, 247]}}) "
    "{ nodes { ...A Stemme(first: 2, order: [{afstemningid: DESC}]) { totalCount "
    "nodes { id afstemningid } } } } y: FT_Aktoer(first: 1) { nodes { ... on FT_Aktoer "
    "{ navn } id } } }",
    "{ FT_Afstemning(first: 3, where: {id: {lt: 5}}) { nodes { id opdateringsdato "
    "Stemme(last: 2) { pageInfo { hasNextPage hasPreviousPage } nodes { id Aktoer "
    "{ navn Aktoertype { type } } } } } } }",
    '{ FT_Aktoer(first: 3, where: {navn: {contains: "&"}}) { nodes { id navn navn2: navn } } }',
    "{ FT_Aktoertype { nodes { id } } FT_Sambehandlinger { nodes { id } } }",
    "{ FT_Stemme(first: 2) { nodes { id } } __typename }",
    '{ FT_Stemme(first: 2, after: "garbage") { nodes { id } } }',
    "{ FT_Aktoer(where: {id: {eq: 13}}) { nodes { id biografi } } }",
    "{ FT_Stemme(first: 2) { nodes { id @skip(if: true) typeid } } }",
    "{ FT_Aktoer(first: 2, order: [{navn: DESC}, {id: ASC}]) { nodes { id navn periodeid } } }",
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_documents_answer_the_same(pair: Pair, document: str) -> None:
    pair.both(document)


def test_plain_projections_take_the_one_pass_path(pair: Pair) -> None:
    text, used = pair.both(DOCUMENTS[1])
    assert used
    assert json.loads(text)["data"]["FT_Stemme"]["nodes"][0]["Aktoer"]["navn"]
    _, used = pair.both("{ __schema { queryType { name } } }")
    assert not used
    _, used = pair.both(DOCUMENTS[9])  # a denied field steps aside
    assert not used


def test_variables_answer_the_same(pair: Pair) -> None:
    query = (
        "query($w: FT_StemmeFilterInput, $n: Int) { FT_Stemme(first: $n, where: $w) "
        "{ totalCount nodes { id opdateringsdato } } }"
    )
    pair.both(query, {"w": {"opdateringsdato": {"gt": "2014-09-10T00:00:00"}}, "n": 7})
    pair.both(query, {"w": {"id": {"in": "not a list"}}, "n": 7})
    pair.both(query, {"n": -3})


# --- generated documents --------------------------------------------------------------

SCALARS = {
    "FT_Stemme": ["id", "typeid", "afstemningid", "aktoerid", "opdateringsdato"],
    "FT_Aktoer": ["id", "typeid", "navn", "fornavn", "efternavn", "periodeid", "startdato"],
    "FT_Afstemning": ["id", "nummer", "konklusion", "vedtaget", "typeid", "sagstrinid"],
    "FT_Stemmetype": ["id", "type", "opdateringsdato"],
    "FT_Aktoertype": ["id", "type"],
}
ONE = {
    "FT_Stemme": [("Aktoer", "FT_Aktoer"), ("Afstemning", "FT_Afstemning"),
                  ("Stemmetype", "FT_Stemmetype")],
    "FT_Aktoer": [("Aktoertype", "FT_Aktoertype")],
}  # fmt: skip
MANY = {
    "FT_Aktoer": [("Stemme", "FT_Stemme")],
    "FT_Afstemning": [("Stemme", "FT_Stemme")],
    "FT_Stemmetype": [("Stemme", "FT_Stemme")],
}


@st.composite
def selection(draw: st.DrawFn, type_name: str, depth: int) -> str:
    parts = draw(st.lists(st.sampled_from(SCALARS[type_name]), min_size=1, max_size=4))
    out = [f"a{i}: {p}" if draw(st.booleans()) and i == 0 else p for i, p in enumerate(parts)]
    if draw(st.booleans()):
        out.append("__typename")
    if depth > 0:
        for alias, target in ONE.get(type_name, []):
            if draw(st.integers(0, 3)) == 0:
                out.append(f"{alias} {{ {draw(selection(target, depth - 1))} }}")
        for alias, target in MANY.get(type_name, []):
            if draw(st.integers(0, 4)) == 0:
                first = draw(st.integers(0, 3))
                inner = draw(selection(target, depth - 1))
                out.append(f"{alias}(first: {first}) {{ totalCount nodes {{ {inner} }} }}")
    if draw(st.booleans()):
        return f"... on {type_name} {{ {' '.join(out)} }}"
    return " ".join(out)


@st.composite
def documents(draw: st.DrawFn) -> str:
    root = draw(st.sampled_from(sorted(SCALARS)))
    first = draw(st.integers(0, 12))
    body = draw(selection(root, 2))
    extra = " totalCount" if draw(st.booleans()) else ""
    edges = " edges { cursor node { id } }" if draw(st.booleans()) else ""
    return f"{{ {root}(first: {first}) {{ nodes {{ {body} }}{extra}{edges} }} }}"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents())
def test_generated_documents_answer_the_same(pair: Pair, document: str) -> None:
    pair.both(document)


def _outcome(serialize: Any, value: Any) -> tuple[str, Any]:
    try:
        result = serialize(value)
    except GraphQLError as exc:
        return ("error", exc.message)
    return ("value", (type(result), result))


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.integers(min_value=-(2**40), max_value=2**40),
        st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) - 1, True, False]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.none(),
    )
)
def test_scalar_shortcuts_answer_as_graphql_core(value: Any) -> None:
    # The one-pass path's quick output coercion for the built-in scalars: the same value,
    # or the same error, as graphql-core's own for anything an upstream may send.
    for scalar in (GraphQLInt, GraphQLString, GraphQLBoolean, GraphQLFloat, GraphQLID):
        assert _outcome(_serializer(scalar), value) == _outcome(scalar.serialize, value)
