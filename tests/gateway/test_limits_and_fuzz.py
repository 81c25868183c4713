"""Query limits (refused before any upstream request) and fuzzing of documents and filters."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import gc
import json
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from graphql import build_schema, parse
from hypothesis import HealthCheck, event, given, settings, strategies as st

from gateway.graphql import limits
from gateway.graphql.demand import Knowledge, Observed
from gateway.graphql.limits import measure
from gateway.http.app import create_app
from gateway.http.auth import ApiKey, AuthSettings, hash_key
from gateway.http.config import Settings
from resolvers.odata.replica.server import ODataReplica
from tests.gateway.test_measure import bindings as harness_bindings, schema as harness_schema
from tests.resolvers.odata import raw
from tests.support import REGISTERS

KEY3 = "level-three-key-0123456789abcdefgh"


class Harness:
    """The FT replica and the gateway on an event loop in a thread, for synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.stop = asyncio.Event()
        self.service = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)
        self.ready.result(timeout=120)

    async def _serve(self) -> None:
        try:
            async with ODataReplica() as replica:
                self.replica = replica
                auth = AuthSettings(keys=(ApiKey("three", 3, hash_key(KEY3)),))
                settings = Settings(
                    registers_dir=REGISTERS,
                    include=("FT",),
                    sources={"FT": {"url": replica.url}},
                    auth=auth,
                    rate_limit=None,
                )
                async with LifespanManager(create_app(settings)) as manager:
                    transport = httpx.ASGITransport(app=manager.app)
                    async with httpx.AsyncClient(
                        transport=transport, base_url="http://gateway.test"
                    ) as client:
                        self.client = client
                        self.ready.set_result(None)
                        await self.stop.wait()
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)
            raise

    def post(self, body: Any, **headers: str) -> httpx.Response:
        future = asyncio.run_coroutine_threadsafe(
            self.client.post("/graphql", json=body, headers=headers), self.loop
        )
        response: httpx.Response = future.result(timeout=120)
        return response

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.service.result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    running = Harness()
    yield running
    running.close()


