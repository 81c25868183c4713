"""The physical datamodel in the DLS's own XSD style: element-based complex types → a Datamodel.

A DLS register delivers its physical model as ``MAJOR.MINOR.PATCH.<REG>.xsd`` written the way the
DLS description shows it — every value an *element*, no attributes::

    <xs:element name="Bygning" type="BygningType"/>
    <xs:complexType name="BygningType">
      <xs:annotation><xs:documentation>…</xs:documentation><xs:appinfo>EAID_…</xs:appinfo>
      </xs:annotation>
      <xs:sequence>
        <xs:element name="id_lokalId" type="xs:string"> (annotation) </xs:element>
        <xs:element name="status" type="LivscyklusType" minOccurs="0"/>
        <xs:element name="husnummer" type="xs:string" maxOccurs="unbounded"/>
        …

What is read (:func:`load_dls_xsd`):

- An **entity** per global ``xs:element`` of a complex type (named by the element), and per
  named ``xs:complexType`` with element content that no global element uses (named by the type,
  a ``Type`` suffix dropped). Abstract types and types only serving as another type's base are
  no entities. The description and EAID come from the complex type's ``xs:annotation``
  (``xs:documentation`` and ``xs:appinfo``), else from the element's.
- Its **fields** are the elements of its content model (``xs:sequence``, ``xs:all``,
  ``xs:choice``, groups, a ``complexContent`` extension's base first), each with its own
  annotation. ``minOccurs`` (default 1) of at least one is a required field unless a choice,
  an optional enclosing particle or ``nillable`` says otherwise; ``maxOccurs`` above one or
  ``unbounded`` (of the element or an enclosing particle) is a list (``many``). An element of a
  complex type with element content is no field (that type is an entity of its own); one with
  ``simpleContent`` is a field of its base type. Attributes are not read: the DLS style has none.
- A field's **type** is the built-in type its simple type restricts (``xs:…`` directly, a named
  ``xs:simpleType`` or an inline one, through any chain of restrictions), mapped as for the
  attribute-style XSDs (:func:`builtin_scalar`). The restrictions' **facets** (``length``,
  ``minLength``, ``maxLength``, ``pattern``, ``minInclusive``, ``maxInclusive``, ``totalDigits``,
  …) are kept as ``(facet, value)`` pairs, the most derived first.
- ``xs:enumeration`` values make a **code list**: named by the simple type (an inline one by
  ``Entity.field``), described by its annotation, each :class:`Code` with its documentation and
  EAID. It is the field's ``codes`` and is listed in ``Datamodel.codelists``.
- The **key** is what an ``xs:key`` names (its ``xs:selector`` picks the element, ``"."`` the one
  declaring it; its ``xs:field`` the child elements), else ``id_lokalId``, else ``id``, else the
  first required single-valued field, else the first field. A single-field ``xs:keyref`` becomes
  a :class:`NavigationProperty` each way, as in the attribute-style loader.
- ``Datamodel.version`` is ``xs:schema/@version``, else the file name's ``MAJOR.MINOR.PATCH``.

:func:`is_dls_style` tells this style from the attribute style of :mod:`gateway.dls.xsd`, whose
``load_xsd`` dispatches here (``"style": "auto"``). That module also reads its files with
:func:`read_schema` and maps built-in types with :func:`builtin_scalar`: this module is below it,
so that the dispatch imports no module back.

Files are read like every XML input of the project: at most :data:`MAX_BYTES`, through
defusedxml with DTDs (and with them entity declarations) refused; any problem — unreadable,
malformed, no entity, an unknown type, a key naming no field — is a :class:`DescriptorError`
naming the file.

Options (the ``datamodel`` block of ``Source.json``): ``files``, the file name patterns read from
a folder (default ``["*.xsd"]``).
"""

from __future__ import annotations

import fnmatch
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import defusedxml.ElementTree as SafeET

from gateway.model.datamodel import (
    Code,
    CodeList,
    Datamodel,
    Entity,
    Field,
    NavigationProperty,
    ScalarType,
)
from gateway.model.errors import DescriptorError
from gateway.model.naming import type_name, unique_names

__all__ = [
    "MAX_BYTES",
    "XS",
    "builtin_scalar",
    "is_dls_style",
    "load_dls_xsd",
    "read_schema",
    "schema_files",
]

