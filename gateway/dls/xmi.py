"""The logical datamodel (XMI): an Enterprise Architect XMI 2.1 export read into frozen objects.

A DLS register delivers its logical model as ``MAJOR.MINOR.PATCH.<REG>.xmi`` beside the XSD. The
logical model identifies every class, attribute, enumeration, literal and association by an EAID
(``EAID_…``); the XSD's ``xs:appinfo`` carries the same EAIDs, which is how the two models, and
the registers among themselves, are joined (:mod:`gateway.dls.relation_generator`).

What is read (:func:`read_xmi`):

- ``xmi:XMI`` (or a bare ``uml:Model`` root) → ``uml:Model`` → nested ``packagedElement``:
  ``uml:Package`` (kept as the package path of what it holds), ``uml:Class`` with its
  ``ownedAttribute`` (type idref, ``lowerValue``/``upperValue``), ``uml:Enumeration`` with its
  ``ownedLiteral``, ``uml:Association`` with its ``memberEnd``/``ownedEnd``. An ``ownedAttribute``
  that names an ``association`` is an end of that association, not an attribute of its class.
- The ``xmi:Extension`` of Enterprise Architect: ``elements/element`` (documentation of classes
  and enumerations, of their attributes and literals; an attribute's type name and bounds when
  the UML part does not say) and ``connectors/connector`` (source, target, their multiplicity
  text, the label ``mt`` = the association's name, ``ea_type``). Whether a ``connectors`` section
  exists at all is kept: without it no relation can be generated.

Namespaces are matched by family, not by exact URI: any namespace with a path segment ``XMI`` is
XMI (``http://schema.omg.org/spec/XMI/2.1``, ``http://www.omg.org/spec/XMI/20131001``, …), any
with a segment ``UML`` is UML. Elements are matched by local name.

Multiplicities: EA writes ``*`` as ``upperValue value="-1"`` or ``value="*"``, and as text
``"0..*"``/``"*"`` on connectors. An ``upperValue`` without ``value`` counts as not written;
a ``lowerValue`` without ``value`` is 0 (the UML default). Which end of an association is its
source: EA names the ends ``EAID_src…`` and ``EAID_dst…``; ends named otherwise take their side
from the connector (the end typed by the connector's source class is the source).

The file is read like every XML input of the project: at most :data:`MAX_BYTES`, through
defusedxml with DTDs, entity declarations and external references refused; any problem is a
:class:`DescriptorError` naming the file.

:func:`load_xmi` serves a logical model on its own as a datamodel (``"format": "xmi"``); see
its documentation for the rules.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

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
    "SPELLINGS",
    "Multiplicity",
    "XmiAssociation",
    "XmiAttribute",
    "XmiClass",
    "XmiConnector",
    "XmiEnd",
    "XmiEnumeration",
    "XmiLiteral",
    "XmiModel",
    "XmiPackage",
    "load_xmi",
    "parse_xmi",
    "read_xmi",
    "scalar_of",
]

MAX_BYTES: Final = 64 * 1024 * 1024

# The xmi loader has no option that was ever spelled differently.
SPELLINGS: Final[Mapping[str, str]] = {}

_UNBOUNDED_TEXT: Final = frozenset({"*", "-1"})
_VERSION = re.compile(r"^(\d+\.\d+\.\d+)\.")
_KEYS: Final = ("id_lokalId", "id")

# EA's primitive type names (lower-cased) → the vocabulary's scalar types.
_PRIMITIVES: Final[Mapping[str, ScalarType]] = {
    "string": ScalarType.STRING,
    "characterstring": ScalarType.STRING,
    "char": ScalarType.STRING,
    "int": ScalarType.INT,
    "integer": ScalarType.INT,
    "short": ScalarType.INT,
    "byte": ScalarType.INT,
    "long": ScalarType.LONG,
    "decimal": ScalarType.FLOAT,
    "double": ScalarType.FLOAT,
    "float": ScalarType.FLOAT,
    "real": ScalarType.FLOAT,
    "boolean": ScalarType.BOOLEAN,
    "bool": ScalarType.BOOLEAN,
    "date": ScalarType.DATE,
    "datetime": ScalarType.DATETIME,
}


def scalar_of(type_name_: str) -> ScalarType | None:
    """The scalar type of an EA primitive type name (``String``, ``int``, ``dateTime``, …)."""
    return _PRIMITIVES.get(type_name_.lower())


# --------------------------------------------------------------------------- the objects


@dataclass(frozen=True, slots=True)
class Multiplicity:
    """A multiplicity as written: ``lower``/``upper`` bounds, ``*`` as ``unbounded``.

    ``text`` is what was written (``""`` when no upper bound is written); ``problem`` says why
    a written multiplicity cannot be used (``""`` when it can).
    """

    lower: int | None = None
    upper: int | None = None
    unbounded: bool = False
    text: str = ""
    problem: str = ""

    @property
    def stated(self) -> bool:
        """Whether an upper bound is written at all."""
        return bool(self.text)

    @property
    def usable(self) -> bool:
        """Whether the upper bound is written and makes sense."""
        return self.stated and not self.problem

    @property
    def many(self) -> bool:
        """Upper bound above one, or unbounded."""
        return self.unbounded or (self.upper or 0) > 1

    @classmethod
    def of_text(cls, text: str) -> Multiplicity:
        """``"1"``, ``"0..1"``, ``"0..*"``, ``"*"``, ``"1..5"`` (a connector's ``multiplicity``)."""
        written = text.strip()
        if not written:
            return cls()
        low, sep, high = written.partition("..")
        if not sep:
            if written not in _UNBOUNDED_TEXT and isinstance(_integer(written), str):
                return cls(
                    text=written,
                    problem=f"{written!r} is no multiplicity (1, 0..1, 0..*, 1..* or *)",
                )
            low, high = ("0" if written in _UNBOUNDED_TEXT else written), written
        return cls._of(low.strip(), high.strip(), written)

    @classmethod
    def of_bounds(cls, lower: str | None, upper: str | None) -> Multiplicity:
        """From ``lowerValue``/``upperValue`` ``value`` attributes (None: not written)."""
        low = None if lower is None else (lower.strip() or "0")
        if upper is None:
            parsed = None if low is None else _integer(low)
            return cls(lower=parsed if isinstance(parsed, int) and parsed >= 0 else None)
        high = upper.strip()
        shown = "*" if high in _UNBOUNDED_TEXT else high
        text = shown if low is None else f"{low}..{shown}"
        return cls._of(low or "", high, text or repr(upper))

    @classmethod
    def _of(cls, low: str, high: str, text: str) -> Multiplicity:
        lower = _integer(low) if low else None
        if isinstance(lower, str) or (lower is not None and lower < 0):
            return cls(text=text, problem=f"lower bound {low!r} is no number of at least 0")
        if high in _UNBOUNDED_TEXT:
            return cls(lower=lower, unbounded=True, text=text)
        upper = _integer(high)
        if isinstance(upper, str) or upper is None or upper < 1:
            return cls(
                lower=lower, text=text, problem=f"upper bound {high!r} is neither * nor >= 1"
            )
        if lower is not None and lower > upper:
            return cls(
                lower, upper, text=text, problem=f"lower bound {lower} exceeds upper {upper}"
            )
        return cls(lower, upper, text=text)


def _integer(text: str) -> int | str:
    """The integer ``text`` spells, or ``text`` itself when it spells none."""
    stripped = text.strip()
    if re.fullmatch(r"-?\d+", stripped):
        return int(stripped)
    return text


@dataclass(frozen=True, slots=True)
class XmiPackage:
    """A ``uml:Package``: its EAID (``EAPK_…``), name and the names of its enclosing packages."""

    eaid: str
    name: str
    path: tuple[str, ...] = ()


class _Bounded:
    """``lower`` and ``upper`` of a ``multiplicity`` (an attribute's, an association end's)."""

    __slots__ = ()
    multiplicity: Multiplicity

    @property
    def lower(self) -> int | None:
        return self.multiplicity.lower

    @property
    def upper(self) -> int | None:
        return self.multiplicity.upper


@dataclass(frozen=True, slots=True)
class XmiAttribute(_Bounded):
    """An ``ownedAttribute`` of a class.

    ``type_ref`` is the type idref as written (``EAJava_String``, ``EAnone_int``, an
    enumeration's or class's EAID), ``type_name`` the resolved name: the primitive's name
    (``String``), the enumeration's or class's name, or ``""`` when unknown.
    """

    eaid: str
    name: str
    type_ref: str
    type_name: str
    multiplicity: Multiplicity
    documentation: str = ""


@dataclass(frozen=True, slots=True)
class XmiClass:
    """A ``uml:Class``: ``package`` is the nearest enclosing package's name, ``packages`` all."""

    eaid: str
    name: str
    package: str
    documentation: str = ""
    attributes: tuple[XmiAttribute, ...] = ()
    package_eaid: str = ""
    packages: tuple[str, ...] = ()

    def attribute(self, eaid: str) -> XmiAttribute | None:
        return next((a for a in self.attributes if a.eaid == eaid), None)

    def in_package(self, name: str) -> bool:
        """Whether the class lies in a package called ``name`` (at any depth)."""
        return name in self.packages


@dataclass(frozen=True, slots=True)
class XmiLiteral:
    """An ``ownedLiteral`` of an enumeration: a code's value and documentation."""

    eaid: str
    name: str
    documentation: str = ""


@dataclass(frozen=True, slots=True)
class XmiEnumeration:
    """A ``uml:Enumeration``: a code list of the logical model."""

    eaid: str
    name: str
    documentation: str = ""
    literals: tuple[XmiLiteral, ...] = ()
    package: str = ""
    packages: tuple[str, ...] = ()

    def in_package(self, name: str) -> bool:
        """Whether the enumeration lies in a package called ``name`` (at any depth)."""
        return name in self.packages

    def literal(self, eaid: str) -> XmiLiteral | None:
        return next((lit for lit in self.literals if lit.eaid == eaid), None)


@dataclass(frozen=True, slots=True)
class XmiEnd(_Bounded):
    """One end of an association: the class it is typed by and its multiplicity.

    ``side`` is ``"source"``, ``"target"`` or ``""`` (unknown); ``owner`` the class that owns the
    end as an ``ownedAttribute`` (``""`` when the association owns it as ``ownedEnd``).
    """

    eaid: str
    type_eaid: str
    multiplicity: Multiplicity
    role: str = ""
    side: str = ""
    owner: str = ""


@dataclass(frozen=True, slots=True)
class XmiAssociation:
    """A ``uml:Association``: its EAID, name (``""`` when unnamed) and ends."""

    eaid: str
    name: str
    ends: tuple[XmiEnd, ...] = ()
    package: str = ""

    @property
    def source(self) -> XmiEnd | None:
        return next((e for e in self.ends if e.side == "source"), None)

    @property
    def target(self) -> XmiEnd | None:
        return next((e for e in self.ends if e.side == "target"), None)


@dataclass(frozen=True, slots=True)
class XmiConnector:
    """A ``connector`` of EA's extension: the association as EA's diagram sees it.

    ``name`` is the label ``mt`` (the association's name), ``source_multiplicity`` and
    ``target_multiplicity`` the ``type/@multiplicity`` text of its ends.
    """

    eaid: str
    source_eaid: str
    target_eaid: str
    source_multiplicity: str = ""
    target_multiplicity: str = ""
    name: str = ""
    ea_type: str = ""
    source_name: str = ""
    target_name: str = ""
    direction: str = ""

    @property
    def target(self) -> Multiplicity:
        return Multiplicity.of_text(self.target_multiplicity)

    @property
    def source(self) -> Multiplicity:
        return Multiplicity.of_text(self.source_multiplicity)


@dataclass(frozen=True, slots=True)
class XmiModel:
    """A read XMI: its classes, enumerations, associations and connectors by EAID."""

    path: str
    classes: Mapping[str, XmiClass]
    enumerations: Mapping[str, XmiEnumeration]
    associations: Mapping[str, XmiAssociation]
    connectors: Mapping[str, XmiConnector]
    has_connectors: bool
    packages: Mapping[str, XmiPackage] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)

    def class_(self, eaid: str) -> XmiClass | None:
        return self.classes.get(eaid)

    def enumeration(self, eaid: str) -> XmiEnumeration | None:
        return self.enumerations.get(eaid)

    def association(self, eaid: str) -> XmiAssociation | None:
        return self.associations.get(eaid)

    def connector(self, eaid: str) -> XmiConnector | None:
        """The connector of association ``eaid`` (EA gives both the same EAID)."""
        return self.connectors.get(eaid)

    def name_of(self, eaid: str) -> str:
        """The name of any named element (class, enumeration, package, …), ``""`` if none."""
        return self.names.get(eaid, "")

    def attribute(self, eaid: str) -> tuple[XmiClass, XmiAttribute] | None:
        """The attribute ``eaid`` and the class that owns it."""
        for cls in self.classes.values():
            found = cls.attribute(eaid)
            if found is not None:
                return cls, found
        return None

    def own_classes(self, register: str, packages: Iterable[str] = ()) -> tuple[XmiClass, ...]:
        """The classes of a register's own package(s).

        The packages named in ``packages``, else the packages named like the register (case
        ignored), sub-packages included. When there is no such package, every class that has
        attributes: a class of another register drawn only as an association's target carries
        none.
        """
        wanted = {p.lower() for p in packages} or {register.lower()}
        names = {p.name.lower() for p in self.packages.values()}
        if wanted & names:
            return tuple(
                c for c in self.classes.values() if wanted & {p.lower() for p in c.packages}
            )
        return tuple(c for c in self.classes.values() if c.attributes)