def refused(response: httpx.Response, limit: str) -> dict[str, Any]:
    body = response.json()
    error = body["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", body
    assert error["extensions"]["limit"] == limit
    assert error["extensions"]["measured"] > error["extensions"]["allowed"]
    extensions: dict[str, Any] = error["extensions"]
    return extensions


def _deep(levels: int) -> str:
    inner = "id"
    for _ in range(levels):
        inner = f"Aktoertype {{ Aktoer(first: 1) {{ nodes {{ {inner} }} }} }}"
    return f"{{ FT_Aktoer(first: 1) {{ nodes {{ {inner} }} }} }}"


@pytest.mark.parametrize(
    ("document", "limit"),
    [
        (_deep(6), "depth"),
        (
            "{ " + " ".join(f"a{i}: FT_Stemmetype {{ totalCount }}" for i in range(31)) + " }",
            "aliases",
        ),
        ("{ FT_Stemmetype { nodes { " + "id " * 6000 + "} } }", "tokens"),
        ("# " + "x" * 120_000 + "\n{ FT_Stemmetype { totalCount } }", "documentBytes"),
        (
            # Five root pages of 1,000 rows, twelve fields each: certainly over 50,000.
            "{ "
            + " ".join(
                f"a{i}: FT_Aktoer(first: 1000) {{ nodes {{ id typeid gruppenavnkort navn "
                "fornavn efternavn biografi periodeid opdateringsdato startdato slutdato "
                "Aktoertype { type } } }"
                for i in range(5)
            )
            + " }",
            "cost",
        ),
    ],
)
def test_limits_refuse_before_any_upstream_request(
    harness: Harness, document: str, limit: str
) -> None:
    harness.replica.log.clear()
    extensions = refused(harness.post({"query": document}), limit)
    assert harness.replica.log == []
    if limit == "cost":
        assert extensions["allowed"] == 50_000
        assert extensions["measured"] >= 5 * 1000 * 12
        assert extensions["stage"] == "estimate"


def test_cost_counts_variables_and_budgets_are_per_level(harness: Harness) -> None:
    query = (
        "query($n: Int) { a: FT_Aktoer(first: $n) { nodes { id navn fornavn efternavn } } "
        "b: FT_Aktoer(first: $n) { nodes { id navn fornavn efternavn } } }"
    )
    harness.replica.log.clear()
    # 2 × 1,000 rows × 4 fields × ... at n = 1000 the estimate is 10,000 + 2: allowed;
    # but with a stricter budget per level the variables decide.
    small = harness.post({"query": query, "variables": {"n": 10}})
    assert "errors" not in small.json(), small.json()
    aliased = (
        "query($n: Int) { "
        + " ".join(
            f"a{i}: FT_Aktoer(first: $n) {{ nodes {{ id navn fornavn efternavn biografi "
            "periodeid opdateringsdato startdato slutdato typeid gruppenavnkort } }"
            for i in range(6)
        )
        + " }"
    )
    harness.replica.log.clear()
    refused(harness.post({"query": aliased, "variables": {"n": 1000}}), "cost")
    assert harness.replica.log == []
    allowed = harness.post({"query": aliased, "variables": {"n": 1000}}, **{"X-API-Key": KEY3})
    body = allowed.json()
    assert "errors" not in body, body
    actors = body["data"]["a0"]["nodes"]
    assert len(actors) == min(1000, len(raw.aktoer()))


# --- fuzzing the document parser ---------------------------------------------------------

_PIECES = st.sampled_from(
    ["{", "}", "(", ")", "[", "]", ":", "$", "...", "@", "!", "=", ",", '"', '"""', "#",
     "query", "fragment", "on", "FT_Stemme", "FT_Aktoer", "nodes", "edges", "id", "navn",
     "where", "first", "after", "order", "eq", "in", "and", "or", "null", "true", "1", "-1",
     "1e309", "__typename", "__schema", "\\u0000", "ø", " ", "\n"]
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(st.text(max_size=200), st.lists(_PIECES, max_size=60).map(" ".join)))
def test_no_document_makes_a_500(harness: Harness, document: str) -> None:
    response = harness.post({"query": document})
    assert response.status_code in (200, 400), response.text
    body = response.json()
    assert "Traceback" not in response.text
    for error in body.get("errors", []):
        assert error["extensions"]["code"] != "INTERNAL_SERVER_ERROR", (document, body)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=20),
        ),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=10), children, max_size=4),
        ),
        max_leaves=12,
    )
)
def test_no_variables_make_a_500(harness: Harness, where: Any) -> None:
    body = {
        "query": "query($w: FT_AktoerFilterInput) "
        "{ FT_Aktoer(first: 3, where: $w) { nodes { id } } }",
        "variables": {"w": where},
    }
    response = harness.post(body)
    assert response.status_code in (200, 400)
    for error in response.json().get("errors", []):
        assert error["extensions"]["code"] != "INTERNAL_SERVER_ERROR", (where, response.text)


# --- fuzzing the filter translation against an independent evaluator --------------------

AKTOER = sorted(raw.aktoer().values(), key=lambda r: r["id"])
NAMES = [r["navn"] for r in AKTOER[::97] if r["navn"]]
TEXTS = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(["'", "''", "%", "&", " & ", "sen", "Ø", "100%", "' or 1 eq 1", ""]),
    st.text(alphabet="aeøsn' %&", max_size=4),
)
DATES = st.datetimes(min_value=dt.datetime(2014, 1, 1), max_value=dt.datetime(2019, 12, 31))


def _conditions() -> st.SearchStrategy[dict[str, Any]]:
    text_ops = st.sampled_from(["eq", "neq", "contains", "startsWith", "endsWith"])
    number_ops = st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte"])
    return st.one_of(
        st.tuples(text_ops, TEXTS).map(lambda t: {"navn": {t[0]: t[1]}}),
        st.lists(TEXTS, max_size=3).map(lambda v: {"navn": {"in": v}}),
        st.just({"navn": {"eq": None}}),
        st.just({"gruppenavnkort": {"neq": None}}),
        st.tuples(number_ops, st.integers(0, 13)).map(lambda t: {"typeid": {t[0]: t[1]}}),
        st.lists(st.integers(0, 13), max_size=3).map(lambda v: {"typeid": {"nin": v}}),
        st.tuples(number_ops, DATES).map(lambda t: {"opdateringsdato": {t[0]: t[1].isoformat()}}),
    )


