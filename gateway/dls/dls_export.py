"""``dls-export``: write a loaded register's datamodel as a DLS pair (physical XSD, logical XMI).

:func:`export_register` turns any loaded :class:`Register` (EDMX, JSON Schema, attribute XSD or
a DLS pair) into the two files a DLS delivery carries in ``2. Datamodel/``:

``MAJOR.MINOR.PATCH.<REG>.xsd``
    The physical model in the DLS style: per entity a top-level ``xs:element name="E"
    type="p:EType"`` holding an ``xs:key`` (``ENoegle``) over the entity's key fields, and an
    ``xs:complexType name="EType"`` whose ``xs:annotation`` carries the description
    (``xs:documentation``) and the EAID (``xs:appinfo``); its ``xs:sequence`` has one
    ``xs:element`` per field, typed by the field's scalar type (:data:`XSD_TYPES`),
    ``minOccurs="0"`` when nullable, ``maxOccurs="unbounded"`` when a list, facets as an inline
    ``xs:simpleType``/``xs:restriction``. Code lists are named ``xs:simpleType``\\ s
    (``<Name>Type``) of ``xs:enumeration``\\ s, each annotated with its description and EAID.
    The schema's ``version`` attribute and target namespace (``urn:dls:<reg>:<version>``) carry
    the datamodel version.
``MAJOR.MINOR.PATCH.<REG>.xmi``
    The logical model as Enterprise Architect exports it (XMI 2.1, UML 2.1): a ``uml:Package``
    named like the register with a ``uml:Class`` per entity (``ownedAttribute`` with
    ``lowerValue``/``upperValue`` and a type: ``EAJava_<primitive>`` or the enumeration's EAID),
    a ``uml:Enumeration`` per code list (``ownedLiteral``) and a ``uml:Association`` per relation
    (``memberEnd`` and ``ownedEnd`` ``EAID_src…``/``EAID_dst…`` with multiplicities, ``*`` as
    ``LiteralUnlimitedNatural`` ``-1``); classes of other registers that relations point at are
    drawn, without attributes, in a package named like their register, under their own EAID. EA's
    ``xmi:Extension`` repeats the elements (documentation, attribute types and bounds) and has a
    ``connector`` per association (source and target class, their multiplicity text, label
    ``mt`` = the alias).

Associations are the relations of the register's newest RelationVersion, plus the navigation
properties of the upstream model (EDMX navigation, XSD keyrefs, …) between two entities that no
relation already joins (in either direction). A relation's target end is ``0..*`` when it is
to-many, else ``1`` (or ``0..1`` when the joining source field is nullable); its source end is
``0..*`` for a to-one relation, else ``1`` (``0..1`` when the joining target field is nullable).

EAIDs: an EAID of the datamodel is kept; everything without one gets ``EAID_`` + a name-based
UUID (:func:`eaid_of`, e.g. ``eaid_of("BBR", "Bygning", "id_lokalId")``) written the EA way
(upper case, ``_`` for ``-``), so that repeated exports are byte-identical and every register's
export names another register's entity with the EAID that register's export gives it.

Output is deterministic: entities and fields in the datamodel's order, code lists, associations
and foreign classes sorted. Text is escaped by :mod:`xml.etree.ElementTree`; characters XML 1.0
cannot carry are dropped. A name that is no XML name (NCName) is written as its GraphQL name.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from gateway.history.temporal_fields import without_temporal_fields
from gateway.model.datamodel import (
    CodeList,
    Entity,
    Field,
    Register,
    ScalarType,
)
from gateway.model.naming import graphql_name

__all__ = [
    "DEFAULT_VERSION",
    "EAID_NAMESPACE",
    "EA_TYPES",
    "XSD_TYPES",
    "DlsPair",
    "eaid_of",
    "export_register",
    "pair_version",
    "write_pair",
]

DEFAULT_VERSION: Final = "1.0.0"

# The namespace of the name-based EAIDs (uuid5): fixed, so EAIDs never change between runs.
EAID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:dls-gateway:dls-export:eaid")

XS: Final = "http://www.w3.org/2001/XMLSchema"
XMI_NS: Final = "http://schema.omg.org/spec/XMI/2.1"
UML_NS: Final = "http://schema.omg.org/spec/UML/2.1"

# The scalar types as XSD built-ins (Float: xs:double, or xs:decimal when digit facets say so).
XSD_TYPES: Final[Mapping[ScalarType, str]] = {
    ScalarType.STRING: "xs:string",
    ScalarType.INT: "xs:int",
    ScalarType.LONG: "xs:long",
    ScalarType.FLOAT: "xs:double",
    ScalarType.BOOLEAN: "xs:boolean",
    ScalarType.DATE: "xs:date",
    ScalarType.DATETIME: "xs:dateTime",
}

# The scalar types as EA's primitive type names (``EAJava_<name>`` in the XMI).
EA_TYPES: Final[Mapping[ScalarType, str]] = {
    ScalarType.STRING: "String",
    ScalarType.INT: "int",
    ScalarType.LONG: "long",
    ScalarType.FLOAT: "double",
    ScalarType.BOOLEAN: "boolean",
    ScalarType.DATE: "date",
    ScalarType.DATETIME: "dateTime",
}

_DIGIT_FACETS: Final = frozenset({"totalDigits", "fractionDigits"})
_NCNAME = re.compile(r"[^\W\d][\w.\-]*")
_EA_ID = re.compile(
    r"EA[A-Z]{2}_([0-9A-F]{8})_([0-9A-F]{4})_([0-9A-F]{4})_([0-9A-F]{4})_([0-9A-F]{12})"
)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_VERSION = re.compile(r"\d+(?:\.\d+){0,2}")
_UML_FLAGS: Final = {
    "isStatic": "false",
    "isReadOnly": "false",
    "isDerived": "false",
    "isOrdered": "false",
    "isUnique": "true",
    "isDerivedUnion": "false",
}


@dataclass(frozen=True, slots=True)
class DlsPair:
    """An exported DLS pair: file names (``1.0.0.FT.xsd``/``.xmi``) and their text."""

    xsd_name: str
    xmi_name: str
    xsd: str
    xmi: str


def eaid_of(register: str, *path: str, prefix: str = "EAID") -> str:
    """The name-based EAID of ``register/path…`` in EA's spelling (``EAID_D8D07ED4_C4AF_…``).

    Entities are ``(register, entity)``, fields ``(register, entity, field)`` (source names);
    code lists, codes, associations and the package use a ``#``-tagged path no entity name can
    spell.
    """
    key = "/".join((register, *path))
    text = str(uuid.uuid5(EAID_NAMESPACE, key)).upper().replace("-", "_")
    return f"{prefix}_{text}"


def pair_version(register: Register) -> str:
    """``MAJOR.MINOR.PATCH`` of the register's datamodel (padded; ``1.0.0`` when unversioned)."""
    version = register.datamodel.version.strip()
    if not _VERSION.fullmatch(version):
        return DEFAULT_VERSION
    parts = version.split(".")
    return ".".join([str(int(p)) for p in parts] + ["0"] * (3 - len(parts)))