# --------------------------------------------------------------------------- reading


def read_xmi(path: Path) -> XmiModel:
    """Read the XMI file ``path`` (DescriptorError naming the file on any problem)."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DescriptorError(
                f"XMI {path} has {size} bytes, more than the {MAX_BYTES} bytes read"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise DescriptorError(f"cannot read XMI {path}: {exc.strerror or exc}") from exc
    return parse_xmi(data, str(path))


def parse_xmi(data: bytes, name: str = "<xmi>") -> XmiModel:
    """Parse an XMI document given as bytes; ``name`` names it in errors."""
    if len(data) > MAX_BYTES:
        raise DescriptorError(f"XMI {name} has {len(data)} bytes, more than {MAX_BYTES}")
    try:
        root: ET.Element = SafeET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise DescriptorError(
            f"XMI {name} is refused: it declares a DTD, an entity or an external reference "
            f"({type(exc).__name__})"
        ) from exc
    except (ET.ParseError, ValueError, UnicodeError) as exc:
        raise DescriptorError(f"XMI {name} is not well-formed XML: {exc}") from exc
    return _Reader(root, name).read()


def _family(uri: str) -> str:
    """``"xmi"``, ``"uml"`` or ``""``: the family of a namespace URI."""
    segments = {s.upper() for s in uri.rstrip("/").split("/")}
    if "XMI" in segments:
        return "xmi"
    if "UML" in segments:
        return "uml"
    return ""


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return "", tag


def _local(tag: str) -> str:
    return _split(tag)[1]


def _xmi(node: ET.Element, name: str) -> str:
    """An attribute of the XMI namespace (``xmi:id``, ``xmi:idref``, ``xmi:type``)."""
    for key, value in node.attrib.items():
        uri, local = _split(key)
        if local == name and _family(uri) == "xmi":
            return value
    return ""


def _kind(node: ET.Element) -> str:
    """``xmi:type="uml:Class"`` → ``"Class"``."""
    return _xmi(node, "type").rpartition(":")[2]


def _children(node: ET.Element, *names: str) -> Iterator[ET.Element]:
    for child in node:
        if isinstance(child.tag, str) and _local(child.tag) in names:
            yield child


def _child(node: ET.Element, name: str) -> ET.Element | None:
    return next(_children(node, name), None)


def _text(text: str | None) -> str:
    return " ".join((text or "").split())


def _type_ref(node: ET.Element) -> str:
    """The type idref of a property: a ``type`` child's idref or href, or a ``type`` attribute."""
    child = _child(node, "type")
    if child is not None:
        ref = _xmi(child, "idref") or child.get("href", "").rpartition("#")[2]
        if ref:
            return ref
    return node.get("type", "")


