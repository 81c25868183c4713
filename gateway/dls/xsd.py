"""XSD datamodel loader: elements, attributes, simple types, keys and keyrefs → a Datamodel.

DLS registers deliver their physical model as XSD. The loader reads one schema file or a folder
of them and turns element declarations into entities:

- An **entity** is an element named in the ``entities`` option (default: every element that can
  repeat). Its fields are its attributes.
- A non-entity element inside an entity that occurs at most once there (a wrapper such as
  ``VYSLEDEK`` or an info block such as ``ZASTUPIT_INFO``) is **flattened**: its attributes
  become fields of the enclosing entity and its child entities belong to the enclosing entity.
  A non-entity element that repeats inside an entity has no row of its own: its attributes are
  left out (name it in ``entities`` to keep them).
- The attributes of non-entity elements above every entity (the document root) are **pushed
  down** to the top-level entities, so that e.g. a generation timestamp reaches the rows.
- **Keys** come from ``xs:key`` (the attributes named by ``xs:field`` become the own key of the
  element the ``xs:selector`` picks, whatever element declares the key) or the ``keys``
  option; ``xs:unique`` only serves as a keyref target. An entity's full key is the
  context fields (values the adapter knows from the request, e.g. the election), then its parent
  entities' full keys, then its own key.
- **Nesting becomes relations.** A child entity carries its parent's key fields; when the
  parent's full key has more than one field, the parent gets a generated string field
  ``{PARENT}_ID`` (the key values joined by ``|``, see :func:`join_key`) and the child the same
  field referring to its nearest enclosing parent. Parent → child (to-many when the child can
  repeat) and child → parent (to-one) become :class:`NavigationProperty` entries, as does every
  single-field ``xs:keyref``. An entity without any key is keyed by all its fields and cannot be
  joined to its children: declare an ``xs:key`` or use the ``keys`` option.

Options (the ``datamodel`` block of ``Source.json``):

``files``            file name patterns inside the folder (default ``["*.xsd"]``)
``roots``            elements documents start with (default: global elements nobody refers to)
``entities``         element names that become entities
``ignore``           element names skipped with everything below them (e.g. an error element)
``contextFields``    ``[{"name", "type", "description", "entities", "key", "nullable"}]``
``keys``             ``{"ELEMENT": ["ATTR", ...]}`` own keys where the schema declares none
``types``            ``{"ATTR" or "ELEMENT.ATTR": "String"|"Int"|...}`` type overrides
``decimalIntegers``  ``xs:decimal`` restrictions without fraction digits are integers
``style``            ``"auto"`` (default), ``"attributes"`` or ``"dls"``: a schema in the DLS's
                     element-based style is read by :mod:`gateway.dls.dls_xsd`

The former snake_case spellings (``context_fields``, ``decimal_integers``) are still read.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.dls.dls_xsd import (
    XS,
    builtin_scalar,
    is_dls_style,
    load_dls_xsd,
    read_schema,
    schema_files,
)
from gateway.model.datamodel import Datamodel, Entity, Field, NavigationProperty, ScalarType
from gateway.model.errors import DescriptorError
from gateway.model.keys import KEY_SEPARATOR, reference_source
from gateway.model.naming import type_name, unique_names
from gateway.sources.options import respelled

__all__ = ["SPELLINGS", "load_xsd"]

# Older spellings of the options, still read: old -> name.
SPELLINGS = {"context_fields": "contextFields", "decimal_integers": "decimalIntegers"}

_UNBOUNDED = math.inf
_STYLES = ("auto", "dls", "attributes")


def load_xsd(path: Path, register: str, options: Mapping[str, Any]) -> Datamodel:
    """Load the XSD file or folder ``path`` as the datamodel of ``register``.

    Option ``style``: ``"attributes"`` reads the schema as described above, ``"dls"`` as the
    DLS's element-based style (:func:`gateway.dls.dls_xsd.load_dls_xsd`), ``"auto"`` (the
    default) the latter when :func:`gateway.dls.dls_xsd.is_dls_style` says so.
    """
    style = options.get("style", "auto")
    if style not in _STYLES:
        raise DescriptorError(
            f"invalid XSD datamodel options: style {style!r} is none of {', '.join(_STYLES)}"
        )
    files = options.get("files", ["*.xsd"])
    if style == "dls" or (style == "auto" and is_dls_style(path, files)):
        return load_dls_xsd(path, register, options)
    schema = _Schema(schema_files(path, files))
    walker = _Walker(schema, _Options.of(options))
    walker.walk()
    return _Builder(register, walker).build()


# --------------------------------------------------------------------------- schema documents


@dataclass
class _Doc:
    """One schema file: its tree, prefixes and global declarations."""

    path: Path
    root: ET.Element
    prefixes: dict[str, str]
    tables: dict[str, dict[str, ET.Element]] = field(default_factory=dict)
    includes: list[_Doc] = field(default_factory=list)


@dataclass(frozen=True)
class _Decl:
    """An element declaration in the document that declares it."""

    node: ET.Element
    doc: _Doc

    @property
    def name(self) -> str:
        return self.node.get("name", "")


@dataclass(frozen=True)
class _Attr:
    name: str
    type: ScalarType
    required: bool
    doc: str


_KINDS = ("element", "complexType", "simpleType", "group", "attributeGroup", "attribute")


class _Schema:
    """All schema files of a datamodel, with name lookup scoped per document."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.docs: dict[Path, _Doc] = {}
        for path in paths:
            self._read(path.resolve())
        self.order = list(self.docs.values())

    def _read(self, path: Path) -> _Doc:
        if path in self.docs:
            return self.docs[path]
        root, prefixes = read_schema(path)
        doc = _Doc(path, root, prefixes)
        doc.tables = {kind: {} for kind in _KINDS}
        for node in root:
            kind = _local(node.tag)
            if kind in doc.tables and node.get("name"):
                doc.tables[kind][node.get("name", "")] = node
        self.docs[path] = doc
        for node in root.findall(f"{{{XS}}}include") + root.findall(f"{{{XS}}}import"):
            location = node.get("schemaLocation")
            if location and (path.parent / location).is_file():
                doc.includes.append(self._read((path.parent / location).resolve()))
        return doc

    def lookup(self, kind: str, qname: str, doc: _Doc) -> tuple[ET.Element, _Doc] | None:
        """The global declaration ``qname`` of ``kind`` as seen from ``doc``."""
        name = qname.rpartition(":")[2]
        for scope in self._scopes(doc):
            node = scope.tables[kind].get(name)
            if node is not None:
                return node, scope
        return None

    def _scopes(self, doc: _Doc) -> Iterator[_Doc]:
        # A document sees its own declarations first, then what it includes, then the rest:
        # two schema files may declare the same element name differently.
        seen: set[Path] = set()
        stack = [doc]
        while stack:
            current = stack.pop(0)
            if current.path in seen:
                continue
            seen.add(current.path)
            yield current
            stack.extend(current.includes)
        for other in self.order:
            if other.path not in seen:
                yield other

    def is_builtin(self, qname: str, doc: _Doc) -> bool:
        prefix, _, _ = qname.rpartition(":")
        return doc.prefixes.get(prefix) == XS

    def referenced_elements(self) -> set[str]:
        """Local names of elements some declaration refers to with ``ref``."""
        return {
            node.get("ref", "").rpartition(":")[2]
            for doc in self.order
            for node in doc.root.iter(f"{{{XS}}}element")
            if node.get("ref")
        }


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _xs(node: ET.Element, *names: str) -> Iterator[ET.Element]:
    for child in node:
        if child.tag in {f"{{{XS}}}{n}" for n in names}:
            yield child


