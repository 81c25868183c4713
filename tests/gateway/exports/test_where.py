"""The JSON ``where``/``order`` parameters become the same filter trees as the GraphQL inputs."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from gateway.dls.descriptors import load_registers
from gateway.exports.where import decode_json, order_from_json, where_from_json
from gateway.model.datamodel import Entity
from gateway.model.errors import BadUserInputError
from gateway.model.query import And, Condition, Or, SortKey
from tests.support import REGISTERS


@pytest.fixture(scope="module")
def entities() -> dict[str, Entity]:
    report = load_registers(REGISTERS / "FT")
    assert report.ok, report.render()
    return dict(report.registers[0].datamodel.entities)


@pytest.fixture(scope="module")
def stemme(entities: dict[str, Entity]) -> Entity:
    return entities["Stemme"]


def where(entity: Entity, text: str) -> Any:
    return where_from_json(entity, decode_json(text, "where", 100_000))


def test_one_condition(stemme: Entity) -> None:
    assert where(stemme, '{"afstemningid": {"eq": 1}}') == Condition("afstemningid", "eq", 1)


def test_absent_empty_and_null_mean_no_filter(stemme: Entity) -> None:
    assert where_from_json(stemme, decode_json(None, "where", 100)) is None
    assert where(stemme, "   ") is None
    assert where(stemme, "{}") is None
    assert where(stemme, '{"typeid": null}') is None


def test_parts_come_in_the_schema_builders_order(stemme: Entity) -> None:
    # and, or, then the fields in datamodel order, whatever the JSON order.
    got = where(
        stemme,
        '{"aktoerid": {"lte": 9, "gt": 1}, "or": [{"typeid": {"eq": 1}}, {"typeid": {"eq": 2}}],'
        ' "id": {"neq": 5}}',
    )
    assert got == And(
        (
            Or((Condition("typeid", "eq", 1), Condition("typeid", "eq", 2))),
            Condition("id", "neq", 5),
            Condition("aktoerid", "gt", 1),
            Condition("aktoerid", "lte", 9),
        )
    )


def test_nested_and_or(stemme: Entity) -> None:
    got = where(
        stemme,
        '{"and": [{"or": [{"id": {"in": [1, 2]}}, {"typeid": {"eq": null}}]}, {"id": {"gt": 0}}]}',
    )
    assert got == And(
        (
            Or((Condition("id", "in", (1, 2)), Condition("typeid", "eq", None))),
            Condition("id", "gt", 0),
        )
    )


def test_graphql_list_coercion(stemme: Entity) -> None:
    # A single value where a list is expected is a list of one, as GraphQL coerces it.
    assert where(stemme, '{"id": {"in": 7}}') == Condition("id", "in", (7,))
    assert where(stemme, '{"and": {"id": {"eq": 7}}}') == And((Condition("id", "eq", 7),))
    assert where(stemme, '{"id": {"nin": [1, null]}}') == Condition("id", "nin", (1, None))


def test_values_are_coerced_to_the_field_types(entities: dict[str, Entity]) -> None:
    got = where(entities["Stemme"], '{"opdateringsdato": {"gte": "2015-01-02T03:04:05+01:00"}}')
    moment = dt.datetime(2015, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert got == Condition("opdateringsdato", "gte", moment)
    assert where(entities["Afstemning"], '{"vedtaget": {"eq": true}}') == Condition(
        "vedtaget", "eq", True
    )
    assert where(entities["Stemme"], '{"id": {"eq": 3.0}}') == Condition("id", "eq", 3)
    aktoer = entities["Aktør"]
    assert where(aktoer, '{"navn": {"startsWith": "Fin"}}') == Condition(
        "navn", "startsWith", "Fin"
    )


BAD_WHERE = {
    "not JSON": ("{afstemningid: 1}", "not valid JSON"),
    "not an object": ("[1]", "must be an object"),
    "unknown field": ('{"nope": {"eq": 1}}', "no field 'nope'"),
    "source name, not GraphQL name": ('{"aktørid": {"eq": 1}}', "no field 'aktørid'"),
    "operator of another type": ('{"id": {"contains": "1"}}', "not an operator for a Int"),
    "text for an Int": ('{"id": {"eq": "1"}}', "an Int must be an integer"),
    "boolean for an Int": ('{"id": {"eq": true}}', "an Int must be an integer"),
    "fraction for an Int": ('{"id": {"eq": 1.5}}', "an Int must be an integer"),
    "beyond 32 bits": ('{"id": {"eq": 2147483648}}', "out of range"),
    "NaN": ('{"id": {"eq": NaN}}', "not valid JSON"),
    "bad date-time": ('{"opdateringsdato": {"gt": "yesterday"}}', "not an ISO 8601"),
    "null for gt": ('{"id": {"gt": null}}', "id.gt needs a value"),
    "empty and": ('{"and": []}', "and needs at least one condition"),
    "null in or": ('{"or": [null]}', "must not be null"),
    "operations not an object": ('{"id": 1}', "must be an object"),
}


@pytest.mark.parametrize("case", sorted(BAD_WHERE))
def test_bad_where_is_a_clear_bad_user_input(stemme: Entity, case: str) -> None:
    text, message = BAD_WHERE[case]
    with pytest.raises(BadUserInputError) as caught:
        where(stemme, text)
    assert message in caught.value.message
    assert caught.value.extensions["code"] == "BAD_USER_INPUT"


def test_limits_on_size_and_depth(stemme: Entity) -> None:
    with pytest.raises(BadUserInputError, match="longer than 50 bytes"):
        decode_json('{"id": {"in": [' + ",".join(["1"] * 40) + "]}}", "where", 50)
    deep: dict[str, Any] = {"id": {"eq": 1}}
    for _ in range(20):
        deep = {"and": [deep]}
    with pytest.raises(BadUserInputError, match="deeper than 15"):
        where_from_json(stemme, deep, max_depth=15)
    hostile = "[" * 100_000 + "]" * 100_000
    with pytest.raises(BadUserInputError, match="not valid JSON"):
        decode_json(hostile, "where", 10**6)


def test_order(stemme: Entity) -> None:
    assert order_from_json(stemme, None) == []
    assert order_from_json(stemme, json.loads('[{"afstemningid": "DESC"}, {"id": "ASC"}]')) == [
        SortKey("afstemningid", True),
        SortKey("id"),
    ]
    # One object where a list is expected; several fields in one object in model order.
    assert order_from_json(stemme, {"aktoerid": "ASC", "id": "DESC"}) == [
        SortKey("id", True),
        SortKey("aktoerid"),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([{"nope": "ASC"}], "no field 'nope'"),
        ([{"id": "UP"}], 'must be "ASC" or "DESC"'),
        (["id"], "must be an object"),
    ],
)
def test_bad_order(stemme: Entity, value: Any, message: str) -> None:
    with pytest.raises(BadUserInputError) as caught:
        order_from_json(stemme, value)
    assert message in caught.value.message