def _bounds(node: ET.Element) -> Multiplicity:
    low = _child(node, "lowerValue")
    high = _child(node, "upperValue")
    lower = None if low is None else low.get("value", "")
    upper = None if high is None else high.get("value")
    return Multiplicity.of_bounds(lower, upper)


def _primitive(ref: str) -> str:
    """``EAJava_String`` / ``EAnone_int`` → ``String`` / ``int``; ``""`` for an EAID."""
    if ref.startswith(("EAID_", "EAPK_")):
        return ""
    if ref.startswith("EA") and "_" in ref:
        return ref.partition("_")[2]
    return ref if scalar_of(ref) is not None else ""


@dataclass
class _Docs:
    """What EA's extension says about elements and attributes, by EAID."""

    element: dict[str, str] = field(default_factory=dict)
    attribute: dict[str, str] = field(default_factory=dict)
    attribute_type: dict[str, str] = field(default_factory=dict)
    attribute_bounds: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


@dataclass
class _RawClass:
    eaid: str
    name: str
    package: XmiPackage | None
    node: ET.Element


class _Reader:
    def __init__(self, root: ET.Element, name: str) -> None:
        self.root = root
        self.name = name
        self.docs = _Docs()
        self.names: dict[str, str] = {}
        self.packages: dict[str, XmiPackage] = {}
        self.raw_classes: dict[str, _RawClass] = {}
        self.enum_nodes: list[tuple[ET.Element, XmiPackage | None]] = []
        self.assoc_nodes: list[tuple[ET.Element, XmiPackage | None]] = []
        # Association EAID → ends owned by classes (ownedAttribute with association=…).
        self.class_ends: dict[str, list[XmiEnd]] = {}

    def read(self) -> XmiModel:
        model = self._model()
        for ext in self._extensions():
            self._read_elements(ext)
        self._walk(model, None)
        connectors, has_connectors = self._connectors()
        enumerations = {e.eaid: e for e in (self._enumeration(n, p) for n, p in self.enum_nodes)}
        classes = {c.eaid: self._class(c) for c in self.raw_classes.values()}
        associations: dict[str, XmiAssociation] = {}
        for node, package in self.assoc_nodes:
            association = self._association(node, package, connectors)
            associations.setdefault(association.eaid, association)
        return XmiModel(
            path=self.name,
            classes=classes,
            enumerations=enumerations,
            associations=associations,
            connectors=connectors,
            has_connectors=has_connectors,
            packages=self.packages,
            names=self.names,
        )

    def _model(self) -> ET.Element:
        uri, local = _split(self.root.tag)
        if local == "Model":
            return self.root
        if local != "XMI" or _family(uri) != "xmi":
            raise DescriptorError(
                f"XMI {self.name} is no XMI document: its root is {local!r}, not xmi:XMI"
            )
        model = next(
            (n for n in self.root.iter() if isinstance(n.tag, str) and _local(n.tag) == "Model"),
            None,
        )
        if model is None:
            raise DescriptorError(f"XMI {self.name} holds no uml:Model")
        return model

    def _extensions(self) -> Iterator[ET.Element]:
        for node in self.root:
            if isinstance(node.tag, str):
                uri, local = _split(node.tag)
                if local == "Extension" and _family(uri) == "xmi":
                    yield node

    # ---------------------------------------------------------------- the UML part

    def _walk(self, node: ET.Element, package: XmiPackage | None) -> None:
        for child in _children(node, "packagedElement", "ownedMember"):
            kind = _kind(child)
            eaid = _xmi(child, "id")
            name = child.get("name", "")
            if eaid and name:
                self.names.setdefault(eaid, name)
            if kind in ("Package", "Model"):
                path = () if package is None else (*package.path, package.name)
                inner = XmiPackage(eaid, name, path)
                if eaid:
                    self.packages.setdefault(eaid, inner)
                self._walk(child, inner)
            elif kind == "Class":
                self._add_class(_RawClass(eaid, name, package, child))
            elif kind == "Enumeration":
                self.enum_nodes.append((child, package))
            elif kind == "Association":
                self.assoc_nodes.append((child, package))

    def _add_class(self, raw: _RawClass) -> None:
        known = self.raw_classes.get(raw.eaid)
        has_attributes = _child(raw.node, "ownedAttribute") is not None
        # A class may be drawn twice (a stub beside the full class): keep the one with content.
        if known is None or (has_attributes and _child(known.node, "ownedAttribute") is None):
            self.raw_classes[raw.eaid] = raw
        for prop in _children(raw.node, "ownedAttribute"):
            association = prop.get("association", "")
            if association:
                self.class_ends.setdefault(association, []).append(
                    XmiEnd(
                        eaid=_xmi(prop, "id"),
                        type_eaid=_type_ref(prop),
                        multiplicity=_bounds(prop),
                        role=prop.get("name", ""),
                        side=_side(_xmi(prop, "id")),
                        owner=raw.eaid,
                    )
                )

    def _class(self, raw: _RawClass) -> XmiClass:
        attributes = []
        for prop in _children(raw.node, "ownedAttribute"):
            if prop.get("association"):
                continue
            eaid = _xmi(prop, "id")
            ref = _type_ref(prop)
            multiplicity = _bounds(prop)
            if not multiplicity.stated and eaid in self.docs.attribute_bounds:
                multiplicity = Multiplicity.of_bounds(*self.docs.attribute_bounds[eaid])
            attributes.append(
                XmiAttribute(
                    eaid=eaid,
                    name=prop.get("name", ""),
                    type_ref=ref,
                    type_name=(
                        _primitive(ref)
                        or self.names.get(ref, "")
                        or self.docs.attribute_type.get(eaid, "")
                    ),
                    multiplicity=multiplicity,
                    documentation=self.docs.attribute.get(eaid, "") or _comment(prop),
                )
            )
        package = raw.package
        return XmiClass(
            eaid=raw.eaid,
            name=raw.name,
            package="" if package is None else package.name,
            documentation=self.docs.element.get(raw.eaid, "") or _comment(raw.node),
            attributes=tuple(attributes),
            package_eaid="" if package is None else package.eaid,
            packages=() if package is None else (*package.path, package.name),
        )

    def _enumeration(self, node: ET.Element, package: XmiPackage | None) -> XmiEnumeration:
        literals = tuple(
            XmiLiteral(
                eaid=_xmi(lit, "id"),
                name=lit.get("name", ""),
                documentation=self.docs.attribute.get(_xmi(lit, "id"), "") or _comment(lit),
            )
            for lit in _children(node, "ownedLiteral")
        )
        eaid = _xmi(node, "id")
        return XmiEnumeration(
            eaid=eaid,
            name=node.get("name", ""),
            documentation=self.docs.element.get(eaid, "") or _comment(node),
            literals=literals,
            package="" if package is None else package.name,
            packages=() if package is None else (*package.path, package.name),
        )

    def _association(
        self,
        node: ET.Element,
        package: XmiPackage | None,
        connectors: Mapping[str, XmiConnector],
    ) -> XmiAssociation:
        eaid = _xmi(node, "id")
        ends = [
            XmiEnd(
                eaid=_xmi(end, "id"),
                type_eaid=_type_ref(end),
                multiplicity=_bounds(end),
                role=end.get("name", ""),
                side=_side(_xmi(end, "id")),
            )
            for end in _children(node, "ownedEnd")
        ]
        for end in self.class_ends.get(eaid, []):
            if all(end.eaid != e.eaid for e in ends):
                ends.append(end)
        connector = connectors.get(eaid)
        if connector is not None:
            ends = [_side_from(e, connector) for e in ends]
        order = {"source": 0, "target": 1, "": 2}
        ends.sort(key=lambda e: order.get(e.side, 2))
        return XmiAssociation(
            eaid=eaid,
            name=node.get("name", ""),
            ends=tuple(ends),
            package="" if package is None else package.name,
        )

    # ---------------------------------------------------------------- EA's extension

    def _read_elements(self, ext: ET.Element) -> None:
        for elements in _children(ext, "elements"):
            for element in _children(elements, "element"):
                eaid = _xmi(element, "idref")
                props = _child(element, "properties")
                if props is not None and props.get("documentation"):
                    self.docs.element.setdefault(eaid, _text(props.get("documentation")))
                for group in _children(element, "attributes"):
                    for attr in _children(group, "attribute"):
                        self._read_attribute(attr)

    def _read_attribute(self, attr: ET.Element) -> None:
        eaid = _xmi(attr, "idref")
        doc = _child(attr, "documentation")
        if doc is not None and doc.get("value"):
            self.docs.attribute.setdefault(eaid, _text(doc.get("value")))
        props = _child(attr, "properties")
        if props is not None and props.get("type"):
            self.docs.attribute_type.setdefault(eaid, props.get("type", ""))
        bounds = _child(attr, "bounds")
        if bounds is not None:
            self.docs.attribute_bounds.setdefault(eaid, (bounds.get("lower"), bounds.get("upper")))

    def _connectors(self) -> tuple[dict[str, XmiConnector], bool]:
        found: dict[str, XmiConnector] = {}
        section = False
        for ext in self._extensions():
            for connectors in _children(ext, "connectors"):
                section = True
                for node in _children(connectors, "connector"):
                    connector = _connector(node)
                    found.setdefault(connector.eaid, connector)
        return found, section