FILTERS = st.recursive(
    _conditions(),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"and": c}),
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"or": c}),
    ),
    max_leaves=5,
)


def _value(row: dict[str, Any], name: str) -> Any:
    value = row["periodeid" if name == "periodeid" else name]
    if name == "opdateringsdato" and value is not None:
        return dt.datetime.fromisoformat(value)
    return value


def _holds(where: dict[str, Any], row: dict[str, Any]) -> bool:
    for key, spec in where.items():
        if key == "and" and not all(_holds(part, row) for part in spec):
            return False
        if key == "or" and not any(_holds(part, row) for part in spec):
            return False
        if key in ("and", "or"):
            continue
        have = _value(row, key)
        for op, want in spec.items():
            if key == "opdateringsdato" and isinstance(want, str):
                want = dt.datetime.fromisoformat(want)
            ok = {
                "eq": lambda h, w: h == w,
                "neq": lambda h, w: h != w,
                "in": lambda h, w: h in w,
                "nin": lambda h, w: h not in w,
                "gt": lambda h, w: h is not None and h > w,
                "gte": lambda h, w: h is not None and h >= w,
                "lt": lambda h, w: h is not None and h < w,
                "lte": lambda h, w: h is not None and h <= w,
                "contains": lambda h, w: h is not None and w in h,
                "startsWith": lambda h, w: h is not None and h.startswith(w),
                "endsWith": lambda h, w: h is not None and h.endswith(w),
            }[op](have, want)
            if not ok:
                return False
    return True


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(FILTERS)
def test_pushed_down_filters_answer_like_the_raw_data(
    harness: Harness, where: dict[str, Any]
) -> None:
    body = harness.post(
        {
            "query": "query($w: FT_AktoerFilterInput) "
            "{ FT_Aktoer(first: 20, where: $w) { totalCount nodes { id } } }",
            "variables": {"w": where},
        }
    ).json()
    assert "errors" not in body, (json.dumps(where, ensure_ascii=False), body)
    expected = [r["id"] for r in AKTOER if _holds(where, r)]
    got = body["data"]["FT_Aktoer"]
    assert got["totalCount"] == len(expected), json.dumps(where, ensure_ascii=False)
    assert [n["id"] for n in got["nodes"]] == expected[:20]


# --- generated documents: fragments, aliases, directives, variables -----------------------

_SCALARS = {
    "FT_Stemme": ["id", "typeid", "afstemningid", "aktoerid", "opdateringsdato"],
    "FT_Aktoer": ["id", "typeid", "navn", "fornavn", "biografi", "opdateringsdato"],
}
# to-one relations, and to-many ones (connections) with the type they lead to
_ONE = {"FT_Stemme": [("Aktoer", "FT_Aktoer")], "FT_Aktoer": []}
_MANY = {"FT_Stemme": [], "FT_Aktoer": [("Stemme", "FT_Stemme")]}
_DIRECTIVE = st.sampled_from(
    ["", "", "@include(if: $b)", "@skip(if: $b)", "@include(if: true)", "@skip(if: false)"]
)


