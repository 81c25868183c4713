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
from pathlib import Path
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
    GraphQLScalarType,
    GraphQLString,
)
from hypothesis import HealthCheck, given, settings, strategies as st

from gateway.graphql.fastpath import StepAside
from gateway.graphql.scalars import SCALAR_MAP, Date, DateTime, Long
from gateway.graphql.shaping import (
    Constant,
    Cursor,
    Edges,
    Info,
    Joined,
    Nodes,
    Scalar,
    Total,
    connection_shaper,
    key_collector,
    object_shaper,
)
from gateway.http.app import create_app
from gateway.http.config import Settings
from resolvers.odata.replica.server import ODataReplica
from tests.support import REGISTERS


class Pair:
    """The replica and two gateways (one-pass on and off) on a loop in a thread."""

    def __init__(self, **options: Any) -> None:
        self.options = options  # more Source.json options of FT
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
                fast_app = create_app(self._settings(replica.url, True, self.options))
                slow_app = create_app(self._settings(replica.url, False, self.options))
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
    def _settings(url: str, fast: bool, options: dict[str, Any]) -> Settings:
        return Settings(
            registers_dir=REGISTERS,
            include=("FT",),
            sources={"FT": {"url": url, **options}},
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


def test_relations_shape_once_per_join_key(pair: Pair) -> None:
    # Rows sharing a join key (many votes of one member, members of one type) share their
    # relation's shaped value; aliases of every shape, and aliases named like the generated
    # code's own variables, come out as in graphql-core.
    document = (
        "{ FT_Stemme(first: 60, order: [{aktoerid: ASC}]) { row: nodes { get: id out: aktoerid "
        "v0: Aktoer { _b0: navn append: typeid __typename Aktoertype { id type } } "
        "_m0: Aktoer { id } Stemmetype { type } } pageInfo { e: endCursor hasNextPage } "
        "edges { a: node { id } cursor b: node { typeid Aktoer { id } } __typename } "
        "totalCount } }"
    )
    text, used = pair.both(document)
    assert used
    nodes = json.loads(text)["data"]["FT_Stemme"]["row"]
    by_member: dict[int, list[Any]] = {}
    for node in nodes:
        by_member.setdefault(node["out"], []).append(node["v0"])
    assert any(len(v) > 1 for v in by_member.values())  # keys repeat, so sharing happens
    for values in by_member.values():
        assert all(v == values[0] for v in values)
    _, used = pair.both(
        "{ FT_Afstemning(first: 6) { nodes { id x: Stemme(first: 3) { totalCount nodes { id } }"
        " y: Stemme(last: 2) { pageInfo { hasPreviousPage } edges { cursor } } } } }"
    )
    assert used


@pytest.fixture(scope="module")
def scoped() -> Iterator[Pair]:
    # FT's joins scoped by ``typeid``: a join then also needs equal typeids on both sides
    # (meaningless for FT, but it makes every join key a tuple of two columns).
    running = Pair(joinScope=["typeid"])
    yield running
    running.close()


def test_scoped_joins_answer_the_same(pair: Pair, scoped: Pair) -> None:
    document = (
        "{ FT_Stemme(first: 80) { nodes { id typeid aktoerid Aktoer { id typeid navn } "
        "Afstemning { id typeid } } } }"
    )
    text, used = scoped.both(document)
    assert used
    scoped_nodes = json.loads(text)["data"]["FT_Stemme"]["nodes"]
    plain_nodes = json.loads(pair.both(document)[0])["data"]["FT_Stemme"]["nodes"]
    kept = 0
    for node, plain in zip(scoped_nodes, plain_nodes, strict=True):
        for relation in ("Aktoer", "Afstemning"):
            target = plain[relation]
            matches = target is not None and target["typeid"] == node["typeid"]
            assert node[relation] == (target if matches else None), (node, relation)
            kept += matches
    assert 0 < kept < 2 * len(scoped_nodes)  # the scope keeps some joins and drops others
    for document in (
        "{ FT_Afstemning(first: 8) { nodes { id typeid Stemme(first: 4) { totalCount "
        "nodes { id typeid Aktoer { navn } } } } } }",
        "{ FT_Aktoer(where: {id: {in: [13, 247, 12, 5]}}) { nodes { id typeid "
        "Stemme(first: 2) { nodes { id } } } } }",
    ):
        _, used = scoped.both(document)
        assert used


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
    except StepAside:
        return ("step aside", None)
    except GraphQLError as exc:
        return ("error", exc.message)
    except (TypeError, ValueError, OverflowError) as exc:  # Long's int()
        return (type(exc).__name__, str(exc))
    return ("value", (type(result), result))


def _scalar(definition: Any) -> GraphQLScalarType:
    return GraphQLScalarType(definition.name, serialize=definition.serialize)


GATEWAY_SCALARS = [_scalar(SCALAR_MAP[t]) for t in (DateTime, Date, Long)]


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.integers(min_value=-(2**40), max_value=2**40),
        st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) - 1, True, False]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.dates(),
        st.datetimes(),
        st.none(),
    )
)
def test_generated_scalars_answer_as_graphql_core(value: Any) -> None:
    # The generated shaping's inline output coercion (a value already of the scalar's own
    # type is its own result): the same value, or the same error, as the scalar's own
    # serialize for anything an upstream may send; None is null, or a step aside when the
    # field is non-null.
    for scalar in (GraphQLInt, GraphQLString, GraphQLBoolean, GraphQLFloat, GraphQLID,
                   *GATEWAY_SCALARS):  # fmt: skip
        for non_null in (False, True):
            shape = object_shaper([Scalar("k", "c", scalar, non_null)], StepAside)
            got = _outcome(lambda v: shape([{"c": v}])[0]["k"], value)  # noqa: B023
            if value is None:
                assert got == (("step aside", None) if non_null else ("value", (type(None), None)))
            else:
                assert got == _outcome(scalar.serialize, value), (scalar, non_null)