def export_register(register: Register, registers: Mapping[str, Register]) -> DlsPair:
    """The DLS pair of ``register``; ``registers`` (by name) resolves relations' targets."""
    plan = _Plan.of(register, registers)
    version = pair_version(register)
    return DlsPair(
        xsd_name=f"{version}.{register.name}.xsd",
        xmi_name=f"{version}.{register.name}.xmi",
        xsd=_xsd(plan, version),
        xmi=_xmi(plan),
    )


def write_pair(pair: DlsPair, folder: Path) -> list[Path]:
    """Write the pair into ``folder`` (created if need be); the paths written, XSD first."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in ((pair.xsd_name, pair.xsd), (pair.xmi_name, pair.xmi)):
        path = folder / name
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class _Codes:
    """A code list as exported: its EAID, XSD type name, base type and codes' EAIDs."""

    codes: CodeList
    eaid: str
    type_name: str
    base: str
    code_eaids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Attr:
    field: Field
    name: str
    eaid: str


@dataclass(frozen=True, slots=True)
class _Class:
    entity: Entity
    name: str
    eaid: str
    attributes: tuple[_Attr, ...]


@dataclass(frozen=True, slots=True)
class _End:
    """One end of an association: the class's EAID and name, its multiplicity (None: ``*``)."""

    eaid: str
    name: str
    lower: int
    upper: int | None

    @property
    def text(self) -> str:
        """EA's multiplicity text: ``1``, ``0..1``, ``0..*``, ``1..*``."""
        upper = "*" if self.upper is None else str(self.upper)
        return upper if str(self.lower) == upper else f"{self.lower}..{upper}"