def _connector(node: ET.Element) -> XmiConnector:
    ends: dict[str, tuple[str, str, str]] = {}
    for side in ("source", "target"):
        end = _child(node, side)
        if end is None:
            ends[side] = ("", "", "")
            continue
        model = _child(end, "model")
        kind = _child(end, "type")
        ends[side] = (
            _xmi(end, "idref"),
            "" if kind is None else kind.get("multiplicity", ""),
            "" if model is None else model.get("name", ""),
        )
    labels = _child(node, "labels")
    props = _child(node, "properties")
    return XmiConnector(
        eaid=_xmi(node, "idref") or _xmi(node, "id"),
        source_eaid=ends["source"][0],
        target_eaid=ends["target"][0],
        source_multiplicity=ends["source"][1],
        target_multiplicity=ends["target"][1],
        name=_text((labels.get("mt") if labels is not None else "") or node.get("name")),
        ea_type="" if props is None else props.get("ea_type", ""),
        source_name=ends["source"][2],
        target_name=ends["target"][2],
        direction="" if props is None else props.get("direction", ""),
    )


def _side(eaid: str) -> str:
    """EA names an association's ends ``EAID_src…`` (source) and ``EAID_dst…`` (target)."""
    if eaid.startswith("EAID_src"):
        return "source"
    if eaid.startswith("EAID_dst"):
        return "target"
    return ""


