"""Row shaping compiled to Python: one generated function per object and connection of a plan.

The one-pass path (:mod:`gateway.graphql.fastpath`) knows, once per document, which response
keys an object has and where each value comes from. This module turns that description into
the source of a function and compiles it, so that shaping a row is a handful of bytecodes per
field: one ``dict.get`` per column, an inline type test for the built-in scalars (the value
is its own serialisation when it already has the scalar's Python type, as in graphql-core),
one dictionary display per row in response-key order, and relations looked up by the row's
join key (a column, or a tuple of the column and the ``joinScope`` columns).

No text of a document enters the generated source. A response key or column that is a
GraphQL name (``[_A-Za-z][_0-9A-Za-z]*``) is written as its ``repr``; any other value, every
serializer and every builtin the code uses is a free variable of the generated function,
bound to the value itself. The generated code sees no globals and no builtins.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import CodeType
from typing import Any

from graphql import GraphQLBoolean, GraphQLID, GraphQLInt, GraphQLScalarType, GraphQLString

from gateway.graphql.scalars import SCALAR_MAP, Date, DateTime
from gateway.model.query import Row

__all__ = [
    "Constant",
    "Cursor",
    "Edges",
    "Info",
    "Joined",
    "Nodes",
    "Scalar",
    "Total",
    "connection_shaper",
    "key_collector",
    "object_shaper",
]

_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
# The gateway's date and date-time scalars give a str back as it is (``str(value)``).
_TEXTUAL = (SCALAR_MAP[DateTime].serialize, SCALAR_MAP[Date].serialize)


@dataclass(frozen=True, slots=True)
class Scalar:
    """A column copied from the row, serialised as ``scalar`` (``None`` stays ``None``, or
    makes the plan step aside when the field is non-null)."""

    key: str
    column: str
    scalar: GraphQLScalarType
    non_null: bool


@dataclass(frozen=True, slots=True)
class Constant:
    """The same value in every row (``__typename``)."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Joined:
    """A relation's shaped value, looked up by the row's join key: the value of the first
    column alone, or the tuple of all of them (a scoped join)."""

    key: str
    columns: tuple[str, ...]


ObjectField = Scalar | Constant | Joined


@dataclass(frozen=True, slots=True)
class Nodes:
    """A connection's ``nodes``: its rows shaped by the object shaper at ``shaper``."""

    key: str
    shaper: int


@dataclass(frozen=True, slots=True)
class Cursor:
    """An edge's ``cursor``."""

    key: str


@dataclass(frozen=True, slots=True)
class Edges:
    """A connection's ``edges``: per edge its cursor, constants (``__typename``) and nodes
    (``Nodes`` here stands for one ``node`` key of the edge)."""

    key: str
    fields: tuple[Cursor | Constant | Nodes, ...]


@dataclass(frozen=True, slots=True)
class Info:
    """``pageInfo``: (key, name) per selected field, ``__typename`` as a constant."""

    key: str
    fields: tuple[tuple[str, str] | Constant, ...]


@dataclass(frozen=True, slots=True)
class Total:
    """``totalCount`` (``None`` makes the plan step aside: the count was not asked of the
    upstream)."""

    key: str


ConnectionField = Nodes | Edges | Info | Total | Constant


class _Source:
    """Generated source and the values its free variables are bound to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.values: dict[str, Any] = {}
        self._names: dict[int, str] = {}

    def const(self, value: str) -> str:
        """``value`` as an expression: a GraphQL name's literal, else a bound variable."""
        if type(value) is str and _NAME.fullmatch(value):
            return repr(value)
        return self.bind(value)

    def bind(self, value: Any, hint: str = "value") -> str:
        """A free variable of the generated function, bound to ``value`` (``hint``, one of
        this module's words, makes the generated source readable)."""
        name = self._names.get(id(value))
        if name is None:
            name = self._names[id(value)] = f"_b{len(self.values)}_{hint}"
            self.values[name] = value
        return name

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def build(self, name: str) -> Callable[..., Any]:
        """Compile the lines (the body of a function ``name``) with the values bound."""
        params = ", ".join(self.values)
        text = "\n".join([f"def _make({params}):", *self.lines, f"    return {name}", ""])
        namespace: dict[str, Any] = {}
        exec(_compiled(text, name), {"__builtins__": {}}, namespace)
        made: Callable[..., Any] = namespace["_make"](**self.values)
        made.__doc__ = text  # the generated source, for debugging
        return made


