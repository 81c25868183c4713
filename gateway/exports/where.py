"""``where`` and ``order`` given as JSON (query parameters) → the gateway's filter tree.

The JSON has the shape of the GraphQL input objects, so a filter copied from a GraphQL query
means the same here::

    {"afstemningid": {"eq": 1}}
    {"or": [{"typeid": {"in": [1, 2]}}, {"opdateringsdato": {"gte": "2015-01-01T00:00:00"}}]}
    [{"afstemningid": "ASC"}, {"id": "DESC"}]

Values are coerced as GraphQL coerces variables (an ``Int`` is a 32-bit integer, a
``DateTime`` an ISO 8601 string, a single value where a list is expected is a one-item
list), and the tree is built in the same order as the GraphQL schema builds it, so the
upstream sees the same query either way. Every mistake is a :class:`BadUserInputError`
naming where in the document it is.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from gateway.graphql.scalars import parse_date, parse_datetime
from gateway.graphql.types import OPERATION_INPUTS, OPERATOR_ATTRIBUTES
from gateway.model.datamodel import Entity, Field, ScalarType
from gateway.model.errors import BadUserInputError
from gateway.model.query import And, Condition, Filter, Or, SortKey

__all__ = ["decode_json", "order_from_json", "where_from_json"]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1

# The operators each scalar kind accepts: exactly the fields of its GraphQL operation input.
OPERATORS: dict[ScalarType, frozenset[str]] = {
    kind: frozenset(OPERATOR_ATTRIBUTES[f.name] for f in dataclasses.fields(cls))
    for kind, cls in OPERATION_INPUTS.items()
}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode_json(text: str | None, parameter: str, max_bytes: int) -> Any:
    """The JSON value of a query parameter (None when it is absent or empty)."""
    if text is None or not text.strip():
        return None
    if len(text.encode("utf-8")) > max_bytes:
        raise BadUserInputError(
            f"{parameter} is longer than {max_bytes} bytes", limit=max_bytes, parameter=parameter
        )
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BadUserInputError(f"{parameter} is not valid JSON: {exc}") from None


def where_from_json(entity: Entity, value: Any, max_depth: int = 15) -> Filter | None:
    """The filter tree for a ``where`` value shaped like ``{REG}_{Entity}FilterInput``."""
    return _Where(entity, max_depth).convert(value, "where", 1)


class _Where:
    def __init__(self, entity: Entity, max_depth: int) -> None:
        self.entity = entity
        self.max_depth = max_depth

    def convert(self, value: Any, path: str, depth: int) -> Filter | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise BadUserInputError(f'{path} must be an object like {{"field": {{"eq": 1}}}}')
        if depth > self.max_depth:
            raise BadUserInputError(
                f"{path} nests deeper than {self.max_depth} levels", limit=self.max_depth
            )
        unknown = sorted(k for k in value if k not in ("and", "or", *self.entity.by_name))
        if unknown:
            raise BadUserInputError(
                f"{path}: {self.entity.graphql_name} has no field {unknown[0]!r}",
                field=unknown[0],
            )
        # The same order as the schema's builder: and, or, then the fields in model order.
        parts: list[Filter] = []
        for kind in ("and", "or"):
            if kind in value:
                part = self._combined(kind, value[kind], f"{path}.{kind}", depth)
                if part is not None:
                    parts.append(part)
        for f in self.entity.fields:
            if f.name in value:
                parts.extend(self._conditions(f, value[f.name], f"{path}.{f.name}"))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def _combined(self, kind: str, items: Any, path: str, depth: int) -> Filter | None:
        if items is None:
            return None
        if not isinstance(items, list):
            items = [items]  # GraphQL input coercion: one value where a list is expected
        if not items:
            raise BadUserInputError(f"{kind} needs at least one condition")
        converted = []
        for i, item in enumerate(items):
            if item is None:
                raise BadUserInputError(f"{path}[{i}] must not be null")
            converted.append(self.convert(item, f"{path}[{i}]", depth + 1))
        kept = tuple(c for c in converted if c is not None)
        if not kept:
            return None
        return And(kept) if kind == "and" else Or(kept)

    def _conditions(self, f: Field, ops: Any, path: str) -> list[Filter]:
        if ops is None:
            return []
        if not isinstance(ops, dict):
            raise BadUserInputError(f'{path} must be an object like {{"eq": ...}}')
        allowed = OPERATORS[f.type]
        unknown = sorted(op for op in ops if op not in allowed)
        if unknown:
            raise BadUserInputError(
                f"{path}: {unknown[0]!r} is not an operator for a {f.type.value} field; "
                f"use one of {', '.join(sorted(allowed))}"
            )
        out: list[Filter] = []
        coerce = _COERCE[f.type]
        for op in (op for op in OPERATOR_ATTRIBUTES.values() if op in ops):
            operand = ops[op]
            where = f"{path}.{op}"
            if operand is None and op not in ("eq", "neq"):
                raise BadUserInputError(f"{f.name}.{op} needs a value")
            if op in ("in", "nin"):
                items = operand if isinstance(operand, list) else [operand]
                value: Any = tuple(
                    None if v is None else _coerced(coerce, v, f"{where}[{i}]")
                    for i, v in enumerate(items)
                )
            else:
                value = None if operand is None else _coerced(coerce, operand, where)
            out.append(Condition(f.name, op, value))
        return out


def _coerced(coerce: Callable[[Any], Any], value: Any, path: str) -> Any:
    try:
        return coerce(value)
    except BadUserInputError as exc:
        raise BadUserInputError(f"{path}: {exc.message}") from None


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise BadUserInputError(f"a String must be text, not {json.dumps(value)}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadUserInputError(f"an Int must be an integer, not {json.dumps(value)}")
    if not _INT_MIN <= value <= _INT_MAX:
        raise BadUserInputError(f"an Int is a 32-bit integer; {value} is out of range")
    return value


def _long(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadUserInputError(f"a Long must be an integer, not {json.dumps(value)}")
    try:
        return int(value)
    except ValueError:
        raise BadUserInputError(f"{value!r} is not an integer") from None


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadUserInputError(f"a Float must be a number, not {json.dumps(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise BadUserInputError("a Float must be finite")
    return number


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadUserInputError(f"a Boolean must be true or false, not {json.dumps(value)}")
    return value


_COERCE: Mapping[ScalarType, Callable[[Any], Any]] = {
    ScalarType.STRING: _string,
    ScalarType.INT: _int,
    ScalarType.LONG: _long,
    ScalarType.FLOAT: _float,
    ScalarType.BOOLEAN: _boolean,
    ScalarType.DATETIME: parse_datetime,
    ScalarType.DATE: parse_date,
}


def order_from_json(entity: Entity, value: Any) -> list[SortKey]:
    """The sort keys for an ``order`` value shaped like ``[{REG}_{Entity}SortInput!]``."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    keys: list[SortKey] = []
    for i, item in enumerate(items):
        path = f"order[{i}]"
        if not isinstance(item, dict):
            raise BadUserInputError(f'{path} must be an object like {{"id": "ASC"}}')
        unknown = sorted(k for k in item if k not in entity.by_name)
        if unknown:
            raise BadUserInputError(
                f"{path}: {entity.graphql_name} has no field {unknown[0]!r}", field=unknown[0]
            )
        for f in entity.fields:
            direction = item.get(f.name)
            if direction is None:
                continue
            if direction not in ("ASC", "DESC"):
                raise BadUserInputError(f'{path}.{f.name} must be "ASC" or "DESC"')
            keys.append(SortKey(f.name, direction == "DESC"))
    return keys
