"""The DLS relation generator: Relations.json from XMI + XSDs, its report, XSD ↔ XMI consistency.

Expected values are computed from the fixture files: the committed Relations.json of the healthy
delivery, and the defect XMIs read with xml.etree independently of :mod:`gateway.dls.xmi`.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.dls import relation_generator as rg
from gateway.dls.dls_xsd import load_dls_xsd
from gateway.dls.report import Message, Report
from gateway.dls.xmi import XmiModel, read_xmi
from gateway.model.datamodel import Datamodel

HERE = Path(__file__).parent
REGISTER = HERE / "delivery" / "Register"
DEFECTS = HERE / "defects"
CHANNELS = {"DAR": "rc00022", "BBR": "rc00018"}

XS = "{http://www.w3.org/2001/XMLSchema}"
XMI_NS = "http://schema.omg.org/spec/XMI/2.1"
XMI = f"{{{XMI_NS}}}"
UML_NS = "http://schema.omg.org/spec/UML/2.1"

ET.register_namespace("xs", XS[1:-1])
ET.register_namespace("xmi", XMI_NS)
ET.register_namespace("uml", UML_NS)


def folder(register: str) -> Path:
    return REGISTER / register / CHANNELS[register] / "2. Datamodel"


def xsd_file(register: str) -> Path:
    return next(folder(register).glob("*.xsd"))


def xmi_file(register: str) -> Path:
    return next(folder(register).glob("*.xmi"))


# --------------------------------------------------------------------------- the XSD models


def _annotation(node: ET.Element) -> tuple[str, str]:
    """(appinfo, documentation) of a node's xs:annotation."""
    note = node.find(f"{XS}annotation")
    if note is None:
        return "", ""
    return (
        (note.findtext(f"{XS}appinfo") or "").strip(),
        (note.findtext(f"{XS}documentation") or "").strip(),
    )


def xsd_model(path: Path, register: str) -> Datamodel:
    """The XSD datamodel of ``path``, as the DLS XSD loader reads it."""
    return load_dls_xsd(path, register, {})


def all_models() -> list[tuple[str, str, Datamodel]]:
    return [(reg, rc, xsd_model(xsd_file(reg), reg)) for reg, rc in sorted(CHANNELS.items())]


def run(register: str, xmi: Path | XmiModel) -> tuple[dict[str, Any], Report]:
    models = all_models()
    own = next(m for reg, _, m in models if reg == register)
    model = xmi if isinstance(xmi, XmiModel) else read_xmi(xmi)
    report = Report()
    document = rg.generate(
        register,
        CHANNELS[register],
        own,
        model,
        rg.eaid_index(models),
        report,
        model.path,
    )
    return document, report


def relations(document: dict[str, Any]) -> list[dict[str, Any]]:
    versions = document["RelationVersions"]
    assert [v["RelationVersionNumber"] for v in versions] == ["1"]
    found: list[dict[str, Any]] = versions[0]["Relations"]
    return found


# --------------------------------------------------------------------------- the oracle


def _normalised_rc(value: str) -> str:
    digits = value[2:] if value.startswith("rc") else value
    return str(int(digits))


def committed(register: str) -> list[dict[str, Any]]:
    """The committed Relations.json as the generator must write it: join fields empty."""
    document = json.loads((folder(register) / "Relations.json").read_text(encoding="utf-8"))
    out = []
    for relation in document["RelationVersions"][0]["Relations"]:
        expected = dict(relation, SourceField="", TargetField="")
        # The DLS writes the channel both as "rc00018" and as "18"; the generator writes "18".
        expected["TargetRc"] = _normalised_rc(relation["TargetRc"])
        out.append(expected)
    return out


def _xmi_id(node: ET.Element) -> str:
    return node.get(f"{XMI}id", "")


def _associations(root: ET.Element) -> Iterator[ET.Element]:
    for node in root.iter("packagedElement"):
        if node.get(f"{XMI}type") == "uml:Association":
            yield node


def _connectors(root: ET.Element) -> dict[str, ET.Element]:
    return {c.get(f"{XMI}idref", ""): c for c in root.iter("connector")}


