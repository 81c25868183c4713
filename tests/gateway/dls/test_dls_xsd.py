"""The DLS-style physical datamodel (element-based XSD) on the fixture delivery and hostile input.

Expected values are read from the fixture XSDs with plain ``xml.etree`` here, so that the test
checks the loader against the files, not against a copy of what it produced.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from gateway.dls import dls_xsd
from gateway.dls.dls_xsd import is_dls_style, load_dls_xsd
from gateway.dls.xsd import load_xsd
from gateway.model.datamodel import ScalarType
from gateway.model.errors import DescriptorError
from tests.support import REGISTERS

DELIVERY = Path(__file__).parent / "delivery" / "Register"
FIXTURES = {
    "BBR": DELIVERY / "BBR" / "rc00018" / "2. Datamodel" / "1.0.0.BBR.xsd",
    "DAR": DELIVERY / "DAR" / "rc00022" / "2. Datamodel" / "1.0.0.DAR.xsd",
}
XS = "{http://www.w3.org/2001/XMLSchema}"
FACETS = {"length", "minLength", "maxLength", "pattern", "minInclusive", "maxInclusive",
          "totalDigits", "fractionDigits"}  # fmt: skip


def _local(name: str) -> str:
    return name.rpartition(":")[2]


def _annotation(node: ET.Element) -> tuple[str, str]:
    doc = node.find(f"{XS}annotation/{XS}documentation")
    info = node.find(f"{XS}annotation/{XS}appinfo")
    return (
        " ".join((doc.text or "").split()) if doc is not None else "",
        (info.text or "").strip() if info is not None else "",
    )


def expected(path: Path) -> dict[str, Any]:
    """What the XSD file says, read independently: entities → fields → properties."""
    root = ET.parse(path).getroot()
    complex_types = {c.get("name"): c for c in root.findall(f"{XS}complexType")}
    simple_types = {s.get("name"): s for s in root.findall(f"{XS}simpleType")}
    entities: dict[str, Any] = {}
    for element in root.findall(f"{XS}element"):
        ct = complex_types[_local(element.get("type", ""))]
        description, eaid = _annotation(ct)
        fields = {}
        for field in ct.findall(f"{XS}sequence/{XS}element"):
            doc, field_eaid = _annotation(field)
            inline = field.find(f"{XS}simpleType/{XS}restriction")
            facets = tuple(
                (f.tag.rpartition("}")[2], f.get("value", ""))
                for f in (inline if inline is not None else [])
                if f.tag.rpartition("}")[2] in FACETS
            )
            named = simple_types.get(_local(field.get("type", "")))
            codes = None
            if named is not None:
                codes = (
                    named.get("name"),
                    _annotation(named),
                    [
                        (e.get("value"), *_annotation(e))
                        for e in named.findall(f"{XS}restriction/{XS}enumeration")
                    ],
                )
            fields[field.get("name")] = {
                "nullable": int(field.get("minOccurs", "1")) < 1,
                "many": field.get("maxOccurs", "1") == "unbounded"
                or int(field.get("maxOccurs", "1")) > 1,
                "description": doc,
                "eaid": field_eaid,
                "facets": facets,
                "codes": codes,
            }
        key = element.find(f"{XS}key/{XS}field")
        entities[element.get("name", "")] = {
            "description": description,
            "eaid": eaid,
            "fields": fields,
            "key": _local(key.get("xpath", "")) if key is not None else None,
        }
    return {"version": root.get("version"), "entities": entities}


@pytest.mark.parametrize("register", sorted(FIXTURES))
def test_the_fixture_xsds_load_as_the_files_say(register: str) -> None:
    path = FIXTURES[register]
    want = expected(path)
    model = load_dls_xsd(path, register, {})
    assert model.version == want["version"] == "1.0.0"
    assert list(model.entities) == list(want["entities"])
    for name, spec in want["entities"].items():
        entity = model.entities[name]
        assert entity.register == register
        assert entity.graphql_name == f"{register}_{name}"
        assert (entity.description, entity.eaid) == (spec["description"], spec["eaid"])
        assert entity.eaid.startswith("EAID_")
        assert [f.source for f in entity.fields] == list(spec["fields"])
        assert entity.key == (spec["key"] or "id_lokalId",)
        for field in entity.fields:
            wanted = spec["fields"][field.source]
            assert field.name == field.source
            assert field.nullable is wanted["nullable"], field.name
            assert field.many is wanted["many"], field.name
            assert field.description == wanted["description"]
            assert field.eaid == wanted["eaid"]
            assert field.eaid.startswith("EAID_")
            assert field.facets == wanted["facets"], field.name
            if wanted["codes"] is None:
                assert field.codes is None
                continue
            codelist_name, (doc, eaid), codes = wanted["codes"]
            assert field.codes is not None
            assert (field.codes.name, field.codes.description, field.codes.eaid) == (
                codelist_name,
                doc,
                eaid,
            )
            assert [(c.value, c.description, c.eaid) for c in field.codes.codes] == codes
            assert model.codelists[codelist_name] is field.codes


def test_types_many_facets_and_codes_of_bbr() -> None:
    model = load_dls_xsd(FIXTURES["BBR"], "BBR", {})
    bygning = model.entities["Bygning"]
    kinds = {f.name: f.type for f in bygning.fields}
    assert kinds["id_lokalId"] is ScalarType.STRING
    assert kinds["byg026Opfoerelsesaar"] is ScalarType.INT
    assert kinds["byg041BebyggetAreal"] is ScalarType.FLOAT
    assert kinds["registreringFra"] is ScalarType.DATETIME
    assert model.entities["BBRSag"].field("sag002Byggesagsdato").type is ScalarType.DATE
    assert [f.name for f in bygning.fields if f.many] == ["husnummer"]
    year = bygning.field("byg026Opfoerelsesaar")
    assert (year.facet("minInclusive"), year.facet("maxInclusive")) == ("1000", "2999")
    assert set(model.codelists) == {"BygningensAnvendelseType", "LivscyklusType"}
    assert bygning.field("status").codes is model.codelists["LivscyklusType"]
    assert not bygning.field("status").nullable
    assert model.major == "1"


def test_dar_key_comes_from_xs_key_and_facets_keep_their_order() -> None:
    model = load_dls_xsd(FIXTURES["DAR"], "DAR", {})
    assert model.entities["Husnummer"].key == ("id_lokalId",)
    tekst = model.entities["Husnummer"].field("husnummertekst")
    assert tekst.facets == (("maxLength", "4"), ("pattern", "[0-9]{1,3}[A-Z]?"))
    assert model.codelists == {}


def test_style_detection_and_the_xsd_loader_dispatch(tmp_path: Path) -> None:
    for path in FIXTURES.values():
        assert is_dls_style(path)
        assert is_dls_style(path.parent)  # the folder: its *.xsd files
    # The attribute-style schemas of the shipped registers stay with the attribute loader.
    de_source = json.loads(next(REGISTERS.glob("DE/rc*/Source.json")).read_text("utf-8"))
    de = next(REGISTERS.glob("DE/rc*/2. Datamodel")) / de_source["datamodel"]["path"]
    cz = next(p for p in REGISTERS.glob("CZ/rc*/2. Datamodel/*") if p.is_dir())
    for shipped in (cz, de):
        assert not is_dls_style(shipped)
    assert not is_dls_style(tmp_path / "missing.xsd")
    (tmp_path / "broken.xsd").write_text("<xs:schema")
    assert not is_dls_style(tmp_path / "broken.xsd")

    dls = load_dls_xsd(FIXTURES["BBR"], "BBR", {})
    assert load_xsd(FIXTURES["BBR"], "BBR", {}) == dls
    assert load_xsd(FIXTURES["BBR"], "BBR", {"style": "dls"}) == dls
    # Forced to the attribute style, the file means something else (no attribute, no field).
    forced = load_xsd(FIXTURES["BBR"], "BBR", {"style": "attributes"})
    assert forced != dls
    assert all(not e.fields for e in forced.entities.values())
    with pytest.raises(DescriptorError, match="style 'elements' is none of"):
        load_xsd(FIXTURES["BBR"], "BBR", {"style": "elements"})
    assert load_xsd(de, "DE", {}) == load_xsd(de, "DE", {"style": "attributes"})


# --------------------------------------------------------------------------- small schemas

HEAD = (
    '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="urn:t" targetNamespace="urn:t">'
)


def _write(tmp_path: Path, body: str, name: str = "2.1.0.T.xsd", head: str = HEAD) -> Path:
    path = tmp_path / name
    path.write_text(f'<?xml version="1.0"?>\n{head}{body}</xs:schema>', encoding="utf-8")
    return path


def test_derivation_choice_refs_nillable_and_inline_codes(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        <xs:element name="note" type="xs:string"/>
        <xs:complexType name="BaseType" abstract="true"><xs:sequence>
          <xs:element name="id" type="xs:string"/></xs:sequence></xs:complexType>
        <xs:complexType name="ThingType"><xs:complexContent><xs:extension base="BaseType">
          <xs:sequence>
            <xs:element ref="note" minOccurs="0"/>
            <xs:element name="size" type="Code3Type" nillable="true"/>
            <xs:choice><xs:element name="a" type="xs:long"/><xs:element name="b" type="xs:boolean"/>
            </xs:choice>
            <xs:element name="kind"><xs:simpleType><xs:restriction base="xs:string">
              <xs:enumeration value="x"/><xs:enumeration value="y"/></xs:restriction>
            </xs:simpleType></xs:element>
            <xs:sequence maxOccurs="3"><xs:element name="tag" type="xs:token"/></xs:sequence>
          </xs:sequence></xs:extension></xs:complexContent></xs:complexType>
        <xs:simpleType name="Code3Type"><xs:restriction base="DigitsType">
          <xs:maxLength value="3"/><xs:pattern value="[0-9]+"/></xs:restriction></xs:simpleType>
        <xs:simpleType name="DigitsType"><xs:restriction base="xs:string">
          <xs:minLength value="1"/><xs:maxLength value="9"/><xs:pattern value="\\d*"/>
        </xs:restriction></xs:simpleType>
        """,
    )
    assert is_dls_style(path)
    model = load_dls_xsd(path, "T", {})
    assert model.version == "2.1.0"  # no schema/@version: from the file name
    assert list(model.entities) == ["Thing"]  # the abstract base is no entity
    thing = model.entities["Thing"]
    assert [f.name for f in thing.fields] == ["id", "note", "size", "a", "b", "kind", "tag"]
    assert thing.key == ("id",)
    nullable = {f.name for f in thing.fields if f.nullable}
    assert nullable == {"note", "size", "a", "b"}
    assert thing.field("a").type is ScalarType.LONG
    assert thing.field("b").type is ScalarType.BOOLEAN
    assert thing.field("tag").many
    assert not thing.field("tag").nullable
    size = thing.field("size")
    assert size.facets == (
        ("maxLength", "3"),
        ("pattern", "[0-9]+"),
        ("minLength", "1"),
        ("pattern", "\\d*"),
    )
    assert thing.field("kind").codes is model.codelists["Thing.kind"]
    assert [c.value for c in model.codelists["Thing.kind"].codes] == ["x", "y"]


