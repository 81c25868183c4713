"""Datamodel from an OData v3 CSDL document (EDMX 1.0, as ``$metadata`` serves it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree

from gateway.model.datamodel import Datamodel, Entity, Field, NavigationProperty, ScalarType
from gateway.model.errors import DescriptorError
from gateway.model.naming import type_name, unique_names

__all__ = ["EDM_TYPES", "load_edmx", "parse_edmx"]

EDM_TYPES: dict[str, ScalarType] = {
    "Edm.String": ScalarType.STRING,
    "Edm.Guid": ScalarType.STRING,
    "Edm.Boolean": ScalarType.BOOLEAN,
    "Edm.Byte": ScalarType.INT,
    "Edm.SByte": ScalarType.INT,
    "Edm.Int16": ScalarType.INT,
    "Edm.Int32": ScalarType.INT,
    "Edm.Int64": ScalarType.LONG,
    "Edm.Single": ScalarType.FLOAT,
    "Edm.Double": ScalarType.FLOAT,
    "Edm.Decimal": ScalarType.FLOAT,
    "Edm.DateTime": ScalarType.DATETIME,
    "Edm.DateTimeOffset": ScalarType.DATETIME,
    "Edm.Time": ScalarType.STRING,
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(node: Element, name: str) -> list[Element]:
    return [child for child in node if _local(child.tag) == name]


def _descendants(node: Element, name: str) -> list[Element]:
    return [child for child in node.iter() if _local(child.tag) == name]


def _strip_prefix(text: str) -> str:
    # Recorded copies may carry a comment before the XML declaration; the parser rejects it.
    start = text.find("<?xml")
    return text[start:] if start > 0 else text


def parse_edmx(text: str, register: str) -> Datamodel:
    """Parse an EDMX document into entities (one per EntitySet) and navigation properties."""
    try:
        root = ElementTree.fromstring(_strip_prefix(text).encode("utf-8"))
    except Exception as exc:  # defusedxml raises several unrelated types
        raise DescriptorError(f"the EDMX document is not well-formed XML: {exc}") from exc
    types = {et.get("Name", ""): et for et in _descendants(root, "EntityType")}
    associations = {a.get("Name", ""): a for a in _descendants(root, "Association")}
    sets = [(s.get("Name", ""), s.get("EntityType", "")) for s in _descendants(root, "EntitySet")]
    if not sets:
        sets = [(name, name) for name in types]
    type_to_set = {qualified.rsplit(".", 1)[-1]: name for name, qualified in sets}

    entities: dict[str, Entity] = {}
    navigation: list[NavigationProperty] = []
    for set_name, qualified in sets:
        entity_type = types.get(qualified.rsplit(".", 1)[-1])
        if entity_type is None:
            raise DescriptorError(f"EntitySet {set_name!r} names unknown EntityType {qualified!r}")
        entities[set_name] = _entity(register, set_name, entity_type)
        for nav in _children(entity_type, "NavigationProperty"):
            navigation.append(_navigation(set_name, nav, associations, type_to_set))
    return Datamodel(entities=entities, navigation=tuple(navigation))


def _entity(register: str, name: str, node: Element) -> Entity:
    props = _children(node, "Property")
    sources = [p.get("Name", "") for p in props]
    names = unique_names(sources)
    fields: list[Field] = []
    for prop, gql in zip(props, names, strict=True):
        edm = prop.get("Type", "Edm.String")
        fields.append(
            Field(
                name=gql,
                source=prop.get("Name", ""),
                type=EDM_TYPES.get(edm, ScalarType.STRING),
                nullable=prop.get("Nullable", "true").lower() != "false",
                description=f"{prop.get('Name')} ({edm})",
            )
        )
    by_source = dict(zip(sources, names, strict=True))
    key = tuple(
        by_source[ref.get("Name", "")]
        for k in _children(node, "Key")
        for ref in _children(k, "PropertyRef")
        if ref.get("Name", "") in by_source
    )
    if not key:
        raise DescriptorError(f"EntityType {name!r} declares no key")
    return Entity(
        register=register,
        name=name,
        graphql_name=type_name(register, name),
        fields=tuple(fields),
        key=key,
        description=f"{name} (OData entity set)",
    )


def _navigation(
    entity: str, nav: Element, associations: dict[str, Element], type_to_set: dict[str, str]
) -> NavigationProperty:
    relationship = nav.get("Relationship", "").rsplit(".", 1)[-1]
    to_role = nav.get("ToRole", "")
    association = associations.get(relationship)
    if association is None:
        raise DescriptorError(f"{entity}.{nav.get('Name')}: unknown association {relationship!r}")
    end = next((e for e in _children(association, "End") if e.get("Role") == to_role), None)
    if end is None:
        raise DescriptorError(f"{entity}.{nav.get('Name')}: association has no role {to_role!r}")
    target_type = end.get("Type", "").rsplit(".", 1)[-1]
    return NavigationProperty(
        source_entity=entity,
        name=nav.get("Name", ""),
        target_entity=type_to_set.get(target_type, target_type),
        to_many=end.get("Multiplicity") == "*",
    )


def load_edmx(path: Path, register: str, options: Mapping[str, Any]) -> Datamodel:
    """Load the EDMX file at ``path``."""
    return parse_edmx(path.read_text(encoding="utf-8"), register)