def _documentation(node: ET.Element) -> str:
    texts = [
        " ".join((d.text or "").split())
        for a in _xs(node, "annotation")
        for d in _xs(a, "documentation")
    ]
    return " ".join(t for t in texts if t)


def _occurs(node: ET.Element) -> tuple[int, float]:
    low = int(node.get("minOccurs", "1"))
    high_text = node.get("maxOccurs", "1")
    return low, _UNBOUNDED if high_text == "unbounded" else float(high_text)


# --------------------------------------------------------------------------- types


class _Types:
    """Simple types → scalar kinds, and complex types → attributes and child elements."""

    def __init__(self, schema: _Schema, options: _Options) -> None:
        self.schema = schema
        self.options = options

    def scalar(self, qname: str | None, inline: ET.Element | None, doc: _Doc) -> ScalarType:
        facets: dict[str, str] = {}
        builtin = self._base(qname, inline, doc, facets, depth=0)
        return self._refine(builtin, facets)

    def _base(
        self,
        qname: str | None,
        inline: ET.Element | None,
        doc: _Doc,
        facets: dict[str, str],
        depth: int,
    ) -> str:
        if depth > 32:
            return "string"
        if inline is None:
            if qname is None or self.schema.is_builtin(qname, doc):
                return (qname or "string").rpartition(":")[2]
            found = self.schema.lookup("simpleType", qname, doc)
            if found is None:
                return "string"
            inline, doc = found
        restriction = next(_xs(inline, "restriction"), None)
        if restriction is None:
            return "string"  # xs:list and xs:union come out as text
        for facet in restriction:
            name = _local(facet.tag)
            if name in ("totalDigits", "fractionDigits", "minInclusive", "maxInclusive"):
                facets.setdefault(name, facet.get("value", ""))
        nested = next(_xs(restriction, "simpleType"), None)
        return self._base(restriction.get("base"), nested, doc, facets, depth + 1)

    def _refine(self, builtin: str, facets: Mapping[str, str]) -> ScalarType:
        return builtin_scalar(builtin, facets, self.options.decimal_integers)

    def complex_type(self, decl: _Decl) -> tuple[ET.Element, _Doc] | None:
        inline = next(_xs(decl.node, "complexType"), None)
        if inline is not None:
            return inline, decl.doc
        qname = decl.node.get("type")
        if qname is None or self.schema.is_builtin(qname, decl.doc):
            return None
        return self.schema.lookup("complexType", qname, decl.doc)

    def attributes(self, decl: _Decl) -> list[_Attr]:
        found = self.complex_type(decl)
        if found is None:
            return []
        out: dict[str, _Attr] = {}
        self._collect_attributes(found[0], found[1], decl.name, out, depth=0)
        return list(out.values())

    def _collect_attributes(
        self, node: ET.Element, doc: _Doc, owner: str, out: dict[str, _Attr], depth: int
    ) -> None:
        if depth > 32:
            return
        for child in node:
            kind = _local(child.tag) if child.tag.startswith(f"{{{XS}}}") else ""
            if kind == "attribute":
                attr = self._attribute(child, doc, owner)
                if attr is not None:
                    out.setdefault(attr.name, attr)
            elif kind == "attributeGroup" and child.get("ref"):
                group = self.schema.lookup("attributeGroup", child.get("ref", ""), doc)
                if group is not None:
                    self._collect_attributes(group[0], group[1], owner, out, depth + 1)
            elif kind in ("simpleContent", "complexContent"):
                self._collect_attributes(child, doc, owner, out, depth + 1)
            elif kind in ("extension", "restriction"):
                # The base type's attributes come first, as in the derived type.
                base = child.get("base")
                if base and not self.schema.is_builtin(base, doc):
                    found = self.schema.lookup("complexType", base, doc)
                    if found is not None:
                        self._collect_attributes(found[0], found[1], owner, out, depth + 1)
                self._collect_attributes(child, doc, owner, out, depth + 1)

    def _attribute(self, node: ET.Element, doc: _Doc, owner: str) -> _Attr | None:
        if node.get("use") == "prohibited":
            return None
        required = node.get("use") == "required"
        if node.get("ref"):
            found = self.schema.lookup("attribute", node.get("ref", ""), doc)
            if found is None:
                return None
            node, doc = found
        name = node.get("name", "")
        override = self.options.type_override(owner, name)
        kind = override or self.scalar(node.get("type"), next(_xs(node, "simpleType"), None), doc)
        return _Attr(name, kind, required, _documentation(node))

    def children(self, decl: _Decl) -> list[tuple[_Decl, int, float]]:
        found = self.complex_type(decl)
        if found is None:
            return []
        out: list[tuple[_Decl, int, float]] = []
        self._particles(found[0], found[1], 1, 1.0, out, depth=0)
        return out

    def _particles(
        self,
        node: ET.Element,
        doc: _Doc,
        low: int,
        high: float,
        out: list[tuple[_Decl, int, float]],
        depth: int,
    ) -> None:
        if depth > 32:
            return
        for child in node:
            kind = _local(child.tag) if child.tag.startswith(f"{{{XS}}}") else ""
            if kind == "element":
                self._element_particle(child, doc, low, high, out)
            elif kind in ("sequence", "all", "choice"):
                c_low, c_high = _occurs(child)
                # Any branch of a choice may be absent.
                inner_low = 0 if kind == "choice" and len(list(child)) > 1 else low * c_low
                self._particles(child, doc, inner_low, high * c_high, out, depth + 1)
            elif kind == "group" and child.get("ref"):
                group = self.schema.lookup("group", child.get("ref", ""), doc)
                if group is not None:
                    g_low, g_high = _occurs(child)
                    self._particles(group[0], group[1], low * g_low, high * g_high, out, depth + 1)
            elif kind in ("complexContent", "extension", "restriction"):
                # An extension's content is the base type's content followed by its own.
                base = child.get("base") if kind == "extension" else None
                if base and not self.schema.is_builtin(base, doc):
                    found = self.schema.lookup("complexType", base, doc)
                    if found is not None:
                        self._particles(found[0], found[1], low, high, out, depth + 1)
                self._particles(child, doc, low, high, out, depth + 1)

    def _element_particle(
        self,
        node: ET.Element,
        doc: _Doc,
        low: int,
        high: float,
        out: list[tuple[_Decl, int, float]],
    ) -> None:
        e_low, e_high = _occurs(node)
        if node.get("ref"):
            found = self.schema.lookup("element", node.get("ref", ""), doc)
            if found is None:
                raise DescriptorError(f"{doc.path.name}: unknown element {node.get('ref')!r}")
            out.append((_Decl(found[0], found[1]), low * e_low, high * e_high))
        elif node.get("name"):
            out.append((_Decl(node, doc), low * e_low, high * e_high))


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class _ContextField:
    name: str
    type: ScalarType
    description: str
    entities: frozenset[str] | None
    key: bool
    nullable: bool

    def applies(self, entity: str) -> bool:
        return self.entities is None or entity in self.entities