HOSTILE = {
    "a DTD with an entity": (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]>'
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">&e;</xs:schema>',
        "cannot read XSD",
    ),
    "billion laughs": (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">&b;</xs:schema>',
        "cannot read XSD",
    ),
    "an external entity": (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">&e;</xs:schema>',
        "cannot read XSD",
    ),
    "malformed XML": (f"{HEAD}<xs:element name='x'>", "cannot read XSD"),
    "no XML schema": ("<schema/>", "is not an XML schema"),
    "no complex type": (
        f'{HEAD}<xs:element name="x" type="xs:string"/></xs:schema>',
        "declares no entity",
    ),
    "an unknown type": (
        f'{HEAD}<xs:complexType name="XType"><xs:sequence>'
        '<xs:element name="a" type="Nowhere"/></xs:sequence></xs:complexType></xs:schema>',
        "X.a: unknown type 'Nowhere'",
    ),
    "a bad maxOccurs": (
        f'{HEAD}<xs:complexType name="XType"><xs:sequence>'
        '<xs:element name="a" type="xs:string" maxOccurs="many"/></xs:sequence>'
        "</xs:complexType></xs:schema>",
        "maxOccurs='many'",
    ),
    "a key naming no field": (
        f'{HEAD}<xs:element name="X" type="XType"><xs:key name="k"><xs:selector xpath="."/>'
        '<xs:field xpath="nope"/></xs:key></xs:element><xs:complexType name="XType">'
        '<xs:sequence><xs:element name="a" type="xs:string"/></xs:sequence></xs:complexType>'
        "</xs:schema>",
        "names 'nope', which is no field of X",
    ),
    "a circular simple type": (
        f'{HEAD}<xs:complexType name="XType"><xs:sequence><xs:element name="a" type="L"/>'
        '</xs:sequence></xs:complexType><xs:simpleType name="L"><xs:restriction base="L"/>'
        "</xs:simpleType></xs:schema>",
        "derives deeper than",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_and_broken_input_is_a_descriptor_error(tmp_path: Path, case: str) -> None:
    text, message = HOSTILE[case]
    path = tmp_path / "1.0.0.T.xsd"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DescriptorError, match=message):
        load_dls_xsd(path, "T", {})
    with pytest.raises(DescriptorError):
        load_xsd(path, "T", {"style": "dls"})