HOSTILE = [
    "a'); import os; os.system('touch /tmp/shaping-owned') #",
    'b"}; raise SystemExit #',
    "c\nd",
    "line\nbreak: __import__('os')",
    "\\",
    "",
    " x",
]
# GraphQL names that are also the generated code's own names, Python keywords and builtins.
CLASHING = ["row", "rows", "get", "out", "append", "v0", "_b0", "_m0", "_d0", "c", "e",
            "n1", "nodes", "total", "info", "shape", "_make", "for", "None", "__import__",
            "type"]  # fmt: skip


def test_hostile_keys_are_values_never_code() -> None:
    # GraphQL names cannot hold quotes or newlines, but the generated source must not depend
    # on that: every key and column is either the literal of a checked name or a bound value.
    keys = HOSTILE + CLASHING
    fields: list[Any] = []
    for i, key in enumerate(keys):
        if i % 3 == 0:
            fields.append(Scalar(key, key, GraphQLInt, False))
        elif i % 3 == 1:
            fields.append(Constant(key, key))
        else:
            fields.append(Joined(key, (key, HOSTILE[0])))
    shape = object_shaper(fields, StepAside)
    source = shape.__doc__ or ""
    for text in HOSTILE:
        if text:
            assert text not in source
    row = {key: i for i, key in enumerate(keys)}
    row[HOSTILE[0]] = 7
    joined = [f for f in fields if isinstance(f, Joined)]
    maps: list[Any] = []
    for f in joined:
        maps += [{(row[f.columns[0]], 7): f"joined {f.key}"}, "default"]
    (shaped,) = shape(*maps, [row])
    expected = {
        f.key: (row[f.key] if isinstance(f, Scalar)
                else f.value if isinstance(f, Constant) else f"joined {f.key}")
        for f in fields
    }  # fmt: skip
    assert shaped == expected
    assert list(shaped) == keys
    (missing,) = shape(*maps, [{}])
    assert missing == {k: None if isinstance(f, Scalar) else expected[k] if isinstance(
        f, Constant) else "default" for k, f in zip(keys, fields, strict=True)}  # fmt: skip

    collect = key_collector([HOSTILE[1], HOSTILE[2]])
    rows = [{HOSTILE[1]: 1, HOSTILE[2]: 2}, {HOSTILE[1]: 1, HOSTILE[2]: 2}, {HOSTILE[1]: 3}]
    assert collect(rows) == [(1, 2)]
    assert key_collector([HOSTILE[3]])([{HOSTILE[3]: "x"}, {}, {HOSTILE[3]: "x"}]) == ["x"]

    info = Info(HOSTILE[4], ((HOSTILE[5], "hasNextPage"), Constant(HOSTILE[6], HOSTILE[0])))
    edges = Edges(HOSTILE[1], (Cursor(HOSTILE[2]), Nodes(HOSTILE[3], 0), Constant("e", "E")))
    connection = connection_shaper(
        [Nodes(HOSTILE[0], 0), edges, info, Total("total"), Constant(HOSTILE[5], "T")], StepAside
    )
    for text in HOSTILE:
        if text:
            assert text not in (connection.__doc__ or "")
    c = {"nodes": [1, 2], "edges": [{"cursor": "x"}, {"cursor": "y"}], "totalCount": 2,
         "pageInfo": {"hasNextPage": False}}  # fmt: skip
    assert connection(c, lambda rows: [r * 10 for r in rows]) == {
        HOSTILE[0]: [10, 20],
        HOSTILE[1]: [{HOSTILE[2]: "x", HOSTILE[3]: 10, "e": "E"},
                     {HOSTILE[2]: "y", HOSTILE[3]: 20, "e": "E"}],
        HOSTILE[4]: {HOSTILE[5]: False, HOSTILE[6]: HOSTILE[0]},
        "total": 2,
        HOSTILE[5]: "T",
    }  # fmt: skip
    with pytest.raises(StepAside):
        connection({**c, "totalCount": None}, list)
    assert not Path("/tmp/shaping-owned").exists()
