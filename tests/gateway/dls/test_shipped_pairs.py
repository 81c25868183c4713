"""The shipped registers as DLS deliveries: their committed pairs round-trip.

Each register's ``2. Datamodel/`` carries the pair ``gateway dls-export`` writes from its native
model (EDMX, JSON Schemas, XSD). Loading the pair gives the native model's schema, and the
relation generator on the pair's XMI gives the committed relations (entities, aliases,
multiplicities, targets across registers). Aliases compare as served: the XMI names an
association by the alias's GraphQL name (``Aktør`` → ``Aktoer``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.dls.descriptors import dls_files, generate_relations, load_registers
from gateway.dls.dls_export import export_register
from gateway.dls.dls_xsd import load_dls_xsd
from gateway.graphql.schema import SchemaSpec, build_schema
from gateway.history.temporal_fields import without_temporal_fields
from gateway.model.datamodel import Register
from gateway.model.naming import graphql_name
from tests.support import REGISTERS

SHIPPED = ("FT", "VALG", "CZ", "CZPREZ", "DE")


@pytest.fixture(scope="module")
def registers() -> dict[str, Register]:
    report = load_registers(REGISTERS)
    assert report.ok, report.render()
    pair_warnings = [m for m in report.warnings if m.what == "DLS pair"]
    assert pair_warnings == [], "\n".join(map(str, pair_warnings))
    # As delivered: the temporal fields the gateway adds (registreringFra …) are not exported.
    return {
        r.name: dataclasses.replace(r, datamodel=without_temporal_fields(r.datamodel))
        for r in report.registers
    }


def _pair(register: Register) -> dict[str, Path]:
    files = dls_files(Path(register.path) / "2. Datamodel", register.name)
    assert len(files) == 1, files
    (pair,) = files.values()
    assert set(pair) == {"xsd", "xmi"}
    return pair


@pytest.mark.parametrize("name", SHIPPED)
def test_the_committed_pair_is_what_dls_export_writes(
    name: str, registers: dict[str, Register]
) -> None:
    register = registers[name]
    pair = _pair(register)
    written = export_register(register, registers)
    assert pair["xsd"].name == written.xsd_name
    assert pair["xmi"].name == written.xmi_name
    assert pair["xsd"].read_text(encoding="utf-8") == written.xsd
    assert pair["xmi"].read_text(encoding="utf-8") == written.xmi


@pytest.mark.parametrize("name", SHIPPED)
def test_the_pair_gives_the_native_schema(name: str, registers: dict[str, Register]) -> None:
    register = registers[name]
    loaded = load_dls_xsd(_pair(register)["xsd"], name, {})
    native = register.datamodel
    assert sorted(loaded.entities) == sorted(native.entities)
    for entity_name, entity in native.entities.items():
        other = loaded.entities[entity_name]
        assert other.key == entity.key, entity_name
        assert [(f.name, f.type, f.nullable, f.many) for f in other.fields] == [
            (f.name, f.type, f.nullable, f.many) for f in entity.fields
        ], entity_name
    as_pair = dataclasses.replace(register, datamodel=loaded)
    assert (
        build_schema(SchemaSpec([as_pair])).as_str()
        == build_schema(SchemaSpec([register])).as_str()
    )


def _essentials(relations: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    return {
        (
            r["SourceEntity"],
            str(int(str(r["TargetRc"]).removeprefix("rc"))),
            r["TargetEntity"],
            str(r["ToManyRelation"]),
            graphql_name(r["Alias"]),
        )
        for r in relations
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_the_relation_generator_on_the_xmi_gives_the_committed_relations(
    name: str, registers: dict[str, Register]
) -> None:
    register = registers[name]
    committed = json.loads(
        (Path(register.path) / "2. Datamodel" / "Relations.json").read_text(encoding="utf-8")
    )
    newest = max(committed["RelationVersions"], key=lambda v: int(v["RelationVersionNumber"]))
    document, report = generate_relations(REGISTERS, name)
    assert document is not None, report.render()
    assert report.errors == [], report.render()
    generated = document["RelationVersions"][0]["Relations"]
    assert _essentials(generated) == _essentials(newest["Relations"])
