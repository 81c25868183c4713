"""``dls-export``: a register's datamodel as a DLS pair (XSD in the DLS style + EA XMI 2.1).

Every shipped register (FT, VALG, CZ, CZPREZ, DE) is exported and read back; expected values come
from the native datamodels (and the fixture delivery's files), never from a copy of what the
exporter wrote: the XSD is checked with plain ``xml.etree`` and loaded with :func:`load_dls_xsd`,
the XMI read with :func:`read_xmi` and given to the relation generator.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.dls.descriptors import load_registers
from gateway.dls.dls_export import (
    EA_TYPES,
    XSD_TYPES,
    eaid_of,
    export_register,
    write_pair,
)
from gateway.dls.dls_xsd import load_dls_xsd
from gateway.dls.relation_generator import check_consistency, eaid_index, generate
from gateway.dls.report import Report
from gateway.dls.xmi import load_xmi, parse_xmi, read_xmi, scalar_of
from gateway.history.temporal_fields import without_temporal_fields
from gateway.model.datamodel import (
    Code,
    CodeList,
    Datamodel,
    Entity,
    Field,
    NavigationProperty,
    Register,
    Relation,
    ScalarType,
)
from gateway.model.naming import type_name
from tests.support import REGISTERS

SHIPPED = ("FT", "VALG", "CZ", "CZPREZ", "DE")
DELIVERY = Path(__file__).parent / "delivery"
XS = "{http://www.w3.org/2001/XMLSchema}"


@pytest.fixture(scope="module")
def delivered() -> dict[str, Register]:
    report = load_registers(DELIVERY, previous_relations={})
    assert report.ok, report.render()
    return {r.name: r for r in report.registers}


@pytest.fixture(scope="module")
def registers() -> dict[str, Register]:
    report = load_registers(REGISTERS, previous_relations={})
    loaded = {r.name: r for r in report.registers if not r.variant}
    assert set(SHIPPED) <= set(loaded), report.render()
    # As delivered: the temporal fields the gateway adds (registreringFra …) are not exported.
    return {
        n: dataclasses.replace(r, datamodel=without_temporal_fields(r.datamodel))
        for n, r in loaded.items()
    }


@pytest.fixture(scope="module")
def exported(registers: dict[str, Register], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dls-export")
    for register in registers.values():
        write_pair(export_register(register, registers), folder / register.name)
    return folder


def _files(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / name / f"1.0.0.{name}.xsd", folder / name / f"1.0.0.{name}.xmi"


def _associations(register: Register) -> list[tuple[str, str, str, bool]]:
    """(source entity, alias, target entity, to-many) the export must draw, from the model."""
    relations = register.relation_versions.get(register.newest_version, ())
    out = [(r.source_entity, r.alias, r.target_entity, r.to_many) for r in relations]
    joined = {(r.source_entity, r.target_register, r.target_entity) for r in relations}
    for nav in register.datamodel.navigation:
        # A relation either way joins the two entities: the navigation is not drawn again.
        there = (nav.source_entity, register.name, nav.target_entity)
        back = (nav.target_entity, register.name, nav.source_entity)
        if there not in joined and back not in joined:
            out.append((nav.source_entity, nav.name, nav.target_entity, nav.to_many))
    return sorted(out)


# --------------------------------------------------------------------------- shipped registers


@pytest.mark.parametrize("name", SHIPPED)
def test_export_is_deterministic_and_named_by_version(
    name: str, registers: dict[str, Register], exported: Path
) -> None:
    register = registers[name]
    pair = export_register(register, registers)
    assert pair == export_register(register, dict(reversed(list(registers.items()))))
    version = register.datamodel.version or "1.0.0"
    assert (pair.xsd_name, pair.xmi_name) == (f"{version}.{name}.xsd", f"{version}.{name}.xmi")
    xsd, xmi = _files(exported, name)
    assert xsd.read_bytes() == pair.xsd.encode("utf-8")
    assert xmi.read_bytes() == pair.xmi.encode("utf-8")
    # A fresh load of the registers exports the same bytes.
    again = {r.name: r for r in load_registers(REGISTERS, previous_relations={}).registers}
    assert export_register(again[name], again) == pair


@pytest.mark.parametrize("name", SHIPPED)
def test_xsd_declares_every_entity_and_field_in_the_dls_style(
    name: str, registers: dict[str, Register]
) -> None:
    register = registers[name]
    root = ET.fromstring(export_register(register, registers).xsd.encode("utf-8"))
    assert root.tag == f"{XS}schema"
    assert root.get("version") == (register.datamodel.version or "1.0.0")
    prefix = name.lower()
    elements = {e.get("name"): e for e in root.findall(f"{XS}element")}
    types = {t.get("name"): t for t in root.findall(f"{XS}complexType")}
    eaids: list[str] = []
    for entity in register.datamodel.entities.values():
        element = elements[entity.name]
        assert element.get("type") == f"{prefix}:{entity.name}Type"
        key = element.find(f"{XS}key")
        assert key is not None
        wanted = [f"{prefix}:{entity.field(k).source}" for k in entity.key]
        assert [f.get("xpath") for f in key.findall(f"{XS}field")] == wanted
        complex_type = types[f"{entity.name}Type"]
        info = complex_type.find(f"{XS}annotation/{XS}appinfo")
        assert info is not None
        assert (info.text or "").startswith("EAID_")
        eaids.append(info.text or "")
        children = complex_type.findall(f"{XS}sequence/{XS}element")
        assert [c.get("name") for c in children] == [f.source for f in entity.fields]
        for item, child in zip(entity.fields, children, strict=True):
            assert child.get("type") == XSD_TYPES[item.type], (entity.name, item.source)
            assert child.get("minOccurs") == ("0" if item.nullable else None)
            assert child.get("maxOccurs") == ("unbounded" if item.many else None)
            info = child.find(f"{XS}annotation/{XS}appinfo")
            assert info is not None
            eaids.append(info.text or "")
    assert len(set(eaids)) == len(eaids)
    first = next(iter(register.datamodel.entities.values()))
    assert eaids[0] == (first.eaid or eaid_of(name, first.name))


@pytest.mark.parametrize("name", SHIPPED)
def test_exported_xsd_loads_back_as_the_native_model(
    name: str, registers: dict[str, Register], exported: Path
) -> None:
    native = registers[name].datamodel
    loaded = load_dls_xsd(_files(exported, name)[0], name, {})
    assert loaded.version == (native.version or "1.0.0")
    assert list(loaded.entities) == list(native.entities)
    for entity in native.entities.values():
        back = loaded.entities[entity.name]
        assert back.graphql_name == entity.graphql_name
        assert back.key == entity.key
        assert [(f.name, f.source, f.type, f.nullable, f.many) for f in back.fields] == [
            (f.name, f.source, f.type, f.nullable, f.many) for f in entity.fields
        ]
        assert back.eaid
        assert all(f.eaid.startswith("EAID_") for f in back.fields)


@pytest.mark.parametrize("name", SHIPPED)
def test_xmi_has_the_same_classes_and_attributes(
    name: str, registers: dict[str, Register], exported: Path
) -> None:
    register = registers[name]
    xsd_file, xmi_file = _files(exported, name)
    xmi = read_xmi(xmi_file)
    own = {c.name: c for c in xmi.own_classes(name)}
    assert list(own) == list(register.datamodel.entities)
    for entity in register.datamodel.entities.values():
        cls = own[entity.name]
        assert [a.name for a in cls.attributes] == [f.source for f in entity.fields]
        for item, attr in zip(entity.fields, cls.attributes, strict=True):
            assert attr.type_name == EA_TYPES[item.type]
            assert scalar_of(attr.type_name) is item.type
            assert attr.lower == (0 if item.nullable else 1)
            assert attr.multiplicity.many is item.many
    # The XSD and the XMI agree by EAID: no error, no warning.
    report = Report()
    model = load_dls_xsd(xsd_file, name, {})
    check_consistency(name, model, xmi, report, str(xsd_file), str(xmi_file))
    assert not report.errors, report.render()
    assert not report.warnings, report.render()
    # Served on its own, the logical model is the native model too (names, types, bounds).
    logical = load_xmi(xmi_file, name, {})
    assert list(logical.entities) == list(register.datamodel.entities)
    for entity in register.datamodel.entities.values():
        fields = logical.entities[entity.name].fields
        assert [(f.source, f.type, f.nullable, f.many) for f in fields] == [
            (f.source, f.type, f.nullable, f.many) for f in entity.fields
        ]


@pytest.mark.parametrize("name", SHIPPED)
def test_associations_are_the_relations(
    name: str, registers: dict[str, Register], exported: Path
) -> None:
    register = registers[name]
    xmi = read_xmi(_files(exported, name)[1])
    assert xmi.has_connectors
    drawn = []
    for association in xmi.associations.values():
        source, target = association.source, association.target
        assert source is not None
        assert target is not None
        connector = xmi.connector(association.eaid)
        assert connector is not None
        assert connector.name == association.name
        assert (connector.source_eaid, connector.target_eaid) == (
            source.type_eaid,
            target.type_eaid,
        )
        assert connector.target.many is target.multiplicity.many
        drawn.append(
            (
                xmi.name_of(source.type_eaid),
                association.name,
                xmi.name_of(target.type_eaid),
                target.multiplicity.many,
            )
        )
    assert sorted(drawn) == _associations(register)
    relations = register.relation_versions[register.newest_version]
    assert Counter(drawn) >= Counter(
        (r.source_entity, r.alias, r.target_entity, r.to_many) for r in relations
    )


def test_relations_to_another_register_point_at_its_entity_eaid(
    registers: dict[str, Register], exported: Path
) -> None:
    valg = registers["VALG"]
    foreign = {
        (r.target_register, r.target_entity)
        for r in valg.relation_versions[valg.newest_version]
        if r.target_register != "VALG"
    }
    assert foreign, "VALG relates to FT's Aktør"
    xmi = read_xmi(_files(exported, "VALG")[1])
    others = {
        register: {c.name: c.eaid for c in read_xmi(_files(exported, register)[1]).classes.values()}
        for register, _ in foreign
    }
    for register, entity in foreign:
        drawn = [c for c in xmi.classes.values() if c.in_package(register) and c.name == entity]
        assert len(drawn) == 1
        assert not drawn[0].attributes
        native = registers[register].datamodel.entities[entity]
        assert drawn[0].eaid == others[register][entity]
        assert drawn[0].eaid == (native.eaid or eaid_of(register, entity))


def test_the_relation_generator_regenerates_every_relation(
    registers: dict[str, Register], exported: Path
) -> None:
    models = {n: load_dls_xsd(_files(exported, n)[0], n, {}) for n in sorted(registers)}
    index = eaid_index((n, registers[n].rc, m) for n, m in models.items())
    for name in SHIPPED:
        register = registers[name]
        report = Report()
        xmi_file = _files(exported, name)[1]
        document = generate(
            name, register.rc, models[name], read_xmi(xmi_file), index, report, str(xmi_file)
        )
        assert not report.errors, report.render()
        assert not report.warnings, report.render()
        got = sorted(
            (r["SourceEntity"], r["Alias"], r["TargetEntity"], r["ToManyRelation"])
            for r in document["RelationVersions"][0]["Relations"]
        )
        assert got == _associations(register)


# --------------------------------------------------------------------------- the fixture delivery


def _appinfos(root: ET.Element) -> set[str]:
    return {(n.text or "").strip() for n in root.iter(f"{XS}appinfo")}


def _restrictions(root: ET.Element) -> list[tuple[str, str, str]]:
    found = []
    for restriction in root.iter(f"{XS}restriction"):
        base = restriction.get("base", "").rpartition(":")[2]
        for facet in restriction:
            if facet.tag != f"{XS}annotation":
                found.append((base, facet.tag, facet.get("value", "")))
    return sorted(found)


def test_the_fixture_delivery_is_written_back_with_its_eaids_and_facets(
    delivered: dict[str, Register],
) -> None:
    for name, rc in (("BBR", "rc00018"), ("DAR", "rc00022")):
        pair = export_register(delivered[name], delivered)
        folder = DELIVERY / "Register" / name / rc / "2. Datamodel"
        original = ET.parse(folder / pair.xsd_name).getroot()
        written = ET.fromstring(pair.xsd.encode("utf-8"))
        assert _appinfos(written) == _appinfos(original)
        assert _restrictions(written) == _restrictions(original)
    dar = parse_xmi(export_register(delivered["DAR"], delivered).xmi.encode("utf-8"))
    bygning = next(c for c in dar.classes.values() if c.name == "Bygning")
    assert bygning.eaid == "EAID_D8D07ED4_C4AF_DB42_DB63_E870FE3BD509"  # BBR's own EAID
    assert bygning.in_package("BBR")
    assert not bygning.attributes


# --------------------------------------------------------------------------- a synthetic register


def _register(
    name: str,
    entities: list[Entity],
    relations: tuple[Relation, ...] = (),
    navigation: tuple[NavigationProperty, ...] = (),
    version: str = "",
) -> Register:
    return Register(
        name=name,
        rc=f"rc{len(name):05d}",
        datamodel=Datamodel({e.name: e for e in entities}, navigation, version),
        relation_versions={"1": relations},
        default_level=0,
        entity_levels={},
        field_levels={},
        source={},
    )


def _entity(register: str, name: str, fields: list[Field], eaid: str = "", doc: str = "") -> Entity:
    key = (fields[0].name,)
    return Entity(register, name, type_name(register, name), tuple(fields), key, doc, eaid)


ANVENDELSE = CodeList(
    "Anvendelse",
    (
        Code("110", "Stuehus & <gård>", "EAID_11111111_1111_1111_1111_111111111111"),
        Code("120", 'Fritliggende "hus"'),
    ),
    "Kodeliste\x01 for anvendelse.",
    "EAID_22222222_2222_2222_2222_222222222222",
)
BYGNING = "EAID_44444444_4444_4444_4444_444444444444"


def _synthetic() -> dict[str, Register]:
    s, i = ScalarType.STRING, ScalarType.INT
    bygning = _entity(
        "BBR",
        "Bygning",
        [
            Field(
                "id_lokalId",
                "id_lokalId",
                s,
                False,
                eaid="EAID_33333333_3333_3333_3333_333333333333",
            ),
            Field("anvendelse", "anvendelse", s, codes=ANVENDELSE),
            Field("aar", "aar", i, facets=(("minInclusive", "1000"), ("maxInclusive", "2999"))),
            Field(
                "areal",
                "areal",
                ScalarType.FLOAT,
                facets=(("totalDigits", "9"), ("fractionDigits", "2")),
            ),
            Field("navn", "navn", s, facets=(("maxLength", "20"), ("pattern", "[A-Z]<&>.*"))),
            Field("husnummer", "husnummer", s, many=True),
            Field("stoerrelse", "størrelse", ScalarType.LONG),
            Field("fra", "fra", ScalarType.DATETIME, False),
            Field("dato", "dato", ScalarType.DATE),
            Field("aktiv", "aktiv", ScalarType.BOOLEAN),
        ],
        eaid=BYGNING,
        doc="En bygning & mere.",
    )
    sag = _entity("BBR", "Sag", [Field("id", "id", s, False), Field("bygning", "bygning", s)])
    bbr = _register(
        "BBR",
        [bygning, sag],
        (
            Relation(
                "BBR",
                "Bygning",
                "id_lokalId",
                "rc00018",
                "1",
                "BBR",
                "Sag",
                "bygning",
                True,
                "sager",
            ),
        ),
        (
            NavigationProperty("Sag", "bygningNav", "Bygning", False),  # joined by "sager"
            NavigationProperty("Sag", "selv", "Sag", False),  # joined by no relation: drawn
        ),
        version="2.1",
    )
    husnummer = _entity(
        "DAR",
        "Husnummer",
        [
            Field("id", "id", s, False),
            Field("bygning", "bygning", s, False),
            Field("vej", "vej", s),
        ],
    )
    vej = _entity("DAR", "Vej", [Field("id", "id", s, False)])
    dar = _register(
        "DAR",
        [husnummer, vej],
        (
            Relation(
                "DAR",
                "Husnummer",
                "bygning",
                "rc00018",
                "2",
                "BBR",
                "Bygning",
                "id_lokalId",
                False,
                "bygning",
            ),
            Relation("DAR", "Husnummer", "vej", "rc00022", "1", "DAR", "Vej", "id", False, "vej"),
            Relation(
                "DAR", "Husnummer", "x", "rc00099", "1", "NONE", "Ukendt", "id", True, "ukendte"
            ),
        ),
    )
    return {"BBR": bbr, "DAR": dar}


def test_synthetic_pair_keeps_eaids_facets_codes_and_escapes(tmp_path: Path) -> None:
    registers = _synthetic()
    pair = export_register(registers["BBR"], registers)
    assert (pair.xsd_name, pair.xmi_name) == ("2.1.0.BBR.xsd", "2.1.0.BBR.xmi")
    xsd_file, xmi_file = write_pair(pair, tmp_path / "nested")
    assert "\x01" not in pair.xsd
    assert "&amp; &lt;gård&gt;" in pair.xsd
    model = load_dls_xsd(xsd_file, "BBR", {})
    bygning = model.entities["Bygning"]
    assert bygning.eaid == BYGNING
    assert bygning.description == "En bygning & mere."
    for item in registers["BBR"].datamodel.entities["Bygning"].fields:
        back = bygning.by_source[item.source]
        assert (back.type, back.nullable, back.many) == (item.type, item.nullable, item.many)
        assert back.facets == item.facets, item.source
    assert bygning.by_source["id_lokalId"].eaid == "EAID_33333333_3333_3333_3333_333333333333"
    assert bygning.by_source["aar"].eaid == eaid_of("BBR", "Bygning", "aar")
    assert bygning.by_source["størrelse"].eaid == eaid_of("BBR", "Bygning", "størrelse")
    codes = bygning.by_source["anvendelse"].codes
    assert codes is not None
    assert codes.eaid == ANVENDELSE.eaid
    assert [(c.value, c.description) for c in codes.codes] == [
        (c.value, c.description) for c in ANVENDELSE.codes
    ]
    assert codes.codes[0].eaid == ANVENDELSE.codes[0].eaid
    assert codes.codes[1].eaid == eaid_of("BBR", "#codelist", "Anvendelse", "120")
    xmi = read_xmi(xmi_file)
    enum = xmi.enumeration(ANVENDELSE.eaid)
    assert enum is not None
    assert [lit.name for lit in enum.literals] == ["110", "120"]
    cls = xmi.class_(BYGNING)
    assert cls is not None
    attributes = {a.name: a for a in cls.attributes}
    assert attributes["areal"].type_name == "decimal"
    assert attributes["anvendelse"].type_ref == ANVENDELSE.eaid
    assert attributes["husnummer"].multiplicity.unbounded
    drawn = {a.name: a for a in xmi.associations.values()}
    assert set(drawn) == {"sager", "selv"}
    sager = drawn["sager"]
    assert sager.source is not None
    assert sager.target is not None
    assert (sager.source.type_eaid, sager.target.type_eaid) == (
        BYGNING,
        model.entities["Sag"].eaid,
    )
    assert sager.target.multiplicity.text == "0..*"
    assert sager.source.multiplicity.text == "0..1"  # Sag.bygning is nullable
    report = Report()
    check_consistency("BBR", model, xmi, report, str(xsd_file), str(xmi_file))
    assert not report.errors, report.render()
    assert not report.warnings, report.render()


def test_synthetic_cross_register_association(tmp_path: Path) -> None:
    registers = _synthetic()
    pair = export_register(registers["DAR"], registers)
    assert pair.xsd_name == "1.0.0.DAR.xsd"
    xmi = read_xmi(write_pair(pair, tmp_path)[1])
    drawn = {a.name: a for a in xmi.associations.values()}
    assert set(drawn) == {"bygning", "vej", "ukendte"}
    bygning, vej, ukendte = drawn["bygning"].target, drawn["vej"].target, drawn["ukendte"].target
    assert bygning is not None
    assert vej is not None
    assert ukendte is not None
    assert bygning.type_eaid == BYGNING  # BBR's own EAID of Bygning
    assert bygning.multiplicity.text == "1..1"  # Husnummer.bygning is required
    assert vej.multiplicity.text == "0..1"
    # A register not loaded: the name-based EAID its own export would give.
    assert ukendte.type_eaid == eaid_of("NONE", "Ukendt")
    target = xmi.class_(ukendte.type_eaid)
    assert target is not None
    assert target.in_package("NONE")
    assert not target.attributes
    # Without BBR among the registers, Bygning gets the name-based EAID.
    again = read_xmi(write_pair(export_register(registers["DAR"], {}), tmp_path / "b")[1])
    end = next(a for a in again.associations.values() if a.name == "bygning").target
    assert end is not None
    assert end.type_eaid == eaid_of("BBR", "Bygning")


def test_every_eaid_is_unique_even_when_the_model_repeats_one(tmp_path: Path) -> None:
    same = "EAID_55555555_5555_5555_5555_555555555555"
    entity = _entity(
        "X",
        "A",
        [
            Field("a", "a", ScalarType.STRING, False, eaid=same),
            Field("b", "b", ScalarType.STRING, eaid=same),
        ],
    )
    registers: Mapping[str, Register] = {"X": _register("X", [entity])}
    pair = export_register(registers["X"], registers)
    root = ET.fromstring(pair.xsd.encode("utf-8"))
    infos = [(n.text or "") for n in root.iter(f"{XS}appinfo")]
    assert len(infos) == len(set(infos)) == 3
    assert same in infos
    xmi = read_xmi(write_pair(pair, tmp_path)[1])
    assert [a.eaid for a in xmi.own_classes("X")[0].attributes] == [same, eaid_of("X", "A", "b")]


# --------------------------------------------------------------------------- delivery and command


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
