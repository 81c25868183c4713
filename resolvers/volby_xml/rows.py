"""From a parsed volby.cz document to rows of the register's entities.

The mapping follows the conventions of the XSD loader (:mod:`gateway.dls.xsd`): an element
named like an entity starts a row; attributes of other elements inside it are flattened into it;
attributes of elements above every entity (the document root) reach the top-level rows; a child
row carries its parent's key fields and the parent's ``{PARENT}_ID``. Values are converted to the
field's scalar kind; timestamps without a zone are Czech local time.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.model.datamodel import Datamodel, Entity, Field, ScalarType
from gateway.model.errors import UpstreamInvalidError
from gateway.model.keys import join_key, reference_source
from gateway.model.query import Row
from resolvers.volby_xml.parse import (
    Chyba,
    error_of,
    generated_at,
    local_name,
    parse_xml,
    prague_iso,
)

__all__ = ["MappedDocument", "convert", "map_element", "read_document"]

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})
_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%d.%m.%Y")


@dataclass(frozen=True, slots=True)
class MappedDocument:
    """One upstream response: its rows per entity (source name), or the error it reports."""

    root: str
    generated: str | None
    rows: Mapping[str, tuple[Row, ...]]
    error: Chyba | None = None

    def of(self, entity: str) -> tuple[Row, ...]:
        """The rows of one entity (empty if the document has none)."""
        return self.rows.get(entity, ())


def read_document(data: bytes, datamodel: Datamodel, context: Mapping[str, Any]) -> MappedDocument:
    """Parse a response and map it to rows; an error document comes back as ``error``."""
    root = parse_xml(data)
    name = local_name(root.tag)
    generated = generated_at({local_name(k): v for k, v in root.attrib.items()})
    error = error_of(root)
    if error is not None:
        return MappedDocument(name, generated, {}, error)
    if generated is not None:
        # Both timestamp styles reach the rows as one ISO 8601 value.
        root.set("DATUM_CAS_GENEROVANI", generated)
    return MappedDocument(name, generated, map_element(root, datamodel, context))


def map_element(
    root: ET.Element, datamodel: Datamodel, context: Mapping[str, Any]
) -> dict[str, tuple[Row, ...]]:
    """Rows per entity (source name) of the document under ``root``, in document order."""
    mapper = _Mapper(datamodel.entities)
    mapper.visit(root, None, {})
    out: dict[str, list[Row]] = {}
    for node in mapper.nodes:
        node.row = _row(node, context)
        out.setdefault(node.entity.name, []).append(node.row)
    return {name: tuple(rows) for name, rows in out.items()}


@dataclass(eq=False)
class _Node:
    entity: Entity
    raw: dict[str, str]
    parent: _Node | None
    row: Row = field(default_factory=dict)


class _Mapper:
    def __init__(self, entities: Mapping[str, Entity]) -> None:
        self.entities = entities
        self.nodes: list[_Node] = []

    def visit(self, element: ET.Element, parent: _Node | None, pushed: dict[str, str]) -> None:
        attributes = {local_name(k): v for k, v in element.attrib.items()}
        entity = self.entities.get(local_name(element.tag))
        if entity is not None:
            raw = {**pushed, **attributes} if parent is None else attributes
            node = _Node(entity, raw, parent)
            self.nodes.append(node)
            for child in element:
                self.visit(child, node, {})
        elif parent is not None:
            for key, value in attributes.items():
                parent.raw.setdefault(key, value)
            for child in element:
                self.visit(child, parent, {})
        else:
            merged = {**pushed, **attributes}
            for child in element:
                self.visit(child, None, merged)


def _row(node: _Node, context: Mapping[str, Any]) -> Row:
    entity = node.entity
    row: Row = {f.name: None for f in entity.fields}
    for f in entity.fields:
        if f.source in node.raw:
            row[f.name] = convert(node.raw[f.source], f, entity)
        elif f.source in context:
            row[f.name] = context[f.source]
    parent = node.parent
    if parent is not None:
        _inherit(row, entity, parent)
    own = entity.by_source.get(reference_source(entity.name))
    if own is not None:
        row[own.name] = join_key(row.get(k) for k in entity.key)
    return row


def _inherit(row: Row, entity: Entity, parent: _Node) -> None:
    reference = reference_source(parent.entity.name)
    parent_ref = parent.entity.by_source.get(reference)
    if parent_ref is None and len(parent.entity.key) != 1:
        return  # a parent without a usable key passes nothing down
    for key in parent.entity.key:
        if key in entity.by_name and row.get(key) is None:
            row[key] = parent.row.get(key)
    child_ref = entity.by_source.get(reference)
    if parent_ref is not None and child_ref is not None:
        row[child_ref.name] = parent.row.get(parent_ref.name)


def convert(text: str, field: Field, entity: Entity) -> Any:
    """An attribute value as the field's scalar kind (empty text is null)."""
    value = text.strip()
    if field.type is ScalarType.STRING:
        return text
    if not value:
        return None
    try:
        return _CONVERTERS[field.type](value)
    except (ValueError, KeyError) as exc:
        raise UpstreamInvalidError(
            f"{entity.name}.{field.source}: {text!r} is not a valid {field.type.value}"
        ) from exc


def _boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(value)


def _date(value: str) -> str:
    for pattern in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(value, pattern).date().isoformat()
        except ValueError:
            continue
    raise ValueError(value)


def _datetime(value: str) -> str:
    try:
        return prague_iso(value)
    except UpstreamInvalidError as exc:
        raise ValueError(value) from exc


_CONVERTERS: dict[ScalarType, Any] = {
    ScalarType.INT: int,
    ScalarType.LONG: int,
    ScalarType.FLOAT: float,
    ScalarType.BOOLEAN: _boolean,
    ScalarType.DATE: _date,
    ScalarType.DATETIME: _datetime,
}