XS: Final = "http://www.w3.org/2001/XMLSchema"
MAX_BYTES: Final = 64 * 1024 * 1024

# --------------------------------------------------------------------------- shared with xsd.py

_INT32_DIGITS: Final = 9

# XSD built-in types → scalar kinds; any other built-in (string, token, anyURI, time, …) is text.
_BUILTIN: Final[Mapping[str, ScalarType]] = {
    "boolean": ScalarType.BOOLEAN,
    "int": ScalarType.INT,
    "short": ScalarType.INT,
    "byte": ScalarType.INT,
    "unsignedShort": ScalarType.INT,
    "unsignedByte": ScalarType.INT,
    "integer": ScalarType.LONG,
    "long": ScalarType.LONG,
    "nonNegativeInteger": ScalarType.LONG,
    "positiveInteger": ScalarType.LONG,
    "negativeInteger": ScalarType.LONG,
    "nonPositiveInteger": ScalarType.LONG,
    "unsignedInt": ScalarType.LONG,
    "unsignedLong": ScalarType.LONG,
    "decimal": ScalarType.FLOAT,
    "float": ScalarType.FLOAT,
    "double": ScalarType.FLOAT,
    "date": ScalarType.DATE,
    "dateTime": ScalarType.DATETIME,
}


def read_schema(path: Path) -> tuple[ET.Element, dict[str, str]]:
    """The root ``xs:schema`` of the file ``path`` and the namespace prefixes it declares.

    DescriptorError for a file that is too large, unreadable, not well-formed, declares a DTD
    (hence any entity) or is no XML schema.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DescriptorError(f"cannot read XSD {path}: {exc}") from exc
    if size > MAX_BYTES:
        raise DescriptorError(f"XSD {path} has {size} bytes, more than the {MAX_BYTES} bytes read")
    try:
        data = path.read_bytes()
        events = SafeET.iterparse(io.BytesIO(data), events=("start-ns",), forbid_dtd=True)
        prefixes = {prefix: uri for _, (prefix, uri) in events}
        root = events.root
    except (OSError, ET.ParseError, ValueError) as exc:
        # defusedxml's refusals (DTDForbidden, EntitiesForbidden, …) are ValueErrors.
        raise DescriptorError(f"cannot read XSD {path}: {exc}") from exc
    if root is None or root.tag != f"{{{XS}}}schema":
        raise DescriptorError(f"{path} is not an XML schema")
    return root, prefixes


def schema_files(path: Path, patterns: Sequence[str]) -> list[Path]:
    """The file ``path``, or the files of the folder ``path`` matching ``patterns``."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DescriptorError(f"XSD datamodel {path} does not exist")
    found = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and any(fnmatch.fnmatch(p.name, g) for g in patterns)
    )
    if not found:
        raise DescriptorError(f"no XSD file in {path}")
    return found


def builtin_scalar(
    builtin: str, facets: Mapping[str, str], decimal_integers: bool = False
) -> ScalarType:
    """The scalar kind of XSD built-in type ``builtin`` (local name) under ``facets``.

    ``xs:decimal`` with ``fractionDigits`` 0 (or none, with ``decimal_integers``) is an integer;
    an integer whose ``totalDigits`` or inclusive bounds fit 32 bits is an ``Int``.
    """
    kind = _BUILTIN.get(builtin, ScalarType.STRING)
    if builtin == "decimal":
        fraction = facets.get("fractionDigits")
        if fraction == "0" or (fraction is None and decimal_integers):
            kind = ScalarType.LONG
    if kind is ScalarType.LONG and _fits_int32(facets):
        kind = ScalarType.INT
    return kind


def _fits_int32(facets: Mapping[str, str]) -> bool:
    digits = facets.get("totalDigits")
    if digits is not None and digits.isdigit():
        return int(digits) <= _INT32_DIGITS
    bounds = [facets.get("minInclusive"), facets.get("maxInclusive")]
    if all(b is not None and re.fullmatch(r"-?\d+", b) for b in bounds):
        return all(abs(int(b or 0)) < 2**31 for b in bounds)
    return False


# --------------------------------------------------------------------------- style detection