@functools.lru_cache(maxsize=1024)
def _compiled(text: str, name: str) -> CodeType:
    """The code of a generated source, compiled once per text (documents that differ only in
    their arguments' literals have the same shapes: the same source, bound to other values)."""
    return compile(text, f"<shaping {name}>", "exec")


def _fast_test(source: _Source, scalar: GraphQLScalarType, var: str) -> str | None:
    """A test that ``var`` is already its own serialisation (graphql-core returns such a
    value unchanged), or None when every value goes through the scalar's ``serialize``."""
    serialize = scalar.serialize
    type_ = source.bind(type, "type")
    if scalar is GraphQLInt:
        return f"{type_}({var}) is {source.bind(int, 'int')} and {_INT_MIN} <= {var} <= {_INT_MAX}"
    if scalar in (GraphQLString, GraphQLID) or serialize in _TEXTUAL:
        return f"{type_}({var}) is {source.bind(str, 'str')}"
    if scalar is GraphQLBoolean:
        return f"{type_}({var}) is {source.bind(bool, 'bool')}"
    if serialize is int:  # Long
        return f"{type_}({var}) is {source.bind(int, 'int')}"
    return None


def object_shaper(
    fields: Sequence[ObjectField], step_aside: type[Exception]
) -> Callable[..., list[dict[str, Any]]]:
    """``shape(map0, default0, map1, default1, ..., rows) -> list of dicts``: every row
    shaped into ``fields`` in order; a :class:`Joined` field ``i`` takes ``map_i.get(join
    key, default_i)`` (the maps come first, to be bound with :func:`functools.partial`).
    Raises ``step_aside`` for a null in a non-null field; a serializer's error propagates."""
    source = _Source()
    joined = [f for f in fields if isinstance(f, Joined)]
    params = "".join(f"_m{i}, _d{i}, " for i in range(len(joined)))
    source.line(1, f"def shape({params}rows):")
    source.line(2, "out = []")
    source.line(2, "append = out.append")
    source.line(2, "for row in rows:")
    source.line(3, "get = row.get")
    items: list[str] = []
    for index, f in enumerate(fields):
        key = source.const(f.key)
        if isinstance(f, Scalar):
            var = f"v{index}"
            source.line(3, f"{var} = get({source.const(f.column)})")
            test = _fast_test(source, f.scalar, var)
            serialize = source.bind(f.scalar.serialize, "serialize")
            convert = f"{var} = {serialize}({var})"
            if f.non_null:
                source.line(3, f"if {var} is None:")
                source.line(4, f"raise {source.bind(step_aside, 'step_aside')}")
                source.line(3, f"if not ({test}):" if test else "else:")
                source.line(4, convert)
            else:
                guard = f" and not ({test})" if test else ""
                source.line(3, f"if {var} is not None{guard}:")
                source.line(4, convert)
            items.append(f"{key}: {var}")
        elif isinstance(f, Constant):
            items.append(f"{key}: {source.const(f.value)}")
        else:
            i = joined.index(f)
            parts = [f"get({source.const(c)})" for c in f.columns]
            lookup = parts[0] if len(parts) == 1 else f"({', '.join(parts)})"
            items.append(f"{key}: _m{i}.get({lookup}, _d{i})")
    source.line(3, f"append({{{', '.join(items)}}})")
    source.line(2, "return out")
    return source.build("shape")