def _side_from(end: XmiEnd, connector: XmiConnector) -> XmiEnd:
    """An end without EA's naming takes its side from the connector's classes."""
    if end.side or connector.source_eaid == connector.target_eaid:
        return end
    if end.type_eaid and end.type_eaid == connector.source_eaid:
        return XmiEnd(end.eaid, end.type_eaid, end.multiplicity, end.role, "source", end.owner)
    if end.type_eaid and end.type_eaid == connector.target_eaid:
        return XmiEnd(end.eaid, end.type_eaid, end.multiplicity, end.role, "target", end.owner)
    return end


def _comment(node: ET.Element) -> str:
    comment = _child(node, "ownedComment")
    if comment is None:
        return ""
    body = _child(comment, "body")
    return _text(body.text if body is not None else comment.get("body"))


# --------------------------------------------------------------------------- as a datamodel


def load_xmi(path: Path, register: str, options: Mapping[str, Any]) -> Datamodel:
    """Serve a logical model on its own: the XMI file (or a folder's one ``*.xmi``) as datamodel.

    - **Entities** are the register's own classes (:meth:`XmiModel.own_classes`): those of the
      packages named in the ``packages`` option, else of the package named like the register
      (sub-packages included), else — when no package is named so — every class that has
      attributes. A class without attributes has no row and is left out; a name in
      ``packages`` that is no package of the XMI is an error.
    - **Fields** are the attributes, named with :func:`unique_names`: EA's primitive types map
      onto the scalar types (:func:`scalar_of`; unknown types are text), an enumeration type is
      text with its :class:`CodeList` (also in ``Datamodel.codelists`` by name), a lower bound of
      0 is nullable (an unwritten one is 1, as in UML), an upper bound above 1 or ``*`` is a list
      (``many``). EAIDs are kept on entities, fields, code lists and codes.
    - **Key**: ``id_lokalId``, else ``id``, else the first non-nullable attribute, else the first.
    - **Navigation**: every association whose both ends are entities → a
      :class:`NavigationProperty` named by the association (or connector label, or the target
      end's role, or the target class's name), to-many from the target end's upper bound (else
      the connector's target multiplicity).
    - ``Datamodel.version`` comes from a file name ``MAJOR.MINOR.PATCH.<REG>.xmi``.
    """
    file = _xmi_file(path)
    xmi = read_xmi(file)
    packages = options.get("packages", ())
    if isinstance(packages, str):
        packages = [packages]
    if not isinstance(packages, (list, tuple)) or not all(isinstance(p, str) for p in packages):
        raise DescriptorError(f"datamodel option packages must be a list of names: {packages!r}")
    known = {p.name.lower() for p in xmi.packages.values()}
    unknown = [p for p in packages if p.lower() not in known]
    if unknown:
        # A misspelt package must not fall back to serving every class of the model.
        raise DescriptorError(
            f"datamodel option packages names no package of XMI {file}: "
            f"{', '.join(unknown)} (packages: "
            f"{', '.join(sorted({p.name for p in xmi.packages.values()})) or 'none'})"
        )
    classes = [c for c in xmi.own_classes(register, packages) if c.attributes]
    if not classes:
        raise DescriptorError(f"XMI {file} holds no class of {register} with attributes")
    codelists: dict[str, CodeList] = {}
    entities: dict[str, Entity] = {}
    for cls in classes:
        entities.setdefault(cls.name, _entity(register, cls, xmi, codelists))
    match = _VERSION.match(file.name)
    return Datamodel(
        entities=entities,
        navigation=_navigation(xmi, classes),
        version=match.group(1) if match else "",
        codelists=codelists,
    )


