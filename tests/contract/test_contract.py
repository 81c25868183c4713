"""One contract, every source kind: the same query semantics against each kind's replica.

Each test runs once per kind (``served``, parametrised over ``tests.contract.kinds``): the
gateway over that kind's replica, asked about one entity of its register. Expected answers are
the rows of the raw recorded files (``ContractKind.rows``), never answers seen before. The
semantics: filters, order, paging, counts, relations, bad input, upstream faults and the
notice of a stale answer served while the upstream fails.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.contract.conftest import Served
from tests.contract.kinds import FAULTS, RELATION, ContractKind, Row, break_upstream, mend_upstream

pytestmark = pytest.mark.asyncio(loop_scope="module")

UPSTREAM = {"UPSTREAM_UNAVAILABLE", "UPSTREAM_TIMEOUT", "UPSTREAM_INVALID"}
PAGE = 7


class Enum(str):
    """A GraphQL enum value (written bare)."""


class Variable(str):
    """A GraphQL variable (written ``$name``)."""


def literal(value: Any) -> str:
    """``value`` as a GraphQL input literal."""
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, Variable):
        return f"${value}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def query(
    kind: ContractKind,
    where: dict[str, Any] | None = None,
    *,
    selection: str = "",
    **arguments: Any,
) -> str:
    """A root-field query of the kind's entity; ``where`` is added to the kind's scope."""
    merged = {**kind.scope, **(where or {})}
    assert not set(kind.scope) & set(where or {}), "a contract filter never replaces the scope"
    if merged:
        arguments["where"] = merged
    args = ", ".join(f"{name}: {literal(value)}" for name, value in arguments.items())
    fields = " ".join(kind.fields)
    return (
        f"{{ {kind.entity}{f'({args})' if args else ''} {{ totalCount "
        f"pageInfo {{ hasNextPage endCursor }} nodes {{ {fields} {selection} }} }} }}"
    )


def by_key(kind: ContractKind, descending: bool = False) -> list[dict[str, Any]]:
    return [{kind.key: Enum("DESC" if descending else "ASC")}]


def rows(kind: ContractKind) -> list[Row]:
    found = kind.rows()
    assert len(found) > PAGE, "the scope holds enough rows to page through"
    keys = [r[kind.key] for r in found]
    assert len(set(keys)) == len(keys), f"{kind.key} is unique within the scope"
    return sorted(found, key=lambda r: r[kind.key])


def connection(body: dict[str, Any], kind: ContractKind) -> dict[str, Any]:
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"][kind.entity]
    return found


def projected(kind: ContractKind, rows: list[Row]) -> list[Row]:
    return [kind.project(r) for r in rows]


def nodes(kind: ContractKind, found: dict[str, Any]) -> list[Row]:
    return [kind.project(n) for n in found["nodes"]]


def require(kind: ContractKind, capability: str) -> None:
    """Skip, naming the kind's stated reason, where it lacks ``capability``."""
    if capability in kind.lacks:
        pytest.skip(f"{kind.register} lacks {capability}: {kind.lacks[capability]}")