@dataclass(frozen=True, slots=True)
class _Assoc:
    eaid: str
    name: str
    source: _End
    target: _End


@dataclass(slots=True)
class _Plan:
    """Names and EAIDs of everything exported, decided once for both files."""

    register: str
    classes: list[_Class] = field(default_factory=list)
    codelists: dict[tuple[str, str], _Codes] = field(default_factory=dict)
    associations: list[_Assoc] = field(default_factory=list)
    # Foreign register → entity → EAID of the classes relations point at.
    foreign: dict[str, dict[str, str]] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, register: Register, registers: Mapping[str, Register]) -> _Plan:
        plan = cls(register.name)
        model = without_temporal_fields(register.datamodel)  # the gateway's are not exported
        for entity in model.entities.values():
            for item in entity.fields:
                if item.codes is not None:
                    plan._codelist(item.codes, item.type)
        for codes in sorted(model.codelists.values(), key=lambda c: (c.name, c.eaid)):
            plan._codelist(codes, ScalarType.STRING)
        names = {_xml_name(e.name) for e in model.entities.values()}
        plan._name_codelists(names)
        for entity in model.entities.values():
            plan.classes.append(plan._class(entity))
        plan._relations(register, registers)
        return plan

    def _eaid(self, given: str, *path: str) -> str:
        """The model's EAID if it has one not used yet, else the name-based one."""
        eaid = given if given and given not in self.taken else eaid_of(self.register, *path)
        self.taken.add(eaid)
        return eaid

    def _codelist(self, codes: CodeList, kind: ScalarType) -> None:
        key = (codes.name, codes.eaid)
        if key in self.codelists:
            return
        eaid = self._eaid(codes.eaid, "#codelist", codes.name)
        code_eaids = tuple(
            self._eaid(code.eaid, "#codelist", codes.name, code.value) for code in codes.codes
        )
        self.codelists[key] = _Codes(codes, eaid, "", XSD_TYPES[kind], code_eaids)

    def _name_codelists(self, entity_names: set[str]) -> None:
        """``<Name>Type`` per code list, unique beside the entities' ``<Entity>Type``."""
        used = {f"{name}Type" for name in entity_names}
        for key, item in sorted(self.codelists.items()):
            base = _xml_name(item.codes.name)
            base = base[: -len("Type")] if base.endswith("Type") and base != "Type" else base
            name, n = f"{base}Type", 1
            while name in used:
                n += 1
                name = f"{base}{n}Type"
            used.add(name)
            self.codelists[key] = _Codes(item.codes, item.eaid, name, item.base, item.code_eaids)

    def _class(self, entity: Entity) -> _Class:
        eaid = self._eaid(entity.eaid, entity.name)
        attributes = tuple(
            _Attr(item, _field_name(item), self._eaid(item.eaid, entity.name, item.source))
            for item in entity.fields
        )
        return _Class(entity, _xml_name(entity.name), eaid, attributes)

    def codes_of(self, item: Field) -> _Codes | None:
        if item.codes is None:
            return None
        return self.codelists[(item.codes.name, item.codes.eaid)]

    def _relations(self, register: Register, registers: Mapping[str, Register]) -> None:
        own = {c.entity.name: c for c in self.classes}
        relations = register.relation_versions.get(register.newest_version, ())
        joined: set[tuple[str, str]] = set()
        found: list[_Assoc] = []
        for relation in relations:
            source = own.get(relation.source_entity)
            if source is None:
                continue
            if relation.target_register == register.name:
                target_class = own.get(relation.target_entity)
                if target_class is None:
                    continue
                target_eaid, target_name = target_class.eaid, target_class.name
                target_entity: Entity | None = target_class.entity
            else:
                target_eaid, target_entity = self._foreign(
                    relation.target_register, relation.target_entity, registers
                )
                target_name = _xml_name(relation.target_entity)
            joined.add(
                (relation.source_entity, f"{relation.target_register}/{relation.target_entity}")
            )
            source_field = source.entity.by_source.get(relation.source_field)
            target_field = (
                None
                if target_entity is None
                else target_entity.by_source.get(relation.target_field)
            )
            if relation.to_many:
                target_end = _End(target_eaid, target_name, 0, None)
                lower = 0 if target_field is not None and target_field.nullable else 1
                source_end = _End(source.eaid, source.name, lower, 1)
            else:
                lower = 0 if source_field is None or source_field.nullable else 1
                target_end = _End(target_eaid, target_name, lower, 1)
                source_end = _End(source.eaid, source.name, 0, None)
            path = (
                "#association",
                relation.source_entity,
                relation.alias,
                relation.target_register,
                relation.target_entity,
                relation.source_field,
                relation.target_field,
            )
            found.append(_Assoc(self._eaid("", *path), relation.alias, source_end, target_end))
        for nav in register.datamodel.navigation:
            source = own.get(nav.source_entity)
            target = own.get(nav.target_entity)
            pair = (nav.source_entity, f"{register.name}/{nav.target_entity}")
            # A relation either way joins the two (a keyref navigates both ways).
            back = (nav.target_entity, f"{register.name}/{nav.source_entity}")
            if source is None or target is None or pair in joined or back in joined:
                continue
            if nav.to_many:
                source_end = _End(source.eaid, source.name, 0, 1)
                target_end = _End(target.eaid, target.name, 0, None)
            else:
                source_end = _End(source.eaid, source.name, 0, None)
                target_end = _End(target.eaid, target.name, 0, 1)
            tag = ("#navigation", nav.source_entity, nav.name, nav.target_entity)
            found.append(_Assoc(self._eaid("", *tag), nav.name, source_end, target_end))
        self.associations = sorted(
            found, key=lambda a: (a.source.name, a.name, a.target.name, a.target.eaid, a.eaid)
        )

    def _foreign(
        self, register: str, entity: str, registers: Mapping[str, Register]
    ) -> tuple[str, Entity | None]:
        """The EAID of another register's entity (its own EAID, else the name-based one)."""
        other = registers.get(register)
        found = None if other is None else other.datamodel.entities.get(entity)
        eaid = found.eaid if found is not None and found.eaid else eaid_of(register, entity)
        self.foreign.setdefault(register, {}).setdefault(entity, eaid)
        return self.foreign[register][entity], found


