"""The DLS relation generator: Relations.json from the logical models (XMI) and the XSDs.

The generator reads a register's associations (``packagedElement`` of ``xmi:type
uml:Association`` with its ends, and EA's ``connector`` of the same EAID) and resolves their
classes by EAID: the source class must be an entity of the register's own XSD, the target class
an entity of any register's XSD (:func:`eaid_index`). It cannot know the joining fields, so
``SourceField`` and ``TargetField`` are left ``""`` for the register to complete.

:func:`generate` writes, per association that resolves:

``SourceEntity``    the source end's class, as the own XSD names the entity of that EAID
``TargetRc``        the target's replication channel as the DLS example writes it (``rc00022``
                    → ``"22"``)
``TargetRcVersion`` the ``MAJOR`` of the target's datamodel version
``TargetEntity``    the target end's class, as its register's XSD names it
``ToManyRelation``  the target end's upper bound above 1 or ``*``: from the association's target
                    ``ownedEnd`` ``upperValue``, else from the connector's target multiplicity
``Alias``           the association's name, else the connector's label (``""`` if neither)

Which end is which: EA names the ends ``EAID_src…`` and ``EAID_dst…``; where the association's
end and the connector both name a class, they must agree. Output is ordered by source entity,
alias, target register and target entity.

Errors of the validation report (the relation is left out): "Entities from associations in
XMIs missing in XSDs", "Undefined Multiplicity", "No Connectors Found in XMI" (associations but
no connector: nothing is generated), "Source not defined in association in XMI", "Tag not
defined in association in XMI". Warnings (the relation is kept): "Unnamed Association in XMI",
"No Associations Found in XMI". Every message names the association's and the entity's EAIDs.

:func:`check_consistency` compares a register's XSD with its XMI by EAID (see there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.dls.report import Report
from gateway.dls.xmi import (
    Multiplicity,
    XmiAssociation,
    XmiClass,
    XmiEnd,
    XmiEnumeration,
    XmiModel,
)
from gateway.model.datamodel import CodeList, Datamodel, Entity

__all__ = [
    "ENTITIES_MISSING",
    "NO_ASSOCIATIONS",
    "NO_CONNECTORS",
    "SOURCE_NOT_DEFINED",
    "TAG_NOT_DEFINED",
    "UNDEFINED_MULTIPLICITY",
    "UNNAMED_ASSOCIATION",
    "EaidTarget",
    "check_consistency",
    "eaid_index",
    "generate",
    "own_classes",
    "own_enumerations",
    "rc_number",
]

# The DLS validation report's error and warning types.
ENTITIES_MISSING: Final = "Entities from associations in XMIs missing in XSDs"
UNDEFINED_MULTIPLICITY: Final = "Undefined Multiplicity"
NO_CONNECTORS: Final = "No Connectors Found in XMI"
SOURCE_NOT_DEFINED: Final = "Source not defined in association in XMI"
TAG_NOT_DEFINED: Final = "Tag not defined in association in XMI"
UNNAMED_ASSOCIATION: Final = "Unnamed Association in XMI"
NO_ASSOCIATIONS: Final = "No Associations Found in XMI"


@dataclass(frozen=True, slots=True)
class EaidTarget:
    """Where an entity EAID lives: register, replication channel, datamodel version, entity."""

    register: str
    rc: str
    version: str
    entity: str

    @property
    def major(self) -> str:
        """``TargetRcVersion``: the ``MAJOR`` of the datamodel version (``"1"`` if unversioned)."""
        return self.version.partition(".")[0] or "1"


def rc_number(rc: str) -> str:
    """``rc00022`` → ``"22"``: a channel's numeric id without prefix and leading zeros."""
    digits = rc[2:] if rc.lower().startswith("rc") else rc
    return str(int(digits)) if digits.isdigit() else rc