def is_dls_style(path: Path, files: Sequence[str] = ("*.xsd",)) -> bool:
    """Whether the XSD file (or folder) ``path`` is in the DLS style.

    That is: some complex type has element content, and no attribute is declared anywhere.
    An unreadable schema is not (the attribute-style loader then reports why).
    """
    try:
        roots = [read_schema(p)[0] for p in schema_files(path, files)]
    except DescriptorError:
        return False
    attributes = {f"{{{XS}}}attribute", f"{{{XS}}}attributeGroup"}
    if any(node.tag in attributes for root in roots for node in root.iter()):
        return False
    return any(
        next(ct.iter(f"{{{XS}}}element"), None) is not None
        for root in roots
        for ct in root.iter(f"{{{XS}}}complexType")
    )


# --------------------------------------------------------------------------- the documents

_KINDS: Final = ("element", "complexType", "simpleType", "group")
_KEYS: Final = ("id_lokalId", "id")
_VERSION: Final = re.compile(r"^(\d+\.\d+\.\d+)\.")
_WRITTEN_VERSION: Final = re.compile(r"^\d+(\.\d+){0,2}$")
_EAID: Final = re.compile(r"EAID_[0-9A-Za-z_]+")
_MAX_DEPTH: Final = 32
# Constraining facets kept on a field (xs:enumeration becomes a code list instead).
_FACETS: Final = frozenset(
    {
        "length",
        "minLength",
        "maxLength",
        "pattern",
        "minInclusive",
        "maxInclusive",
        "minExclusive",
        "maxExclusive",
        "totalDigits",
        "fractionDigits",
        "whiteSpace",
        "explicitTimezone",
    }
)


@dataclass
class _Doc:
    """One schema file: its root, prefixes and global declarations by kind and name."""

    path: Path
    root: ET.Element
    prefixes: Mapping[str, str]
    tables: dict[str, dict[str, ET.Element]]


class _Schema:
    """The schema files of one datamodel (with what they include), looked up by local name."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.docs: dict[Path, _Doc] = {}
        for path in paths:
            resolved = path.resolve()
            self._read(resolved, resolved.parent)

    def _read(self, path: Path, folder: Path) -> None:
        if path in self.docs:
            return
        root, prefixes = read_schema(path)
        tables: dict[str, dict[str, ET.Element]] = {kind: {} for kind in _KINDS}
        for node in root:
            kind = _local(node.tag)
            name = node.get("name")
            if kind in tables and name:
                tables[kind].setdefault(name, node)
        self.docs[path] = _Doc(path, root, prefixes, tables)
        for node in _xs(root, "include", "import", "redefine"):
            location = node.get("schemaLocation")
            if not location:
                continue
            target = (path.parent / location).resolve()
            # Only files beside the delivered ones: a schema cannot make us read elsewhere.
            if target.is_file() and target.is_relative_to(folder):
                self._read(target, folder)

    @property
    def order(self) -> list[_Doc]:
        return list(self.docs.values())

    def lookup(self, kind: str, qname: str, doc: _Doc) -> tuple[ET.Element, _Doc] | None:
        """The global ``kind`` declaration ``qname``: in ``doc`` first, then in the others."""
        name = qname.rpartition(":")[2]
        for scope in (doc, *(d for d in self.docs.values() if d is not doc)):
            node = scope.tables[kind].get(name)
            if node is not None:
                return node, scope
        return None

    @staticmethod
    def is_builtin(qname: str, doc: _Doc) -> bool:
        prefix = qname.rpartition(":")[0]
        return doc.prefixes.get(prefix) == XS


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _xs(node: ET.Element, *names: str) -> Iterator[ET.Element]:
    tags = {f"{{{XS}}}{n}" for n in names}
    for child in node:
        if child.tag in tags:
            yield child


def _text(node: ET.Element) -> str:
    """A documentation's text as written, without the indentation of its lines."""
    lines = "".join(node.itertext()).strip().splitlines()
    return "\n".join(line.strip() for line in lines)


def _annotation(node: ET.Element) -> tuple[str, str]:
    """``(documentation, EAID)`` of a declaration's ``xs:annotation`` (``""`` when absent)."""
    docs: list[str] = []
    eaid = ""
    for annotation in _xs(node, "annotation"):
        docs += [t for t in map(_text, _xs(annotation, "documentation")) if t]
        for info in _xs(annotation, "appinfo"):
            found = _EAID.search(_text(info))
            if found and not eaid:
                eaid = found.group(0)
    return " ".join(docs), eaid