@st.composite
def _selection(draw: st.DrawFn, type_name: str, depth: int, spreads: range) -> str:
    """A selection set on ``type_name``: fields, aliases, directives, spreads (of the
    fragments in ``spreads``) and inline fragments."""
    items: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["scalar", "scalar", "one", "many", "spread", "inline"]))
        directive = draw(_DIRECTIVE)
        if kind == "one" and _ONE[type_name] and depth > 0:
            name, target = draw(st.sampled_from(_ONE[type_name]))
            inner = draw(_selection(target, depth - 1, range(0)))
            items.append(f"{name}_{len(items)}: {name} {directive} {{ {inner} }}")
        elif kind == "many" and _MANY[type_name] and depth > 0:
            name, target = draw(st.sampled_from(_MANY[type_name]))
            first = draw(st.sampled_from(["", "(first: $n)", "(first: 2)", "(last: 1)"]))
            inner = draw(_selection(target, depth - 1, range(0)))
            items.append(
                f"{name}_{len(items)}: {name}{first} {directive} {{ nodes {{ {inner} }} }}"
            )
        elif kind == "spread" and len(spreads):
            index = draw(st.sampled_from(spreads))
            items.append(f"...{type_name}F{index} {directive}")
        elif kind == "inline":
            inner = draw(_selection(type_name, max(depth - 1, 0), spreads))
            items.append(f"... on {type_name} {directive} {{ {inner} }}")
        else:
            field = draw(st.sampled_from(_SCALARS[type_name]))
            alias = draw(st.sampled_from(["", f"{field}_x: "]))
            items.append(f"{alias}{field} {directive}")
    return " ".join(items)


@st.composite
def _documents(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    fragments = draw(st.integers(0, 5))
    definitions = []
    uses = []
    for type_name in ("FT_Stemme", "FT_Aktoer"):
        for index in range(fragments):
            # A fragment spreads later ones only (no cycles), often twice: the expansion can
            # double at each fragment while the document stays small.
            body = draw(_selection(type_name, 2, range(index + 1, fragments)))
            definitions.append(f"fragment {type_name}F{index} on {type_name} {{ {body} }}")
        spread_all = " ".join(f"...{type_name}F{i}" for i in range(fragments))
        if spread_all:
            uses.append(f"{type_name}_all: {type_name}(first: 1) {{ nodes {{ {spread_all} }} }}")
    root = draw(st.sampled_from(["FT_Stemme", "FT_Aktoer"]))
    first = draw(st.sampled_from(["(first: $n)", "(first: 3)", ""]))
    body = draw(_selection(root, 3, range(fragments)))
    operation = (
        f"query($b: Boolean!, $n: Int) {{ {root}{first} {{ nodes {{ {body} }} }} "
        f"uses: FT_Stemme(first: $n) @skip(if: $b) {{ totalCount }} {' '.join(uses)} }}"
    )
    variables = {"b": draw(st.booleans()), "n": draw(st.sampled_from([0, 1, 5, 1000, None]))}
    return operation + "\n" + "\n".join(definitions), variables


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_documents())
def test_generated_documents_never_make_a_500_and_refusals_come_first(
    harness: Harness, case: tuple[str, dict[str, Any]]
) -> None:
    document, variables = case
    harness.replica.log.clear()
    response = harness.post({"query": document, "variables": variables})
    assert response.status_code in (200, 400), response.text
    body = response.json()
    codes = sorted(
        {
            f"{e.get('extensions', {}).get('code')} {e.get('extensions', {}).get('limit', '')}"
            for e in body.get("errors", [])
        }
    )
    event("answered" if body.get("data") else f"refused {codes}")
    for error in body.get("errors", []):
        extensions = error.get("extensions", {})
        assert extensions.get("code") != "INTERNAL_SERVER_ERROR", (document, body)
        if extensions.get("code") != "QUERY_TOO_COMPLEX":
            continue
        if extensions.get("limit") == "upstreamRequests":
            # Found while executing (the pages of a relation): never more than allowed.
            assert len(harness.replica.log) <= extensions["allowed"], document
        elif extensions.get("stage") != "execution":
            assert harness.replica.log == [], (document, body)
    # The checks are linear in the document: each selection visited a bounded number of
    # times, however the fragments expand.
    parsed = parse(document)
    nodes = document.count("{") + document.count("...") + len(document.split())
    measured = measure(harness_schema(), parsed, None, variables, 100)
    assert measured.steps <= 2 * nodes, (document, measured.steps)


# -- the measure remembered per operation ------------------------------------------------


_VARIABLE_SETS = [{"b": b, "n": n} for b in (True, False) for n in (0, 1, 5, 1000, None)]