@dataclass(frozen=True)
class _Options:
    roots: frozenset[str] | None
    entities: frozenset[str] | None
    ignore: frozenset[str]
    context: tuple[_ContextField, ...]
    keys: Mapping[str, tuple[str, ...]]
    types: Mapping[str, ScalarType]
    decimal_integers: bool

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> _Options:
        options = respelled(options, SPELLINGS)
        try:
            return cls(
                roots=_names(options.get("roots")),
                entities=_names(options.get("entities")),
                ignore=_names(options.get("ignore")) or frozenset(),
                context=tuple(_context_field(c) for c in options.get("contextFields", ())),
                keys={k: tuple(v) for k, v in dict(options.get("keys", {})).items()},
                types={k: ScalarType(v) for k, v in dict(options.get("types", {})).items()},
                decimal_integers=bool(options.get("decimalIntegers", False)),
            )
        except (TypeError, ValueError, KeyError) as exc:
            raise DescriptorError(f"invalid XSD datamodel options: {exc}") from exc

    def type_override(self, element: str, attribute: str) -> ScalarType | None:
        return self.types.get(f"{element}.{attribute}") or self.types.get(attribute)


def _names(value: Any) -> frozenset[str] | None:
    return None if value is None else frozenset(str(v) for v in value)


def _context_field(spec: Mapping[str, Any]) -> _ContextField:
    entities = spec.get("entities")
    return _ContextField(
        name=str(spec["name"]),
        type=ScalarType(spec.get("type", "String")),
        description=str(spec.get("description", "")),
        entities=None if entities is None else frozenset(entities),
        key=bool(spec.get("key", True)),
        nullable=bool(spec.get("nullable", False)),
    )