def _end(association: ET.Element, side: str) -> ET.Element | None:
    tail = _xmi_id(association).removeprefix("EAID_")
    for end in association.findall("ownedEnd"):
        if _xmi_id(end) == f"EAID_{side}{tail}":
            return end
    return None


def _end_type(end: ET.Element | None) -> str:
    if end is None:
        return ""
    kind = end.find("type")
    return "" if kind is None else kind.get(f"{XMI}idref", "")


def _connector_class(connector: ET.Element | None, side: str) -> str:
    node = None if connector is None else connector.find(side)
    return "" if node is None else node.get(f"{XMI}idref", "")


def _connector_multiplicity(connector: ET.Element | None) -> str:
    kind = None if connector is None else connector.find("target/type")
    return "" if kind is None else kind.get("multiplicity", "")


def healthy_by_eaid(register: str) -> dict[str, dict[str, Any]]:
    """Association EAID of the healthy XMI → its relation in the committed Relations.json."""
    root = ET.parse(xmi_file(register)).getroot()
    by_alias = {r["Alias"]: r for r in committed(register)}
    return {_xmi_id(a): by_alias[a.get("name", "")] for a in _associations(root)}


def _target_is_many(upper: str) -> bool:
    return upper in ("-1", "*") or int(upper) > 1


# --------------------------------------------------------------------------- healthy delivery


@pytest.mark.parametrize("register", sorted(CHANNELS))
def test_generate_reproduces_the_committed_relations(register: str) -> None:
    document, report = run(register, xmi_file(register))
    generated = relations(document)
    expected = committed(register)
    key: Callable[[dict[str, Any]], str] = lambda r: str(r["Alias"])  # noqa: E731
    assert sorted(generated, key=key) == sorted(expected, key=key)
    assert report.messages == []
    for relation in generated:
        assert relation["SourceField"] == ""
        assert relation["TargetField"] == ""
        assert list(relation) == [
            "SourceEntity",
            "SourceField",
            "TargetRc",
            "TargetRcVersion",
            "TargetEntity",
            "TargetField",
            "ToManyRelation",
            "Alias",
        ]


def test_generate_orders_by_source_alias_register_and_target() -> None:
    document, _ = run("DAR", xmi_file("DAR"))
    aliases = [r["Alias"] for r in relations(document)]
    assert aliases == sorted(aliases)


def test_cross_register_target_takes_the_target_channel_and_version() -> None:
    document, _ = run("DAR", xmi_file("DAR"))
    bbr = xsd_model(xsd_file("BBR"), "BBR")
    root = ET.parse(xmi_file("DAR")).getroot()
    bbr_eaids = {e.eaid: e.name for e in bbr.entities.values()}
    cross = [a for a in _associations(root) if _end_type(_end(a, "dst")) in bbr_eaids]
    assert cross, "the DAR fixture has an association to a BBR entity"
    by_alias = {r["Alias"]: r for r in relations(document)}
    for association in cross:
        relation = by_alias[association.get("name", "")]
        assert relation["TargetEntity"] == bbr_eaids[_end_type(_end(association, "dst"))]
        assert relation["TargetRc"] == _normalised_rc(CHANNELS["BBR"])
        assert relation["TargetRcVersion"] == bbr.version.partition(".")[0]


@pytest.mark.parametrize("register", sorted(CHANNELS))
def test_to_many_follows_the_target_ends_upper_value(register: str) -> None:
    document, _ = run(register, xmi_file(register))
    root = ET.parse(xmi_file(register)).getroot()
    by_alias = {r["Alias"]: r for r in relations(document)}
    for association in _associations(root):
        end = _end(association, "dst")
        assert end is not None
        upper = end.find("upperValue")
        assert upper is not None
        relation = by_alias[association.get("name", "")]
        assert relation["ToManyRelation"] is _target_is_many(upper.get("value", ""))


