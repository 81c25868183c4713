"""The register-independent datamodel: entities, fields, relations and levels.

Every datamodel loader (EDMX, JSON Schema, XSD) produces these frozen objects; the schema
builder, the resolvers and the source adapters only ever see them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "Code",
    "CodeList",
    "Datamodel",
    "Entity",
    "Field",
    "NavigationProperty",
    "Register",
    "Relation",
    "ScalarType",
]


class ScalarType(StrEnum):
    """The scalar kinds a field can have, independent of the upstream's type system."""

    STRING = "String"
    INT = "Int"
    LONG = "Long"
    FLOAT = "Float"
    BOOLEAN = "Boolean"
    DATETIME = "DateTime"
    DATE = "Date"

    @property
    def is_text(self) -> bool:
        return self is ScalarType.STRING

    @property
    def is_ordered(self) -> bool:
        """Whether ``gt``/``lt`` make sense (numbers, dates)."""
        return self not in (ScalarType.STRING, ScalarType.BOOLEAN)


@dataclass(frozen=True, slots=True)
class Code:
    """One value of a code list (an XSD enumeration, an XMI enumeration literal)."""

    value: str
    description: str = ""
    eaid: str = ""


@dataclass(frozen=True, slots=True)
class CodeList:
    """A code list (``Udfaldsrum``): the values a field may take, named and identified."""

    name: str
    codes: tuple[Code, ...]
    description: str = ""
    eaid: str = ""

    @property
    def values(self) -> frozenset[str]:
        return frozenset(c.value for c in self.codes)


@dataclass(frozen=True, slots=True)
class Field:
    """A scalar field of an entity.

    ``name`` is the GraphQL name (transliterated), ``source`` the upstream's own name; rows
    handed to the gateway by a source adapter are keyed by ``name``.

    The DLS physical model adds: ``eaid`` (the logical model's identifier of the field),
    ``many`` (``maxOccurs`` above one: the value is a list), ``facets`` (the XSD restrictions
    kept as ``(facet, value)`` pairs, e.g. ``("maxLength", "40")``) and ``codes`` (the code list
    the values are drawn from).
    """

    name: str
    source: str
    type: ScalarType
    nullable: bool = True
    description: str = ""
    eaid: str = ""
    many: bool = False
    facets: tuple[tuple[str, str], ...] = ()
    codes: CodeList | None = None

    def facet(self, name: str) -> str | None:
        """The value of facet ``name`` (``maxLength``, ``minInclusive``, ...), if declared."""
        for key, value in self.facets:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Entity:
    """An entity (a type of row) of one register."""

    register: str
    name: str
    graphql_name: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    description: str = ""
    eaid: str = ""
    by_name: Mapping[str, Field] = field(default_factory=dict, compare=False, repr=False)
    by_source: Mapping[str, Field] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Frozen dataclass: fill the lookup tables once.
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})
        object.__setattr__(self, "by_source", {f.source: f for f in self.fields})

    def field(self, name: str) -> Field:
        """The field with GraphQL name ``name`` (KeyError if absent)."""
        return self.by_name[name]


@dataclass(frozen=True, slots=True)
class NavigationProperty:
    """A relation the upstream's own model declares (EDMX navigation, XSD keyref, ...).

    Used to generate a Relations.json skeleton; ``source_field``/``target_field`` are empty
    when the upstream model does not say which columns join.
    """

    source_entity: str
    name: str
    target_entity: str
    to_many: bool
    source_field: str = ""
    target_field: str = ""


@dataclass(frozen=True, slots=True)
class Datamodel:
    """What a datamodel loader produces: entities by their source name.

    ``version`` is the datamodel's ``MAJOR.MINOR.PATCH`` (from the DLS file name; ``""`` when
    the format does not say), ``codelists`` the code lists by name.
    """

    entities: Mapping[str, Entity]
    navigation: tuple[NavigationProperty, ...] = ()
    version: str = ""
    codelists: Mapping[str, CodeList] = field(default_factory=dict)

    @property
    def major(self) -> str:
        """The ``MAJOR`` of the datamodel version (``"1"`` when unversioned)."""
        return self.version.partition(".")[0] or "1"


@dataclass(frozen=True, slots=True)
class Relation:
    """One DLS relation (a row of Relations.json), resolved against the datamodels.

    Entity and field names are source names, as in Relations.json; ``alias`` is the GraphQL
    field name on the source entity.
    """

    source_register: str
    source_entity: str
    source_field: str
    target_rc: str
    target_rc_version: str
    target_register: str
    target_entity: str
    target_field: str
    to_many: bool
    alias: str


@dataclass(frozen=True, slots=True)
class Temporal:
    """An entity's times, from the register's bitemporality annex (``1. Bitemporality``):
    the source fields saying when a row was registered and from and to when it is valid.
    Empty: the entity has no such field."""

    entity: str
    registration_from: str = ""
    valid_from: str = ""
    valid_to: str = ""


@dataclass(frozen=True, slots=True)
class Register:
    """A loaded register: its datamodel, relations per RelationVersion, levels and source."""

    name: str
    rc: str
    datamodel: Datamodel
    relation_versions: Mapping[str, tuple[Relation, ...]]
    default_level: int
    entity_levels: Mapping[str, int]
    field_levels: Mapping[tuple[str, str], int]
    source: Mapping[str, object]
    path: str = ""
    # "" for the register as served at /graphql; for an older datamodel version served side by
    # side (another replication channel, or an as-is model), "{rc}:{MAJOR}".
    variant: str = ""
    # Per entity (source name), its times (the bitemporality annex); none declared: empty.
    temporal: Mapping[str, Temporal] = field(default_factory=dict)
    # The register's ``Events`` entity (gateway/history/events.py), outside its datamodel:
    # the gateway's record of its rows' versions, for the kinds that record rows.
    events: Entity | None = None

    @property
    def source_key(self) -> str:
        """The key of this register's upstream adapter among the gateway's sources."""
        return f"{self.name}@{self.variant}" if self.variant else self.name

    @property
    def newest_version(self) -> str:
        return max(self.relation_versions, key=int) if self.relation_versions else "1"

    @property
    def zone(self) -> dt.tzinfo | None:
        """The zone of the register's wall-clock date-times (``timeZone`` in Source.json);
        None when it names none, or none known."""
        name = self.source.get("timeZone") if self.source else None
        if not isinstance(name, str) or not name:
            return None
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return None

    def entity_level(self, entity: str) -> int:
        """The level an entity requires (``DefaultSecurity`` unless named specifically)."""
        return self.entity_levels.get(entity, self.default_level)

    def field_level(self, entity: str, field_source_name: str) -> int:
        """A field's level: the higher of its entity's and its own."""
        own = self.field_levels.get((entity, field_source_name), 0)
        return max(own, self.entity_level(entity))
