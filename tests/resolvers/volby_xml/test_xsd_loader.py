"""The generic XSD datamodel loader on the CZ schemas, ČSÚ's real schemas and small cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.dls.descriptors import relations_skeleton
from gateway.dls.xsd import load_xsd
from gateway.model.datamodel import ScalarType
from gateway.model.errors import DescriptorError
from gateway.model.keys import join_key, split_key
from resolvers.volby_xml.parse import parse_xml
from resolvers.volby_xml.rows import map_element
from tests.resolvers.volby_xml.conftest import DATA, REGISTERS, register
from tests.resolvers.volby_xml.raw import children, root_of

CZ_ENTITIES = {
    "TYP_ZASTUP", "OBEC", "OBVOD", "VOLEBNI_STRANA", "ZASTUPITEL", "UCAST", "OKRSEK",
    "HLASY_OKRSEK", "DAVKA", "PRUBEH", "VOLEBNI_STRANA_OBEC",
}  # fmt: skip


def test_cz_entities_are_the_xsd_elements() -> None:
    model = register("CZ").datamodel
    assert set(model.entities) == CZ_ENTITIES
    names = {e.graphql_name for e in model.entities.values()}
    assert {"CZ_TYP_ZASTUP", "CZ_OBEC", "CZ_OBVOD", "CZ_VOLEBNI_STRANA", "CZ_ZASTUPITEL"} <= names
    assert {"CZ_UCAST", "CZ_OKRSEK", "CZ_HLASY_OKRSEK"} <= names
    for entity in model.entities.values():
        assert entity.field("volby").type is ScalarType.STRING
        assert entity.key[0] == "volby"
    # Wrappers are flattened away, single info blocks merged into their entity.
    assert "VYSLEDEK" not in model.entities
    assert "ZASTUPITELSTVA_CELKEM" in model.entities["TYP_ZASTUP"].by_source
    assert "PLATNE_HLASY" in model.entities["OKRSEK"].by_source  # from UCAST_OKRSEK


@pytest.mark.parametrize(
    ("entity", "field", "kind"),
    [
        ("OBEC", "KODZASTUP", ScalarType.STRING),
        ("OBEC", "JE_SPOCTENO", ScalarType.BOOLEAN),
        ("VOLEBNI_STRANA", "VSTRANA", ScalarType.STRING),
        ("VOLEBNI_STRANA", "HLASY", ScalarType.INT),
        ("VOLEBNI_STRANA", "HLASY_PROC", ScalarType.FLOAT),
        ("OKRSEK", "CIS_OBEC", ScalarType.STRING),
        ("OKRSEK", "CIS_OKRSEK", ScalarType.STRING),
        ("OKRSEK", "PORADI_ZPRAC", ScalarType.INT),
        ("OKRSEK", "DATUM_CAS_ZPRAC", ScalarType.DATETIME),
        ("OBEC", "NUTS", ScalarType.STRING),
        ("UCAST", "UCAST_PROC", ScalarType.FLOAT),
        ("DAVKA", "DATUMVOLEB", ScalarType.DATE),
    ],
)
def test_cz_field_types(entity: str, field: str, kind: ScalarType) -> None:
    assert register("CZ").datamodel.entities[entity].by_source[field].type is kind


def test_cz_keys_and_parent_references() -> None:
    entities = register("CZ").datamodel.entities
    assert entities["OBEC"].key == ("volby", "KODZASTUP")
    assert entities["OBVOD"].key == ("volby", "KODZASTUP", "CIS_OBVODU")
    assert entities["OKRSEK"].key == ("volby", "CIS_OBEC", "CIS_OKRSEK", "KODZASTUP", "OZNAC_TYPU")
    obvod = entities["OBVOD"]
    assert not obvod.field("OBEC_ID").nullable  # an OBVOD is always inside an OBEC
    party = entities["VOLEBNI_STRANA"]
    for parent in ("TYP_ZASTUP_ID", "OBEC_ID", "OBVOD_ID"):
        assert party.field(parent).nullable  # a party sits in one of three parents


def test_cz_navigation_follows_nesting() -> None:
    navigation = {
        (n.source_entity, n.name): (n.target_entity, n.to_many, n.source_field)
        for n in register("CZ").datamodel.navigation
    }
    assert navigation[("OBEC", "OBVOD")] == ("OBVOD", True, "OBEC_ID")
    assert navigation[("OBEC", "VOLEBNI_STRANA")] == ("VOLEBNI_STRANA", True, "OBEC_ID")
    assert navigation[("OBVOD", "VOLEBNI_STRANA")] == ("VOLEBNI_STRANA", True, "OBVOD_ID")
    assert navigation[("VOLEBNI_STRANA", "ZASTUPITEL")] == ("ZASTUPITEL", True, "VOLEBNI_STRANA_ID")
    assert navigation[("OBEC", "UCAST")] == ("UCAST", False, "OBEC_ID")
    assert navigation[("ZASTUPITEL", "VOLEBNI_STRANA")] == (
        "VOLEBNI_STRANA",
        False,
        "VOLEBNI_STRANA_ID",
    )
    assert navigation[("OKRSEK", "HLASY_OKRSEK")] == ("HLASY_OKRSEK", True, "OKRSEK_ID")


def _relation(source: str, target: str, many: bool) -> dict[str, object]:
    return {
        "SourceEntity": source, "SourceField": "OBEC_ID", "TargetRc": "rc00003",
        "TargetRcVersion": "1", "TargetEntity": target, "TargetField": "OBEC_ID",
        "ToManyRelation": many, "Alias": target,
    }  # fmt: skip


# Relations no nesting gives: the council totals the gateway derives, joined to their council.
DERIVED = {
    "CZ": [_relation("OBEC", "VOLEBNI_STRANA_OBEC", True),
           _relation("VOLEBNI_STRANA_OBEC", "OBEC", False)],
    "CZPREZ": [],
}  # fmt: skip


@pytest.mark.parametrize(("name", "rc"), [("CZ", "rc00003"), ("CZPREZ", "rc00004")])
def test_relations_json_matches_the_xsd(name: str, rc: str) -> None:
    shipped = json.loads((REGISTERS / name / rc / "2. Datamodel" / "Relations.json").read_text())
    expected = relations_skeleton(register(name).datamodel, rc)
    expected["RelationVersions"][0]["Relations"] += DERIVED[name]
    assert shipped == expected


def test_council_totals_model() -> None:
    totals = register("CZ").datamodel.entities["VOLEBNI_STRANA_OBEC"]
    assert totals.graphql_name == "CZ_VOLEBNI_STRANA_OBEC"
    assert totals.key == ("volby", "KODZASTUP", "VSTRANA")
    assert totals.field("HLASY_PROC").type is ScalarType.FLOAT
    assert totals.field("ZASTUPITELE_POCET").type is ScalarType.INT
    assert not totals.field("OBEC_ID").nullable
    loaded = register("CZ")
    relations = {(r.source_entity, r.alias): r for r in loaded.relation_versions["1"]}
    assert relations[("OBEC", "VOLEBNI_STRANA_OBEC")].to_many
    assert not relations[("VOLEBNI_STRANA_OBEC", "OBEC")].to_many


def test_czprez_model() -> None:
    entities = register("CZPREZ").datamodel.entities
    assert set(entities) == {"DAVKA", "OKRSEK", "HLASY_OKRSEK", "PRUBEH"}
    assert entities["OKRSEK"].graphql_name == "CZPREZ_OKRSEK"
    assert entities["OKRSEK"].key == ("KOLO", "CIS_OBEC", "CIS_OKRSEK")
    assert entities["DAVKA"].field("KOLO").type is ScalarType.INT
    assert entities["HLASY_OKRSEK"].key == ("KOLO", "CIS_OBEC", "CIS_OKRSEK", "PORADOVE_CISLO")


# --- ČSÚ's own parliamentary schemas --------------------------------------------------------


def test_real_district_schema_with_default_rules() -> None:
    model = load_xsd(DATA / "ps_xsd" / "ps_vysledky_okres.xsd", "PS", {})
    assert set(model.entities) == {"OBEC", "HLASY_STRANA"}  # the repeating elements
    obec = model.entities["OBEC"]
    # UCAST occurs once per OBEC: flattened into it. Plain xs:decimal stays a float.
    assert obec.by_source["PLATNE_HLASY_PROC"].type is ScalarType.FLOAT
    assert obec.by_source["ZAPSANI_VOLICI"].type is ScalarType.FLOAT
    assert obec.by_source["TYP_OBEC"].type is ScalarType.STRING
    # The district's attributes reach the district-level party rows (pushed down).
    parties = model.entities["HLASY_STRANA"]
    assert {"NUTS_OKRES", "NAZ_OKRES", "DATUM_CAS_GENEROVANI"} <= set(parties.by_source)
    # Without keys, nothing can be joined.
    assert model.navigation == ()


def test_real_district_schema_with_options_maps_the_real_document() -> None:
    options = {
        "decimalIntegers": True,
        "types": {"CIS_OBEC": "String", "KSTRANA": "String"},
        "keys": {"OBEC": ["CIS_OBEC"], "HLASY_STRANA": ["KSTRANA"]},
        "ignore": ["CHYBA"],
    }
    model = load_xsd(DATA / "ps_xsd" / "ps_vysledky_okres.xsd", "PS", options)
    obec = model.entities["OBEC"]
    assert obec.by_source["ZAPSANI_VOLICI"].type is ScalarType.INT
    assert obec.by_source["CIS_OBEC"].type is ScalarType.STRING
    assert obec.key == ("CIS_OBEC",)
    path = DATA / "ps2021" / "demo-data_okres0722.xml"
    rows = map_element(parse_xml(path.read_bytes()), model, {})
    raw = root_of(path)
    expected = {
        (o.get("CIS_OBEC"), h.get("KSTRANA")): int(h.get("HLASY", ""))
        for o in children(raw, "OBEC")
        for h in children(o, "HLASY_STRANA")
    }
    got = {(r["CIS_OBEC"], r["KSTRANA"]): r["HLASY"] for r in rows["HLASY_STRANA"] if r["CIS_OBEC"]}
    assert got == expected
    assert len(rows["OBEC"]) == len(children(raw, "OBEC"))
    district = [r for r in rows["HLASY_STRANA"] if r["CIS_OBEC"] is None]
    assert {r["NUTS_OKRES"] for r in district} == {"CZ0722"}


@pytest.mark.parametrize("spelling", ["decimalIntegers", "decimal_integers"])  # the old one too
def test_real_national_schema(spelling: str) -> None:
    model = load_xsd(DATA / "ps_xsd" / "vysledky_2017.xsd", "PS", {spelling: True})
    assert set(model.entities) == {"KRAJ", "STRANA", "POSLANEC"}
    strana = model.entities["STRANA"]
    assert strana.by_source["MANDATY"].nullable  # optional attribute of HODNOTY_STRANA
    assert not strana.by_source["HLASY"].nullable
    assert strana.by_source["PROC_HLASU"].type is ScalarType.FLOAT
    assert model.entities["POSLANEC"].by_source["PREDNOSTNI_HLASY"].type is ScalarType.LONG
    assert model.entities["KRAJ"].by_source["CIS_KRAJ"].type is ScalarType.INT


# --- small schemas for the remaining XSD features ------------------------------------------

_BASE = """<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:t" targetNamespace="urn:t">
  <xs:attributeGroup name="Stamp">
    <xs:attribute name="changed" type="xs:dateTime"/>
  </xs:attributeGroup>
  <xs:complexType name="Named">
    <xs:attribute name="name" type="xs:string" use="required"/>
  </xs:complexType>
