"""GraphQL ``where`` and ``order`` arguments → the query vocabulary: pure functions.

The same conversion serves the field-by-field resolvers, the one-pass path and subscriptions
(the HTTP exports read JSON with :mod:`gateway.exports.where`). Arguments arrive as strawberry
input objects or as plain dicts (graphql-core's coerced variables); both are read alike.
"""

from __future__ import annotations

import keyword
import operator
from decimal import Decimal, InvalidOperation
from typing import Any

from strawberry.types.unset import UNSET

from gateway.graphql.types import OPERATOR_ATTRIBUTES, SortEnumType
from gateway.model.datamodel import Entity, Field, ScalarType
from gateway.model.errors import BadUserInputError
from gateway.model.query import And, Condition, Filter, Or, SortKey

__all__ = ["order_keys", "python_name", "where_filter"]


def where_filter(entity: Entity, value: Any) -> Filter | None:
    """A ``where`` argument as a filter tree (strawberry objects or plain dicts)."""
    if value is None or value is UNSET:
        return None
    parts: list[Filter] = []
    for kind in ("and", "or"):
        items = _part(value, kind)
        if items is UNSET or items is None:
            continue
        if not items:
            raise BadUserInputError(f"{kind} needs at least one condition")
        converted = [where_filter(entity, item) for item in items]
        kept = tuple(c for c in converted if c is not None)
        if kept:
            parts.append(And(kept) if kind == "and" else Or(kept))
    for f in entity.fields:
        ops = UNSET if f.many else _part(value, f.name)  # absent in a per-level schema
        if ops is UNSET or ops is None:
            continue
        for attribute, op in OPERATOR_ATTRIBUTES.items():
            operand = _part(ops, op if isinstance(ops, dict) else attribute)
            if operand is UNSET:
                continue
            if operand is None and op not in ("eq", "neq"):
                raise BadUserInputError(f"{f.name}.{op} needs a value")
            if op in ("in", "nin"):
                operand = tuple(operand)
            if f.codes is not None or f.facets:
                _check_operand(f, op, operand)
            parts.append(Condition(f.name, op, operand))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def order_keys(entity: Entity, value: Any) -> list[SortKey]:
    """An ``order`` argument as sort keys (strawberry objects or plain dicts)."""
    keys: list[SortKey] = []
    for item in value or ():
        for f in entity.fields:
            direction = UNSET if f.many else _part(item, f.name)
            if direction is not UNSET and direction is not None:
                descending = direction is SortEnumType.DESC or direction == "DESC"
                keys.append(SortKey(f.name, descending))
    return keys


_CODED = (ScalarType.STRING, ScalarType.INT, ScalarType.LONG)
_NUMERIC = (ScalarType.INT, ScalarType.LONG, ScalarType.FLOAT)
_CODES_SHOWN = 20


def _check_operand(f: Field, op: str, operand: Any) -> None:
    """Refuse values an equality condition can never meet: not a code, outside the range."""
    if op not in ("eq", "neq", "in", "nin"):
        return
    values = [v for v in (operand if op in ("in", "nin") else (operand,)) if v is not None]
    if f.codes is not None and f.type in _CODED:
        allowed = f.codes.values
        for v in values:
            if _code_text(v) not in allowed:
                shown = ", ".join(c.value for c in f.codes.codes[:_CODES_SHOWN])
                more = ", …" if len(f.codes.codes) > _CODES_SHOWN else ""
                raise BadUserInputError(
                    f"{f.name}.{op}: {v!r} is not a code of {f.codes.name} "
                    f"(the codes: {shown}{more}; see the field's description)",
                    field=f.name,
                )
    if f.type in _NUMERIC and op in ("eq", "in"):
        for v in values:
            problem = _outside(f, v)
            if problem:
                raise BadUserInputError(
                    f"{f.name}.{op}: {v!r} is outside the range of {f.name}: values are {problem}",
                    field=f.name,
                )


def _code_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _outside(f: Field, value: Any) -> str:
    """The bound ``value`` breaks (``"≥ 1000"``), or ``""``."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return ""
    if not number.is_finite():
        return ""
    for facet, sign, breaks in (
        ("minInclusive", "≥", operator.lt),
        ("minExclusive", ">", operator.le),
        ("maxInclusive", "≤", operator.gt),
        ("maxExclusive", "<", operator.ge),
    ):
        bound = f.facet(facet)
        if bound is None:
            continue
        try:
            limit = Decimal(bound)
        except InvalidOperation:
            continue
        if limit.is_finite() and breaks(number, limit):
            return f"{sign} {bound}"
    return ""


def _part(value: Any, name: str) -> Any:
    """A member of an input value: dicts (graphql-core) by GraphQL name, objects by Python name."""
    if isinstance(value, dict):
        return value.get(name, UNSET)
    return getattr(value, python_name(name), UNSET)


def python_name(name: str) -> str:
    """The Python attribute name of a GraphQL name (``in`` → ``in_``)."""
    return f"{name}_" if keyword.iskeyword(name) or keyword.issoftkeyword(name) else name