async def test_equality_filter(served: Served) -> None:
    kind = served.kind
    recorded = rows(kind)
    value = recorded[len(recorded) // 2][kind.eq_field]
    expected = [r for r in recorded if r[kind.eq_field] == value]
    assert 0 < len(expected) < len(recorded)
    body = await served.ask(
        query(kind, {kind.eq_field: {"eq": value}}, first=1000, order=by_key(kind))
    )
    found = connection(body, kind)
    assert nodes(kind, found) == projected(kind, expected)
    assert found["totalCount"] == len(expected)


async def test_in_filter(served: Served) -> None:
    kind = served.kind
    recorded = rows(kind)
    picked = [recorded[0], recorded[len(recorded) // 3], recorded[-1]]
    keys = [r[kind.key] for r in picked]
    absent = "no such key" if isinstance(keys[0], str) else -424242
    body = await served.ask(
        query(kind, {kind.key: {"in": [*reversed(keys), absent]}}, order=by_key(kind))
    )
    assert nodes(kind, connection(body, kind)) == projected(kind, picked)


@pytest.mark.parametrize("descending", [False, True], ids=["ASC", "DESC"])
async def test_order(served: Served, descending: bool) -> None:
    kind = served.kind
    expected = rows(kind)[::-1] if descending else rows(kind)
    body = await served.ask(query(kind, first=PAGE, order=by_key(kind, descending)))
    found = connection(body, kind)
    assert nodes(kind, found) == projected(kind, expected[:PAGE])
    assert found["pageInfo"]["hasNextPage"] is True


async def test_paging_with_first_and_after(served: Served) -> None:
    kind = served.kind
    expected = rows(kind)
    seen: list[Row] = []
    after: str | None = None
    for _ in range(len(expected) // PAGE + 2):
        page = {"first": PAGE, "order": by_key(kind)}
        if after is not None:
            page["after"] = after
        found = connection(await served.ask(query(kind, **page)), kind)
        assert 0 < len(found["nodes"]) <= PAGE
        assert found["totalCount"] == len(expected)
        seen += nodes(kind, found)
        if not found["pageInfo"]["hasNextPage"]:
            break
        after = found["pageInfo"]["endCursor"]
    assert seen == projected(kind, expected)


async def test_total_count(served: Served) -> None:
    kind = served.kind
    body = await served.ask(query(kind, first=1))
    found = connection(body, kind)
    assert found["totalCount"] == len(rows(kind))
    assert len(found["nodes"]) == 1


async def test_relation(served: Served) -> None:
    kind = served.kind
    require(kind, RELATION)
    relation = kind.relation
    assert relation is not None, f"{kind.register}: a relation, or a reason in lacks"
    recorded = rows(kind)
    body = await served.ask(
        query(kind, first=1000, order=by_key(kind), selection=relation.selection)
    )
    found = connection(body, kind)
    assert nodes(kind, found) == projected(kind, recorded)
    answered = [relation.answered(n) for n in found["nodes"]]
    assert answered == [relation.expected(r) for r in recorded]
    assert any(answered)


async def test_malformed_filter_is_bad_user_input(served: Served) -> None:
    kind = served.kind
    # A lone UTF-16 surrogate (JSON can spell it, no upstream encoding can carry it).
    text = query(kind, {kind.text_field: {"eq": Variable("v")}})
    text = f"query ($v: {kind.text_type}) {text}"
    body = await served.ask(text, variables={"v": "\ud800"})
    assert (body.get("data") or {}).get(kind.entity) is None, body
    codes = [e.get("extensions", {}).get("code") for e in body["errors"]]
    assert codes == ["BAD_USER_INPUT"], body


async def test_upstream_fault_is_an_upstream_error(served: Served) -> None:
    kind = served.kind
    require(kind, FAULTS)
    text = query(kind, first=PAGE, order=by_key(kind))
    async with served.cold_gateway() as cold:
        break_upstream(served.replica)
        try:
            body = await served.ask(text, cold)
        finally:
            mend_upstream(served.replica)
        assert (body.get("data") or {}).get(kind.entity) is None, body
        codes = {e.get("extensions", {}).get("code") for e in body["errors"]}
        assert codes, body
        assert codes <= UPSTREAM, body
        (error,) = body["errors"]
        assert error["path"] == [kind.entity], body
        assert error["message"], body
        # The gateway is still up: once the upstream answers, so does it.
        again = connection(await served.ask(text, cold), kind)
        assert nodes(kind, again) == projected(kind, rows(kind)[:PAGE])


# Upstream answers fresh for 0.2 s, then served stale for an hour while the upstream fails.
STALE = {"ttl": 0.2, "fileTtl": 0.2, "staleIfError": 3600}


async def test_a_failing_upstream_is_answered_stale_with_a_notice(served: Served) -> None:
    kind = served.kind
    require(kind, FAULTS)
    text = query(kind, first=PAGE, order=by_key(kind))
    async with served.cold_gateway(STALE) as cold:
        fresh = await served.ask(text, cold)
        assert "STALE_IF_ERROR" not in _notice_codes(fresh), fresh
        good = connection(fresh, kind)
        await asyncio.sleep(0.3)  # past the time the answers are fresh
        break_upstream(served.replica)
        try:
            stale = await served.ask(text, cold)
        finally:
            mend_upstream(served.replica)
    assert connection(stale, kind) == good
    assert nodes(kind, good) == projected(kind, rows(kind)[:PAGE])
    assert "STALE_IF_ERROR" in _notice_codes(stale), stale
    # One notice per stale upstream answer used (a listing and its files, say), each aged.
    notices = [n for n in stale["extensions"]["notices"] if n["code"] == "STALE_IF_ERROR"]
    assert all(n["ageSeconds"] >= 0.3 for n in notices), notices


def _notice_codes(body: dict[str, Any]) -> list[str]:
    return [n["code"] for n in (body.get("extensions") or {}).get("notices", [])]