def eaid_index(models: Iterable[tuple[str, str, Datamodel]]) -> dict[str, EaidTarget]:
    """Entity EAID → where it lives, over ``(register, rc, XSD datamodel)`` of all registers.

    Entities without an EAID are not indexed; an EAID seen twice keeps its first place (give
    the models in a stable order).
    """
    index: dict[str, EaidTarget] = {}
    for register, rc, model in models:
        for entity in model.entities.values():
            if entity.eaid:
                index.setdefault(entity.eaid, EaidTarget(register, rc, model.version, entity.name))
    return index


def _by_eaid(model: Datamodel) -> dict[str, Entity]:
    return {e.eaid: e for e in model.entities.values() if e.eaid}


# --------------------------------------------------------------------------- generating


def generate(
    register: str,
    rc: str,
    own: Datamodel,
    xmi: XmiModel,
    index: Mapping[str, EaidTarget],
    report: Report,
    xmi_file: str,
) -> dict[str, Any]:
    """The generated Relations.json of ``register`` (one RelationVersion, ``"1"``).

    ``own`` is the register's XSD datamodel, ``index`` the entity EAIDs of all registers
    (:func:`eaid_index`); problems go to ``report`` under ``xmi_file``.
    """
    relations: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    version: dict[str, Any] = {"RelationVersionNumber": "1", "Relations": []}
    document: dict[str, Any] = {"RelationVersions": [version]}
    associations = sorted(xmi.associations.values(), key=lambda a: a.eaid)
    if not associations:
        report.warning(
            xmi_file,
            NO_ASSOCIATIONS,
            "the XMI defines no association (no packagedElement of xmi:type uml:Association), "
            "so the generated Relations.json holds no relation",
            "if the register's entities relate to each other or to other registers' entities, "
            "model the associations in the logical model and export it again; if not, nothing "
            "is to be done",
        )
        return document
    if not xmi.connectors:
        where = (
            "its <connectors> section is empty"
            if xmi.has_connectors
            else ("it has no <connectors> section in its xmi:Extension")
        )
        report.error(
            xmi_file,
            NO_CONNECTORS,
            f"the XMI defines {len(associations)} association(s) "
            f"({', '.join(a.eaid for a in associations)}) but {where}, so no relation can be "
            "parsed",
            "export the logical model from Enterprise Architect as XMI 2.1 with EA's extension "
            "(xmi:Extension with elements and connectors), so that every association has its "
            "<connector>",
        )
        return document
    by_eaid = _by_eaid(own)
    for association in associations:
        found = _relation(register, rc, own, by_eaid, xmi, association, index, report, xmi_file)
        if found is not None:
            relation, target = found
            # Ordered by the target's register (not by the TargetRc text: "9" > "18").
            key = (
                str(relation["SourceEntity"]),
                str(relation["Alias"]),
                target.register,
                str(relation["TargetEntity"]),
                association.eaid,
            )
            relations.append((key, relation))
    version["Relations"] = [r for _, r in sorted(relations, key=lambda pair: pair[0])]
    return document


def _end_class(end: XmiEnd | None, connector_eaid: str, side: str) -> tuple[str, str]:
    """The class EAID of one side of an association, or why it cannot be told."""
    if end is not None and end.type_eaid:
        if connector_eaid and connector_eaid != end.type_eaid:
            return "", (
                f"its {side} end {end.eaid} names class {end.type_eaid} but its connector's "
                f"{side} names {connector_eaid}"
            )
        return end.type_eaid, ""
    if connector_eaid:
        return connector_eaid, ""
    if end is not None:
        return "", f"its {side} end {end.eaid} has no type, nor has its connector a {side}"
    named = "EAID_src…" if side == "source" else "EAID_dst…"
    return "", f"it has no {side} end (ownedEnd {named} with a type) and its connector no {side}"


