"""``extensions.attribution``: the credit an answer owes the registers it reads.

A register whose terms require naming its upstream as the source (``attributionRequired`` in
its ``Source.json``, :mod:`gateway.dls.attribution`) is credited in every answer whose
document selects one of its entity types, at any depth (relations and ``_entities``
fragments included), whether answered field by field, in one pass or from the response
cache::

    "extensions": {"attribution": [{"register": "FT", "text": "Kilde: Folketingets åbne
    data, oda.ft.dk", "name": "Folketinget", "url": "https://oda.ft.dk", "required": true}]}

The registers are found from the document and the schema alone (no execution state), so a
cached answer is credited like a fresh one; the cache keeps answers without it.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import orjson
from graphql import GraphQLSchema
from strawberry.types.execution import ExecutionResult

from gateway.dls.attribution import attribution
from gateway.graphql.execute import Binding
from gateway.graphql.response_cache import CachedResult
from gateway.graphql.selection import selected_types

__all__ = ["credited", "credits"]


_Table = Mapping[str, tuple[str, dict[str, Any]]]

# Per schema: type name → (register, attribution) for the types of registers requiring it.
_TABLES: weakref.WeakKeyDictionary[GraphQLSchema, _Table] = weakref.WeakKeyDictionary()
# Per schema: what each recent document owes (bounded, the oldest out first).
_OWED: weakref.WeakKeyDictionary[GraphQLSchema, dict[str, list[dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)
_OWED_KEPT = 1024
_OWED_TEXT = 8192


def _credit_table(schema: GraphQLSchema, bindings: Mapping[str, Binding]) -> _Table:
    table = _TABLES.get(schema)
    if table is None:
        out: dict[str, tuple[str, dict[str, Any]]] = {}
        for type_name, binding in bindings.items():
            found = attribution(binding.register)
            if found is not None and found.required:
                # The entity's own type, and its page types (a bare totalCount reads it too).
                for name in (type_name, f"{type_name}Connection", f"{type_name}Edge"):
                    out[name] = (found.register, found.as_json())
        table = _TABLES[schema] = out
    return table


def credits(
    schema: GraphQLSchema, bindings_by_type: Mapping[str, Binding], query: str | None
) -> list[dict[str, Any]]:
    """The attributions owed by an answer to ``query`` (empty when none is required)."""
    if query is None or not bindings_by_type:
        return []
    table = _credit_table(schema, bindings_by_type)
    if not table:
        return []
    if len(query) > _OWED_TEXT:
        return _credits(schema, query, table)
    owed = _OWED.get(schema)
    if owed is None:
        owed = _OWED[schema] = {}
    found = owed.get(query)
    if found is None:
        found = _credits(schema, query, table)
        if len(owed) >= _OWED_KEPT:
            del owed[next(iter(owed))]
        owed[query] = found
    return list(found)


def _credits(schema: GraphQLSchema, query: str, table: _Table) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in sorted(selected_types(schema, query)):
        if name in table:
            register, credit = table[name]
            found.setdefault(register, credit)
    return [found[r] for r in sorted(found)]


class _CreditedResult(CachedResult):
    """A cached answer's bytes with ``extensions`` after them."""

    def __init__(self, cached: CachedResult, extensions: dict[str, Any]) -> None:
        super().__init__(cached.encoded, cached._data, cached.key)
        self.extensions = extensions

    def body(self) -> bytes:
        return super().body()[:-1] + b',"extensions":' + orjson.dumps(self.extensions) + b"}"


def credited(result: Any, owed: list[dict[str, Any]]) -> Any:
    """``result`` with ``extensions.attribution`` when ``owed`` is not empty."""
    if not owed or not isinstance(result, ExecutionResult):
        return result
    if isinstance(result, CachedResult):  # a cached answer always has its data
        return _CreditedResult(result, {**(result.extensions or {}), "attribution": owed})
    if result.data is None:  # nothing was read
        return result
    result.extensions = {**(result.extensions or {}), "attribution": owed}
    return result
