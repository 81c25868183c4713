"""What the gateway asks of a source adapter, and what it gets back.

A :class:`Query` is protocol-neutral: an entity, a filter tree, an order, a window and a
projection. Adapters push down what their upstream can evaluate and evaluate the rest
with :func:`gateway.model.filters.apply_in_memory`; the answer must be the same either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from gateway.model.datamodel import Entity

__all__ = [
    "And",
    "Condition",
    "Filter",
    "Or",
    "Page",
    "Query",
    "Row",
    "SortKey",
    "conjuncts",
    "filter_fields",
]

Row: TypeAlias = dict[str, Any]

OPERATORS = (
    "eq", "neq", "in", "nin", "gt", "gte", "lt", "lte", "contains", "startsWith", "endsWith",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Condition:
    """``field op value`` on one field (GraphQL name). ``eq None`` means "is null"."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class And:
    """All of the items hold."""

    items: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one of the items holds."""

    items: tuple[Filter, ...]


Filter: TypeAlias = Condition | And | Or


def conjuncts(where: Filter | None) -> list[Filter]:
    """The top-level ``and`` parts of a filter (a flat list; empty for no filter)."""
    if where is None:
        return []
    if isinstance(where, And):
        out: list[Filter] = []
        for item in where.items:
            out.extend(conjuncts(item))
        return out
    return [where]


def filter_fields(where: Filter | None) -> set[str]:
    """The fields a filter reads."""
    if where is None:
        return set()
    if isinstance(where, Condition):
        return {where.field}
    out: set[str] = set()
    for item in where.items:
        out |= filter_fields(item)
    return out


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``order`` entry: a field (GraphQL name) and its direction."""

    field: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    """Rows of ``entity`` matching ``where``, ordered, from ``offset``, at most ``limit``.

    ``limit=None`` asks for every matching row. ``fields`` names the fields the caller needs
    (an adapter may return more). ``count`` asks for the total number of matching rows.
    ``order`` always ends with the entity's key, so the order is total and pages are stable.
    ``options`` carries hints: ``{"cache": False}`` asks the adapter not to keep what it
    fetches (a bulk export would otherwise fill the cache with the whole entity).
    """

    entity: Entity
    where: Filter | None = None
    order: tuple[SortKey, ...] = ()
    offset: int = 0
    limit: int | None = None
    fields: frozenset[str] = frozenset()
    count: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Page:
    """A window of rows (keyed by GraphQL field name) and what is known beyond it."""

    rows: list[Row]
    has_more: bool
    total: int | None = None
    notices: list[dict[str, Any]] = field(default_factory=list)