# --------------------------------------------------------------------------- walking documents


@dataclass
class _Occurrence:
    """One place in a document where an entity element occurs."""

    entity: str
    parent: str | None
    many: bool
    attrs: list[_Attr]
    doc: str


@dataclass(frozen=True)
class _Context:
    parent: str | None
    occurrence: _Occurrence | None
    pushed: tuple[_Attr, ...]
    many: bool
    required: bool
    path: tuple[str, ...]


class _Walker:
    """Walks every document shape from its root and records where entities occur."""

    def __init__(self, schema: _Schema, options: _Options) -> None:
        self.schema = schema
        self.options = options
        self.types = _Types(schema, options)
        self.occurrences: list[_Occurrence] = []
        self.own_keys: dict[str, list[str]] = {}
        self.keyrefs: list[NavigationProperty] = []

    def walk(self) -> None:
        for decl in self._roots():
            root = _Context(None, None, (), False, True, ())
            self._visit(decl, root, many=False, required=True)
        self._identity_constraints()
        for name, attrs in self.options.keys.items():
            self.own_keys[name] = list(attrs)

    def _roots(self) -> list[_Decl]:
        referenced = self.schema.referenced_elements()
        roots = []
        for doc in self.schema.order:
            for name, node in doc.tables["element"].items():
                wanted = self.options.roots
                if (name in wanted) if wanted is not None else (name not in referenced):
                    roots.append(_Decl(node, doc))
        return roots

    def _is_entity(self, name: str, many: bool, is_root: bool) -> bool:
        if self.options.entities is not None:
            return name in self.options.entities
        return many and not is_root

    def _visit(self, decl: _Decl, ctx: _Context, *, many: bool, required: bool) -> None:
        name = decl.name
        if name in self.options.ignore or name in ctx.path:
            return
        attrs = self.types.attributes(decl)
        path = (*ctx.path, name)
        if self._is_entity(name, many or ctx.many, not ctx.path):
            pushed = list(ctx.pushed) if ctx.parent is None else []
            occurrence = _Occurrence(
                name, ctx.parent, many or ctx.many, attrs + pushed, decl.doc.path.name
            )
            self.occurrences.append(occurrence)
            inner = _Context(name, occurrence, (), False, True, path)
        elif ctx.occurrence is not None:
            if not (many or ctx.many):
                for attr in attrs:
                    keep = attr.required and required and ctx.required
                    ctx.occurrence.attrs.append(_Attr(attr.name, attr.type, keep, attr.doc))
            inner = _Context(
                ctx.parent, ctx.occurrence, (), many or ctx.many, required and ctx.required, path
            )
        else:
            inner = _Context(None, None, (*ctx.pushed, *attrs), many or ctx.many, True, path)
        for child, low, high in self.types.children(decl):
            self._visit(child, inner, many=high > 1, required=low >= 1)

    def _identity_constraints(self) -> None:
        keys: dict[str, tuple[str, list[str]]] = {}
        for doc in self.schema.order:
            for node in doc.root.iter(f"{{{XS}}}key"):
                targets, fields = _selection(node)
                for target in targets:
                    own = self.own_keys.setdefault(target, [])
                    own.extend(f for f in fields if f not in own)
                if targets:
                    keys[node.get("name", "")] = (targets[0], fields)
            for node in doc.root.iter(f"{{{XS}}}unique"):
                # A unique constraint is no key of the entity, but keyrefs may refer to it.
                targets, fields = _selection(node)
                if targets:
                    keys[node.get("name", "")] = (targets[0], fields)
        for doc in self.schema.order:
            for node in doc.root.iter(f"{{{XS}}}keyref"):
                refer = keys.get(node.get("refer", "").rpartition(":")[2])
                sources, fields = _selection(node)
                if refer is None or len(fields) != 1 or len(refer[1]) != 1:
                    continue
                for source in sources:
                    self.keyrefs.append(
                        NavigationProperty(
                            source, refer[0], refer[0], False, fields[0], refer[1][0]
                        )
                    )