def test_missing_oversized_and_bad_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DescriptorError, match="does not exist"):
        load_dls_xsd(tmp_path / "missing.xsd", "T", {})
    with pytest.raises(DescriptorError, match="no XSD file"):
        load_dls_xsd(tmp_path, "T", {})
    with pytest.raises(DescriptorError, match="files must be a list"):
        load_dls_xsd(FIXTURES["BBR"], "BBR", {"files": "*.xsd"})
    monkeypatch.setattr(dls_xsd, "MAX_BYTES", 100)
    with pytest.raises(DescriptorError, match="more than the 100 bytes read"):
        load_dls_xsd(FIXTURES["BBR"], "BBR", {})


def test_an_include_outside_the_folder_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.xsd"
    _write(tmp_path, '<xs:simpleType name="S"><xs:restriction base="xs:int"/></xs:simpleType>',
           name="outside.xsd")  # fmt: skip
    inner = tmp_path / "inner"
    inner.mkdir()
    body = (
        f'<xs:include schemaLocation="../{outside.name}"/><xs:complexType name="XType">'
        '<xs:sequence><xs:element name="a" type="S"/></xs:sequence></xs:complexType>'
    )
    with pytest.raises(DescriptorError, match="unknown type 'S'"):
        load_dls_xsd(_write(inner, body), "T", {})
    # Beside it, it is read.
    _write(inner, '<xs:simpleType name="S"><xs:restriction base="xs:int"/></xs:simpleType>',
           name="beside.xsd")  # fmt: skip
    body = body.replace(f"../{outside.name}", "beside.xsd")
    model = load_dls_xsd(_write(inner, body), "T", {})
    assert model.entities["X"].field("a").type is ScalarType.INT
