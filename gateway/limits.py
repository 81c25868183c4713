"""Query limits, checked before any upstream request: size, tokens, depth, aliases, cost.

Each refusal is a ``QUERY_TOO_COMPLEX`` error naming the limit and the measured value.
The cost estimate counts the fields a query would resolve: a connection multiplies what is
below its ``nodes``/``edges`` by its page size (``first``/``last``, else the default).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    TokenKind,
    VariableNode,
    get_named_type,
)
from graphql.error import GraphQLSyntaxError
from graphql.language import Lexer, Source
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult

__all__ = [
    "LimitSettings",
    "QueryMeasure",
    "count_tokens",
    "limits_extension",
    "measure",
    "verdict",
]


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """The limits; the cost budget is per caller level."""

    max_document_bytes: int = 100_000
    max_tokens: int = 5_000
    max_depth: int = 15
    max_aliases: int = 30
    cost_budget: Mapping[int, int] = field(
        default_factory=lambda: {0: 50_000, 1: 100_000, 2: 200_000, 3: 500_000}
    )
    default_first: int = 100

    def budget(self, level: int) -> int:
        return self.cost_budget.get(level, max(self.cost_budget.values()))


def too_complex(message: str, limit: str, allowed: int, measured: int) -> GraphQLError:
    """The error for a refused query."""
    return GraphQLError(
        message,
        extensions={
            "code": "QUERY_TOO_COMPLEX",
            "limit": limit,
            "allowed": allowed,
            "measured": measured,
        },
    )


def count_tokens(text: str, stop_after: int) -> int:
    """Lexical tokens of a document (stops counting past ``stop_after``).

    Remembered for short documents (bounded): clients send the same ones again and again.
    """
    if len(text) <= _MEMO_CHARS:
        return _count_tokens_memo(text, stop_after)
    return _count_tokens(text, stop_after)


_MEMO_CHARS = 8192


@lru_cache(maxsize=1024)
def _count_tokens_memo(text: str, stop_after: int) -> int:
    return _count_tokens(text, stop_after)


def _count_tokens(text: str, stop_after: int) -> int:
    lexer = Lexer(Source(text))
    count = 0
    try:
        while lexer.advance().kind != TokenKind.EOF:
            count += 1
            if count > stop_after:
                break
    except GraphQLSyntaxError:
        pass  # the parser reports syntax errors with their position
    return count


def check_document(text: str, settings: LimitSettings) -> GraphQLError | None:
    """Size and token limits, before the document is parsed."""
    size = len(text.encode("utf-8"))
    if size > settings.max_document_bytes:
        return too_complex(
            f"the document has {size} bytes; at most {settings.max_document_bytes} are accepted",
            "documentBytes",
            settings.max_document_bytes,
            size,
        )
    tokens = count_tokens(text, settings.max_tokens)
    if tokens > settings.max_tokens:
        return too_complex(
            f"the document has more than {settings.max_tokens} tokens",
            "tokens",
            settings.max_tokens,
            tokens,
        )
    return None


@dataclass(slots=True)
class QueryMeasure:
    """Depth, alias count and estimated cost of one operation."""

    depth: int = 0
    aliases: int = 0
    cost: int = 0


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        default_first: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.default_first = default_first
        self.result = QueryMeasure()

    def _size(self, node: FieldNode) -> int:
        size: int | None = None
        for argument in node.arguments or ():
            if argument.name.value not in ("first", "last"):
                continue
            value = argument.value
            number: Any = None
            if isinstance(value, IntValueNode):
                number = int(value.value)
            elif isinstance(value, VariableNode):
                number = self.variables.get(value.name.value)
            if isinstance(number, int):
                size = number if size is None else min(size, number)
        return max(size if size is not None else self.default_first, 0)

    def _fields(self, selection_set: SelectionSetNode, seen: frozenset[str]) -> Iterator[FieldNode]:
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                yield sel
            elif isinstance(sel, InlineFragmentNode):
                yield from self._fields(sel.selection_set, seen)
            elif isinstance(sel, FragmentSpreadNode):
                fragment = self.fragments.get(sel.name.value)
                if fragment is not None and sel.name.value not in seen:
                    yield from self._fields(fragment.selection_set, seen | {sel.name.value})

    def walk(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLObjectType,
        multiplier: int,
        depth: int,
        seen: frozenset[str] = frozenset(),
    ) -> None:
        self.result.depth = max(self.result.depth, depth)
        for node in self._fields(selection_set, seen):
            if node.alias is not None:
                self.result.aliases += 1
            self.result.cost += multiplier
            definition = parent.fields.get(node.name.value)
            if definition is None or node.selection_set is None:
                continue
            child = get_named_type(definition.type)
            if not isinstance(child, GraphQLObjectType):
                continue
            inner = multiplier
            if child.name.endswith("Connection") and {"nodes", "edges"} <= set(child.fields):
                inner = multiplier * max(self._size(node), 1)
                self._walk_connection(node.selection_set, child, multiplier, inner, depth + 1)
            else:
                self.walk(node.selection_set, child, inner, depth + 1, seen)

    def _walk_connection(
        self,
        selection_set: SelectionSetNode,
        connection: GraphQLObjectType,
        outer: int,
        inner: int,
        depth: int,
    ) -> None:
        self.result.depth = max(self.result.depth, depth)
        for node in self._fields(selection_set, frozenset()):
            if node.alias is not None:
                self.result.aliases += 1
            self.result.cost += outer
            definition = connection.fields.get(node.name.value)
            if definition is None or node.selection_set is None:
                continue
            child = get_named_type(definition.type)
            if not isinstance(child, GraphQLObjectType):
                continue
            multiplier = inner if node.name.value in ("nodes", "edges") else outer
            self.walk(node.selection_set, child, multiplier, depth + 1)


def measure(
    schema: GraphQLSchema,
    document: Any,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    default_first: int,
) -> QueryMeasure:
    """Measure the operation that will run."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    chosen = [
        o
        for o in operations
        if operation_name is None or (o.name and o.name.value == operation_name)
    ]
    walker = _Walker(schema, fragments, variables or {}, default_first)
    for operation in chosen[:1]:
        root = schema.get_root_type(operation.operation)
        if root is not None:
            walker.walk(operation.selection_set, root, 1, 1)
    return walker.result