def _relation(
    register: str,
    rc: str,
    own: Datamodel,
    by_eaid: Mapping[str, Entity],
    xmi: XmiModel,
    association: XmiAssociation,
    index: Mapping[str, EaidTarget],
    report: Report,
    xmi_file: str,
) -> tuple[dict[str, Any], EaidTarget] | None:
    eaid = association.eaid
    connector = xmi.connector(eaid)
    source_end, target_end = association.source, association.target
    source_eaid, source_problem = _end_class(
        source_end, connector.source_eaid if connector else "", "source"
    )
    target_eaid, target_problem = _end_class(
        target_end, connector.target_eaid if connector else "", "target"
    )
    ok = True
    if source_problem:
        ok = False
        report.error(
            xmi_file,
            SOURCE_NOT_DEFINED,
            f"association {eaid}: {source_problem}, so its SourceEntity cannot be set",
            f"give association {eaid} its source end (ownedEnd EAID_src… typed by the source "
            "class) and the same class as its connector's <source xmi:idref>",
        )
    if target_problem:
        ok = False
        report.error(
            xmi_file,
            TAG_NOT_DEFINED,
            f"association {eaid}: {target_problem}, so its TargetEntity, TargetRc and "
            "TargetRcVersion cannot be set",
            f"give association {eaid} its target end (ownedEnd EAID_dst… typed by the target "
            "class) and the same class as its connector's <target xmi:idref>",
        )
    source = by_eaid.get(source_eaid) if source_eaid else None
    if source_eaid and source is None:
        ok = False
        report.error(
            xmi_file,
            ENTITIES_MISSING,
            f"association {eaid}, entity {source_eaid}: the source class "
            f"{_named(xmi, source_eaid)} is no entity of {register}'s own XSD (no complexType "
            "there carries this EAID in its xs:appinfo)",
            f"give the entity's complexType <xs:appinfo>{source_eaid}</xs:appinfo> in "
            f"{register}'s XSD, or make the association start at an entity of {register}",
        )
    target: EaidTarget | None = None
    if target_eaid:
        mine = by_eaid.get(target_eaid)
        target = (
            EaidTarget(register, rc, own.version, mine.name)
            if mine is not None
            else index.get(target_eaid)
        )
        if target is None:
            ok = False
            report.error(
                xmi_file,
                ENTITIES_MISSING,
                f"association {eaid}, entity {target_eaid}: the target class "
                f"{_named(xmi, target_eaid)} is an entity of no register's XSD",
                f"point the association's target end and connector at the entity's EAID as its "
                f"register's XSD writes it in xs:appinfo, or deliver that register's XSD with "
                f"<xs:appinfo>{target_eaid}</xs:appinfo>",
            )
    multiplicity, said = _target_multiplicity(target_end, connector.target if connector else None)
    if not target_problem and not multiplicity.usable:
        ok = False
        report.error(
            xmi_file,
            UNDEFINED_MULTIPLICITY,
            f"association {eaid}: the target end has no usable multiplicity ({said}), so "
            "ToManyRelation cannot be set",
            f"give association {eaid}'s target end a multiplicity (1, 0..1, 0..* or 1..*): "
            "upperValue on its ownedEnd EAID_dst… and type/@multiplicity on its connector's "
            "<target>",
        )
    if not ok or source is None or target is None:
        return None
    alias = association.name or (connector.name if connector else "")
    if not alias:
        report.warning(
            xmi_file,
            UNNAMED_ASSOCIATION,
            f"association {eaid} from {source.name} to {target.entity} has no name (neither "
            "the packagedElement's name nor the connector's label), so its Alias is left empty",
            f"name association {eaid} in the logical model; until then, once SourceField and "
            "TargetField are filled in, the validator names the relation "
            "{SourceField}_{TargetRc}_{TargetEntity}_{TargetField}_ref",
        )
    relation = {
        "SourceEntity": source.name,
        "SourceField": "",
        "TargetRc": rc_number(target.rc),
        "TargetRcVersion": target.major,
        "TargetEntity": target.entity,
        "TargetField": "",
        "ToManyRelation": multiplicity.many,
        "Alias": alias,
    }
    return relation, target