def _xml_name(name: str) -> str:
    """``name`` if it is an XML name (NCName), else its GraphQL name (which always is)."""
    return name if _NCNAME.fullmatch(name) else graphql_name(name)


def _field_name(item: Field) -> str:
    if _NCNAME.fullmatch(item.source):
        return item.source
    return item.name if _NCNAME.fullmatch(item.name) else graphql_name(item.source)


def _text(text: str) -> str:
    """Text XML 1.0 can carry (control characters dropped)."""
    return _NOT_XML.sub("", text)


def _prefix(register: str) -> str:
    prefix = register.lower()
    return "tns" if prefix.startswith("xml") or prefix == "xs" else prefix


# --------------------------------------------------------------------------- the XSD


def _annotation(parent: ET.Element, documentation: str, eaid: str) -> None:
    annotation = ET.SubElement(parent, "xs:annotation")
    if documentation:
        ET.SubElement(annotation, "xs:documentation").text = _text(documentation)
    ET.SubElement(annotation, "xs:appinfo").text = eaid


def _xsd_type(item: Field) -> str:
    base = XSD_TYPES[item.type]
    if item.type is ScalarType.FLOAT and any(k in _DIGIT_FACETS for k, _ in item.facets):
        base = "xs:decimal"
    return base


def _xsd(plan: _Plan, version: str) -> str:
    prefix = _prefix(plan.register)
    namespace = f"urn:dls:{plan.register.lower()}:{version}"
    schema = ET.Element(
        "xs:schema",
        {
            "xmlns:xs": XS,
            f"xmlns:{prefix}": namespace,
            "targetNamespace": namespace,
            "elementFormDefault": "qualified",
            "version": version,
        },
    )
    for cls in plan.classes:
        element = ET.SubElement(
            schema, "xs:element", {"name": cls.name, "type": f"{prefix}:{cls.name}Type"}
        )
        by_name = {a.field.name: a for a in cls.attributes}
        keys = [by_name[k] for k in cls.entity.key if k in by_name]
        if keys:
            key = ET.SubElement(element, "xs:key", {"name": f"{cls.name}Noegle"})
            ET.SubElement(key, "xs:selector", {"xpath": "."})
            for attr in keys:
                ET.SubElement(key, "xs:field", {"xpath": f"{prefix}:{attr.name}"})
    for cls in plan.classes:
        complex_type = ET.SubElement(schema, "xs:complexType", {"name": f"{cls.name}Type"})
        _annotation(complex_type, cls.entity.description, cls.eaid)
        sequence = ET.SubElement(complex_type, "xs:sequence")
        for attr in cls.attributes:
            _xsd_field(sequence, plan, attr, prefix)
    for item in sorted(plan.codelists.values(), key=lambda c: c.type_name):
        simple = ET.SubElement(schema, "xs:simpleType", {"name": item.type_name})
        _annotation(simple, item.codes.description, item.eaid)
        restriction = ET.SubElement(simple, "xs:restriction", {"base": item.base})
        for code, eaid in zip(item.codes.codes, item.code_eaids, strict=True):
            enumeration = ET.SubElement(restriction, "xs:enumeration", {"value": _text(code.value)})
            _annotation(enumeration, code.description, eaid)
    header = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<!-- Physical datamodel of {plan.register} {version}, exported by dls-gateway "
        "in the style of the DLS description. -->\n"
    )
    return _serialise(schema, header)


