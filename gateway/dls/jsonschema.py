"""Datamodel loader for an upstream's own JSON Schema files (draft-04), e.g. VALG's.

The VALG solution publishes ``Snitfladebeskrivelser/**/*.schema.json``: one schema per dataset
and election kind (FV, KV/RV, EV, FA shapes), Windows-1252 encoded, with local ``$ref``s into
``definitions``. This loader turns a configured set of *documents* (one entity per dataset,
built from the union of its shapes) into entities:

- scalar properties become fields (nested objects are flattened: ``Afstemningssted.Navn``);
- every array property becomes an entity of its own, named ``{Parent}_{Property}`` unless
  renamed (several arrays may be renamed to one entity, e.g. all candidate arrays to
  ``Kandidat``), with a generated reference to its parent; arrays of scalars become entities
  with one value field;
- a child inherits the fields its configuration lists from its ancestors (``inherit``: array
  path relative to the document, ``""`` for the document itself, to source field names), so
  that e.g. a candidate row carries its party letter and storkreds;
- configured synthetic fields (``commonFields``, ``documentFields``, ``childFields``) are
  added first, and ``extraEntities`` are declared field by field (the former snake_case
  spellings, ``common_fields`` …, are still read).

The loader reads only the datamodel block; where each entity's rows live in a document is the
adapter's reading of the same block (VALG: :mod:`resolvers.valg_sftp.options`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.model.datamodel import Datamodel, Entity, Field, ScalarType
from gateway.model.errors import DescriptorError
from gateway.model.naming import type_name, unique_names
from gateway.sources.options import respelled

__all__ = ["SPELLINGS", "load_json_schemas", "renamed_paths", "split_path"]

# Older spellings of the options, still read: old -> name.
SPELLINGS = {
    "common_fields": "commonFields",
    "document_fields": "documentFields",
    "child_fields": "childFields",
    "extra_entities": "extraEntities",
}
_DOCUMENT_SPELLINGS = {"value_field": "valueField"}

_SEPARATOR = "_"
_TYPES = {"integer": ScalarType.INT, "number": ScalarType.FLOAT, "boolean": ScalarType.BOOLEAN}
_FORMATS = {
    "date": ScalarType.DATE,
    "date-time": ScalarType.DATETIME,
    # VALG's "time" values are local wall-clock times of the election day; the adapter
    # combines them with the day into a full timestamp.
    "time": ScalarType.DATETIME,
    "int64": ScalarType.LONG,
}


@dataclass
class _FieldInfo:
    type: ScalarType
    nullable: bool
    description: str
    shapes: int = 1


@dataclass
class _EntityInfo:
    name: str
    document: str
    is_child: bool
    description: str
    shapes: int = 0
    own: dict[str, _FieldInfo] = field(default_factory=dict)
    inherited: dict[str, _FieldInfo] = field(default_factory=dict)
    paths: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)


def load_json_schemas(path: Path, register: str, options: Mapping[str, Any]) -> Datamodel:
    """Build the datamodel from the schema folder ``path`` as ``options`` configure it."""
    options = respelled(options, SPELLINGS)
    encoding = str(options.get("encoding", "cp1252"))
    builders: dict[str, _EntityInfo] = {}
    for spec in _documents(options):
        schemas = spec.get("schemas") or []
        if not schemas:
            raise DescriptorError(f"jsonschema: document {spec['name']!r} names no schemas")
        for rel in schemas:
            schema = _read_schema(path / rel, encoding)
            _Walker(schema, spec, builders, rel).walk_document()
    entities = {name: _entity(register, info, options) for name, info in sorted(builders.items())}
    for extra in options.get("extraEntities", ()):
        entities[extra["name"]] = _extra_entity(register, extra, options)
    return Datamodel(entities=entities)


def _documents(options: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    documents = options.get("documents")
    if not isinstance(documents, list):
        raise DescriptorError("jsonschema: the datamodel options need a 'documents' list")
    return documents


def renamed_paths(options: Mapping[str, Any]) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """The entities the ``rename`` blocks of the documents name: entity -> (document, path)."""
    out: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for spec in _documents(options):
        for path, target in spec.get("rename", {}).items():
            out.setdefault(str(target), []).append((str(spec["name"]), split_path(path)))
    return out


def split_path(text: str) -> tuple[str, ...]:
    """``"a/b/"`` -> ``("a", "b")``: a path into a document, as the options write it."""
    return tuple(part for part in text.split("/") if part)


def _read_schema(file: Path, encoding: str) -> Mapping[str, Any]:
    try:
        # VALG writes its schemas in Windows-1252, not UTF-8 (the ``encoding`` option, cp1252
        # by default): Danish letters in descriptions and enums would not decode otherwise.
        text = file.read_bytes().decode(encoding)
        schema = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DescriptorError(f"jsonschema: cannot read {file}: {exc}") from exc
    if not isinstance(schema, dict):
        raise DescriptorError(f"jsonschema: {file} is not a JSON object")
    return schema


class _Walker:
    """Walks one schema file of one document and records entities and fields."""

    def __init__(
        self,
        schema: Mapping[str, Any],
        spec: Mapping[str, Any],
        builders: dict[str, _EntityInfo],
        source: str,
    ) -> None:
        self.schema = schema
        self.document = str(spec["name"])
        self.rename: Mapping[str, str] = spec.get("rename", {})
        self.inherit = {split_path(k): list(v) for k, v in spec.get("inherit", {}).items()}
        self.value_field = str(respelled(spec, _DOCUMENT_SPELLINGS).get("valueField", "Vaerdi"))
        self.builders = builders
        self.source = source

    def resolve(self, node: Any, depth: int = 0) -> Mapping[str, Any]:
        """Follow local ``$ref`` and single-branch ``oneOf``/``allOf`` to the real node."""
        if depth > 32:
            raise DescriptorError(f"jsonschema: $ref cycle in {self.source}")
        if not isinstance(node, Mapping):
            raise DescriptorError(f"jsonschema: unexpected schema node in {self.source}")
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                raise DescriptorError(f"jsonschema: only local $ref supported ({ref})")
            target: Any = self.schema
            for part in ref[2:].split("/"):
                if not isinstance(target, Mapping) or part not in target:
                    raise DescriptorError(f"jsonschema: unresolved $ref {ref} in {self.source}")
                target = target[part]
            merged = {**self.resolve(target, depth + 1)}
            if "description" in node:
                merged["description"] = node["description"]
            return merged
        for combinator in ("oneOf", "allOf", "anyOf"):
            branches = node.get(combinator)
            if isinstance(branches, list) and len(branches) == 1:
                merged = {**self.resolve(branches[0], depth + 1)}
                if "description" in node:
                    merged["description"] = node["description"]
                return merged
        return node

    def walk_document(self) -> None:
        """Record the document entity and, below it, one entity per array."""
        root = self.resolve(self.schema)
        description = str(self.schema.get("title", self.document))
        if _is_array(root):
            # Geografi files are arrays of flat objects: one row per element.
            root = self.resolve(root.get("items", {}))
        info = self._entity(self.document, (), is_child=False, description=description)
        self._walk_object(info, root, (), {})

    def _entity(
        self, name: str, path: tuple[str, ...], *, is_child: bool, description: str
    ) -> _EntityInfo:
        info = self.builders.get(name)
        if info is None:
            info = _EntityInfo(name, self.document, is_child, description)
            self.builders[name] = info
        if (self.document, path) not in info.paths:
            info.paths.append((self.document, path))
        info.shapes += 1
        return info

    def _walk_object(
        self,
        info: _EntityInfo,
        node: Mapping[str, Any],
        path: tuple[str, ...],
        inherited: dict[str, _FieldInfo],
    ) -> None:
        required = set(node.get("required", ()))
        own: dict[str, _FieldInfo] = {}
        arrays: list[tuple[str, Mapping[str, Any]]] = []
        self._collect(node, "", required, own, arrays)
        for name, fi in own.items():
            _merge(info.own, name, fi)
        for name, fi in inherited.items():
            _merge(info.inherited, name, fi)
        handed_down = dict(inherited)
        for name in self.inherit.get(path, ()):
            if name in own:
                handed_down[name] = _FieldInfo(own[name].type, True, own[name].description)
        for prop, array in arrays:
            self._walk_array(info, prop, array, path, handed_down)

    def _walk_array(
        self,
        parent: _EntityInfo,
        prop: str,
        array: Mapping[str, Any],
        path: tuple[str, ...],
        inherited: dict[str, _FieldInfo],
    ) -> None:
        child_path = (*path, prop)
        name = self.rename.get("/".join(child_path))
        if name is None:
            if _SEPARATOR in prop:
                raise DescriptorError(
                    f"jsonschema: array {prop!r} of {parent.name} contains {_SEPARATOR!r}; "
                    "give it a name in 'rename'"
                )
            name = f"{parent.name}{_SEPARATOR}{prop}"
        description = str(array.get("description", "")) or f"{parent.name}.{prop}"
        child = self._entity(name, child_path, is_child=True, description=description)
        items = self.resolve(array.get("items", {}))
        if _is_object(items):
            self._walk_object(child, items, child_path, inherited)
            return
        # An array of scalars (e.g. a list of ids): one row per value.
        value = _scalar(items, nullable=False)
        _merge(child.own, self.value_field, value)
        for fname, fi in inherited.items():
            _merge(child.inherited, fname, fi)

    def _collect(
        self,
        node: Mapping[str, Any],
        prefix: str,
        required: set[str],
        own: dict[str, _FieldInfo],
        arrays: list[tuple[str, Mapping[str, Any]]],
    ) -> None:
        properties = node.get("properties", {})
        for prop, raw in properties.items():
            sub = self.resolve(raw)
            if _is_array(sub):
                if prefix:
                    raise DescriptorError(
                        f"jsonschema: array {prefix}{prop} inside an object is not supported"
                    )
                arrays.append((prop, sub))
            elif _is_object(sub):
                inner_required = set(sub.get("required", ()))
                nested: dict[str, _FieldInfo] = {}
                self._collect(sub, f"{prefix}{prop}.", inner_required, nested, arrays)
                optional = prop not in required or "null" in _types(sub)
                for name, fi in nested.items():
                    own[name] = _FieldInfo(fi.type, fi.nullable or optional, fi.description)
            else:
                own[f"{prefix}{prop}"] = _scalar(sub, nullable=prop not in required)


def _types(node: Mapping[str, Any]) -> list[str]:
    raw = node.get("type")
    if isinstance(raw, list):
        return [str(t) for t in raw]
    return [str(raw)] if raw is not None else []


def _is_array(node: Mapping[str, Any]) -> bool:
    return "array" in _types(node)


def _is_object(node: Mapping[str, Any]) -> bool:
    return "object" in _types(node) or (not _types(node) and "properties" in node)


def _scalar(node: Mapping[str, Any], *, nullable: bool) -> _FieldInfo:
    types = [t for t in _types(node) if t != "null"]
    base = types[0] if types else "string"
    kind = _TYPES.get(base, ScalarType.STRING)
    fmt = str(node.get("format", ""))
    if base == "string" and fmt in _FORMATS:
        kind = _FORMATS[fmt]
    elif base == "integer" and fmt == "int64":
        kind = ScalarType.LONG
    description = str(node.get("description", ""))
    if "enum" in node:
        values = ", ".join(str(v) for v in node["enum"])
        description = f"{description} ({values})" if description else values
    return _FieldInfo(kind, nullable or "null" in _types(node), description)


def _merge(target: dict[str, _FieldInfo], name: str, new: _FieldInfo) -> None:
    old = target.get(name)
    if old is None:
        target[name] = _FieldInfo(new.type, new.nullable, new.description)
        return
    old.type = _wider(old.type, new.type)
    old.nullable = old.nullable or new.nullable
    old.description = old.description or new.description
    old.shapes += 1


def _wider(a: ScalarType, b: ScalarType) -> ScalarType:
    if a is b:
        return a
    numbers = {ScalarType.INT, ScalarType.LONG, ScalarType.FLOAT}
    if a in numbers and b in numbers:
        return ScalarType.FLOAT if ScalarType.FLOAT in (a, b) else ScalarType.LONG
    # Shapes disagree (e.g. an id that is a number in one file kind and text in another):
    # text holds both without loss.
    return ScalarType.STRING


def _synthetic(specs: Iterable[Mapping[str, Any]]) -> list[tuple[str, _FieldInfo]]:
    out = []
    for spec in specs:
        kind = ScalarType(spec.get("type", "String"))
        nullable = bool(spec.get("nullable", True))
        out.append(
            (str(spec["name"]), _FieldInfo(kind, nullable, str(spec.get("description", ""))))
        )
    return out


def _entity(register: str, info: _EntityInfo, options: Mapping[str, Any]) -> Entity:
    specs = list(options.get("commonFields", ()))
    specs += list(options.get("childFields" if info.is_child else "documentFields", ()))
    columns = _synthetic(specs)
    taken = {name for name, _ in columns}
    for name, fi in info.own.items():
        if name in taken:
            continue
        # A property missing from some shapes of the entity may be absent from a row.
        nullable = fi.nullable or fi.shapes < info.shapes
        columns.append((name, _FieldInfo(fi.type, nullable, fi.description)))
        taken.add(name)
    for name, fi in info.inherited.items():
        if name not in taken:
            columns.append((name, _FieldInfo(fi.type, True, fi.description)))
            taken.add(name)
    return _make_entity(register, info.name, columns, info.description, options)


def _extra_entity(register: str, spec: Mapping[str, Any], options: Mapping[str, Any]) -> Entity:
    columns = _synthetic(spec.get("fields", ()))
    merged = {**options, "key": spec.get("key", options.get("key", ()))}
    return _make_entity(
        register, str(spec["name"]), columns, str(spec.get("description", "")), merged
    )


def _make_entity(
    register: str,
    name: str,
    columns: list[tuple[str, _FieldInfo]],
    description: str,
    options: Mapping[str, Any],
) -> Entity:
    names = unique_names([source for source, _ in columns])
    fields = tuple(
        Field(
            name=gql,
            source=source,
            type=fi.type,
            nullable=fi.nullable,
            description=fi.description,
        )
        for gql, (source, fi) in zip(names, columns, strict=True)
    )
    key = tuple(str(k) for k in options.get("key", ()))
    known = {f.name for f in fields}
    missing = [k for k in key if k not in known]
    if missing:
        raise DescriptorError(f"jsonschema: key field(s) {missing} missing from entity {name}")
    return Entity(
        register=register,
        name=name,
        graphql_name=type_name(register, name),
        fields=fields,
        key=key,
        description=description,
    )