def limits_extension(settings: LimitSettings) -> type[SchemaExtension]:
    """A schema extension refusing over-deep, over-aliased or over-costly operations."""

    class QueryLimits(SchemaExtension):
        def on_execute(self) -> Iterator[None]:
            context = self.execution_context
            document = context.graphql_document
            if document is not None and context.result is None:
                measured = measure(
                    context.schema._schema,
                    document,
                    context.operation_name,
                    context.variables,
                    settings.default_first,
                )
                level = getattr(context.context, "level", 0)
                error = verdict(measured, settings, level)
                if error is not None:
                    context.result = ExecutionResult(data=None, errors=[error])
            yield

    return QueryLimits


def verdict(measured: QueryMeasure, settings: LimitSettings, level: int) -> GraphQLError | None:
    if measured.depth > settings.max_depth:
        return too_complex(
            f"the query is {measured.depth} levels deep; at most {settings.max_depth} are allowed",
            "depth",
            settings.max_depth,
            measured.depth,
        )
    if measured.aliases > settings.max_aliases:
        return too_complex(
            f"the query uses {measured.aliases} aliases; at most {settings.max_aliases} allowed",
            "aliases",
            settings.max_aliases,
            measured.aliases,
        )
    budget = settings.budget(level)
    if measured.cost > budget:
        return too_complex(
            f"the query's estimated cost is {measured.cost}; the budget at level {level} is "
            f"{budget} (ask for fewer rows per page, or page with cursors)",
            "cost",
            budget,
            measured.cost,
        )
    return None