def _xsd_field(sequence: ET.Element, plan: _Plan, attr: _Attr, prefix: str) -> None:
    item = attr.field
    codes = plan.codes_of(item)
    attributes = {"name": attr.name}
    inline = bool(item.facets)
    if not inline:
        attributes["type"] = _xsd_type(item) if codes is None else f"{prefix}:{codes.type_name}"
    if item.nullable:
        attributes["minOccurs"] = "0"
    if item.many:
        attributes["maxOccurs"] = "unbounded"
    element = ET.SubElement(sequence, "xs:element", attributes)
    _annotation(element, item.description, attr.eaid)
    if inline:
        simple = ET.SubElement(element, "xs:simpleType")
        base = _xsd_type(item) if codes is None else f"{prefix}:{codes.type_name}"
        restriction = ET.SubElement(simple, "xs:restriction", {"base": base})
        for facet, value in item.facets:
            ET.SubElement(restriction, f"xs:{facet}", {"value": _text(value)})


def _serialise(root: ET.Element, header: str) -> str:
    ET.indent(root, space="  ")
    # ElementTree escapes ">" in text and attributes, so " />" only ever ends an empty tag.
    text = ET.tostring(root, encoding="unicode").replace(" />", "/>")
    return header + text + "\n"


# --------------------------------------------------------------------------- the XMI


class _Ids:
    """The ``EAID_LI…`` identifiers of multiplicity values, numbered in document order."""

    def __init__(self) -> None:
        self.count = 0

    def literal(self, owner: str) -> str:
        self.count += 1
        match = _EA_ID.fullmatch(owner.removeprefix("EAID_src").removeprefix("EAID_dst"))
        if match is None:
            match = _EA_ID.fullmatch(eaid_of("#literal", owner))
        assert match is not None
        first, _, third, fourth, fifth = match.groups()
        return f"EAID_LI{self.count:06d}_{first[:4]}_{third}_{fourth}_{fifth}"