def test_to_many_falls_back_to_the_connector(tmp_path: Path) -> None:
    """Without upperValue on the target end, the connector's target multiplicity decides."""
    tree = ET.parse(xmi_file("BBR"))
    root = tree.getroot()
    association = next(_associations(root))
    end = _end(association, "dst")
    assert end is not None
    upper = end.find("upperValue")
    assert upper is not None
    end.remove(upper)
    connector = _connectors(root)[_xmi_id(association)]
    expected = _target_is_many(_connector_multiplicity(connector).rpartition("..")[2] or "1")
    copy = tmp_path / "1.0.0.BBR.xmi"
    tree.write(copy, encoding="utf-8", xml_declaration=True)
    document, report = run("BBR", copy)
    assert report.messages == []
    (relation,) = relations(document)
    assert relation["ToManyRelation"] is expected


def test_eaid_index_covers_every_register_and_keeps_the_first_place() -> None:
    models = all_models()
    index = rg.eaid_index(models)
    for register, rc, model in models:
        for entity in model.entities.values():
            target = index[entity.eaid]
            assert (target.register, target.rc, target.entity) == (register, rc, entity.name)
            assert target.major == model.version.partition(".")[0]
    first, second = models[0], models[1]
    twice = rg.eaid_index([first, (second[0], second[1], first[2])])
    assert {t.register for t in twice.values()} == {first[0]}
    assert rg.EaidTarget("X", "rc1", "", "E").major == "1"


def test_rc_number() -> None:
    assert rg.rc_number("rc00022") == "22"
    assert rg.rc_number("RC00018") == "18"
    assert rg.rc_number("22") == "22"
    assert rg.rc_number("odd") == "odd"


# --------------------------------------------------------------------------- defect files


def _messages(report: Report, what: str) -> list[Message]:
    return [m for m in report.messages if m.what == what]


def _file_of(name: str) -> Path:
    path = DEFECTS / name
    assert path.is_file(), f"defect fixture {name} is missing"
    return path


def _kept(name: str, defective: set[str]) -> list[dict[str, Any]]:
    """The healthy associations of a defect file, as the committed DAR relations say."""
    healthy = healthy_by_eaid("DAR")
    root = ET.parse(_file_of(name)).getroot()
    connectors = _connectors(root)
    out = []
    for association in _associations(root):
        eaid = _xmi_id(association)
        if eaid in defective:
            continue
        label = connectors.get(eaid)
        labels = None if label is None else label.find("labels")
        alias = association.get("name") or ("" if labels is None else labels.get("mt", ""))
        out.append(dict(healthy[eaid], Alias=alias))
    return sorted(out, key=lambda r: (r["SourceEntity"], r["Alias"], r["TargetEntity"]))


def _assert_only(report: Report, what: str, severity: str) -> list[Message]:
    assert {m.what for m in report.messages} == {what}, report.render()
    found = _messages(report, what)
    assert {m.severity for m in found} == {severity}
    return found


