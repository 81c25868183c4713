"""Evaluating filters and orders in the gateway, for what an upstream cannot do itself."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from gateway.model.datamodel import Entity, ScalarType
from gateway.model.errors import BadUserInputError
from gateway.model.query import And, Condition, Filter, Or, Page, Query, Row, SortKey, conjuncts

__all__ = [
    "apply_in_memory",
    "check_text",
    "equal_values",
    "matches",
    "predicate",
    "sort_rows",
]


def _temporal(value: Any, kind: ScalarType) -> Any:
    if value is None or isinstance(value, dt.date):
        return _as_utc(value) if isinstance(value, dt.datetime) else value
    text = str(value)
    if kind is ScalarType.DATE:
        return dt.date.fromisoformat(text[:10])
    return _as_utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def _as_utc(value: dt.datetime) -> dt.datetime:
    # Naive values (most upstreams give wall-clock times) compare as they are; aware ones
    # are compared on the UTC time line with naive ones read as UTC.
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def _normalise(entity: Entity, field: str) -> Callable[[Any], Any]:
    kind = entity.field(field).type
    if kind in (ScalarType.DATETIME, ScalarType.DATE):
        return lambda v: _temporal(v, kind)
    if kind in (ScalarType.INT, ScalarType.LONG):
        return lambda v: v if v is None or isinstance(v, int) else int(v)
    if kind is ScalarType.FLOAT:
        return lambda v: v if v is None else float(v)
    return lambda v: v


def _check(op: str, have: Any, want: Any) -> bool:
    if op == "eq":
        return bool(have == want)
    if op == "neq":
        return bool(have != want)
    if op == "in":
        return have in want
    if op == "nin":
        return have not in want
    if have is None or want is None:
        return False
    if op == "gt":
        return bool(have > want)
    if op == "gte":
        return bool(have >= want)
    if op == "lt":
        return bool(have < want)
    if op == "lte":
        return bool(have <= want)
    if op == "contains":
        return str(want) in str(have)
    if op == "startsWith":
        return str(have).startswith(str(want))
    if op == "endsWith":
        return str(have).endswith(str(want))
    raise ValueError(f"unknown filter operator {op!r}")


def matches(where: Filter | None, row: Row, entity: Entity) -> bool:
    """Whether ``row`` satisfies ``where`` (for many rows, build :func:`predicate` once)."""
    return predicate(where, entity)(row)


def predicate(where: Filter | None, entity: Entity) -> Callable[[Row], bool]:
    """``where`` as a test of one row, its values normalised once (an ``in`` list becomes a
    set): testing n rows against a list of m values costs n lookups, not n × m."""
    if where is None:
        return lambda row: True
    if isinstance(where, And):
        every = [predicate(item, entity) for item in where.items]
        return lambda row: all(p(row) for p in every)
    if isinstance(where, Or):
        some = [predicate(item, entity) for item in where.items]
        return lambda row: any(p(row) for p in some)
    norm = _normalise(entity, where.field)
    field, op = where.field, where.op
    if op in ("in", "nin"):
        values = [norm(v) for v in where.value]
        try:
            want: Any = frozenset(values)
        except TypeError:  # an unhashable value: compared one by one
            want = values
    elif op in ("contains", "startsWith", "endsWith"):
        want = where.value
    else:
        want = norm(where.value)
    return lambda row: _check(op, norm(row.get(field)), want)


def sort_rows(rows: list[Row], order: Iterable[SortKey], entity: Entity) -> list[Row]:
    """Sort rows by ``order``; nulls come first ascending and last descending.

    One stable key sort per sort field, last field first: each pass is a C-speed sort on
    a precomputed key, so large sets sort in time proportional to n log n.
    """
    out = list(rows)
    for key in reversed(list(order)):
        norm = _normalise(entity, key.field)
        values = [norm(row.get(key.field)) for row in out]
        present = [v is not None for v in values]
        indices = sorted(
            range(len(out)),
            key=lambda i: (present[i], values[i]) if present[i] else (False, 0),
            reverse=key.descending,
        )
        # reverse=True keeps the sort stable, so the passes for later fields stay in effect.
        out = [out[i] for i in indices]
    return out


def apply_in_memory(rows: Iterable[Row], query: Query, *, where: Filter | None = None) -> Page:
    """Filter, order, count and slice ``rows`` as ``query`` says.

    ``where`` overrides ``query.where`` (pass the part the upstream did not evaluate).
    """
    condition = query.where if where is None else where
    test = predicate(condition, query.entity)
    selected = [row for row in rows if test(row)]
    if query.order:
        selected = sort_rows(selected, query.order, query.entity)
    total = len(selected)
    end = None if query.limit is None else query.offset + query.limit
    window = selected[query.offset : end]
    return Page(rows=window, has_more=end is not None and total > end, total=total)


def equal_values(where: Filter | None, field: str) -> set[Any] | None:
    """The values ``field`` is restricted to by the top-level conjunction, or None if free.

    Lets adapters choose which documents, folders or files to read: ``{x: {eq: 1}}`` gives
    ``{1}``, ``{x: {in: [1, 2]}}`` gives ``{1, 2}``, an ``or`` of equalities on the same
    field gives their union.
    """
    result: set[Any] | None = None
    for part in conjuncts(where):
        values = _values_of(part, field)
        if values is not None:
            result = values if result is None else result & values
    return result


def _values_of(part: Filter, field: str) -> set[Any] | None:
    if isinstance(part, Condition):
        if part.field != field:
            return None
        if part.op == "eq":
            return {part.value}
        if part.op == "in":
            return set(part.value)
        return None
    if isinstance(part, Or):
        union: set[Any] = set()
        for item in part.items:
            values = _values_of(item, field)
            if values is None:
                return None
            union |= values
        return union
    found = [v for v in (_values_of(i, field) for i in part.items) if v is not None]
    if not found:
        return None
    out = found[0]
    for values in found[1:]:
        out &= values
    return out


def check_text(where: Filter | None, argument: str = "where") -> None:
    """Refuse (``BAD_USER_INPUT``) a filter holding text that is not Unicode characters.

    JSON and GraphQL escapes can spell a lone surrogate (``"\\ud800"``), which no upstream
    encoding (UTF-8 in a URL, a CSV or XML comparison) can carry. Checked before any
    upstream request, with the argument named.
    """
    if where is None:
        return
    if isinstance(where, And | Or):
        for item in where.items:
            check_text(item, argument)
        return
    values = where.value if isinstance(where.value, tuple | list) else (where.value,)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            position = f"[{index}]" if where.op in ("in", "nin") else ""
            code = ord(value[exc.start])
            raise BadUserInputError(
                f"{argument}: the text of {where.field}.{where.op}{position} is not valid Unicode "
                f"(a lone surrogate U+{code:04X} at position {exc.start}); send characters, "
                "not halves of UTF-16 surrogate pairs",
                argument=f"{argument}.{where.field}.{where.op}",
            ) from None