</xs:schema>
"""

_MAIN = """<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:t" targetNamespace="urn:t">
  <xs:include schemaLocation="base.xsd"/>
  <xs:group name="People">
    <xs:sequence>
      <xs:element name="person" maxOccurs="unbounded">
        <xs:complexType>
          <xs:complexContent>
            <xs:extension base="t:Named">
              <xs:sequence><xs:element ref="t:person" minOccurs="0"/></xs:sequence>
              <xs:attribute name="id" type="xs:long" use="required"/>
              <xs:attribute name="town" type="xs:string"/>
              <xs:attributeGroup ref="t:Stamp"/>
            </xs:extension>
          </xs:complexContent>
        </xs:complexType>
      </xs:element>
    </xs:sequence>
  </xs:group>
  <xs:element name="registry">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="town" maxOccurs="unbounded">
          <xs:complexType>
            <xs:attribute name="code" type="xs:string" use="required"/>
            <xs:attribute name="size" type="xs:unsignedShort"/>
          </xs:complexType>
        </xs:element>
        <xs:group ref="t:People"/>
      </xs:sequence>
      <xs:attribute name="generated" type="xs:date"/>
    </xs:complexType>
    <xs:key name="TownKey"><xs:selector xpath="t:town"/><xs:field xpath="@code"/></xs:key>
    <xs:key name="PersonKey"><xs:selector xpath="t:person"/><xs:field xpath="@id"/></xs:key>
    <xs:keyref name="PersonTown" refer="t:TownKey">
      <xs:selector xpath="t:person"/><xs:field xpath="@town"/>
    </xs:keyref>
  </xs:element>
  <xs:element name="person" type="t:Named"/>
