"""Documents the one-pass path leaves to strawberry are parsed and validated once per text.

The caches must not change an answer: a syntax error still gets its code every time, and a
document validated against one schema is validated again against another (per-level schemas
leave fields out).
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.dls.descriptors import load_registers
from gateway.graphql.pipeline import parse_once as _parse_once
from gateway.graphql.schema import GatewaySchema, SchemaSpec, build_schema
from tests.support import REGISTERS

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def schemas() -> dict[str, GatewaySchema]:
    registers = [r for r in load_registers(REGISTERS).registers if r.name == "FT"]
    return {
        "full": build_schema(SchemaSpec(registers), fast_path=False),
        "level 0": build_schema(SchemaSpec(registers, max_level=0), fast_path=False),
    }


def codes(result: Any) -> list[str]:
    return [(e.extensions or {}).get("code") for e in result.errors or []]


async def test_a_document_is_parsed_once(schemas: dict[str, GatewaySchema]) -> None:
    document = '{ __type(name: "FT_Aktoer") { name fields { name } } }'
    before = _parse_once.cache_info()
    first = await schemas["full"].execute(document)
    second = await schemas["full"].execute(document)
    after = _parse_once.cache_info()
    assert first.errors is None
    assert second.data == first.data
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 1


async def test_a_syntax_error_keeps_its_code_every_time(
    schemas: dict[str, GatewaySchema],
) -> None:
    for _ in range(2):
        result = await schemas["full"].execute("{ FT_Aktoer(")
        assert result.data is None
        assert codes(result) == ["GRAPHQL_PARSE_FAILED"]


async def test_validation_is_per_schema(schemas: dict[str, GatewaySchema]) -> None:
    # biografi is a level-1 field: in the full schema (with @securityLevel), absent from
    # the level-0 schema. Validated against the first, the document must still fail the second.
    document = "{ FT_Aktoer(first: 1) { nodes { biografi } } }"
    full = schemas["full"]._schema
    assert "biografi" in full.type_map["FT_Aktoer"].fields  # type: ignore[union-attr]
    valid = await schemas["full"].execute(document)
    assert "GRAPHQL_VALIDATION_FAILED" not in codes(valid)
    for _ in range(2):
        refused = await schemas["level 0"].execute(document)
        assert refused.data is None
        assert codes(refused) == ["GRAPHQL_VALIDATION_FAILED"]
        assert "biografi" in refused.errors[0].message  # type: ignore[index]
