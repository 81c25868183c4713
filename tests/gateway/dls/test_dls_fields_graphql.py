"""The DLS physical model in the GraphQL schema: lists, code lists, facets, refused filters."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLInputObjectType, GraphQLObjectType

from gateway.dls.dls_xsd import load_dls_xsd
from gateway.graphql.arguments import order_keys, where_filter
from gateway.graphql.schema import GatewaySchema, SchemaSpec, build_schema, field_description
from gateway.model.datamodel import Register
from gateway.model.errors import BadUserInputError
from gateway.model.query import Condition
from tests.gateway.dls.test_dls_xsd import FIXTURES


@pytest.fixture(scope="module")
def register() -> Register:
    return Register(
        name="BBR",
        rc="rc00018",
        datamodel=load_dls_xsd(FIXTURES["BBR"], "BBR", {}),
        relation_versions={"1": ()},
        default_level=0,
        entity_levels={},
        field_levels={},
        source={},
    )


@pytest.fixture(scope="module")
def schema(register: Register) -> GatewaySchema:
    return build_schema(SchemaSpec([register]), fast_path=False)


def _type(schema: GatewaySchema, name: str) -> Any:
    found = schema._schema.type_map[name]
    assert isinstance(found, GraphQLObjectType | GraphQLInputObjectType)
    return found


def codes(result: Any) -> list[str]:
    return [(e.extensions or {}).get("code") for e in result.errors or []]


def test_a_many_field_is_a_list_and_neither_filtered_nor_sorted(schema: GatewaySchema) -> None:
    bygning = _type(schema, "BBR_Bygning")
    assert str(bygning.fields["husnummer"].type) == "[String!]"  # minOccurs 0: the list is null
    assert str(bygning.fields["status"].type) == "String!"
    assert str(bygning.fields["byg026Opfoerelsesaar"].type) == "Int"
    assert "husnummer" not in _type(schema, "BBR_BygningFilterInput").fields
    assert "husnummer" not in _type(schema, "BBR_BygningSortInput").fields
    assert "status" in _type(schema, "BBR_BygningFilterInput").fields
    assert "husnummer: [String!]" in schema.as_str()


def test_descriptions_list_codes_and_facets(schema: GatewaySchema, register: Register) -> None:
    fields = _type(schema, "BBR_Bygning").fields
    anvendelse = fields["byg021BygningensAnvendelse"].description
    entity = register.datamodel.entities["Bygning"]
    codelist = entity.field("byg021BygningensAnvendelse").codes
    assert codelist is not None
    assert anvendelse.startswith(entity.field("byg021BygningensAnvendelse").description)
    assert f"Codes ({codelist.name}):" in anvendelse
    for code in codelist.codes:
        assert f"- `{code.value}`: {code.description}" in anvendelse
    assert "Range: 1000 ≤ value ≤ 2999." in fields["byg026Opfoerelsesaar"].description
    sag = _type(schema, "BBR_BBRSag").fields
    assert "Length: 1 to 20 characters." in sag["sag001Byggesagsnummer"].description
    # A field with neither keeps its own description.
    assert fields["id_lokalId"].description == entity.field("id_lokalId").description


def test_description_text_of_patterns_and_exact_lengths() -> None:
    dar = load_dls_xsd(FIXTURES["DAR"], "DAR", {}).entities["Husnummer"]
    text = field_description(dar.field("husnummertekst"))
    assert "Length: 0 to 4 characters." in text
    assert "Pattern: `[0-9]{1,3}[A-Z]?`." in text


@pytest.mark.asyncio
async def test_an_unknown_code_is_refused(schema: GatewaySchema) -> None:
    query = (
        '{ BBR_Bygning(where: {byg021BygningensAnvendelse: {eq: "999"}}) { nodes { id_lokalId } } }'
    )
    result = await schema.execute(query)
    assert codes(result) == ["BAD_USER_INPUT"]
    message = result.errors[0].message  # type: ignore[index]
    assert "'999' is not a code of BygningensAnvendelseType" in message
    assert "110, 120, 510" in message

    query = '{ BBR_Bygning(where: {status: {in: ["1", "7"]}}) { nodes { id_lokalId } } }'
    result = await schema.execute(query)
    assert codes(result) == ["BAD_USER_INPUT"]
    assert "'7' is not a code of LivscyklusType" in result.errors[0].message  # type: ignore[index]


@pytest.mark.asyncio
async def test_a_value_outside_the_range_is_refused(schema: GatewaySchema) -> None:
    query = "{ BBR_Bygning(where: {byg026Opfoerelsesaar: {eq: 3500}}) { nodes { id_lokalId } } }"
    result = await schema.execute(query)
    assert codes(result) == ["BAD_USER_INPUT"]
    assert "values are ≤ 2999" in result.errors[0].message  # type: ignore[index]


def test_codes_and_ranges_that_fit_pass(register: Register) -> None:
    entity = register.datamodel.entities["Bygning"]
    assert where_filter(entity, {"byg021BygningensAnvendelse": {"eq": "110"}}) == Condition(
        "byg021BygningensAnvendelse", "eq", "110"
    )
    assert where_filter(entity, {"status": {"nin": ["1", None]}}) is not None
    assert where_filter(entity, {"status": {"contains": "x"}}) is not None  # no equality
    assert where_filter(entity, {"byg026Opfoerelsesaar": {"in": [1000, 2999]}}) is not None
    # Comparisons may reach beyond the range: they are not refused.
    assert where_filter(entity, {"byg026Opfoerelsesaar": {"gt": 0}}) is not None
    with pytest.raises(BadUserInputError, match="values are ≥ 1000"):
        where_filter(entity, {"byg026Opfoerelsesaar": {"in": [999]}})
    # A list field never filters or sorts, even when a plain dict names it.
    assert where_filter(entity, {"husnummer": {"eq": "x"}}) is None
    assert order_keys(entity, [{"husnummer": "ASC"}]) == []