def _target_multiplicity(
    end: XmiEnd | None, connector: Multiplicity | None
) -> tuple[Multiplicity, str]:
    """The target end's multiplicity: the ownedEnd's upperValue, else the connector's text."""
    own = end.multiplicity if end is not None else Multiplicity()
    shown = f"ownedEnd: {own.text or 'no upperValue'}"
    if own.problem:
        return own, f"{shown}, {own.problem}"
    if own.stated:
        return own, shown
    via = connector or Multiplicity()
    shown += f"; connector target: {via.text or 'no multiplicity'}"
    if via.problem:
        shown += f", {via.problem}"
    return via, shown


def _named(xmi: XmiModel, eaid: str) -> str:
    name = xmi.name_of(eaid)
    return name if name else "(no element of the XMI)"


# --------------------------------------------------------------------------- XSD ↔ XMI


def own_classes(register: str, xsd_model: Datamodel, xmi: XmiModel) -> tuple[XmiClass, ...]:
    """The XMI classes that are the register's own, for the consistency check.

    Own are: the classes whose EAID is an entity of the register's XSD; the classes of a
    package named like the register (sub-packages included); and, when no package is named so,
    the classes of the packages that hold the XSD's entities. Everything else is another
    register's (e.g. a class drawn only as an association's target) and is not compared.
    """
    eaids = {e.eaid for e in xsd_model.entities.values() if e.eaid}
    packages = _own_packages(register, xsd_model, xmi)
    return tuple(
        c
        for c in xmi.classes.values()
        if c.eaid in eaids or packages & {p.lower() for p in c.packages}
    )


def _own_packages(register: str, xsd_model: Datamodel, xmi: XmiModel) -> set[str]:
    """The (lower-cased) names of the register's own packages, see :func:`own_classes`."""
    named = {p.name.lower() for p in xmi.packages.values()}
    if register.lower() in named:
        return {register.lower()}
    eaids = {e.eaid for e in xsd_model.entities.values() if e.eaid}
    return {c.package.lower() for c in xmi.classes.values() if c.eaid in eaids and c.package}


def own_enumerations(
    register: str, xsd_model: Datamodel, xmi: XmiModel
) -> tuple[XmiEnumeration, ...]:
    """The XMI enumerations that are the register's own: of its own packages (see
    :func:`own_classes`) or typing an attribute of one of its own classes."""
    packages = _own_packages(register, xsd_model, xmi)
    used = {a.type_ref for c in own_classes(register, xsd_model, xmi) for a in c.attributes}
    return tuple(
        e
        for e in xmi.enumerations.values()
        if e.eaid in used or packages & {p.lower() for p in e.packages}
    )


def _same_name(xsd: str, xmi: str) -> bool:
    """XSD types are often the XMI's name with ``Type`` appended (``LivscyklusType``)."""
    return xsd == xmi or xsd == f"{xmi}Type" or xmi == f"{xsd}Type"