def _selection(node: ET.Element) -> tuple[list[str], list[str]]:
    """The element names an identity constraint selects and the attributes it names."""
    selector = next(_xs(node, "selector"), None)
    xpath = "" if selector is None else selector.get("xpath", "")
    targets = []
    for alternative in xpath.split("|"):
        step = alternative.strip().rstrip("/").rpartition("/")[2]
        name = step.rpartition(":")[2]
        if name and name not in (".", "*"):
            targets.append(name)
    fields = []
    for item in _xs(node, "field"):
        text = item.get("xpath", "").strip()
        if text.startswith("@"):
            fields.append(text[1:].rpartition(":")[2])
    return targets, fields


# --------------------------------------------------------------------------- building entities


@dataclass
class _Info:
    """What all occurrences of one entity element say about it."""

    name: str
    attrs: dict[str, _Attr] = field(default_factory=dict)
    required: set[str] | None = None
    parents: dict[str, bool] = field(default_factory=dict)
    top_level: bool = False
    children: bool = False
    description: str = ""

    def add(self, occurrence: _Occurrence) -> None:
        for attr in occurrence.attrs:
            known = self.attrs.get(attr.name)
            kind = attr.type if known is None else _widen(known.type, attr.type)
            self.attrs[attr.name] = _Attr(
                attr.name, kind, False, (known.doc if known else "") or attr.doc
            )
        names = {a.name for a in occurrence.attrs if a.required}
        self.required = names if self.required is None else self.required & names
        if occurrence.parent is None:
            self.top_level = True
        else:
            self.parents[occurrence.parent] = (
                self.parents.get(occurrence.parent, False) or occurrence.many
            )