def _bounds(parent: ET.Element, ids: _Ids, owner: str, lower: int, upper: int | None) -> None:
    ET.SubElement(
        parent,
        "lowerValue",
        {"xmi:type": "uml:LiteralInteger", "xmi:id": ids.literal(owner), "value": str(lower)},
    )
    if upper is None:
        kind, value = "uml:LiteralUnlimitedNatural", "-1"
    else:
        kind, value = "uml:LiteralInteger", str(upper)
    ET.SubElement(
        parent, "upperValue", {"xmi:type": kind, "xmi:id": ids.literal(owner), "value": value}
    )


def _type_ref(plan: _Plan, item: Field) -> tuple[str, str]:
    """The type idref of an attribute and EA's type name for it."""
    codes = plan.codes_of(item)
    if codes is not None:
        return codes.eaid, _xml_name(codes.codes.name)
    name = EA_TYPES[item.type]
    if item.type is ScalarType.FLOAT and any(k in _DIGIT_FACETS for k, _ in item.facets):
        name = "decimal"
    return f"EAJava_{name}", name


def _xmi(plan: _Plan) -> str:
    ids = _Ids()
    root = ET.Element("xmi:XMI", {"xmi:version": "2.1", "xmlns:uml": UML_NS, "xmlns:xmi": XMI_NS})
    ET.SubElement(
        root, "xmi:Documentation", {"exporter": "Enterprise Architect", "exporterVersion": "6.5"}
    )
    model = ET.SubElement(
        root, "uml:Model", {"xmi:type": "uml:Model", "name": "EA_Model", "visibility": "public"}
    )
    package_eaid = eaid_of(plan.register, "#package", prefix="EAPK")
    package = _packaged(model, "uml:Package", package_eaid, plan.register)
    for cls in plan.classes:
        _xmi_class(package, plan, cls, ids)
    codelists = sorted(plan.codelists.values(), key=lambda c: c.type_name)
    for item in codelists:
        enumeration = _packaged(package, "uml:Enumeration", item.eaid, _xml_name(item.codes.name))
        for code, eaid in zip(item.codes.codes, item.code_eaids, strict=True):
            ET.SubElement(
                enumeration,
                "ownedLiteral",
                {"xmi:type": "uml:EnumerationLiteral", "xmi:id": eaid, "name": _text(code.value)},
            )
    for association in plan.associations:
        _xmi_association(package, association, ids)
    foreign = sorted(plan.foreign.items())
    for register, entities in foreign:
        other = _packaged(
            model, "uml:Package", eaid_of(register, "#package", prefix="EAPK"), register
        )
        for entity, eaid in sorted(entities.items()):
            _packaged(other, "uml:Class", eaid, _xml_name(entity))
    _extension(root, plan, package_eaid, codelists, foreign)
    header = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<!-- Logical datamodel of {plan.register}, exported by dls-gateway as an "
        "Enterprise Architect XMI 2.1. -->\n"
    )
    return _serialise(root, header)


def _packaged(parent: ET.Element, kind: str, eaid: str, name: str) -> ET.Element:
    return ET.SubElement(
        parent,
        "packagedElement",
        {"xmi:type": kind, "xmi:id": eaid, "name": name, "visibility": "public"},
    )


def _xmi_class(package: ET.Element, plan: _Plan, cls: _Class, ids: _Ids) -> None:
    node = _packaged(package, "uml:Class", cls.eaid, cls.name)
    for attr in cls.attributes:
        prop = ET.SubElement(
            node,
            "ownedAttribute",
            {
                "xmi:type": "uml:Property",
                "xmi:id": attr.eaid,
                "name": attr.name,
                "visibility": "private",
                **_UML_FLAGS,
            },
        )
        lower = 0 if attr.field.nullable else 1
        _bounds(prop, ids, attr.eaid, lower, None if attr.field.many else 1)
        ET.SubElement(prop, "type", {"xmi:idref": _type_ref(plan, attr.field)[0]})