</xs:schema>
"""


def test_schema_features(tmp_path: Path) -> None:
    (tmp_path / "base.xsd").write_text(_BASE)
    (tmp_path / "main.xsd").write_text(_MAIN)
    model = load_xsd(tmp_path, "T", {"files": ["main.xsd"], "roots": ["registry"]})
    assert set(model.entities) == {"town", "person"}
    person = model.entities["person"]
    assert [f.source for f in person.fields][:5] == ["name", "id", "town", "changed", "generated"]
    assert person.by_source["id"].type is ScalarType.LONG
    assert person.by_source["changed"].type is ScalarType.DATETIME
    assert person.by_source["generated"].type is ScalarType.DATE  # pushed down from the root
    assert model.entities["town"].by_source["size"].type is ScalarType.INT
    assert person.key == ("id",)
    navigation = {
        (n.source_entity, n.name, n.source_field, n.target_field) for n in model.navigation
    }
    assert ("person", "town", "town", "code") in navigation
    assert ("town", "person", "code", "town") in navigation


def test_context_fields_and_composite_references(tmp_path: Path) -> None:
    (tmp_path / "base.xsd").write_text(_BASE)
    (tmp_path / "main.xsd").write_text(_MAIN)
    options = {
        "files": ["main.xsd"],
        "roots": ["registry"],
        "entities": ["town", "person"],
        "contextFields": [{"name": "source", "description": "where from"}],
    }
    model = load_xsd(tmp_path, "T", options)
    town = model.entities["town"]
    assert town.key == ("source", "code")
    assert town.field("source").description == "where from"


def test_key_joining_round_trips() -> None:
    values = ["kv2014", None, "a|b", "back\\slash", 7]
    assert split_key(join_key(values)) == ["kv2014", "", "a|b", "back\\slash", "7"]


def test_broken_schemas_are_descriptor_errors(tmp_path: Path) -> None:
    with pytest.raises(DescriptorError, match="does not exist"):
        load_xsd(tmp_path / "missing.xsd", "T", {})
    (tmp_path / "not.xsd").write_text("<root/>")
    with pytest.raises(DescriptorError, match="not an XML schema"):
        load_xsd(tmp_path / "not.xsd", "T", {})
    (tmp_path / "dtd.xsd").write_text('<!DOCTYPE x [<!ENTITY e "e">]><x/>')
    with pytest.raises(DescriptorError, match="cannot read XSD"):
        load_xsd(tmp_path / "dtd.xsd", "T", {})
    with pytest.raises(DescriptorError, match="invalid XSD datamodel options"):
        load_xsd(DATA / "ps_xsd" / "ps_vysledky_okres.xsd", "T", {"types": {"X": "Decimal"}})