def _widen(a: ScalarType, b: ScalarType) -> ScalarType:
    if a is b:
        return a
    if {a, b} <= {ScalarType.INT, ScalarType.LONG}:
        return ScalarType.LONG
    if {a, b} <= {ScalarType.INT, ScalarType.LONG, ScalarType.FLOAT}:
        return ScalarType.FLOAT
    return ScalarType.STRING


@dataclass(frozen=True)
class _FieldSpec:
    source: str
    type: ScalarType
    nullable: bool
    description: str


class _Builder:
    """Turns the walker's occurrences into entities, keys, fields and navigation."""

    def __init__(self, register: str, walker: _Walker) -> None:
        self.register = register
        self.walker = walker
        self.options = walker.options
        self.infos: dict[str, _Info] = {}
        for occurrence in walker.occurrences:
            info = self.infos.setdefault(occurrence.entity, _Info(occurrence.entity))
            info.add(occurrence)
        for info in self.infos.values():
            for parent in info.parents:
                self.infos[parent].children = True
        self._keys: dict[str, list[str]] = {}
        self._types: dict[str, dict[str, _FieldSpec]] = {}

    def build(self) -> Datamodel:
        if not self.infos:
            raise DescriptorError("the XSD datamodel declares no entity")
        entities = {name: self._entity(name) for name in self.infos}
        return Datamodel(entities=entities, navigation=self._navigation())

    def full_key(self, name: str, stack: tuple[str, ...] = ()) -> list[str]:
        if name in self._keys:
            return self._keys[name]
        info = self.infos[name]
        key = [c.name for c in self.options.context if c.key and c.applies(name)]
        for parent in info.parents:
            if parent not in stack:
                key += [k for k in self.full_key(parent, (*stack, name)) if k not in key]
        own = self.walker.own_keys.get(name, [])
        key += [k for k in own if k not in key]
        self._keys[name] = key
        return key

    def reference(self, name: str) -> str | None:
        """The field joining ``name`` to its children (source name); None without a key."""
        key = self.full_key(name)
        if not key:
            return None
        return key[0] if len(key) == 1 else reference_source(name)

    def _specs(self, name: str) -> dict[str, _FieldSpec]:
        if name in self._types:
            return self._types[name]
        info = self.infos[name]
        specs: dict[str, _FieldSpec] = {}
        for ctx in self.options.context:
            if ctx.applies(name):
                specs[ctx.name] = _FieldSpec(ctx.name, ctx.type, ctx.nullable, ctx.description)
        required = info.required or set()
        for attr in info.attrs.values():
            if attr.name not in specs:
                specs[attr.name] = _FieldSpec(
                    attr.name, attr.type, attr.name not in required, attr.doc
                )
        self._types[name] = specs  # guards against cycles while inheriting
        single = len(info.parents) == 1 and not info.top_level
        for parent in info.parents:
            parent_specs = self._specs(parent)
            for key in self.full_key(parent):
                if key not in specs and key in parent_specs:
                    spec = parent_specs[key]
                    specs[key] = _FieldSpec(
                        key, spec.type, spec.nullable or not single, spec.description
                    )
        if info.children and len(self.full_key(name)) > 1:
            ref = reference_source(name)
            specs[ref] = _FieldSpec(
                ref, ScalarType.STRING, False, f"Key of {name}: {self._key_text(name)}"
            )
        for parent in info.parents:
            parent_ref = self.reference(parent)
            if parent_ref is not None and parent_ref not in specs:
                text = f"Key of the enclosing {parent}: {self._key_text(parent)}"
                specs[parent_ref] = _FieldSpec(parent_ref, ScalarType.STRING, not single, text)
        return specs

    def _key_text(self, name: str) -> str:
        return KEY_SEPARATOR.join(self.full_key(name))

    def _entity(self, name: str) -> Entity:
        specs = list(self._specs(name).values())
        names = unique_names([s.source for s in specs])
        fields = tuple(
            Field(n, s.source, s.type, s.nullable, s.description)
            for n, s in zip(names, specs, strict=True)
        )
        by_source = {f.source: f.name for f in fields}
        key = tuple(by_source[k] for k in self.full_key(name) if k in by_source)
        if not key:
            key = tuple(f.name for f in fields)
        return Entity(
            register=self.register,
            name=name,
            graphql_name=type_name(self.register, name),
            fields=fields,
            key=key,
            description=self._description(name),
        )

    def _description(self, name: str) -> str:
        for doc in self.walker.schema.order:
            node = doc.tables["element"].get(name)
            if node is not None and _documentation(node):
                return _documentation(node)
        return ""

    def _navigation(self) -> tuple[NavigationProperty, ...]:
        out: list[NavigationProperty] = []
        for name, info in self.infos.items():
            for parent, many in info.parents.items():
                ref = self.reference(parent)
                if ref is None:
                    continue  # a parent without any key cannot be joined
                out.append(NavigationProperty(parent, name, name, many, ref, ref))
                out.append(NavigationProperty(name, parent, parent, False, ref, ref))
        for keyref in self.walker.keyrefs:
            if keyref.source_entity in self.infos and keyref.target_entity in self.infos:
                out.append(keyref)
                out.append(
                    NavigationProperty(
                        keyref.target_entity,
                        keyref.source_entity,
                        keyref.source_entity,
                        True,
                        keyref.target_field,
                        keyref.source_field,
                    )
                )
        return tuple(out)