def _xmi_association(package: ET.Element, association: _Assoc, ids: _Ids) -> None:
    eaid = association.eaid
    tail = eaid.removeprefix("EAID_")
    node = _packaged(package, "uml:Association", eaid, association.name)
    ends = ((f"EAID_dst{tail}", association.target), (f"EAID_src{tail}", association.source))
    for end_id, _ in ends:
        ET.SubElement(node, "memberEnd", {"xmi:idref": end_id})
    for end_id, end in ends:
        owned = ET.SubElement(
            node,
            "ownedEnd",
            {
                "xmi:type": "uml:Property",
                "xmi:id": end_id,
                "visibility": "public",
                "association": eaid,
                **_UML_FLAGS,
                "aggregation": "none",
            },
        )
        ET.SubElement(owned, "type", {"xmi:idref": end.eaid})
        _bounds(owned, ids, eaid, end.lower, end.upper)


def _extension(
    root: ET.Element,
    plan: _Plan,
    package_eaid: str,
    codelists: list[_Codes],
    foreign: list[tuple[str, dict[str, str]]],
) -> None:
    extension = ET.SubElement(
        root, "xmi:Extension", {"extender": "Enterprise Architect", "extenderID": "6.5"}
    )
    elements = ET.SubElement(extension, "elements")
    local: dict[str, int] = {}

    def element(eaid: str, kind: str, name: str, package: str, documentation: str) -> ET.Element:
        local[eaid] = len(local) + 1
        node = ET.SubElement(
            elements,
            "element",
            {"xmi:idref": eaid, "xmi:type": f"uml:{kind}", "name": name, "scope": "public"},
        )
        ET.SubElement(node, "model", {"package": package, "ea_localid": str(local[eaid])})
        properties = {"documentation": _text(documentation)} if documentation else {}
        properties |= {"isSpecification": "false", "sType": kind, "nType": "0", "scope": "public"}
        ET.SubElement(node, "properties", properties)
        return node

    for cls in plan.classes:
        node = element(cls.eaid, "Class", cls.name, package_eaid, cls.entity.description)
        attributes = ET.SubElement(node, "attributes")
        for attr in cls.attributes:
            item = attr.field
            child = ET.SubElement(
                attributes,
                "attribute",
                {"xmi:idref": attr.eaid, "name": attr.name, "scope": "Private"},
            )
            if item.description:
                ET.SubElement(child, "documentation", {"value": _text(item.description)})
            ET.SubElement(child, "properties", {"type": _type_ref(plan, item)[1]})
            lower = "0" if item.nullable else "1"
            ET.SubElement(child, "bounds", {"lower": lower, "upper": "*" if item.many else "1"})
    for codes in codelists:
        name = _xml_name(codes.codes.name)
        element(codes.eaid, "Enumeration", name, package_eaid, codes.codes.description)
    for register, entities in foreign:
        other = eaid_of(register, "#package", prefix="EAPK")
        for entity, eaid in sorted(entities.items()):
            element(eaid, "Class", _xml_name(entity), other, "")
    names = {c.eaid: c.name for c in plan.classes}
    names |= {eaid: _xml_name(e) for _, entities in foreign for e, eaid in entities.items()}
    connectors = ET.SubElement(extension, "connectors")
    for index, association in enumerate(plan.associations, start=len(local) + 1):
        connector = ET.SubElement(connectors, "connector", {"xmi:idref": association.eaid})
        for side, end in (("source", association.source), ("target", association.target)):
            node = ET.SubElement(connector, side, {"xmi:idref": end.eaid})
            ET.SubElement(
                node,
                "model",
                {"ea_localid": str(local[end.eaid]), "type": "Class", "name": names[end.eaid]},
            )
            ET.SubElement(node, "role", {"visibility": "Public", "targetScope": "instance"})
            ET.SubElement(
                node,
                "type",
                {"multiplicity": end.text, "aggregation": "none", "containment": "Unspecified"},
            )
        ET.SubElement(connector, "model", {"ea_localid": str(index)})
        ET.SubElement(
            connector,
            "properties",
            {"ea_type": "Association", "direction": "Source -> Destination"},
        )
        ET.SubElement(connector, "labels", {"mt": _text(association.name)})