def _xmi_file(path: Path) -> Path:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".xmi")
        if len(found) != 1:
            raise DescriptorError(
                f"{path} holds {len(found)} XMI files; name the one to serve in datamodel.path"
            )
        return found[0]
    if not path.is_file():
        raise DescriptorError(f"XMI datamodel {path} does not exist")
    return path


def _codelist(enum: XmiEnumeration) -> CodeList:
    return CodeList(
        name=enum.name,
        codes=tuple(Code(lit.name, lit.documentation, lit.eaid) for lit in enum.literals),
        description=enum.documentation,
        eaid=enum.eaid,
    )


def _entity(register: str, cls: XmiClass, xmi: XmiModel, codelists: dict[str, CodeList]) -> Entity:
    names = unique_names([a.name for a in cls.attributes])
    fields = []
    for attr, name in zip(cls.attributes, names, strict=True):
        enum = xmi.enumeration(attr.type_ref)
        codes = None
        if enum is not None:
            codes = codelists.setdefault(enum.name, _codelist(enum))
        kind = scalar_of(attr.type_name) if enum is None else ScalarType.STRING
        lower = 1 if attr.lower is None else attr.lower
        fields.append(
            Field(
                name=name,
                source=attr.name,
                type=kind or ScalarType.STRING,
                nullable=lower == 0,
                description=attr.documentation,
                eaid=attr.eaid,
                many=attr.multiplicity.usable and attr.multiplicity.many,
                codes=codes,
            )
        )
    by_source = {f.source: f for f in fields}
    key = next((by_source[k] for k in _KEYS if k in by_source), None)
    if key is None:
        key = next((f for f in fields if not f.nullable), fields[0])
    return Entity(
        register=register,
        name=cls.name,
        graphql_name=type_name(register, cls.name),
        fields=tuple(fields),
        key=(key.name,),
        description=cls.documentation,
        eaid=cls.eaid,
    )


def _navigation(xmi: XmiModel, classes: list[XmiClass]) -> tuple[NavigationProperty, ...]:
    own = {c.eaid: c for c in classes}
    out = []
    for association in xmi.associations.values():
        connector = xmi.connector(association.eaid)
        source_end, target_end = association.source, association.target
        # An end without a type takes its class from the connector, as a missing end does.
        source = own.get(
            (source_end.type_eaid if source_end else "")
            or (connector.source_eaid if connector else "")
        )
        target = own.get(
            (target_end.type_eaid if target_end else "")
            or (connector.target_eaid if connector else "")
        )
        if source is None or target is None:
            continue
        multiplicity = target_end.multiplicity if target_end else Multiplicity()
        if not multiplicity.stated and connector is not None:
            multiplicity = connector.target
        name = (
            association.name
            or (connector.name if connector else "")
            or (target_end.role if target_end else "")
            or target.name
        )
        out.append(
            NavigationProperty(
                source_entity=source.name,
                name=name,
                target_entity=target.name,
                to_many=multiplicity.usable and multiplicity.many,
            )
        )
    return tuple(sorted(out, key=lambda n: (n.source_entity, n.name, n.target_entity)))