@settings(max_examples=60, deadline=None)
@given(_documents())
def test_a_remembered_measure_is_the_fresh_walk_for_every_variable_set(
    case: tuple[str, dict[str, Any]],
) -> None:
    document, _ = case
    parsed = parse(document)
    schema = harness_schema()
    # Each variable set twice, interleaved: the second time is answered from the memo.
    for variables in _VARIABLE_SETS + _VARIABLE_SETS:
        fresh, _walker = limits._walk(schema, parsed, None, variables, 100, None)
        assert measure(schema, parsed, None, variables, 100) == fresh, (document, variables)


def test_what_is_known_of_sizes_is_not_remembered_away() -> None:
    observed = Observed()
    knowledge = Knowledge(harness_bindings(), observed)
    document = parse(
        "query($n: Int, $w: FT_StemmeFilter) { FT_Afstemning(first: 1000) { nodes { "
        "Stemme(first: $n, where: $w) { nodes { id typeid } } } } }"
    )
    schema = harness_schema()
    unknown = measure(schema, document, None, {"n": 1000}, 100, knowledge)
    assert measure(schema, document, None, {"n": 1000}, 100, knowledge) == unknown
    relation = harness_bindings()["FT_Afstemning"].relations["Stemme"]
    observed.saw_fanout(relation, 10, 1_000)  # a hundred votes per vote seen so far
    known = measure(schema, document, None, {"n": 1000}, 100, knowledge)
    assert known.cost > unknown.cost
    # Variables that change the estimate change it from the memo too.
    fewer = measure(schema, document, None, {"n": 3}, 100, knowledge)
    assert fewer.cost < known.cost
    pinned = measure(schema, document, None, {"n": 1000, "w": {"id": {"eq": 7}}}, 100, knowledge)
    assert pinned.cost < known.cost
    for variables in ({"n": 1000}, {"n": 3}, {"n": 1000, "w": {"id": {"eq": 7}}}):
        fresh, _walker = limits._walk(schema, document, None, variables, 100, knowledge)
        assert measure(schema, document, None, variables, 100, knowledge) == fresh
    # Other operations of the same document, and another default page size, are their own.
    two = parse(
        "query A { FT_Stemme(first: 5) { nodes { id } } } "
        "query B { FT_Stemme(first: 50) { nodes { id typeid } } }"
    )
    a, b = (measure(schema, two, name, None, 100) for name in ("A", "B"))
    assert (a.cost, b.cost) == (1 + 1 + 5, 1 + 1 + 50 * 2)
    assert measure(schema, two, "A", None, 100) == a
    bare = parse("{ FT_Stemme { nodes { id } } }")
    assert measure(schema, bare, None, None, 100).cost == 102
    assert measure(schema, bare, None, None, 10).cost == 12


def test_a_remembered_measure_is_the_callers_own_and_the_memo_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = harness_schema()
    document = parse("query($n: Int) { FT_Stemme(first: $n) { nodes { Aktoer { navn } } } }")
    first = measure(schema, document, None, {"n": 4}, 100)
    first.by_field.clear()
    assert measure(schema, document, None, {"n": 4}, 100).by_field == {"Query.FT_Stemme": 1 + 4 * 2}
    monkeypatch.setattr(limits, "_OPERATIONS_KEPT", 3)
    monkeypatch.setattr(limits, "_RESULTS_KEPT", 2)
    monkeypatch.setattr(limits, "_measured", weakref.WeakKeyDictionary())
    documents = [parse(f"{{ FT_Stemme(first: {n}) {{ nodes {{ id }} }} }}") for n in range(6)]
    for n, each in enumerate(documents):
        assert measure(schema, each, None, None, 100).cost == 2 + n
        assert len(limits._measured[schema]) <= 3
    for n in range(6):
        assert measure(schema, document, None, {"n": n}, 100).cost == 2 + n * 2
        assert all(len(m.results) <= 2 for m in limits._measured[schema].values())
    assert len(limits._measured[schema]) == 3
    # A schema no longer referenced takes its operations with it.
    other = build_schema("type Query { a: Int }")
    assert measure(other, parse("{ a }"), None, None, 100).cost == 1
    assert len(limits._measured) == 2
    del other
    gc.collect()
    assert list(limits._measured.keys()) == [schema]