def check_consistency(
    register: str,
    xsd_model: Datamodel,
    xmi: XmiModel,
    report: Report,
    xsd_file: str,
    xmi_file: str,
) -> None:
    """Compare a register's XSD (physical) with its XMI (logical) by EAID.

    Errors: an XSD entity, field, code list or code without an EAID (no ``xs:appinfo``); an XSD
    entity whose EAID is no class of the XMI; a field whose EAID is no attribute of its class;
    a code list whose EAID is no enumeration, a code whose EAID is no literal of it. Warnings:
    an own XMI class (see :func:`own_classes`) or attribute of one, an own enumeration (see
    :func:`own_enumerations`), or a literal, that the XSD does not deliver; names that differ
    for the same EAID.
    """
    own = own_classes(register, xsd_model, xmi)
    seen_entities: set[str] = set()
    for entity in xsd_model.entities.values():
        if not entity.eaid:
            report.error(
                xsd_file,
                "Missing EAID",
                f"entity {entity.name} has no EAID (no <xs:appinfo>EAID_…</xs:appinfo> in its "
                "type's annotation)",
                f"write the EAID of class {entity.name} from the XMI into the xs:annotation of "
                f"its complexType as <xs:appinfo>EAID_…</xs:appinfo>",
            )
        else:
            seen_entities.add(entity.eaid)
            cls = xmi.class_(entity.eaid)
            if cls is None:
                report.error(
                    xsd_file,
                    "Entity missing in XMI",
                    f"entity {entity.name} ({entity.eaid}) is no class of the XMI",
                    f"correct the EAID in {entity.name}'s xs:appinfo to the class's EAID in the "
                    f"XMI, or add class {entity.name} to the logical model and export it again",
                )
            else:
                if not _same_name(entity.name, cls.name):
                    report.warning(
                        xsd_file,
                        "Entity name differs from XMI",
                        f"entity {entity.name} ({entity.eaid}) is called {cls.name} in the XMI",
                        "use one name in both models (rename the XSD element or the class)",
                    )
                _check_fields(entity, cls, xmi, report, xsd_file, xmi_file)
    for cls in own:
        if cls.eaid not in seen_entities and cls.attributes:
            report.warning(
                xmi_file,
                "Class missing in XSD",
                f"class {cls.name} ({cls.eaid}) of package {cls.package or '(none)'} is no "
                "entity of the XSD: it is not delivered, and relations to it are left out",
                f"add {cls.name} to the XSD with <xs:appinfo>{cls.eaid}</xs:appinfo>, or "
                "remove it from the logical model if it is not delivered",
            )
    _check_codelists(xsd_model, xmi, report, xsd_file, xmi_file)
    delivered = {c.eaid for c in _codelists(xsd_model) if c.eaid}
    for enum in own_enumerations(register, xsd_model, xmi):
        if enum.eaid not in delivered:
            report.warning(
                xmi_file,
                "Code list missing in XSD",
                f"enumeration {enum.name} ({enum.eaid}) of package {enum.package or '(none)'} is "
                "no code list of the XSD: its values are not checked, and fields of its type "
                "are plain text",
                f"add a simpleType with <xs:appinfo>{enum.eaid}</xs:appinfo> and its literals "
                "as xs:enumeration to the XSD, and type the fields by it; or remove the "
                "enumeration from the logical model if it is not delivered",
            )


def _check_fields(
    entity: Entity,
    cls: XmiClass,
    xmi: XmiModel,
    report: Report,
    xsd_file: str,
    xmi_file: str,
) -> None:
    seen: set[str] = set()
    for item in entity.fields:
        if not item.eaid:
            report.error(
                xsd_file,
                "Missing EAID",
                f"field {entity.name}.{item.source} has no EAID (no "
                "<xs:appinfo>EAID_…</xs:appinfo> in its element's annotation)",
                f"write the EAID of attribute {cls.name}.{item.source} from the XMI into the "
                "element's xs:annotation as <xs:appinfo>EAID_…</xs:appinfo>",
            )
            continue
        seen.add(item.eaid)
        attr = cls.attribute(item.eaid)
        if attr is None:
            elsewhere = xmi.attribute(item.eaid)
            where = f"an attribute of class {elsewhere[0].name}" if elsewhere else "no attribute"
            report.error(
                xsd_file,
                "Field missing in XMI",
                f"field {entity.name}.{item.source} ({item.eaid}) is {where} of the XMI, not one "
                f"of class {cls.name} ({cls.eaid})",
                f"correct the field's xs:appinfo to the EAID of attribute "
                f"{cls.name}.{item.source} in the XMI, or add the attribute to the class",
            )
            continue
        if attr.name != item.source:
            report.warning(
                xsd_file,
                "Field name differs from XMI",
                f"field {entity.name}.{item.source} ({item.eaid}) is called {cls.name}."
                f"{attr.name} in the XMI",
                "use one name in both models (rename the XSD element or the attribute)",
            )
        enum = xmi.enumeration(attr.type_ref)
        if enum is not None and item.codes is not None and item.codes.eaid != enum.eaid:
            report.error(
                xsd_file,
                "Code list differs from XMI",
                f"field {entity.name}.{item.source} ({item.eaid}) draws its codes from "
                f"{item.codes.name} ({item.codes.eaid or 'no EAID'}), the XMI from enumeration "
                f"{enum.name} ({enum.eaid})",
                f"give the field's type the code list of enumeration {enum.name}",
            )
    for attr in cls.attributes:
        if attr.eaid not in seen:
            report.warning(
                xmi_file,
                "Attribute missing in XSD",
                f"attribute {cls.name}.{attr.name} ({attr.eaid}) is no field of entity "
                f"{entity.name} in the XSD: it is not delivered",
                f"add element {attr.name} with <xs:appinfo>{attr.eaid}</xs:appinfo> to "
                f"{entity.name}'s type, or remove the attribute from the logical model",
            )