def key_collector(columns: Sequence[str]) -> Callable[[Sequence[Row]], list[Any]]:
    """``keys(rows)``: the distinct join keys of ``rows`` in first-appearance order, none
    with a missing part (the value of the one column, or the tuple of all columns)."""
    source = _Source()
    fromkeys = source.bind(dict.fromkeys, "fromkeys")
    source.line(1, "def keys(rows):")
    if len(columns) == 1:
        source.line(2, f"found = {fromkeys}([row.get({source.const(columns[0])}) for row in rows])")
        source.line(2, "found.pop(None, None)")
        source.line(2, f"return {source.bind(list, 'list')}(found)")
    else:
        parts = ", ".join(f"row.get({source.const(c)})" for c in columns)
        present = " and ".join(f"k[{i}] is not None" for i in range(len(columns)))
        source.line(2, f"found = {fromkeys}([({parts}) for row in rows])")
        source.line(2, f"return [k for k in found if {present}]")
    return source.build("keys")


def connection_shaper(
    fields: Sequence[ConnectionField], step_aside: type[Exception]
) -> Callable[..., dict[str, Any]]:
    """``shape(connection, objects0, objects1, ...) -> dict``: a connection (as
    :mod:`gateway.graphql.execute` makes them) shaped into ``fields``; ``objects_i`` shapes
    a list of rows for the ``Nodes`` with ``shaper == i``. Raises ``step_aside`` for a
    ``totalCount`` the connection does not know."""
    source = _Source()
    shapers = sorted(
        {n.shaper for f in fields for n in ((f,) if isinstance(f, Nodes) else _edge_nodes(f))}
    )
    params = "".join(f", _o{i}" for i in shapers)
    source.line(1, f"def shape(c{params}):")
    if shapers:
        source.line(2, "nodes = c['nodes']")
    if any(isinstance(f, Total) for f in fields):
        source.line(2, "total = c['totalCount']")
        source.line(2, "if total is None:")
        source.line(3, f"raise {source.bind(step_aside, 'step_aside')}")
    if any(isinstance(f, Info) for f in fields):
        source.line(2, "info = c['pageInfo']")
    items: list[str] = []
    for f in fields:
        key = source.const(f.key)
        if isinstance(f, Nodes):
            items.append(f"{key}: _o{f.shaper}(nodes)")
        elif isinstance(f, Total):
            items.append(f"{key}: total")
        elif isinstance(f, Constant):
            items.append(f"{key}: {source.const(f.value)}")
        elif isinstance(f, Info):
            parts = [
                f"{source.const(p.key)}: {source.const(p.value)}"
                if isinstance(p, Constant)
                else f"{source.const(p[0])}: info[{source.const(p[1])}]"
                for p in f.fields
            ]
            items.append(f"{key}: {{{', '.join(parts)}}}")
        else:
            names = ["e"]
            parts = []
            for p in f.fields:
                if isinstance(p, Cursor):
                    parts.append(f"{source.const(p.key)}: e['cursor']")
                elif isinstance(p, Constant):
                    parts.append(f"{source.const(p.key)}: {source.const(p.value)}")
                else:
                    names.append(f"n{len(names)}")
                    parts.append(f"{source.const(p.key)}: {names[-1]}")
            sequences = ["c['edges']"] + [f"_o{p.shaper}(nodes)" for p in _edge_nodes(f)]
            zipped = f"{source.bind(zip, 'zip')}({', '.join(sequences)})"
            items.append(f"{key}: [{{{', '.join(parts)}}} for ({', '.join(names)},) in {zipped}]")
    source.line(2, f"return {{{', '.join(items)}}}")
    return source.build("shape")


def _edge_nodes(f: ConnectionField) -> list[Nodes]:
    return [p for p in f.fields if isinstance(p, Nodes)] if isinstance(f, Edges) else []
