"""A plan's variables and arguments: the same values and errors as graphql-core's, and
arguments kept only where the variables they read are the same values."""

from __future__ import annotations

import math
from typing import Any

import pytest
from graphql import (
    OperationDefinitionNode,
    build_schema,
    parse,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values

from gateway.graphql.inputs import KEPT, Arguments, Variables, variables_named

SCHEMA = build_schema(
    """
    scalar DateTime
    input Range { gte: Int, lte: Int }
    type Query {
      f(i: Int, s: String, b: Boolean, d: ID, x: Float, r: Range, t: DateTime, l: [Int]): Int
    }
    """
)

VALUES: list[Any] = [
    0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**70, True, False, 1.0, 1.5,
    math.nan, math.inf, "", "1", "x", None, [], [1], {}, {"gte": 1},
]  # fmt: skip

DEFINITIONS = [
    "$v: Int", "$v: Int!", "$v: String", "$v: String!", "$v: Boolean", "$v: Boolean!",
    "$v: ID", "$v: ID!", "$v: Float", "$v: Float!", "$v: Range", "$v: DateTime",
    "$v: [Int]", "$v: [Int!]!", "$v: Int = 3",
]  # fmt: skip


def operation(text: str) -> OperationDefinitionNode:
    (found,) = parse(text).definitions
    assert isinstance(found, OperationDefinitionNode)
    return found


def same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):  # errors
        return [e.message for e in a] == [e.message for e in b]
    if not isinstance(a, VariableValues) or not isinstance(b, VariableValues):
        return False
    if a.coerced.keys() != b.coerced.keys() or a.sources.keys() != b.sources.keys():
        return False
    for name, value in a.coerced.items():
        other = b.coerced[name]
        if type(value) is not type(other):
            return False
        if not (value == other or (value != value and other != other)):
            return False
    return all(_source(a.sources[n]) == _source(b.sources[n]) for n in a.sources)


def _source(source: Any) -> tuple[Any, ...]:
    # The signature's type is built anew from the document each time (NonNull wrappers
    # compare by identity): compared by what it says.
    signature = source.signature
    return (signature.name, str(signature.type), signature.default, repr(source.value))


@pytest.mark.parametrize("definition", DEFINITIONS)
def test_variables_coerce_as_graphql_core(definition: str) -> None:
    op = operation(f"query({definition}, $w: String) {{ f }}")
    variables = Variables(SCHEMA, op)
    cases: list[dict[str, Any]] = [{}, {"w": "z"}, *({"v": value} for value in VALUES)]
    cases += [{"v": value, "w": None} for value in VALUES[:3]]
    for raw in cases:
        ours = variables.coerce(raw)
        theirs = get_variable_values(SCHEMA, op.variable_definitions, dict(raw))
        assert same(ours, theirs), (definition, raw, ours, theirs)


def test_an_operation_without_variables() -> None:
    op = operation("{ f }")
    coerced = Variables(SCHEMA, op).coerce({"extra": 1})
    assert not isinstance(coerced, list)
    assert coerced.coerced == {}
    assert coerced.sources == {}


def test_arguments_read_the_variables_they_name() -> None:
    op = operation('query($a: Int, $b: Range, $c: Int) { f(i: $a, r: $b, s: "$c") }')
    (field,) = op.selection_set.selections
    assert [variables_named(a) for a in field.arguments] == [["a"], ["b"], []]  # type: ignore[attr-defined]
    kept = Arguments(field.arguments)  # type: ignore[attr-defined]
    variables = Variables(SCHEMA, op)

    def key(raw: dict[str, Any]) -> Any:
        coerced = variables.coerce(raw)
        assert not isinstance(coerced, list)
        return kept.key(coerced)

    assert key({"a": 1}) == key({"a": 1, "c": 9})  # $c is not read
    assert key({"a": 1}) != key({"a": 2})
    assert key({"a": 1}) != key({})  # absent is not null
    assert key({"a": None}) != key({})
    assert key({"b": {"gte": 1}}) is None  # input objects: coerced every time


def test_arguments_keep_by_value_and_type_and_are_bounded() -> None:
    op = operation("query($x: Float) { f(x: $x) }")
    (field,) = op.selection_set.selections
    kept = Arguments(field.arguments)  # type: ignore[attr-defined]
    variables = Variables(SCHEMA, op)
    coerced = variables.coerce({"x": 1.0})
    assert not isinstance(coerced, list)
    args = get_argument_values(SCHEMA.query_type.fields["f"], field, coerced)  # type: ignore[union-attr,arg-type]
    k = kept.key(coerced)
    kept.keep(k, args)
    assert kept.get(k) is args
    assert kept.get(("not", "seen")) is None
    assert kept.get(None) is None
    for n in range(KEPT + 5):
        kept.keep(((float, float(n + 10)),), {})
    assert kept.get(k) is None  # the oldest went first
    assert len(kept._kept) == KEPT
