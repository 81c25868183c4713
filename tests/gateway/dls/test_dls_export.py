"""``dls-export``: a register's datamodel as a DLS pair (XSD in the DLS style + EA XMI 2.1)."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.dls.descriptors import load_registers
from gateway.dls.dls_export import eaid_of, export_register, write_pair
from gateway.dls.dls_xsd import load_dls_xsd
from gateway.dls.relation_generator import eaid_index, generate
from gateway.dls.report import Report
from gateway.dls.xmi import parse_xmi
from gateway.model.datamodel import Datamodel, Entity, Field, Register, ScalarType

DELIVERY = Path(__file__).parent / "delivery"


@pytest.fixture(scope="module")
def delivered() -> dict[str, Register]:
    report = load_registers(DELIVERY, previous_relations={})
    assert report.ok, report.render()
    return {r.name: r for r in report.registers}


def test_the_eaids_of_a_dls_model_are_kept(delivered: dict[str, Register]) -> None:
    for register in delivered.values():
        pair = export_register(register, delivered)
        for entity in register.datamodel.entities.values():
            assert entity.eaid
            assert entity.eaid in pair.xsd
            assert entity.eaid in pair.xmi
            for field in entity.fields:
                assert field.eaid in pair.xsd, (entity.name, field.name)
        for codelist in register.datamodel.codelists.values():
            for code in codelist.codes:
                assert code.eaid in pair.xsd


def test_a_cross_register_target_is_named_by_its_own_eaid(
    delivered: dict[str, Register], tmp_path: Path
) -> None:
    """DAR's export draws BBR's Bygning under BBR's EAID; the generator resolves it again."""
    dar, bbr = delivered["DAR"], delivered["BBR"]
    pair = export_register(dar, delivered)
    assert bbr.datamodel.entities["Bygning"].eaid in pair.xmi
    folder = tmp_path / "pair"
    xsd_path, _ = write_pair(pair, folder)
    model = load_dls_xsd(xsd_path, "DAR", {})
    report = Report()
    index = eaid_index([("DAR", dar.rc, model), ("BBR", bbr.rc, bbr.datamodel)])
    xmi = parse_xmi(pair.xmi.encode("utf-8"), pair.xmi_name)
    document = generate("DAR", dar.rc, model, xmi, index, report, pair.xmi_name)
    assert report.errors == []
    generated = {
        (r["SourceEntity"], r["TargetEntity"], r["ToManyRelation"], r["Alias"])
        for r in document["RelationVersions"][0]["Relations"]
    }
    expected = {
        (r.source_entity, r.target_entity, r.to_many, r.alias)
        for r in dar.relation_versions[dar.newest_version]
    }
    assert generated == expected


def test_hostile_text_and_names_give_well_formed_documents() -> None:
    text = 'a <b> & "c" \x01\x0b end'
    entity = Entity(
        register="X",
        name="Sæt & Co",
        graphql_name="X_Saet_Co",
        fields=(
            Field("id", "id", ScalarType.STRING, nullable=False, description=text),
            Field("n", "1st value", ScalarType.INT, description="]]>"),
        ),
        key=("id",),
        description=text,
    )
    register = Register(
        name="X",
        rc="rc00099",
        datamodel=Datamodel({entity.name: entity}),
        relation_versions={"1": ()},
        default_level=0,
        entity_levels={},
        field_levels={},
        source={},
    )
    pair = export_register(register, {"X": register})
    for document in (pair.xsd, pair.xmi):
        ET.fromstring(document.encode("utf-8"))  # well-formed, or this raises
        assert "\x01" not in document
    assert pair.xsd_name == "1.0.0.X.xsd"
    assert pair.xmi_name == "1.0.0.X.xmi"


def test_eaids_are_name_based_and_written_the_ea_way() -> None:
    first = eaid_of("BBR", "Bygning", "id_lokalId")
    assert first == eaid_of("BBR", "Bygning", "id_lokalId")
    assert first != eaid_of("BBR", "Bygning", "status")
    assert re.fullmatch(r"EAID_[0-9A-F]{8}(_[0-9A-F]{4}){3}_[0-9A-F]{12}", first)


def test_the_command_writes_the_pair(
    tmp_path: Path, delivered: dict[str, Register], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dls-export", "BBR", "--registers", str(DELIVERY), "--out", str(tmp_path)]) == 0
    out, _ = capsys.readouterr()
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["1.0.0.BBR.xmi", "1.0.0.BBR.xsd"]
    assert all(name in out for name in written)
    again = load_dls_xsd(tmp_path / "1.0.0.BBR.xsd", "BBR", {})
    model = delivered["BBR"].datamodel
    assert again == dataclasses.replace(model)
    assert main(["dls-export", "NOPE", "--registers", str(DELIVERY)]) == 1
