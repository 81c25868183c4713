"""Measuring documents: linear in their size, bounded by pinned keys and observed fan-outs."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphql import GraphQLSchema, parse
from hypothesis import given, settings, strategies as st

from gateway.graphql.demand import Knowledge, Observed, pinned_rows
from gateway.graphql.execute import Binding
from gateway.graphql.limits import LimitSettings, measure, verdict
from gateway.graphql.schema import GatewaySchema
from gateway.http.app import load_gateway
from gateway.http.config import Settings
from tests.support import REGISTERS


@functools.cache
def _built() -> GatewaySchema:
    gateway = load_gateway(Settings(registers_dir=REGISTERS, include=("FT",)))
    return gateway.schema_for("/graphql")


def schema() -> GraphQLSchema:
    return _built()._schema


def bindings() -> Mapping[str, Binding]:
    return _built().bindings_by_type


def doubling(count: int, nested: bool) -> str:
    """Fragments each spreading the next twice: side by side, or under two fields (whose
    answer really doubles at every fragment)."""
    parts = []
    for i in range(count):
        inner = f"...F{i + 1}" if i + 1 < count else "id"
        if nested:
            down = f"Aktoertype {{ Aktoer(first: 1) {{ nodes {{ {inner} }} }} }}"
            parts.append(f"fragment F{i} on FT_Aktoer {{ a: {down} b: {down} }}")
        else:
            parts.append(f"fragment F{i} on FT_Stemme {{ id {inner} {inner} }}")
    root = "FT_Aktoer" if nested else "FT_Stemme"
    return f"{{ {root}(first: 1) {{ nodes {{ ...F0 }} }} }}\n" + "\n".join(parts)


def test_measurement_is_linear_in_the_document_whatever_it_expands_to() -> None:
    limits = LimitSettings()
    for count in (10, 20, 40, 80):
        document = parse(doubling(count, nested=True), no_location=True)
        measured = measure(schema(), document, None, None, 100)
        selections = 8 * count + 3  # what the document holds, not what it expands to
        assert measured.steps <= 2 * selections
        assert measured.fields >= 2 ** min(count, 10)  # what it expands to
        refusal = verdict(measured, limits, 3)
        assert refusal is not None
        assert refusal.extensions is not None
        assert refusal.extensions["limit"] in ("depth", "fields", "nesting")


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["id", "typeid", "and"]),
        st.one_of(
            st.fixed_dictionaries({"eq": st.integers()}),
            st.fixed_dictionaries({"in": st.lists(st.integers(), max_size=30)}),
            st.fixed_dictionaries({"gt": st.integers()}),
        ),
        max_size=3,
    )
)
def test_a_where_bounds_rows_only_when_it_pins_the_key(where: dict[str, Any]) -> None:
    bound = pinned_rows(("id",), where)
    condition = where.get("id")
    if condition is None or "gt" in condition:
        assert bound is None
    elif "eq" in condition:
        assert bound == 1
    else:
        assert bound == len(set(condition["in"]))


def test_observed_fanout_bounds_the_estimate() -> None:
    observed = Observed()
    knowledge = Knowledge(bindings(), observed)
    document = parse(
        "{ FT_Afstemning(first: 1000) { nodes { Stemme(first: 1000) { nodes { id typeid } } } } }"
    )
    unknown = measure(schema(), document, None, None, 100, knowledge)
    relation = bindings()["FT_Afstemning"].relations["Stemme"]
    observed.saw_fanout(relation, 10, 1_000)  # a hundred votes per vote seen so far
    known = measure(schema(), document, None, None, 100, knowledge)
    assert unknown.cost < 50_000 < known.cost
    assert known.costliest() == "FT_Afstemning.Stemme"
    # Without knowledge the old rule (page size at every level) applies.
    blind = measure(schema(), document, None, None, 100)
    assert blind.cost > 1000 * 1000 * 2


def test_limits_are_configured_per_level(tmp_path: Path) -> None:
    settings = Settings().merged(
        {
            "limits": {
                "max_fields": 50,
                "cost_budget": {"0": 10, "3": 99},
                "upstream_requests": {"0": 4, "2": 40},
            }
        },
        base=tmp_path,
    )
    limits = settings.limits
    assert limits.max_fields == 50
    assert (limits.budget(0), limits.budget(3)) == (10, 99)
    assert (limits.upstream_budget(0), limits.upstream_budget(2)) == (4, 40)
    assert limits.upstream_budget(7) == 40  # a level above the table gets its highest


def test_chains_of_fragments_deeper_than_python_recursion_are_refused() -> None:
    limits = LimitSettings()
    for document, limit in (
        (doubling(400, nested=True), "depth"),  # deep as it expands: depth, at least 48
        (doubling(2_000, nested=False), "nesting"),  # flat, but a chain of 2,000 spreads
    ):
        measured = measure(schema(), parse(document), None, None, 100)
        assert measured.nesting_exceeded
        refusal = verdict(measured, limits, 3)
        assert refusal is not None
        assert refusal.extensions is not None
        assert refusal.extensions["limit"] == limit
    # Sixty fragments side by side in a chain stay under the cap, and are measured small.
    chained = measure(schema(), parse(doubling(60, nested=False)), None, None, 100)
    assert verdict(chained, limits, 0) is None
    assert chained.depth == 3
    assert chained.fields <= 2 * 60 + 4  # one id per fragment, not 2**60