def _occurs(node: ET.Element, where: str) -> tuple[int, bool]:
    """``(minOccurs, maxOccurs > 1)`` of a particle; DescriptorError when unreadable."""
    low, high = node.get("minOccurs", "1").strip(), node.get("maxOccurs", "1").strip()
    if not low.isdigit() or not (high.isdigit() or high == "unbounded"):
        raise DescriptorError(
            f"{where}: minOccurs={low!r} maxOccurs={high!r}: write a number of at least 0 "
            "(maxOccurs also 'unbounded')"
        )
    if high != "unbounded" and int(high) < int(low):
        raise DescriptorError(f"{where}: maxOccurs {high} is below minOccurs {low}")
    return int(low), high == "unbounded" or int(high) > 1


# --------------------------------------------------------------------------- loading


def load_dls_xsd(path: Path, register: str, options: Mapping[str, Any]) -> Datamodel:
    """Load the DLS-style XSD file (or folder of XSD files) ``path`` as ``register``'s model."""
    patterns = options.get("files", ["*.xsd"])
    if not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str) for p in patterns):
        raise DescriptorError(f"datamodel option files must be a list of patterns: {patterns!r}")
    files = schema_files(path, patterns)
    return _Loader(register, _Schema(files)).load(files)


@dataclass(frozen=True)
class _Particle:
    """An element of a content model, with the occurrence its enclosing particles give it."""

    node: ET.Element
    doc: _Doc
    optional: bool
    many: bool


@dataclass(frozen=True)
class _Simple:
    """A resolved simple type: its built-in base, facets, and code list (if enumerated)."""

    builtin: str
    facets: tuple[tuple[str, str], ...]
    codes: CodeList | None


@dataclass(frozen=True)
class _Candidate:
    """A would-be entity: its name, complex type and the element declaring it (if any)."""

    name: str
    type_node: ET.Element
    doc: _Doc
    element: ET.Element | None