def _codelists(model: Datamodel) -> list[CodeList]:
    found: dict[tuple[str, str], CodeList] = {}
    for codes in model.codelists.values():
        found.setdefault((codes.name, codes.eaid), codes)
    for entity in model.entities.values():
        for item in entity.fields:
            if item.codes is not None:
                found.setdefault((item.codes.name, item.codes.eaid), item.codes)
    return sorted(found.values(), key=lambda c: (c.name, c.eaid))


def _check_codelists(
    model: Datamodel, xmi: XmiModel, report: Report, xsd_file: str, xmi_file: str
) -> None:
    for codes in _codelists(model):
        if not codes.eaid:
            report.error(
                xsd_file,
                "Missing EAID",
                f"code list {codes.name} has no EAID (no <xs:appinfo>EAID_…</xs:appinfo> in "
                "its simpleType's annotation)",
                "write the EAID of the matching enumeration from the XMI into the simpleType's "
                "xs:annotation",
            )
            continue
        enum = xmi.enumeration(codes.eaid)
        if enum is None:
            report.error(
                xsd_file,
                "Code list missing in XMI",
                f"code list {codes.name} ({codes.eaid}) is no enumeration of the XMI",
                f"correct {codes.name}'s xs:appinfo to the enumeration's EAID in the XMI, or "
                "add the enumeration to the logical model",
            )
            continue
        if not _same_name(codes.name, enum.name):
            report.warning(
                xsd_file,
                "Code list name differs from XMI",
                f"code list {codes.name} ({codes.eaid}) is called {enum.name} in the XMI",
                "use one name in both models",
            )
        seen: set[str] = set()
        for code in codes.codes:
            if not code.eaid:
                report.error(
                    xsd_file,
                    "Missing EAID",
                    f"code {code.value!r} of {codes.name} has no EAID (no xs:appinfo in its "
                    "xs:enumeration's annotation)",
                    f"write the EAID of literal {code.value!r} of enumeration {enum.name} "
                    "into the xs:enumeration's xs:annotation",
                )
                continue
            seen.add(code.eaid)
            literal = enum.literal(code.eaid)
            if literal is None:
                report.error(
                    xsd_file,
                    "Code missing in XMI",
                    f"code {code.value!r} of {codes.name} ({code.eaid}) is no literal of "
                    f"enumeration {enum.name} ({enum.eaid})",
                    f"correct the code's xs:appinfo to the literal's EAID, or add literal "
                    f"{code.value!r} to enumeration {enum.name} in the logical model",
                )
            elif literal.name != code.value:
                report.warning(
                    xsd_file,
                    "Code value differs from XMI",
                    f"code {code.value!r} of {codes.name} ({code.eaid}) is {literal.name!r} in "
                    "the XMI",
                    "use one value in both models",
                )
        for literal in enum.literals:
            if literal.eaid not in seen:
                report.warning(
                    xmi_file,
                    "Code missing in XSD",
                    f"literal {literal.name!r} ({literal.eaid}) of enumeration {enum.name} is no "
                    f"code of {codes.name} in the XSD: the XSD refuses this value",
                    f"add <xs:enumeration value={literal.name!r}> with "
                    f"<xs:appinfo>{literal.eaid}</xs:appinfo> to {codes.name}, or remove the "
                    "literal from the logical model",
                )
