"""Demand control: what the gateway has seen of list sizes, and the real cost of a request.

Two halves, one unit. The unit is a *field resolution*: one selected field of one object
(a row's scalar, a relation, a connection's ``totalCount``...). Before execution,
:mod:`gateway.graphql.limits` estimates the count from the document and from :class:`Observed` —
the row counts and fan-outs earlier requests met. While executing, a :class:`Meter` charges
each page of rows the moment it arrives (rows × fields selected on them) and stops the
request before its next upstream request once the caller's budget is crossed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError

__all__ = ["Knowledge", "Meter", "Observed", "cost_error", "entity_id", "pinned_rows"]


class Observed:
    """Sizes met so far, per process: entity totals and relation fan-outs.

    Bounded by the schema (one figure per entity and per relation), updated in place on the
    event loop.
    """

    def __init__(self) -> None:
        self._totals: dict[Hashable, int] = {}
        self._fanout: dict[Hashable, tuple[int, int]] = {}  # parents, rows

    def total(self, entity: Hashable) -> int | None:
        """The entity's row count when last seen unfiltered, or None."""
        return self._totals.get(entity)

    def saw_total(self, entity: Hashable, total: int) -> None:
        self._totals[entity] = total

    def fanout(self, relation: Hashable) -> float | None:
        """Mean rows per parent key of a relation, or None before it was ever loaded."""
        seen = self._fanout.get(relation)
        if seen is None or seen[0] == 0:
            return None
        return seen[1] / seen[0]

    def saw_fanout(self, relation: Hashable, parents: int, rows: int) -> None:
        if parents <= 0:
            return
        before = self._fanout.get(relation, (0, 0))
        parents_seen, rows_seen = before[0] + parents, before[1] + rows
        # Keep the mean, forget the volume: recent loads weigh as much as old ones.
        if parents_seen > 1_000_000:
            parents_seen, rows_seen = parents_seen // 2, rows_seen // 2
        self._fanout[relation] = (parents_seen, rows_seen)

    def expected(self, relation: Hashable, page: int) -> int:
        """Rows per parent to expect (at most ``page``); 1 before anything was seen."""
        mean = self.fanout(relation)
        if mean is None:
            return min(page, 1)
        return min(page, max(1, math.ceil(mean)))


def cost_error(
    message: str, allowed: int, measured: int, field_name: str | None, **extra: object
) -> GraphQLError:
    """The ``QUERY_TOO_COMPLEX`` error of a cost refusal, with how to succeed."""
    extensions: dict[str, object] = {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "cost",
        "allowed": allowed,
        "measured": measured,
        **extra,
    }
    if field_name is not None:
        extensions["field"] = field_name
    return GraphQLError(message, extensions=extensions)


HINT = (
    "lower `first` on {field}, page with cursors (`after`), use the file exports "
    "(GET /{{REG}}/v{{N}}/download/{{Entity}}.csv) for whole tables, or send an API key "
    "of a higher level"
)


@dataclass(slots=True)
class Meter:
    """The real cost of one request, charged page by page as rows arrive."""

    budget: int
    level: int
    estimated: int = 0
    spent: int = 0
    by_field: dict[str, int] = field(default_factory=dict)
    error: GraphQLError | None = None

    def charge(self, where: str, rows: int, fields: int) -> None:
        """Count ``rows`` rows of ``fields`` selected fields each; raise once over budget."""
        amount = rows * max(fields, 1)
        self.spent += amount
        self.by_field[where] = self.by_field.get(where, 0) + amount
        if self.spent > self.budget:
            self.stop()

    def rows_left(self, fields: int) -> int:
        """How many more rows of ``fields`` fields fit in the budget."""
        return max(0, (self.budget - self.spent) // max(fields, 1))

    def check(self) -> None:
        """Before an upstream request: raise if the request was already stopped."""
        if self.error is not None:
            raise self.error

    def costliest(self) -> str | None:
        if not self.by_field:
            return None
        return max(self.by_field.items(), key=lambda item: item[1])[0]

    def stop(self) -> None:
        if self.error is None:
            top = self.costliest()
            self.error = cost_error(
                f"the query's real cost reached {self.spent} (rows fetched × fields selected "
                f"on them) and the budget at level {self.level} is {self.budget}; it was "
                f"stopped before its next upstream request. Most of it came from "
                f"{top or 'the root field'}: " + HINT.format(field=top or "the root field"),
                self.budget,
                self.spent,
                top,
                stage="execution",
                estimated=self.estimated,
            )
        raise self.error

    def report(self) -> dict[str, int]:
        """``extensions.cost`` of the answer."""
        return {"estimated": self.estimated, "actual": self.spent, "budget": self.budget}


def pinned_rows(key: tuple[str, ...], where: Any) -> int | None:
    """How many rows a ``where`` can match at most because it pins every key field.

    ``{id: {eq: 1}}`` pins one row, ``{id: {in: [1, 2]}}`` two; conditions under ``and``
    count, those under ``or`` or ``not`` do not. None when the key is not pinned.
    """
    if not key or not isinstance(where, Mapping):
        return None
    bounds: dict[str, int] = {}
    _pins(where, bounds)
    if not all(name in bounds for name in key):
        return None
    product = 1
    for name in key:
        product *= bounds[name]
    return product


def _pins(where: Mapping[str, Any], bounds: dict[str, int]) -> None:
    for name, value in where.items():
        if name == "and" and isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    _pins(item, bounds)
        elif isinstance(value, Mapping):
            bound: int | None = None
            if "eq" in value and value["eq"] is not None:
                bound = 1
            elif isinstance(value.get("in"), list):
                bound = len(set(map(repr, value["in"])))
            if bound is not None:
                bounds[name] = min(bound, bounds.get(name, bound))


class Knowledge:
    """Expected rows per connection, from pinned keys and from what was :class:`Observed`.

    ``bindings`` maps each entity type's GraphQL name to its binding (entity and relations).
    An unknown size is not the page size: a root field's page is what it asks for (capped by
    the entity's row count once seen), a relation is its mean fan-out once seen, else 1 —
    the meter charges what really comes.
    """

    def __init__(self, bindings: Mapping[str, Any], observed: Observed) -> None:
        self.bindings = bindings
        self.observed = observed

    def rows(
        self, parent: str, field_name: str, target: str, where: Any, page: int, root: bool
    ) -> int:
        binding = self.bindings.get(target)
        if binding is None:
            return page
        pinned = pinned_rows(binding.entity.key, where)
        if pinned is not None:
            return min(page, pinned)
        if root:
            total = self.observed.total(entity_id(binding.entity)) if where is None else None
            return page if total is None else min(page, total)
        source = self.bindings.get(parent)
        relation = source.relations.get(field_name) if source is not None else None
        if relation is None:
            return min(page, 1)
        return self.observed.expected(relation, page)


def entity_id(entity: Any) -> tuple[str, str]:
    """How :class:`Observed` names an entity."""
    return (entity.register, entity.name)