class _Loader:
    def __init__(self, register: str, schema: _Schema) -> None:
        self.register = register
        self.schema = schema
        self.codelists: dict[str, CodeList] = {}
        self.by_element: dict[str, str] = {}  # element name -> entity name

    def load(self, files: Sequence[Path]) -> Datamodel:
        candidates = self._candidates()
        if not candidates:
            raise DescriptorError(
                f"XSD {files[0]} declares no entity: expected complex types whose xs:sequence "
                "holds the fields as xs:element (the DLS style)"
            )
        entities: dict[str, Entity] = {}
        for candidate in candidates:
            entities[candidate.name] = self._entity(candidate)
        keys, navigation = self._identity_constraints(entities)
        for name, key in keys.items():
            entities[name] = replace(entities[name], key=key)
        return Datamodel(
            entities=entities,
            navigation=navigation,
            version=self._version(files),
            codelists=dict(sorted(self.codelists.items())),
        )

    # ---------------------------------------------------------------- entities

    def _candidates(self) -> list[_Candidate]:
        out: list[_Candidate] = []
        claimed: set[int] = set()
        for doc in self.schema.order:
            for name, element in doc.tables["element"].items():
                found = self._complex_of(element, doc)
                if found is None or name in self.by_element:
                    continue
                node, where = found
                claimed.add(id(node))
                if self._has_elements(node, where, 0):
                    self.by_element[name] = name
                    out.append(_Candidate(name, node, where, element))
        bases = {
            id(base[0])
            for doc in self.schema.order
            for node in doc.root.iter()
            if _local(node.tag) in ("extension", "restriction") and node.get("base")
            for base in [self.schema.lookup("complexType", node.get("base", ""), doc)]
            if base is not None
        }
        names = {c.name for c in out}
        for doc in self.schema.order:
            for type_name_, node in doc.tables["complexType"].items():
                if id(node) in claimed or id(node) in bases or node.get("abstract") == "true":
                    continue
                name = type_name_.removesuffix("Type") or type_name_
                if name in names or not self._has_elements(node, doc, 0):
                    continue
                names.add(name)
                out.append(_Candidate(name, node, doc, None))
        return out

    def _complex_of(self, element: ET.Element, doc: _Doc) -> tuple[ET.Element, _Doc] | None:
        """The complex type of an element declaration (inline or named), None if simple."""
        inline = next(_xs(element, "complexType"), None)
        if inline is not None:
            return inline, doc
        qname = element.get("type")
        if not qname or self.schema.is_builtin(qname, doc):
            return None
        return self.schema.lookup("complexType", qname, doc)

    def _has_elements(self, node: ET.Element, doc: _Doc, depth: int) -> bool:
        """Whether a complex type has element content (its own or its base type's)."""
        if depth > _MAX_DEPTH:
            return False
        if next(node.iter(f"{{{XS}}}element"), None) is not None:
            return True
        for derivation in node.iter(f"{{{XS}}}extension"):
            base = self.schema.lookup("complexType", derivation.get("base", ""), doc)
            if base is not None and self._has_elements(base[0], base[1], depth + 1):
                return True
        for ref in node.iter(f"{{{XS}}}group"):
            group = self.schema.lookup("group", ref.get("ref", ""), doc)
            if group is not None and self._has_elements(group[0], group[1], depth + 1):
                return True
        return False

    def _entity(self, candidate: _Candidate) -> Entity:
        where = f"{candidate.doc.path.name}: {candidate.name}"
        particles: list[_Particle] = []
        self._particles(candidate.type_node, candidate.doc, False, False, particles, where, 0)
        specs: dict[str, Field] = {}
        for particle in particles:
            spec = self._field(candidate.name, particle, where)
            if spec is not None:
                specs.setdefault(spec.source, spec)
        if not specs:
            raise DescriptorError(f"{where} has no field of a simple type")
        names = unique_names(list(specs))
        fields = tuple(
            replace(spec, name=name) for spec, name in zip(specs.values(), names, strict=True)
        )
        description, eaid = _annotation(candidate.type_node)
        if candidate.element is not None:
            own_description, own_eaid = _annotation(candidate.element)
            description, eaid = description or own_description, eaid or own_eaid
        return Entity(
            register=self.register,
            name=candidate.name,
            graphql_name=type_name(self.register, candidate.name),
            fields=fields,
            key=(_default_key(fields),),
            description=description,
            eaid=eaid,
        )

    def _particles(
        self,
        node: ET.Element,
        doc: _Doc,
        optional: bool,
        many: bool,
        out: list[_Particle],
        where: str,
        depth: int,
    ) -> None:
        if depth > _MAX_DEPTH:
            raise DescriptorError(
                f"{where}: the content model nests deeper than {_MAX_DEPTH} levels "
                "(a group or base type that includes itself?)"
            )
        for child in node:
            kind = _local(child.tag) if str(child.tag).startswith(f"{{{XS}}}") else ""
            if kind == "element":
                low, repeats = _occurs(child, f"{where}.{child.get('name') or child.get('ref')}")
                out.append(_Particle(child, doc, optional or low == 0, many or repeats))
            elif kind in ("sequence", "all", "choice"):
                low, repeats = _occurs(child, f"{where} ({kind})")
                # Any branch of a choice may be absent.
                branches = sum(1 for c in child if _local(c.tag) != "annotation")
                inner = optional or low == 0 or (kind == "choice" and branches > 1)
                self._particles(child, doc, inner, many or repeats, out, where, depth + 1)
            elif kind == "group" and child.get("ref"):
                group = self.schema.lookup("group", child.get("ref", ""), doc)
                if group is None:
                    raise DescriptorError(f"{where}: unknown group {child.get('ref')!r}")
                low, repeats = _occurs(child, f"{where} (group)")
                self._particles(
                    group[0], group[1], optional or low == 0, many or repeats, out, where, depth + 1
                )
            elif kind == "complexContent":
                self._particles(child, doc, optional, many, out, where, depth + 1)
            elif kind in ("extension", "restriction"):
                # An extension's content is its base type's followed by its own.
                base = child.get("base", "")
                if kind == "extension" and base and not self.schema.is_builtin(base, doc):
                    found = self.schema.lookup("complexType", base, doc)
                    if found is None:
                        raise DescriptorError(f"{where}: unknown base type {base!r}")
                    self._particles(found[0], found[1], optional, many, out, where, depth + 1)
                self._particles(child, doc, optional, many, out, where, depth + 1)

    # ---------------------------------------------------------------- fields

    def _field(self, entity: str, particle: _Particle, where: str) -> Field | None:
        node, doc = particle.node, particle.doc
        declaration, decl_doc = node, doc
        ref = node.get("ref")
        if ref:
            found = self.schema.lookup("element", ref, doc)
            if found is None:
                raise DescriptorError(f"{where}: element ref {ref!r} is declared nowhere")
            declaration, decl_doc = found
        name = declaration.get("name", "").strip()
        if not name:
            raise DescriptorError(f"{where}: an xs:element without name or ref")
        simple = self._simple_of(declaration, decl_doc, f"{entity}.{name}", f"{where}.{name}")
        if simple is None:
            return None  # an element of a complex type: no scalar
        description, eaid = _annotation(node)
        if declaration is not node and not (description and eaid):
            ref_description, ref_eaid = _annotation(declaration)
            description, eaid = description or ref_description, eaid or ref_eaid
        nillable = declaration.get("nillable") == "true" or node.get("nillable") == "true"
        facets = dict(reversed(simple.facets))
        return Field(
            name=name,
            source=name,
            type=builtin_scalar(simple.builtin, facets),
            nullable=particle.optional or nillable,
            description=description,
            eaid=eaid,
            many=particle.many,
            facets=simple.facets,
            codes=simple.codes,
        )

    def _simple_of(
        self, declaration: ET.Element, doc: _Doc, inline_name: str, where: str
    ) -> _Simple | None:
        """The simple type of an element declaration; None for element content."""
        inline = next(_xs(declaration, "simpleType"), None)
        if inline is not None:
            return self._simple(inline, doc, inline_name, where, 0)
        complex_inline = next(_xs(declaration, "complexType"), None)
        if complex_inline is not None:
            return self._simple_content(complex_inline, doc, inline_name, where)
        qname = declaration.get("type")
        if not qname:
            return _Simple("string", (), None)  # xs:anyType: text
        return self._named_simple(qname, doc, inline_name, where, 0)

    def _named_simple(
        self, qname: str, doc: _Doc, inline_name: str, where: str, depth: int
    ) -> _Simple | None:
        if self.schema.is_builtin(qname, doc):
            return _Simple(qname.rpartition(":")[2], (), None)
        found = self.schema.lookup("simpleType", qname, doc)
        if found is not None:
            return self._simple(found[0], found[1], qname.rpartition(":")[2], where, depth)
        complex_type = self.schema.lookup("complexType", qname, doc)
        if complex_type is not None:
            return self._simple_content(complex_type[0], complex_type[1], inline_name, where)
        raise DescriptorError(f"{where}: unknown type {qname!r}")

    def _simple_content(
        self, node: ET.Element, doc: _Doc, inline_name: str, where: str
    ) -> _Simple | None:
        """A complex type with ``simpleContent`` is a value of its base type; others are None."""
        content = next(_xs(node, "simpleContent"), None)
        if content is None:
            return None
        derivation = next(_xs(content, "extension", "restriction"), None)
        base = None if derivation is None else derivation.get("base")
        if not base:
            return _Simple("string", (), None)
        return self._named_simple(base, doc, inline_name, where, 1)

    def _simple(self, node: ET.Element, doc: _Doc, name: str, where: str, depth: int) -> _Simple:
        """Resolve a simple type: its restriction chain down to a built-in type."""
        if depth > _MAX_DEPTH:
            raise DescriptorError(
                f"{where}: simple type {name!r} derives deeper than {_MAX_DEPTH} levels "
                "(a type restricting itself?)"
            )
        restriction = next(_xs(node, "restriction"), None)
        if restriction is None:
            return _Simple("string", (), None)  # xs:list and xs:union come out as text
        facets: list[tuple[str, str]] = []
        enumerations: list[ET.Element] = []
        for facet in restriction:
            kind = _local(facet.tag)
            if kind == "enumeration":
                enumerations.append(facet)
            elif kind in _FACETS and facet.get("value") is not None:
                facets.append((kind, facet.get("value", "")))
        nested = next(_xs(restriction, "simpleType"), None)
        base_qname = restriction.get("base")
        if nested is not None:
            base = self._simple(nested, doc, name, where, depth + 1)
        elif base_qname:
            found = self._named_simple(base_qname, doc, name, where, depth + 1)
            base = _Simple("string", (), None) if found is None else found
        else:
            raise DescriptorError(f"{where}: simple type {name!r} restricts no base type")
        # The most derived facet wins; patterns of every level apply together.
        own = {k for k, _ in facets if k != "pattern"}
        merged = tuple(facets) + tuple((k, v) for k, v in base.facets if k not in own)
        codes = base.codes
        if enumerations:
            codes = self._codelist(name, node, enumerations)
        return _Simple(base.builtin, merged, codes)

    def _codelist(self, name: str, node: ET.Element, enumerations: list[ET.Element]) -> CodeList:
        known = self.codelists.get(name)
        if known is not None:
            return known
        codes = []
        for item in enumerations:
            text, eaid = _annotation(item)
            codes.append(Code(item.get("value", ""), text, eaid))
        description, eaid = _annotation(node)
        made = CodeList(name, tuple(codes), description, eaid)
        self.codelists[name] = made
        return made

    # ---------------------------------------------------------------- keys, version

    def _identity_constraints(
        self, entities: Mapping[str, Entity]
    ) -> tuple[dict[str, tuple[str, ...]], tuple[NavigationProperty, ...]]:
        keys: dict[str, tuple[str, ...]] = {}
        named: dict[str, tuple[str, tuple[str, ...]]] = {}
        for doc in self.schema.order:
            for element in doc.root.iter(f"{{{XS}}}element"):
                for constraint in _xs(element, "key", "unique"):
                    for target, fields in self._selection(element, constraint, entities, doc):
                        named.setdefault(constraint.get("name", ""), (target, fields))
                        if _local(constraint.tag) == "key":
                            keys.setdefault(target, fields)
        navigation: list[NavigationProperty] = []
        for doc in self.schema.order:
            for element in doc.root.iter(f"{{{XS}}}element"):
                for keyref in _xs(element, "keyref"):
                    refer = named.get(keyref.get("refer", "").rpartition(":")[2])
                    for source, fields in self._selection(element, keyref, entities, doc):
                        if refer is None or len(fields) != 1 or len(refer[1]) != 1:
                            continue
                        target, target_field = refer[0], refer[1][0]
                        navigation += [
                            NavigationProperty(
                                source, target, target, False, fields[0], target_field
                            ),
                            NavigationProperty(
                                target, source, source, True, target_field, fields[0]
                            ),
                        ]
        return keys, tuple(navigation)

    def _selection(
        self,
        element: ET.Element,
        constraint: ET.Element,
        entities: Mapping[str, Entity],
        doc: _Doc,
    ) -> Iterator[tuple[str, tuple[str, ...]]]:
        """The entities an identity constraint selects and the fields (GraphQL names) it names."""
        where = f"{doc.path.name}: {_local(constraint.tag)} {constraint.get('name', '')!r}"
        selector = next(_xs(constraint, "selector"), None)
        xpath = "." if selector is None else selector.get("xpath", ".")
        steps = [
            _last_step(alternative) or element.get("name", "") or element.get("ref", "")
            for alternative in xpath.split("|")
        ]
        paths = [_last_step(f.get("xpath", "")) for f in _xs(constraint, "field")]
        for step in steps:
            entity = entities.get(self.by_element.get(step, step))
            if entity is None:
                continue
            fields = []
            for source in paths:
                found = entity.by_source.get(source)
                if found is None:
                    raise DescriptorError(
                        f"{where} names {source!r}, which is no field of {entity.name}"
                    )
                fields.append(found.name)
            if fields:
                yield entity.name, tuple(fields)

    def _version(self, files: Sequence[Path]) -> str:
        for doc in self.schema.order:
            written = doc.root.get("version", "").strip()
            if _WRITTEN_VERSION.match(written):
                return written
        match = _VERSION.match(files[0].name)
        return match.group(1) if match else ""


def _last_step(xpath: str) -> str:
    """``.//dar:Husnummer`` → ``Husnummer``, ``@id`` → ``id``, ``.`` → ``""``."""
    step = xpath.strip().rstrip("/").rpartition("/")[2].lstrip("@")
    name = step.rpartition(":")[2]
    return "" if name in ("", ".", "*") else name


def _default_key(fields: Sequence[Field]) -> str:
    by_source = {f.source: f for f in fields}
    for name in _KEYS:
        if name in by_source and not by_source[name].many:
            return by_source[name].name
    first = next((f for f in fields if not f.nullable and not f.many), fields[0])
    return first.name
