"""A one-pass plan's inputs: its variables coerced and its field arguments, per request.

graphql-core coerces an operation's variables and each field's arguments by walking their
types and literals on every request (``get_variable_values``, ``get_argument_values``). For a
plan both are the same work again and again:

- :class:`Variables`: when every variable of the operation is a built-in scalar (``Int``,
  ``String``, ``Boolean``, ``ID``, ``Float``, nullable or not) without a default, a value
  already of the scalar's own type is its coerced value, as graphql-core would give it
  (an ``Int`` within 32 bits, a finite ``Float``, a ``str`` for ``String`` and ``ID``). Any
  other value, a missing non-null variable, or any other operation goes to graphql-core, with
  its errors.
- :class:`Arguments`: a field's arguments are a function of its literals and of the coerced
  values of the variables they name. Kept per field node, keyed by those values when each is
  a scalar (hashable and immutable), at most :data:`KEPT` per field; input objects passed
  as variables are coerced every time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLNonNull,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    VariableDefinitionNode,
    VariableNode,
    get_named_type,
)
from graphql.execution.get_variable_signature import get_variable_signature
from graphql.execution.values import (
    VariableValues,
    VariableValueSource,
    get_variable_values,
)

__all__ = ["KEPT", "Arguments", "Variables", "variables_named"]

KEPT = 64

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _int(value: Any) -> bool:
    return type(value) is int and _INT_MIN <= value <= _INT_MAX


def _str(value: Any) -> bool:
    return type(value) is str


def _bool(value: Any) -> bool:
    return type(value) is bool


def _float(value: Any) -> bool:
    return type(value) is float and math.isfinite(value)


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "Int": _int,
    "String": _str,
    "ID": _str,
    "Boolean": _bool,
    "Float": _float,
}


class Variables:
    """An operation's variables coerced as graphql-core coerces them (see the module)."""

    __slots__ = ("_checks", "_definitions", "_schema")

    def __init__(self, schema: GraphQLSchema, operation: OperationDefinitionNode) -> None:
        self._schema = schema
        self._definitions: Sequence[VariableDefinitionNode] = operation.variable_definitions or ()
        self._checks = self._compile(schema, self._definitions)

    @staticmethod
    def _compile(schema: GraphQLSchema, definitions: Sequence[VariableDefinitionNode]) -> Any:
        checks = []
        for definition in definitions:
            if definition.default_value is not None or definition.directives:
                return None
            signature = get_variable_signature(schema, definition)
            if isinstance(signature, GraphQLError):
                return None
            kind = signature.type
            named = get_named_type(kind)
            check = _CHECKS.get(named.name)
            if check is None or schema.get_type(named.name) is not named:
                return None
            required = isinstance(kind, GraphQLNonNull)
            inner = kind.of_type if isinstance(kind, GraphQLNonNull) else kind
            if inner is not named:
                return None  # a list
            checks.append((signature.name, required, check, signature))
        return checks

    def coerce(self, raw: Mapping[str, Any] | None) -> VariableValues | list[GraphQLError]:
        """The coerced values, or graphql-core's list of errors."""
        raw = raw or {}
        checks = self._checks
        if checks is not None:
            sources: dict[str, VariableValueSource] = {}
            coerced: dict[str, Any] = {}
            for name, required, check, signature in checks:
                if name in raw:
                    value = raw[name]
                    if (value is None and not required) or check(value):
                        sources[name] = VariableValueSource(signature, value)
                        coerced[name] = value
                        continue
                elif not required:
                    sources[name] = VariableValueSource(signature)
                    continue
                break  # anything else: as graphql-core decides
            else:
                return VariableValues(sources, coerced)
        return get_variable_values(self._schema, self._definitions, dict(raw))


def variables_named(node: Node) -> list[str]:
    """The names of the variables a node's subtree refers to, in order, once each."""
    names: dict[str, None] = {}
    for found in _walk(node):
        names[found] = None
    return list(names)


def _walk(node: Any) -> Iterator[str]:
    if isinstance(node, VariableNode):
        yield node.name.value
        return
    for key in getattr(node, "keys", ()):
        value = getattr(node, key, None)
        if isinstance(value, Node):
            yield from _walk(value)
        elif isinstance(value, tuple | list):
            for item in value:
                if isinstance(item, Node):
                    yield from _walk(item)


_SCALARS = (int, str, bool, float, type(None))


class Arguments:
    """A field's arguments (with what a plan derives from them) kept per variable values."""

    __slots__ = ("_kept", "_names")

    def __init__(self, arguments: Sequence[Node]) -> None:
        names: dict[str, None] = {}
        for argument in arguments:
            for name in variables_named(argument):
                names[name] = None
        self._names = tuple(names)
        self._kept: dict[tuple[Any, ...], Any] = {}

    def key(self, variables: VariableValues) -> tuple[Any, ...] | None:
        """The key of these variables' arguments; None if one is not a plain scalar (an
        input object's value is coerced afresh every time)."""
        coerced = variables.coerced
        values = []
        for name in self._names:
            if name not in coerced:
                values.append(_MISSING)
                continue
            value = coerced[name]
            if type(value) not in _SCALARS:
                return None
            values.append((type(value), value))  # 1, 1.0 and True are not one key
        return tuple(values)

    def get(self, key: tuple[Any, ...] | None) -> Any:
        return None if key is None else self._kept.get(key)

    def keep(self, key: tuple[Any, ...] | None, value: Any) -> None:
        if key is None:
            return
        if len(self._kept) >= KEPT:
            del self._kept[next(iter(self._kept))]
        self._kept[key] = value


_MISSING = object()