def _assert_generated(document: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    generated = relations(document)
    assert (
        sorted(generated, key=lambda r: (r["SourceEntity"], r["Alias"], r["TargetEntity"]))
        == expected
    )


def test_defect_entities_missing_in_xsds() -> None:
    name = "entities_missing_in_xsds.xmi"
    root = ET.parse(_file_of(name)).getroot()
    own = {e.eaid for e in xsd_model(xsd_file("DAR"), "DAR").entities.values()}
    anywhere = {e.eaid for _, _, m in all_models() for e in m.entities.values()}
    expected: dict[str, str] = {}  # association EAID → the entity EAID at fault
    for association in _associations(root):
        source = _end_type(_end(association, "src"))
        target = _end_type(_end(association, "dst"))
        if source not in own:
            expected[_xmi_id(association)] = source
        elif target not in anywhere:
            expected[_xmi_id(association)] = target
    assert len(expected) == 2
    document, report = run("DAR", _file_of(name))
    found = _assert_only(report, rg.ENTITIES_MISSING, "error")
    assert len(found) == len(expected)
    for association_eaid, entity_eaid in expected.items():
        assert any(association_eaid in m.problem and entity_eaid in m.problem for m in found)
    _assert_generated(document, _kept(name, set(expected)))


def test_defect_undefined_multiplicity() -> None:
    name = "undefined_multiplicity.xmi"
    root = ET.parse(_file_of(name)).getroot()
    connectors = _connectors(root)
    usable = {"1", "0..1", "0..*", "1..*", "*", "1..1"}
    defective = set()
    for association in _associations(root):
        end = _end(association, "dst")
        upper = None if end is None else end.find("upperValue")
        text = _connector_multiplicity(connectors.get(_xmi_id(association)))
        if upper is None and text not in usable:
            defective.add(_xmi_id(association))
    assert len(defective) == 2
    document, report = run("DAR", _file_of(name))
    found = _assert_only(report, rg.UNDEFINED_MULTIPLICITY, "error")
    assert sorted(e for m in found for e in defective if e in m.problem) == sorted(defective)
    assert len(found) == len(defective)
    assert any("mange" in m.problem for m in found)
    _assert_generated(document, _kept(name, defective))


def test_defect_no_connectors() -> None:
    name = "no_connectors.xmi"
    root = ET.parse(_file_of(name)).getroot()
    assert not list(root.iter("connectors"))
    associations = {_xmi_id(a) for a in _associations(root)}
    assert associations
    model = read_xmi(_file_of(name))
    assert not model.has_connectors
    document, report = run("DAR", model)
    (message,) = _assert_only(report, rg.NO_CONNECTORS, "error")
    assert all(eaid in message.problem for eaid in associations)
    assert relations(document) == []


def test_defect_source_not_defined() -> None:
    name = "source_not_defined.xmi"
    root = ET.parse(_file_of(name)).getroot()
    connectors = _connectors(root)
    defective = set()
    for association in _associations(root):
        end = _end_type(_end(association, "src"))
        via = _connector_class(connectors.get(_xmi_id(association)), "source")
        if not (end or via) or (end and via and end != via):
            defective.add(_xmi_id(association))
    assert len(defective) == 2
    document, report = run("DAR", _file_of(name))
    found = _assert_only(report, rg.SOURCE_NOT_DEFINED, "error")
    assert len(found) == len(defective)
    assert {e for m in found for e in defective if e in m.problem} == defective
    _assert_generated(document, _kept(name, defective))


def test_defect_tag_not_defined() -> None:
    name = "tag_not_defined.xmi"
    root = ET.parse(_file_of(name)).getroot()
    connectors = _connectors(root)
    defective = {
        _xmi_id(a)
        for a in _associations(root)
        if not _end_type(_end(a, "dst"))
        and not _connector_class(connectors.get(_xmi_id(a)), "target")
    }
    assert len(defective) == 1
    document, report = run("DAR", _file_of(name))
    (message,) = _assert_only(report, rg.TAG_NOT_DEFINED, "error")
    assert all(eaid in message.problem for eaid in defective)
    _assert_generated(document, _kept(name, defective))


def test_defect_unnamed_association_is_a_warning_and_keeps_the_relation() -> None:
    name = "unnamed_association.xmi"
    root = ET.parse(_file_of(name)).getroot()
    connectors = _connectors(root)
    unnamed = set()
    for association in _associations(root):
        connector = connectors.get(_xmi_id(association))
        labels = None if connector is None else connector.find("labels")
        if not association.get("name") and (labels is None or not labels.get("mt")):
            unnamed.add(_xmi_id(association))
    assert len(unnamed) == 1
    bbr = {e.eaid for e in xsd_model(xsd_file("BBR"), "BBR").entities.values()}
    (eaid,) = unnamed
    association = next(a for a in _associations(root) if _xmi_id(a) == eaid)
    assert _end_type(_end(association, "dst")) in bbr, "the unnamed one points at BBR"
    document, report = run("DAR", _file_of(name))
    (message,) = _assert_only(report, rg.UNNAMED_ASSOCIATION, "warning")
    assert eaid in message.problem
    assert report.ok
    expected = _kept(name, set())
    assert [r["Alias"] for r in expected].count("") == 1
    _assert_generated(document, expected)


def test_defect_no_associations_is_a_warning() -> None:
    name = "no_associations.xmi"
    root = ET.parse(_file_of(name)).getroot()
    assert not list(_associations(root))
    assert any(n.get(f"{XMI}type") == "uml:Class" for n in root.iter("packagedElement"))
    document, report = run("DAR", _file_of(name))
    _assert_only(report, rg.NO_ASSOCIATIONS, "warning")
    assert report.ok
    assert relations(document) == []


def test_every_defect_of_the_readme_has_its_file() -> None:
    readme = (DEFECTS / "README.md").read_text(encoding="utf-8")
    listed = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `")}
    assert len(listed) == 7
    assert listed == {p.name for p in DEFECTS.glob("*.xmi")}
    for name in listed:
        model = read_xmi(DEFECTS / name)
        assert any(c.in_package("DAR") for c in model.classes.values())


# --------------------------------------------------------------------------- consistency


def _copy(tmp_path: Path, register: str) -> tuple[Path, Path]:
    xsd = tmp_path / xsd_file(register).name
    xmi = tmp_path / xmi_file(register).name
    shutil.copy(xsd_file(register), xsd)
    shutil.copy(xmi_file(register), xmi)
    return xsd, xmi


def _consistency(register: str, xsd: Path, xmi: Path) -> Report:
    report = Report()
    rg.check_consistency(
        register, xsd_model(xsd, register), read_xmi(xmi), report, str(xsd), str(xmi)
    )
    return report


def _edit(path: Path, change: Callable[[ET.Element], None]) -> None:
    tree = ET.parse(path)
    change(tree.getroot())
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _parent_of(root: ET.Element, child: ET.Element) -> ET.Element:
    return next(p for p in root.iter() if child in list(p))


def _remove(root: ET.Element, child: ET.Element) -> None:
    _parent_of(root, child).remove(child)


def _xmi_element(root: ET.Element, eaid: str) -> ET.Element:
    return next(n for n in root.iter() if _xmi_id(n) == eaid)


def _xsd_annotated(root: ET.Element, eaid: str) -> ET.Element:
    """The XSD node whose xs:annotation carries appinfo ``eaid``."""
    return next(n for n in root.iter() if _annotation(n)[0] == eaid)


@pytest.mark.parametrize("register", sorted(CHANNELS))
def test_consistency_of_the_healthy_pairs(register: str) -> None:
    report = _consistency(register, xsd_file(register), xmi_file(register))
    assert report.messages == [], report.render()


def test_consistency_entity_missing_in_xmi(tmp_path: Path) -> None:
    xsd, xmi = _copy(tmp_path, "DAR")
    entity = xsd_model(xsd, "DAR").entities["NavngivenVej"]
    _edit(xmi, lambda root: _remove(root, _xmi_element(root, entity.eaid)))
    report = _consistency("DAR", xsd, xmi)
    errors = [m for m in report.errors if m.what == "Entity missing in XMI"]
    assert len(errors) == 1
    assert entity.eaid in errors[0].problem
    assert errors[0].file == str(xsd)


def test_consistency_class_missing_in_xsd(tmp_path: Path) -> None:
    xsd, xmi = _copy(tmp_path, "DAR")
    entity = xsd_model(xsd, "DAR").entities["NavngivenVej"]

    def drop(root: ET.Element) -> None:
        _remove(root, _xsd_annotated(root, entity.eaid))
        for element in list(root.findall(f"{XS}element")):
            if element.get("name") == "NavngivenVej":
                root.remove(element)

    _edit(xsd, drop)
    report = _consistency("DAR", xsd, xmi)
    assert report.ok, report.render()
    (warning,) = report.warnings
    assert warning.what == "Class missing in XSD"
    assert entity.eaid in warning.problem
    assert warning.file == str(xmi)


def test_consistency_field_missing_in_xmi_and_attribute_missing_in_xsd(tmp_path: Path) -> None:
    xsd, xmi = _copy(tmp_path, "BBR")
    fields = xsd_model(xsd, "BBR").entities["Bygning"].fields
    in_xsd_only = next(f for f in fields if f.source == "byg041BebyggetAreal")
    in_xmi_only = next(f for f in fields if f.source == "registreringFra")
    _edit(xmi, lambda root: _remove(root, _xmi_element(root, in_xsd_only.eaid)))
    _edit(xsd, lambda root: _remove(root, _xsd_annotated(root, in_xmi_only.eaid)))
    report = _consistency("BBR", xsd, xmi)
    assert [(m.severity, m.what) for m in report.messages] == [
        ("error", "Field missing in XMI"),
        ("warning", "Attribute missing in XSD"),
    ], report.render()
    assert in_xsd_only.eaid in report.messages[0].problem
    assert in_xmi_only.eaid in report.messages[1].problem


def test_consistency_code_list_missing_in_xmi(tmp_path: Path) -> None:
    xsd, xmi = _copy(tmp_path, "BBR")
    codes = xsd_model(xsd, "BBR").codelists["LivscyklusType"]
    root = ET.parse(xmi).getroot()
    # The attribute typed by the enumeration keeps its type idref, now pointing at nothing.
    assert any(t.get(f"{XMI}idref") == codes.eaid for t in root.iter("type")), (
        "an attribute of the XMI is typed by the enumeration"
    )
    _edit(xmi, lambda r: _remove(r, _xmi_element(r, codes.eaid)))
    report = _consistency("BBR", xsd, xmi)
    assert {m.what for m in report.errors} == {"Code list missing in XMI"}, report.render()
    assert codes.eaid in report.errors[0].problem


def test_consistency_code_list_missing_in_xsd(tmp_path: Path) -> None:
    xsd, xmi = _copy(tmp_path, "BBR")
    model = xsd_model(xsd, "BBR")
    codes = model.codelists["BygningensAnvendelseType"]
    user = next(
        f
        for f in model.entities["Bygning"].fields
        if f.codes is codes or (f.codes is not None and f.codes.eaid == codes.eaid)
    )

    def drop(root: ET.Element) -> None:
        _remove(root, _xsd_annotated(root, codes.eaid))
        element = _xsd_annotated(root, user.eaid)
        element.set("type", "xs:string")

    _edit(xsd, drop)
    report = _consistency("BBR", xsd, xmi)
    assert report.ok, report.render()
    (warning,) = report.warnings
    assert warning.what == "Code list missing in XSD"
    assert codes.eaid in warning.problem


def test_consistency_codes_missing_on_either_side(tmp_path: Path) -> None:
    xsd, xmi = _copy(tmp_path, "BBR")
    codes = xsd_model(xsd, "BBR").codelists["BygningensAnvendelseType"]
    only_xsd, only_xmi = codes.codes[0], codes.codes[-1]
    _edit(xmi, lambda root: _remove(root, _xmi_element(root, only_xsd.eaid)))
    _edit(xsd, lambda root: _remove(root, _xsd_annotated(root, only_xmi.eaid)))
    report = _consistency("BBR", xsd, xmi)
    assert [(m.severity, m.what) for m in report.messages] == [
        ("error", "Code missing in XMI"),
        ("warning", "Code missing in XSD"),
    ], report.render()
    assert only_xsd.eaid in report.messages[0].problem
    assert only_xmi.eaid in report.messages[1].problem


def test_consistency_missing_eaid_and_renamed(tmp_path: Path) -> None:
    xsd, xmi = _copy(tmp_path, "DAR")
    model = xsd_model(xsd, "DAR")
    field = model.entities["Husnummer"].fields[1]
    vej = model.entities["NavngivenVej"]

    def change(root: ET.Element) -> None:
        element = _xsd_annotated(root, field.eaid)
        note = element.find(f"{XS}annotation")
        assert note is not None
        appinfo = note.find(f"{XS}appinfo")
        assert appinfo is not None
        note.remove(appinfo)

    _edit(xsd, change)
    _edit(xmi, lambda root: _xmi_element(root, vej.eaid).set("name", "Vej"))
    report = _consistency("DAR", xsd, xmi)
    assert sorted((m.severity, m.what) for m in report.messages) == [
        ("error", "Missing EAID"),
        ("warning", "Attribute missing in XSD"),
        ("warning", "Entity name differs from XMI"),
    ], report.render()
    missing = next(m for m in report.messages if m.what == "Missing EAID")
    assert field.source in missing.problem
    renamed = next(m for m in report.messages if m.what == "Entity name differs from XMI")
    assert vej.eaid in renamed.problem
    assert "Vej" in renamed.problem
