"""The XMI reader: the fixture deliveries' logical models, EA's quirks, and hostile input.

Expected values are read from the fixture XMIs with xml.etree, independently of the reader.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gateway.dls import xmi as xmi_module
from gateway.dls.xmi import Multiplicity, XmiModel, load_xmi, parse_xmi, read_xmi
from gateway.model.datamodel import ScalarType
from gateway.model.errors import DescriptorError

HERE = Path(__file__).parent
REGISTER = HERE / "delivery" / "Register"
CHANNELS = {"DAR": "rc00022", "BBR": "rc00018"}
XMI = "{http://schema.omg.org/spec/XMI/2.1}"


def xmi_file(register: str) -> Path:
    return next((REGISTER / register / CHANNELS[register] / "2. Datamodel").glob("*.xmi"))


def _id(node: ET.Element) -> str:
    return node.get(f"{XMI}id", "")


def _kind(node: ET.Element) -> str:
    return node.get(f"{XMI}type", "")


def _elements(root: ET.Element, kind: str) -> list[ET.Element]:
    return [n for n in root.iter("packagedElement") if _kind(n) == kind]


def _upper(node: ET.Element) -> str | None:
    upper = node.find("upperValue")
    return None if upper is None else upper.get("value")


def _lower(node: ET.Element) -> str | None:
    lower = node.find("lowerValue")
    return None if lower is None else lower.get("value")


def _type(node: ET.Element) -> str:
    kind = node.find("type")
    return "" if kind is None else kind.get(f"{XMI}idref", "")


def _expect_bounds(
    model_lower: int | None,
    upper: int | None,
    unbounded: bool,
    lower_text: str | None,
    upper_text: str | None,
) -> None:
    assert model_lower == (None if lower_text is None else int(lower_text))
    if upper_text in ("-1", "*"):
        assert unbounded
        assert upper is None
    else:
        assert not unbounded
        assert upper == (None if upper_text is None else int(upper_text))


# --------------------------------------------------------------------------- the fixtures


@pytest.mark.parametrize("register", sorted(CHANNELS))
def test_classes_and_attributes(register: str) -> None:
    path = xmi_file(register)
    root = ET.parse(path).getroot()
    model = read_xmi(path)
    assert model.path == str(path)
    classes = _elements(root, "uml:Class")
    assert set(model.classes) == {_id(c) for c in classes}
    enumerations = {_id(e): e.get("name", "") for e in _elements(root, "uml:Enumeration")}
    for node in classes:
        cls = model.classes[_id(node)]
        assert cls.name == node.get("name")
        owned = [a for a in node.findall("ownedAttribute") if not a.get("association")]
        assert [a.eaid for a in cls.attributes] == [_id(a) for a in owned]
        for prop, attr in zip(owned, cls.attributes, strict=True):
            assert attr.name == prop.get("name")
            assert attr.type_ref == _type(prop)
            ref = _type(prop)
            expected = enumerations.get(ref) or ref.partition("_")[2]
            assert attr.type_name == expected
            _expect_bounds(
                attr.lower,
                attr.upper,
                attr.multiplicity.unbounded,
                _lower(prop),
                _upper(prop),
            )
            assert attr.multiplicity.usable
    # The package path and the documentation of EA's extension.
    for element in root.iter("element"):
        eaid = element.get(f"{XMI}idref", "")
        props = element.find("properties")
        doc = "" if props is None else props.get("documentation", "")
        if eaid in model.classes:
            assert model.classes[eaid].documentation == doc
    own = [c for c in model.classes.values() if c.attributes]
    assert own
    assert all(c.in_package(register) for c in own)


def test_attribute_documentation_and_many_from_the_extension() -> None:
    path = xmi_file("BBR")
    root = ET.parse(path).getroot()
    model = read_xmi(path)
    checked = 0
    for attribute in root.iter("attribute"):
        eaid = attribute.get(f"{XMI}idref", "")
        found = model.attribute(eaid)
        assert found is not None
        doc = attribute.find("documentation")
        assert doc is not None
        assert found[1].documentation == doc.get("value")
        checked += 1
    assert checked
    husnummer = model.attribute("EAID_07429334_AF2E_B0CA_E99A_34D7CBF1FF38")
    assert husnummer is not None
    assert husnummer[1].multiplicity.many


def test_enumerations_with_literals() -> None:
    path = xmi_file("BBR")
    root = ET.parse(path).getroot()
    model = read_xmi(path)
    nodes = _elements(root, "uml:Enumeration")
    assert nodes
    assert set(model.enumerations) == {_id(n) for n in nodes}
    for node in nodes:
        enum = model.enumerations[_id(node)]
        assert enum.name == node.get("name")
        assert enum.package == "BBR"
        assert enum.in_package("BBR")
        assert [(lit.eaid, lit.name) for lit in enum.literals] == [
            (_id(lit), lit.get("name")) for lit in node.findall("ownedLiteral")
        ]
        first = node.findall("ownedLiteral")[0]
        assert enum.literal(_id(first)) is enum.literals[0]
        assert enum.literal("EAID_nothing") is None


@pytest.mark.parametrize("register", sorted(CHANNELS))
def test_associations_with_both_ends(register: str) -> None:
    path = xmi_file(register)
    root = ET.parse(path).getroot()
    model = read_xmi(path)
    nodes = _elements(root, "uml:Association")
    assert nodes
    assert set(model.associations) == {_id(n) for n in nodes}
    unbounded_seen = False
    for node in nodes:
        association = model.associations[_id(node)]
        assert association.name == node.get("name")
        assert association.package == register
        ends = {_id(e): e for e in node.findall("ownedEnd")}
        assert {e.eaid for e in association.ends} == set(ends)
        source, target = association.source, association.target
        assert source is not None
        assert target is not None
        assert source.eaid.startswith("EAID_src")
        assert target.eaid.startswith("EAID_dst")
        for end in (source, target):
            raw = ends[end.eaid]
            assert end.type_eaid == _type(raw)
            _expect_bounds(
                end.lower, end.upper, end.multiplicity.unbounded, _lower(raw), _upper(raw)
            )
            unbounded_seen |= _upper(raw) == "-1"
            if _upper(raw) == "-1":
                assert end.multiplicity.many
                assert end.multiplicity.text.endswith("*")
    assert unbounded_seen, "the fixture writes EA's * as upperValue -1"


@pytest.mark.parametrize("register", sorted(CHANNELS))
def test_connectors(register: str) -> None:
    path = xmi_file(register)
    root = ET.parse(path).getroot()
    model = read_xmi(path)
    nodes = list(root.iter("connector"))
    assert nodes
    assert model.has_connectors
    assert set(model.connectors) == {n.get(f"{XMI}idref") for n in nodes}
    for node in nodes:
        connector = model.connector(node.get(f"{XMI}idref", ""))
        assert connector is not None
        for side in ("source", "target"):
            end = node.find(side)
            assert end is not None
            assert getattr(connector, f"{side}_eaid") == end.get(f"{XMI}idref")
            kind = end.find("type")
            assert kind is not None
            assert getattr(connector, f"{side}_multiplicity") == kind.get("multiplicity")
            named = end.find("model")
            assert named is not None
            assert getattr(connector, f"{side}_name") == named.get("name")
        labels = node.find("labels")
        properties = node.find("properties")
        assert labels is not None
        assert properties is not None
        assert connector.name == labels.get("mt")
        assert connector.ea_type == properties.get("ea_type")
        assert connector.direction == properties.get("direction")
        # EA gives the connector the association's EAID, and the same classes.
        association = model.association(connector.eaid)
        assert association is not None
        assert association.source
        assert association.target
        assert association.source.type_eaid == connector.source_eaid
        assert association.target.type_eaid == connector.target_eaid
        assert connector.target.usable


def test_names_and_lookups() -> None:
    model = read_xmi(xmi_file("DAR"))
    for cls in model.classes.values():
        assert model.name_of(cls.eaid) == cls.name
        assert model.class_(cls.eaid) is cls
    for package in model.packages.values():
        assert model.name_of(package.eaid) == package.name
    assert model.name_of("EAID_unknown") == ""
    assert model.attribute("EAID_unknown") is None
    assert {c.name for c in model.own_classes("DAR")} == {
        c.name for c in model.classes.values() if c.in_package("DAR")
    }
    assert {c.name for c in model.own_classes("BBR")} == {"Bygning"}


# --------------------------------------------------------------------------- multiplicities


@pytest.mark.parametrize(
    ("text", "lower", "upper", "unbounded"),
    [
        ("1", 1, 1, False),
        ("0..1", 0, 1, False),
        ("0..*", 0, None, True),
        ("1..*", 1, None, True),
        ("*", 0, None, True),
        ("-1", 0, None, True),
        ("1..5", 1, 5, False),
        (" 0..* ", 0, None, True),
    ],
)
def test_multiplicity_of_text(text: str, lower: int, upper: int | None, unbounded: bool) -> None:
    found = Multiplicity.of_text(text)
    assert (found.lower, found.upper, found.unbounded) == (lower, upper, unbounded)
    assert found.usable
    assert found.many is (unbounded or (upper or 0) > 1)


@pytest.mark.parametrize("text", ["mange", "0..", "x..1", "2..1", "0", "1..0"])
def test_multiplicity_of_text_unusable(text: str) -> None:
    found = Multiplicity.of_text(text)
    assert found.stated
    assert not found.usable
    assert found.problem


def test_multiplicity_not_written() -> None:
    assert not Multiplicity.of_text("").stated
    assert not Multiplicity.of_bounds(None, None).stated
    low_only = Multiplicity.of_bounds("0", None)
    assert not low_only.stated
    assert low_only.lower == 0


def test_multiplicity_of_bounds() -> None:
    star = Multiplicity.of_bounds("0", "-1")
    assert star.unbounded
    assert star.text == "0..*"
    assert star.many
    assert Multiplicity.of_bounds("0", "*").unbounded
    assert Multiplicity.of_bounds("", "1").lower == 0  # lowerValue without value
    one = Multiplicity.of_bounds(None, "1")
    assert one.usable
    assert one.upper == 1
    assert not one.many
    assert not Multiplicity.of_bounds("1", "0").usable
    assert not Multiplicity.of_bounds("1", "").usable


# --------------------------------------------------------------------------- EA's variants


_DOCUMENT = """<?xml version="1.0" encoding="UTF-8"?>
<xmi:XMI xmi:version="2.5" xmlns:uml="http://www.omg.org/spec/UML/20131001"
         xmlns:xmi="http://www.omg.org/spec/XMI/20131001">
  <uml:Model xmi:type="uml:Model" name="EA_Model">
    <packagedElement xmi:type="uml:Package" xmi:id="EAPK_1" name="REG">
      <packagedElement xmi:type="uml:Package" xmi:id="EAPK_2" name="Sub">
        <packagedElement xmi:type="uml:Class" xmi:id="EAID_A" name="A">
          <ownedAttribute xmi:type="uml:Property" xmi:id="EAID_A1" name="id">
            <type xmi:idref="EAnone_int"/>
          </ownedAttribute>
          <ownedAttribute xmi:type="uml:Property" xmi:id="EAID_AB" name="b" association="EAID_R">
            <type xmi:idref="EAID_B"/>
            <lowerValue xmi:type="uml:LiteralInteger" xmi:id="x1" value="0"/>
            <upperValue xmi:type="uml:LiteralUnlimitedNatural" xmi:id="x2" value="*"/>
          </ownedAttribute>
        </packagedElement>
        <packagedElement xmi:type="uml:Class" xmi:id="EAID_B" name="B">
          <ownedAttribute xmi:type="uml:Property" xmi:id="EAID_B1" name="id">
            <type xmi:idref="EAJava_String"/>
          </ownedAttribute>
        </packagedElement>
      </packagedElement>
      <packagedElement xmi:type="uml:Association" xmi:id="EAID_R" name="aHasB">
        <memberEnd xmi:idref="EAID_AB"/>
        <memberEnd xmi:idref="EAID_RA"/>
        <ownedEnd xmi:type="uml:Property" xmi:id="EAID_RA" association="EAID_R">
          <type xmi:idref="EAID_A"/>
        </ownedEnd>
      </packagedElement>
    </packagedElement>
  </uml:Model>
  <xmi:Extension extender="Enterprise Architect">
    <connectors>
      <connector xmi:idref="EAID_R">
        <source xmi:idref="EAID_A"><type multiplicity="1"/></source>
        <target xmi:idref="EAID_B"><type multiplicity="0..*"/></target>
      </connector>
    </connectors>
  </xmi:Extension>
</xmi:XMI>
"""


def test_namespaces_by_family_class_owned_ends_and_sides_from_the_connector() -> None:
    model = parse_xmi(_DOCUMENT.encode(), "variant.xmi")
    a = model.classes["EAID_A"]
    # The association end owned by the class is no attribute of it.
    assert [x.name for x in a.attributes] == ["id"]
    assert a.attributes[0].type_name == "int"
    assert a.package == "Sub"
    assert a.packages == ("REG", "Sub")
    assert a.in_package("REG")
    association = model.associations["EAID_R"]
    assert association.source is not None
    assert association.target is not None
    assert association.source.eaid == "EAID_RA"  # typed by the connector's source class
    assert association.target.eaid == "EAID_AB"
    assert association.target.owner == "EAID_A"
    assert association.target.multiplicity.unbounded
    assert {c.name for c in model.own_classes("reg")} == {"A", "B"}


def test_bare_model_root_without_extension() -> None:
    start = _DOCUMENT.index("<uml:Model")
    end = _DOCUMENT.index("</uml:Model>") + len("</uml:Model>")
    body = _DOCUMENT[start:end].replace(
        "<uml:Model ",
        '<uml:Model xmlns:uml="http://www.omg.org/spec/UML/20131001" '
        'xmlns:xmi="http://www.omg.org/spec/XMI/20131001" ',
        1,
    )
    model = parse_xmi(body.encode())
    assert set(model.classes) == {"EAID_A", "EAID_B"}
    assert not model.has_connectors
    assert model.connectors == {}


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (
            '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e "boom">]>\n'
            '<xmi:XMI xmlns:xmi="http://schema.omg.org/spec/XMI/2.1">&e;</xmi:XMI>',
            "refused",
        ),
        (
            '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
            ' <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
            ' <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">\n'
            ' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n'
            "]>\n<lolz>&lol3;</lolz>",
            "refused",
        ),
        (
            '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>\n'
            "<x>&ext;</x>",
            "refused",
        ),
        ('<?xml version="1.0"?>\n<!DOCTYPE xmi:XMI>\n<x/>', "refused"),
        ("<xmi:XMI xmlns:xmi='http://schema.omg.org/spec/XMI/2.1'><unclosed>", "not well-formed"),
        ("", "not well-formed"),
        ("not xml at all", "not well-formed"),
        ("<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'/>", "no XMI document"),
        ("<XMI/>", "no XMI document"),
        ("<xmi:XMI xmlns:xmi='http://schema.omg.org/spec/XMI/2.1'/>", "holds no uml:Model"),
    ],
)
def test_hostile_or_wrong_input(tmp_path: Path, document: str, says: str) -> None:
    path = tmp_path / "1.0.0.X.xmi"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(DescriptorError) as caught:
        read_xmi(path)
    message = str(caught.value)
    assert says in message
    assert str(path) in message


def test_unreadable_and_oversized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing.xmi"
    with pytest.raises(DescriptorError, match="cannot read XMI"):
        read_xmi(missing)
    big = tmp_path / "big.xmi"
    big.write_bytes(xmi_file("DAR").read_bytes())
    monkeypatch.setattr(xmi_module, "MAX_BYTES", 100)
    with pytest.raises(DescriptorError, match="more than the 100 bytes"):
        read_xmi(big)
    with pytest.raises(DescriptorError, match="more than 100"):
        parse_xmi(big.read_bytes(), "big")


# --------------------------------------------------------------------------- as a datamodel


def test_load_xmi_serves_the_register_classes() -> None:
    path = xmi_file("BBR")
    model = load_xmi(path.parent, "BBR", {})
    xmi: XmiModel = read_xmi(path)
    assert model.version == ".".join(path.name.split(".")[:3])
    assert set(model.entities) == {c.name for c in xmi.classes.values() if c.attributes}
    bygning = model.entities["Bygning"]
    assert bygning.key == ("id_lokalId",)
    types = {f.source: f.type for f in bygning.fields}
    assert types["byg026Opfoerelsesaar"] is ScalarType.INT
    assert types["byg041BebyggetAreal"] is ScalarType.FLOAT
    assert types["registreringFra"] is ScalarType.DATETIME
    fields = {f.source: f for f in bygning.fields}
    assert fields["husnummer"].many
    assert fields["husnummer"].nullable
    assert not fields["status"].nullable
    assert fields["status"].codes is not None
    assert [c.value for c in fields["status"].codes.codes] == [
        lit.name for lit in xmi.enumerations[fields["status"].codes.eaid].literals
    ]
    assert set(model.codelists) == {e.name for e in xmi.enumerations.values()}
    (navigation,) = model.navigation
    association = next(iter(xmi.associations.values()))
    assert navigation.name == association.name
    assert navigation.to_many


def test_load_xmi_leaves_out_associations_to_other_registers() -> None:
    model = load_xmi(xmi_file("DAR"), "DAR", {})
    assert set(model.entities) == {"Husnummer", "NavngivenVej"}
    assert [(n.source_entity, n.target_entity, n.to_many) for n in model.navigation] == [
        ("Husnummer", "NavngivenVej", False)
    ]


def test_load_xmi_options_and_files(tmp_path: Path) -> None:
    with pytest.raises(DescriptorError, match="packages must be a list"):
        load_xmi(xmi_file("DAR"), "DAR", {"packages": 3})
    with pytest.raises(DescriptorError, match=r"names no package of XMI .*: Nothing"):
        load_xmi(xmi_file("DAR"), "DAR", {"packages": ["Nothing"]})
    with pytest.raises(DescriptorError, match="holds 0 XMI files"):
        load_xmi(tmp_path, "DAR", {})
    with pytest.raises(DescriptorError, match="does not exist"):
        load_xmi(tmp_path / "none.xmi", "DAR", {})
    # DAR's XMI draws BBR's Bygning without attributes: no row, so no entity.
    with pytest.raises(DescriptorError, match="no class of DAR"):
        load_xmi(xmi_file("DAR"), "DAR", {"packages": "BBR"})
